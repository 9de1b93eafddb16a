"""What a new user's walkthrough hit on the console (session 58): the "interrupted:" line of `coea train-llms` and
`coea pco` promised a resume that the run folder could not give (no checkpoint yet, no round saved), and `coea
evaluate` printed every SFT step line (68 for one N-LLM) before its table. The interrupt line now says what a
re-run does, read from what the run folder holds when the signal came; off a terminal a training's step lines come
at most once per coea.console.PLAIN_EVERY_S."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import coea as run_coea


def _run_folder(root: Path, *parts: str) -> Path:
    for part in parts:
        (root / part).mkdir(parents=True)
    return root


def _sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the CLI's handler raises KeyboardInterrupt here
    raise AssertionError("the signal did not interrupt")


def _last_line(res) -> str:
    assert res.returncode == 130, res.stderr[-2000:]
    return [line for line in res.stderr.splitlines() if line.strip()][-1]


FIRST = "no SFT checkpoint yet: the first is saved after 10 minutes of training"


@pytest.mark.parametrize(("left", "rerun"), [
    ("fingerprint", f": it trains the N-LLM from the start ({FIRST}, llm.novelty.checkpoint_minutes), then "
                    "trains the R-LLM"),
    ("checkpoint", ": it resumes the N-LLM's SFT from its checkpoint at step 300/1368, then trains the R-LLM"),
    ("novelty-saved", f": the N-LLM finished and is kept, so it trains the R-LLM from the start ({FIRST}, "
                      "llm.relevance.checkpoint_minutes)"),
], ids=["no-checkpoint-yet", "checkpoint", "novelty-finished"])
def test_an_interrupted_train_llms_says_what_its_re_run_does(tmp_path, monkeypatch, left, rerun) -> None:
    """Before: always "the same command resumes the SFT from its last checkpoint ...", also 45 s into an N-LLM whose
    folder held only its fingerprint.txt (the first checkpoint comes after 10 minutes): the re-run started over."""
    import coea.stages
    import coea.stages.sft
    from coea import lineage

    run = _run_folder(tmp_path / "run", "data", "dsie")
    finished: set[str] = set()
    monkeypatch.setattr(lineage, "check", lambda *_args, **_kwargs: None)
    monkeypatch.setattr(lineage, "histories", lambda *_args, **_kwargs: "key")
    monkeypatch.setattr(coea.stages.sft, "trained_with", lambda _llm, name, *_args: name in finished)

    def sft_stage(cfg, data, dsie, llm, which):  # as far as run_sft_stage got when the signal came
        folder = llm / "sft_checkpoints" / "novelty"
        folder.mkdir(parents=True)
        (folder / "fingerprint.txt").write_text("abc\n")
        if left == "checkpoint":
            (folder / "checkpoint-300").mkdir()
            (folder / "checkpoint-300" / "trainer_state.json").write_text(
                json.dumps({"global_step": 300, "max_steps": 1368}))
        if left == "novelty-saved":
            finished.add("novelty")
        _sigint()

    monkeypatch.setattr(coea.stages, "run_sft_stage", sft_stage)
    assert _last_line(run_coea("train-llms", "--run", str(run))) == f"interrupted: SIGINT; re-run the command{rerun}"


@pytest.mark.parametrize(("saved", "rerun"), [
    (None, " without --resume: no PCO round was saved (nothing to resume)"),
    (0, ": no PCO round of 3 finished yet, so it starts at round 1"),
    (2, " with --resume: rounds 1-2 are saved, so it continues at round 3 of 3 (without --resume it trains them "
        "again)"),
    ("other", " without --resume: the saved PCO rounds cannot be resumed: the PCO config differs from the run being "
              "resumed (rounds: 5 -> 3)"),
], ids=["no-state", "no-round", "two-rounds", "other-config"])
def test_an_interrupted_pco_says_whether_resume_continues(tmp_path, monkeypatch, saved, rerun) -> None:
    """Before: "coea pco --resume continues after the last complete round" also when no round was saved, where
    --resume is refused ("nothing to resume")."""
    import coea.stages
    from coea.pco.checkpoint import write_state
    from coea.stages.pco import resolved_pco

    run = _run_folder(tmp_path / "run", "data", "dsie", "llm")

    def pco_stage(cfg, data, dsie, llms, pco_dir, **_kwargs):
        pco = resolved_pco(cfg)
        if saved == "other":
            write_state(pco_dir, 1, [{"round": 0}, {"round": 1}], pco.__class__(**{**vars(pco), "rounds": 5}))
        elif saved is not None:
            write_state(pco_dir, saved, [{"round": r} for r in range(saved + 1)], pco)
        _sigint()

    monkeypatch.setattr(coea.stages, "run_pco_stage", pco_stage)
    assert _last_line(run_coea("pco", "--run", str(run), "--rounds", "3")) == \
        f"interrupted: SIGINT; re-run the command{rerun}"


def test_evaluate_off_a_terminal_shows_a_training_s_step_lines_at_most_once_per_interval(tmp_path,
                                                                                         monkeypatch) -> None:
    """Before: every `novelty sft step N/1368` line (68 of them), each RQ-VAE epoch line ... before the table."""
    import coea.flow
    from coea.flow import Step
    from coea.llm.sft import LogLines

    def flow(cfg, layout, **_kwargs):  # the SFT's step lines as its trainer logs them, in well under a minute
        lines, state = LogLines("novelty sft"), SimpleNamespace(global_step=0, max_steps=1368)
        for state.global_step in range(20, 1369, 20):
            lines.on_log(None, state, None, logs={"loss": 2.0})
        logging.getLogger("coea.flow").info("evaluate: every method scored")
        return SimpleNamespace(results={Step.EVALUATE: SimpleNamespace(table="THE TABLE", paths={})})

    monkeypatch.setattr(coea.flow, "run_flow", flow)
    res = run_coea("evaluate", "--methods", "pop", "--out", str(tmp_path / "out"))
    assert res.returncode == 0 and "THE TABLE" in res.stdout, res.stderr[-2000:]
    steps = [line for line in res.stderr.splitlines() if "novelty sft step" in line]
    assert len(steps) == 1 and "novelty sft step 20/1368 loss 2.0000" in steps[0], res.stderr
    assert "evaluate: every method scored" in res.stderr
