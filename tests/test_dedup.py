"""The farthest rule: hand-built cases and a property check against a literal transcription of the reference."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from reference import levenshtein

from mathforge.verify.dedup import DUPLICATE, NEW, REPLACED, FarthestSet


def _reference(paths: list[tuple[str, str]]) -> list[str]:
    kept, exist = [], []
    for key, text in paths:
        if key not in exist:
            kept.append(text)
            exist.append(key)
        else:
            slot = exist.index(key)
            now = kept[slot]
            now_score = sum(levenshtein(now, ref) for ref in kept if ref != now)
            if sum(levenshtein(text, ref) for ref in kept if ref != now) > now_score:
                kept[slot] = text
    return kept


def _ours(paths):
    fs = FarthestSet()
    for key, text in paths:
        fs.offer(key, text, text)
    return fs.items


def test_farthest_replacement():
    fs = FarthestSet()
    assert fs.offer("a", "x = 1", "first") == NEW
    assert fs.offer("b", "completely different words", "other") == NEW
    # same key, farther from the other kept path than the kept one: replaces it
    assert fs.offer("a", "x = 1 and many more characters here", "farther") == REPLACED
    assert fs.items == ["farther", "other"]
    # same key, closer: kept as is
    assert fs.offer("a", "x = 1", "closer") == DUPLICATE
    assert fs.items == ["farther", "other"]


def test_equal_scores_do_not_replace():
    fs = FarthestSet()
    fs.offer("a", "abc", "first")
    fs.offer("b", "xyz", "other")
    assert fs.offer("a", "abd", "tie") == DUPLICATE  # both at distance 3 from "xyz"
    assert fs.items == ["first", "other"]


def test_single_kept_path_is_never_replaced():
    fs = FarthestSet()
    fs.offer("", "no annotations here", 1)
    assert fs.offer("", "a much longer path without any annotations at all", 2) == DUPLICATE
    assert fs.items == [1]


def test_identical_text_is_a_duplicate_without_levenshtein():
    fs = FarthestSet()
    fs.offer("a", "same", 1)
    fs.offer("b", "other", 2)
    assert fs.offer("a", "same", 3) == DUPLICATE
    assert fs.levenshtein_calls == 0


def _key(text: str) -> str:
    return "".join(c for c in text if c in "=<")[:3]  # like an equation key: a function of the text


paths = st.lists(st.text(alphabet="ab c=<", max_size=12).map(lambda t: (_key(t), t)), max_size=25)


@settings(max_examples=300, deadline=None)
@given(paths)
def test_matches_reference_transcription(paths):
    assert _ours(paths) == _reference(paths)


@settings(max_examples=200, deadline=None)
@given(paths)
def test_invariants(paths):
    fs = FarthestSet()
    for key, text in paths:
        fs.offer(key, text, (key, text))
    keys = [key for key, _ in fs.items]
    assert len(keys) == len(set(keys)) == len({k for k, _ in paths})  # one kept path per distinct key
    assert keys == list(dict.fromkeys(k for k, _ in paths))           # in first-seen order
    assert all(item in paths for item in fs.items)                   # every kept path was offered
    assert all(fs.slots[key] == i for i, key in enumerate(keys))
