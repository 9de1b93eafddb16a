"""Training configs of the LLM stage (torch-free, so reading a config is cheap)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SftTrainConfig:
    """Supervised fine-tuning of one LLM with trl's SFTTrainer (completion-only loss)."""

    epochs: float = 2.0  # passes over the examples
    batch_size: int = 32  # examples per optimizer step
    lr: float = 3e-3  # from-scratch models like a high rate; use ~2e-4 for LoRA on a pretrained base
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05  # passed as warmup_steps: a float < 1 is a ratio of the total steps
    lr_scheduler: str = "cosine"
    max_length: int = 192  # tokens of prompt + completion; longer examples are truncated (keep start)
    max_examples: int | None = None  # cap (seeded subsample) to bound training time
    logging_steps: int = 20  # one log line (step, loss, ms/step) every this many steps
    seed: int = 0
    device: str = "cpu"  # "cpu" or "cuda"

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs!r}")
        for name in ("batch_size", "max_length", "logging_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.max_examples is not None and self.max_examples <= 0:
            raise ValueError(f"max_examples must be > 0 or None, got {self.max_examples!r}")
        if self.device.split(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
