"""The stage functions behind the components (coea.stages), called directly, without kfp."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from coea.config import EvalConfig, SplitConfig
from coea.data.prepared import read_prepared
from coea.errors import CoeaInputError
from coea.layout import ArtifactDirs
from coea.stages import (
    UiParameters,
    config_from_json,
    drift_config_from_json,
    pipeline_arguments,
    run_build_profiles,
    run_evaluate_stage,
    run_monitor_drift,
    run_prepare_data,
    run_recommend,
    run_sft_stage,
)
from tests.helpers import assert_artifact_page
from tests.pipeline.pipeline_helpers import parquet_config, shifted_log, tiny_config


def test_pipeline_arguments_round_trip() -> None:
    cfg = tiny_config(split=SplitConfig(n_future=7), eval=EvalConfig(methods=["pop", "markov+x"], ks=[3]))
    args = pipeline_arguments(cfg)
    assert set(args) == {"data_config", "split_config", "dsie_config", "eval_config", "llm_config", "pco_config",
                         "device"}
    assert set(json.loads(args["data_config"])) == {"data", "synthetic"}
    device = args.pop("device")
    assert config_from_json(*args.values(), device=device) == cfg
    assert config_from_json('{"split": {"n_future": 3}}').split.n_future == 3  # other sections: defaults


def test_every_config_section_is_a_pipeline_parameter_or_pending() -> None:
    """A new RunConfig section must get a pipeline parameter (CONFIG_PARAMS) or be listed as pending."""
    import dataclasses

    from coea.config import RunConfig
    from coea.stages import CONFIG_PARAMS, PENDING_SECTIONS

    carried = [s for sections in CONFIG_PARAMS.values() for s in sections] + ["device"]
    assert sorted(carried + list(PENDING_SECTIONS)) == sorted(f.name for f in dataclasses.fields(RunConfig))


@pytest.mark.parametrize(("texts", "message"), [
    (["not json"], "not JSON"),
    (["[1, 2]"], "must be a JSON object"),
    (['{"split": {}}', '{"split": {}}'], "given in two"),
    (['{"spilt": {}}'], "unknown section"),
    (['{"split": {"n_futur": 3}}'], "unknown key"),
    (['{"split": {"n_future": 0}}'], "n_future must be > 0"),
])
def test_config_from_json_errors(texts: list[str], message: str) -> None:
    with pytest.raises(CoeaInputError, match=message):
        config_from_json(*texts)


def test_drift_config_threshold_overrides_json() -> None:
    assert drift_config_from_json('{"threshold": 0.9, "min_users": 10}', threshold=0.25).threshold == 0.25
    with pytest.raises(CoeaInputError, match="threshold"):
        drift_config_from_json("{}", threshold=1.5)


def test_prepared_dir_round_trips_log_and_truth(fitted) -> None:
    loaded = read_prepared(fitted.data)
    assert loaded.source == "synthetic"
    assert loaded.truth is not None and len(loaded.truth.groups) == 120
    assert loaded.truth.affinity.shape == (120, 20)
    stats = json.loads((fitted.data / "stats.json").read_text())
    assert stats["users"] == 120 and stats["interactions"] == len(loaded.interactions)
    assert json.loads((fitted.data / "data_config.json").read_text())["synthetic"]["n_users"] == 120


def test_prepare_csv_log_has_no_truth(tmp_path: Path, fitted) -> None:
    shifted = shifted_log(fitted.data, tmp_path / "log.parquet")
    result = run_prepare_data(parquet_config(shifted), tmp_path / "data")
    assert result.metrics()["users"] == 120
    assert not (tmp_path / "data" / "ground_truth").exists() and read_prepared(tmp_path / "data").truth is None


def test_typed_data_spec_replaces_the_data_configs(tmp_path: Path, fitted) -> None:
    """prepare_data's way: data_config names the synthetic generator, the typed ``data_spec`` a parquet log; the
    log is read, and the prepared dir's config records the spec it was read from."""
    shifted = shifted_log(fitted.data, tmp_path / "log.parquet")
    cfg = config_from_json(pipeline_arguments(fitted.cfg)["data_config"],
                           ui=UiParameters(data_spec=f" parquet:{shifted} "))
    result = run_prepare_data(cfg, tmp_path / "data")
    assert result.source != "synthetic" and read_prepared(tmp_path / "data").truth is None
    assert json.loads((tmp_path / "data" / "data_config.json").read_text())["data"]["spec"] == f"parquet:{shifted}"


def test_read_prepared_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CoeaInputError, match="interactions.parquet not found"):
        read_prepared(tmp_path)


def test_evaluate_stage_equals_the_in_process_flow(tmp_path: Path, fitted) -> None:
    """The pipeline's evaluation (DSIE fitted in one step, loaded in another) gives the flow's numbers."""
    from coea.flow import Step, run_flow
    from coea.layout import RunLayout

    cfg = replace(fitted.cfg, eval=EvalConfig(methods=["pop", "markov+x", "sasrec", "group_pop_novel"]))
    stage = run_evaluate_stage(cfg, fitted.data, tmp_path / "eval", ArtifactDirs(dsie=fitted.dsie))
    flow = run_flow(cfg, RunLayout(tmp_path / "flow"))
    assert flow.steps == [Step.PREPARE, Step.DSIE, Step.EVALUATE]  # only what the methods need
    assert stage.metrics["methods"] == flow.results[Step.EVALUATE].metrics["methods"]
    page = stage.paths["report_html"].read_text()
    assert_artifact_page(page)
    assert page.count("<svg") == 1 and all(f"<td>{m}</td>" in page for m in cfg.eval.methods)
    assert stage.paths["metrics_md"].read_text().startswith("# Evaluation on synthetic")


def test_recommend_group_pop_novel(tmp_path: Path, fitted) -> None:
    result = run_recommend(fitted.cfg, fitted.data, ArtifactDirs(dsie=fitted.dsie), "group_pop_novel", 5,
                           tmp_path / "recs.parquet")
    recs = pd.read_parquet(result.path)
    assert list(recs.columns) == ["user_id", "rank", "category", "score"]
    assert result.n_users == 120 and result.n_rows == len(recs)
    ranks = recs.groupby("user_id")["rank"].apply(list)
    assert all(r == list(range(1, len(r) + 1)) for r in ranks) and ranks.map(len).max() == 5
    assert (recs.groupby("user_id")["score"].diff().dropna() <= 0).all()  # best first
    log = read_prepared(fitted.data).interactions
    seen = set(zip(log["user_id"], log["category"], strict=True))
    assert not any((u, c) in seen for u, c in zip(recs["user_id"], recs["category"], strict=True))  # novel only
    # the score is the user's group's count of the category (plus a tiny popularity back-off)
    groups = pd.read_parquet(fitted.dsie / "groups.parquet").set_index("user_id")["group_id"]
    first = recs.iloc[0]
    members = groups[groups == groups[first["user_id"]]].index
    count = int(((log["user_id"].isin(members)) & (log["category"] == first["category"])).sum())
    assert first["score"] == pytest.approx(count, abs=1e-3)


def test_recommend_rejects_unknown_method(tmp_path: Path, fitted) -> None:
    with pytest.raises(CoeaInputError, match="unknown method"):
        run_recommend(fitted.cfg, fitted.data, ArtifactDirs(dsie=fitted.dsie), "coea_llm", 5, tmp_path / "r.parquet")
    assert not (tmp_path / "r.parquet").exists()


def test_build_profiles_keeps_groups_and_rewrites_profiles(tmp_path: Path, fitted) -> None:
    shifted = shifted_log(fitted.data, tmp_path / "log.parquet")
    run_prepare_data(parquet_config(shifted), tmp_path / "data")
    result = run_build_profiles(fitted.cfg, tmp_path / "data", fitted.dsie, tmp_path / "dsie")
    before = pd.read_parquet(fitted.dsie / "groups.parquet")
    assert pd.read_parquet(tmp_path / "dsie" / "groups.parquet").equals(before)
    old = json.loads((fitted.dsie / "profiles.json").read_text())
    new = json.loads((tmp_path / "dsie" / "profiles.json").read_text())
    assert set(new) == set(old) and result.refreshed == sorted(old) and result.kept == []
    gid = result.refreshed[0]
    assert new[gid]["csid"] == old[gid]["csid"]
    assert new[gid]["stats"]["top_categories"] != old[gid]["stats"]["top_categories"]  # categories rotated
    assert (tmp_path / "dsie" / "encoder" / "encoder.pt").is_file()  # the weights travel along


def test_monitor_drift_same_vs_shifted(tmp_path: Path, fitted) -> None:
    cfg = drift_config_from_json("{}", threshold=0.5)
    same = run_monitor_drift(cfg, fitted.data, fitted.data, fitted.dsie, tmp_path / "same", split=fitted.cfg.split)
    assert same.drift_share == 0.0 and not same.drifted
    run_prepare_data(parquet_config(shifted_log(fitted.data, tmp_path / "log.parquet")), tmp_path / "shifted")
    moved = run_monitor_drift(cfg, fitted.data, tmp_path / "shifted", fitted.dsie, tmp_path / "moved",
                              split=fitted.cfg.split)
    assert moved.drifted and moved.drift_share >= 0.5
    assert "ref_popularity" in moved.drifted_columns and "group" not in moved.drifted_columns
    assert moved.html_path is not None and moved.html_path.stat().st_size > 10_000


def test_evaluate_stage_without_dsie_methods_needs_no_dsie(tmp_path: Path, fitted) -> None:
    """... and the evaluate step's typed PCO parameters, merged into its config, are in the config.json it
    writes (the config the PCO step ran with)."""
    args = pipeline_arguments(replace(fitted.cfg, eval=EvalConfig(methods=["pop", "markov"], ks=[5])))
    cfg = config_from_json(*(args[k] for k in ("split_config", "dsie_config", "eval_config", "llm_config",
                                               "pco_config")), ui=UiParameters(pco_rounds=5, pco_alpha=0.0))
    result = run_evaluate_stage(cfg, fitted.data, tmp_path)
    assert set(result.metrics["methods"]) == {"pop", "markov"} and "pop.C-H@5" in result.main
    saved = json.loads(result.paths["config"].read_text())
    assert (saved["pco"]["rounds"], saved["pco"]["dpo"]["alpha"]) == (5, 0.0)
    assert_artifact_page(result.paths["report_html"].read_text())



def test_sft_stage_trains_one_model_per_call(llm_dirs: dict[str, Path]) -> None:
    for name, other in (("novelty", "relevance"), ("relevance", "novelty")):
        d = llm_dirs[name]
        assert (d / name / "config.json").is_file() and not (d / other).exists()
        sft = json.loads((d / f"sft_metrics_{name}.json").read_text())
        assert set(sft) == {name, "config"} and sft[name]["examples"] > 0 and sft[name]["steps"] > 0


def test_warm_started_relevance_llm_starts_from_the_trained_novelty_llm(tmp_path: Path, fitted, llm_dirs) -> None:
    """``llm.relevance_init: novelty``: the R-LLM step, alone as the pipeline's sft-relevance step, copies the N-LLM
    of the sft-novelty step (``novelty_dir``) and fine-tunes that copy. Seen through the input embeddings (scratch
    models: every weight trains): the default (scratch) R-LLM's are unrelated to the N-LLM's, a warm-started one's
    stay close to them and still moved."""
    import torch

    from coea.llm.models import load_bundle

    assert fitted.cfg.llm.relevance_init == "scratch"
    cfg = replace(fitted.cfg, llm=replace(fitted.cfg.llm, relevance_init="novelty"))
    result = run_sft_stage(cfg, fitted.data, fitted.dsie, tmp_path / "warm", which=("relevance",),
                           novelty_dir=llm_dirs["novelty"] / "novelty")
    assert result.sft["relevance"]["steps"] > 0 and 0.0 <= result.sft["relevance"]["heldout_auc"] <= 1.0

    def embeddings(path: Path) -> torch.Tensor:
        return load_bundle(path).model.get_input_embeddings().weight.detach()

    novelty = embeddings(llm_dirs["novelty"] / "novelty")
    warm, scratch = embeddings(tmp_path / "warm" / "relevance"), embeddings(llm_dirs["relevance"] / "relevance")
    assert warm.shape == novelty.shape == scratch.shape
    assert (warm - novelty).norm() < 0.5 * (scratch - novelty).norm()
    assert not torch.equal(warm, novelty)  # fine-tuned, not merely copied


def test_sft_relevance_step_compiled_without_the_novelty_input_refuses_a_warm_start(tmp_path: Path, fitted) -> None:
    """The sft-relevance component as the default settings compile it (no N-LLM input: the SFT steps run side by
    side) stops before training when a run's llm_config asks for ``relevance_init: novelty``, and says which
    deployment setting wires the input."""
    from types import SimpleNamespace

    from components.functions import sft_relevance

    out = SimpleNamespace(path=str(tmp_path / "model"), metadata={})
    warm = json.dumps({"llm": {"relevance_init": "novelty"}})
    with pytest.raises(CoeaInputError, match=r"no N-LLM input.*relevance_from_novelty: true"):
        sft_relevance(data=SimpleNamespace(path=str(fitted.data)), dsie=SimpleNamespace(path=str(fitted.dsie)),
                      split_config="{}", dsie_config="{}", llm_config=warm, model=out,
                      metrics=SimpleNamespace(log_metric=None))
    assert not (tmp_path / "model").exists()


def test_warm_started_relevance_llm_without_a_trained_novelty_llm_is_a_clear_error(tmp_path: Path, fitted) -> None:
    cfg = replace(fitted.cfg, llm=replace(fitted.cfg.llm, relevance_init="novelty"))
    with pytest.raises(CoeaInputError, match=r"no trained N-LLM to start the R-LLM from.*relevance_init: scratch"):
        run_sft_stage(cfg, fitted.data, fitted.dsie, tmp_path / "llm", which=("relevance",))
    assert not (tmp_path / "llm" / "relevance").exists()


def test_sft_stage_rejects_unknown_model(tmp_path: Path, fitted) -> None:
    with pytest.raises(ValueError, match="which must name"):
        run_sft_stage(fitted.cfg, fitted.data, fitted.dsie, tmp_path, which=("critic",))


def test_an_unmet_need_is_a_clear_error_never_a_silent_training(tmp_path: Path, fitted) -> None:
    cfg = replace(fitted.cfg, eval=EvalConfig(methods=["pop", "nllm_sft+x"], ks=[5]))
    with pytest.raises(CoeaInputError, match=r"\['nllm_sft\+x'\] need the llms artifact"):
        run_evaluate_stage(cfg, fitted.data, tmp_path, ArtifactDirs(dsie=fitted.dsie))
    assert not (tmp_path / "metrics.json").exists() and not list(tmp_path.glob("**/*.safetensors"))


def test_evaluate_stage_with_trained_llms(tmp_path: Path, fitted, llm_dirs) -> None:
    """Two SFT steps (one model each), loaded by evaluate from their two dirs."""
    cfg = replace(fitted.cfg, eval=EvalConfig(methods=["nllm_sft", "nllm_sft+x", "dual_best_of_n"], ks=[5]))
    dirs = ArtifactDirs(dsie=fitted.dsie, llm=(llm_dirs["novelty"], llm_dirs["relevance"]))
    loaded = run_evaluate_stage(cfg, fitted.data, tmp_path / "a", dirs)
    assert set(loaded.metrics["methods"]) == set(cfg.eval.methods)
    assert loaded.main["nllm_sft+x.NCP@5"] == 1.0  # the exploration slot never repeats a seen category


def test_recommend_nllm_sft_x_is_novel(tmp_path: Path, fitted, llm_dirs) -> None:
    result = run_recommend(fitted.cfg, fitted.data, ArtifactDirs(dsie=fitted.dsie, llm=tuple(llm_dirs.values())),
                           "nllm_sft+x", 5, tmp_path / "recs.parquet")
    recs = pd.read_parquet(result.path)
    assert result.n_users == 120 and recs.groupby("user_id").size().max() == 5
    log = read_prepared(fitted.data).interactions
    seen = set(zip(log["user_id"], log["category"], strict=True))
    assert not any((u, c) in seen for u, c in zip(recs["user_id"], recs["category"], strict=True))


def test_load_llms_names_the_missing_model(tmp_path: Path, fitted, llm_dirs) -> None:
    from coea.stages import load_llms

    with pytest.raises(CoeaInputError, match="no relevance/ model"):
        load_llms([llm_dirs["novelty"]], fitted.dsie)


@pytest.mark.parametrize("which", [("novelty",), ("relevance",)])
def test_an_sft_step_logs_the_examples_of_its_own_model_only(tmp_path: Path, fitted, monkeypatch, caplog,
                                                             which) -> None:
    """Each SFT step builds only its own model's examples, and the log said "sft data: 2644 novelty and 0
    relevance examples", then "0 novelty and 1258 relevance": a step names its own model's count only. (Training
    stubbed: the count is logged before it.)"""
    import logging

    from coea.llm import run as llm_run
    from coea.llm.sft import SftResult

    monkeypatch.setattr(llm_run, "train_sft", lambda *args, **kwargs: SftResult(steps=1))
    monkeypatch.setattr(llm_run, "heldout_auc", lambda *args, **kwargs: {})
    caplog.set_level(logging.INFO, logger="coea")
    run_sft_stage(fitted.cfg, fitted.data, fitted.dsie, tmp_path / "llm", which=which)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sft data:")]
    other = {"novelty": "relevance", "relevance": "novelty"}[which[0]]
    assert f" {which[0]} examples" in line and other not in line, line
    assert int(line.split()[2]) > 0


def test_the_pco_rounds_use_the_configs_long_tail_share(tmp_path: Path, fitted, llm_dirs, monkeypatch) -> None:
    """The per-round metrics (CLTP@K) used 0.8 whatever ``eval.long_tail_share`` said, while the evaluation used the
    setting: `coea ablate`'s `w/o R-LLM` row (the SFT model, round 0) showed CLTP@10 .36 beside `nllm_sft`'s .70."""
    import coea.stages.pco as pco_stage

    seen = {}

    class Stop(Exception):
        pass

    def evaluator(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(pco_stage, "SplitEvaluator", evaluator)
    cfg = replace(fitted.cfg, eval=replace(fitted.cfg.eval, long_tail_share=0.5))
    with pytest.raises(Stop):
        pco_stage.run_pco_stage(cfg, fitted.data, fitted.dsie, (llm_dirs["novelty"], llm_dirs["relevance"]),
                                tmp_path / "pco")
    assert seen["long_tail_share"] == 0.5
