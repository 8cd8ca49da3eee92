"""maj@k, pass@k and distinct paths against hand computations."""
from __future__ import annotations

import pytest
from mathforge.eval.metrics import distinct_paths, maj_at_k, majority, pass_at_k


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 1, 1) == pytest.approx(1 / 4)            # 1 - 3/4
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)        # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)       # 1 - C(3,2)/C(5,2)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)    # 1 - C(7,5)/C(10,5)
    assert pass_at_k(3, 2, 2) == 1.0                              # n - c < k
    assert pass_at_k(100, 1, 100) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_majority_and_maj_at_k_by_hand():
    assert majority(["7", None, "8", "7"]) == "7"
    assert majority(["8", "7", "7", "8"]) == "8"  # tie: first seen wins
    assert majority([None, None]) is None
    answers = ["3", "5", "5", "3", "3"]
    assert maj_at_k(answers, "3", 1) and not maj_at_k(answers, "3", 3) and maj_at_k(answers, "3", 5)


def test_distinct_paths_by_hand():
    keys = ["a+b", "b+a", "a+b", None, "c"]
    assert distinct_paths(keys, [True, True, True, True, False]) == 2
    assert distinct_paths(keys, [False] * 5) == 0
