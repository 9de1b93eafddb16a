"""Comparisons that count re-training noise: several trainings (seeds) per arm, a bootstrap over users AND seeds.

A quality analysis, not a speed benchmark (``make bench`` does not run it). Two trainings of the same N-LLM with
other seeds moved MovieLens S-H@10 by up to .026 (docs/results.md), more than most effects the single-run paired
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

``--paired-trainings``: an arm's i-th run was made from the reference arm's i-th (the same SFT training, e.g. the
PCO run that tuned it: ``--arm "sft=nllm_sft+x@R0,R1,R2" --arm "coea=coea+x@R0,R1,R2"``), so the last column
resamples the trainings jointly and what a training shares between the two arms cancels
(:func:`coea.evaluation.bootstrap.seed_bootstrap_ci`, ``paired_runs``); each arm then needs as many runs as the
reference, and the table adds each training's own difference.

Each run dir needs what the method loads (``coea evaluate --from-run`` layout: ``data/``, ``dsie/``, ``llm/``,
``pco/`` for ``coea``). Before any run is scored, the artifacts each arm's method reads in every run are checked
against the reference's first run's prepared log and ``--config``'s split (``coea evaluate --from-run``'s lineage
check): a run fitted on another log or split (which would be scored on events it learned from), or whose steps do
not belong together, is a one-line error, exit 2.
"""

from __future__ import annotations

import argparse
import sys
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
    parser.add_argument("--paired-trainings", action="store_true",
                        help="an arm's i-th run was made from the reference's i-th (module doc): resample trainings "
                             "jointly")
    parser.add_argument("--also-against", action="append", default=[], metavar="NAME",
                        help="print the table again with arm NAME as the reference (the runs are scored once)")
    args = parser.parse_args(argv)
    names = [name for name, _, _, _ in args.arm]
    for extra in args.also_against:
        if extra not in names:
            parser.error(f"--also-against {extra!r}: no such arm (the arms: {', '.join(names)})")
    ref_runs = len(args.arm[0][2])
    if args.paired_trainings and any(len(runs) != ref_runs for _, _, runs, _ in args.arm):
        parser.error(f"--paired-trainings: every arm needs as many runs as the reference arm ({ref_runs})")

    from coea.cli.common import check_lineage
    from coea.config import load_run_config
    from coea.data.prepared import read_prepared
    from coea.data.split import chronological_split
    from coea.errors import CoeaInputError
    from coea.layout import RunLayout

    cfg = load_run_config(args.config)
    data_dir = RunLayout(args.arm[0][2][0]).data  # every run's artifacts must come from this log and split
    try:
        for _, method, runs, _ in args.arm:
            for run in runs:
                check_lineage(run, [method], cfg, data_dir)
    except CoeaInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    split = chronological_split(read_prepared(data_dir).interactions, cfg.split)
    vectors = {}
    for name, method, runs, own in args.arm:
        arm_cfg = replace(load_run_config(own), split=cfg.split) if own else cfg
        vectors[name] = [per_user(run, method, arm_cfg, split, args.metric) for run in runs]
    arms = [(name, method) for name, method, _, _ in args.arm]
    print(table(arms, vectors, args.metric, args.paired_trainings, args.boot))
    for extra in args.also_against:  # the same vectors, another arm first
        print("\n" + table(sorted(arms, key=lambda arm: arm[0] != extra), vectors, args.metric,
                            args.paired_trainings, args.boot))
    return 0


def table(arms: list[tuple[str, str]], vectors: dict[str, list[np.ndarray]], metric: str, paired: bool,
          boot: int) -> str:
    """The markdown table: per arm (name, method) its trainings' figures, their mean and, against the first arm,
    the users-only interval of the training means and :func:`~coea.evaluation.bootstrap.seed_bootstrap_ci`'s
    (``paired``: ``paired_runs``, and each training's own difference)."""
    from coea.evaluation.bootstrap import paired_bootstrap_ci, seed_bootstrap_ci

    ref = arms[0][0]
    both_head = "paired trainings" if paired else "trainings"
    extra_head, extra_rule = (f" - {ref} per training |", "---|") if paired else ("", "")
    lines = [f"| arm | method | {metric} per training | mean | - {ref}: users only (95 % CI) | - {ref}: users "
             f"and {both_head} (95 % CI) |{extra_head}", f"|---|---|---|---:|---:|---:|{extra_rule}"]
    for name, method in arms:
        runs = vectors[name]
        cells = ["0", "0"] + (["0"] if paired else [])
        if name != ref:
            users = paired_bootstrap_ci(np.mean(runs, axis=0), np.mean(vectors[ref], axis=0), n_boot=boot)
            both = seed_bootstrap_ci(runs, vectors[ref], n_boot=boot, paired_runs=paired)
            cells = [f"{ci.diff:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}]" for ci in (users, both)]
            if paired:
                cells.append(" / ".join(f"{(a - b).mean():+.4f}" for a, b in zip(runs, vectors[ref], strict=True)))
        lines.append(f"| {name} | {method} | {' / '.join(f'{v.mean():.4f}' for v in runs)} | "
                     f"{np.mean([v.mean() for v in runs]):.4f} | {' | '.join(cells)} |")
    return "\n".join(lines) + f"\n\n{len(vectors[ref][0])} evaluated users"

if __name__ == "__main__":
    raise SystemExit(main())
