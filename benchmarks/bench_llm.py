"""LLM inference on MovieLens-1M (../shared): top-10 categories for every user with the fast path
(one forward pass, next-token distribution restricted to category tokens) vs a plain ``model.generate`` loop
over users on the same model and prompts (the baseline, measured in the same run; a batched ``generate`` is
reported too), and the R-LLM scoring throughput (pairs/s). Generation is forced to a 10-name list length.

The model is the default scratch N-LLM/R-LLM architecture (speed does not depend on its weights); prompts use
each user's real short-term set and a group profile of realistic length.
Run: ``make bench`` or ``python benchmarks/bench_llm.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import movielens_split, no_options, report  # noqa: E402

from coea.llm.config import ModelConfig  # noqa: E402
from coea.llm.decode import CategoryIndex, generate_baseline, rank_categories, relevance_scores  # noqa: E402
from coea.llm.models import build_model_and_tokenizer  # noqa: E402
from coea.llm.prompts import PromptContext, novelty_prompt, relevance_prompt  # noqa: E402

PROFILE = ("Group 1-2: 240 users. Long-term favourites: Comedy (12%), Drama (9%), Action|Thriller (6%), "
           "Comedy|Romance (5%), Drama|War (4%). Members explore 60 categories on average; 35% of their "
           "categories were first tried in the later half of their history.")


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> int:
    split = movielens_split()
    if split is None:
        return 0
    h = split.histories
    bundle = build_model_and_tokenizer(ModelConfig(), h.categories, [PROFILE], [4, 4])
    model, tok = bundle.model, bundle.tokenizer
    index = CategoryIndex(tok, h.categories)
    users = split.warm_users
    ctxs = [PromptContext((1, 2), PROFILE, tuple(h.short_term.get(u, ()))) for u in users]
    prompts = [novelty_prompt(c) for c in ctxs]
    fast_s, _ = _timed(lambda: rank_categories(model, tok, prompts, index, 10))
    n_gen, n_loop = 600, 100
    gen_s, _ = _timed(lambda: generate_baseline(model, tok, prompts[:n_gen], index, 10))
    loop_s, _ = _timed(lambda: generate_baseline(model, tok, prompts[:n_loop], index, 10, batch_size=1))
    fast_ups, gen_ups, loop_ups = len(prompts) / fast_s, n_gen / gen_s, n_loop / loop_s
    pairs = [relevance_prompt(c, cat) for c in ctxs[:100] for cat in h.categories[:50]]
    rel_s, _ = _timed(lambda: relevance_scores(model, tok, pairs))
    rows = {
        "generate, per user (baseline)": {"seconds": loop_s, "min_seconds": loop_s,
                                          "users_per_s": loop_ups, "users": n_loop},
        "generate, batched 64": {"seconds": gen_s, "min_seconds": gen_s, "users_per_s": gen_ups,
                                 "users": n_gen, "ratio": gen_ups / loop_ups},
        "fast path top-10": {"seconds": fast_s, "min_seconds": fast_s, "users_per_s": fast_ups,
                             "users": len(prompts), "ratio": fast_ups / loop_ups,
                             "ratio_vs_batched_generate": fast_ups / gen_ups},
        "R-LLM scoring": {"seconds": rel_s, "min_seconds": rel_s,
                          "pairs_per_s": len(pairs) / rel_s, "pairs": len(pairs)},
    }
    print(f"users/s: fast path {fast_ups:.0f}, generate per user {loop_ups:.1f}, generate batched {gen_ups:.1f}; "
          f"fast/per-user {fast_ups / loop_ups:.1f}x, fast/batched {fast_ups / gen_ups:.1f}x; "
          f"R-LLM {len(pairs) / rel_s:.0f} pairs/s")
    report("llm_inference", rows)
    return 0


if __name__ == "__main__":
    no_options(__doc__)
    raise SystemExit(main())
