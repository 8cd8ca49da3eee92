"""maj@k, pass@k, distinct paths and standard errors against hand computations."""
from __future__ import annotations

import pytest
from mathforge.eval.metrics import binomial_se, distinct_paths, maj_at_k, majority, mean_se, pass_at_k


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


def test_standard_errors_by_hand():
    assert binomial_se(0.5, 4) == pytest.approx(0.25)               # sqrt(0.25 / 4)
    assert binomial_se(0.2, 100) == pytest.approx(0.04)             # sqrt(0.16 / 100)
    assert binomial_se(1.0, 10) == 0.0 and binomial_se(0.3, 0) == 0.0
    # mean 0.5, deviations +-0.5 -> standard deviation 0.5, over sqrt(4)
    assert mean_se([1, 0, 1, 0]) == pytest.approx(0.25)
    # values 1, 0.5, 5/6, 0.5: mean 17/24, squared deviations sum to 3/16 -> sqrt(3/64) / 2
    assert mean_se([1, 0.5, 5 / 6, 0.5]) == pytest.approx((3 / 64) ** 0.5 / 2)
    assert mean_se([0.7] * 5) == 0.0 and mean_se([]) == 0.0
    values = [1, 1, 0, 1, 0, 0, 0, 1, 1, 1]                          # 0/1 values: the binomial form
    assert mean_se(values) == pytest.approx(binomial_se(0.6, 10))
