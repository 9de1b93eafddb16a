"""Every method through the real commands on one device: ``coea evaluate`` (the training flow: DSIE, both SFTs,
PCO, then scoring), ``coea evaluate --from-run`` on its folder (must give the same metrics), and ``coea serve`` for
every method (K finite categories for every user). A small synthetic log, so it takes a minute or two.

Meant for a GPU machine (``--device cuda``; the default ``auto`` picks the GPU when there is one); it also runs on
the CPU. Prints one line per check and exits 1 when any fails.
Run: ``python benchmarks/device_check.py [--device cuda] [--work DIR]``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from coea.evaluation.registry import METHODS as REGISTRY  # torch-free: the methods load lazily

BASES = list(REGISTRY)  # every method the CLI accepts, so a new one is checked without editing this list
METHODS = BASES + [f"{b}+x" for b in BASES]
K = 5  # served per user: below the 20 categories minus what a tiny-log user has seen (+x, *_novel exclude those)
CONFIG = {  # the test suite's tiny config: 120 users, 20 categories, tiny LLMs, 2 small PCO rounds
    "synthetic": {"seed": 3, "n_users": 120, "n_categories": 20, "n_groups": 4, "items_per_category": 8,
                  "mean_interactions": 40, "min_interactions": 25},
    "dsie": {"encoder": {"dim": 16, "epochs": 3}, "rqvae": {"epochs": 20}},
    "llm": {"model": {"hidden_size": 32, "intermediate_size": 64}, "novelty": {"epochs": 1.0},
            "relevance": {"epochs": 1.0}, "best_of_n": 5},
    "pco": {"rounds": 2, "users_per_round": 40, "candidates": 4},
    "eval": {"bootstrap": 200},
}


def coea(*args: str) -> float:
    """Run one ``coea`` command (this interpreter); its wall seconds, or SystemExit with its output tail."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "coea.cli", *args], capture_output=True, text=True, check=False)
    if proc.returncode:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        raise SystemExit(f"FAIL coea {' '.join(args)}: exit {proc.returncode}")
    return time.perf_counter() - start


def metric_rows(path: Path) -> dict[str, dict[str, float]]:
    """method -> {metric@k: value} of a metrics.json."""
    return json.loads(path.read_text())["methods"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    ap.add_argument("--serve", default=",".join(METHODS), help="comma-separated methods to serve (default: all)")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="coea-device-check-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "device": args.device}))
    run, again = work / "run", work / "from_run"
    methods = ",".join(METHODS)
    s = coea("evaluate", "--data", "synthetic", "--config", str(work / "config.yaml"), "--device", args.device,
             "--methods", methods, "--k", "10", "--out", str(run))
    print(f"ok   evaluate (flow) {len(METHODS)} methods on {args.device}: {s:.0f}s", flush=True)
    s = coea("evaluate", "--from-run", str(run), "--device", args.device, "--methods", methods, "--k", "10",
             "--out", str(again))
    first, second = metric_rows(run / "metrics.json"), metric_rows(again / "metrics.json")
    diff = [m for m in METHODS if first.get(m) != second.get(m)]
    print(f"{'FAIL' if diff else 'ok  '} evaluate --from-run: {len(METHODS) - len(diff)}/{len(METHODS)} methods "
          f"with the run's own metrics {diff or ''} ({s:.0f}s)", flush=True)
    failed = bool(diff)
    n_users = None
    for method in args.serve.split(","):
        out = work / f"serve_{method.replace('+', '_x')}.parquet"
        s = coea("serve", "--run", str(run), "--device", args.device, "--method", method, "--k", str(K),
                 "--out", str(out))
        recs = pd.read_parquet(out)
        per_user = recs.groupby("user_id").size()
        n_users = n_users or len(per_user)
        bad = (per_user != K).sum() + (~recs["score"].map(math.isfinite)).sum() + (len(per_user) != n_users)
        failed |= bool(bad)
        print(f"{'FAIL' if bad else 'ok  '} serve {method:<18} {len(per_user)} users x {K}, finite scores "
              f"({s:.0f}s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
