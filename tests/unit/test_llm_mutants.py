"""Pins of the DPO+KL loss a mutation audit found unguarded: the k3 clamp keeps a wildly moved sample's KL finite,
and the trainer's NLL term divides by the CHOSEN completions' token counts. Tiny model, one batch, no training."""

import copy
import math

import pytest
import torch

from coea.llm.dpo import DpoKlTrainer, DpoTrainConfig, dpo_args
from coea.llm.losses import dpo_kl_loss
from tests.unit.test_losses import _logp, tiny  # noqa: F401  (tiny: a fixture)

# mutation 17: llm/losses.py k3_kl clamps the log ratio to [-clamp, clamp]


def test_a_huge_log_ratio_gives_the_finite_kl_of_the_clamped_ratio():
    """log ratios +1000 and -1000 (chosen, rejected) are clamped to +-20: kl = (e^20 - 1 - 20 + e^-20 - 1 + 20) / 2,
    finite, and so is the loss; a smaller clamp gives the smaller value."""
    pc, pr = torch.tensor([1000.0]), torch.tensor([-1000.0])
    ref = torch.tensor([0.0])
    out = dpo_kl_loss(pc, pr, ref, ref, beta=0.1, alpha=1.0)
    expected = (math.expm1(20.0) - 20.0 + math.expm1(-20.0) + 20.0) / 2
    assert torch.isfinite(out.kl).all() and torch.isfinite(out.loss)
    assert float(out.kl[0]) == pytest.approx(expected, rel=1e-6)
    small = dpo_kl_loss(pc, pr, ref, ref, beta=0.1, alpha=1.0, clamp=2.0)
    assert float(small.kl[0]) == pytest.approx((math.expm1(2.0) - 2.0 + math.expm1(-2.0) + 2.0) / 2, rel=1e-6)


# mutation 18: llm/dpo.py DpoKlTrainer.compute_loss counts the chosen half's completion tokens

def test_the_trainers_nll_term_is_the_chosen_log_probability_per_chosen_token(tiny, tmp_path, monkeypatch):  # noqa: F811
    """Chosen completions ``d e f </s>`` (4 tokens), rejected ``e </s>`` (2): the NLL handed to the loss is
    -log pi(chosen) / 4, the chosen completion's own length, not the rejected one's."""
    from datasets import Dataset

    from coea.llm import dpo

    model, tok = tiny
    prompt = "group: <a_1> recent: a b ; novel:"
    pairs = [{"prompt": prompt, "chosen": " d e f </s>", "rejected": " e </s>"}] * 2
    cfg = DpoTrainConfig(batch_size=2, precompute_ref=False)
    trainer = DpoKlTrainer(model=model, ref_model=copy.deepcopy(model), args=dpo_args(cfg, str(tmp_path)),
                           train_dataset=Dataset.from_list(pairs), processing_class=tok, nll=1.0)
    seen = []
    real = dpo.dpo_kl_loss
    monkeypatch.setattr(dpo, "dpo_kl_loss", lambda *a, **kw: seen.append(real(*a, **kw)) or seen[-1])
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["completion_mask"].sum(dim=1).tolist() == [4, 4, 2, 2]  # chosen first, then rejected
    with torch.no_grad():
        trainer.compute_loss(model, batch)
    chosen_logp = _logp(model, tok, prompt, " d e f </s>")
    assert seen[0].nll.tolist() == pytest.approx([-chosen_logp / 4] * 2, rel=1e-4)
