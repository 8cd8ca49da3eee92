"""Collect's inputs at scale: seed-file offsets, sample tables bucketed by partition, one partition read back."""
from __future__ import annotations

import bisect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import orjson
from mathforge.builders.generation.runner import split_sample
from mathforge.builders.samples import (
    SampleSource,
    TableSample,
    completion_of,
    iter_table_samples,
    seed_file_index,
)
from mathforge.builders.sources import Problem
from mathforge.builders.stages.collect_stats import PartialStats

MAX_SAMPLE_CHARS = 32_768  # a longer solution text is rejected as `too long` (a loop, or an attack), not judged
BLOCK_PROBLEMS = 256      # problems read from every seed file at once: memory is this x the samples per problem
BUCKET_FLUSH = 1 << 23    # bytes of bucketed table rows held before they are appended to their partition files
TABLE_CHUNK = 1 << 26     # a JSONL samples table is indexed in runs of whole lines of about this many bytes, in parallel


@dataclass
class CollectPlan:
    """Everything a collect task needs, picklable for datatrove's executors: the problems, the inputs, the
    partition bounds (contiguous problem ranges, fixed by the plan, not by the number of tasks) and the work dir."""

    problems: list[Problem] | None   # the driver's; tasks read their partition's from `problems/` (not pickled)
    sources: list[SampleSource]
    dedup: str
    include_gold: bool
    bounds: list[int]          # partition p holds problems [bounds[p], bounds[p + 1])
    work: str
    shard_rows: int
    block: int = BLOCK_PROBLEMS
    max_chars: int = MAX_SAMPLE_CHARS
    grounded: bool = False     # reject correct samples with an operand from nowhere (`equations.ungrounded`)
    chunks: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)  # a JSONL table's runs of lines
                               # (offset, length, first line), source number -> runs: each one index unit

    @property
    def partitions(self) -> int:
        return len(self.bounds) - 1

    @property
    def n_problems(self) -> int:
        return self.bounds[-1]

    def executor_json(self) -> dict:
        """What datatrove's executor.json shows of the plan (not every problem)."""
        return {**{k: v for k, v in self.__dict__.items() if k not in ("problems", "sources", "chunks")},
                "problems": self.n_problems, "sources": [source.path for source in self.sources]}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "problems": None}  # a task gets its partition's problems from the work dir

    def problems_file(self, partition: int) -> Path:
        return self.path("problems", f"p{partition:05d}.jsonl")

    def write_problems(self) -> None:
        """One file of gold problems per partition, written once: a task loads only its own partitions'."""
        for partition in range(self.partitions):
            path = self.problems_file(partition)
            if not path.exists():
                lo, hi = self.bounds[partition], self.bounds[partition + 1]
                write_atomic(path, b"".join(orjson.dumps([p.index, p.problem_id, p.question, p.solution,
                                                          p.answer_kind]) + b"\n" for p in self.problems[lo:hi]))

    def partition_problems(self, partition: int) -> list[Problem]:
        with open(self.problems_file(partition), "rb") as handle:
            return [Problem(*orjson.loads(line)) for line in handle]

    def units(self) -> list[tuple[int, int]]:
        """(source number, file number) of every input file: each seed file of a model directory, each table."""
        return [(s, f) for s, source in enumerate(self.sources)
                for f in range(len(source.seed_files) if not source.is_table else self.table_chunks(s))]

    def table_chunks(self, source: int) -> int:
        """How many index units read table `source`: its runs of lines, or one (a Parquet or small table)."""
        return len(self.chunks.get(source, ())) or 1

    def path(self, *parts: str) -> Path:
        return Path(self.work, *parts)

    def block_starts(self) -> list[int]:
        """The first problem of every read block (blocks of `block` problems that never cross a partition bound),
        and the end: seed files are indexed at these lines, so a block is one read of a known byte range."""
        starts = set(self.bounds)
        for partition in range(self.partitions):
            starts.update(range(self.bounds[partition], self.bounds[partition + 1], self.block))
        return sorted(starts)

    def unit_done(self, unit: tuple[int, int]) -> Path:
        return self.path("index", f"s{unit[0]:05d}-f{unit[1]:06d}.json")

    def bucket(self, partition: int, source: int, chunk: int = 0) -> Path:
        return self.path("buckets", f"p{partition:05d}", f"s{source:05d}-c{chunk:05d}.jsonl")

    def part_done(self, partition: int) -> Path:
        return self.path("parts", f"p{partition:05d}.json")

    def largest_first(self) -> list[int]:
        """The partitions by their bucketed bytes, largest first (ties by number). Handed out in this order, the
        longest partition does not start last and leave one process working alone (a text's length is most of
        its cost). Bucket files are complete before any partition starts, so every task computes this order."""
        def size(partition: int) -> int:
            folder = self.path("buckets", f"p{partition:05d}")
            return sum(f.stat().st_size for f in folder.iterdir()) if folder.exists() else 0

        return sorted(range(self.partitions), key=lambda partition: (-size(partition), partition))


class Sample(NamedTuple):
    """One sample of one problem, in the problem's sample order; `text` None: the input line was unreadable and
    `reasoning` holds why. (A tuple: millions are made, and a frozen dataclass costs 3x as much to build.)"""

    model: str
    text: str | None
    seed: int | None
    temperature: float | None
    source: str
    line: int
    reasoning: str | None = None


def partition_bounds(problems: int, partitions: int) -> list[int]:
    """Contiguous, near-equal problem ranges: partition p holds [n * p // P, n * (p + 1) // P)."""
    partitions = max(1, min(partitions, problems or 1))
    return [problems * p // partitions for p in range(partitions + 1)]


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file or nothing: a temporary sibling, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def index_unit(plan: CollectPlan, unit: tuple[int, int]) -> None:
    """Index one input file: a seed file's line count and the byte offset of every partition bound; a table's
    rows bucketed into per-partition files (each problem's rows meet in its partition wherever they came from).
    The index file is written last: its presence marks the unit done, so a killed task redoes only its own."""
    source_no, file_no = unit
    source = plan.sources[source_no]
    stats = PartialStats()
    if not source.is_table:
        seed_file = source.seed_files[file_no]
        starts = plan.block_starts()
        lines, offsets = seed_file_index(seed_file.path, starts)
        if lines < plan.n_problems:
            stats.short_files.append((source.name(seed_file.path), lines))
        record = {"lines": lines, "offsets": offsets}  # byte offset of every block start, in plan.block_starts()
    else:
        record = {"rows": _bucket_table(plan, source_no, file_no, source, stats)}
    record["stats"] = stats.to_json()
    write_atomic(plan.unit_done(unit), json.dumps(record).encode())


def _bucket_table(plan: CollectPlan, source_no: int, chunk: int, source: SampleSource, stats: PartialStats) -> int:
    """Append the rows of one run of a table (or the whole table) to per-partition bucket files of that run."""
    bounds = plan.bounds
    span = plan.chunks[source_no][chunk] if source_no in plan.chunks else None
    buffers: dict[int, list[bytes]] = {}
    started: set[int] = set()
    held = rows = 0

    def flush() -> None:
        for partition, chunks in buffers.items():
            path = plan.bucket(partition, source_no, chunk)
            tmp = path.with_name(f".{path.name}.tmp")
            if partition not in started:  # a previous, killed attempt's rows are discarded
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_bytes(b"")
                started.add(partition)
            with open(tmp, "ab") as handle:
                handle.write(b"".join(chunks))
        buffers.clear()

    for item in iter_table_samples(source, problem_index(plan), span=span):
        if not isinstance(item, TableSample):
            stats.reject(source.name(), *item)
            continue
        rows += 1
        partition = bisect.bisect_right(bounds, item.problem) - 1
        record = orjson.dumps([item.problem, item.line, item.model, item.text, item.seed, item.temperature,
                               item.reasoning]) + b"\n"
        buffers.setdefault(partition, []).append(record)
        held += len(record)
        if held >= BUCKET_FLUSH:
            flush()
            held = 0
    flush()
    for partition in range(plan.partitions):  # every partition gets its file, empty or not
        path = plan.bucket(partition, source_no, chunk)
        tmp = path.with_name(f".{path.name}.tmp")
        if partition not in started:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(b"")
        os.replace(tmp, path)
    return rows


def problem_index(plan: CollectPlan) -> list[Problem]:
    """Every problem (a table's rows name theirs by id or question, so indexing a table needs them all)."""
    if plan.problems is not None:
        return plan.problems
    return [p for partition in range(plan.partitions) for p in plan.partition_problems(partition)]


def partition_samples(plan: CollectPlan, partition: int):
    """(problem index, its samples in sample order) for every problem of one partition, read BLOCK problems at a
    time: sources in the order given, seed files in seed order, table rows in file order."""
    lo, hi = plan.bounds[partition], plan.bounds[partition + 1]
    n = plan.n_problems
    seed_files, tables = [], {}
    starts = plan.block_starts()
    position = {line: number for number, line in enumerate(starts)}
    for source_no, source in enumerate(plan.sources):
        if source.is_table:
            tables[source_no] = rows = {}
            for chunk in range(plan.table_chunks(source_no)):  # runs in file order: each problem's rows in file order
                for index, found in _read_bucket(plan.bucket(partition, source_no, chunk)).items():
                    rows.setdefault(index, []).extend(found)
            continue
        for file_no, seed_file in enumerate(source.seed_files):
            record = json.loads(plan.unit_done((source_no, file_no)).read_text())
            seed_files.append((source_no, seed_file, source.model, record["lines"], record["offsets"]))
    for number in range(position[lo], position[hi]):
        start, stop = starts[number], starts[number + 1]
        per = [[] for _ in range(stop - start)]
        for source_no, source in enumerate(plan.sources):
            if source_no in tables:
                rows = tables[source_no]
                for index in range(start, stop):
                    for row in rows.pop(index, ()):
                        reasoning, text = (row[6], row[3]) if row[6] is not None else split_sample(row[3], None)
                        per[index - start].append(Sample(row[2], text, row[4], row[5], source.name(), row[1],
                                                         reasoning))
                continue
            for entry_source, seed_file, model, lines, offsets in seed_files:
                if entry_source != source_no:
                    continue
                count = min(stop, lines, n) - start
                if count <= 0:
                    continue
                raws = read_range(seed_file.path, offsets[number], offsets[number + 1])[:count]
                path, seed, temperature = source.name(seed_file.path), seed_file.seed, seed_file.temperature
                for j, raw in enumerate(raws):
                    try:
                        sample = Sample(model, completion_of(raw), seed, temperature, path, start + j + 1)
                    except Exception as exc:  # hostile or broken line: rejected with its reason, never a crash
                        sample = Sample(model, None, seed, temperature, path, start + j + 1,
                                        f"unreadable: {type(exc).__name__}")
                    per[j].append(sample)
        for j, samples in enumerate(per):
            yield start + j, samples


def read_range(path: str, begin: int, end: int) -> list[bytes]:
    """The lines (without newlines) in bytes [begin, end) of a file, in one read."""
    with open(path, "rb") as handle:
        handle.seek(begin)
        data = handle.read(end - begin)
    lines = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        lines.pop()
    return lines


def _read_bucket(path: Path) -> dict[int, list]:
    """problem index -> its bucketed table rows, in file order."""
    rows: dict[int, list] = {}
    with open(path, "rb") as handle:
        for raw in handle:
            row = orjson.loads(raw)
            rows.setdefault(row[0], []).append(row)
    return rows
