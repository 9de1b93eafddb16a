"""Partitioned logs: a folder of ``dt=YYYY-MM-DD/`` sub-folders, and the rule that picks the period to read.

Layout (local, or ``gs://BUCKET/events/``)::

    events/dt=2026-11-28/part-00000.csv
    events/dt=2026-11-29/part-00000.csv  part-00001.csv
    events/dt=2026-11-30/part-00000.csv   <- still being written at 2026-11-30T00:00Z: not read then

Partition ``dt=D`` holds the events of day D (UTC); every ``*.csv`` (``*.parquet``) file directly in it is read,
anything else (``_SUCCESS`` markers) is skipped. **The as-of rule**: a run with as-of time T reads the
partitions whose day has ended by T, i.e. ``D < date(T)``; with ``window_days = N`` only the last N of them,
``date(T) - N <= D < date(T)``. The recurring pipeline passes its scheduled time as T, so a daily schedule with
``window_days: 1`` reads yesterday's partition, a weekly one with ``window_days: 7`` the past week, and a
re-run of the same scheduled run reads the same period. Without T every partition is read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from coea.config import parse_as_of
from coea.errors import CoeaInputError

log = logging.getLogger(__name__)

_DT = re.compile(r"^dt=(?P<day>[^/]+)$")
UNRESOLVED_PREFIX = "{{$"  # a KFP placeholder the backend did not replace (kubeflow/pipelines#12616)


@dataclass(frozen=True)
class Partition:
    """One ``dt=YYYY-MM-DD/`` folder: its day and its data files (names relative to the layout's root)."""

    day: date
    files: tuple[str, ...]


def group_partitions(names: Iterable[str], fmt: str, source: str) -> list[Partition]:
    """The partitions among ``names`` (relative paths such as ``dt=2026-11-29/part-0.csv``), by day; only
    ``*.{fmt}`` files directly inside a ``dt=`` folder count. A ``dt=`` folder that is not a date, or that holds
    a file of another kind (``part-0.csv.gz`` in a ``csv:`` log; ``_SUCCESS``, ``.crc`` and other ``_``/``.``
    names aside), is an error, and so is a ``*.{fmt}`` file elsewhere (the root, another folder, a folder nested
    in a ``dt=`` one): none would be read."""
    days: dict[date, list[str]] = {}
    others: dict[str, list[str]] = {}  # a dt= folder's data files of another kind (not _SUCCESS, .crc, ...)
    stray: list[str] = []  # data files not directly in a dt= folder: the root, another folder, a nested one
    for name in names:
        folder, _, file = name.partition("/")
        match = _DT.match(folder)
        if not match or "/" in file:
            if name.endswith(f".{fmt}") and not name.rsplit("/", 1)[-1].startswith(("_", ".")):
                stray.append(name)
            continue
        if not file.endswith(f".{fmt}"):
            if not file.startswith(("_", ".")):
                others.setdefault(folder, []).append(file)
            continue
        try:  # strictly YYYY-MM-DD (fromisoformat also takes 20240102 and 2024-W01-2)
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", match["day"]):
                raise ValueError(match["day"])
            day = date.fromisoformat(match["day"])
        except ValueError as err:
            raise CoeaInputError(f"partition folder {folder!r} is not dt=YYYY-MM-DD", source=source,
                                 fix="name each partition folder dt=YYYY-MM-DD (the UTC day of its events)") from err
        days.setdefault(day, []).append(name)
    if stray:  # their events would be left out of the log without a word
        more = f" (and {len(stray) - 1} more)" if len(stray) > 1 else ""
        raise CoeaInputError(f"{min(stray)}{more} is not directly inside a dt=YYYY-MM-DD/ folder, so its events would "
                             "be left out of the log", source=source,
                             fix=f"move each .{fmt} file into the dt=YYYY-MM-DD/ folder of its day (sub-folders such "
                                 "as hour=05/ are not read), or out of the log's folder")
    if others:  # their events would be left out of the log without a word
        folder, files = min(others.items())
        raise CoeaInputError(f"partition folder {folder} holds file(s) that are not .{fmt}: {', '.join(sorted(files))}",
                             source=source, fix=f"write every partition as .{fmt} (e.g. gunzip a .{fmt}.gz), or move "
                                                "the other files out of the dt= folders")
    return [Partition(day, tuple(sorted(days[day]))) for day in sorted(days)]


def local_partition_names(folder: Path) -> list[str]:
    """The relative names of every file under ``folder`` (:func:`group_partitions` picks the partitions' and
    refuses data files elsewhere), as a gs:// prefix lists its objects."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def select_partitions(parts: list[Partition], as_of: str | None, window_days: int, source: str,
                      fmt: str) -> list[Partition]:
    """The partitions a run with as-of time ``as_of`` reads (see the module docstring); an empty choice is an
    error naming what exists."""
    if not parts:
        raise CoeaInputError(f"no dt=YYYY-MM-DD/ partition with a .{fmt} file", source=source,
                             fix=f"pass a .{fmt} file, or a folder of dt=YYYY-MM-DD/ folders holding .{fmt} files")
    if as_of is None:
        if window_days:
            raise CoeaInputError(f"window_days={window_days} needs an as-of time", source=source, option="--as-of",
                                 fix="pass --as-of (or data.as_of), or set window_days to 0")
        return parts
    end = parse_as_of(as_of).date()  # partitions before this day have ended
    start = end - timedelta(days=window_days) if window_days else date.min
    chosen = [p for p in parts if start <= p.day < end]
    if not chosen:
        period = f"{start} .. {end - timedelta(days=1)}" if window_days else f"before {end}"
        raise CoeaInputError(f"no partition in the period {period} (as-of {as_of}); found dt={parts[0].day} .. "
                             f"dt={parts[-1].day}", source=source, option="--as-of",
                             fix="check the as-of time (the run's scheduled time) and window_days")
    log.info("as-of %s: reading %d of %d partitions, dt=%s .. dt=%s", as_of, len(chosen), len(parts),
             chosen[0].day, chosen[-1].day)
    return chosen


def scheduled_as_of(value: str) -> str | None:
    """The as-of time from a pipeline's scheduled-time value: ``""`` -> None; a placeholder the KFP backend left
    unresolved (``{{$.pipeline_job_schedule_time_utc}}``, kubeflow/pipelines#12616) -> now, with a warning;
    otherwise the value itself (checked)."""
    value = value.strip()
    if not value:
        return None
    if value.startswith(UNRESOLVED_PREFIX):
        now = datetime.now(UTC).isoformat(timespec="seconds")
        log.warning("the scheduled time arrived unresolved (%s); using the current time %s instead", value, now)
        return now
    try:
        parse_as_of(value)
    except ValueError as err:
        raise CoeaInputError(str(err), option="scheduled time", fix="pass an ISO 8601 time") from err
    return value
