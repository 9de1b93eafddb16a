"""Does a non-sequential collaborative filter know what SASRec does not? EASE on the history's movies (session 59).

A quality analysis, not a speed benchmark (``make bench`` does not run it). Every teacher PCO can distil into the
N-LLM has been level with ``sasrec+x`` on MovieLens (docs/standing.md): the N-LLM and the DSIE encoder read the
same events. EASE (Steck 2019, "Embarrassingly shallow autoencoders") reads them differently: a closed-form
item-to-item linear model over the whole user x movie matrix, with no order, strong on MovieLens in the literature.
This script fits it on the split's histories only (no future event: the leakage rule of ``coea.data.split``)
and ranks each evaluated user's unseen categories (the ``+x`` view) by the ``ease_novel`` baseline's scores
(:mod:`coea.data.ease`: the sum of each category's positive item scores ``s_u = q_u B``, ``q_u`` the user's items
weighted by recency) for each ``lambda`` of ``--lambdas``. With ``--run`` (a ``coea group`` run folder on the same log
and split) it also ranks by the fusion with the DSIE encoder

    log_softmax(sasrec logits)(c) + w * log share_u(c)     (share_u: coea.data.ease.ease_log_shares)

(the scores at the first ``--lambdas`` and the first ``--half-lives``) for each ``w`` of ``--weights`` (the
form of ``analysis_fusion.py``'s co-occurrence expert), and with ``--nllm`` also ``nllm_seq`` (the N-LLM + 2 x the
encoder, the distil teacher's ranking) plus ``w`` x the same shares: the target PCO would fit the N-LLM to if EASE
joined its teacher; with ``--served`` instead ``coea_seq`` (the N-LLM after the run's PCO rounds + 2 x the encoder,
the served ranking) plus ``w`` x the shares: EASE at serving beside a student that already learned it. ``--half-lives``:
the queries' recency half-lives in events (inf: unweighted). Every row prints S-H@K and the paired bootstrap 95 % CI of
its difference to ``pop_novel`` and (with ``--run``) to ``sasrec+x`` and to the registered ``sasrec_ease+x`` baseline
(the encoder + 1 x EASE), over the split's evaluated users. Without ``--run`` the log is the config's ``data`` (or
``--data``). Choose on the validation split (``--config`` with ``split: {validation: true}``); read test once.

    python benchmarks/analysis_ease.py --config V.yaml --data movielens:../shared/data/ml-1m \
        --lambdas 50,200,500,1500 --half-lives inf,5,20
    python benchmarks/analysis_ease.py --config V.yaml --run R --weights 0.5,1,2 [--nllm | --served]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_ci_table, run_split  # noqa: E402
from analysis_fusion import log_popularity  # noqa: E402


def fusion_lists(log_s: np.ndarray, shares: np.ndarray, weights: list[float], llm: str | None = None,
                 fused: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The ``--run`` rows: the encoder's log-softmax ``log_s`` alone, the registered ``sasrec_ease`` (its weight),
    ``log_s`` + w x ``shares`` for each of ``weights``, and with ``llm`` (a label) its ``fused`` scores alone and plus
    w x ``shares``."""
    from coea.evaluation.dsie_methods import SASREC_EASE_WEIGHT

    out = {"sasrec+x": log_s, "sasrec_ease+x": log_s + SASREC_EASE_WEIGHT * shares}
    out.update({f"sasrec + {w:g} x ease": log_s + w * shares for w in weights})
    if llm is not None:
        out[f"{llm}+x"] = fused
        out.update({f"{llm} + {w:g} x ease": fused + w * shares for w in weights})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="the split and data settings")
    parser.add_argument("--data", default=None, help="the log (as coea's --data), instead of the config's")
    parser.add_argument("--run", type=Path, default=None, help="a run folder with dsie/ on the same log and split")
    parser.add_argument("--lambdas", default="500", help="comma-separated EASE L2 weights (default: %(default)s)")
    parser.add_argument("--weights", default="", help="comma-separated w of the fusion with the encoder")
    which = parser.add_mutually_exclusive_group()  # the LLM ranking beside the encoder, if any
    which.add_argument("--nllm", action="store_true", help="also nllm_seq + w x EASE (needs the run's N-LLM)")
    which.add_argument("--served", action="store_true", help="also coea_seq + w x EASE (needs the run's PCO rounds)")
    parser.add_argument("--half-lives", default="5",
                        help="comma-separated query half-lives in events, inf = unweighted (default: %(default)s)")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)
    from coea.config import load_run_config
    from coea.data.ease import ease_log_shares, fit_ease
    from coea.data.schema import CATEGORY
    from coea.evaluation.baselines import top_k
    from coea.evaluation.evaluate import warm_per_user

    cfg = load_run_config(args.config)
    if args.data:
        cfg.data.spec = args.data
    if args.run:
        split = run_split(args.run, cfg.split)
    else:
        from coea.data import chronological_split, load_data

        split = chronological_split(load_data(cfg.data).interactions, cfg.split)
    users, categories = split.warm_users, list(split.histories.categories)
    history = split.histories.user_categories()
    index = {c: i for i, c in enumerate(categories)}
    banned = np.zeros((len(users), len(categories)), dtype=bool)
    for r, u in enumerate(users):
        banned[r, [index[c] for c in history.get(u, ())]] = True
    counts = split.histories.interactions[CATEGORY].value_counts()
    log_q = log_popularity(np.array([counts.get(c, 0) for c in categories], dtype=np.float64))
    lists = {"pop_novel": np.broadcast_to(log_q, banned.shape)}
    shares = None
    for lam in [float(v) for v in args.lambdas.split(",")]:
        for h in [float(v) for v in args.half_lives.split(",")]:
            cat = fit_ease(split.histories.interactions, categories, lam=lam, half_life=h).scores(users)
            lists[f"ease_novel, lambda {lam:g}, half-life {h:g}"] = cat
            if shares is None:
                shares = ease_log_shares(cat)  # the fusion reads the first lambda's and half-life's
    weights = [float(w) for w in args.weights.split(",") if w]
    if args.run:
        import torch

        from coea.evaluation.llm_methods import encoder_fused, log_softmax_rows
        from coea.evaluation.registry import build_method, method_context, parse_method
        from coea.layout import RunLayout
        from coea.stages.artifacts import load_artifacts

        torch.set_num_threads(1)
        llm = "coea_seq" if args.served else "nllm_seq" if args.nllm else None
        name = f"{llm}+x" if llm else "sasrec"
        ctx = method_context(cfg, load_artifacts([name], RunLayout(args.run).artifacts()))
        method = build_method(parse_method(name), ctx).fit(split.histories)
        if list(method.categories) != categories:
            raise SystemExit(f"error: {args.run}: its categories differ from the split's; give a run on this log")
        enc = method.encoder.score(users) if llm else np.asarray(method.score(users), dtype=np.float64)
        fused = encoder_fused(method.novelty_logprobs(users), enc, cfg.llm.encoder_weight) if llm else None
        lists.update(fusion_lists(log_softmax_rows(enc), shares, weights, llm, fused))
    recs = {label: top_k(np.where(banned, -np.inf, s), users, categories, args.k) for label, s in lists.items()}
    key = f"S-H@{args.k}"
    per_user = {label: v[key] for label, v in warm_per_user(split, recs, cfg.eval, [args.k]).items()}
    refs = ["pop_novel"] + (["sasrec+x", "sasrec_ease+x"] if args.run else [])
    print(f"{len(users)} evaluated users\n")
    print_ci_table(per_user, refs, key, cfg.eval.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
