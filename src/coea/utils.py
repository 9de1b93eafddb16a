"""Small shared helpers: seeding, atomic writes, JSON, logging set-up."""

from __future__ import annotations

import contextlib
import enum
import errno
import gc
import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

log = logging.getLogger("coea")
_gc_frozen = False


E = TypeVar("E", bound=enum.Enum)


def as_enum(cls: type[E], name: str, value: object) -> E:
    """``cls(value)``, or ValueError naming the config field, the bad value and the choices."""
    try:
        return cls(value)
    except ValueError:
        raise ValueError(f"{name} must be one of {[m.value for m in cls]}, got {value!r}") from None


SEED_LIMIT = 2**32  # numpy's legacy seeding (np.random.seed, the trainers' set_seed) takes 0 .. 2**32 - 1


def check_seed(name: str, value: int, *, plus: int = 0, why: str = "") -> None:
    """ValueError naming config field ``name`` unless ``value`` and ``value + plus`` (a seed derived from it, e.g.
    ``seed + r`` for round ``r``; ``why`` says so) are valid numpy seeds, 0 .. 2**32 - 1."""
    if not 0 <= value < SEED_LIMIT - plus:
        raise ValueError(f"{name} must be in 0 .. {SEED_LIMIT - 1 - plus}, got {value!r}: numpy seeds are below "
                         f"2**32{why}")


def seed_everything(seed: int, *, with_torch: bool = True) -> None:
    """Seed Python, NumPy and torch (``with_torch=False``: not torch, for a step that never uses it and so need not
    import it, ~1.5 s in a fresh pipeline step). Call first in every ``run_*``."""
    random.seed(seed)
    np.random.seed(seed)
    if not with_torch:
        return
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.manual_seed(seed)


def freeze_gc_heap() -> None:
    """Once per process, before its first Hugging Face trainer exists: collect, then move every object alive now
    (mostly the imported libraries: torch, transformers, trl, pandas, ~0.5 M objects) to the cyclic garbage
    collector's permanent generation (``gc.freeze``). The trainers run a full ``gc.collect()`` at the start and
    the end of every ``train()`` (accelerate's ``free_memory`` / ``release_memory``), and without this each walks
    that whole heap: ~0.6 s a training on a busy CPU, dozens of trainings in a PCO run or an ablation. Frozen objects
    are still freed by reference counting (models hold no reference cycles); only a cycle among them would no
    longer be collected, hence once, and before any trainer."""
    global _gc_frozen
    if not _gc_frozen:
        gc.collect()
        gc.freeze()
        _gc_frozen = True


DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})  # a write that failed for want of space, not for its input


@contextlib.contextmanager
def naming_disk_full(target: Path, tmp: Path | None = None) -> Iterator[None]:
    """A disk-full :class:`OSError` (:data:`DISK_FULL`) raised inside re-raised naming the path a person asked for:
    ``target`` where it names no file (a PNG or Parquet writer's) or ``tmp`` (None: any file, e.g. the temporary
    name ``mkstemp`` tried), ``target``'s own file where it names one inside the temporary folder ``tmp``."""
    try:
        yield
    except OSError as err:
        if err.errno not in DISK_FULL:
            raise
        name = Path(err.filename) if isinstance(err.filename, str | os.PathLike) else None
        if tmp is None or name is None or name == tmp:
            shown = target
        elif tmp in name.parents:
            shown = target / name.relative_to(tmp)
        else:
            raise
        raise OSError(err.errno, os.strerror(err.errno), str(shown)) from err


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.

    A reader never sees a half-written file, and a failure leaves nothing behind; a full disk is an
    :class:`OSError` naming ``target`` (:func:`naming_disk_full`).
    """
    target = Path(target)
    with naming_disk_full(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the permissions open() would
    try:
        with naming_disk_full(target, tmp):
            yield tmp
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``target``; it replaces ``target`` only if the block succeeds.

    The directory gets the permissions ``mkdir`` would give it (``mkdtemp`` makes it 0700). After a successful
    replace, the temporary siblings an earlier writer of ``target`` left when it was killed (``.NAME.*.tmp``,
    ``.NAME.*.old``: a model's weights, gigabytes for a real LLM) are removed. A full disk is an :class:`OSError`
    naming ``target`` or the file in it that was being written (:func:`naming_disk_full`).
    """
    target = Path(target)
    with naming_disk_full(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        with naming_disk_full(target, tmp):
            yield tmp
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "dir")
        os.replace(tmp, target)
        for stale in [*target.parent.glob(f".{target.name}.*.tmp"), *target.parent.glob(f".{target.name}.*.old")]:
            shutil.rmtree(stale, ignore_errors=True)  # ``old`` among them
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: Path, obj: Any) -> None:
    write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def log_formatter() -> logging.Formatter:
    """The ``coea`` log line: ``HH:MM:SS LEVEL logger: message``."""
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")


PROJECT_LOGGERS = ("coea", "pipelines")  # the library's loggers and the pipeline runners' (``pipelines.simulate``)


def setup_logging(level: int = logging.INFO) -> None:
    """Configure the project's loggers (:data:`PROJECT_LOGGERS`: ``coea.*`` and the top-level ``pipelines.*``, e.g.
    ``coea simulate``'s summary line per period) once each, to stderr at ``level``, through the command line's
    console handler (:class:`coea.console.ProgressConsole`: a loop's progress lines as a status line on a terminal,
    thinned out elsewhere). CLI entry points call this; the library never does."""
    from coea.console import ProgressConsole

    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.handlers:
            continue
        handler = ProgressConsole()
        handler.setFormatter(log_formatter())
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


def log_softmax_rows(scores: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of (U, C) ``scores``; ``-inf`` entries (e.g. an encoder's PAD/UNK logits) stay ``-inf``
    and take no mass. Every row needs at least one finite entry."""
    finite = np.isfinite(scores)
    top = np.max(np.where(finite, scores, -np.inf), axis=1, keepdims=True)
    shifted = np.where(finite, scores - top, -np.inf)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file's bytes, read in 1 MiB blocks (the lineage records' data key, a published
    store version's recommendations)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
