"""Benchmark helpers: repeated timing with peak traced memory, JSON output under .bench/."""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coea.utils import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
ML_DIR = REPO.parent / "shared" / "data" / "ml-1m"
OUT_DIR = REPO / ".bench"


def no_options(doc: str | None) -> None:
    """The command line of a benchmark that takes no options: ``--help`` prints ``doc`` and exits (it used to
    run the benchmark and overwrite its .bench/ JSON); anything else is an error."""
    argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()


def bench_options(doc: str | None) -> argparse.Namespace:
    """The command line of a MovieLens benchmark with a small mode: ``--small`` runs it on a small synthetic log
    (a check that the script works, in about a minute, not a measurement: its JSON is ``<name>_small.json``),
    ``--out`` the folder of the JSON (default .bench/)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true",
                        help="a small synthetic log instead of MovieLens-1M (a smoke test of the script, not a "
                             "measurement); writes <name>_small.json")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder of the JSON (default: .bench/)")
    return parser.parse_args()


def small_split():
    """The default split of a small synthetic log (60 users, 20 categories): ``--small``'s data."""
    from coea.config import SplitConfig, SyntheticConfig
    from coea.data import chronological_split
    from coea.data.synthetic import generate_synthetic

    synth = SyntheticConfig(seed=3, n_users=60, n_categories=20, n_groups=4, items_per_category=8,
                            mean_interactions=30, min_interactions=20)
    return chronological_split(generate_synthetic(synth).interactions, SplitConfig())


def movielens_split(split_cfg=None):
    """MovieLens-1M from ../shared split by ``split_cfg`` (default: the default split), or None (and a skip line)
    when it is absent."""
    from coea.config import DataConfig, SplitConfig
    from coea.data import chronological_split, load_data

    if not (ML_DIR / "movies.dat").is_file():
        print(f"skip: MovieLens-1M not found at {ML_DIR}")
        return None
    return chronological_split(load_data(DataConfig(spec=f"movielens:{ML_DIR}")).interactions,
                                split_cfg or SplitConfig())


def run_split(run: Path, split_cfg):
    """The split ``split_cfg`` of the log a run folder was trained on (its ``data/``, written by ``coea group`` /
    the prepare stage): analyses of a run read the run's own data, MovieLens or any other."""
    from coea.data.prepared import read_prepared
    from coea.data.split import chronological_split
    from coea.layout import RunLayout

    return chronological_split(read_prepared(RunLayout(Path(run)).data).interactions, split_cfg)


def measure(fn: Callable[[], Any], repeats: int = 3) -> dict[str, float]:
    """Median wall seconds over ``repeats`` runs, and the peak traced Python/NumPy memory (MiB) of one run.

    tracemalloc sees Python and NumPy allocations, not torch tensors: torch-heavy steps also report max RSS.
    """
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": statistics.median(times), "min_seconds": min(times), "peak_mib": peak / 2**20}


def report(name: str, rows: dict[str, dict[str, float]], extra: dict[str, Any] | None = None,
           out_dir: Path = OUT_DIR) -> Path:
    """Print a table and write ``<out_dir>/<name>.json`` (default .bench/), atomically."""
    print(f"\n## {name}")
    print(f"{'step':<28}{'median s':>10}{'min s':>10}{'peak MiB':>10}{'ratio':>8}")
    for step, r in rows.items():
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else ""
        peak = f"{r['peak_mib']:.1f}" if "peak_mib" in r else "n/a"  # measured where the script traces memory
        print(f"{step:<28}{r['seconds']:>10.3f}{r['min_seconds']:>10.3f}{peak:>10}{ratio:>8}")
    path = out_dir / f"{name}.json"
    write_json_atomic(path, {"rows": rows, **(extra or {})})  # makes out_dir
    return path


def print_ci_table(per_user: dict[str, Any], refs: list[str], key: str, seed: int) -> None:
    """A markdown table: per ranking (``per_user``: label -> per-user metric vector) its mean ``key`` and, per
    reference label of ``refs``, the paired bootstrap 95 % CI of its difference over users."""
    from coea.evaluation.bootstrap import paired_bootstrap_ci

    print(f"| ranking of unseen categories | {key} | " + " | ".join(f"− {r} (95 % paired CI)" for r in refs) + " |")
    print("|---|---:|" + "---:|" * len(refs))
    for label, vec in per_user.items():
        cells = []
        for ref in refs:
            ci = paired_bootstrap_ci(vec, per_user[ref], seed=seed)
            cells.append(f"{ci.diff:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}]")
        print(f"| {label} | {vec.mean():.4f} | " + " | ".join(cells) + " |", flush=True)
