"""Scaling curve: seconds and peak RSS of every stage of the main job at growing numbers of synthetic users.

Each (size, stage) runs in a fresh Python (``nice -n 10``, ``COEA_TORCH_THREADS=1``), the way a pipeline step
runs in its own pod: the stage reads what the previous stages wrote in one run folder per size. The child
measures the stage's wall seconds (imports excluded) and its peak RSS (``getrusage`` ``ru_maxrss``); the RSS
right after the imports is reported too, so that the *growth* of memory (peak minus import baseline) can be
fitted apart from the fixed cost of torch/transformers/trl. The growth exponent of a stage is the least-squares
slope of log(value) against log(users) over the sizes.

Work per size is fixed where the real job's work is a training budget: the encoder trains 1 epoch and the
RQ-VAE 2 (their cost per epoch is linear in users), each SFT a fixed number of optimizer steps
(``max_examples`` = steps x batch, 1 epoch), PCO one round on at most ``users_per_round`` users with a capped
R-LLM refresh and no per-round judge, its per-round metrics on the ``--llm-users`` sample. Everything else runs
as the job runs it, on every user: DSIE grouping and profiles, building every SFT example, evaluation of the
cheap baselines on every evaluated user and of ``nllm_sft+x``, ``coea+x`` and ``coea_seq+x`` fitted on every
user and scored on a fixed sample of ``--llm-users`` (bootstrap with 200 replicates), top-10 recommendations of
the served method (``coea.config.SERVED_METHOD``, ``coea_seq+x`` since session 18: the tuned N-LLM beside the
DSIE encoder, one more encoder pass per user) for every user, and the export to the SQLite KV store.

Run: ``python benchmarks/bench_scale.py`` (10k, 30k, 100k users) or ``--quick`` (1k, 3k, 10k);
``--sizes 2000,4000`` picks sizes. Writes ``.bench/scale.json`` (``--out``; with ``--quick``
``.bench/scale_quick.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT_DIR, REPO  # noqa: E402

from coea.config import SERVED_METHOD  # noqa: E402

STAGES = ("prepare", "dsie", "sft_data", "sft_novelty", "sft_relevance", "pco", "evaluate", "evaluate_llm",
          "recommend", "export")
FULL_SIZES, QUICK_SIZES = (10_000, 30_000, 100_000), (1_000, 3_000, 10_000)
CHEAP_METHODS = ["random", "pop", "pop_novel", "markov", "markov+x", "cooc_novel", "ease_novel", "group_pop_novel"]
LLM_METHODS = ["nllm_sft+x", "coea+x", "coea_seq+x"]  # fitted on every user, scored on a fixed sample (--llm-users)


def bench_config(n_users: int, sft_steps: int = 20, pco_users: int = 64, llm_users: int = 1000):
    """The run config of one size: the defaults with ``n_users`` synthetic users and fixed training budgets."""
    from coea.config import EvalConfig, RunConfig, SyntheticConfig
    from coea.dsie.config import DsieConfig, EncoderConfig, RqVaeConfig
    from coea.llm.dpo_config import DpoTrainConfig
    from coea.llm.sft_config import LlmConfig, SftTrainConfig
    from coea.pco.config import PcoConfig

    def sft(batch: int) -> SftTrainConfig:
        return SftTrainConfig(epochs=1.0, batch_size=batch, max_examples=sft_steps * batch, logging_steps=10)

    return RunConfig(
        device="cpu", synthetic=SyntheticConfig(n_users=n_users),
        eval=EvalConfig(methods=CHEAP_METHODS + LLM_METHODS, bootstrap=200, judge_users=0, round_users=llm_users),
        dsie=DsieConfig(encoder=EncoderConfig(epochs=1, patience=99), rqvae=RqVaeConfig(epochs=2)),
        llm=LlmConfig(novelty=sft(32), relevance=sft(32)),
        pco=PcoConfig(rounds=1, users_per_round=pco_users, dpo=DpoTrainConfig(epochs=1.0),
                      relevance_refresh=SftTrainConfig(epochs=1.0, lr=1e-3, max_examples=sft_steps * 32,
                                                       warmup_ratio=0.0)))


def run_stage(stage: str, cfg, root: Path, served: str | None = None) -> None:
    """One stage of the main job on the run folder ``root`` (the calls of :mod:`coea.flow`, one at a time)."""
    from coea import stages
    from coea.layout import RunLayout

    lay = RunLayout(root)
    served = served or SERVED_METHOD
    state_uri = str(root / "state")
    if stage == "prepare":
        stages.run_prepare_data(cfg, lay.data)
    elif stage == "dsie":
        stages.run_dsie_group(cfg, lay.data, lay.dsie)
    elif stage == "sft_data":
        build_sft_data(cfg, lay)
    elif stage in ("sft_novelty", "sft_relevance"):
        stages.run_sft_stage(cfg, lay.data, lay.dsie, lay.llm, which=(stage.removeprefix("sft_"),))
    elif stage == "pco":
        stages.run_pco_stage(cfg, lay.data, lay.dsie, [lay.llm], lay.pco)
    elif stage == "evaluate":
        stages.run_evaluate_stage(replace(cfg, eval=replace(cfg.eval, methods=CHEAP_METHODS)), lay.data, lay.eval,
                                  lay.artifacts())
    elif stage == "evaluate_llm":
        evaluate_llm_sample(cfg, lay)
    elif stage == "recommend":
        stages.run_recommend(cfg, lay.data, lay.artifacts(), served, 10, lay.recommendations)
    elif stage == "export":
        final = stages.last_complete_round(lay.pco)
        stages.run_save_state(state_uri, lay.data, lay.dsie, final, final)
        stages.run_export(stages.PublishConfig(), lay.recommendations, state_uri, lay.kv_store)
    else:
        raise ValueError(f"unknown stage {stage!r}; known: {STAGES}")


def build_sft_data(cfg, lay) -> int:
    """Build every SFT example of both LLMs (what the SFT steps start with); returns how many."""
    from coea.data.prepared import read_prepared
    from coea.data.split import chronological_split
    from coea.llm.sft_config import resolve_llm
    from coea.llm.sft_data import build_sft_examples, group_infos
    from coea.stages import read_groups_dir

    split = chronological_split(read_prepared(lay.data).interactions, cfg.split)
    g = read_groups_dir(lay.dsie)
    llm = resolve_llm(cfg.llm, cfg.split)
    ex = build_sft_examples(split.histories.interactions, group_infos(g.groups, g.profiles), llm.data, eos="</s>")
    return len(ex.novelty) + len(ex.relevance)


def evaluate_llm_sample(cfg, lay) -> None:
    """The evaluate stage's work for :data:`LLM_METHODS`: fitted on every user's history, scored on a seeded
    sample of ``cfg.eval.round_users`` evaluated users (LLM inference is one batched prompt per scored user)."""
    from coea.data.prepared import read_prepared
    from coea.data.split import chronological_split
    from coea.evaluation.evaluate import evaluate_split
    from coea.evaluation.pco_metrics import judge_rows
    from coea.evaluation.registry import method_context
    from coea.stages import load_artifacts

    loaded = read_prepared(lay.data)
    split = chronological_split(loaded.interactions, cfg.split)
    sample = [split.warm_users[i] for i in judge_rows(len(split.warm_users), cfg.eval.round_users)]
    cfg = replace(cfg, eval=replace(cfg.eval, methods=LLM_METHODS))
    artifacts = load_artifacts(LLM_METHODS, lay.artifacts(), "cpu")
    evaluate_split(cfg, lay.root / "eval_llm", loaded, replace(split, warm_users=sample, cold_users=[]),
                   method_context(cfg, artifacts))


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process: less sensitive than wall time to other jobs on the machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(stage: str, n_users: int, root: Path, args: argparse.Namespace) -> dict[str, float]:
    """Run one stage in this process; its seconds, peak RSS and the RSS after the imports (MiB)."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401

    import coea.stages  # noqa: F401  (the imports a pipeline step pays before its stage)

    cfg = bench_config(n_users, args.sft_steps, args.pco_users, args.llm_users)
    base, cpu = _rss_mib(), _cpu_seconds()
    start = time.perf_counter()
    run_stage(stage, cfg, root, args.served)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": _cpu_seconds() - cpu, "peak_mib": _rss_mib(),
            "base_mib": base}


def spawn(stage: str, n_users: int, root: Path, args: argparse.Namespace) -> dict[str, float]:
    """:func:`child` in a fresh, niced Python with one torch thread."""
    env = {**os.environ, "COEA_TORCH_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = ["nice", "-n", "10", sys.executable, __file__, "--child", stage, "--n-users", str(n_users),
           "--root", str(root), "--sft-steps", str(args.sft_steps), "--pco-users", str(args.pco_users),
           "--llm-users", str(args.llm_users), "--served", args.served]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{stage} at {n_users} users failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def growth_exponent(sizes: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) on log(size): value ~ size ** exponent."""
    x, y = np.log(np.asarray(sizes, float)), np.log(np.maximum(np.asarray(values, float), 1e-9))
    return float(np.polyfit(x, y, 1)[0])


def exponents(sizes: list[int], rows: dict[str, dict[int, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per stage: growth exponents of wall seconds, of peak RSS, of the growth of memory (peak - import RSS) and,
    where every size has it, of CPU seconds."""
    out = {}
    for stage, by_size in rows.items():
        r = [by_size[n] for n in sizes]
        out[stage] = {"seconds": growth_exponent(sizes, [x["seconds"] for x in r]),
                      "peak_mib": growth_exponent(sizes, [x["peak_mib"] for x in r]),
                      "grown_mib": growth_exponent(sizes, [max(x["peak_mib"] - x["base_mib"], 1.0) for x in r])}
        if all("cpu_seconds" in x for x in r):
            out[stage]["cpu_seconds"] = growth_exponent(sizes, [x["cpu_seconds"] for x in r])
    return out


def print_table(sizes: list[int], rows: dict[str, dict[int, dict[str, float]]], exps: dict) -> None:
    head = "".join(f"{f'{n:,} s':>11}{'RSS MiB':>9}" for n in sizes)
    print(f"\n## scale\n{'stage':<15}{head}{'exp s':>7}{'exp RSS':>8}{'exp grown':>10}")
    for stage, by_size in rows.items():
        cells = "".join(f"{by_size[n]['seconds']:>11.1f}{by_size[n]['peak_mib']:>9.0f}" for n in sizes)
        e = exps[stage]
        print(f"{stage:<15}{cells}{e['seconds']:>7.2f}{e['peak_mib']:>8.2f}{e['grown_mib']:>10.2f}")
    totals = [sum(rows[s][n]["seconds"] for s in rows) for n in sizes]
    peaks = [max(rows[s][n]["peak_mib"] for s in rows) for n in sizes]
    print(f"{'total s / max':<15}" + "".join(f"{t:>11.1f}{p:>9.0f}" for t, p in zip(totals, peaks, strict=True))
          + f"{growth_exponent(sizes, totals):>7.2f}{growth_exponent(sizes, peaks):>8.2f}")


def markdown(sizes: list[int], rows: dict, exps: dict, target: int = 1_000_000) -> str:
    """The README table: seconds / peak RSS (GiB) per stage and size, the exponents, and a linear EXTRAPOLATION to
    ``target`` users: the last size's seconds x target / size, and its peak + the marginal MiB per user between
    the last two sizes x the users added."""
    last, prev, f = sizes[-1], sizes[-2], target / sizes[-1]
    head = " | ".join(f"{n // 1000}k users: s / peak GiB" for n in sizes)
    lines = [f"| stage | {head} | exp. s | exp. RSS | exp. grown RSS | {target:,} users, EXTRAPOLATED "
             "linearly: s / GiB |", "|---|" + "---:|" * (len(sizes) + 4)]
    for stage, by_size in rows.items():
        r, e = by_size[last], exps[stage]
        cells = " | ".join(f"{by_size[n]['seconds']:,.0f} / {by_size[n]['peak_mib'] / 1024:.2f}" for n in sizes)
        peak = r["peak_mib"] + (r["peak_mib"] - by_size[prev]["peak_mib"]) / (last - prev) * (target - last)
        lines.append(f"| {stage} | {cells} | {e['seconds']:.2f} | {e['peak_mib']:.2f} | {e['grown_mib']:.2f} | "
                     f"{r['seconds'] * f:,.0f} / {peak / 1024:.0f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES} (smoke test)")
    p.add_argument("--sizes", help=f"comma-separated user counts (default {FULL_SIZES})")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages, in job order")
    p.add_argument("--sft-steps", type=int, default=20, help="optimizer steps of each SFT (and the R-LLM refresh)")
    p.add_argument("--pco-users", type=int, default=64, help="PCO users_per_round (DPO prompts of the one round)")
    p.add_argument("--llm-users", type=int, default=1000,
                   help="evaluated users the LLM methods and PCO's per-round metrics score (a fixed sample)")
    p.add_argument("--served", default=SERVED_METHOD, help="the method whose top-10 the recommend stage serves "
                   "(default: %(default)s, the pipelines' default)")
    p.add_argument("--work", type=Path, help="run folders go here (default: a temporary directory, removed)")
    p.add_argument("--out", type=Path, default=None,
                   help="default .bench/scale.json, .bench/scale_quick.json with --quick (`make bench` runs it): "
                        "the smoke test does not overwrite a full curve")
    p.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    p.add_argument("--n-users", type=int, help=argparse.SUPPRESS)
    p.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.out is None:
        args.out = OUT_DIR / ("scale_quick.json" if args.quick else "scale.json")
    return args


def write_results(args: argparse.Namespace, sizes: list[int], rows: dict, exps: dict) -> None:
    """``args.out``: the rows measured so far (written after every stage), the exponents once complete."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in ("sft_steps", "pco_users", "llm_users", "served")}
    args.out.write_text(json.dumps({"sizes": sizes, "rows": rows, "exponents": exps, **settings,
                                    "cheap_methods": CHEAP_METHODS, "llm_methods": LLM_METHODS}, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.n_users, args.root, args)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else FULL_SIZES)
    stages = [s for s in args.stages.split(",") if s]
    rows: dict[str, dict[int, dict[str, float]]] = {s: {} for s in stages}
    with tempfile.TemporaryDirectory(prefix="coea-scale-") as tmp:
        work = args.work or Path(tmp)
        for n in sizes:
            for stage in stages:
                rows[stage][n] = r = spawn(stage, n, work / f"u{n}", args)
                print(f"{n:>7} users {stage:<14}{r['seconds']:>8.1f} s {r['peak_mib']:>7.0f} MiB peak", flush=True)
                write_results(args, sizes, rows, {})
    exps = exponents(sizes, rows) if len(sizes) > 1 else {}
    if exps:
        print_table(sizes, rows, exps)
        print("\n" + markdown(sizes, rows, exps))
    write_results(args, sizes, rows, exps)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
