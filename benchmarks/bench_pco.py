"""PCO rounds on MovieLens-1M (../shared): seconds per round and its breakdown (sampling, R-LLM scoring,
DPO step, re-evaluation, R-LLM refresh), with the default PcoConfig except ``margin = 0`` (untrained models
score near-ties, and the DPO step's cost depends on the pair count, so every formed pair is kept).

Baseline measured in the same run: an SFT pass (trl SFTTrainer, same batch size) over as many single-category
examples as the round had preference pairs (the chosen completions): "DPO / SFT per example" is the price of
a preference update (two sequences per pair plus the reference pass) against plain fine-tuning.

The models are the default scratch N-LLM/R-LLM architecture, untrained (speed does not depend on the weights);
every user gets one group (``1-2``) with a realistic profile. Run: ``make bench`` or
``python benchmarks/bench_pco.py``; ``--small``: a small synthetic log (a check that the script runs, not a
measurement).
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT_DIR, bench_options, movielens_split, report, small_split  # noqa: E402

from coea.llm.config import ModelConfig  # noqa: E402
from coea.llm.models import build_model_and_tokenizer  # noqa: E402
from coea.llm.sft import train_sft  # noqa: E402
from coea.llm.sft_config import LlmConfig, SftTrainConfig, resolve_llm  # noqa: E402
from coea.llm.sft_data import GroupInfo  # noqa: E402
from coea.pco.config import PcoConfig  # noqa: E402
from coea.pco.loop import PcoLoop  # noqa: E402

PROFILE = ("Group 1-2: 240 users. Long-term favourites: Comedy (12%), Drama (9%), Action|Thriller (6%), "
           "Comedy|Romance (5%), Drama|War (4%). Members explore 60 categories on average; 35% of their "
           "categories were first tried in the later half of their history.")
STEPS = ("novelty_refresh_s", "sample_s", "score_s", "dpo_s", "reeval_s", "refresh_s")


def main(small: bool = False, out_dir: Path = OUT_DIR) -> int:
    split = small_split() if small else movielens_split()
    if split is None:
        return 0
    h = split.histories
    novelty = build_model_and_tokenizer(ModelConfig(), h.categories, [PROFILE], [4, 4])
    relevance = build_model_and_tokenizer(ModelConfig(seed=1), h.categories, [PROFILE], [4, 4])
    groups = {str(u): GroupInfo((1, 2), PROFILE) for u in h.interactions["user_id"].astype(str).unique()}
    cfg = PcoConfig(rounds=2, margin=0.0)
    loop = PcoLoop(cfg, resolve_llm(LlmConfig(), split.config), h.interactions, list(h.categories), groups,
                   novelty, relevance, device="cpu")
    start = time.perf_counter()
    rows = loop.run().rounds[1:]
    total = time.perf_counter() - start
    pairs = rows[-1]["pairs"]
    eos = novelty.tokenizer.eos_token
    examples = [{"prompt": f"recent: {c} ; novel:", "completion": f" {c} {eos}"} for c in h.categories]
    examples = (examples * (pairs // len(examples) + 1))[:pairs]
    sft_cfg = SftTrainConfig(epochs=cfg.dpo.epochs, batch_size=cfg.dpo.batch_size, lr=cfg.dpo.lr)
    sft_s = train_sft(sft_cfg, copy.deepcopy(novelty.model), novelty.tokenizer, examples, name="bench").seconds
    last = rows[-1]
    out = {f"round {r['round']}": {"seconds": r["round_s"], "min_seconds": r["round_s"],
                                   **{k: r[k] for k in (*STEPS, "pairs", "refresh_examples")}} for r in rows}
    for step in STEPS:
        out[step] = {"seconds": last[step], "min_seconds": last[step],
                     "share_of_round": last[step] / last["round_s"]}
    out["SFT, same examples (baseline)"] = {"seconds": sft_s, "min_seconds": sft_s}
    out["dpo_s"]["ratio"] = last["dpo_s"] / sft_s
    print(f"{len(rows)} rounds in {total:.1f}s; last round {last['round_s']:.1f}s: "
          + ", ".join(f"{s} {last[s]:.1f}" for s in STEPS)
          + f"; {pairs} pairs, DPO step / SFT on as many examples = {last['dpo_s'] / sft_s:.2f}x")
    config = {"rounds": cfg.rounds, "users_per_round": cfg.users_per_round, "candidates": cfg.candidates,
              "margin": cfg.margin}
    report("pco_round" + ("_small" if small else ""), out, {"config": config}, out_dir=out_dir)
    return 0


if __name__ == "__main__":
    args = bench_options(__doc__)
    raise SystemExit(main(args.small, args.out))
