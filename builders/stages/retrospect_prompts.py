"""Retrospective enhancement, pure parts: the prompt and parsing a solution that returns to an earlier step ([back])."""
from __future__ import annotations

import re

from mathforge.builders.stages.tutor_prompts import (
    EMPTY,
    MAX_CHARS,
    MISSING_ANSWER,
    REFUSAL,
    TRUNCATED,
    Rejected,
    check_text,
    is_refusal,
    never_raises,
    unfence,
)

from mathforge.verify.equations import first_proven_error
from mathforge.verify.grader import answer_of

NO_BACK_MARKER, TOO_LONG = "no [back] marker", "too long"
RETROSPECT_REASONS = (EMPTY, TRUNCATED, REFUSAL, TOO_LONG, NO_BACK_MARKER, MISSING_ANSWER)
NO_ERROR_BEFORE_BACK = "no error before [back]"  # the stage's check of a parsed solution (error_before_back)

BACK = "[back]"

RETROSPECT_PROMPT = """You are a careful math student who checks their own work.

Problem:
{{ question }}

A correct solution:
{{ solution }}

Write a new step-by-step solution to the problem, one step per line, the way a solver who catches their own \
mistake writes it:
1. Solve step by step, and in one of the steps make a real, visible calculation mistake: write the calculation \
out with its wrong result, for example "4*5 = 21".
2. On the next line write the token [back], say which step you go back to and what is wrong in it, for example \
"[back] Step 2 is wrong: 4*5 = 20, not 21."
3. Continue from the corrected step with the right numbers to the correct answer.
Every calculation other than the one mistake must be right. End with a final line "#### <number>" that gives the \
final numeric answer.

Reply with the solution only, no other text.
"""

_BACK_RE = re.compile(r"\[\s*back\s*\]", re.IGNORECASE)


@never_raises
def parse_retrospective(text: str | None, finish_reason: str | None = None) -> str | Rejected:
    """The retrospective solution (fences stripped, `[back]` markers normalised), or Rejected(reason):
    it needs at least one `[back]` and a `#### n` final answer. Never raises."""
    checked = check_text(text, finish_reason)
    if isinstance(checked, Rejected):
        return checked
    if len(text) > MAX_CHARS:
        return Rejected(TOO_LONG)
    solution = unfence(text)
    has_back, answer = bool(_BACK_RE.search(solution)), answer_of(solution)
    if not has_back and answer is None and is_refusal(solution):
        return Rejected(REFUSAL)
    if not has_back:
        return Rejected(NO_BACK_MARKER)
    if answer is None:
        return Rejected(MISSING_ANSWER)
    return _BACK_RE.sub(BACK, solution)


def proven_wrong(equation: str) -> bool:
    """The calculator proves the equation wrong: an equality whose two sides it evaluates exactly, and they differ
    (an equation it cannot read, `x = 5`, `3+4 = x`, is not a proven error)."""
    return first_proven_error(equation) is not None


def error_before_back(solution: str) -> str | None:
    """The first equation before the first `[back]` that the calculator proves wrong (the error the solution goes
    back to fix), as written, or None when the text before it has no such equation."""
    return first_proven_error(_BACK_RE.split(solution, 1)[0])
