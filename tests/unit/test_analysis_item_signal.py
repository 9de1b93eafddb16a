"""benchmarks/analysis_item_signal.py: the probe's inputs, windows and novel-set loss (history only)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.analysis_item_signal import (
    TITLE_WORDS,
    build_probe,
    encode_histories,
    novel_set_loss,
    read_movies,
    read_profiles,
    windows,
)


def _log():
    return pd.DataFrame({
        "user_id": ["u", "u", "u", "u", "v"],
        "item_id": ["m1", "m2", "m1", "m3", "m1"],
        "category": ["A", "B", "A", "C", "A"],
        "timestamp": [0, 1, 9, 9, 5],
        "rating": [5.0, 1.0, 4.0, 3.0, 2.0],
    })


def test_encode_histories_gives_first_positions_unk_items_ratings_and_gap_buckets():
    events, sizes, _ = encode_histories(_log(), ["A", "B", "C"], min_item_events=2)
    u = events["u"]
    assert u.feats["cat"].tolist() == [1, 2, 1, 3]  # 0 is padding
    assert u.first.tolist() == [0, 1, 3]  # A first at 0, B at 1, C at 3
    assert events["v"].first.tolist() == [0, 1, 1]  # never had: the history length
    assert u.feats["item"].tolist() == [2, 1, 2, 1]  # m1 kept (3 events), m2 and m3 UNK (1)
    assert u.feats["rating"].tolist() == [6, 2, 5, 4]
    # first event 1; a gap of g seconds -> floor(log2(g + 1)) + 2
    assert u.feats["gap"].tolist() == [1, 3, 5, 2]
    assert sizes == {"cat": 4, "item": 3, "rating": 7, "gap": 25, "gender": 2, "age": 2, "occupation": 2,
                     "year": 2, "title": 2, "title_word": 2}
    assert set(u.feats["gender"].tolist()) == {1}  # no profiles given: every user reads as unknown
    assert set(u.feats["year"].tolist()) == set(u.feats["title"].tolist()) == {1}  # no movies given


def test_profiles_from_users_dat_are_the_same_at_every_position_and_unknown_users_read_as_one(tmp_path):
    users = tmp_path / "users.dat"
    users.write_text("u::F::25::7::12345\nw::M::1::0::99999\n", encoding="latin-1")
    profiles = read_profiles(users)
    assert profiles == {"u": ("F", "25", "7"), "w": ("M", "1", "0")}
    events, sizes, _ = encode_histories(_log(), ["A", "B", "C"], min_item_events=2, profiles=profiles)
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
    events, _, _ = encode_histories(_log(), ["A", "B", "C"], min_item_events=1)
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


def _movies(tmp_path):
    movies = tmp_path / "movies.dat"
    movies.write_text("m1::Star Wars: Episode IV (1977)::Action|Sci-Fi\n"
                      "m2::Star Trek: Generations (1994)::Sci-Fi\n"
                      "m4::Untitled::Drama\n", encoding="latin-1")
    return read_movies(movies)


def test_movies_give_each_event_its_release_year_and_title_words_shared_between_movies(tmp_path):
    movies = _movies(tmp_path)
    assert movies.year == {"m1": 1977, "m2": 1994, "m4": None}
    assert movies.words["m1"] == ("star", "wars", "episode", "iv")  # lower case, no year, no punctuation
    events, sizes, title_words = encode_histories(_log(), ["A", "B", "C"], min_item_events=2, movies=movies)
    u = events["u"]  # m1, m2, m1, m3 (m3 is not in the file)
    assert u.feats["year"].tolist() == [2, 3, 2, 1]  # 1977 -> 2, 1994 -> 3, unknown -> 1
    assert sizes["year"] == 4
    rows = u.feats["title"].tolist()
    assert rows[0] == rows[2] and rows[3] == 1 and len({rows[0], rows[1], 1}) == 3
    assert title_words.shape == (sizes["title"], TITLE_WORDS) and not title_words[1].any()  # row 1: no title
    star = title_words[rows[0], 0]
    assert star >= 2 and title_words[rows[1], 0] == star  # "star" is in both titles: one shared word
    assert title_words[rows[0], 1:4].tolist() == [1, 1, 1]  # wars, episode, iv: one movie's words read as unknown
    assert sizes["title_word"] == int(title_words.max()) + 1


def test_read_movies_names_the_line_of_a_malformed_movies_file(tmp_path):
    movies = tmp_path / "movies.dat"
    movies.write_text("m1::Heat (1995)::Action\nm2 Heat\n", encoding="latin-1")
    with pytest.raises(SystemExit, match=r"movies.dat: line 2 has 1 '::' fields, expected 3"):
        read_movies(movies)


def test_a_title_reads_as_the_mean_of_its_words_so_movies_sharing_words_get_closer(tmp_path):
    movies = _movies(tmp_path)
    events, sizes, title_words = encode_histories(_log(), ["A", "B", "C"], min_item_events=2, movies=movies)
    model = build_probe(sizes, ("title",), 3, max_len=4, dim=8, layers=1, title_words=title_words)
    emb = model.embed["title"]
    rows = torch.tensor(events["u"].feats["title"])
    words = emb.words.weight
    got = emb(rows).detach()
    r0 = title_words[rows[0]]
    want = words[torch.from_numpy(r0[r0 > 0])].mean(0)
    assert torch.allclose(got[0], want.detach())
    assert torch.equal(got[3], torch.zeros(8))  # a movie without a title adds nothing
    logits = model({"title": torch.from_numpy(windows([events["u"]], 4)[0]["title"])})
    assert logits.shape == (1, 4, 3) and torch.isfinite(logits).all()
