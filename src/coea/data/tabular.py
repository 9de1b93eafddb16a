"""CSV and Parquet interaction logs, with optional column-name mapping to the canonical names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from coea.config import DataConfig
from coea.data.lines import undecodable
from coea.data.schema import CATEGORY, ITEM, RATING, TIMESTAMP, USER
from coea.errors import CoeaInputError


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


def read_table(path: Path, fmt: str, cfg: DataConfig) -> pd.DataFrame:
    """Read ``path`` (``fmt`` = csv or parquet) and rename mapped columns; validation happens later."""
    _not_a_directory(path, fmt)
    if not path.is_file():
        raise CoeaInputError("file not found", source=path, fix=f"check the path after '{fmt}:'")
    if path.stat().st_size == 0:
        raise CoeaInputError("the file is empty", source=path,
                             fix="provide a header user_id,item_id,category,timestamp and at least one row")
    try:
        if fmt == "csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=True, skipinitialspace=True)
        else:
            df = pd.read_parquet(path)
    except pd.errors.EmptyDataError as err:
        raise CoeaInputError("the file is empty", source=path,
                             fix="provide a header user_id,item_id,category,timestamp and rows") from err
    except UnicodeDecodeError as err:
        raise (undecodable(path) or CoeaInputError(str(err), source=path, fix="save the file as UTF-8")) from err
    except (pd.errors.ParserError, OSError, ValueError) as err:
        raise CoeaInputError(f"cannot read as {fmt} ({str(err).splitlines()[0]})", source=path,
                             fix=f"check the file is valid {fmt}") from err
    df.columns = [str(c).strip() for c in df.columns]
    return df.rename(columns=_rename_map(cfg))
