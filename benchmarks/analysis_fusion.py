"""Is there a judge stronger than the N-LLM? The product of the N-LLM and the DSIE encoder, on unseen categories.

A quality analysis, not a speed benchmark (``make bench`` does not run it). PCO distils its judge into the N-LLM,
and every judge measured before session 16 (the R-LLM, scratch or warm-started) ranked a user's unseen categories
worse than the N-LLM itself. The DSIE long-term encoder (the ``sasrec`` ranker) reads a different signal: the
user's last events in order, where the N-LLM reads the short-term set and the group code. This script ranks each
evaluated user's unseen categories (the ``+x`` view) by ``nllm_seq``'s score

    log p_N(c) + w * log p_S(c)        (coea.evaluation.llm_methods.encoder_fused)

for a sweep of ``w`` (w = 0 is ``nllm_sft+x``, or ``coea+x`` with ``--novelty coea``; ``sasrec+x`` is printed too)
and prints S-H@10 with the paired bootstrap 95 % CI of its difference to w = 0, over the split's evaluated users.
Choose ``llm.encoder_weight`` on the validation split (``--config`` with ``split: {validation: true}``), read it
once on test. The evaluation future is used here only to score lists, as in ``coea evaluate``.

    python benchmarks/analysis_fusion.py --run RUN --config V --weights 0,0.25,0.5,1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_split  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="dir with dsie/ and llm/ (and pco/ for --novelty coea)")
    parser.add_argument("--config", type=Path, default=None, help="the run's config (its split and prompt options)")
    parser.add_argument("--weights", default="0,0.1,0.25,0.5,0.75,1,1.5",
                        help="comma-separated w of log p_N + w log p_S (default: %(default)s)")
    parser.add_argument("--novelty", choices=("nllm", "coea"), default="nllm",
                        help="the N-LLM: after SFT (default) or after the run's last PCO round")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")]
    from coea.config import load_run_config

    cfg = load_run_config(args.config)
    split = run_split(args.run, cfg.split)
    import torch

    from coea.evaluation.baselines import top_k
    from coea.evaluation.bootstrap import paired_bootstrap_ci
    from coea.evaluation.evaluate import warm_per_user
    from coea.evaluation.llm_methods import encoder_fused
    from coea.evaluation.registry import build_method, method_context, parse_method
    from coea.layout import RunLayout
    from coea.stages.artifacts import load_artifacts

    torch.set_num_threads(1)
    name = f"{args.novelty}_seq+x"
    ctx = method_context(cfg, load_artifacts([name], RunLayout(args.run).artifacts()))
    method = build_method(parse_method(name), ctx).fit(split.histories)
    users, history = split.warm_users, split.histories.user_categories()
    banned = np.isinf(method.masked_scores(users, history))  # (U, C) the user's seen categories
    log_n, enc = method.novelty_logprobs(users), method.encoder.score(users)
    lists = {"sasrec+x": np.where(banned, -np.inf, enc)}
    lists.update({f"w={w:g}": np.where(banned, -np.inf, encoder_fused(log_n, enc, w)) for w in weights})
    recs = {label: top_k(s, users, method.categories, args.k) for label, s in lists.items()}
    key = f"S-H@{args.k}"
    per_user = {label: v[key] for label, v in warm_per_user(split, recs, cfg.eval, [args.k]).items()}
    base = per_user.get("w=0")
    print(f"{len(users)} evaluated users; w = 0 is the N-LLM alone ({args.novelty})\n")
    print(f"| ranking of unseen categories | {key} | − w=0 (95 % paired CI) |\n|---|---:|---:|")
    for label, vec in per_user.items():
        ci = None if base is None else paired_bootstrap_ci(vec, base, seed=cfg.eval.seed)
        cell = "" if ci is None else f"{ci.diff:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}]"
        print(f"| {label} | {vec.mean():.4f} | {cell} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
