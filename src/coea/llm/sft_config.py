"""Training configs of the LLM stage (torch-free, so reading a config is cheap)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from coea.device import Precision
from coea.llm.config import ModelConfig
from coea.utils import as_enum, check_seed

MODELS = ("novelty", "relevance")  # the two LLMs; each can be trained on its own (``which``)

# transformers' SchedulerType values (the names SFT's lr_scheduler_type takes), kept here so that reading a config
# needs no transformers import; tests/unit/test_config_values.py checks they are still transformers' own
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
                 "warmup_stable_decay", "greedy")

if TYPE_CHECKING:
    from coea.config import SplitConfig


# SftTrainConfig fields that change how a training runs, not what it trains: a model trained before one existed (or
# with another value) is the same model, so reuse checks (`coea ablate --from-run`, the SFT resume fingerprint, PCO
# resume) leave them out
RUN_ONLY_FIELDS = frozenset({"checkpoint_minutes"})


def without_run_only(settings: dict) -> dict:
    """``settings`` (a config as a dict) without :data:`RUN_ONLY_FIELDS`, at any depth."""
    return {k: without_run_only(v) if isinstance(v, dict) else v for k, v in settings.items()
            if k not in RUN_ONLY_FIELDS}


@dataclass
class SftTrainConfig:
    """Supervised fine-tuning of one LLM with trl's SFTTrainer (completion-only loss)."""

    epochs: float = 2.0  # passes over the examples
    batch_size: int = 32  # examples per optimizer step
    lr: float = 3e-3  # from-scratch models like a high rate; use ~2e-4 for LoRA on a pretrained base
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05  # passed as warmup_steps: a float < 1 is a ratio of the total steps
    lr_scheduler: str = "cosine"
    max_length: int = 192  # tokens of prompt + completion; longer examples are truncated (keep start)
    max_examples: int | None = None  # cap (seeded subsample) to bound training time
    logging_steps: int = 20  # one log line (step, loss, ms/step) every this many steps
    precision: Precision = Precision.AUTO  # auto = bf16 autocast on a CUDA GPU that supports it, fp32 on CPU
    compile: bool = False  # torch.compile the model for training (pays off on a GPU for long runs)
    # recompute each layer's activations in the backward pass: less memory, more compute (trl turns it on by
    # default; off here: the scratch models fit anyway, see README 'Benchmarks'); on for a large base on a small GPU
    activation_checkpointing: bool = False
    # > 0 = the loss also covers the last N category words of the prompt's ``seq:`` section (at most
    # llm.data.sequence of them; none without the section), each predicted from the prompt before it: the ordered
    # history's next-category objective the DSIE encoder learns at every position, as an auxiliary task beside the
    # completion (coea.llm.sft.tokenize_examples); 0 = the completion only. The N-LLM's default is 10
    sequence_loss: int = 0
    # `coea train-llms` and the SFT pipeline steps save a resumable checkpoint this often (minutes of training; the
    # last one is kept), and a run started again with the same settings resumes from it (coea.llm.sft); 0 = never
    checkpoint_minutes: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.precision = as_enum(Precision, "precision", self.precision)
        if self.sequence_loss < 0:
            raise ValueError(f"sequence_loss must be >= 0 (0 = off), got {self.sequence_loss!r}")
        if self.checkpoint_minutes < 0:
            raise ValueError(f"checkpoint_minutes must be >= 0 (0 = never), got {self.checkpoint_minutes!r}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs!r}")
        for name in ("batch_size", "max_length", "logging_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.max_examples is not None and self.max_examples <= 0:
            raise ValueError(f"max_examples must be > 0 or None, got {self.max_examples!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        check_seed("seed", self.seed)
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler must be one of {list(LR_SCHEDULERS)}, got {self.lr_scheduler!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")


class Propose(enum.StrEnum):
    """How ``dual_best_of_n``'s N-LLM proposes its ``best_of_n`` candidates."""

    TOP = "top"  # its most likely allowed categories
    SAMPLE = "sample"  # distinct draws from its distribution (Gumbel top-k at ``temperature``)


class ColdStart(enum.StrEnum):
    """How the LLM methods rank for a user without any history event (nothing for the prompt's short-term set)."""

    # the history's category popularity (as a log-distribution): MovieLens, 1-day min_gap view (docs/results.md,
    # session 16), C-H@10 of those users: validation .8977 vs the N-LLM's .8288, test .8872 vs .8496
    POPULARITY = "popularity"
    LLM = "llm"  # the N-LLM's prompt with the user's group prefix and an empty short-term set (the new-user SFT cut)


class RelevanceInit(enum.StrEnum):
    """What the R-LLM's SFT starts from."""

    SCRATCH = "scratch"  # its own model, built from the config (or the pretrained base) with its own seed
    # a copy of the N-LLM after its SFT (same tokenizer and prompt options): the judge starts from the proposer's
    # category embeddings and context encoder instead of learning them from its far fewer yes/no examples
    NOVELTY = "novelty"


class NoveltyTarget(enum.StrEnum):
    """Which categories after an N-LLM cut are its targets (see :mod:`coea.llm.sft_data`)."""

    RECENT = "recent"  # taken up and not in the short-term set at the cut (what the prompt shows)
    USER = "user"  # taken up and never seen before the cut (novel for the user)


@dataclass
class SftDataConfig:
    """How SFT examples are cut out of histories (N-LLM and R-LLM cut points are drawn separately), and what a
    prompt shows (the same recipe at SFT, PCO and inference: :func:`coea.llm.sft_data.prompt_context`).

    The window fields default to None = *follow the split* (:func:`resolve_sft_data`, called where examples are
    built, where the split is known): ``n_short`` = the split's ``n_short``, ``novelty_horizon`` = its
    ``n_future``, ``horizon`` = 2 x ``n_future``, ``min_prefix`` = its ``n_short`` (the first cut once the
    short-term window is full), ``gap`` = its ``min_gap``. With the default split these are the former fixed values
    10, 10, 20, 10 and no gap. An explicit value always wins. A user whose history is too short for a cut at
    ``min_prefix`` is cut from half their history on instead (:func:`coea.llm.sft_data.first_cut`).
    """

    cuts_per_user: int = 4  # R-LLM cut points per user (fewer for short histories); also PCO's R-LLM refresh
    min_prefix: int | None = None  # events before the first possible cut (None: the split's n_short)
    horizon: int | None = None  # R-LLM: events after a cut that count as "taken up" (None: 2 x the split's n_future)
    # N-LLM cut points per user (fewer for short histories); 48 (with 1 epoch) rather than 12 (with 2): on MovieLens
    # S-H@10 +x .6592 -> .6751 on validation, .6375 -> .6669 on test, for 1.5x the SFT steps (docs/results.md)
    novelty_cuts_per_user: int = 48
    novelty_horizon: int | None = None  # N-LLM: events after a cut whose categories are targets (None: n_future)
    novelty_target: NoveltyTarget = NoveltyTarget.RECENT  # N-LLM targets: not in the short-term set / never seen
    n_short: int | None = None  # events forming the short-term set at a cut (None: the split's n_short)
    # seconds: targets of a cut start at the first event this long after the cut's last event, as the evaluation's
    # future starts min_gap after the history (None: the split's min_gap; 0 = right after the cut)
    gap: int | None = None
    max_targets: int = 10  # categories in an N-LLM target
    negatives_per_positive: int = 1  # R-LLM balance
    split_targets: bool = True  # one N-LLM example per taken-up category (trains the first-step distribution)
    with_group: bool = True  # False = prompts without CSID tokens and profile (ablation)
    # True = the prompt also shows the user's own full CSID code (``user:``, needs with_group). MovieLens, 48 cuts,
    # nllm_sft+x S-H@10 +x: validation .6740 -> .6852 (+0.0112 [+0.0007, +0.0213]); test .6642 -> .6742. One seed
    # each: re-training with another seed moved an N-LLM by up to .026 (README), so this is not settled
    full_csid: bool = True
    # True = every N-LLM user also gets a cut before their first event: an empty short-term set whose targets are
    # the first categories they took up, so the N-LLM learns what to propose to a user without history (MovieLens,
    # validation, 48 cuts: S-H@10 +x .6751 -> .6740 on the default view, .5080 -> .5328 on the 1-day min_gap view)
    new_user_cut: bool = True
    long_term: int = 0  # > 0 = the prompt also shows the user's N most frequent categories before the cut (``long:``)
    # > 0 = the prompt also shows the categories of the user's last N events before the cut, in order, repeats
    # included (``seq:``): the ordered history the DSIE encoder / sasrec reads (its max_len is 50). Mind
    # llm.novelty.max_length (192 tokens, truncation keeps the start): N + the profile + the rest must fit (the
    # scratch tokenizer's ~150 tokens with sequence and items 50 do; a sub-word tokenizer needs a larger max_length)
    sequence: int = 50
    # > 0 = the prompt also shows the items (movies) of the user's last N events before the cut, in order (``items:``;
    # what the DSIE encoder reads with dsie.encoder.item_input). The scratch tokenizer gets one token per item of the
    # training histories. 50 with sequence 50 by default since session 36 (docs/results.md; MovieLens, two paired
    # trainings, nllm_sft+x +x S-H@10 over neither section): validation +0.0288 [+0.0162, +0.0421], test +0.0265
    # [+0.0143, +0.0380]; beside the encoder (nllm_seq) +0.0058 / +0.0020
    items: int = 50
    # the scratch tokenizer's item words (``items:``): a token for each of the ``item_vocab`` most frequent items of
    # the training histories that have at least ``item_min_count`` events there (ties: by id); any other item reads
    # as the unknown token. Bounds the embedding matrix for large catalogues (a token is 4 x hidden_size floats
    # with Adam); MovieLens' 3.7k movies are all kept. None = no cap. Ignored with a pretrained (sub-word) tokenizer
    item_vocab: int | None = 100_000
    item_min_count: int = 1
    # the continual protocol: SFT examples (both LLMs) come from each user's history without its last share of
    # events; with pco.periods: user the PCO rounds then replay only that share (interactions the SFT never saw,
    # coea.pco.periods.round_windows' start_share); 0 = every history event
    holdout_share: float = 0.0
    seed: int = 0

    def prompt_options(self) -> dict[str, Any]:
        """What a prompt shows besides the short-term set: recorded with the models SFT trains (``bundle.json``) and
        checked wherever models are used (:func:`coea.llm.models.check_prompt_options`)."""
        return {"with_group": self.with_group, "full_csid": self.full_csid, "long_term": self.long_term,
                "sequence": self.sequence, "items": self.items}

    def __post_init__(self) -> None:
        self.novelty_target = as_enum(NoveltyTarget, "novelty_target", self.novelty_target)
        check_seed("seed", self.seed)
        for name in ("cuts_per_user", "novelty_cuts_per_user", "max_targets", "negatives_per_positive"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in WINDOW_FIELDS:
            value, bound = getattr(self, name), ">= 0" if name == "gap" else "> 0"
            if value is not None and (value < 0 if name == "gap" else value <= 0):
                raise ValueError(f"{name} must be {bound} or None (follow the split), got {value!r}")
        if not 0.0 <= self.holdout_share < 1.0:
            raise ValueError(f"holdout_share must be in [0, 1), got {self.holdout_share!r}")
        for name in ("long_term", "sequence", "items"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = off), got {getattr(self, name)!r}")
        if self.item_vocab is not None and self.item_vocab <= 0:
            raise ValueError(f"item_vocab must be > 0 or None (no cap), got {self.item_vocab!r}")
        if self.item_min_count < 1:
            raise ValueError(f"item_min_count must be >= 1, got {self.item_min_count!r}")

    @property
    def resolved(self) -> bool:
        """True when every window field is concrete (see :func:`resolve_sft_data`)."""
        return all(getattr(self, name) is not None for name in WINDOW_FIELDS)


WINDOW_FIELDS = ("min_prefix", "horizon", "novelty_horizon", "n_short", "gap")  # None = derived from the split


def resolve_sft_data(cfg: SftDataConfig, split: SplitConfig) -> SftDataConfig:
    """``cfg`` with every window field concrete: explicit values kept, None ones derived from ``split`` (see
    :class:`SftDataConfig`; the default split gives min_prefix 10, horizon 20, novelty_horizon 10, n_short 10,
    gap 0)."""
    derived = {"min_prefix": split.n_short, "horizon": 2 * split.n_future, "novelty_horizon": split.n_future,
               "n_short": split.n_short, "gap": split.min_gap}
    return replace(cfg, **{name: value for name, value in derived.items() if getattr(cfg, name) is None})


def resolve_llm(cfg: LlmConfig, split: SplitConfig) -> LlmConfig:
    """``cfg`` with its SFT data config resolved against ``split`` (:func:`resolve_sft_data`)."""
    return replace(cfg, data=resolve_sft_data(cfg.data, split))


@dataclass
class LlmConfig:
    """The dual-LLM stage: model recipe, SFT data, the two trainings, inference settings."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: SftDataConfig = field(default_factory=SftDataConfig)
    # 1 pass over ~450k (MovieLens); the prompt's last 10 seq: categories trained beside the completion since session
    # 48 (MovieLens validation, two paired trainings: nllm_sft+x +0.0149 [+0.0032, +0.0274], docs/results.md)
    novelty: SftTrainConfig = field(default_factory=lambda: SftTrainConfig(epochs=1.0, sequence_loss=10))
    # the R-LLM needs a lower rate and more steps than the N-LLM: at lr 3e-3 and 1,250 steps (the recipe before
    # session 10) it stayed at chance on MovieLens (P(yes) std .0007); its examples are capped (seeded subsample) to
    # bound the SFT time on 2 cores (docs/results.md: The R-LLM was at chance)
    relevance: SftTrainConfig = field(
        default_factory=lambda: SftTrainConfig(epochs=2.0, lr=1e-3, max_examples=100_000))
    # R-LLM examples kept out of its SFT (seeded; at most a tenth of them) to measure what it learned: the AUC of its
    # P(yes) on them goes to sft_metrics_relevance.json, with a warning near 0.5 (a judge at chance); 0 = none
    relevance_heldout: int = 2000
    # novelty: the R-LLM's SFT starts from the trained N-LLM (training the R-LLM alone then reads the N-LLM from the
    # output dir's novelty/, or the pipeline's sft-novelty output, so the novelty SFT runs first); scratch: its own
    # model. MovieLens (session 13): a better judge (held-out AUC .687 -> .746 on validation, .636 -> .728 on test;
    # S-H@10 ranking unseen categories by P(yes) .470 -> .523 / .438 -> .455), but a worse verifier: dual_best_of_n+x
    # -0.0029 [-0.0112, +0.0058] on validation, -0.0097 [-0.0183, -0.0010] on test. Not the default
    relevance_init: RelevanceInit = RelevanceInit.SCRATCH
    best_of_n: int = 20  # dual_best_of_n: candidates the N-LLM proposes per prompt
    # top: its best_of_n most likely allowed categories; sample: distinct draws (the rule before session 10: with
    # 20 draws at temperature 1 the candidates missed the categories the R-LLM should have verified, docs/results.md)
    propose: Propose = Propose.TOP
    # dual_best_of_n ranks its candidates by log P_N-LLM + verify_weight * logit P_R-LLM(yes) (null: P(yes) alone);
    # 0.5 was the best of {0.25, 0.5, 1, 2} on MovieLens validation users (docs/results.md)
    verify_weight: float | None = 0.5
    # nllm_seq / coea_seq rank by log P_N-LLM + encoder_weight * log p_S, p_S the DSIE long-term encoder's
    # next-category distribution (SASRec-style, the user's last events in order). Re-chosen in session 22 for the
    # retrained encoder of session 21 with session 19's rule (the smallest weight within .005 of the best for the
    # served coea_seq+x, MovieLens validation, two trainings, benchmarks/analysis_fusion.py --novelty coea):
    # w 0 / 0.25 / 0.5 / 1 / 2 / 4 = .6812 / .7007 / .7095 / .7111 / .7140 / .7106 (docs/results.md, session 22).
    # The old encoder's choice was 0.25 (session 16). Re-chosen in session 29 for the default view's encoder pair
    # (dsie.encoder.target both) with the same rule on two N-LLMs after SFT (no PCO run with the pair yet):
    # w 0 / 0.5 / 1 / 2 / 4 / 8 = .6816 / .7052 / .7131 / .7149 / .7192 / .7203, so 4; on test nllm_seq+x with the
    # pair at 4 is +0.0097 [+0.0020, +0.0173] above the old encoder at 0.5. On the 1-day view's validation
    # (novel-set encoder, two distil trainings) no weight separates: w 0 .5204, 0.5 .5192, 4 .5136. Re-chosen in
    # session 36 for the N-LLM with the seq: and items: sections (item-aware pair, two N-LLMs after SFT, validation):
    # w 0 / 1 / 2 / 3 / 4 / 6 / 8 = .7154 / .7459 / .7498 / .7509 / .7529 / .7518 / .7515, so 2; read on test at
    # 2 .7437, at 4 .7432 (+0.0005 [-0.0033, +0.0043], users and paired trainings)
    encoder_weight: float = 2.0
    # nllm_seq / coea_seq add cooc_weight * log s_u(c), s_u the share of category c in the user's item-to-item
    # co-occurrence scores (the ``cooc_novel`` baseline's, fitted on the histories): a third expert, the categories that
    # co-occur with the user's history across users. 0 (default) = off; the `short` preset sets 1 (session 45: on the
    # short MovieLens view's validation split the served coea_seq+x gained +0.0073 [+0.0022, +0.0126] at 1, the
    # smallest weight within .005 of the best of 0.25-16, three paired trainings). On MovieLens' default view it adds
    # nothing beside the encoder (validation, two trainings, nllm_seq+x at w 2: v 0.25 / 0.5 / 1 / 2 / 4 -.0011 /
    # -.0013 / -.0014 / -.0002 / -.0013), so the default stays 0
    cooc_weight: float = 0.0
    # coea's plain-view list (the paper's view, history categories allowed) ranks by log P_N + novelty_bonus for every
    # category outside the user's history: the operating point between relevance (C-H) and novelty (NCP). The +x view
    # (the history dropped) and every other method rank the same whatever its value; 0 = the tuned N-LLM's own list.
    # The `distil` preset sets 4, fixed on MovieLens validation (session 51, rule RULE51-LAM: the largest bonus of
    # {0, .1, .25, .4, .5, .75, 1, 1.5, 2, 3, 4, 6} at which coea's C-H@10 stays >= nllm_sft's plain list's on both
    # trainings: C-H 1.008 x / 1.013 x, NCP 1.92 x / 1.85 x nllm_sft's; docs/results.md, session 51)
    novelty_bonus: float = 0.0
    cold_start: ColdStart = ColdStart.POPULARITY  # see ColdStart: every LLM method, for users without history
    temperature: float = 1.0  # sampling temperature of the N-LLM
    batch_size: int = 64  # inference batch (prompts per forward pass)

    def sft_for(self, name: str) -> SftTrainConfig:
        """The SFT settings of model ``name`` (``novelty`` or ``relevance``) as trained: ``sequence_loss`` at most
        ``data.sequence`` (a prompt without the ``seq:`` section has nothing to label there)."""
        cfg = getattr(self, name)
        return replace(cfg, sequence_loss=min(cfg.sequence_loss, self.data.sequence))

    def __post_init__(self) -> None:
        self.propose = as_enum(Propose, "propose", self.propose)
        self.relevance_init = as_enum(RelevanceInit, "relevance_init", self.relevance_init)
        self.cold_start = as_enum(ColdStart, "cold_start", self.cold_start)
        if self.best_of_n <= 0:
            raise ValueError(f"best_of_n must be > 0, got {self.best_of_n!r}")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {self.batch_size!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if self.verify_weight is not None and self.verify_weight < 0:
            raise ValueError(f"verify_weight must be >= 0 or null, got {self.verify_weight!r}")
        for name in ("encoder_weight", "cooc_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not (math.isfinite(self.novelty_bonus) and self.novelty_bonus >= 0):
            raise ValueError(f"novelty_bonus must be a finite number >= 0, got {self.novelty_bonus!r}")
        if self.relevance_heldout < 0:
            raise ValueError(f"relevance_heldout must be >= 0, got {self.relevance_heldout!r}")
