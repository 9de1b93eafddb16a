"""CSV and Parquet interaction logs, with optional column-name mapping to the canonical names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from coea.config import DataConfig
from coea.data.schema import CATEGORY, ITEM, RATING, TIMESTAMP, USER
from coea.errors import CoeaInputError


def _rename_map(cfg: DataConfig) -> dict[str, str]:
    mapping = {cfg.user_col: USER, cfg.item_col: ITEM, cfg.category_col: CATEGORY, cfg.timestamp_col: TIMESTAMP}
    if cfg.rating_col:
        mapping[cfg.rating_col] = RATING
    return {src: dst for src, dst in mapping.items() if src != dst}


def read_table(path: Path, fmt: str, cfg: DataConfig) -> pd.DataFrame:
    """Read ``path`` (``fmt`` = csv or parquet) and rename mapped columns; validation happens later."""
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
    except (pd.errors.ParserError, OSError, ValueError) as err:
        raise CoeaInputError(f"cannot read as {fmt} ({str(err).splitlines()[0]})", source=path,
                             fix=f"check the file is valid {fmt}") from err
    df.columns = [str(c).strip() for c in df.columns]
    return df.rename(columns=_rename_map(cfg))
