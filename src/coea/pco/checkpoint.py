"""PCO checkpoints: one directory per complete round, and the state file naming the last one.

Layout under a PCO dir: ``rounds/round_NNN/`` (``novelty/`` and ``relevance/`` bundles without optimizer state,
``round.json`` = the round's metrics row, ``rng.pt`` = the Python/NumPy/torch RNG states), each written
atomically, then ``pco_state.json`` (``completed_rounds``, every metrics row so far, the PCO config).
:func:`on_round_saved` runs a callback after each round is complete on disk (e.g. to copy it off a pod whose
local disk a preemption loses: :mod:`coea.stages.pco_remote`).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coea.config import config_to_dict
from coea.errors import CoeaInputError, reading, reads
from coea.llm.models import ModelBundle, load_bundle, save_bundle
from coea.llm.sft_config import without_run_only
from coea.pco.config import PcoConfig
from coea.utils import atomic_dir, write_json_atomic

log = logging.getLogger(__name__)

STATE_FILE = "pco_state.json"
RoundSaved = Callable[[Path, int], None]  # (out_dir, round) once the round's checkpoint and state file are written
_round_hooks: list[RoundSaved] = []


@contextmanager
def on_round_saved(hook: RoundSaved) -> Iterator[None]:
    """While the block runs, call ``hook(out_dir, r)`` each time :func:`save_round` has checkpointed round ``r``
    (its dir and the state file naming it complete are on disk); an error the hook raises stops the loop."""
    _round_hooks.append(hook)
    try:
        yield
    finally:
        _round_hooks.remove(hook)


@dataclass(frozen=True)
class PcoState:
    """The content of ``pco_state.json``."""

    completed_rounds: int
    rounds: list[dict[str, Any]]  # one metrics row per round, round 0 = the starting models
    config: dict[str, Any]  # config_to_dict of the PcoConfig that wrote it


def round_dir(out_dir: Path, r: int) -> Path:
    """``out_dir/rounds/round_NNN``: round ``r``'s checkpoint."""
    return Path(out_dir) / "rounds" / f"round_{r:03d}"


def write_state(out_dir: Path, completed_rounds: int, rows: list[dict[str, Any]], cfg: PcoConfig) -> None:
    """Write ``pco_state.json`` atomically (creating ``out_dir``)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(out_dir) / STATE_FILE, {"completed_rounds": completed_rounds, "rounds": rows,
                                                   "config": config_to_dict(cfg)})


def completed_rounds(out_dir: Path) -> int:
    """How many rounds ``out_dir``'s state file marks complete (0 without a readable one)."""
    try:
        return int(json.loads((Path(out_dir) / STATE_FILE).read_text(encoding="utf-8"))["completed_rounds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


RESUME_FIX = "re-run `coea pco` without --resume to write the rounds again"


@reads(RESUME_FIX)
def read_state(out_dir: Path, cfg: PcoConfig) -> PcoState | None:
    """The state of ``out_dir`` (None without a state file); a state written with another config, or one whose
    content is not what :func:`write_state` writes, is an error."""
    path = Path(out_dir) / STATE_FILE
    if not path.is_file():
        return None
    state = parse_state(json.loads(path.read_text(encoding="utf-8")), path)
    changed = config_changes(without_run_only(state.config), without_run_only(config_to_dict(cfg)))
    if changed:
        raise CoeaInputError(f"the PCO config differs from the run being resumed ({'; '.join(changed)})",
                             source=path, fix="resume with the config (and options such as --rounds) of the run "
                                              "being resumed, or drop --resume to start its rounds again")
    return state


def parse_state(raw: Any, path: Path, fix: str = RESUME_FIX) -> PcoState:
    """``pco_state.json``'s content, checked: ``completed_rounds`` an int >= 0, ``rounds`` its metrics rows for rounds
    0..completed_rounds in order, ``config`` an object. Anything else raises a one-line error naming ``path``."""
    fields = raw if isinstance(raw, dict) else {}
    done, rows, config = fields.get("completed_rounds"), fields.get("rounds"), fields.get("config")
    problem = None
    if not isinstance(raw, dict):
        problem = f"a JSON {type(raw).__name__}, not an object with completed_rounds, rounds and config"
    elif isinstance(done, bool) or not isinstance(done, int) or done < 0:
        problem = f"completed_rounds is {done!r}, not an integer >= 0"
    elif not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        problem = "rounds is not a list of metrics rows (objects)"
    elif [row.get("round") for row in rows] != list(range(done + 1)):
        problem = (f"rounds holds the rows of rounds {[row.get('round') for row in rows][:12]}, but completed_rounds "
                   f"{done} needs rounds 0..{done} in order")
    elif not isinstance(config, dict):
        problem = "config is not an object"
    if problem:
        raise CoeaInputError(f"not a PCO state: {problem}", source=path, fix=fix)
    return PcoState(done, rows, config)


def config_changes(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: saved -> current`` for every (dotted) key whose value differs between two config dicts."""
    out = []
    for key in sorted(set(saved) | set(current), key=str):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            out += config_changes(old, new, f"{prefix}{key}.")
        elif old != new:
            out.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return out


def save_round(out_dir: Path, r: int, novelty: ModelBundle, relevance: ModelBundle, rows: list[dict[str, Any]],
               cfg: PcoConfig) -> Path:
    """Checkpoint round ``r`` (its row is ``rows[-1]``), then mark it complete in the state file."""
    final = round_dir(out_dir, r)
    with atomic_dir(final) as tmp:  # a temporary sibling, renamed onto ``final``: the log names ``final``
        save_bundle(novelty, tmp / "novelty", announce=False)
        save_bundle(relevance, tmp / "relevance", announce=False)
        write_json_atomic(tmp / "round.json", rows[-1])
        torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
                   tmp / "rng.pt")
    log.info("pco: saved round %d's models to %s and %s", r, final / "novelty", final / "relevance")
    write_state(out_dir, r, rows, cfg)
    for hook in list(_round_hooks):
        hook(Path(out_dir), r)
    return final


def check_round(out_dir: Path, r: int) -> Path:
    """Round ``r``'s checkpoint dir, which a resume loads; one error naming it when a part is missing."""
    d = round_dir(out_dir, r)
    missing = [name for name in ("novelty", "relevance", "rng.pt") if not (d / name).exists()]
    if missing:
        raise CoeaInputError(f"{STATE_FILE} marks round {r} complete but its checkpoint lacks {', '.join(missing)}",
                             source=d, fix=RESUME_FIX)
    return d


def load_round(out_dir: Path, r: int, device: str) -> tuple[ModelBundle, ModelBundle]:
    """Round ``r``'s (novelty, relevance) models, trainable, on ``device``; the global RNGs are restored. A missing
    or damaged checkpoint is one error naming it and the fix (re-run without --resume)."""
    d = check_round(out_dir, r)
    try:
        with reading(d, RESUME_FIX):
            novelty = load_bundle(d / "novelty", trainable=True, device=device)
            relevance = load_bundle(d / "relevance", trainable=True, device=device)
        with reading(d / "rng.pt", RESUME_FIX):
            _restore_rng(torch.load(d / "rng.pt", weights_only=False))
    except CoeaInputError as err:  # e.g. load_bundle's "not a model bundle": the fix is the resume's
        raise err.replace(fix=RESUME_FIX) from err
    log.info("pco: resuming after round %d from %s", r, d)
    return novelty, relevance


def _restore_rng(rng: Any) -> None:
    """Set the Python/NumPy/torch RNG states ``save_round`` stored (a wrong shape is a ValueError)."""
    try:
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
    except (TypeError, KeyError, IndexError) as err:
        raise ValueError(f"not the RNG states save_round writes ({type(err).__name__}: {err})") from err


RERUN_FIX = "re-run `coea pco` to write the rounds again"


@reads(RERUN_FIX)
def last_complete_round(pco_dir: Path) -> Path:
    """The dir of the last complete PCO round in ``pco_dir`` (``rounds/round_NNN/`` with ``novelty/`` and
    ``relevance/``)."""
    state = Path(pco_dir) / STATE_FILE
    if not state.is_file():
        raise CoeaInputError("no PCO state", source=state, fix="pass a directory written by `coea pco` / pco_loop")
    done = parse_state(json.loads(state.read_text(encoding="utf-8")), state, RERUN_FIX).completed_rounds
    if done < 1:
        raise CoeaInputError("no complete PCO round yet", source=state, fix="resume the PCO run first")
    final = round_dir(Path(pco_dir), done)
    missing = [name for name in ("novelty", "relevance") if not (final / name).is_dir()]
    if missing:
        raise CoeaInputError(f"{STATE_FILE} marks round {done} complete but its checkpoint lacks "
                             f"{', '.join(missing)}", source=final, fix=RERUN_FIX)
    return final


def export_round_models(pco_dir: Path, novelty_out: Path, relevance_out: Path) -> Path:
    """Copy the last complete round's models to ``novelty_out/novelty/`` and ``relevance_out/relevance/`` (the
    layout of the SFT steps' outputs); returns the round dir copied from."""
    src = last_complete_round(pco_dir)
    for name, out in (("novelty", novelty_out), ("relevance", relevance_out)):
        shutil.copytree(src / name, Path(out) / name, dirs_exist_ok=True)
    log.info("PCO models of %s exported to %s, %s", src.name, novelty_out, relevance_out)
    return src
