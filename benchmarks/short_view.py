"""A short-history, day-resolution view of MovieLens: a stand-in for the held-back data set of issue 12.

A data-preparation step for quality analyses, not a speed benchmark (``make bench`` does not run it). The team's
second real data set (kept back to check that gains generalise) has users with as few as 5 events, day-resolution
timestamps and ~250 categories; the project cannot read it. This script derives a log of the same shape from
MovieLens-1M in ``../shared`` so that the defaults can be checked on short histories with commands anyone can
re-run:

- each user keeps one contiguous window of ``L`` of their events, ``L = min(5 + Geometric, own count)`` with mean
  ``--mean-events`` (seeded per user), starting at a uniformly drawn position of their history;
- timestamps are floored to the UTC day: a day-resolution log does not say in which order a day's events
  happened. The protocol orders a user's events of one day by item id (``coea.data.schema.sort_events``), an
  order unrelated to the real one, so no method can read it.

The output (canonical columns: user_id, item_id, category, timestamp, rating) goes to ``--out``, which must lie
outside the project: MovieLens is for research use and is never copied into it.

    python benchmarks/short_view.py --out /tmp/ml_short.csv
    coea evaluate --data csv:/tmp/ml_short.csv --config C --out RUN    # C: split: {n_future: 2, min_history: 2}
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ML_DIR, REPO  # noqa: E402

DAY = 86_400
MIN_EVENTS = 5


def short_view(log: pd.DataFrame, mean_events: float, seed: int) -> pd.DataFrame:
    """One contiguous window of each user's time-ordered events (see the module doc), with day timestamps.
    ``log`` has the canonical columns; users with fewer than 5 events keep all of them."""
    if mean_events < MIN_EVENTS:
        raise ValueError(f"--mean-events must be >= {MIN_EVENTS}, got {mean_events}")
    rng = np.random.default_rng(seed)
    log = log.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    counts = log.groupby("user_id", sort=True).size()
    extra = rng.geometric(1.0 / (mean_events - MIN_EVENTS + 1), size=len(counts)) - 1
    length = np.minimum(MIN_EVENTS + extra, counts.to_numpy())
    start = np.floor(rng.random(len(counts)) * (counts.to_numpy() - length + 1)).astype(int)
    pos = log.groupby("user_id", sort=True).cumcount().to_numpy()
    per_user = pd.DataFrame({"start": start, "length": length}, index=counts.index)
    s = log["user_id"].map(per_user["start"]).to_numpy()
    n = log["user_id"].map(per_user["length"]).to_numpy()
    out = log[(pos >= s) & (pos < s + n)].copy()
    out["timestamp"] = out["timestamp"] // DAY * DAY
    return out.reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV to write (outside the project)")
    parser.add_argument("--data", type=Path, default=ML_DIR, help="MovieLens-1M folder (default: %(default)s)")
    parser.add_argument("--mean-events", type=float, default=10.0, help="mean window length (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if out.is_relative_to(REPO):
        print(f"error: --out {args.out} lies inside the project; MovieLens is never copied into it "
              "(write it under /tmp)", file=sys.stderr)
        return 2
    if not (args.data / "movies.dat").is_file():
        print(f"skip: MovieLens-1M not found at {args.data}")
        return 0
    from coea.config import DataConfig
    from coea.data import load_data

    log = load_data(DataConfig(spec=f"movielens:{args.data}")).interactions
    view = short_view(log, args.mean_events, args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    view.to_csv(tmp, index=False)
    tmp.replace(out)
    sizes = view.groupby("user_id").size()
    print(f"wrote {out}: {len(view)} events, {len(sizes)} users (events per user: min {sizes.min()}, median "
          f"{int(sizes.median())}, mean {sizes.mean():.1f}, max {sizes.max()}), {view['category'].nunique()} "
          f"categories, {view['timestamp'].nunique()} distinct days")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
