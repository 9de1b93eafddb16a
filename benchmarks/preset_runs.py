"""Several trainings of one packaged preset on one log, one per seed, and the paired tables of docs/results.md.

A quality analysis, not a speed benchmark (``make bench`` does not run it). Per seed a config that is the packaged
preset (``--preset``: ``distil``, ``short``, ... or a YAML file) plus the log (``data.spec``), the split's
``validation`` switch and every seed of the run set to the seed (DSIE, both LLMs, their SFT data, PCO); then
``coea group``, ``coea train-llms`` and ``coea pco`` into ``OUT/s<seed>`` (with ``--evaluate`` also ``coea evaluate
--from-run`` into ``OUT/s<seed>/evaluate``: every default method's metrics.md), and finally
``benchmarks/analysis_seeds.py --paired-trainings`` over the runs: every method against ``sasrec+x``, and PCO's
tuned N-LLM against the SFT model it tuned. A seed whose run folder already holds PCO metrics is not trained again.
MovieLens at the default size: ~40-60 minutes a seed at one torch thread (DSIE, the N-LLM, the default R-LLM),
plus the PCO rounds (the ``distil`` preset: 4-5 minutes a round).

    python benchmarks/preset_runs.py --data movielens:../shared/data/ml-1m --preset distil --out /tmp/T --seeds 5,6
    python benchmarks/preset_runs.py --data csv:/tmp/ml_short.csv --preset short --out /tmp/sv --validation
    python benchmarks/preset_runs.py ... --dry-run      # the configs and the commands only
"""

from __future__ import annotations

import argparse
import copy
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
SEED_KEYS = (("dsie",), ("dsie", "encoder"), ("dsie", "rqvae"), ("llm", "model"), ("llm", "data"),
             ("llm", "novelty"), ("llm", "relevance"), ("pco",))  # every section with its own seed
# the tables' arms: (name, method); the first of each table is its reference
READS = {"methods": [("sasrec", "sasrec+x"), ("coea", "coea+x"), ("sasrec_ease", "sasrec_ease+x"),
                     ("served", "coea_seq+x"), ("nllm_seq", "nllm_seq+x"), ("nllm_sft", "nllm_sft+x"),
                     ("dual_best_of_n", "dual_best_of_n+x"), ("cooc", "cooc_novel"), ("markov", "markov+x"),
                     ("group_pop", "group_pop_novel")],
         "pco": [("nllm_sft", "nllm_sft+x"), ("coea", "coea+x")]}


def seed_config(preset: dict, spec: str, seed: int, validation: bool) -> dict:
    """The preset with the log ``spec``, the split's validation switch and ``seed`` in every seeded section."""
    cfg = copy.deepcopy(preset)
    cfg["data"] = {**cfg.get("data", {}), "spec": spec}
    cfg["split"] = {**cfg.get("split", {}), "validation": validation}
    for path in SEED_KEYS:
        node = cfg
        for key in path:
            node = node.setdefault(key, {})
        node["seed"] = seed
    return cfg


def commands(coea: str, config: Path, run: Path, *, evaluate: bool = False) -> list[list[str]]:
    """The training steps of one seed (and its evaluation with every default method)."""
    steps = [[coea, "group", "--config", str(config), "--out", str(run)],
             [coea, "train-llms", "--run", str(run), "--config", str(config)],
             [coea, "pco", "--run", str(run), "--config", str(config)]]
    if evaluate:
        steps.append([coea, "evaluate", "--from-run", str(run), "--config", str(config), "--out",
                      str(run / "evaluate"), "--reference", "sasrec+x"])
    return steps


def read_commands(python: str, configs: list[Path], runs: list[Path]) -> list[list[str]]:
    """The two tables: every method against sasrec+x; the tuned N-LLM against its SFT model."""
    joined = ",".join(str(r) for r in runs)
    base = [python, str(BENCH / "analysis_seeds.py"), "--config", str(configs[0]), "--paired-trainings"]
    return [base + [a for name, method in pairs for a in ("--arm", f"{name}={method}@{joined}")]
            for pairs in READS.values()]


def preset_mapping(name: str) -> dict:
    """A packaged preset's mapping (``distil``, ``short``, ...) or a YAML file's."""
    from coea.config import preset_path

    path = preset_path(name) or Path(name)
    if not path.is_file():
        raise SystemExit(f"preset_runs: no packaged preset or file named {name!r}")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def run_all(spec: str, preset: str, out: Path, seeds: list[int], *, validation: bool, evaluate: bool = False,
            dry_run: bool = False) -> int:
    """Write the configs, train each seed not trained yet, then print (and run) the reads."""
    from coea.config import load_run_config

    mapping = preset_mapping(preset)
    coea = str(Path(sys.executable).with_name("coea"))
    out.mkdir(parents=True, exist_ok=True)
    configs, runs = [], []
    for seed in seeds:
        config, run = out / f"s{seed}.yaml", out / f"s{seed}"
        config.write_text(yaml.safe_dump(seed_config(mapping, spec, seed, validation)), encoding="utf-8")
        load_run_config(config)  # a config the CLI would refuse stops here, before any training
        configs.append(config)
        runs.append(run)
        if (run / "pco" / "pco_metrics.json").is_file():
            continue
        for cmd in commands(coea, config, run, evaluate=evaluate):
            print(shlex.join(cmd), flush=True)
            if not dry_run:
                subprocess.run(cmd, check=True)
    for cmd in read_commands(sys.executable, configs, runs):
        print(shlex.join(cmd), flush=True)
        if not dry_run:
            subprocess.run(cmd, check=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the log's spec (movielens:DIR, csv:FILE, ...)")
    parser.add_argument("--preset", default="distil", help="a packaged preset's name or a YAML file (default distil)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the configs and run folders")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one training each")
    parser.add_argument("--validation", action="store_true", help="the validation split (default: test)")
    parser.add_argument("--evaluate", action="store_true", help="also `coea evaluate --from-run` each seed")
    parser.add_argument("--dry-run", action="store_true", help="write the configs, print the commands, run nothing")
    args = parser.parse_args(argv)
    return run_all(args.data, args.preset, args.out, [int(s) for s in args.seeds.split(",")],
                   validation=args.validation, evaluate=args.evaluate, dry_run=args.dry_run)


if __name__ == "__main__":
    raise SystemExit(main())
