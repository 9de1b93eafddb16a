"""Is there information the DSIE encoder does not read? A probe ranker over items, ratings and time gaps, fused with it.

A quality analysis, not a speed benchmark (``make bench`` does not run it). Sessions 32-33 showed that the
``distil`` PCO can at best reach the product of the N-LLM and the DSIE encoder, and that this product is only
+.002-.003 above the encoder alone (``sasrec+x``) however well the N-LLM is trained on the prompt it has: what the
N-LLM learns is what the encoder already knows. For ``coea+x`` to pass SASRec the N-LLM must be given information
the encoder lacks. The encoder reads the user's last events as *category* tokens only; the log also holds the
movie (item) of each event, its rating and its time. This script asks, before any LLM is trained on a new prompt,
whether that information adds anything beside the encoder.

The probe is a small causal self-attention model (``ProbeModel``) over the user's last ``--max-len`` events whose
event embedding is the sum of the ``--inputs`` features' embeddings (``cat``: category, ``item``: item with at
least ``--min-item-events`` history events, else UNK, ``rating``: the rating 1-5, ``gap``: log2 of the seconds
since the previous event, bucketed; per user, from MovieLens' ``users.dat`` given as ``--users``: ``gender``,
``age``, ``occupation``; per movie, from ``movies.dat`` given as ``--movies``: ``year``, its release year, and
``title``, the mean embedding of its title's words (at most ``TITLE_WORDS``; words of one movie only read as unknown),
which, unlike the movie id, are shared between movies: information neither the encoder nor the N-LLM reads).
Each position learns the novel set
the ``+x`` view scores: the categories whose first event in the user's history falls within the next ``n_future``
events (the split's), by a softmax over the categories the user has not had by that position. It trains on the
split's histories only (every ``--max-len`` window of every user; ``--heldout`` of the users for early stopping on
that loss), never on the evaluation future, which is used only to score the lists, as in ``coea evaluate``.

For every run (a ``coea group`` folder: its ``data/`` and its DSIE encoder) and every input set the script trains
one probe (seed = the run's index + 1) and ranks each evaluated user's unseen categories by

    log_softmax(encoder) + w * log_softmax(probe)         (w = 0 is ``sasrec+x``; ``probe`` is the probe alone)

and prints ``+x`` S-H@10 with the paired bootstrap 95 % CI against ``sasrec+x`` (users; with several runs also
their trainings, paired: ``seed_bootstrap_ci``). The ``cat`` probe is the control: a third category model beside
the encoder pair, whose gain is what any extra model of the same information adds; an input set helps only by
what it adds above that control. With several input sets a second table gives each one's difference from the
first set's probe, alone and fused at the same weight. Choose on the validation split, read once on test.

    python benchmarks/analysis_item_signal.py --run V1 --run V2 --config V1.yaml --inputs cat,item+cat
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_split  # noqa: E402

EVENT_FEATURES = ("cat", "item", "rating", "gap")
PROFILE_FEATURES = ("gender", "age", "occupation")  # per user, the same at every position (``--users``)
MOVIE_FEATURES = ("year", "title")  # per movie (``--movies``)
FEATURES = EVENT_FEATURES + PROFILE_FEATURES + MOVIE_FEATURES
GAP_BUCKETS = 24  # log2 seconds 0..22 plus "first event"
TITLE_WORDS = 8  # words kept of a title (the first ones)


@dataclass
class UserEvents:
    """One user's history as index arrays (time order) and the first position of each category (C,; n if never)."""

    feats: dict[str, np.ndarray]
    first: np.ndarray

    @property
    def n(self) -> int:
        return len(self.feats["cat"])


def read_profiles(path: Path) -> dict[str, tuple[str, ...]]:
    """MovieLens ``users.dat`` (``UserID::Gender::Age::Occupation::Zip``): user -> (gender, age, occupation)."""
    out = {}
    for n, line in enumerate(Path(path).read_text(encoding="latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) != 5:
            raise SystemExit(f"{path}: line {n} has {len(fields)} '::' fields, expected 5 "
                             "(UserID::Gender::Age::Occupation::Zip-code); pass MovieLens-1M's users.dat")
        out[fields[0].strip()] = tuple(f.strip() for f in fields[1:4])
    return out


@dataclass
class Movies:
    """Per movie: its release year (None where the title has none) and its title's words (lower case, no year)."""

    year: dict[str, int | None]
    words: dict[str, tuple[str, ...]]


def read_movies(path: Path) -> Movies:
    """MovieLens ``movies.dat`` (``MovieID::Title (Year)::Genre|Genre``; titles may contain ':')."""
    import re

    year, words = {}, {}
    for n, line in enumerate(Path(path).read_text(encoding="latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) < 3:
            raise SystemExit(f"{path}: line {n} has {len(fields)} '::' fields, expected 3 "
                             "(MovieID::Title (Year)::Genres); pass MovieLens-1M's movies.dat")
        movie, title = fields[0].strip(), "::".join(fields[1:-1]).strip()
        found = re.search(r"\((\d{4})\)\s*$", title)
        year[movie] = int(found.group(1)) if found else None
        title = title[:found.start()] if found else title
        words[movie] = tuple(re.findall(r"[a-z0-9]+", title.lower()))[:TITLE_WORDS]
    return Movies(year, words)


def movie_tables(movies: Movies | None, items: list[str]) -> tuple[dict[str, int], dict[str, int], np.ndarray]:
    """Item -> year index (2.. by year; 1 = unknown), item -> title row (1.. ; 0 = padding) and the title rows'
    word indices (rows, TITLE_WORDS; 0 = no word, 1 = a word of one movie only, 2.. = words shared by movies).
    Row 1 is the empty title (an item ``movies`` lacks)."""
    if movies is None:
        return {}, {}, np.zeros((2, TITLE_WORDS), np.int64)
    years = sorted({y for y in movies.year.values() if y is not None})
    year_index = {it: years.index(movies.year[it]) + 2 for it in items if movies.year.get(it) is not None}
    seen: dict[str, int] = {}
    for ws in movies.words.values():
        for w in set(ws):
            seen[w] = seen.get(w, 0) + 1
    vocab = {w: i + 2 for i, w in enumerate(sorted(w for w, c in seen.items() if c > 1))}
    titled = [it for it in items if it in movies.words]
    rows = np.zeros((len(titled) + 2, TITLE_WORDS), np.int64)
    for r, it in enumerate(titled, start=2):
        ws = [vocab.get(w, 1) for w in movies.words[it]]
        rows[r, :len(ws)] = ws
    return year_index, {it: r for r, it in enumerate(titled, start=2)}, rows


def encode_histories(interactions, categories: list[str], min_item_events: int,
                     profiles: dict[str, tuple[str, ...]] | None = None, movies: Movies | None = None
                     ) -> tuple[dict[str, UserEvents], dict[str, int], np.ndarray]:
    """Every user's history as feature indices (0 = padding everywhere), the feature vocab sizes and the title
    rows' words (:func:`movie_tables`); with ``profiles`` (:func:`read_profiles`) also each user's gender, age and
    occupation at every position (1 = a user the file lacks); with ``movies`` (:func:`read_movies`) each event's
    movie's year and title row (1 = a movie the file lacks)."""
    from coea.data.schema import CATEGORY, ITEM, RATING, TIMESTAMP, USER

    df = interactions
    cat_index = {c: i + 1 for i, c in enumerate(categories)}
    counts = df[ITEM].value_counts()
    kept = sorted(counts.index[counts >= min_item_events])
    item_index = {it: i + 2 for i, it in enumerate(kept)}  # 1 = UNK
    cat = df[CATEGORY].map(cat_index).to_numpy(np.int64)
    item = df[ITEM].map(item_index).fillna(1).to_numpy(np.int64)
    rating = (np.clip(np.rint(df[RATING].fillna(0).to_numpy()), 0, 5).astype(np.int64) + 1 if RATING in df.columns
              else np.ones(len(df), np.int64))
    ts = df[TIMESTAMP].to_numpy(np.int64)
    year_index, title_row, title_words = movie_tables(movies, sorted(df[ITEM].astype(str).unique()))
    year = df[ITEM].astype(str).map(year_index).fillna(1).to_numpy(np.int64)
    title = df[ITEM].astype(str).map(title_row).fillna(1).to_numpy(np.int64)
    users = df[USER].to_numpy()
    out: dict[str, UserEvents] = {}
    order = np.argsort(users, kind="stable")  # stable: keeps each user's events in the table's (time) order
    bounds = np.flatnonzero(np.r_[True, users[order][1:] != users[order][:-1], True])
    n_cat = len(categories)
    profiles = profiles or {}
    values = [sorted({p[j] for p in profiles.values()}) for j in range(len(PROFILE_FEATURES))]
    value_index = [{v: i + 2 for i, v in enumerate(vals)} for vals in values]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        idx = order[a:b]
        t = ts[idx]
        gap = np.zeros(len(idx), np.int64)
        if len(idx) > 1:
            gap[1:] = np.clip(np.floor(np.log2(np.maximum(np.diff(t), 0) + 1)), 0, GAP_BUCKETS - 2).astype(np.int64) + 1
        gap += 1  # 1 = first event, 2.. = buckets; 0 = padding
        c = cat[idx]
        first = np.full(n_cat, len(idx), np.int64)
        had, at = np.unique(c, return_index=True)  # each category's earliest position
        first[had - 1] = at
        user = str(users[order[a]])
        feats = {"cat": c, "item": item[idx], "rating": rating[idx], "gap": gap, "year": year[idx],
                 "title": title[idx]}
        profile = profiles.get(user)
        for j, name in enumerate(PROFILE_FEATURES):
            feats[name] = np.full(len(idx), value_index[j][profile[j]] if profile else 1, np.int64)
        out[user] = UserEvents(feats, first)
    sizes = {"cat": n_cat + 1, "item": len(kept) + 2, "rating": 7, "gap": GAP_BUCKETS + 1,
             **{name: len(values[j]) + 2 for j, name in enumerate(PROFILE_FEATURES)},
             "year": max(year_index.values(), default=1) + 1, "title": len(title_words),
             "title_word": int(title_words.max(initial=1)) + 1}
    return out, sizes, title_words


def windows(events: list[UserEvents], max_len: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Every ``max_len`` window of each user (ending at the last event, then stepping back by ``max_len``), left
    padded: features {f: (W, L)}, each position's index in its user's history (W, L; -1 = padding), and the row of
    ``events`` each window is from (W,)."""
    rows, ends = [], []
    for r, ev in enumerate(events):
        for end in range(ev.n, 0, -max_len):
            rows.append(r)
            ends.append(end)
    n_win = len(rows)
    pos = np.full((n_win, max_len), -1, np.int64)
    feats = {f: np.zeros((n_win, max_len), np.int64) for f in FEATURES}
    for w, (r, end) in enumerate(zip(rows, ends, strict=True)):
        start = max(0, end - max_len)
        width = end - start
        pos[w, max_len - width:] = np.arange(start, end)
        for f in FEATURES:
            feats[f][w, max_len - width:] = events[r].feats[f][start:end]
    return feats, pos, np.asarray(rows, np.int64)


def build_probe(sizes: dict[str, int], inputs: tuple[str, ...], n_cat: int, max_len: int, dim: int, layers: int,
                title_words: np.ndarray | None = None):
    import torch
    from torch import nn

    class TitleEmbedding(nn.Module):
        """A title row -> the mean of its words' embeddings (0 where the row has none)."""

        def __init__(self) -> None:
            super().__init__()
            self.words = nn.Embedding(sizes["title_word"], dim, padding_idx=0)
            self.register_buffer("rows", torch.from_numpy(title_words))

        def forward(self, row: torch.Tensor) -> torch.Tensor:
            ws = self.rows[row]  # (..., TITLE_WORDS)
            return self.words(ws).sum(-2) / (ws > 0).sum(-1, keepdim=True).clamp(min=1)

    class ProbeModel(nn.Module):
        """Sum of the input features' embeddings + positions -> causal transformer -> category logits."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.ModuleDict({f: TitleEmbedding() if f == "title" else
                                        nn.Embedding(sizes[f], dim, padding_idx=0) for f in inputs})
            self.pos = nn.Embedding(max_len, dim)
            layer = nn.TransformerEncoderLayer(dim, 2, 2 * dim, dropout=0.2, batch_first=True, norm_first=True)
            self.trunk = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, n_cat)
            self.register_buffer("future", torch.triu(torch.ones(max_len, max_len, dtype=torch.bool), 1))
            self.register_buffer("eye", torch.eye(max_len, dtype=torch.bool))

        def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
            some = feats[inputs[0]]
            x = sum(self.embed[f](feats[f]) for f in inputs) + self.pos.weight[None, :some.shape[1]]
            # no attention to later positions or to padding, but always to itself: a padded position (left
            # padding) then attends to itself only, so no row is fully masked (which would give NaN)
            blocked = (self.future[None] | (some == 0)[:, None, :]) & ~self.eye[None]  # (B, L, L)
            h = self.trunk(x, mask=blocked.repeat_interleave(2, dim=0))
            return self.head(self.norm(h))  # (B, L, C)

    return ProbeModel()


def novel_set_loss(logits, pos, first, horizon: int):
    """Mean over positions with a novel target of the mean -log softmax (over categories not had by the position)
    of each target category (first event within the next ``horizon`` events)."""
    import torch

    p = pos[:, :, None]  # (B, L, 1)
    f = first[:, None, :]  # (B, 1, C)
    allowed = f > p
    target = allowed & (f <= p + horizon) & (p >= 0)
    logp = torch.log_softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1)
    n_t = target.sum(-1)  # (B, L)
    per_pos = -(logp.masked_fill(~target, 0.0)).sum(-1) / n_t.clamp(min=1)
    has = n_t > 0
    return per_pos[has].mean() if has.any() else logits.sum() * 0.0


def train_probe(events: dict[str, UserEvents], sizes, inputs, n_cat, args, seed: int, title_words=None):
    """The probe trained on every window of the histories, early-stopped on held-out users' windows."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    names = sorted(events)
    held = set(rng.choice(names, size=max(1, int(args.heldout * len(names))), replace=False).tolist())
    parts = {}
    for label, users in (("train", [u for u in names if u not in held]), ("val", sorted(held))):
        ev = [events[u] for u in users]
        feats, pos, rows = windows(ev, args.max_len)
        first = np.stack([e.first for e in ev])[rows]
        parts[label] = ({f: torch.from_numpy(feats[f]) for f in inputs}, torch.from_numpy(pos), torch.from_numpy(first))
    model = build_probe(sizes, inputs, n_cat, args.max_len, args.dim, args.layers, title_words)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    def batches(part, shuffle):
        n = len(part[1])
        order = rng.permutation(n) if shuffle else np.arange(n)
        for s in range(0, n, args.batch):
            i = torch.from_numpy(order[s:s + args.batch])
            yield {f: t[i] for f, t in part[0].items()}, part[1][i], part[2][i]

    best, best_state, bad, horizon = math.inf, None, 0, args.horizon
    for epoch in range(args.epochs):
        start = time.perf_counter()
        model.train()
        for feats, pos, first in batches(parts["train"], True):
            loss = novel_set_loss(model(feats), pos, first, horizon)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            losses = [float(novel_set_loss(model(f), p, fi, horizon)) for f, p, fi in batches(parts["val"], False)]
        val = float(np.mean(losses))
        seconds = time.perf_counter() - start
        print(f"  probe {'+'.join(inputs)} seed {seed} epoch {epoch}: val {val:.4f} ({seconds:.0f} s)", flush=True)
        if val < best - 1e-4:
            best, bad = val, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= args.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return model


def final_logits(model, events: dict[str, UserEvents], users: list[str], inputs, max_len: int) -> np.ndarray:
    """(U, C) the probe's logits at each user's last history position."""
    import torch

    out = []
    for s in range(0, len(users), 512):
        ev = [events[u] for u in users[s:s + 512]]
        feats = {f: np.zeros((len(ev), max_len), np.int64) for f in inputs}
        for r, e in enumerate(ev):
            take = min(e.n, max_len)
            for f in inputs:
                feats[f][r, max_len - take:] = e.feats[f][e.n - take:]
        with torch.no_grad():
            out.append(model({f: torch.from_numpy(v) for f, v in feats.items()})[:, -1].numpy())
    return np.concatenate(out)


def run_one(run: Path, cfg, input_sets, weights, args, seed: int) -> dict[str, np.ndarray]:
    """Per-user ``+x`` S-H@K of sasrec+x, each probe alone and each fusion, for one run."""
    from coea.evaluation.baselines import top_k
    from coea.evaluation.evaluate import warm_per_user
    from coea.evaluation.registry import build_method, method_context, parse_method
    from coea.layout import RunLayout
    from coea.stages.artifacts import load_artifacts
    from coea.utils import log_softmax_rows

    split = run_split(run, cfg.split)
    ctx = method_context(cfg, load_artifacts(["sasrec+x"], RunLayout(run).artifacts()))
    method = build_method(parse_method("sasrec+x"), ctx).fit(split.histories)
    users, history = split.warm_users, split.histories.user_categories()
    banned = np.isinf(method.masked_scores(users, history))
    enc = log_softmax_rows(method.score(users))
    profiles = read_profiles(args.users) if args.users else None
    movies = read_movies(args.movies) if args.movies else None
    events, sizes, title_words = encode_histories(split.histories.interactions, method.categories,
                                                  args.min_item_events, profiles, movies)
    print(f"{run}: {len(users)} evaluated users, {sizes['item'] - 2} items kept, {len(method.categories)} categories",
          flush=True)
    lists = {"sasrec+x": enc}
    for inputs in input_sets:
        model = train_probe(events, sizes, inputs, len(method.categories), args, seed, title_words)
        probe = log_softmax_rows(final_logits(model, events, users, inputs, args.max_len))
        name = "+".join(inputs)
        lists[f"probe {name}"] = probe
        for w in weights:
            lists[f"sasrec + {w:g} x probe {name}"] = enc + w * probe
    recs = {label: top_k(np.where(banned, -np.inf, s), users, method.categories, args.k) for label, s in lists.items()}
    key = f"S-H@{args.k}"
    return {label: v[key] for label, v in warm_per_user(split, recs, cfg.eval, [args.k]).items()}


def _run_job(job) -> dict[str, np.ndarray]:
    import torch

    torch.set_num_threads(1)
    run, cfg, input_sets, weights, args, seed = job
    return run_one(run, cfg, input_sets, weights, args, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, action="append", required=True, help="a coea group folder (repeat)")
    parser.add_argument("--config", type=Path, required=True, help="the runs' config (their split)")
    parser.add_argument("--inputs", default="cat,item+cat,item+cat+rating+gap",
                        help="comma-separated input sets, each features joined by + from " + ", ".join(FEATURES))
    parser.add_argument("--weights", default="0.5,1", help="comma-separated w (default: %(default)s)")
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--min-item-events", type=int, default=5)
    parser.add_argument("--users", type=Path, default=None,
                        help="MovieLens users.dat, needed by the " + ", ".join(PROFILE_FEATURES) + " inputs")
    parser.add_argument("--movies", type=Path, default=None,
                        help="MovieLens movies.dat, needed by the " + ", ".join(MOVIE_FEATURES) + " inputs")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--heldout", type=float, default=0.05)
    parser.add_argument("--horizon", type=int, default=None, help="novel-set horizon (default: the split's n_future)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2, help="runs trained side by side, one process each")
    args = parser.parse_args(argv)
    input_sets = [tuple(s.split("+")) for s in args.inputs.split(",")]
    for inputs in input_sets:
        unknown = set(inputs) - set(FEATURES)
        if unknown:
            parser.error(f"unknown input feature(s) {sorted(unknown)}; choose from {', '.join(FEATURES)}")
        if set(inputs) & set(PROFILE_FEATURES) and args.users is None:
            parser.error(f"the input set {'+'.join(inputs)} reads user profiles: pass --users "
                         "../shared/data/ml-1m/users.dat (MovieLens-1M's users.dat)")
        if set(inputs) & set(MOVIE_FEATURES) and args.movies is None:
            parser.error(f"the input set {'+'.join(inputs)} reads movie titles: pass --movies "
                         "../shared/data/ml-1m/movies.dat (MovieLens-1M's movies.dat)")
    weights = [float(w) for w in args.weights.split(",")]
    from coea.config import load_run_config
    from coea.evaluation.bootstrap import seed_bootstrap_ci

    cfg = load_run_config(args.config)
    args.horizon = args.horizon or cfg.split.n_future
    jobs = [(run, cfg, input_sets, weights, args, i + 1) for i, run in enumerate(args.run)]
    if args.jobs > 1 and len(jobs) > 1:  # one process per run, one torch thread each
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(args.jobs, len(jobs))) as pool:
            per_run = list(pool.map(_run_job, jobs))
    else:
        per_run = [_run_job(job) for job in jobs]
    print(f"\n| ranking of unseen categories ({len(args.run)} run(s)) | S-H@{args.k} per run | mean | "
          "− sasrec+x, users and paired runs (95 % CI) |")
    print("|---|---|---:|---:|")
    for label in per_run[0]:
        rows = [r[label] for r in per_run]
        ci = seed_bootstrap_ci(rows, [r["sasrec+x"] for r in per_run], seed=cfg.eval.seed, paired_runs=True)
        each = " / ".join(f"{v.mean():.4f}" for v in rows)
        print(f"| {label} | {each} | {np.mean([v.mean() for v in rows]):.4f} | "
              f"{ci.diff:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}] |")
    if len(input_sets) > 1:  # what each input set adds above the first (the control), alone and at each weight
        control = "+".join(input_sets[0])
        print(f"\n| against the {control} probe at the same weight | − control, users and paired runs (95 % CI) |")
        print("|---|---:|")
        for inputs in input_sets[1:]:
            name = "+".join(inputs)
            for arm, ref in [(f"probe {name}", f"probe {control}")] + [
                    (f"sasrec + {w:g} x probe {name}", f"sasrec + {w:g} x probe {control}") for w in weights]:
                ci = seed_bootstrap_ci([r[arm] for r in per_run], [r[ref] for r in per_run], seed=cfg.eval.seed,
                                       paired_runs=True)
                print(f"| {arm} | {ci.diff:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}] |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
