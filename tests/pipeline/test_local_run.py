"""kfp.local end to end: coea_training (with the SFT of both tiny LLMs and PCO) on a tiny synthetic log, then
coea_recurring on its state taking each branch (same data -> keep groups; a taste shift -> regroup), each
branch running the PCO update of the state's models. Each step runs as a subprocess of this Python."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import coea
from coea.config import EvalConfig
from coea.state import KV_STORE, read_pointer
from coea.store import KVStore
from pipelines.local import run_recurring_locally
from tests.pipeline.pipeline_helpers import BASELINES, parquet_config, shifted_log, tiny_config

pytestmark = pytest.mark.slow


def _task_dirs(kfp_root: Path) -> set[str]:
    """Names of the tasks that ran (each writes its outputs under <pipeline_root>/<run>/<task>/), without the
    suffix KFP gives a second task of the same component (``evaluate-2`` in the else branch)."""
    (run,) = [p for p in kfp_root.iterdir() if p.is_dir() and p.name.startswith("coea-")]
    return {re.sub(r"-\d+$", "", p.name) for p in run.iterdir() if p.is_dir()}


RECURRING_METHODS = [*BASELINES, "coea+x"]  # coea+x: the served method, from the period's PCO dir


def _recurring_config(**changes):
    """The baselines and the served coea+x (the LLMs come from the state, nothing trains in-process)."""
    return tiny_config(eval=EvalConfig(methods=RECURRING_METHODS), **changes)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _state_models(state: str) -> tuple[str, Path]:
    """(active models version, its dir) of a local state."""
    pointer = read_pointer(state)
    assert pointer is not None
    return pointer["models"]["snapshot"], Path(state) / "models" / pointer["models"]["snapshot"]


def _assert_pco_update(kfp_root: Path, state: str, before: str) -> None:
    """The recurring run loaded the state's models, ran PCO from them, and saved its last round as a new version;
    the served recommendations came from coea+x and evaluate scored it."""
    (run,) = [p for p in kfp_root.iterdir() if p.is_dir() and p.name.startswith("coea-")]
    loaded = run / "load-models"
    assert _tree(loaded / "novelty" / "novelty") == _tree(Path(state) / "models" / before / "novelty")
    (pco,) = [p for p in run.iterdir() if p.name.startswith("pco-loop")]
    pco_state = json.loads((pco / "model" / "pco_state.json").read_text())
    assert pco_state["completed_rounds"] == 2
    version, models = _state_models(state)
    assert version != before
    last = pco / "model" / "rounds" / "round_002"
    for name in ("novelty", "relevance"):
        assert _tree(models / name) == _tree(last / name)
    # the update changed the models: at least the R-LLM, refreshed on the period's feedback every round (the tiny
    # N-LLM's DPO may find no pair with enough margin on this data)
    assert all(r["refresh_examples"] > 0 for r in pco_state["rounds"][1:])
    assert _tree(models / "relevance") != _tree(Path(state) / "models" / before / "relevance")
    (evaluate,) = [p for p in run.iterdir() if p.name.startswith("evaluate")]
    metrics = json.loads((evaluate / "report" / "metrics.json").read_text())["methods"]
    assert metrics["coea+x"]["NCP@10"] > 0.99
    (recommend,) = [p for p in run.iterdir() if p.name.startswith("recommend")]
    recs = pd.read_parquet(recommend / "recommendations")
    assert recs["user_id"].nunique() == 120 and recs.groupby("user_id").size().max() == 5


def _state_copy(trained: tuple[Path, dict[str, Path]], dst: Path) -> str:
    shutil.copytree(trained[0] / "state", dst)
    return str(dst)


def test_training_pipeline_outputs(trained: tuple[Path, dict[str, Path]], fitted) -> None:
    run_dir, paths = trained
    assert {"metrics.json", "metrics.md", "metrics_at_10.png", "metrics_at_10.html", "config.json", "ground_truth",
            "dsie", "llm", "recommendations", "kv_store"} <= set(paths)
    metrics = json.loads(paths["metrics.json"].read_text())
    assert metrics["protocol"]["evaluated_users"] == 120 and metrics["dataset"]["users"] == 120
    gpn = metrics["methods"]["group_pop_novel"]
    assert gpn["NCP@10"] > 0.99 and 0.0 < gpn["S-H@10"] <= gpn["C-H@10"] <= 1.0  # (lists < K divide by K)
    assert "| group_pop_novel |" in paths["metrics.md"].read_text()
    assert paths["report"] == run_dir / "report.html" and 'id="metrics-table"' in paths["report"].read_text()
    # the LLM methods ran on the models of the two SFT steps
    assert metrics["methods"]["nllm_sft+x"]["NCP@10"] > 0.99 and metrics["methods"]["nllm_sft"]["C-H@10"] > 0
    assert "dual_best_of_n" in metrics["methods"] and "| nllm_sft+x |" in paths["metrics.md"].read_text()
    for name in ("novelty", "relevance"):
        assert (paths["llm"] / name / "config.json").is_file()
        assert json.loads((paths["llm"] / f"sft_metrics_{name}.json").read_text())[name]["steps"] > 0
    # the DSIE step in its own process found the same groups as the in-process fit of the same config
    groups = pd.read_parquet(paths["dsie"] / "groups.parquet")
    assert groups.equals(pd.read_parquet(fitted.dsie / "groups.parquet"))
    assert (paths["dsie"] / "profiles.json").is_file() and (paths["dsie"] / "rqvae" / "rqvae.pt").is_file()


def test_coea_run_prints_under_60_lines_and_logs_the_steps_to_a_file(trained, console: io.StringIO) -> None:
    """`coea run` prints a header, one line per pipeline step (name, status, seconds) and `run_summary`; with
    the demo's 14 methods instead of this config's 8 that is under 60 lines. The steps' own logs (thousands of
    lines) are in RUN/kfp/steps.log."""
    from coea.cli.kubeflow import run_summary

    run_dir, paths = trained
    steps = console.getvalue().splitlines()
    assert sorted(line.split()[0] for line in steps) == sorted([
        "prepare-data", "dsie-group", "sft-novelty", "sft-relevance", "pco-loop", "recommend", "save-state",
        "evaluate", "export-recommendations"]), steps  # each step once, in the order the graph ran them
    assert all(line.split()[1] == "success" and line.endswith(" s") for line in steps), steps
    summary = run_summary(tiny_config(), run_dir, paths, rec_k=5).splitlines()
    assert "| group_pop_novel |" in "\n".join(summary) and f"report:        {run_dir / 'report.html'}" in summary
    more_rows = len(EvalConfig().methods) - len(tiny_config().eval.methods)
    assert 1 + len(steps) + len(summary) + more_rows < 60
    log = paths["steps_log"].read_text(encoding="utf-8")
    assert paths["steps_log"] == run_dir / "kfp" / "steps.log" and len(log.splitlines()) > 500
    assert all(f"Executing task '{line.split()[0]}'" in log for line in steps)
    assert json.loads(paths["served"].read_text()) == {"method": "coea+x", "k": 5}
    assert '<strong id="served-method">coea+x</strong>' in paths["report"].read_text()


def test_training_pipeline_serves_from_the_kv_store(trained: tuple[Path, dict[str, Path]]) -> None:
    run_dir, paths = trained
    recs = pd.read_parquet(paths["recommendations"])  # nllm_sft+x: the N-LLM, seen categories excluded
    assert recs["user_id"].nunique() == 120 and recs.groupby("user_id").size().max() == 5
    log = pd.read_parquet(run_dir / "state" / "snapshots" / read_pointer(str(run_dir / "state"))["snapshot"]
                          / "data" / "interactions.parquet")
    seen = set(zip(log["user_id"], log["category"], strict=True))
    assert not any((u, c) in seen for u, c in zip(recs["user_id"], recs["category"], strict=True))
    expected = recs[recs["user_id"] == "u0007"].sort_values("rank")
    with KVStore(paths["kv_store"]) as store:
        got = store.get_user("u0007")
        assert [r.category for r in got] == expected["category"].tolist()
        assert [r.score for r in got] == pytest.approx(expected["score"].tolist())
        assert store.get_user("nobody") == []
        (version,) = store.versions()
        assert version.n_users == 120 and len(store.get_user("u0100")) == 5
        assert version.metadata["recommendations"].endswith("recommendations")
    with KVStore(run_dir / "state" / KV_STORE) as live:
        assert live.active_version() == version.version
    pointer = read_pointer(str(run_dir / "state"))
    assert pointer is not None and any(f.endswith("dsie/groups.parquet") for f in pointer["files"])
    _, models = _state_models(str(run_dir / "state"))  # the state's models are the last PCO round's
    for name in ("novelty", "relevance"):
        assert _tree(models / name) == _tree(paths["pco"] / "rounds" / "round_002" / name)


def test_recurring_same_data_keeps_groups(trained: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    state = _state_copy(trained, tmp_path / "state")
    before = read_pointer(state)
    models_before, _ = _state_models(state)
    kfp_root = run_recurring_locally(_recurring_config(), tmp_path / "run", state, rec_k=5)
    ran = _task_dirs(kfp_root)
    assert {"load-state", "load-models", "monitor-drift", "build-profiles", "pco-loop", "save-models", "evaluate",
            "export-recommendations"} <= ran
    assert "dsie-group" not in ran and "save-state" not in ran
    after = read_pointer(state)
    assert after is not None and {k: v for k, v in after.items() if k != "models"} == {
        k: v for k, v in before.items() if k != "models"}  # the reference and its groups stay
    _assert_pco_update(kfp_root, state, models_before)
    with KVStore(Path(state) / KV_STORE) as store:
        assert len(store.versions()) == 2  # served again
    # every output artifact but Metrics carries the package version in its metadata (coea.stages.record_version)
    (run,) = [p for p in kfp_root.iterdir() if p.is_dir() and p.name.startswith("coea-")]
    for task in ("load-state", "load-models", "prepare-data", "pco-loop-2", "evaluate-2", "export-recommendations-2"):
        artifacts = json.loads((run / task / "executor_output.json").read_text())["artifacts"]
        versions = {name: {a.get("metadata", {}).get("coea_version") for a in body["artifacts"]}
                    for name, body in artifacts.items() if name not in ("metrics", "stats")}
        assert versions and all(v == {coea.__version__} for v in versions.values()), (task, versions)


def test_recurring_taste_shift_regroups(trained: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    state = _state_copy(trained, tmp_path / "state")
    before = read_pointer(state)
    assert before is not None
    models_before, _ = _state_models(state)
    shifted = shifted_log(Path(state) / "snapshots" / before["snapshot"] / "data", tmp_path / "period.parquet")
    kfp_root = run_recurring_locally(parquet_config(shifted, eval=EvalConfig(methods=RECURRING_METHODS)),
                                     tmp_path / "run", state, rec_k=5)
    ran = _task_dirs(kfp_root)
    assert {"load-state", "load-models", "monitor-drift", "dsie-group", "save-state", "pco-loop",
            "export-recommendations"} <= ran
    assert "build-profiles" not in ran and "save-models" not in ran  # groups + models in one state write
    _assert_pco_update(kfp_root, state, models_before)
    after = read_pointer(state)
    assert after is not None and after["snapshot"] != before["snapshot"]  # the new window is the reference now
    reference = pd.read_parquet(Path(state) / "snapshots" / after["snapshot"] / "data" / "interactions.parquet")
    assert reference.equals(pd.read_parquet(shifted))
    with KVStore(Path(state) / KV_STORE) as store:
        assert len(store.versions()) == 2


def test_recurring_without_state_fails_in_load_state(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="load-state"):
        run_recurring_locally(tiny_config(), tmp_path / "run", str(tmp_path / "no-state"))


def test_recurring_without_models_fails_in_load_models(trained: tuple[Path, dict[str, Path]],
                                                       tmp_path: Path) -> None:
    state = _state_copy(trained, tmp_path / "state")
    pointer = json.loads((Path(state) / "current.json").read_text())
    del pointer["models"]  # a state written before the models were part of it
    (Path(state) / "current.json").write_text(json.dumps(pointer))
    with pytest.raises(RuntimeError, match="load-models"):
        run_recurring_locally(_recurring_config(), tmp_path / "run", state, rec_k=5)


def test_evaluate_from_run_gives_the_runs_own_metrics(trained, tmp_path) -> None:
    """`coea evaluate --from-run RUN` (the evaluate stage on the run folder's data/, dsie/, llm/, pco/ with its
    config.json) reproduces the pipeline's evaluate step exactly, for every method the run evaluated."""
    from coea.cli.common import from_run_config
    from coea.layout import RunLayout
    from coea.stages import run_evaluate_stage

    run_dir, _ = trained
    layout = RunLayout(run_dir)
    assert {"data", "dsie", "llm", "pco"} <= {p.name for p in run_dir.iterdir() if p.is_dir()}
    cfg = from_run_config(None, run_dir)
    again = run_evaluate_stage(cfg, layout.data, tmp_path, layout.artifacts())
    own = json.loads(layout.metrics.read_text())
    assert set(again.metrics["methods"]) == set(own["methods"]) == set(tiny_config().eval.methods)
    assert again.metrics["methods"] == own["methods"]
    assert again.metrics["cold_start"] == own["cold_start"]
