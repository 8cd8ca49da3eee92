"""The `tutor` stage: a teacher reviews student samples step by step; verified corrections become corpus rows."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from mathforge.builders import prompts
from mathforge.builders.generation.runner import Doc, check_models, quiet_datatrove, run_docs, write_parquet
from mathforge.builders.recipe import Prompt, SampleStage, TutorStage
from mathforge.builders.sources import Problem
from mathforge.builders.stages import tutor_prompts
from mathforge.builders.stages.base import BuildState, MethodRows, Stage
from mathforge.builders.stages.synthesis import UNGROUNDED

from mathforge.errors import InputError
from mathforge.verify.equations import ungrounded
from mathforge.verify.grader import answer_of, is_correct, reference_answer

RECORD_SCHEMA = pa.schema([
    ("problem_id", pa.string()), ("idx", pa.int64()), ("student", pa.string()), ("teacher", pa.string()),
    ("sample_index", pa.int64()), ("student_solution", pa.string()), ("n_steps", pa.int64()),
    ("student_correct", pa.bool_()), ("student_pass_rate", pa.float64()), ("status", pa.string()),
    ("reply", pa.string()), ("finish_reason", pa.string()), ("verdict", pa.string()),
    ("first_wrong_step", pa.int64()), ("explanation", pa.string()), ("amplified", pa.string()),
    ("amplified_answer", pa.string()), ("fix_accepted", pa.bool_()), ("teacher_agrees", pa.bool_()),
])
DIFFICULTY = (("unsolved (0)", 0.0, 0.0), ("hard (0-0.5)", 0.0, 0.5), ("medium (0.5-1)", 0.5, 1.0),
              ("easy (1)", 1.0, 1.0))


def student_samples(samples_path: Path) -> dict[str, list[dict]]:
    rows = pq.read_table(samples_path, columns=["problem_id", "sample_index", "text"]).to_pylist()
    by_problem: dict[str, list[dict]] = {}
    for row in sorted(rows, key=lambda r: (r["problem_id"], r["sample_index"])):
        by_problem.setdefault(row["problem_id"], []).append(row)
    return by_problem


def teacher_stage(stage: TutorStage) -> SampleStage:
    """The teacher's requests as a one-sample-per-document sampling pass (same runner, cache, retries)."""
    schema = tutor_prompts.response_format(tutor_prompts.TEACHER_SCHEMA, "teacher_review") if stage.structured else None
    return SampleStage(type="sample", models=[stage.teacher], k=1, temperature=stage.temperature,
                       max_tokens=stage.max_tokens, seed=stage.seed, prompt=Prompt(chat=stage.chat),
                       concurrency=stage.concurrency, response_format=schema, **stage.request_settings())


def attempts(stage: TutorStage, problems: list[Problem], samples: dict[str, list[dict]]) -> list[dict]:
    """The student attempts to review (`select`ed, in sample order) with their steps, the verifier's verdict and the
    student's pass rate."""
    chosen = []
    for p in problems:
        rows = samples.get(p.problem_id, [])
        gold = reference_answer(p.solution, p.answer_kind)
        correct = [is_correct(r["text"], gold, p.answer_kind) for r in rows]
        rate = sum(correct) / len(rows) if rows else None
        for i in select(stage, correct):
            chosen.append({"problem": p, "gold": gold, "row": rows[i], "steps": tutor_prompts.split_steps(rows[i]["text"]),
                           "rate": rate, "student_correct": correct[i]})
    return chosen


def select(stage: TutorStage, correct: list[bool]) -> list[int]:
    """Indices of the samples to review: the first `attempts` wrong ones (`wrong`), the first `attempts` (`any`),
    or `wrong_ratio` of them (rounded up) from the first wrong samples and the rest from the first correct ones."""
    wrong = [i for i, ok in enumerate(correct) if not ok]
    if stage.select == "any":
        return list(range(min(stage.attempts, len(correct))))
    if stage.select == "wrong":
        return wrong[:stage.attempts]
    n_wrong = math.ceil(stage.attempts * stage.wrong_ratio - 1e-9)
    right = [i for i, ok in enumerate(correct) if ok]
    return sorted(wrong[:n_wrong] + right[:stage.attempts - n_wrong])


class Tutor(Stage):
    """A teacher reviews `attempts` selected samples (`select`) of an earlier-sampled student per problem; a
    correction that does real, calculator-checked work and reaches the gold answer becomes a `tutor` row."""

    type = "tutor"
    stats_key = "tutor"

    def check(self, state: BuildState) -> None:
        template = self.spec.template or tutor_prompts.TEACHER_PROMPT
        file, line, dotted = self.where(state, "template")
        fields = tutor_prompts.prompt_fields("Q?", ["a", "b"], "S" if self.spec.reference else None)
        prompts.check_template(template, file, dotted, fields, line=line)

    def run(self, state: BuildState) -> None:
        stage, key = self.spec, ("stages", self.index)
        quiet_datatrove()
        student_paths = {p.label: p.samples_path for p in state.passes}
        if stage.student not in student_paths:
            file, line, dotted = self.where(state, "student")
            raise InputError(f"no earlier sample stage has a model named {stage.student!r} "
                             f"(sampled: {', '.join(student_paths) or 'none'})", file, line, dotted)
        template = stage.template or tutor_prompts.TEACHER_PROMPT
        sampling = teacher_stage(stage)
        check_models(sampling, state.recipe, [(stage.teacher, key + ("teacher",))])
        chosen = attempts(stage, state.problems, student_samples(student_paths[stage.student]))
        docs = [Doc(f"{a['problem'].problem_id}:{a['row']['sample_index']}", a["problem"].index,
                    a["problem"].problem_id,
                    prompts.render(template, teacher_fields(a, stage)), a["gold"])
                for a in chosen]
        passes = run_docs(self.index, sampling, docs, state.recipe, state.console, kind="tutor",
                          keys=[key + ("teacher",)])
        replies = teacher_replies(passes[0].samples_path)
        records = [review(a, replies.get(d.id), stage) for a, d in zip(chosen, docs)]
        records_path = passes[0].samples_path.with_name("records.parquet")
        write_parquet(records_path, records, RECORD_SCHEMA)
        rows = [corpus_row(r, a, stage) for r, a in zip(records, chosen) if r["fix_accepted"]]
        state.passes.extend(passes)
        state.synthesized.append(MethodRows(self.type, rows, records_path))
        self.stat_update(state, select=stage.select, **tutor_stats(records))

    def plan(self, state: BuildState) -> list[str]:
        stage = self.spec
        return [(f"tutor: teacher {stage.teacher.label} ({stage.teacher.backend}) reviews {stage.attempts} "
                 f"{stage.select} attempt(s) per problem of {stage.student}: up to {state.count} x "
                 f"{stage.attempts} requests")]


def teacher_fields(attempt: dict, stage: TutorStage) -> dict:
    problem = attempt["problem"]
    reference = (problem.solution or "") if stage.reference else None
    return tutor_prompts.prompt_fields(problem.question, attempt["steps"], reference)


def teacher_replies(samples_path: Path) -> dict[str, dict]:
    table = pq.read_table(samples_path, columns=["doc_id", "text", "finish_reason"]).to_pylist()
    replies = {row["doc_id"]: row for row in table}
    failures = pq.read_table(samples_path.with_name("failures.parquet"), columns=["doc_id", "error"]).to_pylist()
    replies.update({row["doc_id"]: {"failed": row["error"]} for row in failures})
    return replies


def review(attempt: dict, reply: dict | None, stage: TutorStage) -> dict:
    """Parse the teacher's reply, compose and verify the amplified solution, record every outcome."""
    problem, row, steps = attempt["problem"], attempt["row"], attempt["steps"]
    kind, student_correct = problem.answer_kind, attempt["student_correct"]
    record = {"problem_id": problem.problem_id, "idx": problem.index, "student": stage.student,
              "teacher": stage.teacher.label, "sample_index": row["sample_index"], "student_solution": row["text"],
              "n_steps": len(steps), "student_correct": student_correct, "student_pass_rate": attempt["rate"],
              "status": "ok", "reply": None, "finish_reason": None, "verdict": None, "first_wrong_step": None,
              "explanation": None, "amplified": None, "amplified_answer": None, "fix_accepted": False,
              "teacher_agrees": None}
    if reply is None or "failed" in (reply or {}):
        record["status"] = f"request failed: {(reply or {}).get('failed', 'no reply')}"
        return record
    record["reply"], record["finish_reason"] = reply["text"], reply["finish_reason"]
    parsed = tutor_prompts.parse_teacher_reply(reply["text"], len(steps), reply["finish_reason"])
    if isinstance(parsed, tutor_prompts.Rejected):
        record["status"] = f"rejected: {parsed.reason}"
        return record
    record.update(verdict=parsed.verdict, first_wrong_step=parsed.first_wrong_step, explanation=parsed.explanation,
                  teacher_agrees=(parsed.verdict == tutor_prompts.CORRECT) == student_correct)
    if parsed.verdict == tutor_prompts.WRONG:
        amplified = tutor_prompts.compose(steps, parsed)
        record.update(amplified=amplified, amplified_answer=answer_of(amplified, kind))
        record["status"] = fix_status(parsed, student_correct, amplified, attempt["gold"], kind, stage)
        if record["status"] == "ok" and stage.grounded and ungrounded(problem.question, amplified):
            record["status"] = f"rejected: {UNGROUNDED}"
        record["fix_accepted"] = record["status"] == "ok"
        attempt["reply"] = parsed
    return record


def fix_status(reply: tutor_prompts.TeacherReply, student_correct: bool, amplified: str, gold: str | None, kind: str,
               stage: TutorStage) -> str:
    """`ok`, or why a teacher's fix is not kept: a false critique, an answer-only or miscomputed fix, a wrong or
    unverifiable final answer (checked in this order)."""
    if student_correct and not stage.allow_false_critique:
        return f"rejected: {tutor_prompts.FALSE_CRITIQUE}"
    problem = tutor_prompts.fix_problem(reply, stage.min_new_steps)
    if problem:
        return f"rejected: {problem}"
    if is_correct(amplified, gold, kind):
        return "ok"
    return "fix rejected: final answer does not match the gold" if gold else "fix unverifiable: no gold answer"


def corpus_row(record: dict, attempt: dict, stage: TutorStage) -> dict:
    problem = attempt["problem"]
    exchange = tutor_prompts.exchange_text(problem.question, attempt["steps"], attempt["reply"])
    return {"problem": problem, "solution": record["amplified"], "final_answer": record["amplified_answer"],
            "model": stage.student, "teacher": stage.teacher.label, "sample_index": record["sample_index"],
            "cpt_text": exchange if stage.output == "exchange" else None,
            "generation": {"teacher_temperature": stage.temperature, "first_wrong_step": record["first_wrong_step"],
                           "seed": stage.seed, "select": stage.select, "reference_shown": stage.reference}}


def tutor_stats(records: list[dict]) -> dict:
    """Teacher-vs-verifier agreement, fixes accepted, faulty-step positions, by difficulty (student pass rate)."""
    judged = [r for r in records if r["verdict"] is not None]
    wrong = [r for r in judged if r["verdict"] == tutor_prompts.WRONG]
    statuses = Counter(r["status"] for r in records)
    by_difficulty = {}
    for name, lo, hi in DIFFICULTY:
        group = [r for r in records if r["student_pass_rate"] is not None and _in_bin(r["student_pass_rate"], lo, hi)]
        judged_group = [r for r in group if r["verdict"] is not None]
        by_difficulty[name] = {
            "attempts": len(group), "judged": len(judged_group),
            "agreement": round(sum(r["teacher_agrees"] for r in judged_group) / len(judged_group), 4)
            if judged_group else None,
            "fixes_proposed": sum(r["verdict"] == tutor_prompts.WRONG for r in judged_group),
            "fixes_accepted": sum(r["fix_accepted"] for r in group)}
    return {"attempts": len(records), "judged": len(judged), "statuses": dict(sorted(statuses.items())),
            "verdict_correct": len(judged) - len(wrong), "verdict_wrong": len(wrong),
            "teacher_verifier_agreement": round(sum(r["teacher_agrees"] for r in judged) / len(judged), 4)
            if judged else None,
            "student_correct": sum(r["student_correct"] for r in records),
            "reviewed_wrong": sum(not r["student_correct"] for r in records),
            "reviewed_correct": sum(r["student_correct"] for r in records),
            "fixes_proposed": len(wrong), "fixes_accepted": sum(r["fix_accepted"] for r in records),
            "faulty_step": {str(k): v for k, v in sorted(Counter(r["first_wrong_step"] for r in wrong).items())},
            "by_difficulty": by_difficulty}


def _in_bin(rate: float, lo: float, hi: float) -> bool:
    if lo == hi:
        return rate == lo
    return lo < rate < hi if lo == 0.0 else lo <= rate < hi
