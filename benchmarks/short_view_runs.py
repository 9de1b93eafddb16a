"""The `short` preset's trainings on the short MovieLens view, one per seed, and the table of docs/results.md.

A quality analysis, not a speed benchmark (``make bench`` does not run it). It re-runs the short view's test (or
``--validation``) read of session 45 with one command: per seed a config that is the packaged ``short`` preset plus
the log (``data.spec``), the split's ``validation`` switch and every seed of the run set to the seed (DSIE, both
LLMs, their SFT data, PCO), then ``coea group``, ``coea train-llms`` and ``coea pco`` into ``OUT/s<seed>``, and
finally ``benchmarks/analysis_seeds.py --paired-trainings`` over the runs (every method against ``sasrec+x``, and
PCO against the SFT model it tuned). About 5 minutes a seed on 2 CPU cores; a seed whose run folder already holds PCO
metrics is not trained again. The short view's spelling of ``benchmarks/preset_runs.py --preset short``.

    python benchmarks/short_view.py --out /tmp/ml_short.csv
    python benchmarks/short_view_runs.py --csv /tmp/ml_short.csv --out /tmp/sv            # test, seeds 0-2
    python benchmarks/short_view_runs.py --csv /tmp/ml_short.csv --out /tmp/sv --dry-run  # configs and commands only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from preset_runs import SEED_KEYS, run_all  # noqa: E402

__all__ = ["SEED_KEYS", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, required=True, help="the short view (benchmarks/short_view.py --out)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the configs and run folders")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one training each")
    parser.add_argument("--validation", action="store_true", help="the validation split (default: test)")
    parser.add_argument("--dry-run", action="store_true", help="write the configs, print the commands, run nothing")
    args = parser.parse_args(argv)
    return run_all(f"csv:{args.csv.resolve()}", "short", args.out, [int(s) for s in args.seeds.split(",")],
                   validation=args.validation, dry_run=args.dry_run)


if __name__ == "__main__":
    raise SystemExit(main())
