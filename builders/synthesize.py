"""The `diversify`, `expand` and `retrospect` stages: prompts per seed problem, parsed and verified replies, rows."""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from builders import prompts, synthesis
from builders.equations import annotations, paper_key
from builders.generate import Doc, check_models, is_correct, quiet_datatrove, run_docs
from builders.recipe import Prompt, SampleStage
from builders.sources import Problem
from builders.tutoring import Rejected
from eval.answers import gsm8k_extract

DIVERSIFY_PROMPT = """Solve the following math problem step by step, one step per line, in a way that differs \
from the reference solution (another order, other intermediate quantities, or another method). End with a final \
line "#### <number>".

Problem:
{{ question }}

Reference solution:
{{ solution }}

Your different solution:
"""
DEFAULT_TEMPLATES = {"diversify": DIVERSIFY_PROMPT, "expand": synthesis.EXPAND_PROMPT,
                     "retrospect": synthesis.RETROSPECT_PROMPT}
SOLVE_PROMPT = ('Solve step by step, one step per line, and end with a final line "#### <number>".\n\n'
                "{{ question }}")


@dataclass
class SynthesisResult:
    """Accepted rows of one method, every outcome counted, and the passes that produced them."""

    method: str
    rows: list[dict]
    stats: dict
    records_path: Path
    passes: list = field(default_factory=list)


def as_sampling(stage, k: int | None = None, response_format: dict | None = None) -> SampleStage:
    return SampleStage(type="sample", models=[stage.model], k=k or stage.k, temperature=stage.temperature,
                       max_tokens=stage.max_tokens, seed=stage.seed, prompt=Prompt(chat=stage.chat),
                       concurrency=stage.concurrency, response_format=response_format, **stage.request_settings())


def replies(passes) -> dict[str, list[dict]]:
    """doc id -> its samples (text, finish_reason), in sample order."""
    rows = pq.read_table(passes[0].samples_path, columns=["doc_id", "sample_index", "text", "finish_reason"])
    out: dict[str, list[dict]] = {}
    for row in sorted(rows.to_pylist(), key=lambda r: (r["doc_id"], r["sample_index"])):
        out.setdefault(row["doc_id"], []).append(row)
    return out


def run_synthesis_stage(index: int, stage, problems: list[Problem], recipe, console=None) -> SynthesisResult:
    quiet_datatrove()
    key = ("stages", index)
    template = stage.template or DEFAULT_TEMPLATES[stage.type]
    file, line, dotted = recipe.where(*key, "template")
    prompts.check_template(template, file, dotted, {"question": "Q", "solution": "S", "problem_id": "p", "index": 0})
    fmt = None
    if stage.type == "expand":
        from builders.tutoring import response_format

        fmt = response_format(synthesis.EXPAND_SCHEMA, "expansion")
    sampling = as_sampling(stage, response_format=fmt)
    check_models(sampling, recipe, [(stage.model, key + ("model",))])
    docs = [Doc(p.problem_id, p.index, p.problem_id, prompts.render(template, prompts.problem_fields(p)),
                gsm8k_extract(p.solution)) for p in problems]
    passes = run_docs(index, sampling, docs, recipe, console, kind=stage.type, keys=[key + ("model",)])
    got = replies(passes)
    if stage.type == "diversify":
        rows, outcomes = diversify(problems, got)
    elif stage.type == "retrospect":
        rows, outcomes = retrospect(problems, got)
    else:
        rows, outcomes, more = expand(index, stage, problems, got, recipe, console)
        passes = passes + more
    for row in rows:
        row.setdefault("model", stage.model.label)
    stats = {"seed_problems": len(problems), "requests": sum(len(v) for v in got.values()),
             "accepted": len(rows), "outcomes": dict(sorted(outcomes.items()))}
    return SynthesisResult(stage.type, rows, stats, passes[0].samples_path, passes)


def diversify(problems: list[Problem], got: dict) -> tuple[list[dict], Counter]:
    """Correct samples whose equation list (the paper's key) is new for the problem."""
    rows, outcomes = [], Counter()
    for p in problems:
        gold = gsm8k_extract(p.solution)
        seen = {paper_key(annotations(p.solution))}
        for sample in got.get(p.problem_id, []):
            if sample["finish_reason"] == "length":
                outcomes["truncated"] += 1
            elif not is_correct(sample["text"], gold):
                outcomes["wrong answer"] += 1
            elif (key := paper_key(annotations(sample["text"]))) in seen:
                outcomes["duplicate reasoning"] += 1
            else:
                seen.add(key)
                outcomes["accepted"] += 1
                rows.append({"problem": p, "solution": sample["text"], "final_answer": gsm8k_extract(sample["text"]),
                             "sample_index": sample["sample_index"]})
    return rows, outcomes


def retrospect(problems: list[Problem], got: dict) -> tuple[list[dict], Counter]:
    """Solutions with at least one [back] return whose final answer matches the gold."""
    rows, outcomes = [], Counter()
    for p in problems:
        gold = gsm8k_extract(p.solution)
        for sample in got.get(p.problem_id, []):
            parsed = synthesis.parse_retrospective(sample["text"], sample["finish_reason"])
            if isinstance(parsed, Rejected):
                outcomes[parsed.reason] += 1
            elif not is_correct(parsed, gold):
                outcomes["wrong answer"] += 1
            else:
                outcomes["accepted"] += 1
                rows.append({"problem": p, "solution": parsed, "final_answer": gsm8k_extract(parsed),
                             "sample_index": sample["sample_index"]})
    return rows, outcomes


def expand(index: int, stage, problems: list[Problem], got: dict, recipe, console) -> tuple[list, Counter, list]:
    """New problems from seeds; each is solved `solutions` times and kept only when `agree` answers agree."""
    outcomes = Counter()
    candidates = []
    for p in problems:
        for sample in got.get(p.problem_id, []):
            parsed = synthesis.parse_expansion(sample["text"], sample["finish_reason"])
            if isinstance(parsed, Rejected):
                outcomes[parsed.reason] += 1
                continue
            new_id = hashlib.sha256(f"expand:{p.problem_id}:{parsed['problem']}".encode()).hexdigest()[:16]
            candidates.append((p, sample["sample_index"], new_id, parsed))
    if not candidates:
        return [], outcomes, []
    solve = as_sampling(stage, k=stage.solutions)
    docs = [Doc(new_id, p.index, new_id, prompts.render(SOLVE_PROMPT, {"question": parsed["problem"]}), None)
            for p, _, new_id, parsed in candidates]
    passes = run_docs(index, solve, docs, recipe, console, kind="expand-solve", keys=[("stages", index, "model")])
    solved = replies(passes)
    rows = []
    for p, sample_index, new_id, parsed in candidates:
        answers = [gsm8k_extract(s["text"]) for s in solved.get(new_id, [])]
        agreed = synthesis.agree(answers, stage.agree)
        if agreed is None:
            outcomes["no agreement"] += 1
        elif not is_correct(parsed["solution"], agreed):
            outcomes["generator disagrees"] += 1
        else:
            outcomes["accepted"] += 1
            problem = Problem(p.index, new_id, parsed["problem"], parsed["solution"])
            rows.append({"problem": problem, "solution": parsed["solution"], "final_answer": agreed,
                         "reference_answer": agreed, "sample_index": sample_index,
                         "generation": {"seed_problem": p.problem_id, "solver_answers": answers,
                                        "agree": stage.agree}})
    return rows, outcomes, passes
