"""Query expansion, pure parts: the prompt, parsing a generated problem and solution, answer agreement."""
from __future__ import annotations

import re
from fractions import Fraction

from mathforge.builders.stages.tutoring import (
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

from mathforge.verify.answers import gsm8k_extract, strict_number
from mathforge.verify.equations import format_number

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
