"""Is the N-LLM's SFT data or the N-LLM itself the limit? A bag-of-categories MLP trained on the same SFT cuts.

A quality analysis, not a speed benchmark (``make bench`` does not run it). The MLP reads what the N-LLM's prompt
shows of the user's behaviour, the short-term set, as a multi-hot vector (no group, no CSID), and is trained with
cross-entropy on exactly the N-LLM's SFT cuts (:func:`coea.llm.sft_data.novelty_sft_cuts`: same users, cuts and
targets, one example per target). It then ranks each evaluated user's unseen categories (the ``+x`` view) from
their short-term set at the split. If it beats ``nllm_sft+x``, the data holds more than the N-LLM learned from
it. Printed: S-H@10 of ``nllm_sft+x`` (the run's SFT N-LLM), the MLP, ``cooc_novel`` and ``sasrec+x``, with the
paired bootstrap 95 % CI of each minus ``nllm_sft+x`` over the split's evaluated users. Histories only are read
for training; the evaluation future only scores the lists, as in ``coea evaluate``.

    python benchmarks/analysis_bag.py --run RUN --config C [--epochs 5] [--hidden 256]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_split  # noqa: E402

REFERENCE = "nllm_sft+x"


def train_bag_mlp(cuts, categories: list[str], epochs: int, hidden: int, seed: int):
    """A multi-hot (short-term set) -> hidden ReLU -> category logits MLP, cross-entropy on every (cut, target)."""
    import torch

    index = {c: i for i, c in enumerate(categories)}
    rows = [([index[c] for c in ctx.short_term if c in index], index[t]) for ctx, targets in cuts for t in targets
            if t in index]
    if not rows:
        raise SystemExit("error: the run's N-LLM SFT cuts are empty (histories too short for the cut settings)")
    torch.manual_seed(seed)
    x, y = multi_hot([r for r, _ in rows], len(categories)), torch.tensor([t for _, t in rows])
    net = torch.nn.Sequential(torch.nn.Linear(len(categories), hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                              torch.nn.Linear(hidden, len(categories)))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    for epoch in range(epochs):
        order, total = torch.randperm(len(y)), 0.0
        for start in range(0, len(order), 128):
            batch = order[start:start + 128]
            loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(y):.4f} ({len(y)} examples)", file=sys.stderr)
    return net.eval()


def multi_hot(rows: list[list[int]], width: int):
    import torch

    out = torch.zeros(len(rows), width)
    for i, cols in enumerate(rows):
        out[i, cols] = 1.0
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="dir with data/, dsie/ and llm/ (coea train-llms)")
    parser.add_argument("--config", type=Path, default=None, help="the run's config (its data, split and llm)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    from coea.config import load_run_config
    from coea.evaluation.baselines import top_k
    from coea.evaluation.bootstrap import paired_bootstrap_ci
    from coea.evaluation.evaluate import warm_per_user
    from coea.evaluation.registry import build_method, method_context, parse_method
    from coea.layout import RunLayout
    from coea.llm.sft_config import resolve_llm
    from coea.llm.sft_data import group_infos, novelty_sft_cuts
    from coea.stages import read_groups_dir
    from coea.stages.artifacts import load_artifacts

    torch.set_num_threads(1)
    cfg = load_run_config(args.config)
    lay = RunLayout(args.run)
    split = run_split(args.run, cfg.split)
    g = read_groups_dir(lay.dsie)
    llm = resolve_llm(cfg.llm, cfg.split)
    cuts = novelty_sft_cuts(split.histories.interactions, group_infos(g.groups, g.profiles), llm.data)
    categories = list(split.histories.categories)
    net = train_bag_mlp(cuts, categories, args.epochs, args.hidden, args.seed)
    users, history = split.warm_users, split.histories.user_categories()
    index = {c: i for i, c in enumerate(categories)}
    with torch.no_grad():
        bag = torch.log_softmax(net(multi_hot([[index[c] for c in split.histories.short_term.get(u, []) if c in index]
                                                for u in users], len(categories))), dim=-1).numpy()
    names = [REFERENCE, "cooc_novel", "sasrec+x"]
    ctx = method_context(cfg, load_artifacts(names, lay.artifacts()))
    recs = {}
    for name in names:
        spec = parse_method(name)
        recs[name] = build_method(spec, ctx).fit(split.histories).recommend(
            users, 10, exclude=history if spec.exclude_history else None)
    seen = np.array([[c in history.get(u, ()) for c in categories] for u in users])
    recs["bag MLP on the N-LLM's cuts"] = top_k(np.where(seen, -np.inf, bag), users, categories, 10)
    per_user = {n: v["S-H@10"] for n, v in warm_per_user(split, recs, cfg.eval, [10]).items()}
    print(f"{len(users)} evaluated users, {len(cuts)} N-LLM SFT cuts\n")
    print(f"| `+x` ranking | S-H@10 | − {REFERENCE} (95 % paired CI) |\n|---|---:|---:|")
    for name, vec in per_user.items():
        ci = paired_bootstrap_ci(vec, per_user[REFERENCE], seed=cfg.eval.seed)
        print(f"| {name} | {vec.mean():.4f} | {ci.diff:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}] |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
