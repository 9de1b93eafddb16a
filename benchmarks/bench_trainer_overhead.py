"""The fixed cost of one Hugging Face training call (``train_sft`` / ``train_dpo`` on a few steps), which a PCO round
pays several times (DPO, the R-LLM refresh, the N-LLM refresh) and an ablation dozens of times: with the cyclic
garbage collector's heap frozen once per process (:func:`coea.utils.freeze_gc_heap`, the default) and without it
(the baseline, measured in the same run: the trainers' own ``gc.collect()`` calls then walk every imported object).

Each mode runs in a fresh Python (so the first one's imports and freeze cannot help the other), in the order
baseline, frozen, baseline, frozen; a process trains the default (`cpu` preset) model ``--calls`` times, one step
on 4 real MovieLens-1M short-term sets (../shared) each, and reports the median seconds of a call after the first.
Run: ``make bench`` or ``python benchmarks/bench_trainer_overhead.py [--calls N]``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import movielens_split, report  # noqa: E402

BATCH = 4  # one optimizer step of 4 examples a call: the call's fixed cost, not its arithmetic


def _worker(calls: int, frozen: bool) -> dict[str, float]:
    """Median seconds of an SFT and a DPO call (after a first untimed one of each) in this process."""
    from bench_train import PROFILE, _examples

    import coea.utils
    from coea.config import load_run_config
    from coea.llm import dpo, sft
    from coea.llm.models import build_model_and_tokenizer

    if not frozen:
        coea.utils._gc_frozen = True  # the baseline: freeze_gc_heap() then does nothing
    split = movielens_split()
    cfg = load_run_config(None)
    nov, _, pairs = _examples(split, BATCH)
    bundle = build_model_and_tokenizer(cfg.llm.model, split.histories.categories, [PROFILE], [4, 4])
    ref = copy.deepcopy(bundle.model).eval()
    sft_cfg = replace(cfg.llm.novelty, epochs=1.0, batch_size=BATCH, max_examples=None, logging_steps=10**6,
                      sequence_loss=0)  # as bench_train: these prompts have no seq: section
    dpo_cfg = replace(cfg.pco.dpo, epochs=1.0, batch_size=BATCH, logging_steps=10**6)
    times: dict[str, list[float]] = {"sft": [], "dpo": []}
    for _ in range(calls):
        start = time.perf_counter()
        sft.train_sft(sft_cfg, bundle.model, bundle.tokenizer, nov, device="cpu")
        times["sft"].append(time.perf_counter() - start)
        start = time.perf_counter()
        dpo.train_dpo(dpo_cfg, bundle.model, bundle.tokenizer, pairs, ref_model=ref, device="cpu")
        times["dpo"].append(time.perf_counter() - start)
    start = time.perf_counter()
    gc.collect()
    return {"sft_s": statistics.median(times["sft"][1:]), "dpo_s": statistics.median(times["dpo"][1:]),
            "collect_s": time.perf_counter() - start, "tracked_objects": float(len(gc.get_objects()))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=8, help="training calls of each kind per process (the first untimed)")
    ap.add_argument("--worker", choices=("baseline", "frozen"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.calls < 2:  # the first call of each kind is not timed
        ap.error(f"--calls must be at least 2 (the first is not timed), got {args.calls}")
    if args.worker:
        print(json.dumps(_worker(args.calls, args.worker == "frozen")))
        return 0
    if movielens_split() is None:
        return 0
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "frozen": []}
    for mode in ("baseline", "frozen", "baseline", "frozen"):
        done = subprocess.run([sys.executable, __file__, "--calls", str(args.calls), "--worker", mode],
                              capture_output=True, text=True)
        if done.returncode:  # the worker's own error, not only CalledProcessError's exit status
            sys.stderr.write(done.stderr)
            raise SystemExit(f"bench_trainer_overhead: the {mode} worker failed (exit {done.returncode})")
        runs[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows: dict[str, dict[str, float]] = {}
    for mode, results in runs.items():
        row = {key: statistics.median(r[key] for r in results) for key in results[0]}
        row["seconds"] = row["min_seconds"] = row["sft_s"] + row["dpo_s"]
        rows[f"sft+dpo call, gc heap {mode}"] = row
        print(f"{mode:<8} sft {row['sft_s']:.3f}s  dpo {row['dpo_s']:.3f}s  gc.collect {row['collect_s']:.3f}s  "
              f"tracked {row['tracked_objects']:.0f}", flush=True)
    base = rows["sft+dpo call, gc heap baseline"]
    for row in rows.values():
        row["ratio"] = row["seconds"] / base["seconds"]
    report("trainer_overhead", rows, {"calls": args.calls, "processes_per_mode": 2})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
