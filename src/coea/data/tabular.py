"""CSV and Parquet interaction logs, with optional column-name mapping to the canonical names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from coea.config import DataConfig
from coea.data.formats import (
    NUMERIC_NA,
    check_flat_parquet,
    check_row_width,
    decode_binary,
    not_another_format,
    unparsable,
)
from coea.data.lines import open_text, undecodable
from coea.data.schema import CATEGORY, ITEM, RATING, REQUIRED, TIMESTAMP, USER
from coea.errors import CoeaInputError


def file_columns(cfg: DataConfig) -> dict[str, str]:
    """Canonical column -> the file's name for it (``--user-col`` ... / ``data.*_col``), for the columns mapped:
    validation errors name the column as the file does."""
    return {dst: src for src, dst in _rename_map(cfg).items()}


def _rename_map(cfg: DataConfig) -> dict[str, str]:
    mapping = {cfg.user_col: USER, cfg.item_col: ITEM, cfg.category_col: CATEGORY, cfg.timestamp_col: TIMESTAMP}
    if cfg.rating_col:
        mapping[cfg.rating_col] = RATING
    return {src: dst for src, dst in mapping.items() if src != dst}


def _not_a_directory(path: Path, fmt: str) -> None:
    if not path.is_dir():
        return
    found = sorted(path.glob(f"*.{fmt}"))
    example = f"e.g. {fmt}:{found[0]}" if found else f"{fmt}:PATH/TO/FILE.{fmt}; there is none in this directory"
    raise CoeaInputError(f"is a directory; {fmt}: expects one .{fmt} file", source=path,
                         fix=f"pass the file, {example}; or a folder of dt=YYYY-MM-DD/ partition folders")


def file_not_found(path: Path, fmt: str) -> CoeaInputError:
    """The error for a ``fmt:`` spec (csv, parquet) whose ``path`` does not exist."""
    return CoeaInputError("file not found", source=path, fix=f"check the path after '{fmt}:'")


def read_table(path: Path, fmt: str, cfg: DataConfig) -> pd.DataFrame:
    """Read ``path`` (``fmt`` = csv or parquet) and rename mapped columns; the table's values are validated later.

    In a CSV only an empty field is missing in the id and category columns (``NA``, ``None``, ``null`` are ids
    like any other); the timestamp and rating columns also take pandas' usual missing-value words (``NA``,
    ``nan``, ...), which their checks then report or accept."""
    _not_a_directory(path, fmt)
    if not path.is_file():
        raise file_not_found(path, fmt)
    if path.stat().st_size == 0:
        raise CoeaInputError("the file is empty", source=path,
                             fix="provide a header user_id,item_id,category,timestamp and at least one row")
    if fmt == "csv":
        not_another_format(path)
    try:
        if fmt == "csv":
            numeric = {name: NUMERIC_NA for name in (cfg.timestamp_col, cfg.rating_col or RATING)}
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=numeric, skipinitialspace=True)
        else:
            df = pd.read_parquet(path)
    except pd.errors.EmptyDataError as err:
        raise CoeaInputError("the file is empty", source=path,
                             fix="provide a header user_id,item_id,category,timestamp and rows") from err
    except UnicodeDecodeError as err:
        raise (undecodable(path) or CoeaInputError(str(err), source=path, fix="save the file as UTF-8")) from err
    except pd.errors.ParserError as err:
        raise (unparsable(path, str(err)) or _cannot_read(path, fmt, err)) from err
    except (OSError, ValueError) as err:
        raise _cannot_read(path, fmt, err) from err
    if fmt == "csv":
        _check_unique_header(path)
        check_row_width(path, df)
    else:
        binary = check_flat_parquet(path, [cfg.user_col, cfg.item_col, cfg.category_col, cfg.timestamp_col,
                                           cfg.rating_col])
        df = decode_binary(_index_as_columns(df), path, binary)
    df.columns = [str(c).strip() for c in df.columns]
    found = list(df.columns)
    _check_mapping(found, cfg, path)
    df = df.rename(columns=_rename_map(cfg))
    _check_required(path, list(df.columns), found)
    return df


def _index_as_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A Parquet file written from a frame indexed by a column (``df.set_index("user_id").to_parquet(...)``) holds
    that column, but pandas reads it back as the index: it is a column again here, as in the file's schema."""
    levels = [name for name in df.index.names if name is not None and name not in df.columns]
    return df.reset_index(level=levels) if levels else df  # (written with drop=False: it is a column already)


def _cannot_read(path: Path, fmt: str, err: Exception) -> CoeaInputError:
    fix = f"check the file is valid {fmt}"
    if fmt == "parquet" and path.is_file():
        with path.open("rb") as fh:
            if fh.read(4) != b"PAR1":  # every Parquet file starts (and ends) with it
                fix = f"it is no Parquet file (it does not start with 'PAR1'); a CSV file is read as csv:{path}"
    return CoeaInputError(f"cannot read as {fmt} ({str(err).splitlines()[0]})", source=path, fix=fix)


def _check_required(path: Path, columns: list[str], found: list[str]) -> None:
    """Every file has the canonical columns (after mapping; ``found``: its own names, before): a partition whose
    header differs from the others would otherwise give blank values in the concatenated log."""
    missing = [c for c in REQUIRED if c not in columns]
    sep = next((s for s in (";", "\t", "|") if len(found) == 1 and s in str(found[0])), None)
    if missing and sep is not None:  # one column whose name holds the real separator: not comma-separated
        shown = {"\t": "tab"}.get(sep, repr(sep))
        raise CoeaInputError(
            f"the header is one column {str(found[0])[:80]!r}: the file is separated by {shown}, not ','",
            source=path, column=missing[0], fix=f"convert it to a comma-separated file, e.g. python -c \"import "
            f"pandas as p; p.read_csv('{path}', sep={sep!r}).to_csv('{path.with_name(path.stem + '_comma.csv')}', "
            "index=False)\"")
    if missing:
        raise CoeaInputError(
            f"missing required column(s) {missing}; found {found}", source=path, column=missing[0],
            fix="rename the columns or map them with --user-col/--item-col/--category-col/--timestamp-col; every "
                "file of a partitioned log needs the same header",
        )


def _check_unique_header(path: Path) -> None:
    """A CSV header that names a column twice is refused (pandas would read the second as ``name.1``, and the
    first would be used without a word)."""
    import csv

    with open_text(path) as fh:
        header = next(csv.reader(fh), [])
    names = [name.strip().lstrip("\ufeff") for name in header]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise CoeaInputError(f"the header names column {name!r} twice (columns {names.index(name) + 1} and "
                                 f"{i + 1})", source=path, column=name, line=1,
                                 fix="rename or drop one of them")


def _config_key(option: str) -> str:
    """``--user-col`` -> ``--user-col (data.user_col in a config)``; a config key as it is."""
    return f"{option} (data.{option[2:].replace('-', '_')} in a config)" if option.startswith("--") else option


def _check_mapping(columns: list[str], cfg: DataConfig, path: Path) -> None:
    """The column options (``--user-col`` ... / ``data.*_col``) name columns the file has, each once, and none is
    renamed onto a column that is already there."""
    roles = {"--user-col": (cfg.user_col, USER), "--item-col": (cfg.item_col, ITEM),
             "--category-col": (cfg.category_col, CATEGORY), "--timestamp-col": (cfg.timestamp_col, TIMESTAMP)}
    if cfg.rating_col:
        roles["data.rating_col"] = (cfg.rating_col, RATING)
    sources = {src for src, _ in roles.values()}
    seen: dict[str, str] = {}
    for option, (src, dst) in roles.items():
        if src in seen:
            raise CoeaInputError(f"{option} and {seen[src]} both name column {src!r}", source=path, column=src,
                                 fix="give each of user, item, category and timestamp its own column")
        seen[src] = option
        if src == dst:
            continue
        if src not in columns:
            raise CoeaInputError(f"no column {src!r} ({option}); the columns are {', '.join(columns)}", source=path,
                                 column=src, fix=f"check {_config_key(option)}")
        if dst in columns and dst not in sources:
            raise CoeaInputError(f"{option} {src!r} would become {dst!r}, which the file already has", source=path,
                                 column=dst, fix=f"drop or rename the file's {dst!r} column, or leave {option} out")
