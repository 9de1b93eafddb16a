"""Load + split + every baseline on MovieLens-1M (../shared): wall time and peak memory.

Ratios are against a baseline measured in the same run: the plain pandas parse of the ratings file (no
validation, no categories). Run: ``make bench`` or ``python benchmarks/bench_foundation.py``.
"""

from __future__ import annotations

import resource
import sys

import pandas as pd

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import ML_DIR, measure, no_options, report  # noqa: E402

from coea.config import DataConfig, EvalConfig, SplitConfig  # noqa: E402
from coea.data import chronological_split, load_data  # noqa: E402
from coea.data.movielens import find_ratings_file  # noqa: E402
from coea.evaluation.evaluate import recommend_all, score_split  # noqa: E402
from coea.evaluation.registry import METHODS, MethodContext  # noqa: E402


def main() -> int:
    if not (ML_DIR / "movies.dat").is_file():
        print(f"skip: MovieLens-1M not found at {ML_DIR}")
        return 0
    ratings = find_ratings_file(ML_DIR)
    rows = {"raw pandas parse (baseline)": measure(
        lambda: pd.read_csv(ratings, sep=":", header=None, usecols=[0, 2, 4, 6]))}
    cfg = DataConfig(spec=f"movielens:{ML_DIR}")
    rows["load + validate"] = measure(lambda: load_data(cfg))
    loaded = load_data(cfg)
    rows["split"] = measure(lambda: chronological_split(loaded.interactions, SplitConfig()))
    split = chronological_split(loaded.interactions, SplitConfig())
    baselines = sorted(name for name, info in METHODS.items() if not info.needs)  # DSIE/LLMs: bench_dsie, bench_llm
    ctx = MethodContext()
    for name in baselines:
        ecfg = EvalConfig(methods=[name], ks=[5, 10])
        rows[f"fit+rank {name}"] = measure(lambda ecfg=ecfg: recommend_all(split, ecfg, ctx))
    everything = EvalConfig(methods=baselines, ks=[5, 10])
    rows["score all baselines"] = measure(lambda: score_split(split, recommend_all(split, everything, ctx), everything))
    base = rows["raw pandas parse (baseline)"]["seconds"]
    for r in rows.values():
        r["ratio"] = r["seconds"] / base
    total = sum(r["seconds"] for k, r in rows.items() if not k.startswith(("raw", "fit+rank")))
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load + split + all baselines + scoring: {total:.2f}s; process max RSS {maxrss:.0f} MiB")
    report("foundation", rows, {"total_seconds": total, "max_rss_mib": maxrss, "users": len(split.warm_users)})
    return 0


if __name__ == "__main__":
    no_options(__doc__)
    raise SystemExit(main())
