"""The grading benchmark's data files are well formed (checks nothing about the grader's quality)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

GRADING = Path(__file__).resolve().parents[1] / "benchmarks" / "grading"
ALL_WRONG = {"near_miss", "unparseable"}  # categories whose pairs are all labelled not equivalent
FIELDS = {"id": str, "category": str, "gold": str, "pred": str, "equivalent": bool, "note": str}


def read_jsonl(name: str) -> list[dict]:
    with (GRADING / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def pairs() -> list[dict]:
    return read_jsonl("pairs.jsonl")


def test_pairs_have_the_fields_and_types(pairs):
    for pair in pairs:
        assert set(pair) == set(FIELDS), pair.get("id")
        assert all(isinstance(pair[k], t) for k, t in FIELDS.items()), pair["id"]
        assert pair["id"] and pair["category"] and pair["gold"].strip() and pair["note"], pair["id"]


def test_pair_ids_unique_and_enough_pairs(pairs):
    ids = [p["id"] for p in pairs]
    assert len(ids) == len(set(ids))
    assert len(pairs) >= 450


def test_no_duplicate_gold_pred(pairs):
    keys = Counter((p["gold"], p["pred"]) for p in pairs)
    assert [k for k, n in keys.items() if n > 1] == []


def test_categories_big_enough_with_both_labels(pairs):
    labels: dict[str, Counter] = {}
    for p in pairs:
        labels.setdefault(p["category"], Counter())[p["equivalent"]] += 1
    assert len(labels) >= 10
    for category, counts in labels.items():
        assert sum(counts.values()) >= 25, category
        if category not in ALL_WRONG:
            assert counts[True] and counts[False], category


@pytest.mark.parametrize("category", sorted(ALL_WRONG))
def test_near_misses_and_unparseables_all_labelled_wrong(pairs, category):
    members = [p for p in pairs if p["category"] == category]
    assert len(members) >= 25
    assert [p["id"] for p in members if p["equivalent"]] == []


def test_mathverify_cases_extracted():
    cases = read_jsonl("mathverify_cases.jsonl")
    assert len(cases) >= 100
    for case in cases:
        assert isinstance(case["gold"], str) and isinstance(case["pred"], str), case
        assert isinstance(case["expected"], bool) and case["source"].startswith("math-verify 0.9.0 "), case
    assert (GRADING / "LICENSE-math-verify.txt").is_file()
