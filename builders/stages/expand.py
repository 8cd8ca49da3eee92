"""The `expand` stage (query expansion): new problem-solution pairs from seeds, kept only on independent agreement."""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from mathforge.builders import prompts
from mathforge.builders.generation.runner import Doc, run_docs
from mathforge.builders.sources import Problem
from mathforge.builders.stages import expand_prompts
from mathforge.builders.stages.base import BuildState
from mathforge.builders.stages.decontaminate import contaminated, load_eval_texts
from mathforge.builders.stages.synthesis import Synthesis, as_sampling, replies
from mathforge.builders.stages.tutor_prompts import Rejected, response_format

from mathforge.verify.grader import answer_of, is_correct

SOLVE_PROMPT = ('Solve step by step, one step per line, and end with a final line "#### <number>".\n\n'
                "{{ question }}")


@dataclass
class Candidate:
    """A parsed new problem and solution from one writer sample of a seed problem."""

    seed: Problem
    sample_index: int
    problem_id: str
    problem: str
    solution: str
    similarity: float  # character 5-gram Jaccard with the seed question


def benchmark_flags(candidates: list[Candidate], state: BuildState) -> list[bool]:
    """Per candidate: does its problem or solution share a word n-gram with a declared evaluation set (the
    decontaminate step's rule and `n`)? All False when the recipe declares none."""
    spec = state.recipe.decontaminate
    if spec is None or not candidates:
        return [False] * len(candidates)
    texts = [text for eval_set in spec.eval_sets for text in load_eval_texts(eval_set)]
    columns = {"question": [c.problem for c in candidates], "solution": [c.solution for c in candidates]}
    return contaminated(columns, texts, spec.n)


class Expand(Synthesis):
    """A new problem + solution per sample; a new problem too close to its seed or overlapping an evaluation set
    is dropped before it is solved; the rest are solved `solutions` times (by `solver`, default `model`) and kept
    only when `agree` answers agree and the generated solution reaches that answer."""

    type = "expand"
    default_template = expand_prompts.EXPAND_PROMPT

    def response_format(self) -> dict | None:
        return response_format(expand_prompts.EXPAND_SCHEMA, "expansion")

    def models(self) -> list[tuple]:
        solver = [(self.spec.solver, ("stages", self.index, "solver"))] if self.spec.solver else []
        return super().models() + solver

    def plan(self, state: BuildState) -> list[str]:
        solver = self.spec.solver or self.spec.model
        return [f"{line}, solved by {solver.label}" for line in super().plan(state)]

    def candidates(self, problems: list[Problem], got: dict, outcomes: Counter) -> list[Candidate]:
        """Every parsed writer reply as a candidate; unparseable replies are counted by their reason."""
        out = []
        for p in problems:
            for sample in got.get(p.problem_id, []):
                parsed = expand_prompts.parse_expansion(sample["text"], sample["finish_reason"])
                if isinstance(parsed, Rejected):
                    outcomes[parsed.reason] += 1
                    continue
                new_id = hashlib.sha256(f"expand:{p.problem_id}:{parsed['problem']}".encode()).hexdigest()[:16]
                out.append(Candidate(p, sample["sample_index"], new_id, parsed["problem"], parsed["solution"],
                                     expand_prompts.jaccard(parsed["problem"], p.question)))
        return out

    def screen(self, candidates: list[Candidate], outcomes: Counter, state: BuildState) -> list[Candidate]:
        """The candidates worth solving: not too close to their seed, not overlapping an evaluation set."""
        close = [c.similarity > self.spec.max_seed_similarity for c in candidates]
        outcomes["too close to seed"] += sum(close)
        rest = [c for c, flag in zip(candidates, close) if not flag]
        leaked = benchmark_flags(rest, state)
        outcomes["benchmark overlap"] += sum(leaked)
        return [c for c, flag in zip(rest, leaked) if not flag]

    def solve(self, candidates: list[Candidate], state: BuildState) -> tuple[dict, list]:
        """(new problem id -> solver samples, the solver's passes)."""
        solve = as_sampling(self.spec, k=self.spec.solutions, model=self.spec.solver)
        docs = [Doc(c.problem_id, c.seed.index, c.problem_id, prompts.render(SOLVE_PROMPT, {"question": c.problem}),
                    None) for c in candidates]
        key = ("stages", self.index, "solver" if self.spec.solver else "model")
        passes = run_docs(self.index, solve, docs, state.recipe, state.console, kind="expand-solve", keys=[key])
        return replies(passes), passes

    def judge(self, c: Candidate, samples: list[dict], outcomes: Counter) -> dict | None:
        """The corpus row of a candidate whose solver answers agree with each other and its solution, else None."""
        kind = c.seed.answer_kind
        answers = [answer_of(s["text"], kind) for s in samples]
        agreed = expand_prompts.agree(answers, self.spec.agree, kind)
        if agreed is None:
            outcomes["no agreement"] += 1
            return None
        if not is_correct(c.solution, agreed, kind):
            outcomes["generator disagrees"] += 1
            return None
        outcomes["accepted"] += 1
        return {"problem": Problem(c.seed.index, c.problem_id, c.problem, c.solution, kind), "solution": c.solution,
                "final_answer": agreed, "reference_answer": agreed, "sample_index": c.sample_index,
                "generation": {"seed_problem": c.seed.problem_id, "seed_similarity": round(c.similarity, 4),
                               "solver": (self.spec.solver or self.spec.model).label, "solver_answers": answers,
                               "agree": self.spec.agree}}

    def accept(self, problems: list[Problem], got: dict, state: BuildState) -> tuple[list[dict], Counter, list]:
        """New problems from seeds, screened, then solved `solutions` times and kept when `agree` answers agree."""
        outcomes = Counter()
        parsed = self.candidates(problems, got, outcomes)
        self.stat_update(state, max_seed_similarity=self.spec.max_seed_similarity,
                         seed_similarity=expand_prompts.similarity_summary([c.similarity for c in parsed]))
        kept = self.screen(parsed, outcomes, state)
        if not kept:
            return [], +outcomes, []
        solved, passes = self.solve(kept, state)
        rows = [row for c in kept if (row := self.judge(c, solved.get(c.problem_id, []), outcomes))]
        return rows, +outcomes, passes
