"""Helpers of the pipeline tests: a tiny run config, a shifted copy of a log, the CLI in-process."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from coea.config import SERVED_METHOD, DataConfig, EvalConfig, RunConfig, SyntheticConfig
from coea.dsie.config import DsieConfig, EncoderConfig, RqVaeConfig
from coea.llm.config import ModelConfig
from coea.llm.sft_config import LlmConfig, SftTrainConfig
from coea.pco.config import PcoConfig

# what the recurring pipeline evaluates in the tests (its state does not carry the LLMs)
BASELINES = ["pop", "markov+x", "group_pop_novel"]


def tiny_llm(max_examples: int | None = None) -> LlmConfig:
    """Scratch LLMs of width 32 (MLP 64), one SFT epoch each (on a seeded sample of ``max_examples`` examples if
    given), 5 candidates for dual_best_of_n."""
    model = ModelConfig(hidden_size=32, intermediate_size=64)
    return LlmConfig(model=model, novelty=SftTrainConfig(epochs=1.0, max_examples=max_examples),
                     relevance=SftTrainConfig(epochs=1.0, max_examples=max_examples), best_of_n=5)


def tiny_config(**changes) -> RunConfig:
    """120 users, 20 categories; DSIE with encoder dim 16, 3 epochs, RQ-VAE 20 epochs; tiny LLMs; 2 small PCO
    rounds; a few baselines and the LLM methods."""
    cfg = RunConfig(
        synthetic=SyntheticConfig(seed=3, n_users=120, n_categories=20, n_groups=4, items_per_category=8,
                                  mean_interactions=40, min_interactions=25),
        dsie=DsieConfig(encoder=EncoderConfig(dim=16, epochs=3), rqvae=RqVaeConfig(epochs=20)),
        eval=EvalConfig(methods=[*BASELINES, "nllm_sft", "nllm_sft+x", "dual_best_of_n", "coea", "coea+x",
                                 SERVED_METHOD]),
        llm=tiny_llm(),
        pco=PcoConfig(rounds=2, users_per_round=40, candidates=4),
    )
    for name, value in changes.items():
        setattr(cfg, name, value)
    return cfg


def shifted_log(data_dir: Path, out: Path, offset: int = 7) -> Path:
    """The prepared log with every category replaced by the one ``offset`` places later (a pure taste shift:
    activity, breadth and entropy stay, what users consume changes). Written as parquet."""
    df = pd.read_parquet(data_dir / "interactions.parquet")
    cats = sorted(df["category"].unique())
    rotate = {c: cats[(i + offset) % len(cats)] for i, c in enumerate(cats)}
    df.assign(category=df["category"].map(rotate)).to_parquet(out, index=False)
    return out


def parquet_config(path: Path, **changes) -> RunConfig:
    return tiny_config(data=DataConfig(spec=f"parquet:{path}"), **changes)


class Preempted(Exception):
    """Raised by a test where a pod would be killed (a preempted GPU step)."""


def artifact(path: Path) -> SimpleNamespace:
    """A KFP input/output artifact as a component function sees it: its local path and metadata."""
    return SimpleNamespace(path=str(path), metadata={})
