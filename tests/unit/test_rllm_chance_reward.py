"""An R-LLM whose held-out AUC is near chance is a warning only when the configured PCO reward scores candidates
with its P(yes); with the default feedback reward (which never reads it) it is an INFO line."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from coea.llm import run as llm_run
from coea.llm.prompts import PromptContext
from coea.llm.sft_data import relevance_examples
from coea.pco.config import PcoConfig, RewardKind


class _Bundle:
    model = tokenizer = None


@pytest.fixture
def held(monkeypatch):
    """Held-out R-LLM examples whose P(yes) is the same for all: AUC 0.5."""
    from coea.llm import decode

    ctx = [PromptContext((i % 2,), f"p{i}", (f"s{i}",)) for i in range(10)]
    ex = relevance_examples([(c, [f"t{i}", "a"], {f"s{i}"}) for i, c in enumerate(ctx)], 1, "</s>",
                            np.random.default_rng(0))
    monkeypatch.setattr(decode, "relevance_scores", lambda model, tok, prompts, batch_size: np.full(12, 0.5))
    return ex.split_off(12)[1]


def _records(caplog, held, reward):
    caplog.set_level(logging.INFO, logger="coea")
    assert llm_run.heldout_auc(_Bundle(), held, 64, reward)["heldout_auc"] == 0.5
    return [(r.levelno, r.getMessage()) for r in caplog.records if "held-out AUC" in r.getMessage()]


def test_the_default_feedback_reward_gets_an_info_line_not_a_warning(caplog, held):
    assert PcoConfig().reward is RewardKind.FEEDBACK
    ((level, text),) = _records(caplog, held, PcoConfig().reward)
    assert level == logging.INFO and "pco.reward feedback does not score with it" in text
    assert "close to noise" not in text


@pytest.mark.parametrize("reward", ["teacher", RewardKind.FEEDBACK])
def test_rewards_that_never_read_the_rllm_get_no_warning(caplog, held, reward):
    assert [level for level, _ in _records(caplog, held, reward)] == [logging.INFO]


@pytest.mark.parametrize("reward", ["serendipity", "relevance", "hybrid"])
def test_rewards_that_score_with_the_rllm_warn_and_name_the_reward(caplog, held, reward):
    ((level, text),) = _records(caplog, held, reward)
    assert level == logging.WARNING and f"PCO's rewards (pco.reward {reward}) are close to noise" in text


def test_an_unknown_reward_still_warns_naming_the_rewards_it_would_matter_for(caplog, held):
    ((level, text),) = _records(caplog, held, None)
    assert level == logging.WARNING and "pco.reward hybrid, relevance, serendipity" in text and "feedback" in text


def test_the_rewards_that_warn_are_exactly_the_rllm_judged_rewards():
    from coea.pco.reward import REWARDS, RllmReward

    assert {kind for kind, cls in REWARDS.items() if issubclass(cls, RllmReward)} == llm_run.RLLM_REWARDS
