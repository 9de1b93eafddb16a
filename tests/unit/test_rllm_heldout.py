"""The R-LLM's held-out check: examples held out of its SFT and the AUC of its P(yes) on them (a judge at chance
warns)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from coea.llm import run as llm_run
from coea.llm.prompts import PromptContext
from coea.llm.sft_data import relevance_examples


def _examples(n_cuts: int = 10):
    ctx = [PromptContext((i % 2,), f"p{i}", (f"s{i}",)) for i in range(n_cuts)]
    cuts = [(c, [f"t{i}", "a"], {f"s{i}"}) for i, c in enumerate(ctx)]
    return relevance_examples(cuts, 1, "</s>", np.random.default_rng(0))


def test_split_off_holds_out_the_last_n_examples_and_keeps_every_other_for_training():
    ex = _examples()
    train, held = ex.split_off(7)
    assert len(held) == 7 and len(train) == len(ex) - 7
    assert list(train) + list(held) == list(ex)
    assert held.labels == [label for _, _, label in ex.specs[-7:]]
    assert [e["completion"].startswith(" yes") for e in held] == held.labels
    assert len(ex.split_off(0)[1]) == 0 and len(ex.split_off(10**6)[0]) == 0


class _Bundle:
    model = tokenizer = None


def test_heldout_auc_is_the_roc_auc_of_p_yes_and_warns_for_a_judge_at_chance(monkeypatch, caplog):
    from sklearn.metrics import roc_auc_score

    from coea.llm import decode

    held = _examples().split_off(12)[1]
    labels = np.array(held.labels, dtype=float)
    rng = np.random.default_rng(1)
    informative = labels * 0.5 + rng.uniform(0, 0.6, len(labels))  # mostly ordered: AUC well above 0.5
    monkeypatch.setattr(decode, "relevance_scores", lambda model, tok, prompts, batch_size: informative)
    with caplog.at_level(logging.WARNING):
        out = llm_run.heldout_auc(_Bundle(), held, 64)
    assert out == {"heldout_examples": 12, "heldout_auc": pytest.approx(roc_auc_score(labels, informative), abs=1e-4)}
    assert out["heldout_auc"] > llm_run.CHANCE_AUC and "chance" not in caplog.text

    monkeypatch.setattr(decode, "relevance_scores", lambda model, tok, prompts, batch_size: np.full(12, 0.506))
    with caplog.at_level(logging.WARNING):
        assert llm_run.heldout_auc(_Bundle(), held, 64)["heldout_auc"] == 0.5
    assert "held-out AUC is 0.500 (0.5 = chance)" in caplog.text


def test_heldout_auc_is_skipped_when_the_heldout_examples_hold_one_answer(monkeypatch):
    from coea.llm import decode

    held = _examples().split_off(12)[1]
    held.specs = [s for s in held.specs if s[2]]
    monkeypatch.setattr(decode, "relevance_scores", lambda *a, **k: pytest.fail("nothing to score"))
    assert llm_run.heldout_auc(_Bundle(), held, 64) == {}
