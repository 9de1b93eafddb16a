"""pco.soft_preferences: the teacher's pairs reach DPO with their Bradley-Terry probability as a soft label."""

import math
from types import SimpleNamespace

import pytest

import coea.llm.dpo as dpo_module
from coea.llm.dpo_config import DpoTrainConfig
from coea.pco.config import PcoConfig
from coea.pco.pairs import PreferencePair
from coea.pco.round import dpo_update

PAIRS = [PreferencePair("novel:", "a", "b", chosen_score=-0.5, rejected_score=-2.5),
         PreferencePair("novel:", "c", "d", chosen_score=1.0, rejected_score=0.9)]


def _sent(monkeypatch, cfg: PcoConfig) -> list[dict]:
    seen = []
    monkeypatch.setattr(dpo_module, "train_dpo", lambda dpo_cfg, model, tok, data, **kw: seen.extend(data))
    ctx = SimpleNamespace(cfg=cfg, sft_reference=object(), device="cpu")
    novelty = SimpleNamespace(model=None, tokenizer=SimpleNamespace(eos_token="</s>"))
    dpo_update(ctx, novelty, PAIRS, DpoTrainConfig(beta=0.2))
    return seen


def test_soft_labels_are_sigmoid_of_beta_times_the_score_gap(monkeypatch):
    sent = _sent(monkeypatch, PcoConfig(reward="teacher", soft_preferences=True))
    assert [row["preference"] for row in sent] == pytest.approx([1 / (1 + math.exp(-0.2 * 2.0)),
                                                                  1 / (1 + math.exp(-0.2 * 0.1))])
    assert all("preference" not in row for row in _sent(monkeypatch, PcoConfig(reward="teacher")))  # hard labels


def test_soft_labels_need_the_teacher_reward():
    with pytest.raises(ValueError, match="soft_preferences needs reward teacher"):
        PcoConfig(reward="feedback", soft_preferences=True)
