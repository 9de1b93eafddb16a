"""Category vocabulary for the sequence encoder: 0 = padding, 1 = rare/unknown, then categories.

With ``item_input`` it also holds the items the encoder reads (index 0 = unknown item, then the kept items), and an
event is one integer code ``item_index * size + category_token`` (:meth:`CategoryVocab.codes`): 0 is still padding,
and a code below ``size`` is a category token with an unknown item, so a category-only sequence is its own code."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from coea.utils import write_json_atomic

PAD, UNK = 0, 1


@dataclass(frozen=True)
class CategoryVocab:
    """Token ids of categories; categories below the support threshold map to ``UNK``."""

    categories: tuple[str, ...]  # token id = position + 2
    items: tuple[str, ...] = ()  # the items read as input (item_input); index = position + 1, 0 = unknown

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], min_support: int,
                    item_counts: Mapping[str, int] | None = None, min_item_support: int = 1) -> CategoryVocab:
        kept = sorted(c for c, n in counts.items() if n >= min_support)
        items = sorted(str(i) for i, n in (item_counts or {}).items() if n >= min_item_support)
        return cls(tuple(kept), tuple(items))

    @property
    def size(self) -> int:
        return len(self.categories) + 2

    def ids(self, cats: Sequence[str]) -> list[int]:
        index = self._index
        return [index.get(c, UNK) for c in cats]

    @functools.cached_property  # computed once per vocab (a frozen dataclass still has an instance __dict__)
    def _index(self) -> dict[str, int]:
        return {c: i + 2 for i, c in enumerate(self.categories)}

    @functools.cached_property
    def _item_index(self) -> dict[str, int]:
        return {it: i + 1 for i, it in enumerate(self.items)}

    def token(self, category: str) -> int:
        return self._index.get(category, UNK)

    def codes(self, cats: Sequence[str], items: Sequence[str]) -> list[int]:
        """One code per event: ``item_index * size + category_token`` (module doc); unknown items index 0."""
        index, size = self._item_index, self.size
        return [index.get(str(it), 0) * size + t for it, t in zip(items, self.ids(cats), strict=True)]

    def save(self, path: Path) -> None:
        body = {"pad": PAD, "unk": UNK, "categories": list(self.categories)}
        write_json_atomic(path, body | ({"items": list(self.items)} if self.items else {}))

    @classmethod
    def load(cls, path: Path) -> CategoryVocab:
        body = json.loads(Path(path).read_text())
        return cls(tuple(body["categories"]), tuple(body.get("items", ())))
