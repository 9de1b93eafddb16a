"""Every run parameter is checked by prepare_data, the pipelines' first cheap step (coea.stages.run_parameters),
with one line naming the run-form parameter, before any GPU step runs."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from coea.config import RunConfig
from coea.device import cpu_step_device
from coea.errors import CoeaInputError
from coea.stages import config_from_json, drift_config_from_json, pipeline_arguments
from coea.stages.run_parameters import RunParameters, check_log_parameters, check_run_parameters, on_volume
from coea.state import run_export
from coea.store import PublishConfig
from components import functions
from pipelines.definitions import PARAMETER_HELP

ROOT = Path(__file__).resolve().parents[2]
ARGS = pipeline_arguments(RunConfig())  # data_config names data.spec: synthetic, as every local run passes it


def check(**changes) -> RunConfig:
    return check_run_parameters(RunParameters(**{**ARGS, "state_uri": "/tmp/coea-state", **changes}))


def refused(message: str, **changes) -> str:
    with pytest.raises(CoeaInputError) as err:
        check(**changes)
    text = str(err.value)
    assert message in text and "\n" not in text
    return text


def test_the_local_runs_arguments_pass() -> None:
    assert check().data.spec == "synthetic"
    assert check(data_config="{}", data_spec="synthetic").data.spec == "synthetic"  # a demo run, said explicitly
    assert check(data_config="{}", data_spec="parquet:gs://my-bucket/events/").data.spec.startswith("parquet:")


def test_a1_an_empty_data_spec_is_refused() -> None:
    """The default data source is the synthetic generator: a run form without data_spec would overwrite the state."""
    text = refused("parameter data_spec: empty", data_config="{}", data_spec="")
    assert "synthetic" in text
    refused("parameter data_spec: empty", data_config=json.dumps({"synthetic": {"seed": 1}}), data_spec="  ")
    refused("parameter data_spec: unknown data spec 'parket:gs://b/x'", data_spec="parket:gs://b/x")


@pytest.mark.parametrize("uri", ["gs:/my-bucket/x", "bucket/prefix", "", "gs://My_Bucket/x"])
def test_a2_a_state_uri_that_is_not_one_is_refused(uri: str) -> None:
    refused("parameter state_uri:", state_uri=uri)


def test_a2_in_a_pod_the_state_must_be_on_a_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check(state_uri="gs://my-bucket/coea/state")
    assert not on_volume(Path("/no-such-dir-coea/state"))  # the container's root file system
    assert on_volume(Path("/proc/no-such-dir-coea/state"))  # a mount of its own on every Linux (as a volume is)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setattr("coea.stages.run_parameters.on_volume", lambda path: False)
    refused("parameter state_uri: '/tmp/x' is not on a mounted volume", state_uri="/tmp/x")
    monkeypatch.setattr("coea.stages.run_parameters.on_volume", lambda path: True)
    assert check(state_uri="/cache/coea-state")


@pytest.mark.parametrize(("param", "section", "owner"), [
    ("data_config", "eval", "eval_config"), ("data_config", "split", "split_config"),
    ("eval_config", "pco", "pco_config"), ("pco_config", "device", "the device parameter")])
def test_a3_a_section_in_the_wrong_parameter_is_refused(param: str, section: str, owner: str) -> None:
    own = json.loads(ARGS[param])
    text = refused(f"parameter {param}: section '{section}' does not belong",
                   **{param: json.dumps({**own, section: {}})})
    assert f"move it to {owner}" in text


def test_a4_a_bad_export_uri_is_refused_first(tmp_path: Path) -> None:
    refused("parameter gcs_export_uri: not a gs:// URI", gcs_export_uri="s3://my-bucket/recs")
    seen = tmp_path / "seen.parquet"
    pd.DataFrame({"user_id": ["u"], "category": ["c"]}).to_parquet(seen)
    state = tmp_path / "state"
    with pytest.raises(CoeaInputError, match="not a gs:// URI"):
        run_export(PublishConfig(), tmp_path / "recs.parquet", str(state), tmp_path / "kv.sqlite",
                   gcs_uri="s3://my-bucket/recs", seen=seen)
    assert not state.exists()  # neither the store nor seen.parquet was written


@pytest.mark.parametrize(("changes", "message"), [
    ({"rec_k": 0}, "parameter rec_k: must be >= 1, got 0"),
    ({"rec_method": "coea_seqx"}, "parameter rec_method: unknown method 'coea_seqx'"),
    ({"eval_config": json.dumps({"eval": {"methods": ["pop", "markovx"]}})},
     "parameter eval_config: unknown method 'markovx' in eval.methods"),
    ({"eval_config": json.dumps({"eval": {"method": ["pop"]}})}, "parameter eval_config [eval]: unknown key"),
    ({"pco_rounds": -1}, "parameter pco_rounds must be >= 0"),
    ({"pco_config": json.dumps({"pco": {"k": 0}})}, "parameter pco_config [pco]: k must be > 0"),
    ({"llm_config": json.dumps({"llm": {"novelty": {"epochs": 0}}})}, "parameter llm_config [llm].novelty: epochs"),
    ({"split_config": json.dumps({"split": {"n_future": 0}})}, "parameter split_config [split]: n_future"),
    ({"dsie_config": "[]"}, "parameter dsie_config: must be a JSON object"),
    ({"device": "gpu"}, "parameter device: must be one of auto, cpu, cuda or cuda:N, got 'gpu'"),
    ({"drift_config": "{}", "drift_threshold": 0.0}, "parameter drift_threshold: must be in (0, 1], got 0.0"),
    ({"drift_config": "[]"}, "parameter drift_config: must be a JSON object, got list"),
])
def test_b_late_failures_are_refused_first(changes: dict, message: str) -> None:
    text = refused(message, **changes)
    assert "--" not in text and "pipeline parameter" not in text  # the run form has no CLI flags


def test_b_cut_offs_above_the_logs_categories_name_the_parameter() -> None:
    cfg = config_from_json(json.dumps({"eval": {"ks": [5, 50]}}))
    with pytest.raises(CoeaInputError, match=r"^parameter eval_config, option eval.ks: \[5, 50\] has K=50") as err:
        check_log_parameters(cfg, 20)
    assert "--k" not in str(err.value)
    with pytest.raises(CoeaInputError, match="^parameter pco_config, option pco.k"):
        check_log_parameters(config_from_json(json.dumps({"pco": {"k": 30}})), 20)
    check_log_parameters(config_from_json(json.dumps({"eval": {"ks": [5, 20]}})), 20)


def test_b_cuda_means_auto_on_the_cpu_steps() -> None:
    assert [cpu_step_device(d) for d in ("cuda", "CUDA:1", "cpu", "auto")] == ["auto", "auto", "cpu", "auto"]
    for step in (functions.evaluate, functions.recommend):
        assert "device=cpu_step_device(device)" in inspect.getsource(step)


def test_prepare_data_gets_every_run_parameter() -> None:
    """Both compiled pipelines wire every run parameter into prepare-data (drift ones: recurring only)."""
    for name in ("coea_training", "coea_recurring"):
        spec = next(yaml.safe_load_all((ROOT / "pipelines" / f"{name}.yaml").read_text()))
        params = set(spec["root"]["inputDefinitions"]["parameters"])
        wired = spec["root"]["dag"]["tasks"]["prepare-data"]["inputs"]["parameters"]
        assert params <= set(wired), params - set(wired)
        assert wired["recurring"]["runtimeValue"]["constant"] is (name == "coea_recurring")


def test_c_config_errors_name_the_parameter_once() -> None:
    with pytest.raises(CoeaInputError) as err:
        config_from_json(json.dumps({"eval": {"ks": [0]}}))
    assert str(err.value).startswith("parameter eval_config [eval]: ks must be") and "pipeline parameter" not in str(
        err.value)
    for threshold in (0.0, 1.5):
        with pytest.raises(CoeaInputError) as err:
            drift_config_from_json("{}", threshold=threshold)
        assert str(err.value).startswith("parameter drift_threshold: must be in (0, 1]")
        assert "drift_config" not in str(err.value)
    with pytest.raises(CoeaInputError, match="^parameter drift_config: must be a JSON object, got list"):
        drift_config_from_json("[]", threshold=0.5)


def test_a5_the_run_form_says_what_0_and_negative_mean() -> None:
    assert "0 does NOT skip PCO" in PARAMETER_HELP["pco_rounds"]
    assert "any negative value keeps pco_config's alpha" in PARAMETER_HELP["pco_alpha"]


def test_a_bad_parameter_fails_the_local_pipeline_in_prepare_data(tmp_path: Path) -> None:
    """End to end with kfp.local: rec_k=0 fails the first step; nothing trains and nothing is written (the run
    folder this call created goes with its step log, ``pipelines.local.unfinished``)."""
    from pipelines.local import run_training_locally
    from tests.pipeline.pipeline_helpers import tiny_config

    with pytest.raises(Exception, match="step prepare-data: parameter rec_k: must be >= 1") as err:
        run_training_locally(tiny_config(), tmp_path / "run", rec_k=0)
    assert "dsie" not in str(err.value)
    assert not (tmp_path / "run").exists() and list(tmp_path.iterdir()) == []
