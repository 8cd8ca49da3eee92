"""The `expand` stage (query expansion): new problem-solution pairs from seeds, kept only on independent agreement."""
from __future__ import annotations

import hashlib
from collections import Counter

from mathforge.builders import prompts
from mathforge.builders.generation.runner import Doc, run_docs
from mathforge.builders.sources import Problem
from mathforge.builders.stages import expansion
from mathforge.builders.stages.base import BuildState
from mathforge.builders.stages.synthesis import Synthesis, as_sampling, replies
from mathforge.builders.stages.tutoring import Rejected, response_format

from mathforge.verify.grader import answer_of, is_correct

SOLVE_PROMPT = ('Solve step by step, one step per line, and end with a final line "#### <number>".\n\n'
                "{{ question }}")


class Expand(Synthesis):
    """A new problem + solution per sample; each new problem is solved `solutions` times and kept only when
    `agree` answers agree and the generated solution reaches that answer."""

    type = "expand"
    default_template = expansion.EXPAND_PROMPT

    def response_format(self) -> dict | None:
        return response_format(expansion.EXPAND_SCHEMA, "expansion")

    def accept(self, problems: list[Problem], got: dict, state: BuildState) -> tuple[list[dict], Counter, list]:
        """New problems from seeds; each is solved `solutions` times and kept only when `agree` answers agree."""
        outcomes = Counter()
        candidates = []
        for p in problems:
            for sample in got.get(p.problem_id, []):
                parsed = expansion.parse_expansion(sample["text"], sample["finish_reason"])
                if isinstance(parsed, Rejected):
                    outcomes[parsed.reason] += 1
                    continue
                new_id = hashlib.sha256(f"expand:{p.problem_id}:{parsed['problem']}".encode()).hexdigest()[:16]
                candidates.append((p, sample["sample_index"], new_id, parsed))
        if not candidates:
            return [], outcomes, []
        solve = as_sampling(self.spec, k=self.spec.solutions)
        docs = [Doc(new_id, p.index, new_id, prompts.render(SOLVE_PROMPT, {"question": parsed["problem"]}), None)
                for p, _, new_id, parsed in candidates]
        passes = run_docs(self.index, solve, docs, state.recipe, state.console, kind="expand-solve",
                          keys=[("stages", self.index, "model")])
        solved = replies(passes)
        rows = []
        for p, sample_index, new_id, parsed in candidates:
            answers = [answer_of(s["text"], p.answer_kind) for s in solved.get(new_id, [])]
            agreed = expansion.agree(answers, self.spec.agree, p.answer_kind)
            if agreed is None:
                outcomes["no agreement"] += 1
            elif not is_correct(parsed["solution"], agreed, p.answer_kind):
                outcomes["generator disagrees"] += 1
            else:
                outcomes["accepted"] += 1
                problem = Problem(p.index, new_id, parsed["problem"], parsed["solution"], p.answer_kind)
                rows.append({"problem": problem, "solution": parsed["solution"], "final_answer": agreed,
                             "reference_answer": agreed, "sample_index": sample_index,
                             "generation": {"seed_problem": p.problem_id, "solver_answers": answers,
                                            "agree": self.spec.agree}})
        return rows, outcomes, passes
