"""Where did PCO move the N-LLM? Its log-probability shift on the evaluated users' unseen categories, against the
shift the teacher reward asks for.

A quality analysis, not a speed benchmark (``make bench`` does not run it). ``pco.reward: teacher`` scores a
proposal by w log p_S (the DSIE encoder), so DPO's target is the N-LLM times the encoder: a per-user, per-category
shift of log p_N by w log p_S (up to a constant per user). This script compares the shift the run's last PCO round
made, d(u, c) = log p_coea(c | u) - log p_sft(c | u), with t(u, c) = w log p_S(c | u), both centred per user, over
the split's evaluated users and their unseen categories (the ``+x`` view): the variance of each, split into a
global per-category part (the mean over users) and a user-specific rest, their correlations, and the slope of d
on t in the user-specific part (1 = the whole way to the product of experts, 0 = no move towards it).

    python benchmarks/analysis_shift.py --run RUN --config C [--weight W]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_split  # noqa: E402


def _parts(x: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centred per user, global per-category part broadcast, user-specific rest); NaN outside ``ok``."""
    x = np.where(ok, x, np.nan)
    x = x - np.nanmean(x, axis=1, keepdims=True)
    g = np.broadcast_to(np.nanmean(x, axis=0, keepdims=True), x.shape)
    return x, np.where(ok, g, np.nan), x - g


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    keep = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[keep], b[keep])[0, 1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="dir with dsie/, llm/ and pco/")
    parser.add_argument("--config", type=Path, default=None, help="the run's config (its split and prompt options)")
    parser.add_argument("--weight", type=float, default=None, help="w of the target (default: pco.teacher_weight)")
    args = parser.parse_args(argv)
    from coea.config import load_run_config

    cfg = load_run_config(args.config)
    w = cfg.pco.teacher_weight if args.weight is None else args.weight
    split = run_split(args.run, cfg.split)
    import torch

    from coea.evaluation.registry import build_method, method_context, parse_method
    from coea.layout import RunLayout
    from coea.stages.artifacts import load_artifacts

    torch.set_num_threads(1)
    users, history = split.warm_users, split.histories.user_categories()
    logp = {}
    for name in ("nllm_seq+x", "coea_seq+x"):
        ctx = method_context(cfg, load_artifacts([name], RunLayout(args.run).artifacts()))
        method = build_method(parse_method(name), ctx).fit(split.histories)
        logp[name] = method.novelty_logprobs(users)
    enc = method.encoder.score(users)
    ok = ~np.isinf(method.masked_scores(users, history)) & np.isfinite(enc)  # unseen categories
    d, dg, dr = _parts(logp["coea_seq+x"] - logp["nllm_seq+x"], ok)
    t, tg, tr = _parts(w * enc, ok)
    var = lambda a: float(np.nanvar(a))  # noqa: E731
    print(f"{len(users)} evaluated users, unseen categories; target t = {w:g} log p_S, shift d = coea - sft\n")
    print("| | variance | global part | user-specific part |\n|---|---:|---:|---:|")
    print(f"| shift d | {var(d):.4f} | {var(dg):.4f} | {var(dr):.4f} |")
    print(f"| target t | {var(t):.4f} | {var(tg):.4f} | {var(tr):.4f} |")
    print(f"| corr(d, t) | {_corr(d, t):.3f} | {_corr(dg, tg):.3f} | {_corr(dr, tr):.3f} |")
    print(f"\nslope of d on t, user-specific parts: {float(np.nansum(dr * tr) / np.nansum(tr * tr)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
