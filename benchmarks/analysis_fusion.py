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

``--pop-weights`` adds a third signal, the history's category popularity (what ``pop_novel`` ranks by):

    log p_N(c) + w * log p_S(c) + v * log q(c),   q(c) = (n_c + 1) / (n + C)   (fused_scores)

for every (w, v) of the two sweeps, and a column with the paired CI against ``pop_novel``. On a ``min_gap`` view,
where the future starts a day or more after the history and popularity among unseen categories is as good as
any model, this asks whether the two signals add up.

``--cooc-weights`` adds a third expert the same way, the user's item-to-item co-occurrence scores as shares
(``llm.cooc_weight``, :func:`coea.data.cooccurrence.cooc_log_shares`): ``+ u log s_u(c)``; on the short
view's 8-event histories the ``cooc_novel`` baseline is as strong as SASRec (session 45).

``--mmr`` adds, for ``sasrec+x`` and every ranking of the sweep, its list re-ranked for diversity (session 41):
S-H@K counts a user once however many of the K categories they take up, so a list of near-duplicate bets (e.g.
``Action|Thriller`` beside ``Action|Sci-Fi|Thriller``) can lose to one that covers more of the user's possible
interests. Each position takes the category with the highest ``score - lambda * max_s J(c, s)`` over the
categories ``s`` already listed, J the Jaccard similarity of the two categories' genre sets (their names split on
``|``: metadata, no interaction), scores as log-probabilities (``mmr_top_k``).

``--ensemble-run RUN2`` (another run on the same data and split, its own DSIE fit) asks whether a teacher built
from two encoder fits would lift the N-LLM's target above SASRec (session 50): rows ``sasrec_ens+x`` (the mean of
the two encoders' log-softmaxes) and ``w=W, 2 encoders`` (``log p_N + w`` x that mean), beside the one-fit rows,
and a column against ``sasrec+x``.

    python benchmarks/analysis_fusion.py --run RUN --config V --weights 0,0.25,0.5,1
    python benchmarks/analysis_fusion.py --run RUN --config V --weights 0,2 --ensemble-run RUN2
    python benchmarks/analysis_fusion.py --run RUN --config V --weights 0,2 --mmr 0.5,1,2,4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_ci_table, run_split  # noqa: E402


def log_popularity(counts: np.ndarray) -> np.ndarray:
    """(C,) log q(c), q = (n_c + 1) / (n + C): the history's category shares, add-one smoothed (finite for every
    category, so a category never seen in the history ranks last rather than out)."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.log((counts + 1.0) / (counts.sum() + len(counts)))


def fused_scores(log_n: np.ndarray, enc: np.ndarray, log_q: np.ndarray, weights: list[float],
                 pop_weights: list[float], log_c: np.ndarray | None = None,
                 cooc_weights: tuple[float, ...] = (0.0,)) -> dict[str, np.ndarray]:
    """Every ranking of the sweep: label "w=W" (plus ",v=V" / ",u=U" when V / U != 0) -> (U, C) ``log p_N + W log
    p_S + V log q + U log s`` (the first two by :func:`coea.evaluation.llm_methods.encoder_fused`, which
    log-softmaxes the encoder's logits; ``log_c``: the co-occurrence log shares, needed when a U != 0)."""
    from coea.evaluation.llm_methods import encoder_fused

    out = {}
    for w in weights:
        base = encoder_fused(log_n, enc, w)
        for v in pop_weights:
            for u in cooc_weights:
                label = f"w={w:g}" + (f",v={v:g}" if v else "") + (f",u={u:g}" if u else "")
                out[label] = base + v * log_q[None, :] + (u * log_c if u else 0.0)
    return out


def ensemble_rows(log_n: np.ndarray, enc: np.ndarray, enc2: np.ndarray, weights: list[float]) -> dict[str, np.ndarray]:
    """``--ensemble-run``: ``sasrec_ens+x`` (U, C), the mean of the two encoders' log-softmaxes (``enc``, ``enc2``:
    logits), and per w ``"w=W, 2 encoders"``: ``log p_N + w`` x that mean (w = 0 is left out: the N-LLM alone)."""
    from coea.evaluation.llm_methods import encoder_fused, log_softmax_rows

    ens = (log_softmax_rows(enc) + log_softmax_rows(enc2)) / 2
    return {"sasrec_ens+x": ens, **{f"w={w:g}, 2 encoders": encoder_fused(log_n, ens, w) for w in weights if w}}


def second_encoder(run: Path, cfg, split, users: list[str], categories: list[str]) -> np.ndarray:
    """(U, C) the ``sasrec`` logits of another run's DSIE fit for ``users`` (its categories must be ``categories``,
    in order: the same prepared data)."""
    from coea.evaluation.registry import build_method, method_context, parse_method
    from coea.layout import RunLayout
    from coea.stages.artifacts import load_artifacts

    ctx = method_context(cfg, load_artifacts(["sasrec"], RunLayout(run).artifacts()))
    method = build_method(parse_method("sasrec"), ctx).fit(split.histories)
    if list(method.categories) != list(categories):
        raise SystemExit(f"error: {run}: its categories differ from --run's (another data set or preparation); "
                         "give a run on the same data")
    return np.asarray(method.score(users), dtype=np.float64)


def genre_similarity(categories: list[str]) -> np.ndarray:
    """(C, C) Jaccard similarity of the categories' genre sets (each name split on ``|``)."""
    sets = [set(str(c).split("|")) for c in categories]
    return np.array([[len(a & b) / len(a | b) for b in sets] for a in sets])


def mmr_top_k(scores: np.ndarray, sim: np.ndarray, lam: float, k: int) -> np.ndarray:
    """(U, k) column indices: greedy lists, each position the argmax of ``scores - lam * max_s sim(c, s)`` over
    the columns ``s`` already picked (lam 0: the plain top-k; ``-inf`` columns are picked only when nothing else
    is left, marked -1)."""
    left = np.array(scores, dtype=np.float64)
    rows = np.arange(len(left))
    penalty = np.zeros_like(left)
    picks = np.full((len(left), k), -1)
    for pos in range(min(k, left.shape[1])):
        best = np.argmax(left - lam * penalty, axis=1)
        ok = np.isfinite(left[rows, best])
        picks[ok, pos] = best[ok]
        left[rows, best] = -np.inf
        penalty = np.maximum(penalty, sim[best])
    return picks


def diversified(lists: dict[str, np.ndarray], banned: np.ndarray, users: list[str], categories: list[str],
                args: argparse.Namespace) -> dict[str, dict[str, list[str]]]:
    """``--mmr``: label " mmr=L" -> the users' lists of every ranking but ``pop_novel``, re-ranked by
    :func:`mmr_top_k` on log-probabilities (the encoder's logits log-softmaxed)."""
    from coea.evaluation.llm_methods import log_softmax_rows

    sim, out = genre_similarity(list(categories)), {}
    for label, scores in lists.items():
        if label == "pop_novel":
            continue
        logp = log_softmax_rows(scores) if label == "sasrec+x" else scores
        for lam in (float(x) for x in args.mmr.split(",")):
            picks = mmr_top_k(np.where(banned, -np.inf, logp), sim, lam, args.k)
            rows = zip(users, picks, strict=True)
            out[f"{label} mmr={lam:g}"] = {u: [categories[c] for c in row if c >= 0] for u, row in rows}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="dir with dsie/ and llm/ (and pco/ for --novelty coea)")
    parser.add_argument("--config", type=Path, default=None, help="the run's config (its split and prompt options)")
    parser.add_argument("--weights", default="0,0.1,0.25,0.5,0.75,1,1.5",
                        help="comma-separated w of log p_N + w log p_S (default: %(default)s)")
    parser.add_argument("--pop-weights", default="0",
                        help="comma-separated v of + v log q, q the category popularity (default: %(default)s)")
    parser.add_argument("--cooc-weights", default="0",
                        help="comma-separated u of + u log s_u, s_u the user's co-occurrence shares "
                             "(default: %(default)s)")
    parser.add_argument("--novelty", choices=("nllm", "coea"), default="nllm",
                        help="the N-LLM: after SFT (default) or after the run's last PCO round")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--ensemble-run", type=Path, default=None,
                        help="another run on the same data and split: rows with the mean of both encoders (above)")
    parser.add_argument("--mmr", default="",
                        help="comma-separated lambdas: also each ranking re-ranked for genre diversity (see above)")
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")]
    pop_weights = [float(v) for v in args.pop_weights.split(",")]
    from coea.config import load_run_config

    cfg = load_run_config(args.config)
    split = run_split(args.run, cfg.split)
    import torch

    from coea.data.cooccurrence import cooc_log_shares
    from coea.evaluation.baselines import Cooccurrence, top_k
    from coea.evaluation.evaluate import warm_per_user
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
    log_q = log_popularity(method.encoder.popularity)
    cooc_weights = tuple(float(u) for u in args.cooc_weights.split(","))
    log_c = cooc_log_shares(Cooccurrence().fit(split.histories).score(users)) if any(cooc_weights) else None
    lists = {"sasrec+x": enc, "pop_novel": np.broadcast_to(log_q, enc.shape)}
    lists.update(fused_scores(log_n, enc, log_q, weights, pop_weights, log_c, cooc_weights))
    if args.ensemble_run:
        enc2 = second_encoder(args.ensemble_run, cfg, split, users, list(method.categories))
        lists.update(ensemble_rows(log_n, enc, enc2, weights))
    recs = {label: top_k(np.where(banned, -np.inf, s), users, method.categories, args.k) for label, s in lists.items()}
    if args.mmr:
        recs.update(diversified(lists, banned, users, method.categories, args))
    key = f"S-H@{args.k}"
    per_user = {label: v[key] for label, v in warm_per_user(split, recs, cfg.eval, [args.k]).items()}
    print(f"{len(users)} evaluated users; w = 0 is the N-LLM alone ({args.novelty})\n")
    refs = [r for r in ("w=0", "pop_novel") if r in per_user] + (["sasrec+x"] if args.ensemble_run else [])
    print_ci_table(per_user, refs, key, cfg.eval.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
