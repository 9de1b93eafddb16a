"""PCO checkpoints that outlive the pod: the ``pco_loop`` step mirrors each complete round under
``<state_uri>/checkpoints/<key>/`` and a retried attempt resumes from them.

A GPU pod's output dir is uploaded by KFP only when the step succeeds, so a preempted attempt loses every round it
finished. :func:`mirrored_rounds` copies each round's checkpoint (``rounds/round_NNN/``, the lineage record) to the
state store as soon as :func:`coea.pco.checkpoint.save_round` has written it, ``pco_state.json`` last: the remote
state names a round complete only once all its files are there. On start, a complete remote state is downloaded
into the output dir (its rounds up to the one it names, the state file last) and the stage runs with
``resume=True``, the code path of ``coea pco --resume``. When the step succeeds the prefix is deleted.
``key`` must be stable across retries of one task and distinct between tasks and runs: the pipelines pass the run
id and the task name as two inputs, each one KFP placeholder (a backend resolves a placeholder only when it is an
input's whole value, kubeflow/pipelines' driver), joined by :func:`task_checkpoint_key`; an empty ``state_uri`` or
``key`` switches the mirror off.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from coea.data.partitions import UNRESOLVED_PREFIX
from coea.errors import CoeaInputError
from coea.lineage import LINEAGE
from coea.pco.checkpoint import STATE_FILE, PcoState, on_round_saved, parse_state, round_dir
from coea.state_backends import GcsState, LocalState, open_state
from coea.utils import atomic_path

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"
REMOTE_FIX = "delete that checkpoint prefix to start the PCO rounds again"


def relative_name(rel: str) -> bool:
    """Whether ``rel`` is a plain relative object name: no empty, ``.`` or ``..`` step (a mirrored name that is
    not is never downloaded)."""
    return all(step not in ("", ".", "..") for step in rel.split("/"))


def task_checkpoint_key(run_id: str, task_name: str) -> str:
    """``<run id>-<task name>``, the key of one GPU task's checkpoints: the same for every retry of the task,
    distinct between tasks and runs. ``""`` (no mirror) when either is empty, or is a KFP placeholder the backend
    left unresolved: one literal key for every run would let a run resume another run's checkpoints."""
    if not (run_id and task_name):
        return ""
    if UNRESOLVED_PREFIX in run_id or UNRESOLVED_PREFIX in task_name:
        log.warning("the checkpoint key's run id %r or task name %r is a placeholder the KFP backend did not "
                    "resolve: this step's checkpoints are not mirrored (a retried pod starts over)", run_id, task_name)
        return ""
    return f"{run_id}-{task_name}"


def checkpoint_prefix(key: str) -> str:
    """``checkpoints/<key>/``: where one GPU task's checkpoints (PCO rounds, SFT) live in the state store."""
    steps = key.strip("/").split("/")
    if not relative_name("/".join(steps)):
        raise CoeaInputError(f"checkpoint_key {key!r} is not a relative name", option="checkpoint_key",
                             fix="pass the run id and task name (the pipelines' default)")
    return f"{CHECKPOINTS}/{'/'.join(steps)}/"


def upload_round(store: LocalState | GcsState, prefix: str, out_dir: Path, r: int) -> None:
    """Copy round ``r``'s checkpoint and the lineage record of ``out_dir`` under ``prefix``, the state file last."""
    files = sorted(p for p in round_dir(out_dir, r).rglob("*") if p.is_file())
    files += [p for p in (out_dir / LINEAGE,) if p.is_file()]
    for path in [*files, out_dir / STATE_FILE]:
        store.upload_file(prefix + path.relative_to(out_dir).as_posix(), path)
    log.info("pco: round %d's checkpoint mirrored to %s", r, prefix)


def _wanted(rel: str, done: int) -> bool:
    """Whether a mirrored file belongs to a round up to ``done`` (or is the lineage record): a later round's files
    are an upload a preemption cut short."""
    steps = rel.split("/")
    if not relative_name(rel):
        return False
    if steps == [LINEAGE]:
        return True
    if len(steps) < 3 or steps[0] != "rounds" or not steps[1].startswith("round_"):
        return False
    number = steps[1].removeprefix("round_")
    return number.isdigit() and 1 <= int(number) <= done


def restore(store: LocalState | GcsState, prefix: str, out_dir: Path, where: str) -> PcoState | None:
    """Download the mirrored rounds under ``prefix`` into ``out_dir``, the state file last; their state, or None
    when no round was mirrored. A damaged remote state is one error naming it (``where``)."""
    names = store.list(prefix)
    raw = store.read_bytes(prefix + STATE_FILE) if prefix + STATE_FILE in names else None
    if raw is None:
        return None
    try:
        state = parse_state(json.loads(raw), f"{where}{STATE_FILE}", REMOTE_FIX)
    except ValueError as err:
        raise CoeaInputError(f"not a PCO state ({type(err).__name__}: {err})", source=f"{where}{STATE_FILE}",
                             fix=REMOTE_FIX) from err
    if state.completed_rounds < 1:
        return None
    for name in names:
        rel = name[len(prefix):]
        if _wanted(rel, state.completed_rounds):
            store.download_file(name, out_dir / rel)
    with atomic_path(out_dir / STATE_FILE) as tmp:
        tmp.write_bytes(raw)
    return state


@contextmanager
def mirrored_rounds(state_uri: str, key: str, out_dir: Path) -> Iterator[bool]:
    """Mirror the PCO rounds written to ``out_dir`` while the block runs (module doc); yields whether a complete
    remote state was restored (then run the stage with ``resume=True``). The prefix is deleted when the block
    succeeds and kept when it raises (the next attempt resumes from it)."""
    if not (state_uri and key):
        yield False
        return
    out_dir, prefix = Path(out_dir), checkpoint_prefix(key)
    store = open_state(state_uri)
    where = f"{state_uri.rstrip('/')}/{prefix}"
    state = restore(store, prefix, out_dir, where)
    if state is not None:
        log.info("resuming PCO from round %d of %s (checkpoints at %s)", state.completed_rounds,
                 state.config.get("rounds", "?"), where)

    def mirror(written: Path, r: int) -> None:
        if written.resolve() == out_dir.resolve():
            upload_round(store, prefix, written, r)

    with on_round_saved(mirror):
        yield state is not None
    store.delete(store.list(prefix))
    log.info("pco: the round checkpoints at %s are deleted (the step succeeded)", where)
