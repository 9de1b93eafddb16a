"""The files behind a ``csv:`` / ``parquet:`` spec: a local file, a ``gs://`` object, or a partitioned folder
(local or ``gs://BUCKET/PREFIX/``, :mod:`coea.data.partitions`) cut to the period of the as-of time.

``gs://`` files are streamed into a temporary folder first (:class:`coea.data.gcs.GcsReader`); every file is then
read from disk. Errors name the file a person knows (the local path or the ``gs://`` URI), never the temporary
copy, and a row of the concatenated partitions is traced back to its file and line (:func:`place_row`).
"""

from __future__ import annotations

import bisect
import itertools
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from coea.config import DataConfig
from coea.data.gcs import GcsPath, GcsReader
from coea.data.lines import TextLayout, line_of_row
from coea.data.partitions import Partition, group_partitions, local_partition_names, select_partitions
from coea.data.schema import TIMESTAMP
from coea.data.timestamps import iso_utc, to_epoch_seconds
from coea.errors import CoeaInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """One file of a log: ``source`` is what errors name, ``local`` the file read (a gs:// object's copy)."""

    source: str
    local: Path
    day: date | None = None  # a dt=YYYY-MM-DD partition's day: its events lie before that day's end


@dataclass(frozen=True)
class Fetched:
    """The files of a log, in order, and the log's description (its ``LoadedData.source``)."""

    parts: tuple[Part, ...]
    source: str


def warn_period_ignored(cfg: DataConfig, source: str, what: str = "a single file") -> None:
    """Warn that ``data.window_days`` or ``data.as_of`` (set) does nothing for ``source``: only a folder of
    dt=YYYY-MM-DD/ partitions is cut to a period of days (README 'Data')."""
    if cfg.window_days:
        log.warning("data.window_days=%d is ignored: %s is %s, not a folder of dt=YYYY-MM-DD/ partitions (only "
                    "those are cut to the last N days); set data.window_days to 0, or use a partitioned folder",
                    cfg.window_days, source, what)
    if cfg.as_of is not None:
        log.warning("data.as_of=%s is ignored: %s is %s, not a folder of dt=YYYY-MM-DD/ partitions (only those are "
                    "read up to an as-of time: every event is read); drop --as-of (data.as_of), or use a "
                    "partitioned folder", cfg.as_of, source, what)


def is_partitioned(location: Path | GcsPath) -> bool:
    """Whether ``location`` is read as a folder of dt=YYYY-MM-DD/ partitions (a gs:// prefix ending in ``/``, or a
    local folder holding ``dt=*`` entries), to which the as-of rule applies."""
    if isinstance(location, GcsPath):
        return location.is_prefix
    return location.is_dir() and any(location.glob("dt=*"))


def _described(root: str, chosen: list[Partition]) -> str:
    return f"{root} dt={chosen[0].day}..{chosen[-1].day} ({len(chosen)} partitions)"


def fetch_parts(location: Path | GcsPath, fmt: str, cfg: DataConfig, tmp: Path) -> Fetched:
    """The files of ``location`` (partitions chosen by ``cfg.as_of`` / ``cfg.window_days``), gs:// objects
    downloaded under ``tmp``. A local path that is neither a file nor a partitioned folder is returned as it is:
    :func:`coea.data.tabular.read_table` says what is wrong with it."""
    if isinstance(location, GcsPath):
        return _fetch_gcs(location, fmt, cfg, tmp)
    if is_partitioned(location):
        chosen = select_partitions(group_partitions(local_partition_names(location), fmt, str(location)),
                                   cfg.as_of, cfg.window_days, str(location), fmt)
        files = [(location / name, part.day) for part in chosen for name in part.files]
        return Fetched(tuple(Part(str(f), f, day) for f, day in files), _described(str(location), chosen))
    warn_period_ignored(cfg, str(location))
    return Fetched((Part(str(location), location),), str(location))


def _fetch_gcs(location: GcsPath, fmt: str, cfg: DataConfig, tmp: Path) -> Fetched:
    reader = GcsReader(cfg.gcs_retry_s)
    if not is_partitioned(location):
        warn_period_ignored(cfg, str(location))
        return Fetched((Part(str(location), _download(reader, location, tmp, 0)),), str(location))
    names = reader.list_names(location)
    chosen = select_partitions(group_partitions(names, fmt, str(location)), cfg.as_of, cfg.window_days,
                               str(location), fmt)
    objects = [(location.child(name), part.day) for part in chosen for name in part.files]
    parts = tuple(Part(str(obj), _download(reader, obj, tmp, i), day) for i, (obj, day) in enumerate(objects))
    return Fetched(parts, _described(str(location), chosen))


def _download(reader: GcsReader, obj: GcsPath, tmp: Path, index: int) -> Path:
    folder = tmp / f"{index:05d}"  # one folder per object: the copy keeps the object's file name
    folder.mkdir()
    return reader.download(obj, folder / obj.name.rsplit("/", 1)[-1])


def relocated(err: CoeaInputError, part: Part) -> CoeaInputError:
    """``err`` about ``part.local`` named after ``part.source`` (a no-op for a local file)."""
    if part.source == str(part.local):
        return err
    return err.replace(problem=err.problem.replace(str(part.local), part.source), source=part.source)


def place_row(err: CoeaInputError, parts: tuple[Part, ...], sizes: list[int],
              layout: TextLayout | None) -> CoeaInputError:
    """``err`` about row R of the concatenated parts (of ``sizes`` rows each) placed in the file it came from:
    its source, its own row and, for a text layout, the line of that row. Other errors are returned as they
    are."""
    if err.row is None or err.line is not None or not parts:
        return err
    starts = [0, *itertools.accumulate(sizes)]
    index = min(bisect.bisect_left(starts, err.row) - 1, len(parts) - 1)
    part, row = parts[index], err.row - starts[index]
    line = line_of_row(part.local, row, layout) if layout is not None else None
    return err.replace(source=part.source, row=row, line=line)


def check_partition_day(frame: pd.DataFrame, part: Part, layout: TextLayout | None, cfg: DataConfig) -> None:
    """A partition ``dt=D`` holds the events of day D: one after D's end (UTC) is an error naming its file and line.
    A run with as-of time T reads the partitions before date(T), so such an event (a later day's data written into
    an earlier folder) would reach a run scheduled before it happened. Earlier events (late arrivals) are read.
    Timestamps that do not convert are left to the validation, which names them; ``allow_any_timestamp`` keys are no
    time. ``frame``: the part as read, columns renamed to the canonical names."""
    if part.day is None or cfg.allow_any_timestamp or TIMESTAMP not in frame or frame.empty:
        return
    try:  # no unit warning: the validation after the parts are read gives it, once
        seconds = to_epoch_seconds(frame[TIMESTAMP], part.source, column=cfg.timestamp_col, warn=False)
    except CoeaInputError:
        return
    end = int(datetime.combine(part.day + timedelta(days=1), time.min, tzinfo=UTC).timestamp())
    late = (seconds >= end).to_numpy()
    if late.any():
        row = int(np.argmax(late)) + 1
        line = line_of_row(part.local, row, layout) if layout is not None else None
        raise CoeaInputError(
            f"event at {iso_utc(int(seconds.iloc[row - 1]))} lies after its partition's day dt={part.day} "
            f"({int(late.sum())} such event(s)): a run as of {part.day + timedelta(days=1)} would read it before it "
            "happened", source=part.source, column=cfg.timestamp_col, row=row, line=line,
            fix="write each event into the dt= folder of its own UTC day")
