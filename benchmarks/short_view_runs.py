"""The `short` preset's trainings on the short MovieLens view, one per seed, and the table of docs/results.md.

A quality analysis, not a speed benchmark (``make bench`` does not run it). It re-runs the short view's test (or
``--validation``) read of session 45 with one command: per seed a config that is the packaged ``short`` preset plus
the log (``data.spec``), the split's ``validation`` switch and every seed of the run set to the seed (DSIE, both
LLMs, their SFT data, PCO), then ``coea group``, ``coea train-llms`` and ``coea pco`` into ``OUT/s<seed>``, and
finally ``benchmarks/analysis_seeds.py --paired-trainings`` over the runs (the served ``coea_seq+x`` against the
baselines, and PCO against the SFT model it tuned). About 5 minutes a seed on 2 CPU cores; a seed whose run folder
already holds PCO metrics is not trained again.

    python benchmarks/short_view.py --out /tmp/ml_short.csv
    python benchmarks/short_view_runs.py --csv /tmp/ml_short.csv --out /tmp/sv            # test, seeds 0-2
    python benchmarks/short_view_runs.py --csv /tmp/ml_short.csv --out /tmp/sv --dry-run  # configs and commands only
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


def seed_config(preset: dict, csv: Path, seed: int, validation: bool) -> dict:
    """The preset with the log, the split's validation switch and ``seed`` in every seeded section."""
    cfg = copy.deepcopy(preset)
    cfg["data"] = {**cfg.get("data", {}), "spec": f"csv:{csv}"}
    cfg["split"] = {**cfg.get("split", {}), "validation": validation}
    for path in SEED_KEYS:
        node = cfg
        for key in path:
            node = node.setdefault(key, {})
        node["seed"] = seed
    return cfg


def commands(coea: str, config: Path, run: Path) -> list[list[str]]:
    """The three training steps of one seed."""
    return [[coea, "group", "--config", str(config), "--out", str(run)],
            [coea, "train-llms", "--run", str(run), "--config", str(config)],
            [coea, "pco", "--run", str(run), "--config", str(config)]]


def read_commands(python: str, configs: list[Path], runs: list[Path]) -> list[list[str]]:
    """The two tables: served and baselines against sasrec+x; the tuned N-LLM against its SFT model."""
    joined = ",".join(str(r) for r in runs)
    arms = {"served": [("sasrec", "sasrec+x"), ("served", "coea_seq+x"), ("nllm_seq", "nllm_seq+x"),
                       ("cooc", "cooc_novel"), ("markov", "markov+x"), ("dual_best_of_n", "dual_best_of_n+x")],
            "pco": [("nllm_sft", "nllm_sft+x"), ("coea", "coea+x")]}
    base = [python, str(BENCH / "analysis_seeds.py"), "--config", str(configs[0]), "--paired-trainings"]
    return [base + [a for name, method in pairs for a in ("--arm", f"{name}={method}@{joined}")]
            for pairs in arms.values()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, required=True, help="the short view (benchmarks/short_view.py --out)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the configs and run folders")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one training each")
    parser.add_argument("--validation", action="store_true", help="the validation split (default: test)")
    parser.add_argument("--dry-run", action="store_true", help="write the configs, print the commands, run nothing")
    args = parser.parse_args(argv)
    from coea.config import load_run_config, preset_path

    preset = yaml.safe_load(preset_path("short").read_text(encoding="utf-8"))
    coea = str(Path(sys.executable).with_name("coea"))
    args.out.mkdir(parents=True, exist_ok=True)
    configs, runs = [], []
    for seed in (int(s) for s in args.seeds.split(",")):
        config, run = args.out / f"s{seed}.yaml", args.out / f"s{seed}"
        config.write_text(yaml.safe_dump(seed_config(preset, args.csv.resolve(), seed, args.validation)),
                          encoding="utf-8")
        load_run_config(config)  # a config the CLI would refuse stops here, before any training
        configs.append(config)
        runs.append(run)
        if (run / "pco" / "pco_metrics.json").is_file():
            continue
        for cmd in commands(coea, config, run):
            print(shlex.join(cmd), flush=True)
            if not args.dry_run:
                subprocess.run(cmd, check=True)
    for cmd in read_commands(sys.executable, configs, runs):
        print(shlex.join(cmd), flush=True)
        if not args.dry_run:
            subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
