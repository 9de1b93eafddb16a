"""How many tokens the LLMs' SFT examples take under a local tokenizer: what ``max_length`` a pretrained base needs.

A sizing analysis, not a speed benchmark (``make bench`` does not run it). It builds the run's SFT examples exactly
as ``coea train-llms`` does (:func:`coea.llm.sft_data.build_sft_examples`: the run's histories under its split, its
DSIE groups and profiles, the config's ``llm.data``) for the prompt variants below, adds the CSID code tokens to the
tokenizer as the pretrained path does (one token each), and prints per LLM and variant the token counts of prompt
and prompt + completion (median, 95th percentile, max) over a random sample, and the share that fits each
``max_length`` asked (``coea`` leaves out an SFT example that does not fit whole, with a warning).

    python benchmarks/analysis_prompt_lengths.py --run RUN --tokenizer DIR [--config C] [--sample 4000]
        [--max-length 192,512,768]

``RUN``: a run folder with ``data/`` and ``dsie/`` (``coea group`` writes both). ``DIR``: a local Hugging Face
tokenizer (a pretrained base model's folder). No hub is reached. Session 57 measured Qwen's byte-level BPE (the
vocabulary Qwen2 and Qwen2.5 share), converted from the ``qwen.tiktoken`` file of PyPI's ``dashscope`` package with
``transformers.integrations.tiktoken.convert_tiktoken_to_fast`` (needs ``tiktoken`` and ``blobfile``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

VARIANTS = {"default": {}, "items 0": {"items": 0}, "sequence 10, items 0": {"sequence": 10, "items": 0},
            "sequence 0, items 0": {"sequence": 0, "items": 0}}


def token_counts(tokenizer, rows: list[dict[str, str]], answer: str) -> tuple[np.ndarray, np.ndarray]:
    """Token counts of each row's prompt and of its prompt + ``answer`` field (the tokenizer adds no special
    tokens: the models' examples carry their own end-of-sequence token)."""
    prompts = tokenizer([r["prompt"] for r in rows], add_special_tokens=False)["input_ids"]
    whole = tokenizer([r["prompt"] + r[answer] for r in rows], add_special_tokens=False)["input_ids"]
    return np.array([len(p) for p in prompts]), np.array([len(w) for w in whole])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--config", default=None)
    ap.add_argument("--sample", type=int, default=4000)
    ap.add_argument("--max-length", default="192,512,768")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from coea.config import load_run_config
    from coea.data.prepared import read_prepared
    from coea.data.split import chronological_split
    from coea.dsie.artifact import read_groups_dir
    from coea.llm.models import _add_csid_tokens
    from coea.llm.sft_config import resolve_sft_data
    from coea.llm.sft_data import build_sft_examples, group_infos

    cfg = load_run_config(Path(args.config) if args.config else None)
    limits = [int(x) for x in args.max_length.split(",")]
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, local_files_only=True)
    groups = read_groups_dir(args.run / "dsie")
    _add_csid_tokens(tokenizer, groups.code_levels)
    histories = chronological_split(read_prepared(args.run / "data").interactions, cfg.split).histories
    infos = group_infos(groups.groups, groups.profiles)
    eos = tokenizer.eos_token or "</s>"
    rng = np.random.default_rng(0)
    print(f"{'variant':22s} {'LLM':9s} {'examples':>8s}  prompt median/p95/max  whole median/p95/max  "
          + "  ".join(f"fit {n}" for n in limits))
    for label, change in VARIANTS.items():
        data = resolve_sft_data(replace(cfg.llm.data, **change), cfg.split)
        examples = build_sft_examples(histories.interactions, infos, data, eos=eos)
        for name, rows, answer in (("novelty", examples.novelty, "completion"),
                                   ("relevance", examples.relevance, "completion")):
            picked = [rows[i] for i in rng.choice(len(rows), min(args.sample, len(rows)), replace=False)]
            prompt, whole = token_counts(tokenizer, picked, answer)
            stats = "/".join(str(int(v)) for v in (np.median(prompt), np.percentile(prompt, 95), prompt.max()))
            wstats = "/".join(str(int(v)) for v in (np.median(whole), np.percentile(whole, 95), whole.max()))
            fits = "  ".join(f"{np.mean(whole <= n):7.3f}" for n in limits)
            print(f"{label:22s} {name:9s} {len(rows):8d}  {stats:>21s}  {wstats:>20s}  {fits}", flush=True)
    print(json.dumps({"tokenizer": str(args.tokenizer), "vocab": len(tokenizer), "run": str(args.run)}))


if __name__ == "__main__":
    main()
