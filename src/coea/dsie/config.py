"""Configs of the DSIE stage (kept free of torch so that reading a config is cheap)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from coea.utils import as_enum, check_seed


def _require(ok: bool, name: str, value: object, bound: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {bound}, got {value!r}")


@dataclass
class EncoderConfig:
    """Architecture, filtering and training of the long-term encoder."""

    dim: int = 32  # hidden size D
    n_layers: int = 2  # causal transformer blocks
    n_heads: int = 2  # attention heads (dim must be divisible)
    dropout: float = 0.2
    max_len: int = 50  # positions; the most recent events are kept
    min_user_events: int = 3  # users with fewer tokens are not trained on
    min_category_support: int = 1  # rarer categories become UNK
    collapse_repeats: bool = False  # a, a, b -> a, b before training and embedding
    # train on every max_len window of a history, not only the last; with the two settings below chosen by the
    # encoder's own held-out loss, not by a recommendation metric (docs/results.md, session 21: on MovieLens the
    # old last-window, 25-epoch, patience-3 encoder stopped at the epoch cap while its held-out loss still fell:
    # 3.706 -> 3.509 and sasrec+x S-H@10 .6726 -> .7118 on validation, DSIE seed 1)
    all_windows: bool = True
    epochs: int = 100  # upper bound; early stopping ends sooner (epoch 61 on MovieLens, 25-50 on short histories)
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.1  # users held out (their last window) for early stopping
    patience: int = 6  # epochs without validation improvement before stopping (3 stopped on plateaus early)
    # each position learns the first event at least this many seconds after it, not the next one (None: the
    # split's min_gap, so a min_gap view trains what it scores, as llm.data.gap does; 0: the next event)
    target_gap: int | None = None
    # what each position learns: "next" (the next event's category, or with target_gap the first one that much
    # later: SASRec's objective) or "novel" (the set of categories among the next target_horizon events, from
    # target_gap on, that the user has not had yet, as a softmax over the categories not yet had: what `+x`
    # S-H@K scores; the logits then rank only unseen categories, and the plain view's ranking of history
    # categories means nothing). None: "novel" on a min_gap view, else "both" (below; "next" before session 29)
    # (docs/results.md, session 28: on MovieLens' 1-day view, validation, three paired fits, novel with output_bias
    # lifts sasrec+x by +0.0527 [+0.0280, +0.0762]; on the default view -0.0041 [-0.0159, +0.0068] over two fits,
    # alone); "both": two encoders
    # trained apart on these settings, one per objective (next: no bias; novel: output_bias), ranking by the mean of
    # their log-softmaxes; the next-event one gives the user embeddings (CSIDs). Session 29, MovieLens default view:
    # the pair +0.0113 [+0.0033, +0.0193] over the next-event encoder on test (chosen on validation: +.0108, +.0130)
    target: str | None = None
    target_horizon: int | None = None  # events; None: the split's n_future
    # a learned per-category bias on the tied output logits (initialised to the log-frequency of the training
    # targets), so popularity need not be carried by the hidden state; None: on with the novel target (and both's
    # novel-set encoder) only
    output_bias: bool | None = None
    # read each event's item (movie) as well as its category: an event's input embedding is the sum of the two;
    # items with fewer than min_item_support history events share the zero "unknown item" embedding. The outputs
    # stay categories. None (default): on unless collapse_repeats (which drops events, so items no longer match
    # them). Chosen on MovieLens validation (docs/results.md, session 34: sasrec+x +0.0303 [+0.0189, +0.0429] over
    # two paired fits) and read once on test (session 35)
    item_input: bool | None = None
    min_item_support: int = 5
    seed: int = 0

    @property
    def reads_items(self) -> bool:
        """Whether each event's item is read beside its category (``item_input``; None: unless collapse_repeats)."""
        return (not self.collapse_repeats) if self.item_input is None else self.item_input

    @property
    def novel(self) -> bool:
        """True when positions learn novel-category sets (an unresolved target counts as next)."""
        return self.target == "novel"

    @property
    def both(self) -> bool:
        """True for a pair of encoders, one per objective (:meth:`parts`)."""
        return self.target == "both"

    def parts(self) -> list[EncoderConfig]:
        """The configs of the encoders trained: itself, or with ``target: both`` the next-event one (no bias) and
        the novel-set one (the bias as ``with_bias`` says)."""
        if not self.both:
            return [self]
        return [replace(self, target="next", output_bias=False),
                replace(self, target="novel", output_bias=self.with_bias)]

    @property
    def with_bias(self) -> bool:
        """Whether the output head has a bias, the novel-set encoder's with ``both`` (an unresolved output_bias
        follows the target: on when novel sets are learned)."""
        return (self.novel or self.both) if self.output_bias is None else self.output_bias

    def __post_init__(self) -> None:
        for name in ("dim", "n_layers", "n_heads", "max_len", "epochs", "batch_size", "patience",
                     "min_category_support", "min_item_support"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        _require(self.min_user_events >= 1, "min_user_events", self.min_user_events, ">= 1")
        _require(self.lr > 0, "lr", self.lr, "> 0")
        _require(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        check_seed("seed", self.seed)
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in [0, 0.5), got {self.val_fraction!r}")
        if self.target_gap is not None and self.target_gap < 0:
            raise ValueError(f"target_gap must be >= 0 seconds or null, got {self.target_gap!r}")
        if self.target not in (None, "next", "novel", "both"):
            raise ValueError(f"target must be 'next', 'novel' or 'both', got {self.target!r}")
        if self.target_horizon is not None and self.target_horizon <= 0:
            raise ValueError(f"target_horizon must be > 0 events or null, got {self.target_horizon!r}")
        if self.target_gap and self.collapse_repeats:
            raise ValueError("target_gap needs each event's own time: set collapse_repeats false or target_gap 0")
        if self.item_input and self.collapse_repeats:
            raise ValueError("item_input reads every event's item: set collapse_repeats false or item_input false")


@dataclass
class RqVaeConfig:
    """RQ-VAE architecture and training settings."""

    # dimension of the user embeddings fed in: the DSIE encoder's dim (None: DsieConfig sets it; another is refused)
    input_dim: int | None = None
    hidden_dims: list[int] = field(default_factory=lambda: [128])  # encoder hidden widths; decoder mirrors them
    latent_dim: int = 32  # dimension of the latent z and of every code vector
    codebook_sizes: list[int] = field(default_factory=lambda: [4, 4, 4])  # codes per level; len = CSID length
    beta: float = 0.25  # weight of the commitment loss ||r - sg[e]||^2
    lr: float = 1e-3  # Adam learning rate
    epochs: int = 150  # passes over the users
    batch_size: int = 256  # users per Adam step (>= number of users means full batch)
    weight_decay: float = 0.0  # Adam weight decay
    dead_code_threshold: int = 1  # a code used fewer than this many times in the last epoch is dead (0 = never)
    reset_dead_every: int = 5  # re-seed dead codes every this many epochs (0 = never)
    kmeans_iters: int = 25  # Lloyd iterations of the k-means codebook init
    seed: int = 0  # seeds weights, k-means, batch order and dead-code re-seeding

    def __post_init__(self) -> None:
        for name in ("latent_dim", "epochs", "batch_size", "kmeans_iters"):
            _require(getattr(self, name) > 0, name, getattr(self, name), "> 0")
        _require(self.input_dim is None or self.input_dim > 0, "input_dim", self.input_dim, "> 0 (or null)")
        check_seed("seed", self.seed)
        for name in ("beta", "weight_decay", "dead_code_threshold", "reset_dead_every"):
            _require(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        _require(self.lr > 0, "lr", self.lr, "> 0")
        _require(all(h > 0 for h in self.hidden_dims), "hidden_dims", self.hidden_dims, "a list of ints > 0")
        _require(len(self.codebook_sizes) > 0 and all(k >= 2 for k in self.codebook_sizes), "codebook_sizes",
                 self.codebook_sizes, "a non-empty list of ints >= 2")


@dataclass
class GroupConfig:
    """How CSIDs become groups."""

    depth: int = 2  # CSID prefix length defining a group
    min_group_size: int = 10  # smaller groups merge into their nearest sibling

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth!r}")
        if self.min_group_size < 1:
            raise ValueError(f"min_group_size must be >= 1, got {self.min_group_size!r}")


class ProfilerKind(enum.StrEnum):
    TEMPLATE = "template"
    LLM = "llm"


@dataclass
class ProfileConfig:
    """How group profiles are written."""

    kind: ProfilerKind = ProfilerKind.TEMPLATE
    top_categories: int = 5  # favourites named in the profile
    model_path: str | None = None  # llm: local path of a Hugging Face causal LM
    max_new_tokens: int = 48  # llm: generation length

    def __post_init__(self) -> None:
        self.kind = as_enum(ProfilerKind, "kind", self.kind)
        _require(self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens, ">= 1")
        if self.top_categories < 1:
            raise ValueError(f"top_categories must be >= 1, got {self.top_categories!r}")
        if self.kind is ProfilerKind.LLM and not self.model_path:
            raise ValueError("profile kind 'llm' needs model_path (a local Hugging Face model directory)")


@dataclass
class DsieConfig:
    """The DSIE stage: encoder, RQ-VAE, grouping and profiles (each its own config)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    rqvae: RqVaeConfig = field(default_factory=RqVaeConfig)
    group: GroupConfig = field(default_factory=GroupConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        check_seed("seed", self.seed)
        if self.rqvae.input_dim is None:  # the RQ-VAE reads the encoder's embeddings
            self.rqvae = replace(self.rqvae, input_dim=self.encoder.dim)
        elif self.rqvae.input_dim != self.encoder.dim:
            raise ValueError(f"rqvae.input_dim {self.rqvae.input_dim} is not encoder.dim {self.encoder.dim}: the "
                             "RQ-VAE reads the encoder's user embeddings; leave rqvae.input_dim out (it follows "
                             "encoder.dim)")
        if self.group.depth > len(self.rqvae.codebook_sizes):
            raise ValueError(f"group depth {self.group.depth} > RQ-VAE levels {len(self.rqvae.codebook_sizes)}")


