"""kfp.local end to end: coea_training (with the SFT of both tiny LLMs and PCO) on a tiny synthetic log (the
session's ``trained`` run, tests/pipeline/conftest.py), then coea_recurring on its state with the next period's
data, the same behaviour a week later (keep groups), running the PCO update of the state's models, and its failure
paths (a second run on that period refused); the taste-shift branch is in test_local_recurring.py. Each step runs
as a subprocess of this Python."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import coea
from coea.config import SERVED_METHOD, DataConfig, EvalConfig
from coea.errors import CoeaInputError
from coea.state import KV_STORE, read_pointer
from coea.store import KVStore
from pipelines.local import run_recurring_locally
from tests.helpers import assert_artifact_page
from tests.pipeline.pipeline_helpers import tiny_config
from tests.pipeline.recurring_helpers import (
    assert_pco_update,
    later_period,
    recurring_config,
    state_copy,
    state_models,
    task_dirs,
    tree,
)

pytestmark = pytest.mark.slow


def test_training_pipeline_outputs(trained: tuple[Path, dict[str, Path]], fitted) -> None:
    run_dir, paths = trained
    assert {"metrics.json", "metrics.md", "metrics_at_10.png", "eval_report.html", "config.json", "ground_truth",
            "dsie", "llm", "recommendations", "kv_store"} <= set(paths)
    assert_artifact_page(paths["eval_report.html"].read_text())  # the evaluate step's HTML artifact
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
    assert not (run_dir / "INCOMPLETE.txt").exists()  # stood while the outputs were copied (test_new_user_paths)


def test_coea_run_prints_under_60_lines_and_logs_the_steps_to_a_file(training_run) -> None:
    """`coea run` prints a header, one line per pipeline step (name, status, seconds) and `run_summary`; with
    the demo's default methods (17) instead of this config's 8 that is under 60 lines. The steps' own logs (thousands of
    lines) are in RUN/kfp/steps.log."""
    from coea.cli.kubeflow import run_summary

    run_dir, paths, console = training_run
    steps = console.splitlines()
    assert sorted(line.split()[0] for line in steps) == sorted([
        "prepare-data", "dsie-group", "sft-novelty", "sft-relevance", "pco-loop", "recommend", "save-state",
        "evaluate", "export-recommendations"]), steps  # each step once, in the order the graph ran them
    assert all(line.split()[1] == "success" and line.endswith(" s") for line in steps), steps
    summary = run_summary(tiny_config(), run_dir, paths, rec_k=5).splitlines()
    assert "| group_pop_novel |" in "\n".join(summary) and f"report:        {run_dir / 'report.html'}" in summary
    cold = json.loads(paths["metrics.json"].read_text())["protocol"]["cold_start_users"]
    holds = f"with paired CIs and {cold} cold-start users)" if cold else "with paired CIs)"  # said only when some
    assert any(line.startswith("metrics:") and holds in line for line in summary), summary
    first = sorted(pd.read_parquet(paths["recommendations"])["user_id"])[0]  # a real id to paste, not a placeholder
    assert any(line.endswith(f"recommend --store {paths['kv_store']} --user {first})") for line in summary), summary
    # the served method against the paired reference, in the words of report.html (below / above / level)
    assert sum(line.startswith("The served method coea_seq+x ") for line in summary) == 1, summary
    synthetic = json.loads(paths["metrics.json"].read_text())["dataset"]["source"] == "synthetic"
    assert synthetic and any("not how the method ranks: README *Results on MovieLens-1M*" in line for line in summary)
    more_rows = len(EvalConfig().methods) - len(tiny_config().eval.methods)
    assert 1 + len(steps) + len(summary) + more_rows < 60
    log = paths["steps_log"].read_text(encoding="utf-8")
    assert paths["steps_log"] == run_dir / "kfp" / "steps.log" and len(log.splitlines()) > 500
    assert all(f"Executing task '{line.split()[0]}'" in log for line in steps)
    assert json.loads(paths["served"].read_text()) == {"method": SERVED_METHOD, "k": 5}
    assert f'<strong id="served-method">{SERVED_METHOD}</strong>' in paths["report"].read_text()


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
    _, models = state_models(str(run_dir / "state"))  # the state's models are the last PCO round's
    for name in ("novelty", "relevance"):
        assert tree(models / name) == tree(paths["pco"] / "rounds" / "round_002" / name)


def test_recurring_same_behaviour_keeps_groups_once_per_period(trained: tuple[Path, dict[str, Path]],
                                                                 tmp_path: Path) -> None:
    state = state_copy(trained, tmp_path / "state")
    before = read_pointer(state)
    models_before, _ = state_models(state)
    period = recurring_config(data=DataConfig(spec=f"parquet:{later_period(state, tmp_path / 'period.parquet')}"))
    kfp_root = run_recurring_locally(period, tmp_path / "run", state, rec_k=5)
    ran = task_dirs(kfp_root)
    assert {"load-state", "load-models", "monitor-drift", "build-profiles", "pco-loop", "save-models", "evaluate",
            "export-recommendations"} <= ran
    assert "dsie-group" not in ran and "save-state" not in ran
    after = read_pointer(state)
    snapshot = ("snapshot", "created_at", "files")  # the reference and its groups stay
    assert after is not None and {k: after[k] for k in snapshot} == {k: before[k] for k in snapshot}
    assert after["period"] != before["period"] and after["history"]["models"][1] == models_before
    assert_pco_update(kfp_root, state, models_before)
    with KVStore(Path(state) / KV_STORE) as store:
        assert len(store.versions()) == 2  # served again
    # every output artifact but Metrics carries the package version in its metadata (coea.stages.record_version)
    (run,) = [p for p in kfp_root.iterdir() if p.is_dir() and p.name.startswith("coea-")]
    for task in ("load-state", "load-models", "prepare-data", "pco-loop-2", "evaluate-2", "export-recommendations-2"):
        artifacts = json.loads((run / task / "executor_output.json").read_text())["artifacts"]
        versions = {name: {a.get("metadata", {}).get("coea_version") for a in body["artifacts"]}
                    for name, body in artifacts.items() if name not in ("metrics", "stats")}
        assert versions and all(v == {coea.__version__} for v in versions.values()), (task, versions)
    # a second run on the same period would apply its PCO update twice: refused in load-models, nothing changes
    committed = read_pointer(state)
    with pytest.raises(CoeaInputError, match=r"^step load-models: the state at .* already holds the update from "
                                             r"this data \(models .*\); a run on it committed before: "):
        run_recurring_locally(period, tmp_path / "again", state, rec_k=5)
    assert read_pointer(state) == committed


def test_recurring_without_state_fails_in_load_state(tmp_path: Path) -> None:
    """A step failing on bad input is that CoeaInputError (the CLI's one line, exit 2), naming the step."""
    from coea.errors import CoeaInputError

    with pytest.raises(CoeaInputError, match=r"^step load-state: .*no pipeline state at .*run the coea_training"):
        run_recurring_locally(tiny_config(), tmp_path / "run", str(tmp_path / "no-state"))


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
