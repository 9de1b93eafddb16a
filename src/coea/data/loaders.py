"""Data specs -> the canonical, validated interaction table.

Specs: ``synthetic`` (default; the planted generator), ``movielens:DIR``, ``csv:PATH``, ``parquet:PATH``. A
csv/parquet PATH is a local file, ``gs://BUCKET/OBJECT``, or a folder of ``dt=YYYY-MM-DD/`` partitions (local
or ``gs://BUCKET/PREFIX/``) read up to the as-of time (:mod:`coea.data.partitions`, :mod:`coea.data.sources`).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from coea.config import DataConfig, SyntheticConfig
from coea.data.gcs import GcsPath, is_gcs_uri, parse_gcs_path
from coea.data.lines import CSV, MOVIELENS, at_editor_line
from coea.data.movielens import load_movielens
from coea.data.schema import validate_interactions
from coea.data.sources import check_partition_day, fetch_parts, place_row, relocated, warn_period_ignored
from coea.data.synthetic import SyntheticData, generate_synthetic
from coea.data.tabular import file_columns, read_table
from coea.errors import CoeaInputError

log = logging.getLogger(__name__)

SPEC_KINDS = ("synthetic", "movielens", "csv", "parquet")


@dataclass(frozen=True)
class LoadedData:
    """A validated log and where it came from; ``truth`` is set for synthetic data only."""

    interactions: pd.DataFrame
    source: str
    truth: SyntheticData | None = None


def _spec_hint(spec: str) -> str | None:
    """The spec meant by an unknown one: a kind's typo (``synthetc``), or a bare path whose contents say its kind
    (a MovieLens folder, a .csv or .parquet file); None when nothing fits."""
    import difflib

    close = difflib.get_close_matches(spec.partition(":")[0].strip().lower(), SPEC_KINDS, n=1)
    if close and ":" not in spec and close[0] == "synthetic":
        return "did you mean synthetic?"
    path = Path(spec)
    if path.is_dir() and (path / "movies.dat").is_file():
        return f"a MovieLens folder is read with movielens:{spec}"
    kind = {".csv": "csv", ".parquet": "parquet"}.get(path.suffix.lower()) if path.exists() else None
    if kind is None and close:
        return f"did you mean {close[0]}:{spec.partition(':')[2]}?"
    return f"a {kind} file is read with {kind}:{spec}" if kind else None


def parse_spec(spec: str) -> tuple[str, Path | GcsPath | None]:
    """``"movielens:DIR"`` -> ``("movielens", Path(DIR))``; ``"csv:gs://b/x.csv"`` -> ``("csv", GcsPath("b",
    "x.csv"))`` (a ``gs://`` URI never goes through ``Path``, which would fold ``//``); ``"synthetic"`` ->
    ``("synthetic", None)``."""
    kind, sep, rest = spec.partition(":")
    kind, rest = kind.strip().lower(), rest.strip()
    if kind not in SPEC_KINDS:
        raise CoeaInputError(f"unknown data spec {spec!r}", option="--data",
                             fix=_spec_hint(spec) or "use synthetic, movielens:DIR, csv:PATH or parquet:PATH")
    if kind == "synthetic":
        if rest:
            raise CoeaInputError(f"'synthetic' takes no path, got {spec!r}", option="--data",
                                 fix="configure the generator with --config instead")
        return kind, None
    if not sep or not rest:
        raise CoeaInputError(f"{kind} needs a path, got {spec!r}", option="--data", fix=f"use {kind}:PATH")
    if rest.startswith("gs:") and not is_gcs_uri(rest):  # "gs:/b/x" would be read as the local path gs:/b/x
        raise CoeaInputError(f"{rest!r} looks like a gs:// URI with a slash missing after gs:", option="--data",
                             fix=f"write {kind}:gs://{rest[3:].lstrip('/')}")
    if is_gcs_uri(rest):
        if kind == "movielens":
            raise CoeaInputError(f"movielens reads a local directory, got {spec!r}", option="--data",
                                 fix="copy the folder locally, or convert it to csv/parquet for gs://")
        return kind, parse_gcs_path(rest)
    return kind, Path(rest).expanduser()


def movielens_folder(location: Path) -> Path:
    """The folder of a ``movielens:PATH`` spec; a file there (``ratings.dat`` itself) is refused with the folder to
    pass instead, not reported as a folder that is not found."""
    if location.is_file():
        raise CoeaInputError("is a file, expected a folder (the one holding ratings.dat and movies.dat)",
                             source=location, fix=f"pass movielens:{location.parent}")
    return location


def load_data(cfg: DataConfig, synthetic: SyntheticConfig | None = None) -> LoadedData:
    """Load and validate the log named by ``cfg.spec``; an error in a text file names its line."""
    kind, location = parse_spec(cfg.spec)
    if kind in ("synthetic", "movielens"):
        warn_period_ignored(cfg, cfg.spec, "the synthetic generator" if kind == "synthetic" else "a MovieLens folder")
    if kind == "synthetic":
        data = generate_synthetic(synthetic or SyntheticConfig())
        log.info("generated synthetic data: %d events, %d users", len(data.interactions),
                 data.interactions["user_id"].nunique())
        return LoadedData(data.interactions, "synthetic", truth=data)
    if kind == "movielens":
        assert isinstance(location, Path)
        try:
            raw, source = load_movielens(movielens_folder(location), cfg.category_level)
            return LoadedData(_validated(raw, source, cfg), source)
        except CoeaInputError as err:
            located = at_editor_line(err, MOVIELENS)
            if located is err:
                raise
            raise located from err
    assert location is not None
    return _load_table(cfg, kind, location)


def _validated(raw: pd.DataFrame, source: str, cfg: DataConfig, names: dict[str, str] | None = None) -> pd.DataFrame:
    """``names``: canonical column -> the file's name for it (a csv/parquet log's mapped columns)."""
    return validate_interactions(raw, source, on_category_conflict=cfg.on_category_conflict,
                                 allow_any_timestamp=cfg.allow_any_timestamp, names=names)


def _load_table(cfg: DataConfig, kind: str, location: Path | GcsPath) -> LoadedData:
    """A csv/parquet log: its files (gs:// ones streamed to a temporary folder, deleted afterwards) read one by
    one, concatenated and validated; every error names the file (and line) it is about."""
    layout = CSV if kind == "csv" else None
    with tempfile.TemporaryDirectory(prefix="coea-data-") as tmp:
        fetched = fetch_parts(location, kind, cfg, Path(tmp))
        frames = []
        for part in fetched.parts:
            try:
                frames.append(read_table(part.local, kind, cfg))
                check_partition_day(frames[-1], part, layout, cfg)
            except CoeaInputError as err:
                raise relocated(err, part) from err
        sizes = [len(frame) for frame in frames]
        raw = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        del frames  # the concatenation is the one copy kept
        try:
            return LoadedData(_validated(raw, fetched.source, cfg, file_columns(cfg)), fetched.source)
        except CoeaInputError as err:
            raise place_row(err, fetched.parts, sizes, layout) from err
