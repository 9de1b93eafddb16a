"""Where a command writes: the output folder or file checked before anything runs (writable, not a file, not a
shared folder), a refused command's half-written folder removed, a full disk named as such; how a summary names
the CLI for the commands it suggests, and what `coea run` prints after its steps."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from coea.config import SERVED_METHOD
from coea.errors import CoeaInputError
from coea.utils import DISK_FULL


def coea_command() -> str:
    """How the user can call this CLI again, for the commands a summary suggests: ``coea`` when that is the one on
    PATH (or the CLI runs in process), else the path it was started by (``.venv/bin/coea`` from the repository)."""
    argv0 = Path(sys.argv[0])
    on_path = shutil.which("coea")
    if argv0.name != "coea" or (on_path and Path(on_path).resolve() == argv0.resolve()):
        return "coea"
    return str(argv0)


def check_writable_dir(out: Path, option: str = "--out", *, own: bool = False) -> None:
    """``out`` can be (or is) a folder this process writes into: not a file, under a writable folder, and with
    ``own`` (the command writes its files straight into it) not a shared one (:func:`check_own_folder`); else a
    :class:`CoeaInputError` before anything runs."""
    if own:
        check_own_folder(out, option)
    if out.exists() and not out.is_dir():
        raise CoeaInputError("is a file, not a folder", source=out, option=option,
                             fix="pass a folder path (it is created when missing)")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise CoeaInputError(f"cannot be created: {parent} is a file", source=out, option=option,
                             fix="pass a folder path under a folder")
    try:  # a real write (permissions alone say yes for root, and /proc takes no folders)
        os.rmdir(tempfile.mkdtemp(prefix=".coea-write-check-", dir=parent))
    except OSError as err:
        raise CoeaInputError(f"cannot be written: {parent}: {err.strerror}", source=out, option=option,
                             fix="pass a folder you can write to") from err


def check_own_folder(out: Path, option: str = "--out") -> None:
    """A command that writes its files straight into ``out`` (data/, metrics.*, ...) is not given the current
    folder (``.``: also what an empty value, e.g. an unset shell variable, reads as) or the filesystem root."""
    root = out.resolve() == Path(out.resolve().anchor)
    if str(out) == "." or root:
        raise CoeaInputError(f"is {'the filesystem root' if root else 'the current folder'}: this command writes "
                             "its files straight into it", source=out, option=option,
                             fix="pass a folder of its own, e.g. ./out (an empty value reads as '.')")


def check_writable_file(out: Path | str, option: str = "--out", example: str = "recommendations.parquet") -> Path:
    """``out`` can be (or is) a file this process writes: not a folder (nor a path written as one, ending in
    ``/``: the option's value as given, a ``str``, since a :class:`Path` drops the slash), in a folder it can write
    to (created when missing); else a :class:`CoeaInputError` before anything runs. Returns ``out`` as a Path."""
    if isinstance(out, str) and out.endswith(("/", os.sep)):
        raise CoeaInputError("ends with '/': names a folder, not a file", source=out, option=option,
                             fix=f"pass a file path, e.g. {Path(out) / example}")
    out = Path(out)
    if out.is_dir():
        raise CoeaInputError("is a folder, not a file", source=out, option=option,
                             fix=f"pass a file path, e.g. {out / example}")
    fix = "pass a file path in a folder you can write to"
    if out.parent.exists() and not out.parent.is_dir():
        raise CoeaInputError(f"cannot be created: {out.parent} is a file", source=out, option=option, fix=fix)
    try:
        check_writable_dir(out.parent, option)
    except CoeaInputError as err:
        raise err.replace(source=out, fix=fix) from err
    return out


@contextmanager
def output_folder(out: Path, option: str = "--out", *, kept: Path | None = None) -> Iterator[Path]:
    """:func:`check_writable_dir`, then run the command's body; when the body stops on bad input
    (:class:`CoeaInputError`, e.g. a split that leaves no user a history) or on a full disk (then a
    :class:`CoeaInputError` naming the file, :func:`os_input_error`) and ``out`` did not exist before, the folder it
    began is removed, so a refused command leaves nothing half-written behind. Stopped otherwise (Ctrl-C, SIGTERM,
    a crash), the folder it made is removed while it is still empty (what is in it is kept: finished steps). Once
    ``kept`` exists (e.g. the state a finished period wrote) the folder is kept in every case."""
    check_writable_dir(out, option, own=True)
    existed = out.exists()
    try:
        try:
            yield out
        except (CoeaInputError, OSError) as err:
            error = err if isinstance(err, CoeaInputError) else os_input_error(err, option, out)
            if error is None:
                raise
            if not existed and not (kept is not None and kept.exists()):
                shutil.rmtree(out, ignore_errors=True)
            if error is err:
                raise
            raise error from err
    except BaseException:
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def os_input_error(err: OSError, option: str | None = None, out: Path | None = None) -> CoeaInputError | None:
    """A write that failed for want of space (ENOSPC, EDQUOT) as a one-line error naming the file (else ``out``)
    and, where one chose the place, the ``option``; a path this user may not read or write (EACCES, EPERM), on a
    read-only filesystem (EROFS), or with a name too long (ENAMETOOLONG) as one naming the path; None for any other
    :class:`OSError`."""
    if err.errno in DISK_FULL:
        fix = "free space on that disk" + (f" or choose another {option}" if option else "")
        return CoeaInputError(f"{os.strerror(err.errno).lower()} writing {err.filename or out or 'the output'}",
                              option=option, fix=fix)
    fix = _PATH_FIXES.get(err.errno) if err.filename else None
    if fix is None:
        return None
    if out is None or not Path(os.path.abspath(err.filename)).is_relative_to(os.path.abspath(out)):
        option = None  # an input (the log, a run's model) or another place: not the output folder's fault
    return CoeaInputError(f"{os.strerror(err.errno).lower()}: {err.filename}", option=option,
                          fix=fix + (f", or choose another {option}" if option else ""))


_PATH_FIXES = {
    errno.EACCES: "give this user access to it (chmod, chown), or use a path it may read and write",
    errno.EPERM: "give this user access to it (chmod, chown), or use a path it may read and write",
    errno.EROFS: "that filesystem is mounted read-only: write somewhere writable",
    errno.ENAMETOOLONG: "shorten the name (a file or folder name holds at most 255 bytes)",
}


def run_summary(cfg, run_dir: Path, paths: dict[str, Path], served: str = SERVED_METHOD, rec_k: int = 10, *,
                seconds: float | None = None) -> str:
    """What `coea run` prints after its steps: the metrics table, the served method against the reference, where
    the outputs are (``paths`` from ``run_training_locally``, which served ``served``'s top ``rec_k``) and, given
    ``seconds``, how long the run took."""
    from coea.evaluation.report import metrics_table
    from coea.report_html import paired_section, served_verdict
    from coea.store import KVStore

    metrics = json.loads(paths["metrics.json"].read_text(encoding="utf-8"))
    with KVStore(paths["kv_store"], create=False) as kv:
        user = next(iter(kv.user_ids(1)), "ID")
    cold = int(metrics.get("protocol", {}).get("cold_start_users") or 0)
    holds = f"paired CIs and {cold} cold-start users" if cold else "paired CIs"
    verdict = served_verdict(served, paired_section(metrics))  # as report.html says it: below the reference, ...
    if verdict and metrics.get("dataset", {}).get("source") == "synthetic":  # `make demo`: say what it shows
        verdict += (" (The built-in synthetic log and small LLMs trained from scratch on a CPU check that the "
                    "pipeline runs end to end, not how the method ranks: README *Results on MovieLens-1M*.)")
    return "\n".join([
        "", metrics_table(metrics["methods"], cfg.eval.ks),
        f"run directory: {run_dir}  (data/, dsie/, llm/, pco/, state/; pipeline artifacts under kfp/)"
        + (f"; the run took {seconds:.0f} s" if seconds is not None else ""),
        f"metrics:       {paths['metrics.md']} (with {holds}), metrics.json, metrics_at_{max(cfg.eval.ks)}.png",
        f"served:        {served}, top-{rec_k} per user -> {paths['kv_store']} "
        f"({coea_command()} recommend --store {paths['kv_store']} --user {user})", *([verdict] if verdict else []),
        f"step logs:     {paths['steps_log']}",
        f"report:        {paths['report']}",
    ])
