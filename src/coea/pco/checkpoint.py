"""PCO checkpoints: one directory per complete round, and the state file naming the last one.

Layout under a PCO dir: ``rounds/round_NNN/`` (``novelty/`` and ``relevance/`` bundles without optimizer state,
``round.json`` = the round's metrics row, ``rng.pt`` = the Python/NumPy/torch RNG states), each written
atomically, then ``pco_state.json`` (``completed_rounds``, every metrics row so far, the PCO config).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coea.config import config_to_dict
from coea.errors import CoeaInputError, reads
from coea.llm.models import ModelBundle, load_bundle, save_bundle
from coea.pco.config import PcoConfig
from coea.utils import atomic_dir, write_json_atomic

log = logging.getLogger(__name__)

STATE_FILE = "pco_state.json"


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


@reads('resume a run whose state is intact, or run `coea pco` without --resume into a fresh folder')
def read_state(out_dir: Path, cfg: PcoConfig) -> PcoState | None:
    """The state of ``out_dir`` (None without a state file); a state written with another config is an error."""
    path = Path(out_dir) / STATE_FILE
    if not path.is_file():
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    changed = config_changes(state["config"], config_to_dict(cfg))
    if changed:
        raise CoeaInputError(f"the PCO config differs from the run being resumed ({'; '.join(changed)})",
                             source=path, fix="resume with the same config, or write to a fresh --out directory")
    return PcoState(int(state["completed_rounds"]), state["rounds"], state["config"])


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
    return final


def load_round(out_dir: Path, r: int, device: str) -> tuple[ModelBundle, ModelBundle]:
    """Round ``r``'s (novelty, relevance) models, trainable, on ``device``; the global RNGs are restored."""
    d = round_dir(out_dir, r)
    novelty = load_bundle(d / "novelty", trainable=True, device=device)
    relevance = load_bundle(d / "relevance", trainable=True, device=device)
    rng = torch.load(d / "rng.pt", weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    log.info("pco: resuming after round %d from %s", r, d)
    return novelty, relevance


@reads('re-run `coea pco` to write the rounds again')
def last_complete_round(pco_dir: Path) -> Path:
    """The dir of the last complete PCO round in ``pco_dir`` (``rounds/round_NNN/`` with ``novelty/`` and
    ``relevance/``)."""
    state = Path(pco_dir) / STATE_FILE
    if not state.is_file():
        raise CoeaInputError("no PCO state", source=state, fix="pass a directory written by `coea pco` / pco_loop")
    done = int(json.loads(state.read_text(encoding="utf-8"))["completed_rounds"])
    if done < 1:
        raise CoeaInputError("no complete PCO round yet", source=state, fix="resume the PCO run first")
    return round_dir(Path(pco_dir), done)


def export_round_models(pco_dir: Path, novelty_out: Path, relevance_out: Path) -> Path:
    """Copy the last complete round's models to ``novelty_out/novelty/`` and ``relevance_out/relevance/`` (the
    layout of the SFT steps' outputs); returns the round dir copied from."""
    src = last_complete_round(pco_dir)
    for name, out in (("novelty", novelty_out), ("relevance", relevance_out)):
        shutil.copytree(src / name, Path(out) / name, dirs_exist_ok=True)
    log.info("PCO models of %s exported to %s, %s", src.name, novelty_out, relevance_out)
    return src
