"""The PCO loss: sigmoid DPO plus alpha times a KL penalty towards a reference model (pure tensor maths).

Notation (per preference pair i, log-probs summed over the completion tokens):

    delta_i = (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))
    dpo_i   = -log sigmoid(beta * delta_i)                                  (Rafailov et al. 2023, eq. 7)

KL term. The completions y_w (chosen) and y_l (rejected) were *sampled from the N-LLM at the start of the
round*, which is the default reference. With r = pi(y) / ref(y) and y ~ ref, Schulman's "k3" estimator

    k3(y) = r - 1 - log r        (>= 0 for every sample; E_{y~ref}[k3] = KL(ref || pi) since E_ref[r] = 1)

is an unbiased, non-negative estimate of the forward KL(ref || pi). Forward KL is the anti-forgetting
direction: it grows when the policy drops probability mass the reference put on categories (a collapse
onto a few "safe" hits), which is exactly the novelty collapse PCO guards against. We average k3 over the
chosen and the rejected completion of each pair:

    kl_i   = (k3(y_w) + k3(y_l)) / 2
    loss   = mean_i(dpo_i) + alpha * mean_i(kl_i)

Why on the completions and not on full next-token distributions: the trainer's fused LM head yields only
the log-probs of the completion tokens (no (B, T, V) logits), so this estimate costs nothing extra, also for
a pretrained base with a 150k-token vocabulary. When the reference is the SFT model (option
``reference: sft``) the samples come from the round-start model instead, and the estimate is a proxy.
``log r`` is clamped to [-``clamp``, ``clamp``] so that one wildly moved sample cannot overflow ``exp``.

Optional NLL term (``nll`` > 0, RPO: Pang et al. 2024, "Iterative Reasoning Preference Optimization"; trl's
``rpo_alpha``): ``nll * mean_i(-log pi(y_w) / |y_w|)``, the per-token negative log-likelihood of the chosen
completions. DPO alone only moves the chosen/rejected *margin*, and can lower both likelihoods; with logged feedback
the chosen completions are categories the user really took up, so the NLL term is supervised fine-tuning on the new
feedback (continual fine-tuning) while DPO pushes down what was proposed and not taken up.

Optional soft preferences (``preference``: (N,) probabilities p_i that y_w is preferred, the conservative/soft-label
DPO of Mitchell 2023 with one label per pair): ``dpo_i = -p_i log sigmoid(beta * delta_i) - (1 - p_i) log
sigmoid(-beta * delta_i)``. p_i = 1 is the plain loss. Its minimum is at ``beta * delta_i = logit(p_i)``, so with
``p_i = sigmoid(beta * (r_w - r_l))`` for a reward r in nats the optimum is ``log pi - log ref = r + const``: a
finite shift by the reward, where hard labels (p = 1) push every margin on without bound.

With ``alpha = 0`` (and ``nll = 0``) the loss is trl's sigmoid DPO loss (``loss_type="sigmoid"``, reverse-KL
f-divergence, no label smoothing) exactly; ``tests/unit/test_losses.py`` checks it against trl's ``DPOTrainer``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class DpoKlOutput:
    """The scalar loss and its per-pair parts (all (N,) tensors except ``loss``)."""

    loss: torch.Tensor  # () mean DPO + alpha * mean KL
    dpo: torch.Tensor  # (N,) -log sigmoid(beta * delta)
    kl: torch.Tensor  # (N,) k3 estimate averaged over the chosen and rejected completion
    chosen_rewards: torch.Tensor  # (N,) beta * (log pi(y_w) - log ref(y_w)), detached
    rejected_rewards: torch.Tensor  # (N,) beta * (log pi(y_l) - log ref(y_l)), detached
    nll: torch.Tensor | None = None  # (N,) per-token NLL of the chosen completions (when an ``nll`` weight is set)

    @property
    def margins(self) -> torch.Tensor:
        """(N,) implicit reward margin ``chosen_rewards - rejected_rewards``."""
        return self.chosen_rewards - self.rejected_rewards


def k3_kl(log_ratio: torch.Tensor, clamp: float = 20.0) -> torch.Tensor:
    """Elementwise ``exp(x) - 1 - x`` with ``x = log(pi / ref)`` clamped to [-clamp, clamp]; always >= 0."""
    x = log_ratio.clamp(min=-clamp, max=clamp)
    return torch.expm1(x) - x


def dpo_kl_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, *, beta: float,
                alpha: float, clamp: float = 20.0, nll: float = 0.0,
                chosen_tokens: torch.Tensor | None = None,
                preference: torch.Tensor | None = None) -> DpoKlOutput:
    """Sigmoid DPO + ``alpha`` * KL(ref || policy) estimated on the pairs' completions (see module doc), plus
    ``nll`` * the chosen completions' per-token NLL (``chosen_tokens``: (N,) completion lengths; required then).
    ``preference``: (N,) soft labels P(chosen preferred) in [0, 1] (module doc); None = 1 for every pair.

    All inputs are (N,) sequence log-probs (summed over completion tokens) of N preference pairs.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    if nll < 0:
        raise ValueError(f"nll must be >= 0, got {nll!r}")
    if nll and chosen_tokens is None:
        raise ValueError("an nll weight needs chosen_tokens (the chosen completions' lengths)")
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # (N,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # (N,)
    logits = beta * (chosen_logratios - rejected_logratios)  # (N,)
    dpo = -F.logsigmoid(logits)  # (N,)
    if preference is not None:
        if preference.shape != logits.shape or bool(((preference < 0) | (preference > 1)).any()):
            raise ValueError(f"preference must be (N,) = {tuple(logits.shape)} probabilities in [0, 1]")
        dpo = preference * dpo - (1 - preference) * F.logsigmoid(-logits)
    kl = 0.5 * (k3_kl(chosen_logratios, clamp) + k3_kl(rejected_logratios, clamp))  # (N,)
    loss = dpo.mean()
    if alpha:
        loss = loss + alpha * kl.mean()
    chosen_nll = None
    if nll:
        chosen_nll = -policy_chosen_logps / chosen_tokens.clamp(min=1)  # (N,)
        loss = loss + nll * chosen_nll.mean()
    return DpoKlOutput(loss, dpo, kl, beta * chosen_logratios.detach(), beta * rejected_logratios.detach(),
                       chosen_nll)
