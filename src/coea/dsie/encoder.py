"""Long-term encoder: a SASRec-style causal self-attention model trained to predict the next category (or, with
``target: novel``, the categories the user takes up for the first time over the next events; with ``target: both``,
one encoder of each, trained apart, that rank together: :class:`SasRecPair`).

Tokens are categories (see :mod:`coea.dsie.vocab`; with ``item_input`` an event also adds its item's embedding);
learned positions; pre-norm causal transformer blocks; output logits tied to the category embeddings. The *user
embedding* is the final position's hidden state, L2-normalised. Sequences are right-padded, so with the causal mask
a real position never attends to padding.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from coea.config import SplitConfig, read_saved_config, save_config
from coea.console import no_step_bar, progress
from coea.data.schema import CATEGORY, ITEM
from coea.data.split import Histories
from coea.device import model_device
from coea.dsie.config import EncoderConfig
from coea.dsie.sequences import (
    Windows,
    encoder_sequences,
    gap_targets,
    last_windows,
    novel_windows,
    training_windows,
    user_sequences,
    user_times,
)
from coea.dsie.vocab import PAD, UNK, CategoryVocab
from coea.errors import CoeaInputError
from coea.utils import atomic_path, seed_everything

log = logging.getLogger(__name__)


class SasRec(nn.Module):
    """Causal self-attention over category tokens; ``forward`` returns hidden states (B, L, D)."""

    def __init__(self, vocab_size: int, cfg: EncoderConfig, n_items: int = 0) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, cfg.dim, padding_idx=PAD)
        # item_input: inputs are event codes item_index * vocab_size + token (coea.dsie.vocab); index 0 = unknown
        self.items = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0) if cfg.reads_items else None
        self.positions = nn.Embedding(cfg.max_len, cfg.dim)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.n_heads, 4 * cfg.dim, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        self.bias = nn.Parameter(torch.zeros(vocab_size)) if cfg.with_bias else None

    def reset_parameters(self) -> None:
        """Small embeddings (std 0.02, GPT-2 style) so the tied output logits start near uniform."""
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)
        with torch.no_grad():
            self.tokens.weight[PAD].zero_()
        if self.items is not None:
            nn.init.normal_(self.items.weight, std=0.02)
            with torch.no_grad():
                self.items.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        length = seq.shape[1]
        pos = torch.arange(length, device=seq.device)
        h = self.tokens(seq % self.vocab_size) + self.positions(pos)[None]  # (B, L, D)
        if self.items is not None:
            h = h + self.items(seq // self.vocab_size)
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=seq.device)  # (L, L)
        h = self.blocks(self.dropout(h), mask=causal, is_causal=True)
        return self.norm(h)  # (B, L, D)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every token, tied to the input embeddings: (..., D) -> (..., V)."""
        out = hidden @ self.tokens.weight.T
        return out if self.bias is None else out + self.bias

    @property
    def vocab_size(self) -> int:
        return self.tokens.num_embeddings

    def final(self, inputs: torch.Tensor, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The hidden state at each row's ``last`` position, L2-normalised (B, D), and its logits (B, V)."""
        h = self(inputs)  # (B, L, D)
        final = h[torch.arange(len(inputs), device=inputs.device), last]  # (B, D)
        return F.normalize(final, dim=-1), self.logits(final)


class SasRecPair(nn.Module):
    """``target: both``: a next-event encoder and a novel-set encoder, trained apart (the config's
    :meth:`~coea.dsie.config.EncoderConfig.parts`). The next-event one gives the user embedding; they rank by the
    mean of their log-softmaxes over the real categories (a geometric mean of the two distributions): on MovieLens
    validation the pair lifted ``sasrec+x`` where two next-event encoders did not (docs/results.md, session 29)."""

    def __init__(self, parts: list[SasRec]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)

    @property
    def vocab_size(self) -> int:
        return self.parts[0].vocab_size

    def final(self, inputs: torch.Tensor, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The next-event encoder's embedding (B, D) and the mean of the parts' log-softmaxes (B, V; PAD and UNK
        at -inf)."""
        special = torch.zeros(self.vocab_size, dtype=torch.bool, device=inputs.device)
        special[[PAD, UNK]] = True
        outs = [part.final(inputs, last) for part in self.parts]
        logp = [logits.masked_fill(special, -torch.inf).log_softmax(-1) for _, logits in outs]
        return outs[0][0], sum(logp) / len(logp)


Encoder = SasRec | SasRecPair


def build_encoder(vocab_size: int, cfg: EncoderConfig, n_items: int = 0) -> Encoder:
    """The (untrained) model ``cfg`` describes: a :class:`SasRec`, or with ``target: both`` a :class:`SasRecPair`
    (``n_items``: the items read with ``item_input``)."""
    if cfg.both:
        return SasRecPair([SasRec(vocab_size, part, n_items) for part in cfg.parts()])
    return SasRec(vocab_size, cfg, n_items)


@dataclass
class EncoderResult:
    """A trained encoder and what it produced."""

    model: Encoder
    vocab: CategoryVocab
    config: EncoderConfig
    # per epoch: train/val loss, ms/step (with target both, the next-event encoder's epochs, then the novel-set one's,
    # each row's "target" saying which)
    history: list[dict] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)


def _batches(n: int, size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, size):
        yield order[start:start + size]


def _loss(model: SasRec, inputs: torch.Tensor, targets: torch.Tensor,
          prior: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Mean loss over the trained positions of a batch and their number. Next-event windows: cross-entropy of
    each position's target. Novel-set windows (``prior`` given): each position with at least one unseen target
    gets -mean log softmax over the categories not seen up to it, of its unseen targets."""
    logits = model.logits(model(inputs))  # (B, L, V)
    if prior is None:
        n = int((targets != PAD).sum())
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD), n
    vocab = logits.shape[-1]
    seen = F.one_hot(inputs % vocab, vocab).cumsum(1).gt(0) | prior[:, None, :]  # (B, L, V): had up to and incl. t
    seen[..., [PAD, UNK]] = True
    want = torch.zeros_like(logits).scatter_(2, targets, 1.0).masked_fill_(seen, 0.0)  # (B, L, V) unseen targets
    n_want = want.sum(-1)  # (B, L)
    keep = n_want > 0
    logp = logits.masked_fill(seen, -torch.inf).log_softmax(-1).masked_fill(seen, 0.0)
    per_pos = -(want * logp).sum(-1) / n_want.clamp(min=1.0)
    n = int(keep.sum())
    return (per_pos[keep].mean() if n else logits.sum() * 0.0), n


def _tensors(win: Windows, idx: np.ndarray, device) -> list[torch.Tensor]:
    return [torch.as_tensor(a[idx], device=device) for a in win.arrays()]


@torch.no_grad()
def _eval_loss(model: SasRec, win: Windows, cfg: EncoderConfig) -> float:
    model.eval()
    total, count, device = 0.0, 0, model_device(model)
    for idx in _batches(len(win.inputs), cfg.batch_size, None):
        loss, n = _loss(model, *_tensors(win, idx, device))
        total += float(loss) * n
        count += n
    return total / max(count, 1)


def _split_users(seqs: dict[str, list[int]], cfg: EncoderConfig) -> tuple[list[str], list[str]]:
    users = sorted(seqs)
    rng = np.random.default_rng(cfg.seed)
    n_val = int(round(cfg.val_fraction * len(users)))
    val = set(rng.choice(len(users), size=n_val, replace=False).tolist()) if n_val else set()
    return [u for i, u in enumerate(users) if i not in val], [u for i, u in enumerate(users) if i in val]


def train_encoder(cfg: EncoderConfig, histories: Histories, out_dir: Path | None = None, *,
                  device: str = "cpu") -> EncoderResult:
    """Train on ``device`` (a resolved torch device string) with early stopping on held-out users; optionally
    save model + config. With ``target: both`` each of the two encoders is trained in turn, as it would be alone."""
    cfg = replace(cfg, item_input=cfg.reads_items)  # saved as what it did
    frame = histories.interactions
    counts = frame[CATEGORY].value_counts().to_dict()
    item_counts = frame[ITEM].value_counts().to_dict() if cfg.reads_items else None
    vocab = CategoryVocab.from_counts(counts, cfg.min_category_support, item_counts, cfg.min_item_support)
    _check_known_categories(vocab, counts, cfg)
    seqs = user_sequences(frame, vocab, cfg.collapse_repeats)
    codes = encoder_sequences(frame, vocab, cfg.collapse_repeats) if vocab.items else None  # item_input's codes
    times = user_times(frame) if cfg.target_gap else None
    history: list[dict] = []
    parts = [_train_part(part, vocab, seqs, times, device, history, codes) for part in cfg.parts()]
    result = EncoderResult(SasRecPair(parts) if cfg.both else parts[0], vocab, cfg, history)
    if out_dir is not None:
        result.paths = save_encoder(result, out_dir)
    return result


def _check_known_categories(vocab: CategoryVocab, counts: dict, cfg: EncoderConfig) -> None:
    """CoeaInputError when ``min_category_support`` leaves fewer than 2 known categories (every other one is UNK:
    the encoder would learn nothing and every user would share one code)."""
    if len(vocab.categories) < 2:
        top = sorted(counts.values(), reverse=True)
        raise CoeaInputError(f"min_category_support {cfg.min_category_support} leaves {len(vocab.categories)} of "
                             f"{len(counts)} categories known (the others become UNK); the encoder needs at least 2",
                             option="dsie.encoder.min_category_support",
                             fix=f"lower it to at most {top[1] if len(top) > 1 else 1} (default 1)")


def _train_part(cfg: EncoderConfig, vocab: CategoryVocab, seqs: dict[str, list[int]],
                times: dict[str, np.ndarray] | None, device: str, history: list[dict],
                codes: dict[str, list[int]] | None = None) -> SasRec:
    """One encoder (``cfg.target`` next or novel), trained and back at its best held-out epoch; its epochs are
    appended to ``history``. ``codes``: the event codes it reads instead of ``seqs`` (``item_input``)."""
    seed_everything(cfg.seed)
    targets = None
    if cfg.target_gap and not cfg.novel:  # the first event target_gap seconds on, not the next one
        targets = {u: gap_targets(s, times[u], cfg.target_gap) for u, s in seqs.items()}
    horizon = cfg.target_horizon or SplitConfig().n_future  # unresolved: the default split's future
    train_users, val_users = _split_users(seqs, cfg)

    def windows(users: list[str], all_windows: bool) -> Windows:
        user_seqs = [seqs[u] for u in users]
        inputs = None if codes is None else [codes[u] for u in users]
        if cfg.novel:
            return novel_windows(user_seqs, cfg.max_len, all_windows, cfg.min_user_events,
                                 horizon, vocab.size,
                                 None if times is None else [times[u] for u in users], cfg.target_gap or 0,
                                 inputs=inputs)
        return training_windows(user_seqs, cfg.max_len, all_windows, cfg.min_user_events,
                                None if targets is None else [targets[u] for u in users], inputs=inputs)

    train, val = windows(train_users, cfg.all_windows), windows(val_users, False)
    if len(train.inputs) == 0:
        longest = max((len(seqs[u]) for u in train_users), default=0)
        raise CoeaInputError(f"no user has enough history events to train the encoder: min_user_events is "
                             f"{cfg.min_user_events}, the longest training history has {longest}",
                             option="dsie.encoder.min_user_events",
                             fix=f"lower dsie.encoder.min_user_events to at most {max(longest, 2)} (default 3)")
    later = f" at least {cfg.target_gap} s later" if cfg.target_gap else ""
    what = (f"the unseen categories of the next {horizon} events{later}" if cfg.novel
            else f"the first event{later}" if later else "the next event")
    log.info("encoder: %d training windows, %d held out; each position learns %s%s%s", len(train.inputs),
             len(val.inputs), what, ", with an output bias" if cfg.with_bias else "",
             f"; it reads {len(vocab.items)} items beside the categories" if cfg.reads_items else "")
    model = SasRec(vocab.size, cfg, len(vocab.items)).to(device)
    model.reset_parameters()
    if model.bias is not None:  # start from the targets' log-frequency: the logits begin as popularity
        _init_bias(model, train)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    _fit(model, opt, train, val, cfg, history)
    return model


@torch.no_grad()
def _init_bias(model: SasRec, train: Windows) -> None:
    counts = np.bincount(train.targets.ravel(), minlength=model.bias.numel()).astype(np.float64)
    counts[PAD] = 0.0
    log_freq = np.log((counts + 1.0) / (counts.sum() + counts.size))
    model.bias.copy_(torch.as_tensor(log_freq - log_freq.mean(), dtype=model.bias.dtype))


def _fit(model: SasRec, opt: torch.optim.Optimizer, train: Windows, val: Windows, cfg: EncoderConfig,
         history: list[dict]) -> None:
    rng, device = np.random.default_rng(cfg.seed + 1), model_device(model)
    best, best_state, stale, rows, best_epoch = math.inf, None, 0, [], 0
    bar = tqdm(range(cfg.epochs), desc="encoder", unit="epoch", disable=no_step_bar())
    for epoch in bar:
        model.train()
        start, losses = time.perf_counter(), []
        for idx in _batches(len(train.inputs), cfg.batch_size, rng):
            loss, _ = _loss(model, *_tensors(train, idx, device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        ms = 1000 * (time.perf_counter() - start) / max(len(losses), 1)
        val_loss = _eval_loss(model, val, cfg) if len(val.inputs) else float(np.mean(losses))
        rows.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss, "ms_per_step": ms,
                     "target": cfg.target or "next"})
        history.append(rows[-1])
        bar.set_postfix(train=f"{np.mean(losses):.3f}", val=f"{val_loss:.3f}")
        if val_loss < best - 1e-4:
            best, stale, best_epoch = val_loss, 0, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        log.info(_epoch_line(rows[-1], cfg, len(val.inputs) > 0, best, best_epoch, stale), extra=progress("encoder"))
        if stale >= cfg.patience:
            log.info("encoder: early stop after epoch %d of at most %d (best held-out loss %.4f at epoch %d)",
                     epoch + 1, cfg.epochs, best, best_epoch)
            break
    else:
        _warn_if_capped(rows, cfg)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()


def _epoch_line(row: dict[str, Any], cfg: EncoderConfig, held_out: bool, best: float, best_epoch: int,
                stale: int) -> str:
    """The progress line of one epoch (1-based, of the ``cfg.epochs`` cap): its losses, the best held-out loss so
    far and when early stopping would end the training."""
    loss = "held-out loss" if held_out else "loss (no held-out users: the training loss)"
    return (f"encoder epoch {row['epoch'] + 1}/{cfg.epochs}: train {row['train_loss']:.4f}, {loss} "
            f"{row['val_loss']:.4f} (best {best:.4f} at epoch {best_epoch}; stops after {cfg.patience} epochs "
            f"without improvement, {stale} so far) ({row['ms_per_step']:.1f} ms/step)")


def _warn_if_capped(history: list[dict[str, float]], cfg: EncoderConfig) -> None:
    """Warn when the epoch cap, not early stopping, ended a training whose held-out loss was still falling.

    A capped encoder is under-trained: the ``sasrec`` baseline, the CSIDs and the encoder's part of
    ``nllm_seq`` / ``coea_seq`` all inherit it (docs/results.md, session 21)."""
    if len(history) < 2 or cfg.val_fraction == 0:
        return
    losses = [row["val_loss"] for row in history]
    best_at = int(np.argmin(losses))
    window = history[-min(cfg.patience, len(history) - 1) - 1:]
    fell = window[0]["val_loss"] - window[-1]["val_loss"]
    if best_at == len(losses) - 1 and fell > 1e-3:
        log.warning("encoder: stopped at its epoch cap (%d) with the held-out loss still falling (%.4f -> %.4f over "
                    "the last %d epochs); raise dsie.encoder.epochs", cfg.epochs, window[0]["val_loss"],
                    window[-1]["val_loss"], len(window) - 1)


@torch.no_grad()
def encode(model: Encoder, seqs: list[list[int]], cfg: EncoderConfig) -> tuple[np.ndarray, np.ndarray]:
    """Final-position hidden states, L2-normalised (N, D), and next-token logits (N, V) for each sequence (as
    :func:`~coea.dsie.sequences.encoder_sequences` gives them; a :class:`SasRecPair`: its next-event encoder's
    states and the mean of its parts' log-softmaxes).

    An empty sequence gets a zero embedding and uniform logits (callers treat such users as cold-start). Inputs
    go to the model's own device.
    """
    model.eval()
    device = model_device(model)
    inputs, last = last_windows(seqs, cfg.max_len)
    embs, logits = [], []
    for idx in _batches(len(seqs), 512, None):
        emb, logit = model.final(torch.as_tensor(inputs[idx], device=device), torch.as_tensor(last[idx], device=device))
        embs.append(emb.cpu().numpy())
        logits.append(logit.cpu().numpy())
    emb = np.concatenate(embs) if embs else np.zeros((0, cfg.dim), np.float32)
    logit = np.concatenate(logits) if logits else np.zeros((0, model.vocab_size), np.float32)
    empty = np.array([len(s) == 0 for s in seqs], dtype=bool)
    emb[empty] = 0.0
    logit[empty] = 0.0
    logit[:, [PAD, UNK]] = -np.inf
    return emb, logit


def save_encoder(result: EncoderResult, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"encoder": out_dir / "encoder.pt", "encoder_config": out_dir / "encoder_config.json",
             "encoder_vocab": out_dir / "encoder_vocab.json"}
    with atomic_path(paths["encoder"]) as tmp:
        torch.save(result.model.state_dict(), tmp)
    save_config(result.config, paths["encoder_config"])
    result.vocab.save(paths["encoder_vocab"])
    return paths


def load_encoder(out_dir: Path, device: str = "cpu") -> tuple[Encoder, CategoryVocab, EncoderConfig]:
    """Rebuild what :func:`save_encoder` wrote, on ``device`` (a resolved torch device string), in eval mode."""
    cfg = read_saved_config(EncoderConfig, out_dir / "encoder_config.json")
    vocab = CategoryVocab.load(out_dir / "encoder_vocab.json")
    state = torch.load(out_dir / "encoder.pt", map_location=device, weights_only=True)
    # what the weights read decides (an encoder saved before item_input existed has no item embedding)
    cfg = replace(cfg, item_input=any(k.split(".")[-2:] == ["items", "weight"] for k in state))
    model = build_encoder(vocab.size, cfg, len(vocab.items)).to(device)
    model.load_state_dict(state)
    model.eval()
    return model, vocab, cfg
