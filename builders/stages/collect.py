"""The RFT collect stage: verify samples, drop bad calculations, dedup per problem (farthest rule), pool models."""
from __future__ import annotations

import multiprocessing as mp
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from mathforge.builders.generation.runner import split_sample
from mathforge.builders.publish.corpus import append_method_rows, corpus_rows
from mathforge.builders.samples import SampleSource, completion_of, discover, read_seed_lines, read_table_samples
from mathforge.builders.sources import Problem
from mathforge.builders.stages.base import BuildState, Stage
from mathforge.builders.stages.collect_stats import build_stats

from mathforge.verify.dedup import DUPLICATE, REPLACED, FarthestSet
from mathforge.verify.judges import JUDGES, OK, UNPARSEABLE, WRONG

DedupMode = Literal["paper", "canonical"]


@dataclass(frozen=True)
class Kept:
    """A kept reasoning path and where it came from."""

    text: str
    key: str
    answer: object
    model: str
    seed: int | None
    temperature: float | None
    sample_index: int
    source: str
    reasoning: str | None = None  # a reasoning model's trace; the text is the solution after it


@dataclass
class ProblemResult:
    """Everything collect learned about one problem."""

    kept: list[Kept]
    samples: int = 0
    correct: int = 0
    first_correct: int | None = None       # position (in sample order) of the first correct sample
    answers: Counter = field(default_factory=Counter)  # parseable final answers, for the gold audit
    solved_by: set = field(default_factory=set)


@dataclass
class WorkerResult:
    """One worker's problems [lo, hi) and its counters."""

    lo: int
    problems: list[ProblemResult]
    reasons: Counter
    model_samples: Counter
    model_correct: Counter
    replacements: int
    levenshtein_calls: int
    rejected_examples: list[tuple[str, int, str]]
    short_files: list[tuple[str, int]]
    reasoning_lengths: list[tuple[int, int]] = field(default_factory=list)  # (chars, words) per traced sample


_JOB: dict = {}  # set in the parent before forking workers


def collect(problems: list[Problem], sources: list[SampleSource], dedup: DedupMode = "paper",
            workers: int | None = None) -> tuple[list[WorkerResult], object]:
    """Run collect over all problems, partitioned into contiguous problem ranges, one per worker process."""
    judge = JUDGES[dedup](problems)
    workers = max(1, min(workers or os.cpu_count() or 1, len(problems)))
    bounds = [(len(problems) * w // workers, len(problems) * (w + 1) // workers) for w in range(workers)]
    _JOB.update(problems=problems, sources=sources, judge=judge)
    try:
        if workers == 1:
            return [_collect_range(bounds[0])], judge
        with mp.get_context("fork").Pool(workers) as pool:
            return pool.map(_collect_range, bounds, chunksize=1), judge
    finally:
        _JOB.clear()


def _collect_range(bounds: tuple[int, int]) -> WorkerResult:
    lo, hi = bounds
    problems, sources, judge = _JOB["problems"], _JOB["sources"], _JOB["judge"]
    state = _RangeState(lo, hi)
    for source in sources:
        if source.is_table:
            _scan_table(source, problems, judge, state)
        else:
            _scan_seed_files(source, len(problems), judge, state)
    return state.finish()


class _RangeState:
    """Mutable per-worker state: one FarthestSet and result per problem in range, plus counters."""

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi
        self.sets = [FarthestSet() for _ in range(hi - lo)]
        self.verdicts: list[dict] = [{} for _ in range(hi - lo)]  # per problem: text -> judge outcome
        self.results = [ProblemResult(kept=[]) for _ in range(hi - lo)]
        self.reasons: Counter = Counter()
        self.model_samples: Counter = Counter()
        self.model_correct: Counter = Counter()
        self.replacements = 0
        self.examples: list[tuple[str, int, str]] = []
        self.short_files: list[tuple[str, int]] = []
        self.reasoning_lengths: list[tuple[int, int]] = []

    def reject(self, source: str, line: int, reason: str) -> None:
        self.reasons[reason] += 1
        if len(self.examples) < 20:
            self.examples.append((source, line, reason))

    def offer(self, index: int, text: str, judge, model: str, seed, temperature, source: str, line: int,
              reasoning: str | None = None) -> None:
        result = self.results[index - self.lo]
        if reasoning:
            self.reasoning_lengths.append((len(reasoning), len(reasoning.split())))
        position = result.samples
        result.samples += 1
        memo = self.verdicts[index - self.lo]
        outcome = memo.get(text)
        if outcome is None:  # identical samples are common: judge each distinct text once
            outcome = memo[text] = judge.judge(index, text)
        status, answer, key = outcome
        if answer is not None:
            result.answers[answer] += 1
        if status != UNPARSEABLE and status != WRONG:
            result.correct += 1
            self.model_correct[model] += 1
            result.solved_by.add(model)
            if result.first_correct is None:
                result.first_correct = position
        if status != OK:
            self.reasons[status] += 1
            return
        item = Kept(text, key, answer, model, seed, temperature, position, f"{source}:{line}", reasoning)
        kept = self.sets[index - self.lo].offer(key, text, item)
        if kept == DUPLICATE:
            self.reasons["duplicate"] += 1
        elif kept == REPLACED:
            self.replacements += 1
            self.reasons["duplicate"] += 1

    def finish(self) -> WorkerResult:
        calls = 0
        for result, kept in zip(self.results, self.sets):
            result.kept = kept.items
            calls += kept.levenshtein_calls
        return WorkerResult(self.lo, self.results, self.reasons, self.model_samples, self.model_correct,
                            self.replacements, calls, self.examples, self.short_files, self.reasoning_lengths)


def _scan_seed_files(source: SampleSource, n_problems: int, judge, state: _RangeState) -> None:
    """gsm8k-ScRel layout: seed files in numeric order, line i answers gold problem i."""
    model = source.model
    for seed_file in source.seed_files:
        lines = read_seed_lines(seed_file.path)
        if len(lines) < n_problems and state.lo == 0:
            state.short_files.append((seed_file.path, len(lines)))
        end = min(state.hi, len(lines), n_problems)
        for index in range(state.lo, end):
            state.model_samples[model] += 1
            try:
                text = completion_of(lines[index])
            except Exception as exc:  # hostile or broken line: rejected with its reason, never a crash
                state.results[index - state.lo].samples += 1
                state.reject(seed_file.path, index + 1, f"unreadable: {type(exc).__name__}")
                continue
            state.offer(index, text, judge, model, seed_file.seed, seed_file.temperature, seed_file.path, index + 1)


def _scan_table(source: SampleSource, problems: list[Problem], judge, state: _RangeState) -> None:
    """A JSONL/Parquet table of samples, in file order; rows outside this worker's range are skipped. A text
    that still holds a `<think>` block (a table without a `reasoning` column) is split as the sampler splits."""
    samples, rejects = read_table_samples(source, problems)
    if state.lo == 0:
        for line, reason in rejects:
            state.reject(source.path, line, reason)
    for sample in samples:
        if state.lo <= sample.problem < state.hi:
            state.model_samples[sample.model] += 1
            reasoning, text = (sample.reasoning, sample.text) if sample.reasoning is not None else \
                split_sample(sample.text, None)
            state.offer(sample.problem, text, judge, sample.model, sample.seed, sample.temperature,
                        source.path, sample.line, reasoning)


class Collect(Stage):
    """Verify, calculator-check and dedup the samples of every model (listed inputs, then the sample stages' own),
    pooled as one union; the candidate rows are the gold rows, the kept RFT paths, then the synthesized rows."""

    type = "collect"

    def run(self, state: BuildState) -> None:
        spec = self.spec
        sources = [discover(path) for path in spec.samples + state.samples]
        results, judge = collect(state.problems, sources, spec.dedup, state.workers or spec.workers)
        self.stat_update(state, **build_stats(state.problems, results, judge, sources, spec.include_gold))
        columns = corpus_rows(state.problems, results, judge, spec.include_gold)
        for part in state.synthesized:  # tutor, diversify, expand, retrospect: verified rows of earlier stages
            append_method_rows(columns, part.rows, part.method, judge, str(part.records_path))
        state.columns, state.judge = columns, judge
        state.sample_inputs.extend(spec.samples)

    def plan(self, state: BuildState) -> list[str]:
        sampled = any(s.type == "sample" for s in state.recipe.stages[:self.index])
        return [f"collect: dedup={self.spec.dedup}, {len(self.spec.samples)} listed sample input(s)"
                f"{' + the sampled models' if sampled else ''}"]
