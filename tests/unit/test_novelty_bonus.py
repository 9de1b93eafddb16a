"""``llm.novelty_bonus``: coea's plain-view list ranks by log P_N + the bonus for each category outside the user's
history; its ``+x`` list (history dropped) and every other method's lists do not move."""

from __future__ import annotations

import numpy as np
import pytest

from coea.evaluation.llm_methods import Coea, NoveltySft
from coea.evaluation.registry import MethodContext
from coea.llm.sft_config import LlmConfig

CATEGORIES = ["a", "b", "c", "d"]
# user u saw a and b; v has no history (cold: every category unseen, so the bonus is a constant for them)
LOGP = np.log(np.array([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]]))


def _method(cls, bonus: float, monkeypatch: pytest.MonkeyPatch):
    """A fitted-looking ``cls`` whose N-LLM log-probabilities are :data:`LOGP` (no model is read)."""
    monkeypatch.setattr(NoveltySft, "score", lambda self, users: LOGP[[["u", "v"].index(u) for u in users]])
    method = cls(MethodContext(seed=0, llm=LlmConfig(novelty_bonus=bonus)))
    method.categories, method.index = CATEGORIES, {c: i for i, c in enumerate(CATEGORIES)}
    method.user_history = {"u": {"a", "b"}}
    return method


def test_the_bonus_lifts_unseen_categories_in_coeas_plain_list_only(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _method(Coea, 0.0, monkeypatch).recommend(["u", "v"], 2)
    bonused = _method(Coea, 1.0, monkeypatch).recommend(["u", "v"], 2)
    assert plain == {"u": ["a", "b"], "v": ["d", "c"]}
    # c: log .15 + 1 = -0.90, above b (log .3 = -1.20), below a (log .5 = -0.69)
    assert bonused == {"u": ["a", "c"], "v": ["d", "c"]}
    assert _method(Coea, 6.0, monkeypatch).recommend(["u"], 2) == {"u": ["c", "d"]}
    # the baseline the target is measured against keeps its own list
    assert _method(NoveltySft, 6.0, monkeypatch).recommend(["u"], 2) == {"u": ["a", "b"]}


@pytest.mark.parametrize("bonus", [0.5, 4.0, 40.0])
def test_the_plus_x_list_is_the_same_whatever_the_bonus(bonus: float, monkeypatch: pytest.MonkeyPatch) -> None:
    exclude = {"u": {"a", "b"}}
    assert (_method(Coea, bonus, monkeypatch).recommend(["u", "v"], 2, exclude)
            == _method(Coea, 0.0, monkeypatch).recommend(["u", "v"], 2, exclude) == {"u": ["c", "d"], "v": ["d", "c"]})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.5])
def test_a_bonus_that_is_not_a_finite_number_at_least_0_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="novelty_bonus must be a finite number >= 0"):
        LlmConfig(novelty_bonus=bad)


def test_metrics_md_says_when_coeas_plain_list_carries_the_bonus() -> None:
    from coea.evaluation.evaluate import ranking_note

    assert "llm.novelty_bonus 4 " in ranking_note(LlmConfig(novelty_bonus=4.0), {"coea": {}, "coea+x": {}})
    assert ranking_note(LlmConfig(), {"coea": {}}) == ""  # no bonus
    assert ranking_note(LlmConfig(novelty_bonus=4.0), {"coea+x": {}, "nllm_sft": {}}) == ""  # no plain coea list
