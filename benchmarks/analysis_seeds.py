"""Comparisons that count re-training noise: several trainings (seeds) per arm, a bootstrap over users AND seeds.

A quality analysis, not a speed benchmark (``make bench`` does not run it). Two trainings of the same N-LLM with
other seeds moved MovieLens S-H@10 by up to .026 (README 'Results'), more than most effects the single-run paired
CIs of ``coea evaluate`` were asked to settle. Here each arm names one method and the run dirs of its trainings;
the script scores every run on the same split and users (the config's split and prompt options) and prints, per
arm, each training's figure, their mean, and the difference to the first arm with two intervals: the paired
bootstrap over users of the seed means (what ``coea evaluate`` would say) and
:func:`coea.evaluation.bootstrap.seed_bootstrap_ci` (users and trainings resampled). With 2 trainings per arm the
second is a lower bound on the true width (module doc there).

    python benchmarks/analysis_seeds.py --config V \\
        --arm "full CSID=nllm_sft+x@RUN_A0,RUN_A1" --arm "no CSID=nllm_sft+x@RUN_B0,RUN_B1@NOCSID_CONFIG"

An arm's own config (after a second ``@``) gives its prompt options (models trained with other prompts than
``--config``'s); every arm is scored on ``--config``'s split.

Each run dir needs what the method loads (``coea evaluate --from-run`` layout: ``data/``, ``dsie/``, ``llm/``,
``pco/`` for ``coea``); every run must hold the same prepared log.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np


def parse_arm(text: str) -> tuple[str, str, list[Path], Path | None]:
    """``NAME=METHOD@RUN[,RUN...][@CONFIG]`` -> (name, method, runs, config or None)."""
    name, sep, rest = text.partition("=")
    method, at, rest = rest.partition("@")
    runs, _, config = rest.partition("@")
    if not (sep and at and name and method and runs):
        raise argparse.ArgumentTypeError(f"--arm wants NAME=METHOD@RUN[,RUN...][@CONFIG], got {text!r}")
    return name, method, [Path(r) for r in runs.split(",") if r], Path(config) if config else None


def per_user(run: Path, method: str, cfg, split, metric: str) -> np.ndarray:
    """``method``'s per-user ``metric`` on the warm users of ``split``, with the artifacts of ``run``."""
    from coea.evaluation.evaluate import recommend_all, warm_per_user
    from coea.evaluation.registry import method_context
    from coea.layout import RunLayout
    from coea.stages import load_artifacts

    k = int(metric.rsplit("@", 1)[1])
    ecfg = replace(cfg.eval, methods=[method], ks=[k], reference=None)
    recs = recommend_all(split, ecfg, method_context(cfg, load_artifacts([method], RunLayout(run).artifacts())))
    return np.asarray(warm_per_user(split, {method: recs[method]["warm"]}, ecfg, [k])[method][metric])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", action="append", type=parse_arm, required=True,
                        help="NAME=METHOD@RUN[,RUN...][@CONFIG]: one arm, its method, one run dir per training and "
                             "optionally its own config (prompt options); the first arm is the reference")
    parser.add_argument("--config", type=Path, default=None, help="the runs' config (split, prompt options)")
    parser.add_argument("--metric", default="S-H@10", help="per-user metric (default S-H@10)")
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap replicates")
    args = parser.parse_args(argv)

    from coea.config import load_run_config
    from coea.data.prepared import read_prepared
    from coea.data.split import chronological_split
    from coea.evaluation.bootstrap import paired_bootstrap_ci, seed_bootstrap_ci
    from coea.layout import RunLayout

    cfg = load_run_config(args.config)
    split = chronological_split(read_prepared(RunLayout(args.arm[0][2][0]).data).interactions, cfg.split)
    vectors = {}
    for name, method, runs, own in args.arm:
        arm_cfg = replace(load_run_config(own), split=cfg.split) if own else cfg
        vectors[name] = [per_user(run, method, arm_cfg, split, args.metric) for run in runs]
    ref = args.arm[0][0]
    print(f"| arm | method | {args.metric} per training | mean | - {ref}: users only (95 % CI) | - {ref}: users "
          f"and trainings (95 % CI) |\n|---|---|---|---:|---:|---:|")
    for name, method, _, _ in args.arm:
        runs = vectors[name]
        cells = ["0", "0"]
        if name != ref:
            users = paired_bootstrap_ci(np.mean(runs, axis=0), np.mean(vectors[ref], axis=0), n_boot=args.boot)
            both = seed_bootstrap_ci(runs, vectors[ref], n_boot=args.boot)
            cells = [f"{ci.diff:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}]" for ci in (users, both)]
        print(f"| {name} | {method} | {' / '.join(f'{v.mean():.4f}' for v in runs)} | "
              f"{np.mean([v.mean() for v in runs]):.4f} | {cells[0]} | {cells[1]} |")
    print(f"\n{len(vectors[ref][0])} evaluated users")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
