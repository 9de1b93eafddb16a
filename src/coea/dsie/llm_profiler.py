"""The ``llm`` profiler: prompt a local Hugging Face causal LM with a group's statistics.

Loading is offline (``local_files_only=True``): nothing touches a model hub. A model trained from scratch on
our machines only exercises this code path; readable profiles need a real pretrained model given as a local
directory (``dsie.profile.model_path``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coea.device import model_device
from coea.errors import CoeaInputError

log = logging.getLogger(__name__)


def profile_prompt(stats: Mapping[str, Any]) -> str:
    """The instruction given to the profile LLM."""
    favs = ", ".join(f"{t['category']} {t['share']:.0%}" for t in stats["top_categories"])
    return (
        "Write a short profile of a group of users for a recommender system. "
        f"The group has {stats['size']} users. Their favourite categories are: {favs}. "
        f"They explore {stats['breadth']:.0f} categories on average and adopt new categories at a rate of "
        f"{stats['adoption_rate']:.0%}. Profile:"
    )


class LlmProfiler:
    """Loads the model once onto ``device``; ``profile(stats)`` generates greedily (deterministic)."""

    def __init__(self, model_path: Path, max_new_tokens: int = 48, *, device: str = "cpu") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not Path(model_path).is_dir():
            raise CoeaInputError("model directory not found", source=model_path,
                                 fix="set dsie.profile.model_path to a local Hugging Face model directory")
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True).to(device)
        self.model.eval()
        self.max_new_tokens = max_new_tokens

    def profile(self, stats: Mapping[str, Any]) -> str:
        import torch

        enc = self.tokenizer(profile_prompt(stats), return_tensors="pt").to(model_device(self.model))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad)
        new = out[0, enc["input_ids"].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()
