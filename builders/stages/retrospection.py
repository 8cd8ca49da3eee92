"""Retrospective enhancement, pure parts: the prompt and parsing a solution that returns to an earlier step ([back])."""
from __future__ import annotations

import re

from mathforge.builders.stages.tutoring import (
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

from mathforge.verify.grader import answer_of

NO_BACK_MARKER, TOO_LONG = "no [back] marker", "too long"
RETROSPECT_REASONS = (EMPTY, TRUNCATED, REFUSAL, TOO_LONG, NO_BACK_MARKER, MISSING_ANSWER)

BACK = "[back]"

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
