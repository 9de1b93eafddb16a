"""Constrained decoding and scoring: the N-LLM ranks or samples category names, the R-LLM answers yes/no.

Every output is a valid category name, never a duplicate. Prompts are deduplicated (users sharing a prompt share
one forward pass), batched with LEFT padding (so the next-token position is the last column for every row) and
explicit ``position_ids`` (``cumsum(mask) - 1``), so a padded row scores exactly like the prompt alone.

Score of a category = log P(its token ids | prompt) under the model:

* single-token names (the scratch tokenizer): the log-prob of the name's token at the next position. Ranking is
  set-level: the top-K of this one first-step distribution. A greedy list that masks each chosen name and asks
  again would give the same list, because masking a token does not change the order of the others. No name is a
  prefix of another, so no end-of-name term is needed.
* multi-token names (a pretrained BPE tokenizer): exact sequence log-probs via the category *trie*, times the
  end-of-name term: the probability that the name ends there, i.e. that the next token is one a completion can
  continue with after a whole name (the first token of any category name, or of the end-of-sequence terminator:
  :attr:`CategoryIndex.boundary_ids`). Without it a name that is a prefix of another (``Comedy`` of
  ``Comedy|Romance`` in a BPE split ``ĠComedy | Rom ance``) scores at least as high as the longer one for every
  prompt and model, whatever the training taught (session 55 audit). The prompt is run once with a KV cache; then
  level by level one token is fed per trie node, reordering the cache rows to the nodes (``Cache.reorder_cache``):
  one token per trie node instead of one full forward per name; :func:`score_categories_exhaustive` is the
  brute-force reference it is tested against.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from coea.device import model_device
from coea.errors import CoeaInputError
from coea.llm.prompts import NO, RELEVANT_MARK, YES, category_text
from coea.llm.tokenizer import category_token_ids, word_token_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrieLevel:
    """The trie nodes at one depth (numbered 0..n_nodes-1; the next level's nodes are this level's edges, in order)
    and the edges leaving them."""

    n_nodes: int
    node_category: torch.Tensor  # (n_nodes,) index of the category whose name ends at the node, -1 if none
    parent: torch.Tensor  # (E,) node (of this level) the edge leaves
    token: torch.Tensor  # (E,) token id on the edge


class _Node:
    __slots__ = ("category", "children")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.category: int | None = None


class CategoryIndex:
    """Category names, their in-prompt token ids and a prefix trie over those ids."""

    def __init__(self, tokenizer, categories: Sequence[str]) -> None:
        self.categories = list(categories)
        self.position = {name: i for i, name in enumerate(self.categories)}
        if len(self.position) != len(self.categories):
            dup = sorted({c for c in self.categories if self.categories.count(c) > 1})
            raise CoeaInputError(f"duplicate category names {dup[:5]}", fix="pass each category once")
        self.token_ids = category_token_ids(tokenizer, self.categories)
        self._check_ids(tokenizer.unk_token_id)
        self.single_token = all(len(ids) == 1 for ids in self.token_ids)
        self.first_ids = torch.tensor([ids[0] for ids in self.token_ids])  # (C,)
        self.max_len = max(len(ids) for ids in self.token_ids)
        # what may follow a whole name in a completion (another name, or the terminator): the end-of-name term's
        # tokens; None on the single-token path, which needs no such term
        self.boundary_ids = None if self.single_token else _boundary_ids(tokenizer, self.token_ids)
        self.root = _Node()
        for c, ids in enumerate(self.token_ids):
            node = self.root
            for t in ids:
                node = node.children.setdefault(t, _Node())
            node.category = c
        self.levels = self._levels()

    def _check_ids(self, unk_id: int | None) -> None:
        seen: dict[tuple[int, ...], str] = {}
        for name, ids in zip(self.categories, self.token_ids, strict=True):
            if not ids or (unk_id is not None and unk_id in ids):
                raise CoeaInputError(f"category {name!r} maps to no token or to the unknown token of the LLMs' "
                                     "tokenizer", fix="train the LLMs on a log that contains the category")
            if tuple(ids) in seen:
                raise CoeaInputError(f"categories {seen[tuple(ids)]!r} and {name!r} have the same token ids",
                                     fix="rename one of them or rebuild the tokenizer")
            seen[tuple(ids)] = name

    def _levels(self) -> list[TrieLevel]:
        levels, nodes = [], [self.root]
        while nodes:
            parent, token, nxt = [], [], []
            for i, node in enumerate(nodes):
                for t, ch in node.children.items():
                    parent.append(i)
                    token.append(t)
                    nxt.append(ch)
            ends = [-1 if node.category is None else node.category for node in nodes]
            levels.append(TrieLevel(len(nodes), *(torch.tensor(v, dtype=torch.long) for v in (ends, parent, token))))
            nodes = nxt
        return levels

    def allowed_next(self, prefix: Sequence[int]) -> list[int]:
        """Token ids that extend ``prefix`` towards some category name (for ``prefix_allowed_tokens_fn``)."""
        node = self.root
        for t in prefix:
            if t not in node.children:
                return []
            node = node.children[t]
        return list(node.children)

    def excluded_mask(self, exclude: Sequence[set[str]] | None, n_rows: int) -> np.ndarray:
        """(P, C) True where a category is excluded for that prompt; names not in the index are ignored."""
        mask = np.zeros((n_rows, len(self.categories)), dtype=bool)
        if exclude is None:
            return mask
        if len(exclude) != n_rows:
            raise ValueError(f"exclude has {len(exclude)} sets for {n_rows} prompts; give one set per prompt")
        for row, names in enumerate(exclude):
            cols = [self.position[n] for n in names if n in self.position]
            mask[row, cols] = True
        return mask


def _boundary_ids(tokenizer, names: Sequence[Sequence[int]]) -> torch.Tensor:
    """The tokens that may follow a whole category name in a completion (:func:`coea.llm.prompts.novelty_completion`:
    names space-separated, then the end-of-sequence token): the first token of every name and of the terminator."""
    first = {ids[0] for ids in names}
    if tokenizer.eos_token is not None:
        first |= {ids[0] for ids in word_token_ids(tokenizer, [tokenizer.eos_token]) if ids}
    return torch.tensor(sorted(first), dtype=torch.long)


def dedupe(prompts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Unique prompts in first-seen order and ``inverse`` with ``prompts[i] == unique[inverse[i]]``."""
    unique = list(dict.fromkeys(prompts))
    where = {p: i for i, p in enumerate(unique)}
    return unique, np.array([where[p] for p in prompts], dtype=np.int64)


@contextlib.contextmanager
def _inference(model) -> Iterator[None]:
    """Eval mode (no dropout) and no autograd for the block; the model's training flag is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _cache_io(model, out) -> tuple[str, object]:
    """(keyword that passes a KV cache to ``model``, the cache inside ``out``): ``cache`` in transformers >= 5.x
    (``past_key_values`` is deprecated there), ``past_key_values`` before."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # unwrap peft
    keyword = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    cache = getattr(out, "cache", None)
    return keyword, cache if cache is not None else out.past_key_values


def encode_texts(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    ids = tokenizer(list(texts))["input_ids"]
    if any(len(s) == 0 for s in ids):
        raise ValueError("a prompt tokenizes to no tokens; prompts must be non-empty")
    return ids


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device,
              min_len: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded ids (B, T), attention mask (B, T) and position ids (B, T) counting real tokens only."""
    width = max(min_len, max(len(s) for s in seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        if s:
            ids[row, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[row, width - len(s):] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), pos.to(device)


def pad_token_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token")
    return int(pad)


def _batches(n: int, size: int) -> list[slice]:
    if size <= 0:
        raise ValueError(f"batch_size must be > 0, got {size!r}")
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _next_logprobs(model, seqs: Sequence[Sequence[int]], pad_id: int, columns: torch.Tensor,
                   batch_size: int) -> torch.Tensor:
    """Next-token log-probs after each sequence, restricted to ``columns``: (N, len(columns)) on the CPU."""
    out = []
    with _inference(model):
        for sl in _batches(len(seqs), batch_size):
            ids, mask, pos = left_pad(seqs[sl], pad_id, model_device(model))
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1).logits
            lp = torch.log_softmax(logits[:, -1].float(), dim=-1)  # (B, V)
            out.append(lp[:, columns.to(lp.device)].cpu())  # (B, K)
    return torch.cat(out)


def _trie_chunk(model, seqs: Sequence[Sequence[int]], pad_id: int, index: CategoryIndex) -> torch.Tensor:
    """Exact log P(name, then a name's end | prompt) for every category, walking the trie with a KV cache: (B, C)."""
    ids, mask, pos = left_pad(seqs, pad_id, model_device(model))
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
    lengths = mask.sum(-1)  # (B,) real prompt tokens = position of the first name token
    n_prompts, dev = len(seqs), ids.device
    boundary = index.boundary_ids.to(dev)
    scores = torch.full((n_prompts, len(index.categories)), float("-inf"), device=dev)  # (B, C)
    acc = torch.zeros((n_prompts, 1), device=dev)  # (B, n_nodes) log-prob of reaching each node of the level
    for depth, lvl in enumerate(index.levels):
        ends, parent, token = (t.to(dev) for t in (lvl.node_category, lvl.parent, lvl.token))
        lp = torch.log_softmax(out.logits[:, -1].float(), dim=-1).view(n_prompts, lvl.n_nodes, -1)  # (B, N, V)
        done = ends >= 0  # the nodes where a name ends: reach it, then end the name there
        if bool(done.any()):
            scores[:, ends[done]] = acc[:, done] + torch.logsumexp(lp[:, done][:, :, boundary], dim=-1)
        if parent.numel() == 0:
            break
        acc = acc[:, parent] + lp[:, parent, token]  # (B, E): the next level's nodes are this level's edges
        n_next = acc.shape[1]
        rows = (torch.arange(n_prompts, device=dev)[:, None] * lvl.n_nodes + parent[None, :]).reshape(-1)
        keyword, cache = _cache_io(model, out)
        cache.reorder_cache(rows)  # (B*N, ...) -> (B*N', ...)
        mask = torch.cat([mask[rows], torch.ones((rows.numel(), 1), dtype=mask.dtype, device=dev)], dim=-1)
        step_ids = token.repeat(n_prompts)[:, None]  # (B*N', 1)
        step_pos = (lengths.repeat_interleave(n_next) + depth)[:, None]  # (B*N', 1)
        out = model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, use_cache=True,
                    **{keyword: cache})
    return scores.cpu()


def category_logprobs(model, tokenizer, prompts: Sequence[str], index: CategoryIndex,
                      batch_size: int = 64) -> np.ndarray:
    """(P, C) log P(category name | prompt): the fast single-token path or the exact trie path."""
    unique, inverse = dedupe(prompts)
    seqs, pad = encode_texts(tokenizer, unique), pad_token_id(tokenizer)
    if index.single_token:
        scores = _next_logprobs(model, seqs, pad, index.first_ids, batch_size)  # (U, C)
    else:  # rows per trie level = prompts x widest level: keep that near batch_size
        width = max(lvl.n_nodes for lvl in index.levels)
        with _inference(model):
            scores = torch.cat([_trie_chunk(model, seqs[sl], pad, index)
                                for sl in _batches(len(seqs), max(1, batch_size // width))])
    return scores.double().numpy()[inverse]


def name_logprobs(model, seqs: Sequence[Sequence[int]], names: Sequence[Sequence[int]], pad_id: int,
                  max_len: int, boundary: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) log P(``names[i]`` | ``seqs[i]``), the sum of the name's token log-probs plus, with ``boundary``
    (:attr:`CategoryIndex.boundary_ids`), the end-of-name term log P(next token in ``boundary``), on the model's
    device: one forward of prompt + name per row, names right-aligned in the last ``max_len`` positions (autograd as
    the caller has it: :func:`score_categories_exhaustive` runs it without, the distill update with gradients)."""
    dev = model_device(model)
    ids, mask, pos = left_pad([list(s) + list(n) for s, n in zip(seqs, names, strict=True)], pad_id, dev,
                              min_len=max_len + 1)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=max_len + 1).logits
    lp = torch.log_softmax(logits[:, :max_len].float(), dim=-1)  # (N, M, V) predicts the last M tokens
    target = torch.zeros((len(names), max_len), dtype=torch.long)  # (N, M) names right-aligned
    valid = torch.zeros((len(names), max_len), dtype=torch.bool)
    for row, name in enumerate(names):
        target[row, max_len - len(name):] = torch.tensor(list(name))
        valid[row, max_len - len(name):] = True
    token_lp = lp.gather(-1, target.to(dev)[..., None])[..., 0]  # (N, M)
    total = (token_lp * valid.to(dev)).sum(-1)
    if boundary is None:
        return total
    after = torch.log_softmax(logits[:, max_len].float(), dim=-1)  # (N, V) the token after the name
    return total + torch.logsumexp(after[:, boundary.to(dev)], dim=-1)


def score_categories_exhaustive(model, tokenizer, prompts: Sequence[str], index: CategoryIndex,
                                batch_size: int = 64) -> np.ndarray:
    """(P, C) the same log-probs by brute force: one full forward of ``prompt + name`` per (prompt, category)."""
    unique, inverse = dedupe(prompts)
    seqs, pad, m = encode_texts(tokenizer, unique), pad_token_id(tokenizer), index.max_len
    pairs = [(p, c) for p in range(len(unique)) for c in range(len(index.categories))]
    flat = []
    with _inference(model):
        for sl in _batches(len(pairs), batch_size):
            chunk = pairs[sl]
            flat.append(name_logprobs(model, [seqs[p] for p, _ in chunk], [index.token_ids[c] for _, c in chunk],
                                      pad, m, index.boundary_ids).cpu())
    scores = torch.cat(flat).view(len(unique), len(index.categories))
    return scores.double().numpy()[inverse]


def rank_categories(model, tokenizer, prompts: Sequence[str], index: CategoryIndex, k: int,
                    exclude: Sequence[set[str]] | None = None,
                    batch_size: int = 64) -> list[list[tuple[str, float]]]:
    """Top-``k`` (name, log-prob) per prompt, best first, excluded names masked (fewer if too few remain)."""
    if k <= 0:
        raise ValueError(f"k must be > 0, got {k!r}")
    scores = category_logprobs(model, tokenizer, prompts, index, batch_size)  # (P, C)
    scores[index.excluded_mask(exclude, len(prompts))] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # ties keep category order
    return [[(index.categories[c], float(scores[row, c])) for c in cols if np.isfinite(scores[row, c])]
            for row, cols in enumerate(order)]


def sample_categories(model, tokenizer, prompts: Sequence[str], index: CategoryIndex, n: int,
                      temperature: float = 1.0, seed: int = 0, exclude: Sequence[set[str]] | None = None,
                      batch_size: int = 64) -> list[list[str]]:
    """``n`` distinct names per prompt drawn without replacement from softmax(log-prob / temperature).

    Gumbel top-k: adding independent Gumbel(0, 1) noise to the scaled log-probs and keeping the top n is an exact
    draw without replacement. The noise comes from a ``torch.Generator`` seeded with ``seed`` (per prompt row, so
    users sharing a prompt still get independent draws).
    """
    if n <= 0 or temperature <= 0:
        raise ValueError(f"n and temperature must be > 0, got n={n!r}, temperature={temperature!r}")
    scores = torch.from_numpy(category_logprobs(model, tokenizer, prompts, index, batch_size)) / temperature
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(scores.shape, generator=gen, dtype=torch.float64).clamp(min=1e-300)  # (P, C)
    keys = scores - torch.log(-torch.log(u))  # (P, C)
    keys[torch.from_numpy(index.excluded_mask(exclude, len(prompts)))] = float("-inf")
    top = torch.topk(keys, k=min(n, keys.shape[1]), dim=1)
    return [[index.categories[c] for c, v in zip(cols, vals, strict=True) if v > float("-inf")]
            for cols, vals in zip(top.indices.tolist(), top.values.tolist(), strict=True)]


def answer_token_ids(tokenizer, yes: str = YES, no: str = NO) -> tuple[int, int]:
    """The first in-prompt token id of `` yes`` and of `` no`` after the R-LLM prompt's last word."""
    y, n = word_token_ids(tokenizer, [yes, no], context=RELEVANT_MARK)
    if not y or not n or y[0] == n[0] or tokenizer.unk_token_id in (y[0], n[0]):
        raise ValueError(f"{yes!r} and {no!r} must start with distinct known tokens, got ids {y} and {n}")
    return y[0], n[0]


def relevance_scores(model, tokenizer, prompts: Sequence[str], yes: str = YES, no: str = NO,
                     batch_size: int = 64) -> np.ndarray:
    """(P,) P(yes) normalised over {yes, no} at the next-token position: ``softmax([l_yes, l_no])[0]``."""
    unique, inverse = dedupe(prompts)
    cols = torch.tensor(answer_token_ids(tokenizer, yes, no))
    lp = _next_logprobs(model, encode_texts(tokenizer, unique), pad_token_id(tokenizer), cols, batch_size)  # (U, 2)
    return torch.softmax(lp.double(), dim=-1)[:, 0].numpy()[inverse]


def parse_categories(text: str, index: CategoryIndex, k: int) -> list[str]:
    """Valid distinct category names read left to right from generated text (each a category word)."""
    by_word = {category_text(c): c for c in index.categories}
    found: list[str] = []
    for word in text.split():
        name = by_word.get(word)
        if name is not None and name not in found:
            found.append(name)
            if len(found) == k:
                break
    return found


def generate_baseline(model, tokenizer, prompts: Sequence[str], index: CategoryIndex, k: int,
                      batch_size: int = 64) -> list[list[str]]:
    """Plain greedy ``model.generate`` then text parsing (the slow, unconstrained baseline for benchmarks).

    Generation is forced to the length of a K-name list (``min_new_tokens``), which is what producing K names
    by generation costs; an untrained or single-name model would otherwise stop at the first end token.
    """
    unique, inverse = dedupe(prompts)
    seqs, pad = encode_texts(tokenizer, unique), pad_token_id(tokenizer)
    found: list[list[str]] = []
    with _inference(model):
        for sl in _batches(len(seqs), batch_size):
            ids, mask, _ = left_pad(seqs[sl], pad, model_device(model))
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=k * index.max_len + 2,
                                 min_new_tokens=k * index.max_len, do_sample=False, pad_token_id=pad,
                                 eos_token_id=tokenizer.eos_token_id)
            texts = tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
            found += [parse_categories(t, index, k) for t in texts]
    return [list(found[i]) for i in inverse]
