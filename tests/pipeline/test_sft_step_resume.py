"""A preempted SFT step resumes from the checkpoint it mirrored under ``state_uri``: the sft_novelty component
function run on the tiny fitted log with a checkpoint after every step, killed right after its third checkpoint
reached the store, then run again (a retry: a new pod, an empty output dir, the same run id and task name)
downloads that checkpoint, resumes at its step, ends with the model of an uninterrupted run and deletes the
mirror; the compiled pipelines wire state_uri, the run id and the task name (each one placeholder) into every SFT
task."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import coea.stages.sft_remote as sft_remote
from coea.stages import pipeline_arguments
from components.functions import sft_novelty
from tests.pipeline.compiled_spec import executor_tasks, read_spec
from tests.pipeline.pipeline_helpers import Preempted, artifact

KEY = {"run_id": {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}},
       "task_name": {"runtimeValue": {"constant": "{{$.pipeline_task_name}}"}}}  # each resolved by the backend


def _step(cfg, fitted, out: Path, state: Path, run: str) -> Path:
    """sft_novelty as a pod runs it, its output under ``out``; returns the trained N-LLM's dir."""
    args = pipeline_arguments(cfg)
    sft_novelty(data=artifact(fitted.data), dsie=artifact(fitted.dsie), split_config=args["split_config"],
                dsie_config=args["dsie_config"], llm_config=args["llm_config"], model=artifact(out),
                metrics=SimpleNamespace(log_metric=lambda name, value: None), device="cpu", state_uri=str(state),
                run_id=run, task_name="sft-novelty")
    return out / "novelty"


def test_a_preempted_sft_step_resumes_from_its_mirrored_checkpoint(tmp_path: Path, fitted, monkeypatch,
                                                                   caplog) -> None:
    torch.set_num_threads(1)
    # a checkpoint after every step, 8 steps (a seeded sample of 256 examples): what a retry resumes from does not
    # depend on how long the training is
    novelty = replace(fitted.cfg.llm.novelty, checkpoint_minutes=1e-9, max_examples=256)
    cfg = replace(fitted.cfg, llm=replace(fitted.cfg.llm, novelty=novelty))
    state = tmp_path / "state"
    full = _step(cfg, fitted, tmp_path / "full", state, "joba")
    assert not (state / "checkpoints").exists() and not (tmp_path / "full" / "sft_checkpoints").exists()
    steps = json.loads((tmp_path / "full" / "sft_metrics_novelty.json").read_text())["novelty"]["steps"]
    assert steps >= 5

    real_upload = sft_remote.upload_checkpoint
    uploaded: list[str] = []

    def upload_then_die(store, prefix, name, folder):
        real_upload(store, prefix, name, folder)
        uploaded.append(folder.name)
        if len(uploaded) == 3:
            raise Preempted  # the pod is gone right after its third checkpoint reached the store

    monkeypatch.setattr(sft_remote, "upload_checkpoint", upload_then_die)
    with pytest.raises(Preempted):
        _step(cfg, fitted, tmp_path / "attempt1", state, "jobb")
    mirrored = state / "checkpoints" / "jobb-sft-novelty" / "novelty"
    assert json.loads((mirrored / "latest.json").read_text()) == {"checkpoint": "checkpoint-3"}
    assert sorted(p.name for p in mirrored.iterdir()) == ["checkpoint-3", "fingerprint.txt", "latest.json"]

    retried: list[str] = []

    def upload(store, prefix, name, folder):
        real_upload(store, prefix, name, folder)
        retried.append(folder.name)

    monkeypatch.setattr(sft_remote, "upload_checkpoint", upload)
    caplog.set_level(logging.INFO, logger="coea")
    resumed = _step(cfg, fitted, tmp_path / "attempt2", state, "jobb")  # the retry: a new pod
    assert any(m.startswith("novelty sft: resuming from step 3 ") for m in caplog.messages), caplog.messages
    assert retried[:1] == ["checkpoint-4"]  # its first step was step 4: steps 1-3 were not trained again
    assert not (state / "checkpoints").exists() and not (tmp_path / "attempt2" / "sft_checkpoints").exists()
    a, b = (load_file(d / "model.safetensors") for d in (full, resumed))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert (resumed.parent / "sft_metrics_novelty.json").is_file()


@pytest.mark.parametrize("pipeline", ["coea_training", "coea_recurring"])
def test_every_sft_task_gets_the_state_uri_and_its_run_id_and_task_name(default_compiled, pipeline) -> None:
    spec = read_spec(default_compiled["pipelines"] / f"{pipeline}.yaml")
    tasks = {name: task for name, task in executor_tasks(spec).items()
             if task["componentRef"]["name"].startswith(("comp-sft-novelty", "comp-sft-relevance"))}
    assert len(tasks) == 2
    for name, task in tasks.items():
        params = task["inputs"]["parameters"]
        assert {k: params[k] for k in KEY} == KEY, name
        assert params["state_uri"]["componentInputParameter"] in ("state_uri", "pipelinechannel--state_uri"), name


def test_the_n_llm_is_saved_with_its_lineage_before_the_r_llm_trains(tmp_path: Path, fitted, monkeypatch) -> None:
    """Before: both models were written after the second SFT, so a failure in the R-LLM's lost the N-LLM's."""
    import coea.llm.run
    from coea import lineage
    from coea.stages import run_sft_stage

    torch.set_num_threads(1)
    real = coea.llm.run.train_sft

    def n_llm_only(cfg, model, tokenizer, examples, *, name, **kwargs):
        if name == "relevance":
            raise Preempted
        return real(cfg, model, tokenizer, examples, name=name, **kwargs)

    monkeypatch.setattr(coea.llm.run, "train_sft", n_llm_only)
    with pytest.raises(Preempted):
        run_sft_stage(fitted.cfg, fitted.data, fitted.dsie, tmp_path / "llm")
    assert (tmp_path / "llm" / "novelty" / "model.safetensors").is_file()
    assert (tmp_path / "llm" / "sft_metrics_novelty.json").is_file()
    assert lineage.read(tmp_path / "llm" / "novelty") is not None
    assert not (tmp_path / "llm" / "relevance").exists()
