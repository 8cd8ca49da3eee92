"""Collect as datatrove pipeline steps (index inputs, collect partitions, merge) on a local, Ray or Slurm executor."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from datatrove.pipeline.base import PipelineStep
from mathforge.builders.publish.manifest import problems_digest
from mathforge.builders.recipe import Executor
from mathforge.builders.samples import check_table, discover
from mathforge.builders.stages.collect import collect_partition
from mathforge.builders.stages.collect_inputs import (
    BLOCK_PROBLEMS,
    MAX_SAMPLE_CHARS,
    TABLE_CHUNK,
    CollectPlan,
    index_unit,
    partition_bounds,
    write_atomic,
)
from mathforge.builders.stages.collect_stats import PartialStats, build_stats

from mathforge.errors import InputError
from mathforge.tables import line_runs
from mathforge.verify.judges import JUDGES

PROBLEMS_PER_PARTITION = 1_000  # finer partitions balance the tasks (a few of them cost more than the rest)
FORMAT = 3  # bump when the work files change meaning: an old work dir is then never reused (2: `ungrounded`; 3: a
            # large JSONL table's rows bucketed per run of lines)
WORK_RE = re.compile(r"collect-[0-9a-f]{16}")
WORK_ENTRIES = {"problems", "index", "buckets", "parts", "logs", "errors", "owner", ".lock"}  # all a work dir holds
HASH_CHUNK = 1 << 24
_HELD: dict[str, int] = {}  # work dir -> its `.lock`, flock'ed shared while this process (or a fork) uses it


def make_plan(problems, sample_paths: list[str], dedup: str, include_gold: bool, work_root: str | Path,
              partitions: int | None = None, shard_rows: int = 100_000, block: int = BLOCK_PROBLEMS,
              max_chars: int = MAX_SAMPLE_CHARS, owner: str | None = None, grounded: bool = False) -> CollectPlan:
    """Recognise the inputs (tables are checked for their columns here, before any task starts) and fix the
    partitions: `partitions` or one per 1,000 problems. The work dir is named by everything that determines the
    result, the inputs' bytes included, so a rerun with the same inputs resumes and a changed input starts afresh.
    `owner` names the output it serves: that output's other work dirs under `work_root` (runs on other inputs,
    killed or failed) are removed, unless a live process holds them."""
    sources = [discover(path) for path in sample_paths]
    for source in sources:
        if source.is_table:
            check_table(source)
    count = partitions or max(1, -(-len(problems) // PROBLEMS_PER_PARTITION))
    bounds = partition_bounds(len(problems), count)
    key = {"format": FORMAT, "problems": problems_digest(problems), "dedup": dedup, "gold": include_gold,
           "bounds": bounds, "shard_rows": shard_rows, "block": block, "max_chars": max_chars, "grounded": grounded,
           "inputs": [[f.path, *content_hash(f.path)] for s in sources for f in (s.seed_files or [s])]}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    work = Path(work_root) / f"collect-{digest}"
    work.mkdir(parents=True, exist_ok=True)
    hold(work)
    if owner is not None:
        (work / "owner").write_bytes(owner.encode())
        remove_stale(work, owner)
    chunks = {number: line_runs(source.path, TABLE_CHUNK) for number, source in enumerate(sources)
              if source.is_table and Path(source.path).suffix != ".parquet" and
              Path(source.path).stat().st_size > TABLE_CHUNK}  # indexed in parallel, a run per unit
    plan = CollectPlan(problems, sources, dedup, include_gold, bounds, str(work), shard_rows, block, max_chars,
                       grounded, chunks)
    plan.write_problems()
    return plan


def content_hash(path: str) -> tuple[int, str]:
    """A file's size and the xxh3-128 of its bytes (read in 16 MiB chunks): an input edited in place is another
    input, whatever its size and mtime say."""
    digest, size = xxhash.xxh3_128(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def hold(work: str | Path) -> None:
    """Mark a work dir in use for the life of this process: a shared flock on its `.lock` (forks inherit it)."""
    path, fd = Path(work, ".lock"), _HELD.get(str(work))
    if fd is not None:
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return
        except FileNotFoundError:
            pass
        release(work)  # the work dir was removed since (a finished build): this run has a new one
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _HELD[str(work)] = fd


def release(work: str | Path) -> None:
    fd = _HELD.pop(str(work), None)
    if fd is not None:
        os.close(fd)


def remove_stale(work: Path, owner: str) -> None:
    """Remove the other collect work dirs beside `work` that serve the same owner: only a real directory named
    `collect-<16 hex>` holding nothing but a work dir's entries, whose `owner` file names this owner, and whose
    `.lock` no other live process holds (a run in progress keeps its own; in this process an earlier run for the
    same owner, one that failed, is over)."""
    for other in work.parent.iterdir():
        if other == work or not WORK_RE.fullmatch(other.name) or other.is_symlink() or not other.is_dir():
            continue
        try:
            if not {entry.name for entry in other.iterdir()} <= WORK_ENTRIES or \
                    (other / "owner").read_bytes() != owner.encode():
                continue
            release(other)
            fd = os.open(other / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            shutil.rmtree(other, ignore_errors=True)
        finally:
            os.close(fd)


class IndexInputs(PipelineStep):
    """Task `rank` indexes input files rank, rank + tasks, ...: seed-file offsets, table rows into buckets."""

    name = "📇 index sample inputs"
    type = "🧮 collect"

    def __init__(self, plan: CollectPlan):
        super().__init__()
        self.plan = plan

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        for number, unit in enumerate(self.plan.units()):
            if number % world_size != rank or self.plan.unit_done(unit).exists():
                continue
            hold(self.plan.work)
            with _reported(self.plan, f"unit-{number}"):
                index_unit(self.plan, unit)
            self.stat_update("input_files")
        return data


class CollectPartitions(PipelineStep):
    """Task `rank` collects partitions rank, rank + tasks, ... (a task per partition: the rank-th largest): verify,
    calculator check, dedup, corpus rows."""

    name = "✅ verify + dedup partitions"
    type = "🧮 collect"

    def __init__(self, plan: CollectPlan):
        super().__init__()
        self.plan = plan

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        partitions = range(rank, self.plan.partitions, world_size)
        if world_size == self.plan.partitions:  # a task per partition (local): task r takes the r-th largest
            partitions = [self.plan.largest_first()[rank]]
        for partition in partitions:
            if self.plan.part_done(partition).exists():
                continue
            hold(self.plan.work)
            with _reported(self.plan, f"partition-{partition}"):
                task = collect_partition(self.plan, partition)
            self.stat_update("partitions")
            self.stat_update("samples", value=task["samples"])
        return data


class _reported:
    """An InputError inside a task is written to `errors/` (datatrove only logs a task's exception), so the
    driver can raise it with its file, line and key."""

    def __init__(self, plan: CollectPlan, name: str):
        self.plan, self.name = plan, name

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, InputError):
            write_atomic(self.plan.path("errors", f"{self.name}.json"), json.dumps(
                {"message": exc.message, "file": exc.file, "line": exc.line, "key": exc.key}).encode())
        return False


@dataclass
class CollectOutcome:
    """A finished collect: its merged stats.json content, the partition files in order, per-task figures."""

    plan: CollectPlan
    stats: dict
    files: list[Path]
    judge: object
    tasks: list[dict] = field(default_factory=list)
    keep_logs: bool = False  # a Slurm collect keeps its jobs' logs; their completion markers go (nothing reads done)

    def clean(self) -> None:
        """Remove the work dir (after the build that used it is in place)."""
        if self.keep_logs:
            for entry in Path(self.plan.work).iterdir():
                if entry.name not in ("logs", "owner"):  # `owner`: a later run for this output removes them
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            for done in Path(self.plan.work, "logs").glob("*/completions"):
                shutil.rmtree(done, ignore_errors=True)
        else:
            shutil.rmtree(self.plan.work, ignore_errors=True)
        release(self.plan.work)


def run_collect_plan(plan: CollectPlan, executor: Executor | None = None, tasks: int = 1,
                     workers: int | None = None, publish_to: tuple[str, bool] | None = None,
                     fork: bool = False) -> CollectOutcome:
    """Run (or resume) both steps on the executor, then merge. `tasks` datatrove tasks share the input files and
    the partitions (local: `tasks` processes take one unit, then one partition, at a time, whichever is next); the
    result does not depend on `tasks` (partitions are fixed by the plan). `fork`: local
    tasks fork this process instead of datatrove's forkserver (only where no other thread can hold a lock)."""
    from mathforge.builders.generation.runner import make_executor, quiet_datatrove

    executor = executor or Executor()
    quiet_datatrove()
    logs = plan.path("logs")
    index_tasks = max(1, min(tasks, len(plan.units())))
    collect_tasks = max(1, min(tasks, plan.partitions))
    options = dict(executor.options)
    index_workers = min(workers or index_tasks, index_tasks)
    collect_workers = min(workers or collect_tasks, collect_tasks)
    if executor.type == "local":  # a task per unit and per partition: the pool hands the next one to whichever
        index_tasks, collect_tasks = len(plan.units()) or 1, plan.partitions  # process is free (costs differ)
        if fork:
            options.setdefault("start_method", "fork")  # the plan is already in memory: no re-import per task
    first = executor.model_copy(update={"tasks": index_tasks, "workers": index_workers, "options": options})
    second = executor.model_copy(update={"tasks": collect_tasks, "workers": collect_workers, "options": options})
    index = make_executor(first, [IndexInputs(plan)], logs / f"index-{index_tasks}")
    if executor.type == "slurm":  # chained jobs: index, collect, then merge (and publish to `publish_to`)
        collect = make_executor(second, [CollectPartitions(plan)], logs / f"collect-{collect_tasks}", depends=index)
        if publish_to is None:  # a recipe build waits for both jobs and merges here, for its later stages
            from mathforge.builders.generation.slurm import wait_for_jobs

            try:
                collect.run()
                wait_for_jobs([index, collect])
            finally:
                _raise_input_errors(plan)
            return merge(plan)
        last = executor.model_copy(update={"tasks": 1, "workers": 1,  # runs whenever launched: no stale marker
                                           "options": {**options, "skip_completed": False}})
        make_executor(last, [FinishCollect(plan, *publish_to)], logs / "merge", depends=collect).run()
        return CollectOutcome(plan, {}, [], None)
    _run(index, plan)
    _run(make_executor(second, [CollectPartitions(plan)], logs / f"collect-{collect_tasks}"), plan)
    return merge(plan)


def _run(executor, plan: CollectPlan) -> None:
    try:
        executor.run()
    except Exception:
        _raise_input_errors(plan)
        raise
    _raise_input_errors(plan)


def _raise_input_errors(plan: CollectPlan) -> None:
    for path in sorted(plan.path("errors").glob("*.json")) if plan.path("errors").exists() else []:
        error = json.loads(path.read_text())
        path.unlink()  # a rerun after the input is fixed starts clean
        raise InputError(error["message"], error["file"], error["line"], error["key"])


def merge(plan: CollectPlan) -> CollectOutcome:
    """Every unit's and partition's statistics into one stats.json body, and the partition files in order."""
    total, files, tasks = PartialStats(), [], []
    for unit in plan.units():
        if not plan.unit_done(unit).exists():
            raise RuntimeError(f"collect: input {unit} was not indexed (see {plan.path('logs')})")
        total.merge(PartialStats.from_json(json.loads(plan.unit_done(unit).read_text())["stats"]))
    for partition in range(plan.partitions):
        done = plan.part_done(partition)
        if not done.exists():
            raise RuntimeError(f"collect: partition {partition} did not finish (see {plan.path('logs')})")
        record = json.loads(done.read_text())
        total.merge(PartialStats.from_json(record["stats"]))
        files += [plan.path("parts", name) for name in record["files"]]
        tasks.append(record["task"])
    stats = build_stats(plan.n_problems, total, JUDGES[plan.dedup], plan.sources, plan.include_gold)
    judge = JUDGES[plan.dedup](plan.problems) if plan.problems is not None else None  # for synthesized rows
    return CollectOutcome(plan, stats, files, judge, tasks)


def publish_collect(outcome: CollectOutcome, out_dir: str | Path, overwrite: bool) -> list[Path]:
    """`mathforge collect`'s output: the partition files as `data/train-i-of-N.parquet` (hard links, so the work
    dir stays whole until the build is in place) and stats.json, moved into place at once; then the work dir goes."""
    from mathforge.builders.publish.corpus import write_output

    def place(staging: Path) -> None:
        data = staging / "data"
        data.mkdir(exist_ok=True)
        for number, path in enumerate(outcome.files):
            target = data / f"train-{number:05d}-of-{len(outcome.files):05d}.parquet"
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)

    shards = write_output(out_dir, None, outcome.stats, overwrite, extra=place)
    outcome.clean()
    return shards


class FinishCollect(PipelineStep):
    """The last Slurm job of `mathforge collect --executor slurm`: merge and publish."""

    name = "📦 merge + publish"
    type = "🧮 collect"

    def __init__(self, plan: CollectPlan, out_dir: str, overwrite: bool):
        super().__init__()
        self.plan, self.out_dir, self.overwrite = plan, out_dir, overwrite

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        outcome = merge(self.plan)
        outcome.keep_logs = True  # the three jobs' logs stay in <work>/logs for the user
        publish_collect(outcome, self.out_dir, self.overwrite)
        return data


def read_parts(plan: CollectPlan, files: list[Path]) -> dict[str, list]:
    """The collected rows as columns (a recipe build's later stages work on them in memory)."""
    from mathforge.builders.publish.corpus import SCHEMA

    if not files:
        return {name: [] for name in SCHEMA.names}
    return pa.concat_tables([pq.read_table(path, schema=SCHEMA) for path in files]).to_pydict()
