"""SFT checkpoints that outlive the pod: the ``sft_novelty`` / ``sft_relevance`` steps mirror each model's last
resumable checkpoint under ``<state_uri>/checkpoints/<key>/<model>/`` and a retried attempt resumes from it.

A GPU pod's output dir is uploaded by KFP only when the step succeeds, so a preempted SFT starts over. While a model
trains, :func:`coea.llm.sft.train_sft` writes a checkpoint every ``llm.<model>.checkpoint_minutes`` into the output
dir's ``sft_checkpoints/<model>/`` (:mod:`coea.llm.run`); :func:`mirrored_sft` copies each one to the state store as
soon as it is written (its files and the fingerprint, then ``latest.json`` naming it, then the older copy is
deleted), so the remote ``latest.json`` always names a complete checkpoint. On start, the checkpoint it names is
downloaded into the output dir, where the training finds it and resumes (when the settings and examples still match
its fingerprint; otherwise it starts over, as ``coea train-llms`` does). When the step succeeds the prefix is
deleted. ``key`` as for :mod:`coea.stages.pco_remote` (the pipelines pass the run id and task name); an empty
``state_uri`` or ``key`` switches the mirror off.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from coea.errors import CoeaInputError
from coea.llm.run import CHECKPOINTS
from coea.llm.sft import CHECKPOINT_PREFIX, FINGERPRINT
from coea.stages.pco_remote import checkpoint_prefix, relative_name
from coea.state_backends import GcsState, LocalState, open_state

log = logging.getLogger(__name__)
LATEST = "latest.json"  # per model: {"checkpoint": "checkpoint-<step>"}, written after that checkpoint's files
FIX = "delete that checkpoint prefix to start the SFT again"


def upload_checkpoint(store: LocalState | GcsState, prefix: str, name: str, folder: Path) -> None:
    """Copy model ``name``'s new checkpoint ``folder`` (``.../sft_checkpoints/<name>/checkpoint-<step>``) and its
    fingerprint under ``prefix<name>/``, then ``latest.json`` naming it, then delete the older checkpoints there."""
    base = f"{prefix}{name}/"
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        store.upload_file(f"{base}{folder.name}/{path.relative_to(folder).as_posix()}", path)
    store.upload_file(base + FINGERPRINT, folder.parent / FINGERPRINT)
    store.write_bytes(base + LATEST, json.dumps({"checkpoint": folder.name}).encode())
    store.delete([n for n in store.list(base)
                  if n[len(base):].startswith(CHECKPOINT_PREFIX) and not n[len(base):].startswith(f"{folder.name}/")])
    log.info("%s sft: %s mirrored to %s", name, folder.name, base)


def restore_checkpoint(store: LocalState | GcsState, prefix: str, name: str, out_dir: Path, where: str) -> str | None:
    """Download model ``name``'s mirrored checkpoint (the one ``latest.json`` names) and its fingerprint into
    ``out_dir/sft_checkpoints/<name>/``; its folder name, or None when none was mirrored. A damaged ``latest.json``
    is one error naming it (``where``)."""
    base = f"{prefix}{name}/"
    raw = store.read_bytes(base + LATEST)
    if raw is None:
        return None
    try:
        checkpoint = json.loads(raw)["checkpoint"]
        if not (isinstance(checkpoint, str) and checkpoint.removeprefix(CHECKPOINT_PREFIX).isdigit()):
            raise ValueError(f"{checkpoint!r} is not a checkpoint-<step> name")
    except (ValueError, KeyError, TypeError) as err:
        raise CoeaInputError(f"not an SFT checkpoint record ({type(err).__name__}: {err})",
                             source=f"{where}{name}/{LATEST}", fix=FIX) from err
    local = Path(out_dir) / CHECKPOINTS / name
    for rel in (n[len(base):] for n in store.list(base + checkpoint + "/")):
        if relative_name(rel):
            store.download_file(base + rel, local / rel)
    store.download_file(base + FINGERPRINT, local / FINGERPRINT)
    log.info("%s sft: %s downloaded from %s%s/ (a retried step resumes from it)", name, checkpoint, where, name)
    return checkpoint


@contextmanager
def mirrored_sft(state_uri: str, key: str, out_dir: Path,
                 which: Sequence[str]) -> Iterator[Callable[[str, Path], None] | None]:
    """Mirror the SFT checkpoints of the models in ``which`` written under ``out_dir`` while the block runs (module
    doc): restores the mirrored ones first, yields the ``on_checkpoint`` hook to pass to
    :func:`coea.stages.run_sft_stage` (None when the mirror is off). The prefix is deleted when the block succeeds
    and kept when it raises (the next attempt resumes from it)."""
    if not (state_uri and key):
        yield None
        return
    prefix = checkpoint_prefix(key)
    store = open_state(state_uri)
    where = f"{state_uri.rstrip('/')}/{prefix}"
    for name in which:
        restore_checkpoint(store, prefix, name, Path(out_dir), where)
    yield lambda name, folder: upload_checkpoint(store, prefix, name, folder)
    store.delete(store.list(prefix))
    log.info("sft: the checkpoints at %s are deleted (the step succeeded)", where)
