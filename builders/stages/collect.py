"""The RFT collect stage: verify, calculator-check and dedup (farthest rule) samples, one partition at a time."""
from __future__ import annotations

import json
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import pyarrow as pa
from mathforge.builders.publish.corpus import SCHEMA, Corpus, append_method_rows, corpus_rows, write_parquet
from mathforge.builders.samples import work_name
from mathforge.builders.stages.base import BuildState, Stage
from mathforge.builders.stages.collect_inputs import MAX_SAMPLE_CHARS, CollectPlan, partition_samples, write_atomic
from mathforge.builders.stages.collect_stats import PartialStats

from mathforge.verify.dedup import DUPLICATE, REPLACED, FarthestSet
from mathforge.verify.equations import ungrounded
from mathforge.verify.grader import PATHS
from mathforge.verify.judges import JUDGES, OK, UNPARSEABLE, WRONG
from mathforge.verify.relations import MEMO_HITS

DedupMode = Literal["paper", "canonical"]


class Kept(NamedTuple):
    """A kept reasoning path and where it came from (a tuple: cheap to build by the million)."""

    text: str
    key: str
    answer: object
    model: str
    seed: int | None
    temperature: float | None
    sample_index: int
    source: str
    reasoning: str | None = None  # a reasoning model's trace; the text is the solution after it
    ungrounded: int | None = None  # operands of its checked equations from nowhere (counted once it is kept)


@dataclass
class ProblemResult:
    """Everything collect learned about one problem."""

    kept: list[Kept]
    samples: int = 0
    correct: int = 0
    first_correct: int | None = None       # position (in sample order) of the first correct sample
    answers: Counter = field(default_factory=Counter)  # parseable final answers, for the gold audit
    solved_by: set = field(default_factory=set)


def collect_problem(index: int, samples, judge, stats: PartialStats, max_chars: int = MAX_SAMPLE_CHARS,
                    question: str = "", grounded: bool = False) -> ProblemResult:
    """Verify, calculator-check and dedup one problem's samples (in sample order) into its kept paths; each
    distinct text is judged once, and all of the problem's state is dropped when it returns. `grounded`: a correct
    sample with operands from nowhere (not in `question`, not computed before: `equations.ungrounded`) is rejected."""
    result = ProblemResult(kept=[])
    kept_set, memo, from_nowhere = FarthestSet(), {}, {}
    for sample in samples:
        stats.model_samples[sample.model] += 1
        position = result.samples
        result.samples += 1
        text = sample.text
        if text is None:  # hostile or broken line: rejected with its reason, never a crash
            stats.reject(sample.source, sample.line, sample.reasoning)
            continue
        if len(text) > max_chars:
            stats.reject(sample.source, sample.line, "too long")
            continue
        if sample.reasoning:
            stats.reasoning_chars[len(sample.reasoning)] += 1
            stats.reasoning_tokens[len(sample.reasoning.split())] += 1
        outcome = memo.get(text)
        if outcome is None:  # identical samples are common: judge each distinct text once
            outcome = memo[text] = judge.judge(index, text)
        status, answer, key = outcome
        if answer is not None:
            result.answers[answer] += 1
        if status != UNPARSEABLE and status != WRONG:
            result.correct += 1
            stats.model_correct[sample.model] += 1
            result.solved_by.add(sample.model)
            if result.first_correct is None:
                result.first_correct = position
        if status != OK:
            stats.reasons[status] += 1
            continue
        count = None
        if grounded:  # otherwise counted only for the paths finally kept, below
            count = from_nowhere.get(text)
            if count is None:
                count = from_nowhere[text] = len(ungrounded(question, text, judge.name == "paper"))
            if count:
                stats.reasons["ungrounded"] += 1
                continue
        item = Kept(text, key, answer, sample.model, sample.seed, sample.temperature, position,
                    f"{sample.source}:{sample.line}", sample.reasoning, count)
        outcome = kept_set.offer(key, text, item)
        if outcome == DUPLICATE:
            stats.reasons["duplicate"] += 1
        elif outcome == REPLACED:
            stats.replacements += 1
            stats.reasons["duplicate"] += 1
    paper = judge.name == "paper"  # the paper rule checks annotations only: so does its groundedness
    result.kept = [k if k.ungrounded is not None else k._replace(ungrounded=len(ungrounded(question, k.text, paper)))
                   for k in kept_set.items]
    stats.levenshtein_calls += kept_set.levenshtein_calls
    return result


def collect_partition(plan: CollectPlan, partition: int) -> dict:
    """Collect one partition: its corpus rows (gold row, then kept paths, per problem in problem order) as Parquet
    files of at most `shard_rows` rows, then its statistics file, whose presence marks the partition done.
    Returns what the task measured (seconds, samples, peak RSS)."""
    started, paths, reads = time.perf_counter(), PATHS.copy(), Counter(MEMO_HITS)
    stats = PartialStats()
    lo = plan.bounds[partition]
    problems = plan.partition_problems(partition)
    judge = JUDGES[plan.dedup](problems, offset=lo)
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    files: list[str] = []

    def flush(final: bool) -> None:
        nonlocal columns
        while len(columns["problem_id"]) >= plan.shard_rows or (final and (columns["problem_id"] or not files)):
            head = {k: v[:plan.shard_rows] for k, v in columns.items()}
            columns = {k: v[plan.shard_rows:] for k, v in columns.items()}
            name = f"p{partition:05d}-{len(files):05d}.parquet"
            path = plan.path("parts", name)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_parquet(pa.table(head, schema=SCHEMA), path)
            files.append(name)
            if final and not columns["problem_id"]:
                break

    for index, samples in partition_samples(plan, partition):
        problem = problems[index - lo]
        result = collect_problem(index, samples, judge, stats, plan.max_chars, problem.question, plan.grounded)
        stats.add_problem(problem, result, judge)
        rows = corpus_rows([problem], [result], judge, plan.include_gold)
        for name in SCHEMA.names:
            columns[name].extend(rows[name])
        if len(columns["problem_id"]) >= plan.shard_rows:
            flush(False)
    flush(True)
    task = {"partition": partition, "samples": stats.samples, "seconds": round(time.perf_counter() - started, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "grading": dict(sorted((PATHS - paths).items())),  # verdicts of the answer grader, by path
            "equation memo": dict(sorted((Counter(MEMO_HITS) - reads).items()))}  # math regions and sides re-read
    write_atomic(plan.part_done(partition), json.dumps({"files": files, "stats": stats.to_json(),
                                                        "task": task}).encode())
    return task


class Collect(Stage):
    """Verify, calculator-check and dedup the samples of every model (listed inputs, then the sample stages' own),
    pooled as one union, partition by partition on the recipe's executor; the candidate rows are the gold rows,
    the kept RFT paths, then the synthesized rows."""

    type = "collect"

    def run(self, state: BuildState) -> None:
        from mathforge.builders.stages.collect_pipeline import make_plan, run_collect_plan

        spec, recipe = self.spec, state.recipe
        local = recipe.executor.type == "local"
        tasks = spec.tasks or state.workers or spec.workers or (default_tasks() if local else recipe.executor.tasks)
        plan = make_plan(state.problems, spec.samples + state.samples, spec.dedup, spec.include_gold,
                         recipe.work_dir(), spec.partitions, recipe.output.shard_rows, max_chars=spec.max_sample_chars,
                         owner=f"{Path(state.out_dir).resolve()} stages.{self.index}", grounded=spec.grounded)
        for source in plan.sources:  # the sample stages' files are named inside the work dir, wherever it was
            source.shown = work_name(source.path, recipe.work_dir())
        outcome = run_collect_plan(plan, recipe.executor, tasks, spec.workers or state.workers)
        self.stat_update(state, **outcome.stats)
        corpus = Corpus(outcome.files)
        for part in state.synthesized:  # tutor, diversify, expand, retrospect: verified rows of earlier stages
            append_method_rows(corpus.tail, part.rows, part.method, outcome.judge,
                               work_name(part.records_path, recipe.work_dir()))
        state.corpus, state.judge = corpus, outcome.judge
        state.sample_inputs.extend(spec.samples)
        state.scratch.append(Path(plan.work))  # the partitions are the corpus until publish has written it

    def plan(self, state: BuildState) -> list[str]:
        sampled = any(s.type == "sample" for s in state.recipe.stages[:self.index])
        return [f"collect: dedup={self.spec.dedup}, {len(self.spec.samples)} listed sample input(s)"
                f"{' + the sampled models' if sampled else ''}"]


def default_tasks() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
