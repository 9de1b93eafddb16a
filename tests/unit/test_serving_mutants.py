"""Fast pins of serving-side rules a mutation audit found untested: the dual inference's ranking (candidates
first, by ``log P_N + w * logit P(yes)``, exactly ``best_of_n`` of them verified), the DSIE groups as a drift
feature, the chi-square column choice, the served lists read in rank order, the store's one-transaction publish
and the exposed categories of ``pco.takeup: recent``. Stub LLMs and hand-computed values throughout."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from coea.evaluation.llm_methods import DualBestOfN
from coea.llm.prompts import PromptContext, category_text
from coea.llm.sft_config import LlmConfig
from tests.helpers import events

CATS = ["a", "b", "c", "d", "e"]
LOGP = np.array([[-1.0, -2.0, -3.0, -4.0, -5.0]])  # the N-LLM: a > b > c > d > e
P_YES = {"a": 0.01, "b": 0.9, "c": 0.5, "d": 0.8, "e": 0.7}  # the R-LLM


class StubDual(DualBestOfN):
    """``dual_best_of_n`` over CATS for one user, its N-LLM log-probabilities LOGP (no model is loaded)."""

    def __init__(self, **llm: object) -> None:
        super().__init__(SimpleNamespace(llm=LlmConfig(**llm)))
        self.categories, self.index = CATS, {c: i for i, c in enumerate(CATS)}
        bundle = SimpleNamespace(model=None, tokenizer=None)
        self.llms = SimpleNamespace(novelty=bundle, relevance=bundle)

    def contexts(self, users):
        return [PromptContext((0,), "", ()) for _ in users]

    def novelty_logprobs(self, users):
        return LOGP.copy()


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The stub R-LLM answers P_YES; returns the list of candidates it was asked about, in order."""
    import coea.llm.decode as decode

    asked: list[str] = []

    def relevance_scores(model, tokenizer, prompts, batch_size=64):
        for prompt in prompts:
            asked.append(next(c for c in CATS if prompt.endswith(category_text(c))))
        return np.array([P_YES[c] for c in asked[-len(prompts):]])

    monkeypatch.setattr(decode, "relevance_scores", relevance_scores)
    return asked


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_dual_ranks_the_verified_candidates_first_in_verified_score_order_then_the_rest_by_log_p(verified):
    """best_of_n=3 proposes a, b, c; verified at w=1: b = -2 + 2.197, c = -3 + 0, a = -1 - 4.595 (below d's
    log P of -4, yet a candidate still ranks above every non-candidate): b, c, a, then d, e by log P."""
    method = StubDual(best_of_n=3, verify_weight=1.0)
    assert method.recommend(["u"], 5) == {"u": ["b", "c", "a", "d", "e"]}
    assert verified == ["a", "b", "c"]


@pytest.mark.parametrize("weight", [0.5, 2.0])
def test_a_candidates_masked_score_is_log_p_plus_w_times_the_logit_of_p_yes(verified, weight):
    scores = StubDual(best_of_n=3, verify_weight=weight).masked_scores(["u"])[0]
    expected = [LOGP[0, j] + weight * _logit(P_YES[c]) for j, c in enumerate(CATS[:3])]
    assert scores[:3] == pytest.approx(expected)
    assert scores[1] == pytest.approx(-2.0 + weight * _logit(0.9))  # so it moves with w: -0.901 at .5, 2.394 at 2


def test_propose_top_sends_exactly_best_of_n_allowed_candidates_to_the_rllm(verified):
    """best_of_n=3 with a excluded: the R-LLM verifies exactly the three most likely allowed ones, b, c, d."""
    StubDual(best_of_n=3).masked_scores(["u"], exclude={"u": {"a"}})
    assert verified == ["b", "c", "d"]
    verified.clear()
    StubDual(best_of_n=1).masked_scores(["u"])
    assert verified == ["a"]


def test_chi2_columns_leave_out_a_two_valued_column():
    """Evidently's defaults pick its chi-square only for > 2 values: a binary column keeps its own test."""
    from coea.drift import _chi2_columns

    ref = pd.DataFrame({"two": [0, 1, 0, 1], "three": [0, 1, 2, 0], "group": ["g", "h", "g", "h"]})
    cur = pd.DataFrame({"two": [1, 1, 0, 0], "three": [2, 2, 1, 0], "group": ["g", "g", "h", "h"]})
    assert _chi2_columns(ref, cur, ["two", "three"], ["group"]) == ["three"]


def test_monitor_drift_with_a_dsie_dir_has_the_group_among_its_features(tmp_path: Path):
    from coea.config import SplitConfig
    from coea.data.loaders import LoadedData
    from coea.data.prepared import write_prepared
    from coea.drift import GROUP, DriftConfig
    from coea.stages.drift import run_monitor_drift

    users = [f"u{i}" for i in range(12)]
    rows = [(u, f"i{j}", "ABCD"[(i + j) % 4], 1_600_000_000 + 10 * j) for i, u in enumerate(users) for j in range(4)]
    write_prepared(LoadedData(events(rows), "test"), tmp_path / "data", {})
    dsie = tmp_path / "dsie"
    dsie.mkdir()
    pd.DataFrame({"user_id": users, "csid": ["0-1"] * 12, "group_id": ["0-1"] * 6 + ["0-2"] * 6,
                  "cold_start": [False] * 12}).to_parquet(dsie / "groups.parquet", index=False)
    cfg, split = DriftConfig(min_users=5), SplitConfig(n_future=1)  # each user's first 3 events: the history
    result = run_monitor_drift(cfg, tmp_path / "data", tmp_path / "data", dsie, tmp_path / "out", split=split)
    assert GROUP in [f.column for f in result.features]
    written = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert GROUP in [f["column"] for f in written["features"]]
    plain = run_monitor_drift(cfg, tmp_path / "data", tmp_path / "data", None, tmp_path / "plain", split=split)
    assert GROUP not in [f.column for f in plain.features]


def test_read_exposure_returns_each_users_categories_in_rank_order(tmp_path: Path):
    from coea.stages.pco import read_exposure

    path = tmp_path / "recs.parquet"
    pd.DataFrame({"user_id": ["u1", "u2", "u1", "u1", "u2"], "rank": [3, 2, 1, 2, 1],
                  "category": ["z", "q", "x", "y", "p"], "score": [0.1, 0.2, 0.9, 0.5, 0.8]}).to_parquet(path)
    assert read_exposure(path) == {"u1": ("x", "y", "z"), "u2": ("p", "q")}


def test_a_failure_making_the_new_version_active_leaves_no_new_version(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    """The version's rows and the active-version switch are one transaction: a failed switch rolls back its rows."""
    import coea.store.kv as kv
    from tests.unit.test_store_sqlite import user_frame

    with kv.KVStore(tmp_path / "recs.sqlite", keep_versions=3) as store:
        good = store.publish(user_frame(3, 2, marker=1))

        def boom(*args: object) -> None:
            raise sqlite3.OperationalError("disk I/O error (injected)")

        monkeypatch.setattr(kv, "_set_active", boom)
        with pytest.raises(sqlite3.OperationalError, match="injected"):
            store.publish(user_frame(3, 2, marker=2))
        assert store.active_version() == good
        assert [v.version for v in store.versions()] == [good]


def test_takeup_recent_exposes_only_served_categories_the_user_had_not_seen():
    """u0 had seen a, b (short-term set: b) and was served a, c, x. With ``takeup: recent`` a counts as a take-up
    (c, a, d in the feedback period), yet a served category already seen (a) is not "shown and ignored": the
    exposed set is {c, x}; c already joined the candidates as a take-up, so x alone is appended."""
    from coea.pco.config import PcoConfig
    from coea.pco.periods import RoundUsers, Window
    from coea.pco.round import reward_inputs

    history = events([("u0", "i", "a", 1), ("u0", "i", "b", 5), ("u0", "i", "c", 12), ("u0", "i", "a", 13),
                      ("u0", "i", "d", 15)])
    ru = RoundUsers(["u0"], [PromptContext((0,), "", ("b",))], [{"a", "b"}])
    ctx = SimpleNamespace(cfg=PcoConfig(takeup="recent", reward="feedback"), history=history, llm=None,
                          reward=SimpleNamespace(reads_feedback=True), exposure={"u0": ("a", "c", "x")})
    inputs, _, n_exposed = reward_inputs(ctx, 1, Window(0, 0, 10, 20), ru, [["d"]], None)
    assert inputs.feedback == [("c", "a", "d")]
    assert inputs.exposed == [{"c", "x"}] and not inputs.exposed[0] & ru.seen[0]
    assert inputs.candidates == [["d", "c", "x"]] and n_exposed == 1
