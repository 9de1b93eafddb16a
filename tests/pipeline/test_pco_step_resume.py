"""A preempted pco_loop step resumes from the rounds it mirrored under ``state_uri``: the component function run on
the tiny fitted log and SFT models, killed right after round 1 is mirrored, then run again (a retry: a new pod, an
empty output dir, the same run id and task name) resumes at round 2 without recomputing round 1, ends with the models
and metrics of an uninterrupted run, and deletes its checkpoints; the compiled pipelines wire state_uri, the run
id and the task name (each one placeholder) into every pco-loop task."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import coea.pco.loop as pco_loop_module
import coea.stages.pco_remote as pco_remote
from coea.stages import pipeline_arguments
from components.functions import pco_loop
from tests.pipeline.compiled_spec import executor_tasks, read_spec
from tests.pipeline.pipeline_helpers import Preempted, artifact

TIMING = {"novelty_refresh_s", "sample_s", "score_s", "dpo_s", "reeval_s", "refresh_s", "evaluate_s", "round_s"}
KEY = {"run_id": {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}},
       "task_name": {"runtimeValue": {"constant": "{{$.pipeline_task_name}}"}}}  # each resolved by the backend


def _step(fitted, llm_dirs, out: Path, state: Path, run: str) -> Path:
    """pco_loop as a pod runs it, its outputs under ``out``, with small rounds (8 users' prompts, one DPO epoch, 60
    refresh examples: what a retry resumes does not depend on the rounds' size); returns its ``model`` dir (the PCO
    dir)."""
    pco = fitted.cfg.pco
    pco = replace(pco, users_per_round=8, dpo=replace(pco.dpo, epochs=1.0),
                  relevance_refresh=replace(pco.relevance_refresh, max_examples=60))
    args = pipeline_arguments(replace(fitted.cfg, pco=pco))
    pco_loop(data=artifact(fitted.data), dsie=artifact(fitted.dsie), novelty=artifact(llm_dirs["novelty"]),
             relevance=artifact(llm_dirs["relevance"]), split_config=args["split_config"],
             dsie_config=args["dsie_config"], llm_config=args["llm_config"], pco_config=args["pco_config"],
             model=artifact(out / "model"), metrics=SimpleNamespace(log_metric=lambda name, value: None),
             curves=artifact(out / "curves.html"), final_novelty=artifact(out / "final_novelty"),
             final_relevance=artifact(out / "final_relevance"), device="cpu", state_uri=str(state),
             run_id=run, task_name="pco-loop")
    return out / "model"


def _rows(pco_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING}
            for row in json.loads((pco_dir / "pco_metrics.json").read_text())["rounds"]]


def test_a_preempted_pco_step_resumes_from_its_mirrored_rounds(tmp_path: Path, fitted, llm_dirs, monkeypatch,
                                                               caplog) -> None:
    torch.set_num_threads(1)
    state = tmp_path / "state"
    full = _step(fitted, llm_dirs, tmp_path / "full", state, "joba")
    assert not (state / "checkpoints").exists()  # the step succeeded: its checkpoints are deleted

    real_upload = pco_remote.upload_round

    def upload_then_die(store, prefix, out_dir, r):
        real_upload(store, prefix, out_dir, r)
        if r == 1:
            raise Preempted  # the pod is gone right after round 1 reached the store

    monkeypatch.setattr(pco_remote, "upload_round", upload_then_die)
    with pytest.raises(Preempted):
        _step(fitted, llm_dirs, tmp_path / "attempt1", state, "jobb")
    mirrored = state / "checkpoints" / "jobb-pco-loop"
    assert json.loads((mirrored / "pco_state.json").read_text())["completed_rounds"] == 1
    assert (mirrored / "rounds" / "round_001" / "novelty").is_dir()

    rounds_run: list[int] = []
    real_round = pco_loop_module.run_round
    monkeypatch.setattr(pco_loop_module, "run_round",
                        lambda ctx, r, *a, **kw: (rounds_run.append(r), real_round(ctx, r, *a, **kw))[1])
    caplog.set_level(logging.INFO, logger="coea")
    resumed = _step(fitted, llm_dirs, tmp_path / "attempt2", state, "jobb")  # the retry: a new pod
    assert rounds_run == [2]  # round 1 came from the store, not recomputed
    assert f"resuming PCO from round 1 of 2 (checkpoints at {state}/checkpoints/jobb-pco-loop/)" in caplog.messages
    assert not (state / "checkpoints").exists()

    assert [row["round"] for row in _rows(full)] == [0, 1, 2] and _rows(resumed) == _rows(full)
    for name in ("novelty", "relevance"):
        a, b = (load_file(d / name / "model.safetensors") for d in (tmp_path / "full" / f"final_{name}",
                                                                    tmp_path / "attempt2" / f"final_{name}"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (resumed / "rounds" / "round_001" / "novelty").is_dir()  # the output dir holds every round


@pytest.mark.parametrize("pipeline", ["coea_training", "coea_recurring"])
def test_every_pco_task_gets_the_state_uri_and_its_run_id_and_task_name(default_compiled, pipeline) -> None:
    spec = read_spec(default_compiled["pipelines"] / f"{pipeline}.yaml")
    tasks = {name: task for name, task in executor_tasks(spec).items()
             if task["componentRef"]["name"].startswith("comp-pco-loop")}
    assert len(tasks) == (2 if pipeline == "coea_recurring" else 1)  # one per branch: distinct task names
    for name, task in tasks.items():
        params = task["inputs"]["parameters"]
        assert {k: params[k] for k in KEY} == KEY, name
        assert params["state_uri"]["componentInputParameter"] in ("state_uri", "pipelinechannel--state_uri"), name
