"""DPO + KL training of the Novelty LLM through trl's ``DPOTrainer``.

:class:`DpoKlTrainer` overrides one method, ``compute_loss``: the policy's completion log-probs come from the
same fused-LM-head forward trl uses, the reference log-probs from trl itself (precomputed once per round by
default, or ``compute_ref_log_probs``; a PEFT policy without an explicit reference is compared with trl's frozen
copy of its adapter as it was at the start: a ``ref`` adapter), and the loss from the pure
:func:`coea.llm.losses.dpo_kl_loss`. Everything else (dataset preparation, the preference collator, reference
handling, optimisation) is trl's.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from trl import DPOTrainer

from coea.device import check_trainer_device, labelled_positions_only, trainer_flags
from coea.errors import CoeaInputError
from coea.llm.dpo_config import DpoTrainConfig
from coea.llm.losses import dpo_kl_loss
from coea.llm.models import is_peft, unpatch_forward
from coea.llm.sft import LogLines
from coea.llm.trainer_output import no_step_bar, quiet_callbacks, quiet_training
from coea.utils import freeze_gc_heap

log = logging.getLogger(__name__)


PREFERENCE = "preference"  # optional pair field: P(chosen preferred), the soft label of dpo_kl_loss


class _WithPreference:
    """trl's preference collator, plus a (B,) ``preference`` tensor when the examples carry one."""

    def __init__(self, collator) -> None:
        self.collator = collator

    def __call__(self, examples):
        batch = self.collator(examples)
        if PREFERENCE in examples[0]:
            batch[PREFERENCE] = torch.tensor([float(e[PREFERENCE]) for e in examples])
        return batch


class DpoKlTrainer(DPOTrainer):
    """trl's DPOTrainer with the loss replaced by :func:`dpo_kl_loss` (sigmoid DPO + ``kl_alpha`` * KL +
    ``nll`` * the chosen completions' per-token NLL), reading a pair's optional ``preference`` soft label."""

    def __init__(self, *args, kl_alpha: float = 0.0, nll: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.loss_types != ["sigmoid"] or self.ld_alpha is not None or self.f_divergence_type != "reverse_kl":
            raise ValueError("DpoKlTrainer supports loss_type=['sigmoid'], ld_alpha=None, reverse_kl only")
        if kl_alpha < 0:
            raise ValueError(f"kl_alpha must be >= 0, got {kl_alpha!r}")
        self.kl_alpha = kl_alpha
        self.nll = nll
        self.data_collator = _WithPreference(self.data_collator)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if PREFERENCE not in self._signature_columns:  # keep the soft labels through remove_unused_columns
            self._signature_columns = [*self._signature_columns, PREFERENCE]

    def compute_ref_log_probs(self, model, inputs):
        """trl's reference forward, without the soft labels (not a model input)."""
        return super().compute_ref_log_probs(model, {k: v for k, v in inputs.items() if k != PREFERENCE})

    def _policy_logps(self, model, inputs) -> torch.Tensor:
        """(2B,) completion log-probs, chosen first; the forward trl's own loss uses."""
        model_kwargs = {k: v for k, v in inputs.items()
                        if k not in {"completion_mask", "ref_chosen_logps", "ref_rejected_logps", PREFERENCE}}
        model_kwargs["use_cache"] = False
        completion_mask = inputs["completion_mask"]  # (2B, T)
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)  # (2B, T)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        return outputs.log_probs[:, -(completion_mask.size(1) - 1):].sum(dim=1)  # (2B,)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        chosen, rejected = self._policy_logps(model, inputs).chunk(2, dim=0)  # (B,), (B,)
        chosen_tokens = inputs["completion_mask"].chunk(2, dim=0)[0].sum(dim=1)  # (B,)
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_chosen, ref_rejected = self.compute_ref_log_probs(self.ref_model or model, inputs)
        out = dpo_kl_loss(chosen, rejected, ref_chosen, ref_rejected, beta=self.beta, alpha=self.kl_alpha,
                          nll=self.nll, chosen_tokens=chosen_tokens, preference=inputs.get(PREFERENCE))
        metrics = self._metrics["train" if self.model.training else "eval"]
        for key, value in (("dpo", out.dpo.mean()), ("kl", out.kl.mean()), ("rewards/margins", out.margins.mean()),
                           ("rewards/chosen", out.chosen_rewards.mean()),
                           ("rewards/accuracies", (out.margins > 0).float().mean()),
                           *((("nll", out.nll.mean()),) if out.nll is not None else ())):
            metrics[key].append(self.accelerator.gather_for_metrics(value.detach()).mean().item())
        return (out.loss, None) if return_outputs else out.loss


@dataclass
class DpoResult:
    """What one DPO round logged: mean DPO loss, KL estimate and reward margin per logging step."""

    steps: int = 0
    seconds: float = 0.0
    n_pairs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def last(self, key: str) -> float | None:
        vals = [h[key] for h in self.history if key in h]
        return vals[-1] if vals else None


def dpo_args(cfg: DpoTrainConfig, output_dir: str, device: str = "cpu", n_pairs: int | None = None):
    """trl ``DPOConfig`` for one round on ``device`` (CPU-safe settings; no checkpoints: PCO writes its own). With
    ``n_pairs``, a round of fewer optimizer steps than ``logging_steps`` logs its last one (else it logged nothing
    and its margin read as "no update")."""
    from trl import DPOConfig

    logging_steps = cfg.logging_steps
    if n_pairs:
        logging_steps = max(1, min(logging_steps, math.ceil(math.ceil(n_pairs / cfg.batch_size) * cfg.epochs)))

    return DPOConfig(
        output_dir=output_dir, beta=cfg.beta, loss_type=["sigmoid"], num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr, lr_scheduler_type="constant",
        max_length=cfg.max_length, precompute_ref_log_probs=cfg.precompute_ref, logging_steps=logging_steps,
        save_strategy="no", report_to="none", seed=cfg.seed, data_seed=cfg.seed, disable_tqdm=no_step_bar(),
        **trainer_flags(device, cfg.precision, compile_model=cfg.compile,
                           checkpointing=cfg.activation_checkpointing),
    )


def pairs_within(tokenizer, pairs: Sequence[dict[str, str]], max_length: int) -> tuple[int, int]:
    """How many of ``pairs`` trl's DPOTrainer keeps at ``max_length``: those whose prompt (the token ids the prompt
    shares with prompt + chosen and prompt + rejected) is shorter; it drops the others, whose completions keep-start
    truncation would cut away entirely. Also the longest prompt + completion's token count, the max_length that
    keeps every pair whole."""
    from trl.data_utils import common_prefix_length

    def ids(texts: list[str]) -> list[list[int]]:
        return tokenizer(texts, return_attention_mask=False, return_token_type_ids=False)["input_ids"]

    prompts = ids([p["prompt"] for p in pairs])
    chosen = ids([p["prompt"] + p["chosen"] for p in pairs])
    rejected = ids([p["prompt"] + p["rejected"] for p in pairs])
    kept = sum(len(a) < max_length or min(common_prefix_length(a, b), common_prefix_length(a, c)) < max_length
               for a, b, c in zip(prompts, chosen, rejected, strict=True))
    return kept, max((max(len(b), len(c)) for b, c in zip(chosen, rejected, strict=True)), default=0)


def _check_pairs_fit(tokenizer, pairs: Sequence[dict[str, str]], max_length: int, name: str) -> None:
    """A warning when some pairs' prompts fill ``max_length`` (trl drops them), a CoeaInputError when all do (trl
    would fail on an empty data set with ``torch.cat(): expected a non-empty list of Tensors``) or most do (the
    pairs left would be those of the shortest histories)."""
    kept, longest = pairs_within(tokenizer, pairs, max_length)
    fix = (f"raise pco.dpo.max_length (to {longest} to keep every pair whole), or shorten the prompt "
           "(llm.data.sequence, items, long_term): a sub-word tokenizer spends several tokens on each name")
    if not kept:
        raise CoeaInputError(f"{name}: no DPO pair's prompt fits within max_length {max_length} (every completion "
                             "would be cut away)", option="pco.dpo.max_length", fix=fix)
    if 2 * kept < len(pairs):
        raise CoeaInputError(f"{name}: only {kept} of {len(pairs)} DPO pairs have a prompt within max_length "
                             f"{max_length} (the update would learn from the shortest histories alone)",
                             option="pco.dpo.max_length", fix=fix)
    if kept < len(pairs):
        log.warning("%s dpo: %d of %d pairs have a prompt of max_length %d tokens or more and are left out; %s",
                    name, len(pairs) - kept, len(pairs), max_length, fix)


def train_dpo(cfg: DpoTrainConfig, model, tokenizer, pairs: list[dict[str, str]], *, ref_model=None,
              name: str = "novelty", device: str = "cpu", callbacks: Sequence = ()) -> DpoResult:
    """Update ``model`` in place on ``device`` (a resolved torch device string; the model and ``ref_model`` are
    moved there first) on ``pairs`` ({prompt, chosen, rejected}, optionally ``preference``: the pair's soft label,
    see :func:`coea.llm.losses.dpo_kl_loss`) with DPO + ``cfg.alpha`` * KL.

    ``ref_model``: the frozen reference (required for a full model, e.g. the scratch N-LLM; ``None`` with a
    LoRA policy means trl's own: a frozen copy of the adapter as it is when training starts, which for fresh
    zero-initialised adapters is the base model; PCO always passes one, ``round_reference``).
    """
    from datasets import Dataset

    if not pairs:
        raise ValueError(f"{name}: no preference pairs for DPO (lower the margin or sample more candidates)")
    if ref_model is None and not is_peft(model):
        raise ValueError(f"{name}: a full (non-LoRA) policy needs an explicit ref_model")
    _check_pairs_fit(tokenizer, pairs, cfg.max_length, name)
    check_trainer_device(device)
    freeze_gc_heap()
    model.to(device)
    if ref_model is not None:
        # trl unwraps a peft policy before patching its forward but patches the reference whole: a peft reference
        # (PCO's frozen copy of a LoRA N-LLM) then asked its adapter wrapper for hidden states and every update
        # failed. The unwrapped module still runs the copied adapter (peft injects it into the base's layers).
        ref_model = (ref_model.get_base_model() if is_peft(ref_model) else ref_model).to(device)
    with (tempfile.TemporaryDirectory(prefix=f"coea-dpo-{name}-") as tmp, labelled_positions_only(device),
          quiet_training()):
        trainer = quiet_callbacks(DpoKlTrainer(
            model=model, ref_model=ref_model, args=dpo_args(cfg, tmp, device, len(pairs)),
            train_dataset=Dataset.from_list(pairs), processing_class=tokenizer,
            callbacks=[LogLines(f"{name} dpo"), *callbacks], kl_alpha=cfg.alpha, nll=cfg.nll))
        start = time.perf_counter()
        out = trainer.train()
        seconds = time.perf_counter() - start
    for m in (model, ref_model):  # copies of the model must run their own weights (see unpatch_forward)
        if m is not None:
            unpatch_forward(m)
    history = [{k: float(v) for k, v in e.items() if isinstance(v, int | float)}
               for e in trainer.state.log_history if "loss" in e]
    result = DpoResult(out.global_step, seconds, len(pairs), history)
    log.info("%s dpo: %d pairs, %d steps, mean loss %.4f, last logged kl %s, margin %s, %.1fs", name, len(pairs),
             out.global_step, out.training_loss, _num(result.last("kl")), _num(result.last("rewards/margins")), seconds)
    return result


def _num(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"
