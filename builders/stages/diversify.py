"""The `diversify` stage (response diversification): more correct solutions per problem, each with new reasoning."""
from __future__ import annotations

from collections import Counter

from mathforge.builders import prompts
from mathforge.builders.sources import Problem
from mathforge.builders.stages.base import BuildState
from mathforge.builders.stages.synthesis import Synthesis
from rapidfuzz.distance import Levenshtein

from mathforge.verify.equations import reasoning_key
from mathforge.verify.grader import answer_of, is_correct, reference_answer

DIVERSIFY_PROMPT = """Solve the following math problem on your own, step by step, one step per line, in a way that \
differs from the most obvious approach where you can (another order, other intermediate quantities, or another \
method). End with a final line "#### <number>".

Problem:
{{ question }}

Your solution:
"""

REFERENCE_PROMPT = """Solve the following math problem step by step, one step per line, in a way that differs \
from the reference solution (another order, other intermediate quantities, or another method). End with a final \
line "#### <number>".

Problem:
{{ question }}

Reference solution:
{{ solution }}

Your different solution:
"""

_SENTINEL = "\x00reference-solution\x00"


def shows_reference(template: str) -> bool:
    """Does the template put the seed problem's gold solution into the prompt?"""
    return _SENTINEL in prompts.render(template, {"question": "Q", "problem_id": "p", "index": 0,
                                                  "solution": _SENTINEL})


def too_close(text: str, kept: list[str], min_distance: float) -> bool:
    """Is the text within `min_distance` (normalized Levenshtein) of any kept solution?"""
    return any(Levenshtein.normalized_distance(text, other) < min_distance for other in kept)


class Diversify(Synthesis):
    """Keep a correct sample only when its reasoning (canonical equation list, or text) is new for the problem and
    its text is at least `min_distance` from every solution already kept (gold included)."""

    type = "diversify"
    default_template = DIVERSIFY_PROMPT

    def template(self) -> str:
        return self.spec.template or (REFERENCE_PROMPT if self.spec.show_reference else DIVERSIFY_PROMPT)

    def outcome(self, sample: dict, p: Problem, gold: str | None, seen: set, kept: list[str]) -> str:
        """The verdict on one sample given the reasoning keys and texts kept so far for its problem."""
        if sample["finish_reason"] == "length":
            return "truncated"
        if not is_correct(sample["text"], gold, p.answer_kind):
            return "wrong answer"
        if reasoning_key(sample["text"]) in seen:
            return "duplicate reasoning"
        if too_close(sample["text"], kept, self.spec.min_distance):
            return "too similar"
        return "accepted"

    def accept(self, problems: list[Problem], got: dict, state: BuildState) -> tuple[list[dict], Counter, list]:
        """Correct samples whose reasoning key (`equations.reasoning_key`) is new and whose text is far enough."""
        rows, outcomes = [], Counter()
        generation = {"reference_shown": shows_reference(self.template()), "min_distance": self.spec.min_distance}
        for p in problems:
            gold = reference_answer(p.solution, p.answer_kind)
            seen, kept = {reasoning_key(p.solution)}, [p.solution]
            for sample in got.get(p.problem_id, []):
                verdict = self.outcome(sample, p, gold, seen, kept)
                outcomes[verdict] += 1
                if verdict == "accepted":
                    seen.add(reasoning_key(sample["text"]))
                    kept.append(sample["text"])
                    rows.append({"problem": p, "solution": sample["text"],
                                 "final_answer": answer_of(sample["text"], p.answer_kind),
                                 "sample_index": sample["sample_index"], "generation": dict(generation)})
        return rows, outcomes, []
