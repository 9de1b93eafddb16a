"""Training throughput of the two LLMs: examples/s of N-LLM SFT, R-LLM SFT and DPO pairs/s, for the default
(`cpu` preset) model at its batch size in fp32 (the baseline, measured in the same run) and for the `gpu`
preset's model and batch size, in fp32 and with ``precision: auto`` (bf16 autocast on a CUDA GPU), and the default
model with activation checkpointing on (trl's default, which every training used before session 41), on the CPU
and, where CUDA is available, on the GPU. The ratio column is examples/s over the baseline row of the same device.

Prompts are real MovieLens-1M short-term sets (../shared) with a realistic group profile; the labels are drawn at
random (seeded): throughput does not depend on them. The ``prompt`` rows train the default model's N-LLM on longer
prompts, the user's history sections as SFT writes them (``llm.data.sequence`` 50; with ``items`` 50 too, whose
scratch tokenizer holds every history item: its output layer grows with them; and with the N-LLM's default
``sequence_loss`` 10, which labels 10 more tokens a prompt, or 50, every ``seq:`` position); ratio = over the
default row. The other rows train
the completions only (``sequence_loss`` 0: their short prompts have no ``seq:`` section). The ``checkpoint every
step`` row trains the last prompt row's examples saving a resumable checkpoint after every step
(``checkpoint_minutes`` ~0; :class:`coea.llm.sft.SftCheckpoints`): ``save_s`` is the median wall time of one save
(from the end of a step's hooks to the checkpoint's hook), ``overhead_at_10min`` that over the default interval
(600 s), and ``fingerprint_s_per_100k`` the hash of the settings and 100,000 examples a resumable training computes
once at its start; its ratio (over that prompt row) mixes in the save time.
Each row trains a fresh model for a fixed number of steps;
the first ``WARMUP`` steps (allocator, kernels, compile) are not counted.
Run: ``make bench`` or ``python benchmarks/bench_train.py [--steps N] [--devices cpu,cuda] [--no-gpu-preset]``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import movielens_split, report  # noqa: E402

from coea.config import load_run_config  # noqa: E402
from coea.llm.config import ModelConfig  # noqa: E402
from coea.llm.prompts import PromptContext, novelty_completion, novelty_prompt, relevance_completion, relevance_prompt  # noqa: E402

PROFILE = ("Group 1-2: 240 users. Long-term favourites: Comedy (12%), Drama (9%), Action|Thriller (6%), "
           "Comedy|Romance (5%), Drama|War (4%). Members explore 60 categories on average.")
WARMUP = 3


def _section_examples(split, n: int, sequence: int, items: int, seed: int = 0) -> list[dict]:
    """N-LLM examples with the history sections of ``prompt_context`` (the users' last events), ``n`` of them."""
    from coea.llm.sft_config import SftDataConfig
    from coea.llm.sft_data import GroupInfo, category_sequences, item_sequences, prompt_context

    h = split.histories
    cfg = SftDataConfig(sequence=sequence, items=items, n_short=10)
    cats, its = category_sequences(h.interactions), item_sequences(h.interactions)
    users, names = [u for u in split.warm_users if cats.get(u)], list(h.categories)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        u = users[i % len(users)]
        ctx = prompt_context(GroupInfo((1, 2), PROFILE, (1, 2, 3)), cats[u], cfg, h.short_term[u], its[u])
        out.append({"prompt": novelty_prompt(ctx), "completion": novelty_completion([names[rng.integers(len(names))]],
                                                                                     "</s>")})
    return out


def _examples(split, n: int, seed: int = 0) -> tuple[list[dict], list[dict], list[dict]]:
    """(N-LLM examples, R-LLM examples, DPO pairs), ``n`` each, from real short-term sets."""
    h = split.histories
    rng = np.random.default_rng(seed)
    users = [u for u in split.warm_users if h.short_term.get(u)]
    cats = list(h.categories)
    nov, rel, pairs = [], [], []
    for i in range(n):
        ctx = PromptContext((1, 2), PROFILE, tuple(h.short_term[users[i % len(users)]]))
        a, b = rng.choice(len(cats), size=2, replace=False)
        nov.append({"prompt": novelty_prompt(ctx), "completion": novelty_completion([cats[a]], "</s>")})
        rel.append({"prompt": relevance_prompt(ctx, cats[a]), "completion": relevance_completion(bool(i % 2), "</s>")})
        pairs.append({"prompt": novelty_prompt(ctx), "chosen": novelty_completion([cats[a]], "</s>"),
                      "rejected": novelty_completion([cats[b]], "</s>")})
    return nov, rel, pairs


class _Timer:
    """A trainer callback: wall time of the steps after the first WARMUP (a CUDA sync at each end)."""

    def __init__(self, device: str) -> None:
        from transformers import TrainerCallback

        outer = self

        class Cb(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):  # noqa: D401 - trainer hook
                if state.global_step in (WARMUP, state.max_steps):
                    outer.sync()
                    outer.marks.append(time.perf_counter())

        self.device, self.marks, self.callback = device, [], Cb()

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()


def _row(kind: str, model_cfg: ModelConfig, train_cfg, data: list[dict], split, device: str,
         texts: tuple[str, ...] = (), checkpoints=None, extra=()) -> dict[str, float]:
    """Train a fresh model on ``data`` for len(data) / batch steps; examples/s over the timed steps. ``texts``: more
    words for the scratch tokenizer (section markers, items); ``checkpoints``: train_sft's; ``extra``: callbacks."""
    from coea.llm import dpo, sft
    from coea.llm.models import build_model_and_tokenizer

    h = split.histories
    bundle = build_model_and_tokenizer(model_cfg, h.categories, [PROFILE, *texts], [4, 4, 4])
    timer = _Timer(device)
    if kind == "dpo":
        ref = copy.deepcopy(bundle.model).eval()
        dpo.train_dpo(train_cfg, bundle.model, bundle.tokenizer, data, ref_model=ref, device=device,
                      callbacks=[timer.callback])
    else:
        sft.train_sft(train_cfg, bundle.model, bundle.tokenizer, data, name=kind, device=device,
                      callbacks=[timer.callback, *extra], checkpoints=checkpoints)
    steps = len(data) // train_cfg.batch_size - WARMUP
    seconds = timer.marks[-1] - timer.marks[0]
    return {"seconds": seconds, "min_seconds": seconds,
            "examples_per_s": steps * train_cfg.batch_size / seconds, "steps": steps}


def _checkpoint_row(split, model_cfg: ModelConfig, n_cfg, device: str, steps: int,
                    base: dict[str, float]) -> dict[str, float]:
    """The last prompt row (seq 50, items 50, sequence_loss 10) with a checkpoint after every step (module doc)."""
    import tempfile

    from coea.llm.run import section_texts
    from coea.llm.sft import SftCheckpoints, fingerprint
    from coea.llm.sft_config import SftDataConfig

    cfg = replace(n_cfg, sequence_loss=10, checkpoint_minutes=1e-9)
    data = _section_examples(split, cfg.batch_size * steps, 50, 50)
    texts = tuple(section_texts(SftDataConfig(sequence=50, items=50), split.histories.interactions))
    timer = _Timer(device)
    saves: list[float] = []
    timer.callback.on_step_end = lambda *a, **k: timer.marks.append(time.perf_counter())  # runs just before a save
    hook = lambda _folder: saves.append(time.perf_counter() - timer.marks[-1])  # noqa: E731 - just after it
    with tempfile.TemporaryDirectory(prefix="bench-sft-checkpoints-") as tmp:
        row = _row("nllm_sft", model_cfg, cfg, data, split, device, texts, SftCheckpoints(Path(tmp) / "ck", "bench",
                                                                                       hook), extra=[timer.callback])
    row["ratio"] = row["examples_per_s"] / base["examples_per_s"]
    row["save_s"] = float(np.median(saves))
    row["overhead_at_10min"] = row["save_s"] / 600.0
    many = data * (100_000 // len(data) + 1)
    start = time.perf_counter()
    fingerprint("bench", cfg, many[:100_000])
    row["fingerprint_s_per_100k"] = time.perf_counter() - start
    print(f"{device:<5} nllm_sft  checkpoint every step      {row['examples_per_s']:>10.1f} examples/s "
          f"({row['ratio']:.2f}x; {row['save_s']:.3f} s a save = {100 * row['overhead_at_10min']:.3f} % at 10 min; "
          f"fingerprint {row['fingerprint_s_per_100k']:.2f} s per 100k examples)", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per row (the first 3 are not timed)")
    ap.add_argument("--devices", default=None, help="comma-separated; default: cpu, and cuda when available")
    ap.add_argument("--gpu-preset", action=argparse.BooleanOptionalAction, default=True,
                    help="also the gpu preset's rows (--no-gpu-preset: the default model and the prompt rows only)")
    args = ap.parse_args(argv)
    if args.steps <= WARMUP + 1:  # the timed steps run from step WARMUP to the last: at least two of them
        ap.error(f"--steps must be at least {WARMUP + 2} (the first {WARMUP} are not timed), got {args.steps}")
    import torch

    split = movielens_split()
    if split is None:
        return 0
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    cpu, gpu = load_run_config(None), load_run_config(Path("gpu"))
    variants = {  # name -> (model, N-LLM SFT, R-LLM SFT, DPO) configs
        "default fp32": (cpu.llm.model, cpu.llm.novelty, cpu.llm.relevance, cpu.pco.dpo, "fp32"),
        "gpu preset fp32": (gpu.llm.model, gpu.llm.novelty, gpu.llm.relevance, gpu.pco.dpo, "fp32"),
        "gpu preset auto": (gpu.llm.model, gpu.llm.novelty, gpu.llm.relevance, gpu.pco.dpo, "auto"),
        # trl's configs turn activation checkpointing on unless told otherwise (what every training did before
        # session 41): the default model with it, against the baseline row without
        "default fp32 checkpointing": (cpu.llm.model, *(replace(c, activation_checkpointing=True) for c in (
            cpu.llm.novelty, cpu.llm.relevance, cpu.pco.dpo)), "fp32"),
    }
    if not args.gpu_preset:
        variants = {k: v for k, v in variants.items() if k.startswith("default")}
    largest = max(v[1].batch_size for v in variants.values()) * args.steps
    nov, rel, pairs = _examples(split, largest)
    rows: dict[str, dict[str, float]] = {}
    for device in devices:
        for name, (model, n_cfg, r_cfg, d_cfg, precision) in variants.items():
            for kind, cfg, data in (("nllm_sft", n_cfg, nov), ("rllm_sft", r_cfg, rel), ("dpo", d_cfg, pairs)):
                cfg = replace(cfg, epochs=1.0, precision=precision, logging_steps=10**6,
                              **({"max_examples": None, "sequence_loss": 0} if kind != "dpo" else {}))
                row = _row(kind, model, cfg, data[:cfg.batch_size * args.steps], split, device)
                base = rows.get(f"{device} {kind} default fp32")
                if base is not None:
                    row["ratio"] = row["examples_per_s"] / base["examples_per_s"]
                rows[f"{device} {kind} {name}"] = row
                print(f"{device:<5} {kind:<9} {name:<16} {row['examples_per_s']:>10.1f} examples/s", flush=True)
    from coea.llm.run import section_texts
    from coea.llm.sft_config import SftDataConfig

    n_cfg = replace(cpu.llm.novelty, epochs=1.0, precision="fp32", logging_steps=10**6, max_examples=None)
    sections = (("prompt + seq 50", 50, 0, 0), ("prompt + seq 50 + items 50", 50, 50, 0),
                ("prompt + seq 50 + items 50 + sequence_loss 50", 50, 50, 50),  # every seq: position
                ("prompt + seq 50 + items 50 + sequence_loss 10", 50, 50, 10))  # the last: the default since 48
    for device in devices:  # longer prompts: the history sections (default model, N-LLM SFT)
        for name, sequence, items, seq_loss in sections:
            data = _section_examples(split, n_cfg.batch_size * args.steps, sequence, items)
            texts = tuple(section_texts(SftDataConfig(sequence=sequence, items=items), split.histories.interactions))
            row = _row("nllm_sft", cpu.llm.model, replace(n_cfg, sequence_loss=seq_loss), data, split, device, texts)
            row["ratio"] = row["examples_per_s"] / rows[f"{device} nllm_sft default fp32"]["examples_per_s"]
            row["prompt_words"] = float(np.mean([len(e["prompt"].split()) for e in data]))
            rows[f"{device} nllm_sft {name}"] = row
            print(f"{device:<5} nllm_sft  {name:<26} {row['examples_per_s']:>10.1f} examples/s "
                  f"({row['ratio']:.2f}x, {row['prompt_words']:.0f} prompt words)", flush=True)
    for device in devices:
        rows[f"{device} nllm_sft checkpoint every step"] = _checkpoint_row(
            split, cpu.llm.model, n_cfg, device, args.steps, rows[f"{device} nllm_sft {sections[-1][0]}"])
    for kind in ("nllm_sft", "rllm_sft", "dpo"):  # GPU over CPU, same variant
        if {f"cpu {kind} gpu preset auto", f"cuda {kind} gpu preset auto"} <= set(rows):
            rows[f"cuda {kind} gpu preset auto"]["cuda_over_cpu"] = (
                rows[f"cuda {kind} gpu preset auto"]["examples_per_s"] / rows[f"cpu {kind} gpu preset auto"][
                    "examples_per_s"])
    report("train_throughput", rows, {"devices": devices, "steps": args.steps})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
