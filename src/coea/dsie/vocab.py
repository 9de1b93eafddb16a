"""Category vocabulary for the sequence encoder: 0 = padding, 1 = rare/unknown, then categories."""

from __future__ import annotations

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

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], min_support: int) -> CategoryVocab:
        kept = sorted(c for c, n in counts.items() if n >= min_support)
        return cls(tuple(kept))

    @property
    def size(self) -> int:
        return len(self.categories) + 2

    def ids(self, cats: Sequence[str]) -> list[int]:
        index = self._index
        return [index.get(c, UNK) for c in cats]

    @property
    def _index(self) -> dict[str, int]:
        cache = self.__dict__.get("_cache")
        if cache is None:
            cache = {c: i + 2 for i, c in enumerate(self.categories)}
            object.__setattr__(self, "_cache", cache)
        return cache

    def token(self, category: str) -> int:
        return self._index.get(category, UNK)

    def save(self, path: Path) -> None:
        write_json_atomic(path, {"pad": PAD, "unk": UNK, "categories": list(self.categories)})

    @classmethod
    def load(cls, path: Path) -> CategoryVocab:
        return cls(tuple(json.loads(Path(path).read_text())["categories"]))
