"""Distillation update of the Novelty LLM: fit its distribution over each prompt's candidate categories to a target.

PCO's DPO+KL step optimises ``E_pi[r] - beta * KL(pi || ref)`` through preference pairs; that objective's optimum
is known in closed form, ``pi*(c) = ref(c) * exp(r(c) / beta) / Z`` (the same optimum the soft-label DPO of
:func:`coea.llm.losses.dpo_kl_loss` aims at). :func:`train_distill` fits it directly: per prompt the target is
``pi*`` over the prompt's candidates, and the loss is the forward KL ``KL(target || pi_theta)``, ``pi_theta`` the
N-LLM's probabilities of the candidates renormalised over them, plus ``dpo.alpha`` x KL(ref || pi_theta) over the same
candidates (the DPO+KL loss's explicit penalty, :func:`coea.llm.losses.dpo_kl_loss`; 0 = the "w/o KL" ablation, which
keeps the reference inside the target as DPO keeps it inside its implicit reward). Every candidate of a prompt is
fitted at once (a DPO pair compares two), so a round needs one forward pass per prompt with single-token category
names (the scratch tokenizer) and one per (prompt, candidate) with multi-token ones (a pretrained BPE tokenizer). A
plain torch loop (AdamW, constant rate): there is no trl trainer for a listwise target. With multi-token names a
category scores log P(its tokens | prompt) plus the end-of-name term, as ranking scores it
(:mod:`coea.llm.decode`), so a target that ranks a longer name above its prefix name (``Comedy|Drama`` over
``Comedy``) can be matched.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

from coea.console import progress
from coea.device import Precision, check_trainer_device
from coea.llm.decode import CategoryIndex, encode_texts, left_pad, name_logprobs, pad_token_id
from coea.llm.dpo_config import DpoTrainConfig
from coea.utils import freeze_gc_heap

log = logging.getLogger(__name__)


@dataclass
class DistillResult:
    """What one distillation update did: optimizer steps, seconds, prompts, KL(target || N-LLM) per epoch."""

    steps: int = 0
    seconds: float = 0.0
    n_prompts: int = 0
    kl: list[float] = field(default_factory=list)  # mean over prompts, measured during each epoch's steps

    @property
    def last_kl(self) -> float | None:
        return self.kl[-1] if self.kl else None


def target_distribution(ref_logprobs: np.ndarray, rewards: np.ndarray, beta: float) -> np.ndarray:
    """``pi*(c) ∝ ref(c) * exp(r(c) / beta)`` over one prompt's candidates (both (K,), nats); (K,) sums to 1."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    logits = np.asarray(ref_logprobs, dtype=np.float64) + np.asarray(rewards, dtype=np.float64) / beta
    if not np.all(np.isfinite(logits)):
        raise ValueError("the reference log-probs and rewards of every candidate must be finite")
    z = np.exp(logits - logits.max())
    return z / z.sum()


def _padded(candidates: Sequence[Sequence[int]], targets: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, K) category columns (-1 pads) and (P, K) target probabilities (0 on pads), K the most candidates."""
    width = max(len(c) for c in candidates)
    cols = torch.full((len(candidates), width), -1, dtype=torch.long)
    probs = torch.zeros((len(candidates), width), dtype=torch.float32)
    for row, (cs, t) in enumerate(zip(candidates, targets, strict=True)):
        if len(cs) != len(t):
            raise ValueError(f"prompt {row}: {len(cs)} candidates but {len(t)} target probabilities")
        cols[row, :len(cs)] = torch.tensor(list(cs), dtype=torch.long)
        probs[row, :len(cs)] = torch.as_tensor(np.asarray(t, dtype=np.float32))
    return cols, probs


def _single_token_logits(model, seqs: Sequence[Sequence[int]], pad_id: int, index: CategoryIndex,
                         cols: torch.Tensor) -> torch.Tensor:
    """(B, K) log P(candidate | prompt) with gradients: one forward per prompt (names are one token)."""
    ids, mask, pos = left_pad(seqs, pad_id, cols.device)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1).logits[:, -1].float()
    lp = torch.log_softmax(logits, dim=-1)  # (B, V)
    return lp.gather(1, index.first_ids.to(cols.device)[cols.clamp(min=0)])  # (B, K)


def _multi_token_logits(model, seqs: Sequence[Sequence[int]], pad_id: int, index: CategoryIndex,
                        cols: torch.Tensor) -> torch.Tensor:
    """(B, K) log P(candidate name | prompt) with gradients: one forward per (prompt, candidate), as
    :func:`coea.llm.decode.score_categories_exhaustive` scores them (pads score the first name; the loss masks them)."""
    flat = [(r, int(c)) for r in range(cols.shape[0]) for c in cols[r].tolist()]
    names = [index.token_ids[max(c, 0)] for _, c in flat]
    return name_logprobs(model, [seqs[r] for r, _ in flat], names, pad_id, index.max_len,
                         index.boundary_ids).view(cols.shape)


def distill_loss(cand_logprobs: torch.Tensor, cols: torch.Tensor, probs: torch.Tensor,
                 anchor: torch.Tensor | None = None, alpha: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean over rows of KL(target || N-LLM) + ``alpha`` x KL(anchor || N-LLM), the N-LLM renormalised over each
    row's candidates (up to the rows' constant entropies: cross-entropies are what is minimised), and the (B,)
    KL(target || N-LLM)); pads (``cols`` -1) carry no probability on any side."""
    valid = cols >= 0
    logq = torch.log_softmax(cand_logprobs.masked_fill(~valid, float("-inf")), dim=-1)  # (B, K)
    logq = logq.masked_fill(~valid, 0.0)
    cross = -(probs * logq).sum(-1)  # (B,)
    entropy = -(probs * torch.log(probs.clamp(min=1e-30))).sum(-1)
    loss = cross.mean()
    if alpha and anchor is not None:
        loss = loss + alpha * (-(anchor * logq).sum(-1)).mean()
    return loss, (cross - entropy).detach()


def _autocast(device: str, precision: Precision):
    use_bf16 = device.startswith("cuda") and (precision is Precision.BF16 or (
        precision is Precision.AUTO and torch.cuda.is_bf16_supported()))
    return torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else nullcontext()


def _check_inputs(name: str, prompts: Sequence[str], candidates: Sequence, targets: Sequence) -> None:
    if not prompts:
        raise ValueError(f"{name}: no prompts to distil")
    if not len(prompts) == len(candidates) == len(targets):
        raise ValueError(f"prompts, candidates and targets differ in length: {len(prompts)}, {len(candidates)}, "
                         f"{len(targets)}")


def train_distill(cfg: DpoTrainConfig, model, tokenizer, prompts: Sequence[str], index: CategoryIndex,
                  candidates: Sequence[Sequence[str]], targets: Sequence[np.ndarray],
                  anchors: Sequence[np.ndarray] | None = None, *, name: str = "novelty",
                  device: str = "cpu") -> DistillResult:
    """Update ``model`` in place on ``device``: ``cfg.epochs`` passes over the prompts in shuffled batches of
    ``cfg.batch_size`` (seed ``cfg.seed``), AdamW at the constant rate ``cfg.lr``, minimising KL(target || N-LLM)
    over each prompt's ``candidates`` (``targets[i]`` their probabilities, e.g. :func:`target_distribution`), plus
    ``cfg.alpha`` x KL(anchor || N-LLM) with ``anchors[i]`` the reference's probabilities of them (renormalised)."""
    _check_inputs(name, prompts, candidates, targets)
    check_trainer_device(device)
    freeze_gc_heap()
    model.to(device)
    seqs, pad = encode_texts(tokenizer, prompts), pad_token_id(tokenizer)
    cols, probs = _padded([[index.position[c] for c in cs] for cs in candidates], targets)
    anchor = _padded([[0] * len(cs) for cs in candidates], anchors)[1] if anchors is not None and cfg.alpha else None
    forward = _single_token_logits if index.single_token else _multi_token_logits
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    n, steps_per_epoch = len(seqs), math.ceil(len(seqs) / cfg.batch_size)
    total = max(1, math.ceil(steps_per_epoch * cfg.epochs))
    result, start, was_training = DistillResult(n_prompts=n), time.perf_counter(), model.training
    model.train()
    try:
        while result.steps < total:
            order, kls = torch.randperm(n, generator=gen), []
            for b in range(steps_per_epoch):
                if result.steps >= total:
                    break
                rows = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                c, t = cols[rows].to(device), probs[rows].to(device)
                a = anchor[rows].to(device) if anchor is not None else None
                with _autocast(device, cfg.precision):
                    lp = forward(model, [seqs[i] for i in rows.tolist()], pad, index, c)
                loss, kl = distill_loss(lp, c, t, a, cfg.alpha)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                result.steps += 1
                kls.append(kl.cpu())
            result.kl.append(float(torch.cat(kls).mean()))
            log.info("%s distil: epoch %d, KL(target || N-LLM) %.4f", name, len(result.kl), result.kl[-1],
                     extra=progress(f"{name} distil"))
    finally:
        model.train(was_training)
    result.seconds = time.perf_counter() - start
    log.info("%s distil: %d prompts, %d steps, last KL %.4f, %.1fs", name, n, result.steps, result.kl[-1],
             result.seconds)
    return result
