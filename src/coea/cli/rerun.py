"""What re-running an interrupted `coea train-llms` or `coea pco` does, for the CLI's "interrupted:" line: read from
what the run folder holds when the signal came (a model that finished, an SFT checkpoint and its step, the PCO rounds
saved), never promised in general. A new user's walkthrough was told "the same command resumes the SFT from its last
checkpoint" 45 s into an N-LLM whose first checkpoint comes after 10 minutes, and the re-run silently started over.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from coea.cli.common import interrupt_rerun
from coea.errors import CoeaInputError

LABELS = {"novelty": "N-LLM", "relevance": "R-LLM"}


@contextlib.contextmanager
def rerun_note(say: Callable[[], str]) -> Iterator[None]:
    """Inside, an interrupt (Ctrl-C, SIGTERM) records ``say()``, what re-running the command does then (the text
    after "re-run the command"), for :func:`coea.cli.main`'s line. Reading it may not turn the interrupt into
    another error: one there leaves the command's general note."""
    try:
        yield
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            interrupt_rerun.append(say())
        raise


@dataclass(frozen=True)
class SftState:
    """Where one model's SFT stands: ``finished`` (saved, with its lineage record), else its last complete
    checkpoint's (step, steps) or None, and its ``llm.<name>.checkpoint_minutes``."""

    name: str
    finished: bool
    checkpoint: tuple[int, int] | None
    minutes: float


def sft_rerun_text(states: Sequence[SftState]) -> str:
    """What `coea train-llms` run again does with the models of ``states`` (in training order), e.g. ``: it trains
    the N-LLM from the start (no SFT checkpoint yet: ...), then trains the R-LLM``."""
    done = [s for s in states if s.finished]
    left = [s for s in states if not s.finished]
    kept = " and ".join(f"the {LABELS[s.name]}" for s in done)
    head = f": {kept} finished and {'is' if len(done) == 1 else 'are'} kept, so it " if done else ": it "
    if not left:
        return f"{head}trains nothing"
    then = "".join(f", then {_how(s) if s.checkpoint else 'trains the ' + LABELS[s.name]}" for s in left[1:])
    return head + _how(left[0]) + then


def _how(state: SftState) -> str:
    label, key = LABELS[state.name], f"llm.{state.name}.checkpoint_minutes"
    if state.checkpoint is not None:
        step, steps = state.checkpoint
        return f"resumes the {label}'s SFT from its checkpoint at step {step}/{steps}"
    if not state.minutes:
        return f"trains the {label} from the start ({key} is 0: no SFT checkpoint is saved)"
    return (f"trains the {label} from the start (no SFT checkpoint yet: the first is saved after "
            f"{state.minutes:g} minutes of training, {key})")


def checkpoint_step(folder: Path) -> tuple[int, int] | None:
    """(step, steps) of the last complete SFT checkpoint in ``folder`` (``llm/sft_checkpoints/<model>/``), or None."""
    from coea.llm.sft import TRAINER_STATE, complete_checkpoint

    found = complete_checkpoint(folder) if folder.is_dir() else None
    if found is None:
        return None
    state = json.loads((found / TRAINER_STATE).read_text(encoding="utf-8"))
    return int(state["global_step"]), int(state["max_steps"])


def sft_rerun(layout, cfg, names: Sequence[str]) -> str:
    """:func:`sft_rerun_text` for the models ``names`` that `coea train-llms` was training into ``layout.llm``."""
    from coea.llm.run import CHECKPOINTS
    from coea.stages.sft import trained_with

    return sft_rerun_text([SftState(name, trained_with(layout.llm, name, cfg, layout.data, layout.dsie),
                                    checkpoint_step(layout.llm / CHECKPOINTS / name),
                                    cfg.llm.sft_for(name).checkpoint_minutes) for name in names])


def pco_rerun(pco_dir: Path, cfg) -> str:
    """What `coea pco` run again on ``pco_dir`` (the run's ``pco/``) with the run config ``cfg`` can do: continue
    with ``--resume`` after the rounds saved, or start over (no state, or one of another PCO config)."""
    from coea.pco.checkpoint import STATE_FILE, read_state
    from coea.stages.pco import resolved_pco

    pco = resolved_pco(cfg)
    if not (pco_dir / STATE_FILE).is_file():
        return " without --resume: no PCO round was saved (nothing to resume)"
    try:
        done = read_state(pco_dir, pco).completed_rounds
    except CoeaInputError as err:
        return f" without --resume: the saved PCO rounds cannot be resumed: {err.problem}"
    if not done:
        return f": no PCO round of {pco.rounds} finished yet, so it starts at round 1"
    if done >= pco.rounds:
        return f" with --resume: all {pco.rounds} rounds are saved, so it only writes the outputs again"
    saved = "round 1 is" if done == 1 else f"rounds 1-{done} are"
    return (f" with --resume: {saved} saved, so it continues at round {done + 1} of {pco.rounds} (without --resume "
            "it trains them again)")
