"""Config of a DPO+KL update of the Novelty LLM (torch-free, so reading a config is cheap)."""

from __future__ import annotations

from dataclasses import dataclass

from coea.device import Precision
from coea.utils import as_enum, check_seed


@dataclass
class DpoTrainConfig:
    """One round's DPO+KL update of the N-LLM."""

    beta: float = 0.2  # DPO temperature: the implicit reward is beta * log(pi / ref)
    alpha: float = 0.4  # weight of the KL(ref || pi) penalty (0 = plain sigmoid DPO)
    # weight of the chosen completions' per-token NLL (RPO; 0 = off): with logged feedback, SFT on what users took up
    nll: float = 0.0
    epochs: float = 2.0  # passes over the round's pairs
    batch_size: int = 32  # pairs per optimizer step
    lr: float = 1e-3  # scratch models; ~5e-6..5e-5 for LoRA on a pretrained base
    max_length: int = 192  # prompt + completion tokens (truncation keeps the start)
    precompute_ref: bool = True  # reference log-probs computed once before the round's steps (no ref in memory)
    logging_steps: int = 10
    precision: Precision = Precision.AUTO  # auto = bf16 autocast on a CUDA GPU that supports it, fp32 on CPU
    compile: bool = False  # torch.compile the policy for the round's steps
    activation_checkpointing: bool = False  # as SftTrainConfig's: less memory, more compute (trl's default: on)
    seed: int = 0

    def __post_init__(self) -> None:
        self.precision = as_enum(Precision, "precision", self.precision)
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta!r}")
        check_seed("seed", self.seed)
        for name in ("alpha", "nll"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("epochs", "batch_size", "lr", "max_length", "logging_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
