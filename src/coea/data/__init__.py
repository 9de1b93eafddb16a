"""Data layer: canonical schema, loaders, validation, statistics and the evaluation protocol."""

from coea.data.loaders import LoadedData, load_data, parse_spec
from coea.data.schema import CATEGORY, ITEM, RATING, TIMESTAMP, USER, validate_interactions
from coea.data.split import Histories, Period, Split, chronological_split, split_periods
from coea.data.stats import data_stats

__all__ = [
    "CATEGORY", "ITEM", "RATING", "TIMESTAMP", "USER", "Histories", "LoadedData", "Period", "Split",
    "chronological_split", "data_stats", "load_data", "parse_spec", "split_periods", "validate_interactions",
]
