"""The `diversify` stage (response diversification): more correct solutions per problem, each with new equations."""
from __future__ import annotations

from collections import Counter

from mathforge.builders.sources import Problem
from mathforge.builders.stages.base import BuildState
from mathforge.builders.stages.synthesis import Synthesis

from mathforge.verify.equations import reasoning_key
from mathforge.verify.grader import answer_of, is_correct, reference_answer

DIVERSIFY_PROMPT = """Solve the following math problem step by step, one step per line, in a way that differs \
from the reference solution (another order, other intermediate quantities, or another method). End with a final \
line "#### <number>".

Problem:
{{ question }}

Reference solution:
{{ solution }}

Your different solution:
"""


class Diversify(Synthesis):
    """Keep a correct sample only when its reasoning (canonical equation list, or text) is new for the problem."""

    type = "diversify"
    default_template = DIVERSIFY_PROMPT

    def accept(self, problems: list[Problem], got: dict, state: BuildState) -> tuple[list[dict], Counter, list]:
        """Correct samples whose reasoning key (`equations.reasoning_key`) is new for the problem."""
        rows, outcomes = [], Counter()
        for p in problems:
            gold = reference_answer(p.solution, p.answer_kind)
            seen = {reasoning_key(p.solution)}
            for sample in got.get(p.problem_id, []):
                if sample["finish_reason"] == "length":
                    outcomes["truncated"] += 1
                elif not is_correct(sample["text"], gold, p.answer_kind):
                    outcomes["wrong answer"] += 1
                elif (key := reasoning_key(sample["text"])) in seen:
                    outcomes["duplicate reasoning"] += 1
                else:
                    seen.add(key)
                    outcomes["accepted"] += 1
                    rows.append({"problem": p, "solution": sample["text"],
                                 "final_answer": answer_of(sample["text"], p.answer_kind),
                                 "sample_index": sample["sample_index"]})
        return rows, outcomes, []
