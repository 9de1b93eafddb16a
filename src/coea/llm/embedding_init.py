"""``llm.model.embedding_init: encoder``: a scratch LLM's category and item tokens start from the DSIE encoder's
embeddings instead of at random.

The DSIE encoder learned, from every position of every history, an embedding per category token and (with
``dsie.encoder.item_input``) per item; collaborative-embedding LLM recommenders start the LLM's item tokens from
such vectors. The encoder pair's parts are concatenated (2 x 32 = 64, the default N-LLM width). The vectors are
mapped to the model's width by a fixed orthonormal map (after a projection on their top principal axes when they are
wider than the model), which keeps every inner product up to one common scale, and scaled so their root mean square
matches the rows the model was initialised with. Tokens the encoder has no vector for (template words, CSID codes,
a category below its support, an item below ``min_item_support``) keep their random rows.

Only history shaped the encoder (``coea group`` fits it on the histories), so the initialisation reads nothing of
the evaluation future. A pretrained tokenizer spells names with sub-word pieces shared by other words: the option is
for scratch models only (:class:`coea.llm.config.ModelConfig` refuses it otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coea.llm.prompts import category_text, item_text
from coea.llm.tokenizer import word_token_ids


@dataclass(frozen=True)
class EncoderEmbeddings:
    """The DSIE encoder's input vector of each category and each item it reads (all of one width)."""

    categories: Mapping[str, np.ndarray]
    items: Mapping[str, np.ndarray]


def encoder_embeddings(model: Any, vocab: Any) -> EncoderEmbeddings:
    """The category and item embeddings of a trained encoder (a ``SasRec`` or a ``SasRecPair``, whose parts'
    vectors are concatenated) over ``vocab`` (its ``CategoryVocab``)."""
    parts = list(getattr(model, "parts", [model]))
    tokens = np.concatenate([p.tokens.weight.detach().float().cpu().numpy() for p in parts], axis=1)
    categories = {c: tokens[vocab.token(c)] for c in vocab.categories}
    items: dict[str, np.ndarray] = {}
    if vocab.items and all(p.items is not None for p in parts):
        rows = np.concatenate([p.items.weight.detach().float().cpu().numpy() for p in parts], axis=1)
        items = {it: rows[i + 1] for i, it in enumerate(vocab.items)}  # row 0: the unknown item
    return EncoderEmbeddings(categories, items)


def load_encoder_embeddings(dsie_dir: Path) -> EncoderEmbeddings:
    """:func:`encoder_embeddings` of the encoder saved in a DSIE dir (``DSIE_DIR/encoder``)."""
    from coea.dsie.encoder import load_encoder

    model, vocab, _ = load_encoder(Path(dsie_dir) / "encoder", device="cpu")
    return encoder_embeddings(model, vocab)


def _rows(tokenizer: Any, names: list[str], words: list[str]) -> tuple[list[int], list[str]]:
    """The single in-prompt token id of each of ``words`` and its name; words the tokenizer does not hold as one
    known token are left out."""
    ids, kept = [], []
    for name, tok in zip(names, word_token_ids(tokenizer, words), strict=True):
        if len(tok) == 1 and tok[0] != tokenizer.unk_token_id:
            ids.append(tok[0])
            kept.append(name)
    return ids, kept


def _to_width(vectors: np.ndarray, width: int, seed: int) -> np.ndarray:
    """(n, d) -> (n, width): a projection on the top ``width`` principal axes when d > width, then a fixed random
    map with orthonormal columns (seeded), so inner products are kept (exactly when d <= width)."""
    if vectors.shape[1] > width:
        _, _, vt = np.linalg.svd(vectors, full_matrices=False)
        vectors = vectors @ vt[:width].T
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((width, vectors.shape[1])))
    return vectors @ q.T


def init_from_encoder(model: Any, tokenizer: Any, emb: EncoderEmbeddings, *, seed: int) -> dict[str, int]:
    """Set ``model``'s input embedding rows (tied to its output head in a scratch model) of the categories and items
    ``emb`` holds to the mapped encoder vectors (module doc), in place; returns how many of each were set."""
    import torch

    cat_names = list(emb.categories)
    cat_ids, cats = _rows(tokenizer, cat_names, [category_text(c) for c in cat_names])
    item_names = list(emb.items)
    item_ids, items = _rows(tokenizer, item_names, [item_text(i) for i in item_names])
    ids = cat_ids + item_ids
    if not ids:
        return {"categories": 0, "items": 0}
    weight = model.get_input_embeddings().weight
    vectors = np.stack([emb.categories[c] for c in cats] + [emb.items[i] for i in items]).astype(np.float64)
    mapped = _to_width(vectors, weight.shape[1], seed)
    with torch.no_grad():
        keep = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
        keep[ids] = False
        target = float(weight[keep].float().pow(2).mean().sqrt()) if bool(keep.any()) else 0.02
        scale = target / max(float(np.sqrt(np.mean(mapped ** 2))), 1e-12)
        weight[ids] = torch.as_tensor(mapped * scale, dtype=weight.dtype, device=weight.device)
    return {"categories": len(cat_ids), "items": len(item_ids)}
