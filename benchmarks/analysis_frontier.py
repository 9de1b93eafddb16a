"""What limits PCO on MovieLens-1M: the NCP/C-H frontier of the N-LLM and the quality of the R-LLM as a judge.

A quality analysis, not a speed benchmark (``make bench`` does not run it). It reads the models of an earlier
run (``coea ablate --out DIR`` or ``coea run``'s run dir: ``data/``, ``dsie/``, ``llm/`` and optionally ``pco/``)
and the split of the run's own data (``--config``'s split; MovieLens in the README's figures), and prints two
tables:

1. **Frontier**: the N-LLM's plain top-10 re-ranked with a uniform novelty bonus ``score = log p(c) + lam *
   [c unseen]`` for a sweep of ``lam`` (negative: a penalty): C-H@10 and NCP@10 of each list, and where
   nllm_sft's curve lies at the same C-H (:func:`ncp_at`). Any PCO reward that only moves mass
   between seen and unseen categories (and keeps the N-LLM's order within each) lands on this curve, so it
   says what NCP is reachable at the C-H the paper-view target allows (>= 99% of ``nllm_sft``'s).
   Then the plain-view target: every list with C-H@10 >= 0.99 x nllm_sft's plain list's, its NCP@10 ratio to
   that list and the paired bootstrap CIs of both differences, over users.
2. **Judge**: on 800 seeded evaluated users, S-H@10 of ranking each user's unseen categories by the R-LLM's
   P(yes), by its log-odds + log q(c) (q = the adoption popularity its negatives were drawn from: a balanced
   yes/no model learns p(c|ctx)/q(c), the lift, and this turns it back into p(c|ctx)), and by the N-LLM's own
   log-probability. PCO distils the judge into the N-LLM; a judge that ranks worse than the N-LLM itself
   cannot make it better.

The evaluation future is used here only to score lists, as in ``coea evaluate``.

    python benchmarks/analysis_frontier.py --run /tmp/ml_ablate   # after coea ablate --out /tmp/ml_ablate
    python benchmarks/analysis_frontier.py --run RUN --config V   # V: the run's config (e.g. the validation split)
    python benchmarks/analysis_frontier.py --run RUN --config V --judge-users 0   # the frontier table only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_split  # noqa: E402

JUDGE_USERS = 800  # seeded subsample of evaluated users the judge table ranks for (U x C R-LLM prompts)
# negative: a penalty on unseen categories, which extends the curve to the C-H a model's plain list may pass
LAMBDAS = (-1.0, -0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


TARGET_C_H, TARGET_NCP = 0.99, 1.19  # issue 12's plain-view target, as ratios to nllm_sft's plain list


def _frontier(ev, logp: np.ndarray) -> list[dict]:
    """One row per ``lam``: the list's C-H@10, NCP@10, S-H@10 and (key ``per_user``) the per-user C-H and NCP."""
    from coea.evaluation.metrics import per_user_metrics

    col = {c: j for j, c in enumerate(ev.categories)}
    unseen = np.ones_like(logp, dtype=bool)
    for i, u in enumerate(ev.users):
        unseen[i, [col[c] for c in ev.history.get(u, ()) if c in col]] = False
    rows = []
    for lam in LAMBDAS:
        order = np.argsort(-(logp + lam * unseen), axis=1, kind="stable")[:, :10]
        recs = [[ev.categories[j] for j in r] for r in order]
        m = ev._metrics(recs)
        pu = per_user_metrics(dict(zip(ev.users, recs, strict=True)), ev.users, ev.seen,
                              ev.split.future_categories, ev.tail, [10])
        rows.append({"lam": lam, "C-H": m["C-H@10"], "NCP": m["NCP@10"], "S-H": m["S-H@10"],
                     "per_user": {"C-H": pu["C-H@10"], "NCP": pu["NCP@10"]}})
    return rows


def target_rows(curves: dict[str, list[dict]]) -> list[str]:
    """The table rows of every (model, lam) list with C-H@10 >= TARGET_C_H x nllm_sft's plain list's (lam 0): its
    ratios to that list and the paired bootstrap 95 % CIs of its C-H and NCP differences to it, over users."""
    from coea.evaluation.bootstrap import paired_bootstrap_ci

    ref = next(r for r in curves["nllm_sft"] if r["lam"] == 0.0)
    out = []
    for name, rows in curves.items():
        for r in rows:
            if r["C-H"] < TARGET_C_H * ref["C-H"] or (name == "nllm_sft" and r["lam"] == 0.0):
                continue
            cis = [paired_bootstrap_ci(r["per_user"][m], ref["per_user"][m]) for m in ("C-H", "NCP")]
            met = r["NCP"] >= TARGET_NCP * ref["NCP"]
            out.append(f"| {name} | {r['lam']:.2f} | {r['C-H'] / ref['C-H']:.3f} | {r['NCP'] / ref['NCP']:.3f} | "
                       + " | ".join(f"{c.diff:+.4f} [{c.low:+.4f}, {c.high:+.4f}]" for c in cis)
                       + f" | {'yes' if met else 'no'} |")
    return out


def ncp_at(curve: list[dict[str, float]], c_h: float) -> float | None:
    """The NCP@10 of a re-ranking curve's frontier at C-H@10 ``c_h``: its Pareto points (no other point has both
    a higher C-H and a higher NCP; C-H is not monotone in ``lam`` near 0), linear between the two nearest in C-H;
    None outside their C-H range. Where the other model's list would lie at the same C-H."""
    pts = sorted({(r["C-H"], r["NCP"]) for r in curve}, key=lambda p: (-p[0], -p[1]))
    front = []
    for c, n in pts:  # by C-H falling: a point is on the frontier when its NCP beats every higher-C-H one
        if not front or n > front[-1][1]:
            front.append((c, n))
    front.reverse()
    for (c0, n0), (c1, n1) in zip(front, front[1:], strict=False):
        if c0 <= c_h <= c1:
            return n0 + (c_h - c0) / (c1 - c0) * (n1 - n0)
    return front[0][1] if len(front) == 1 and front[0][0] == c_h else None


def _judge(split, ev, groups, novelty, relevance, llm) -> dict[str, float]:
    """S-H@10 of three rankings of each judged user's unseen categories (the users and the R-LLM P(yes) of the
    run metrics' ``judge_S-H``: :meth:`coea.evaluation.pco_metrics.SplitEvaluator.judge`)."""
    from coea.evaluation.pco_metrics import category_log_softmax, top_by_score
    from coea.llm.decode import CategoryIndex
    from coea.pco.reward import adoption_log_prior, rllm_scores

    users = [ev.users[i] for i in ev.judged]
    unseen = [[c for c in ev.categories if c not in ev.history.get(u, set())] for u in users]
    p_yes = [np.asarray(p) for p in rllm_scores(relevance, [ev.contexts[i] for i in ev.judged], unseen, llm)]
    logq = adoption_log_prior(split.histories.interactions, groups, llm, ev.categories)
    logp = category_log_softmax(novelty, CategoryIndex(novelty.tokenizer, ev.categories),
                                [ev.prompts[i] for i in ev.judged], llm.batch_size)
    col = {c: j for j, c in enumerate(ev.categories)}
    odds = [np.log(np.clip(p, 1e-9, 1)) - np.log(np.clip(1 - p, 1e-9, 1)) for p in p_yes]
    scores = {"rllm P(yes)": p_yes,
              "rllm log-odds + log q": [o + np.array([logq[c] for c in cs])
                                        for o, cs in zip(odds, unseen, strict=True)],
              "nllm log p": [logp[r, [col[c] for c in cs]] for r, cs in enumerate(unseen)]}
    return {name: ev._metrics(top_by_score(unseen, s, 10), users)["S-H@10"] for name, s in scores.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="dir with dsie/ and llm/ (and optionally pco/)")
    parser.add_argument("--config", type=Path, default=None,
                        help="the run's config (its split and prompt options; default: the defaults), e.g. "
                             "split: {validation: true} to read the validation split")
    parser.add_argument("--judge-users", type=int, default=JUDGE_USERS,
                        help=f"users the judge table ranks for (default {JUDGE_USERS}; 0: frontier only, which on 2 "
                             "CPU cores takes minutes where the judge's U x C R-LLM prompts take an hour)")
    args = parser.parse_args(argv)
    from coea.config import load_run_config

    cfg = load_run_config(args.config)
    split = run_split(args.run, cfg.split)
    import torch

    from coea.evaluation.pco_metrics import SplitEvaluator, category_log_softmax
    from coea.llm.decode import CategoryIndex
    from coea.llm.models import load_bundle
    from coea.llm.sft_config import resolve_llm
    from coea.llm.sft_data import group_infos
    from coea.pco.checkpoint import last_complete_round
    from coea.stages import read_groups_dir

    torch.set_num_threads(1)
    g = read_groups_dir(args.run / "dsie")
    groups = group_infos(g.groups, g.profiles)
    llm = resolve_llm(cfg.llm, split.config)
    ev = SplitEvaluator(split, groups, llm, 10, judge_users=args.judge_users)
    models = {"nllm_sft": args.run / "llm" / "novelty"}
    if (args.run / "pco").is_dir():
        models["coea (last PCO round)"] = last_complete_round(args.run / "pco") / "novelty"
    print("| model | lam | C-H@10 | NCP@10 | S-H@10 | nllm_sft's NCP@10 at this C-H |\n|---|---:|---:|---:|---:|---:|")
    curves = {}
    for name, path in models.items():
        b = load_bundle(path)
        logp = category_log_softmax(b, CategoryIndex(b.tokenizer, ev.categories), ev.prompts, llm.batch_size)
        curves[name] = _frontier(ev, logp)
        for row in curves[name]:
            ref = ncp_at(curves["nllm_sft"], row["C-H"])
            print(f"| {name} | {row['lam']:.2f} | {row['C-H']:.4f} | {row['NCP']:.4f} | {row['S-H']:.4f} | "
                  f"{'outside its range' if ref is None else f'{ref:.4f}'} |")
    print(f"\n| list with C-H@10 >= {TARGET_C_H} x nllm_sft's | lam | C-H ratio | NCP ratio | C-H − nllm_sft (95 % CI) "
          f"| NCP − nllm_sft (95 % CI) | NCP >= {TARGET_NCP} x |\n|---|---:|---:|---:|---:|---:|---|")
    print("\n".join(target_rows(curves)))
    if args.judge_users <= 0:
        return 0
    judge = _judge(split, ev, groups, load_bundle(models["nllm_sft"]), load_bundle(args.run / "llm" / "relevance"), llm)
    print(f"\n| ranking of unseen categories ({len(ev.judged)} users) | S-H@10 |\n|---|---:|")
    for name, value in judge.items():
        print(f"| {name} | {value:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
