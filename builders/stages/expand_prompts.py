"""Query expansion, pure parts: the prompt, parsing a reply, answer agreement, similarity to the seed."""
from __future__ import annotations

import re
from collections import Counter

from mathforge.builders.stages.tutor_prompts import (
    EMPTY,
    MALFORMED,
    MISSING_ANSWER,
    REFUSAL,
    TRUNCATED,
    Rejected,
    as_text,
    check_text,
    find_json_object,
    is_refusal,
    looks_like_json,
    never_raises,
)

from mathforge.verify.answers import strict_number
from mathforge.verify.equations import format_number
from mathforge.verify.grader import answer_classes, answer_of

MISSING_PROBLEM, MISSING_SOLUTION = "missing problem", "missing solution"
EXPAND_REASONS = (EMPTY, TRUNCATED, REFUSAL, MALFORMED, MISSING_PROBLEM, MISSING_SOLUTION, MISSING_ANSWER)

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


@never_raises
def parse_expansion(text: str | None, finish_reason: str | None = None) -> dict | Rejected:
    """{"problem", "solution", "answer"} from a query-expansion reply (JSON bare, fenced or in prose, or
    "Problem: ... Solution: ..." text), or Rejected(reason); never raises."""
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
    answer = answer_of(solution)
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


def agree(answers: list[str | None], n: int, kind: str = "auto") -> str | None:
    """The answer that at least n of the answers give, compared by the shared grader's equivalence ("1,000" ==
    "1000.0", "\\frac12" == "0.5"); numbers in canonical spelling. None when no class reaches n or two classes
    tie at the top."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    classes = answer_classes([a if isinstance(a, str) else None for a in answers], kind)
    if not classes or len(classes[0]) < n or (len(classes) > 1 and len(classes[1]) == len(classes[0])):
        return None
    answer = answers[classes[0][0]]
    value = strict_number(answer)
    return format_number(value) if value is not None else answer


def char_ngrams(text: str, n: int = 5) -> set[str]:
    """Character n-grams of a lowercased, whitespace-collapsed text; a shorter text is one gram."""
    text = " ".join(text.lower().split())
    return {text[i:i + n] for i in range(len(text) - n + 1)} if len(text) >= n else ({text} if text else set())


def jaccard(a: str, b: str, n: int = 5) -> float:
    """Jaccard similarity of the character n-gram sets of two texts (0 when both are empty)."""
    x, y = char_ngrams(a, n), char_ngrams(b, n)
    return len(x & y) / len(x | y) if x | y else 0.0


def similarity_summary(values: list[float], bins: int = 10) -> dict:
    """count, max, mean and a histogram (`bins` equal bins over [0, 1], keyed by their lower edge)."""
    histogram = Counter(min(int(v * bins), bins - 1) for v in values)
    return {"count": len(values), "max": round(max(values, default=0.0), 4),
            "mean": round(sum(values) / len(values), 4) if values else 0.0,
            "histogram": {f"{b / bins:.1f}": histogram[b] for b in range(bins)}}
