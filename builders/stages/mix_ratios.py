"""The CPT mix, pure part: text groups combined by ratio of tokens within an optional token budget."""
from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from fractions import Fraction


def mix(groups: dict[str, list[str]], ratio: dict[str, float] | None, token_budget: int | None,
        count_tokens: Callable[[str], int], seed: int, max_repeat: int = 1) -> tuple[list[tuple[str, str]], dict]:
    """A CPT mix of text groups by ratio of TOKENS, within an optional total token budget.

    Each group is shuffled (seeded), then whole documents are taken in that order while they fit the group's
    quota (ratio share of the total). With a budget, a group too small for its share is repeated — its shuffled
    documents again, in the same order — up to `max_repeat` passes (data-constrained scaling, Muennighoff et al.
    2023); only past that is the total less than the budget: every quota shrinks so the ratio holds, and the
    report names that group (`limited_by`). Without a budget each group is used at most once and the scarcest
    one bounds the total. `ratio=None` weighs the groups by their available tokens; groups left out of `ratio`
    get none. Returns ([(group, text)] in a seeded interleaved order, report with per-group `repeats`)."""
    weights = _weights(groups, ratio) if ratio is not None else None  # validated before counting tokens
    if token_budget is not None and token_budget < 0:
        raise ValueError(f"token_budget must be >= 0, got {token_budget}")
    repeat = _repeat(max_repeat, token_budget)
    names = sorted(groups)
    shuffled = {name: _shuffled(name, groups[name], count_tokens, seed) for name in names}
    available = {name: sum(tokens for _, tokens in shuffled[name]) for name in names}
    weights = weights if weights is not None else _natural_weights(available)
    total, limited_by = _total(weights, available, token_budget, repeat)
    quotas = {name: weights[name] * total for name in names}
    chosen = {name: _take(shuffled[name], quotas[name], repeat) for name in names}
    selected = [(name, text) for name in names for text, _ in chosen[name]]
    random.Random(f"{seed}:mix").shuffle(selected)
    if limited_by is not None and all(available[name] * repeat <= quotas[name] for name in names):
        limited_by = None  # every group used in full: nothing was held back
    report = _report(names, weights, shuffled, chosen, quotas, available, token_budget, limited_by, seed)
    return selected, {**report, "max_repeat": max_repeat}


def stream_needs(ratio: dict[str, float], available: dict[str, int], streamed: list[str], token_budget: int | None,
                 max_repeat: int) -> dict[str, Fraction]:
    """The most tokens each `streamed` group can contribute to the mix, given the other groups' `available`
    tokens and the budget: its weight times the largest total they allow (a streamed group may stop there)."""
    weights = _weights(dict.fromkeys([*available, *streamed]), ratio)
    repeat = _repeat(max_repeat, token_budget)
    bounds = [available[name] * repeat / weights[name] for name in available if weights[name] > 0]
    bounds += [Fraction(token_budget)] if token_budget is not None else []
    if not bounds:
        raise ValueError("without token_budget, a streamed group needs another group with a weight to bound the mix")
    return {name: weights[name] * min(bounds) for name in streamed}


def _repeat(max_repeat: int, token_budget: int | None) -> int:
    """Passes allowed over one group: `max_repeat` against a budget, one without."""
    if isinstance(max_repeat, bool) or not isinstance(max_repeat, int) or max_repeat < 1:
        raise ValueError(f"max_repeat must be an integer >= 1, got {max_repeat!r}")
    return max_repeat if token_budget is not None else 1


def _natural_weights(available: dict[str, int]) -> dict[str, Fraction]:
    """Weights proportional to each group's available tokens (equal when there are none)."""
    norm = sum(available.values())
    return {name: Fraction(tokens, norm) if norm else Fraction(1, len(available)) for name, tokens in available.items()}


def _weights(groups: dict[str, list[str]], ratio: dict[str, float]) -> dict[str, Fraction]:
    """Normalised exact weights per group, from the ratio."""
    unknown = sorted(set(ratio) - set(groups))
    if unknown:
        raise ValueError(f"ratio names unknown groups {unknown}; the groups are {sorted(groups)}")
    raw = {}
    for name in groups:
        value = ratio.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise ValueError(f"ratio for group {name!r} must be a finite number >= 0, got {value!r}")
        raw[name] = Fraction(value)
    norm = sum(raw.values())
    if norm == 0:
        raise ValueError("ratio gives every group a weight of 0")
    return {name: value / norm for name, value in raw.items()}


def _shuffled(name: str, texts: list[str], count_tokens: Callable[[str], int], seed: int) -> list[tuple[str, int]]:
    order = list(range(len(texts)))
    random.Random(f"{seed}:{name}").shuffle(order)
    out = []
    for i in order:
        tokens = count_tokens(texts[i])
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"count_tokens returned {tokens!r} for document {i} of group {name!r}")
        out.append((texts[i], tokens))
    return out


def _total(weights: dict[str, Fraction], available: dict[str, int],
           budget: int | None, repeat: int) -> tuple[Fraction, str | None]:
    """The mix's total tokens and the group that bounds it (None when the budget does)."""
    bounds = {name: available[name] * repeat / w for name, w in weights.items() if w > 0}
    limited_by = min(sorted(bounds), key=lambda name: bounds[name]) if bounds else None
    total = bounds[limited_by] if limited_by is not None else Fraction(0)
    if budget is not None and budget <= total:
        return Fraction(budget), None
    return total, limited_by


def _take(docs: list[tuple[str, int]], quota: Fraction, repeat: int) -> list[tuple[str, int]]:
    """Whole documents in order, over up to `repeat` passes, while they fit the quota."""
    taken, used = [], 0
    for text, tokens in itertools.chain.from_iterable(itertools.repeat(docs, repeat)):
        if used + tokens > quota:
            break
        taken.append((text, tokens))
        used += tokens
    return taken


def _report(names, weights, shuffled, chosen, quotas, available, budget, limited_by, seed) -> dict:
    tokens = {name: sum(t for _, t in chosen[name]) for name in names}
    total = sum(tokens.values())
    per_group = {name: {
        "documents": len(chosen[name]), "tokens": tokens[name], "target_tokens": float(quotas[name]),
        "target_ratio": float(weights[name]), "achieved_ratio": tokens[name] / total if total else 0.0,
        "available_documents": len(shuffled[name]), "available_tokens": available[name],
        "repeats": -(-len(chosen[name]) // len(shuffled[name])) if shuffled[name] else 0,
    } for name in names}
    return {"groups": per_group, "total_tokens": total, "target_tokens": float(sum(quotas.values())),
            "token_budget": budget, "limited_by": limited_by, "seed": seed}
