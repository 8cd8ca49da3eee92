"""Equation-level dedup with the RFT paper's "farthest" rule, one problem at a time."""
from __future__ import annotations

from rapidfuzz.distance import Levenshtein

NEW, REPLACED, DUPLICATE = "new", "replaced", "duplicate"


class FarthestSet:
    """Kept paths of one problem, one per equation key; a newcomer with a known key replaces the kept path
    when its summed Levenshtein distance to the other kept paths is strictly larger (reference `.v2.farest`).

    Texts are interned per problem and pairwise distances memoized, so identical samples cost one dict lookup."""

    __slots__ = ("slots", "items", "_tids", "_ids", "_texts", "_dist", "levenshtein_calls")

    def __init__(self) -> None:
        self.slots: dict[str, int] = {}
        self.items: list[object] = []
        self._tids: list[int] = []          # text id of the kept path in each slot
        self._ids: dict[str, int] = {}      # text -> text id
        self._texts: list[str] = []         # text id -> text
        self._dist: dict[int, int] = {}
        self.levenshtein_calls = 0

    def offer(self, key: str, text: str, item: object) -> str:
        """Offer one verified path; returns NEW, REPLACED or DUPLICATE."""
        tid = self._ids.get(text)
        if tid is None:
            tid = self._ids[text] = len(self._texts)
            self._texts.append(text)
        slot = self.slots.get(key)
        if slot is None:
            self.slots[key] = len(self.items)
            self.items.append(item)
            self._tids.append(tid)
            return NEW
        kept = self._tids[slot]
        if tid == kept or len(self.items) == 1:
            return DUPLICATE  # equal texts (or no other paths) score equally: no replacement
        others = [t for i, t in enumerate(self._tids) if i != slot]
        if self._score(tid, others) > self._score(kept, others):
            self.items[slot], self._tids[slot] = item, tid
            return REPLACED
        return DUPLICATE

    def _score(self, tid: int, others: list[int]) -> int:
        return sum(self._distance(tid, other) for other in others)

    def _distance(self, a: int, b: int) -> int:
        pair = (a << 32) | b if a < b else (b << 32) | a
        cached = self._dist.get(pair)
        if cached is None:
            cached = self._dist[pair] = Levenshtein.distance(self._texts[a], self._texts[b])
            self.levenshtein_calls += 1
        return cached
