"""The `retrospect` stage (retrospective enhancement): solutions that go back to an earlier step, marked [back]."""
from __future__ import annotations

from collections import Counter

from mathforge.builders.sources import Problem
from mathforge.builders.stages import retrospect_prompts
from mathforge.builders.stages.base import BuildState
from mathforge.builders.stages.synthesis import Synthesis
from mathforge.builders.stages.tutor_prompts import Rejected

from mathforge.verify.grader import answer_of, is_correct, reference_answer


class Retrospect(Synthesis):
    """Keep solutions that make a real error, go [back] to fix it, and reach the gold answer."""

    type = "retrospect"
    default_template = retrospect_prompts.RETROSPECT_PROMPT

    def accept(self, problems: list[Problem], got: dict, state: BuildState) -> tuple[list[dict], Counter, list]:
        """Solutions with a [back] return, an equation before it that the calculator proves wrong (the error
        revisited, recorded in the row's `generation`), and a final answer that matches the gold."""
        rows, outcomes = [], Counter()
        for p in problems:
            gold = reference_answer(p.solution, p.answer_kind)
            for sample in got.get(p.problem_id, []):
                parsed = retrospect_prompts.parse_retrospective(sample["text"], sample["finish_reason"])
                error = None if isinstance(parsed, Rejected) else retrospect_prompts.error_before_back(parsed)
                if isinstance(parsed, Rejected):
                    outcomes[parsed.reason] += 1
                elif error is None:
                    outcomes[retrospect_prompts.NO_ERROR_BEFORE_BACK] += 1
                elif not is_correct(parsed, gold, p.answer_kind):
                    outcomes["wrong answer"] += 1
                else:
                    outcomes["accepted"] += 1
                    rows.append({"problem": p, "solution": parsed, "final_answer": answer_of(parsed, p.answer_kind),
                                 "sample_index": sample["sample_index"], "generation": {"error_before_back": error}})
        return rows, outcomes, []
