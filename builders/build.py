"""A build, top to bottom: recipe -> sources -> the recipe's stages in order -> decontaminate -> publish."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from mathforge.builders.recipe import Executor, Recipe
from mathforge.builders.sources import Problem, load_sources_split
from mathforge.builders.stages import BuildState, steps_of
from mathforge.builders.stages.collect import default_tasks
from mathforge.builders.stages.collect_pipeline import make_plan, publish_collect, run_collect_plan

from mathforge.errors import InputError
from mathforge.builders.publish.overwrite import check_replace
from mathforge.outputs import check_place, recipe_inputs


@dataclass
class BuildResult:
    """What a build wrote and its statistics."""

    out_dir: Path
    shards: list[Path]
    stats: dict
    seconds: float
    passes: list = field(default_factory=list)  # generation.runner.PassResult per model pass
    tasks: list = field(default_factory=list)   # collect: seconds, samples and peak RSS per partition


def _check_out_dir(out_dir: Path, overwrite: bool, inputs=(), where: tuple = ()) -> None:
    """Checked before any request is sent: the output can be made, is clear of the inputs (outputs.check_place),
    and is empty or, with overwrite, a mathforge output (publish.overwrite.check_replace)."""
    for parent in (out_dir, *out_dir.parents):
        if parent.exists() and not parent.is_dir():
            raise InputError(f"cannot write an output directory here: {parent} is a file", str(out_dir))
    check_place(out_dir, inputs, *where)
    check_replace(out_dir, overwrite, ("build", "collect"), *where)


def run_recipe(recipe: Recipe, out_dir: str | Path | None = None, overwrite: bool | None = None,
               workers: int | None = None, console=None, out_key: str = "out") -> BuildResult:
    """Run every step of a validated recipe in order over one build state (see `stages.steps_of`); `out_key`
    names `out_dir` in errors."""
    where = recipe.where("output", "dir") if out_dir is None else (None, None, out_key)
    out_dir = Path(out_dir or recipe.output_dir())
    overwrite = recipe.output.overwrite if overwrite is None else overwrite
    _check_out_dir(out_dir, overwrite, recipe_inputs(recipe) + [("output.work_dir", recipe.work_dir())], where)
    state = BuildState(recipe, out_dir, overwrite, workers, console)
    steps = steps_of(recipe)
    for step in steps:  # everything that can fail before a request is sent, fails here
        step.check(state)
    if recipe.executor.type == "slurm":  # what the cluster would refuse (partition, time, memory): before any job
        from mathforge.builders.generation.slurm import check_submission

        check_submission(recipe)
    started = time.perf_counter()
    state.problems_by_source = load_sources_split(recipe.sources)
    for step in steps:
        step.run(state)
    return BuildResult(out_dir, state.shards, state.stats, time.perf_counter() - started, state.passes)


def run_collect(problems: list[Problem], sample_paths: list[str], out_dir: str | Path, dedup: str = "paper",
                include_gold: bool = True, workers: int | None = None, overwrite: bool = False,
                shard_rows: int = 100_000, executor: Executor | None = None, tasks: int | None = None,
                partitions: int | None = None, max_sample_chars: int | None = None) -> BuildResult:
    """`mathforge collect` without a recipe: collect samples against gold problems as datatrove tasks (`tasks`,
    default: one per core, `workers` at once) over fixed partitions, and write shards + stats.json. The work dir
    beside OUT_DIR keeps finished partitions, so a killed run resumes; it goes once the output is in place."""
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite, [("--samples", path) for path in sample_paths], (None, None, "--out"))
    started = time.perf_counter()
    tasks = tasks or workers or default_tasks()
    plan = make_plan(problems, list(sample_paths), dedup, include_gold, out_dir.parent / f".{out_dir.name}.work",
                     partitions, shard_rows, **({"max_chars": max_sample_chars} if max_sample_chars else {}),
                     owner=str(out_dir.resolve()))
    # `mathforge collect` starts no threads before this point, so its local tasks may fork
    outcome = run_collect_plan(plan, executor, tasks, workers, publish_to=(str(out_dir), overwrite), fork=True)
    if executor is not None and executor.type == "slurm":
        return BuildResult(out_dir, [], {}, time.perf_counter() - started)
    shards = publish_collect(outcome, out_dir, overwrite)
    shutil.rmtree(plan.work, ignore_errors=True)
    if not any(Path(plan.work).parent.iterdir()):
        Path(plan.work).parent.rmdir()
    return BuildResult(out_dir, shards, outcome.stats, time.perf_counter() - started, tasks=outcome.tasks)
