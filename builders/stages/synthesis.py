"""What the MathGPT sibling stages (diversify, expand, retrospect) share: one model, k requests per seed problem."""
from __future__ import annotations

from collections import Counter
from typing import ClassVar

import pyarrow.parquet as pq
from mathforge.builders import prompts
from mathforge.builders.generation.runner import Doc, check_models, quiet_datatrove, run_docs
from mathforge.builders.recipe import Prompt, SampleStage
from mathforge.builders.sources import Problem
from mathforge.builders.stages.base import BuildState, MethodRows, Stage

from mathforge.verify.equations import ungrounded
from mathforge.verify.grader import reference_answer

UNGROUNDED = "number from nowhere"  # the outcome of a row rejected by `grounded`


def drop_ungrounded(rows: list[dict], outcomes: Counter) -> list[dict]:
    """The rows whose checked equations use only numbers of their question, results stated before them, or small
    constants (`equations.ungrounded`); each other row moves from `accepted` to UNGROUNDED in `outcomes`."""
    kept = []
    for row in rows:
        if ungrounded(row["problem"].question, row["solution"]):
            outcomes["accepted"] -= 1
            outcomes[UNGROUNDED] += 1
        else:
            kept.append(row)
    return kept


def as_sampling(stage, k: int | None = None, response_format: dict | None = None, model=None) -> SampleStage:
    """The stage's settings as a one-model sample stage (`model`: another model than the stage's)."""
    return SampleStage(type="sample", models=[model or stage.model], k=k or stage.k, temperature=stage.temperature,
                       max_tokens=stage.max_tokens, seed=stage.seed, prompt=Prompt(chat=stage.chat),
                       concurrency=stage.concurrency, response_format=response_format, **stage.request_settings())


def replies(passes) -> dict[str, list[dict]]:
    """doc id -> its samples (text, finish_reason), in sample order."""
    rows = pq.read_table(passes[0].samples_path, columns=["doc_id", "sample_index", "text", "finish_reason"])
    out: dict[str, list[dict]] = {}
    for row in sorted(rows.to_pylist(), key=lambda r: (r["doc_id"], r["sample_index"])):
        out.setdefault(row["doc_id"], []).append(row)
    return out


class Synthesis(Stage):
    """A sibling synthesis method: render a prompt per seed problem, sample the stage's model k times, and keep
    the replies that `accept` verifies; every outcome is counted under the method's name in stats.json."""

    default_template: ClassVar[str]
    seed_fields = {"question": "Q", "solution": "S", "problem_id": "p", "index": 0}

    @property
    def stats_key(self) -> str:  # type: ignore[override]
        return self.type

    def response_format(self) -> dict | None:
        return None

    def template(self) -> str:
        """The prompt template per seed problem: the recipe's, else the method's default."""
        return self.spec.template or self.default_template

    def models(self) -> list[tuple]:
        """(model spec, recipe key) of every model the stage sends requests to, checked before the first one."""
        return [(self.spec.model, ("stages", self.index, "model"))]

    def check(self, state: BuildState) -> None:
        file, line, dotted = self.where(state, "template")
        prompts.check_template(self.template(), file, dotted, self.seed_fields, line=line)

    def run(self, state: BuildState) -> None:
        stage, key = self.spec, ("stages", self.index)
        quiet_datatrove()
        template = self.template()
        sampling = as_sampling(stage, response_format=self.response_format())
        check_models(sampling, state.recipe, self.models())
        problems = state.problems
        docs = [Doc(p.problem_id, p.index, p.problem_id, prompts.render(template, prompts.problem_fields(p)),
                    reference_answer(p.solution, p.answer_kind), p.answer_kind) for p in problems]
        passes = run_docs(self.index, sampling, docs, state.recipe, state.console, kind=stage.type,
                          keys=[key + ("model",)])
        got = replies(passes)
        rows, outcomes, more = self.accept(problems, got, state)
        if stage.grounded:
            rows = drop_ungrounded(rows, outcomes)
        for row in rows:
            row.setdefault("model", stage.model.label)
        state.passes.extend(passes + more)
        state.synthesized.append(MethodRows(self.type, rows, passes[0].samples_path))
        self.stat_update(state, seed_problems=len(problems), requests=sum(len(v) for v in got.values()),
                         accepted=len(rows), outcomes=dict(sorted((+outcomes).items())))

    def plan(self, state: BuildState) -> list[str]:
        stage = self.spec
        extra = f" + {stage.solutions} solutions each" if stage.type == "expand" else ""
        return [f"{stage.type}: {stage.model.label} ({stage.model.backend}), {state.count} problems x "
                f"{stage.k} requests{extra}"]

    def accept(self, problems: list[Problem], got: dict, state: BuildState) -> tuple[list[dict], Counter, list]:
        """(accepted rows, outcome counts, any further model passes) from the replies per seed problem."""
        raise NotImplementedError
