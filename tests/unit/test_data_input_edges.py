"""Edges of the data loaders' helpers that the CLI tests cannot reach one by one: a time outside the calendar
printed without a crash, MovieLens lines counted with quoting off, float ids in a DataFrame."""

import numpy as np
import pandas as pd
import pytest

from coea.data.lines import CSV, MOVIELENS, line_of_row
from coea.data.schema import validate_interactions
from coea.data.timestamps import iso_utc, to_epoch_seconds
from coea.errors import CoeaInputError

T0 = 1_700_000_000


@pytest.mark.parametrize(("value", "text"), [(float("inf"), "inf s"), (np.float64("-inf"), "-inf s"),
                                             (1e20, "100000000000000000000 s"), (10**15, "1000000000000000 s")])
def test_iso_utc_of_a_value_outside_the_calendar_is_the_bare_value(value, text):
    """Finding 6: its fallback called int(inf) again (OverflowError)."""
    assert iso_utc(value) == text


def test_a_stray_quote_does_not_shift_the_lines_of_a_movielens_file(tmp_path):
    """Finding 17: a '"' opened a quoted field for csv, so every later row mapped to the wrong line (or none)."""
    ml = tmp_path / "ratings.dat"
    ml.write_text('1::"1::5::1\n\n1::2::5::2\n1::3::5::3\n')
    assert [line_of_row(ml, row, MOVIELENS) for row in (1, 2, 3)] == [1, 3, 4]
    assert line_of_row(ml, 2, CSV) != 3  # the CSV layout keeps its quoting


def test_float_ids_in_a_dataframe_become_integer_strings_and_a_fraction_is_refused():
    df = pd.DataFrame({"user_id": [1.0, 2.0], "item_id": ["a", "b"], "category": [3.0, 3.0],
                       "timestamp": [T0, T0 + 1]})
    out = validate_interactions(df, "t.parquet")
    assert out["user_id"].tolist() == ["1", "2"] and out["category"].tolist() == ["3", "3"]
    with pytest.raises(CoeaInputError, match=r"column 'user_id', row 2: user_id inf is not a whole number"):
        validate_interactions(df.assign(user_id=[1.0, np.inf]), "t.parquet")


@pytest.mark.parametrize("values", [[5, 2**63], [-5, 2.0**63], [5, -1e19], [5.5, 1e30]])
def test_allow_any_refuses_what_int64_cannot_hold(values):
    """Finding 4: ``astype('int64')`` wrapped these round to -9223372036854775808."""
    raw = pd.Series(values)
    with pytest.raises(CoeaInputError, match=r"row 2: timestamp .* does not fit a 64-bit integer"):
        to_epoch_seconds(raw, "t.parquet", allow_any=True)
    assert to_epoch_seconds(pd.Series([-5, 2**63 - 1]), "t", allow_any=True).tolist() == [-5, 2**63 - 1]
