"""benchmarks/analysis_item_signal.py: the probe's inputs, windows and novel-set loss (history only)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.analysis_item_signal import encode_histories, novel_set_loss, read_profiles, windows


def _log():
    return pd.DataFrame({
        "user_id": ["u", "u", "u", "u", "v"],
        "item_id": ["m1", "m2", "m1", "m3", "m1"],
        "category": ["A", "B", "A", "C", "A"],
        "timestamp": [0, 1, 9, 9, 5],
        "rating": [5.0, 1.0, 4.0, 3.0, 2.0],
    })


def test_encode_histories_gives_first_positions_unk_items_ratings_and_gap_buckets():
    events, sizes = encode_histories(_log(), ["A", "B", "C"], min_item_events=2)
    u = events["u"]
    assert u.feats["cat"].tolist() == [1, 2, 1, 3]  # 0 is padding
    assert u.first.tolist() == [0, 1, 3]  # A first at 0, B at 1, C at 3
    assert events["v"].first.tolist() == [0, 1, 1]  # never had: the history length
    assert u.feats["item"].tolist() == [2, 1, 2, 1]  # m1 kept (3 events), m2 and m3 UNK (1)
    assert u.feats["rating"].tolist() == [6, 2, 5, 4]
    # first event 1; a gap of g seconds -> floor(log2(g + 1)) + 2
    assert u.feats["gap"].tolist() == [1, 3, 5, 2]
    assert sizes == {"cat": 4, "item": 3, "rating": 7, "gap": 25, "gender": 2, "age": 2, "occupation": 2}
    assert set(u.feats["gender"].tolist()) == {1}  # no profiles given: every user reads as unknown


def test_profiles_from_users_dat_are_the_same_at_every_position_and_unknown_users_read_as_one(tmp_path):
    users = tmp_path / "users.dat"
    users.write_text("u::F::25::7::12345\nw::M::1::0::99999\n", encoding="latin-1")
    profiles = read_profiles(users)
    assert profiles == {"u": ("F", "25", "7"), "w": ("M", "1", "0")}
    events, sizes = encode_histories(_log(), ["A", "B", "C"], min_item_events=2, profiles=profiles)
    # values sorted, 2.. (0 padding, 1 unknown): F=2, M=3; "1"=2, "25"=3; "0"=2, "7"=3
    assert events["u"].feats["gender"].tolist() == [2, 2, 2, 2]
    assert events["u"].feats["age"].tolist() == [3, 3, 3, 3]
    assert events["u"].feats["occupation"].tolist() == [3, 3, 3, 3]
    assert events["v"].feats["gender"].tolist() == [1]  # v is not in the file
    assert (sizes["gender"], sizes["age"], sizes["occupation"]) == (4, 4, 4)
    feats, _, _ = windows([events["u"], events["v"]], max_len=3)
    assert feats["gender"].tolist() == [[2, 2, 2], [0, 0, 2], [0, 0, 1]]  # padding stays 0


def test_read_profiles_names_the_line_of_a_malformed_users_file(tmp_path):
    users = tmp_path / "users.dat"
    users.write_text("u::F::25::7::12345\nw::M::1\n", encoding="latin-1")
    with pytest.raises(SystemExit, match=r"users.dat: line 2 has 3 '::' fields, expected 5"):
        read_profiles(users)


def test_windows_step_back_from_the_last_event_and_left_pad_with_positions_minus_one():
    events, _ = encode_histories(_log(), ["A", "B", "C"], min_item_events=1)
    feats, pos, rows = windows([events["u"], events["v"]], max_len=3)
    assert rows.tolist() == [0, 0, 1]
    assert pos.tolist() == [[1, 2, 3], [-1, -1, 0], [-1, -1, 0]]
    assert feats["cat"].tolist() == [[2, 1, 3], [0, 0, 1], [0, 0, 1]]


def test_novel_set_loss_scores_only_first_takes_within_the_horizon_over_categories_not_had_yet():
    first = torch.tensor([[0, 1, 3]])  # A had from 0, B first at 1, C first at 3
    pos = torch.tensor([[-1, 0]])  # one padded position, then position 0
    logits = torch.zeros(1, 2, 3)
    # at position 0 with horizon 1 the target is {B}; allowed are B and C (A had): -log(1/2)
    assert float(novel_set_loss(logits, pos, first, horizon=1)) == pytest.approx(math.log(2))
    # horizon 3: targets {B, C}, each -log(1/2)
    assert float(novel_set_loss(logits, pos, first, horizon=3)) == pytest.approx(math.log(2))
    logits[0, 1, 1] = 5.0  # the model now prefers B: horizon 1's loss falls, and A's logit does not count
    low = float(novel_set_loss(logits, pos, first, horizon=1))
    logits[0, 1, 0] = 50.0
    assert low < math.log(2) and float(novel_set_loss(logits, pos, first, horizon=1)) == pytest.approx(low)
    no_target = torch.tensor([[-1, 3]])  # at the last event nothing is left to take up
    assert float(novel_set_loss(logits, no_target, first, horizon=3)) == 0.0
    assert np.isfinite(float(novel_set_loss(torch.zeros(1, 2, 3), pos, first, horizon=2)))
