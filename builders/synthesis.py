"""The MathGPT paper's sibling synthesis methods, pure parts: query expansion, retrospective solutions, and the CPT mix."""
from __future__ import annotations

import random
import re
from collections.abc import Callable
from fractions import Fraction

from builders.equations import format_number
from builders.tutoring import (
    EMPTY,
    MALFORMED,
    MAX_CHARS,
    REFUSAL,
    TRUNCATED,
    Rejected,
    as_text,
    check_text,
    find_json_object,
    is_refusal,
    looks_like_json,
    unfence,
)
from eval.answers import gsm8k_extract, strict_number

MISSING_PROBLEM, MISSING_SOLUTION, MISSING_ANSWER = "missing problem", "missing solution", "missing answer"
NO_BACK_MARKER, TOO_LONG = "no [back] marker", "too long"
EXPAND_REASONS = (EMPTY, TRUNCATED, REFUSAL, MALFORMED, MISSING_PROBLEM, MISSING_SOLUTION, MISSING_ANSWER)
RETROSPECT_REASONS = (EMPTY, TRUNCATED, REFUSAL, TOO_LONG, NO_BACK_MARKER, MISSING_ANSWER)

BACK = "[back]"

# ------------------------------------------------------------------------------------ query expansion

EXPAND_PROMPT = """You write new math word problems for students.

Here is a seed problem and its solution:

Problem:
{{ question }}

Solution:
{{ solution }}

Write ONE NEW problem that is related to the seed problem (same topic and skills, similar or slightly higher \
difficulty) but is not a copy of it: change the situation, the numbers and, where it makes sense, what is asked. \
The new problem must have a single numeric answer. Then solve it step by step, one step per line, and end the \
solution with a final line "#### <number>" that gives the final numeric answer.

Reply ONLY with a JSON object, no other text:
{"problem": "the new problem", "solution": "its step-by-step solution ending with #### <number>"}
"""

EXPAND_SCHEMA: dict = {
    "type": "object",
    "properties": {"problem": {"type": "string"}, "solution": {"type": "string"}},
    "required": ["problem", "solution"],
    "additionalProperties": False,
}

_PROBLEM_RE = re.compile(r"(?im)^[ \t>#*_-]*(?:new[ \t]+)?(?:problem|question)[ \t*_\"']*[:=][ \t*_]*")
_SOLUTION_RE = re.compile(r"(?im)^[ \t>#*_-]*(?:solution|answer)[ \t*_\"']*[:=][ \t*_]*")


def parse_expansion(text: str | None, finish_reason: str | None = None) -> dict | Rejected:
    """{"problem", "solution", "answer"} from a query-expansion reply (JSON bare, fenced or in prose, or
    "Problem: ... Solution: ..." text), or Rejected(reason); never raises."""
    try:
        return _parse_expansion(text, finish_reason)
    except Exception:  # noqa: BLE001 - hostile model output must never crash a build
        return Rejected(MALFORMED)


def _parse_expansion(text: object, finish_reason: str | None) -> dict | Rejected:
    text = check_text(text, finish_reason)
    if isinstance(text, Rejected):
        return text
    obj = find_json_object(text, ("problem", "solution"))
    if obj is not None:
        problem, solution = as_text(obj.get("problem")), as_text(obj.get("solution"))
    elif looks_like_json(text):
        return Rejected(MALFORMED)
    else:
        problem, solution = _expansion_text_fields(text)
        if problem is None and solution is None:
            return Rejected(REFUSAL if is_refusal(text) else MALFORMED)
    if problem is None:
        return Rejected(MISSING_PROBLEM)
    if solution is None:
        return Rejected(MISSING_SOLUTION)
    answer = gsm8k_extract(solution)
    if answer is None:
        return Rejected(MISSING_ANSWER)
    return {"problem": problem, "solution": solution, "answer": answer}


def _expansion_text_fields(text: str) -> tuple[str | None, str | None]:
    """(problem, solution) from "Problem: ...\\nSolution: ..." text."""
    problem_label = _PROBLEM_RE.search(text)
    solution_label = _SOLUTION_RE.search(text, problem_label.end() if problem_label else 0)
    problem = solution = None
    if problem_label:
        end = solution_label.start() if solution_label else len(text)
        problem = as_text(text[problem_label.end(): end])
    if solution_label:
        solution = as_text(text[solution_label.end():])
    return problem, solution


def agree(answers: list[str | None], n: int) -> str | None:
    """The answer (canonical spelling) that at least n of the answers give, compared as exact numbers after
    strict_number ("1,000" == "1000.0"); None when no value reaches n or two values tie at the top."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    counts: dict[Fraction, int] = {}
    for answer in answers:
        value = strict_number(answer) if isinstance(answer, str) else None
        if value is not None:
            counts[value] = counts.get(value, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    if not ranked or ranked[0][1] < n or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
        return None
    return format_number(ranked[0][0])


# ----------------------------------------------------------------------------- retrospective solutions

RETROSPECT_PROMPT = """You are a careful math student who checks their own work.

Problem:
{{ question }}

A correct solution:
{{ solution }}

Write a new step-by-step solution to the problem, one step per line, that reasons the way a careful solver \
does: at least once, after a step, go back to an earlier step to re-check it or to fix a mistake found in it, and \
then continue from there. Mark every such return with the token [back] at the start of the line where you go \
back, and say which step you revisit and why. The solution must reach the correct answer and end with a final \
line "#### <number>" that gives the final numeric answer.

Reply with the solution only, no other text.
"""

_BACK_RE = re.compile(r"\[\s*back\s*\]", re.IGNORECASE)


def parse_retrospective(text: str | None, finish_reason: str | None = None) -> str | Rejected:
    """The retrospective solution (fences stripped, `[back]` markers normalised), or Rejected(reason):
    it needs at least one `[back]` and a `#### n` final answer. Never raises."""
    try:
        return _parse_retrospective(text, finish_reason)
    except Exception:  # noqa: BLE001 - hostile model output must never crash a build
        return Rejected(MALFORMED)


def _parse_retrospective(text: object, finish_reason: str | None) -> str | Rejected:
    checked = check_text(text, finish_reason)
    if isinstance(checked, Rejected):
        return checked
    if len(text) > MAX_CHARS:
        return Rejected(TOO_LONG)
    solution = unfence(text)
    has_back, answer = bool(_BACK_RE.search(solution)), gsm8k_extract(solution)
    if not has_back and answer is None and is_refusal(solution):
        return Rejected(REFUSAL)
    if not has_back:
        return Rejected(NO_BACK_MARKER)
    if answer is None:
        return Rejected(MISSING_ANSWER)
    return _BACK_RE.sub(BACK, solution)


# ---------------------------------------------------------------------------------------- the CPT mix

def mix(groups: dict[str, list[str]], ratio: dict[str, float] | None, token_budget: int | None,
        count_tokens: Callable[[str], int], seed: int) -> tuple[list[tuple[str, str]], dict]:
    """A CPT mix of text groups by ratio of TOKENS, within an optional total token budget.

    Each group is shuffled (seeded), then whole documents are taken in that order while they fit the group's
    quota (ratio share of the total). The total is the budget, or less when a group has too few tokens to fill
    its share: then every quota shrinks so the ratio holds, and the report names that group (`limited_by`).
    `ratio=None` weighs the groups by their available tokens; groups left out of `ratio` get none.
    Returns ([(group, text)] in a seeded interleaved order, report)."""
    weights = _weights(groups, ratio) if ratio is not None else None  # validated before counting tokens
    if token_budget is not None and token_budget < 0:
        raise ValueError(f"token_budget must be >= 0, got {token_budget}")
    names = sorted(groups)
    shuffled = {name: _shuffled(name, groups[name], count_tokens, seed) for name in names}
    available = {name: sum(tokens for _, tokens in shuffled[name]) for name in names}
    weights = weights if weights is not None else _natural_weights(available)
    total, limited_by = _total(weights, available, token_budget)
    quotas = {name: weights[name] * total for name in names}
    chosen = {name: _take(shuffled[name], quotas[name]) for name in names}
    selected = [(name, text) for name in names for text, _ in chosen[name]]
    random.Random(f"{seed}:mix").shuffle(selected)
    if limited_by is not None and all(available[name] <= quotas[name] for name in names):
        limited_by = None  # every group used in full: nothing was held back
    return selected, _report(names, weights, shuffled, chosen, quotas, available, token_budget, limited_by, seed)


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
           budget: int | None) -> tuple[Fraction, str | None]:
    """The mix's total tokens and the group that bounds it (None when the budget does)."""
    bounds = {name: available[name] / w for name, w in weights.items() if w > 0}
    limited_by = min(sorted(bounds), key=lambda name: bounds[name]) if bounds else None
    total = bounds[limited_by] if limited_by is not None else Fraction(0)
    if budget is not None and budget <= total:
        return Fraction(budget), None
    return total, limited_by


def _take(docs: list[tuple[str, int]], quota: Fraction) -> list[tuple[str, int]]:
    """Whole documents in order while they fit the quota."""
    taken, used = [], 0
    for text, tokens in docs:
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
    } for name in names}
    return {"groups": per_group, "total_tokens": total, "target_tokens": float(sum(quotas.values())),
            "token_budget": budget, "limited_by": limited_by, "seed": seed}
