"""Validation of the canonical table: each failure names column, row and a fix."""

import logging

import pandas as pd
import pytest

from coea.data.schema import validate_interactions
from coea.errors import CoeaInputError
from tests.helpers import events

T0 = 1_700_000_000  # 2023-11-14: timestamps must be Unix seconds from 1990 to now


def test_clean_table_is_sorted_and_typed():
    df = events([("2", "i1", "a", T0 + 20), ("1", "i2", "b", T0 + 30), ("1", "i1", "a", T0 + 10)])
    out = validate_interactions(df, "t.csv")
    assert out["user_id"].tolist() == ["1", "1", "2"]
    assert out["timestamp"].tolist() == [T0 + 10, T0 + 30, T0 + 20]
    assert out["timestamp"].dtype == "int64"


def test_missing_column_names_it():
    df = events([("1", "i", "a", 1)]).drop(columns=["category"])
    with pytest.raises(CoeaInputError, match=r"t\.csv, column 'category': missing required column"):
        validate_interactions(df, "t.csv")


def test_non_numeric_timestamp_names_first_bad_row():
    df = pd.DataFrame({"user_id": ["1", "1", "2"], "item_id": ["a", "b", "c"], "category": ["x", "y", "z"],
                       "timestamp": ["100", "200", "soon"]})
    with pytest.raises(CoeaInputError) as err:
        validate_interactions(df, "t.csv")
    assert err.value.column == "timestamp" and err.value.row == 3
    assert "'soon'" in str(err.value) and "fix:" in str(err.value)


def test_missing_timestamp_and_null_ids():
    df = pd.DataFrame({"user_id": ["1", None], "item_id": ["a", "b"], "category": ["x", "y"],
                       "timestamp": [1, 2]})
    with pytest.raises(CoeaInputError, match="column 'user_id', row 2"):
        validate_interactions(df, "t.csv")
    df = pd.DataFrame({"user_id": ["1", "2"], "item_id": ["a", "b"], "category": ["x", "y"],
                       "timestamp": [1, None]})
    with pytest.raises(CoeaInputError, match="column 'timestamp', row 2: 1 missing"):
        validate_interactions(df, "t.csv")


def test_empty_table():
    with pytest.raises(CoeaInputError, match="empty"):
        validate_interactions(events([]), "t.csv")


def test_exact_duplicates_dropped_and_logged(caplog):
    df = events([("1", "i", "a", T0 + 1), ("1", "i", "a", T0 + 1), ("1", "j", "a", T0 + 2)])
    with caplog.at_level(logging.INFO, logger="coea"):
        out = validate_interactions(df, "t.csv")
    assert len(out) == 2
    assert "dropped 1 duplicate event" in caplog.text


def test_category_conflict_majority_and_fail(caplog):
    df = events([("1", "i", "a", T0 + 1), ("2", "i", "b", T0 + 2), ("3", "i", "b", T0 + 3), ("4", "j", "c", T0 + 4)])
    with caplog.at_level(logging.WARNING, logger="coea"):
        out = validate_interactions(df, "t.csv")
    assert set(out.loc[out.item_id == "i", "category"]) == {"b"}
    assert "1 item(s) had several categories" in caplog.text
    with pytest.raises(CoeaInputError, match="item 'i' has"):
        validate_interactions(df, "t.csv", on_category_conflict="fail")


def test_one_event_with_two_categories_is_a_conflict_not_a_silent_duplicate(caplog):
    """Audit (session 53): (1, i, a, t) and (1, i, c, t) were deduplicated on user, item and time first: c was
    dropped as an "exact duplicate" and on_category_conflict: fail never saw the conflict."""
    df = events([("1", "i", "a", T0 + 1), ("1", "j", "b", T0 + 2), ("1", "i", "c", T0 + 1)])
    with pytest.raises(CoeaInputError, match=r"row 1: item 'i' has 2\+ categories \['a', 'c'\]"):
        validate_interactions(df, "t.csv", on_category_conflict="fail")
    with caplog.at_level(logging.INFO, logger="coea"):
        out = validate_interactions(df, "t.csv")
    assert len(out) == 2 and "1 item(s) had several categories" in caplog.text  # one event, its category resolved
    assert "dropped 1 duplicate event" in caplog.text


def test_conflict_tie_breaks_alphabetically():
    df = events([("1", "i", "z", T0 + 1), ("2", "i", "b", T0 + 2)])
    assert set(validate_interactions(df, "t")["category"]) == {"b"}
