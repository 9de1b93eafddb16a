"""SFT data preparation: trl's own per-example tokenization (the baseline, measured in the same run) against
:func:`coea.llm.sft.tokenize_examples` (batched calls of the fast tokenizer), on real MovieLens-1M N-LLM prompts
with the ``seq:`` section (the last 50 event categories: the longest prompts the N-LLM gets) and a realistic
group profile, with the default scratch tokenizer. Both produce the same rows (tests/unit/test_sft.py).
Run: ``make bench`` or ``python benchmarks/bench_tokenize.py [--examples N]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import measure, movielens_split, report  # noqa: E402
from bench_train import PROFILE  # noqa: E402

from coea.llm.prompts import PromptContext, novelty_completion, novelty_prompt  # noqa: E402
from coea.llm.sft_data import category_sequences  # noqa: E402


def _examples(split, n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` N-LLM examples: real short-term sets and last-50 category sequences, random (seeded) targets."""
    h = split.histories
    rng = np.random.default_rng(seed)
    seqs = {u: c[-50:] for u, c in category_sequences(h.interactions).items()}
    users = [u for u in split.warm_users if h.short_term.get(u) and seqs.get(u)]
    cats = list(h.categories)
    out = []
    for i in range(n):
        u = users[i % len(users)]
        ctx = PromptContext((1, 2), PROFILE, tuple(h.short_term[u]), sequence=tuple(seqs[u]))
        out.append({"prompt": novelty_prompt(ctx),
                    "completion": novelty_completion([cats[j] for j in rng.choice(len(cats), 3)], "</s>")})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=20_000, help="N-LLM examples to prepare (default 20,000)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    from datasets import Dataset, disable_progress_bars
    from trl import SFTConfig, SFTTrainer

    from coea.config import load_run_config
    from coea.llm.models import build_model_and_tokenizer
    from coea.llm.sft import tokenize_examples

    disable_progress_bars()
    split = movielens_split()
    if split is None:
        return 0
    cfg = load_run_config(None).llm
    bundle = build_model_and_tokenizer(cfg.model, split.histories.categories, [PROFILE], [4, 4])
    data = _examples(split, args.examples)
    max_length = cfg.novelty.max_length

    def trl_prepare():
        with tempfile.TemporaryDirectory() as tmp:
            targs = SFTConfig(output_dir=tmp, max_length=max_length, completion_only_loss=True, report_to="none",
                              save_strategy="no", use_cpu=True, bf16=False)
            return SFTTrainer(model=bundle.model, args=targs, train_dataset=Dataset.from_list(data),
                              processing_class=bundle.tokenizer).train_dataset

    rows = {"trl per-example": measure(trl_prepare, args.repeats),
            "tokenize_examples": measure(lambda: tokenize_examples(bundle.tokenizer, data, max_length), args.repeats)}
    base = rows["trl per-example"]["seconds"]
    for r in rows.values():
        r["ratio"] = base / r["seconds"]  # speed-up over trl's own preparation
        r["examples_per_s"] = args.examples / r["seconds"]
    report("sft_tokenize", rows, {"examples": args.examples, "ratio": "trl seconds / row seconds"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
