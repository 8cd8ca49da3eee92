"""Sampling metrics: unbiased pass@k, majority-vote maj@k, distinct reasoning paths, and their standard errors."""
from __future__ import annotations

from collections import Counter
from math import comb, sqrt
from typing import Hashable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k) for n samples of which c are correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority(answers: Sequence[Hashable | None]) -> Hashable | None:
    """The most common non-None answer; ties go to the answer seen first (deterministic)."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def maj_at_k(answers: Sequence[Hashable | None], gold: Hashable, k: int) -> bool:
    """maj1@k: the majority answer of the first k samples equals the gold."""
    return majority(list(answers[:k])) == gold


def distinct_paths(keys: Sequence[str | None], correct: Sequence[bool]) -> int:
    """Distinct reasoning paths among the correct samples: distinct equation keys (the builder's key)."""
    return len({key for key, ok in zip(keys, correct) if ok and key is not None})


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy p measured on n questions: sqrt(p (1 - p) / n) (0 without questions)."""
    return sqrt(p * (1 - p) / n) if n else 0.0


def mean_se(values: Sequence[float]) -> float:
    """Standard error of a mean over questions: the standard deviation of the per-question values (population
    form, so on 0/1 values it is exactly `binomial_se`) over sqrt(n); 0 without questions."""
    n = len(values)
    if not n:
        return 0.0
    mean = sum(values) / n
    return sqrt(sum((v - mean) ** 2 for v in values) / n) / sqrt(n)
