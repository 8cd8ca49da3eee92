"""A build, top to bottom: recipe -> sources -> the recipe's stages in order -> decontaminate -> publish."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from mathforge.builders.recipe import CollectStage, Output, Recipe
from mathforge.builders.sources import Problem, load_sources_split
from mathforge.builders.stages import BuildState, steps_of
from mathforge.builders.stages.collect import Collect
from mathforge.builders.stages.publish import Publish

from mathforge.errors import InputError


@dataclass
class BuildResult:
    """What a build wrote and its statistics."""

    out_dir: Path
    shards: list[Path]
    stats: dict
    seconds: float
    passes: list = field(default_factory=list)  # generation.runner.PassResult per model pass


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:  # checked before any request is sent
        raise InputError("output directory exists and is not empty (use --overwrite)", str(out_dir))


def run_recipe(recipe: Recipe, out_dir: str | Path | None = None, overwrite: bool | None = None,
               workers: int | None = None, console=None) -> BuildResult:
    """Run every step of a validated recipe in order over one build state (see `stages.steps_of`)."""
    out_dir = Path(out_dir or recipe.output_dir())
    overwrite = recipe.output.overwrite if overwrite is None else overwrite
    _check_out_dir(out_dir, overwrite)
    state = BuildState(recipe, out_dir, overwrite, workers, console)
    steps = steps_of(recipe)
    for step in steps:  # everything that can fail before a request is sent, fails here
        step.check(state)
    started = time.perf_counter()
    state.problems_by_source = load_sources_split(recipe.sources)
    for step in steps:
        step.run(state)
    return BuildResult(out_dir, state.shards, state.stats, time.perf_counter() - started, state.passes)


def run_collect(problems: list[Problem], sample_paths: list[str], out_dir: str | Path, dedup: str = "paper",
                include_gold: bool = True, workers: int | None = None, overwrite: bool = False,
                shard_rows: int = 100_000) -> BuildResult:
    """`mathforge collect` without a recipe: collect samples against gold problems, write shards + stats.json."""
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    state = BuildState(None, out_dir, overwrite, workers, problems_by_source=[problems])
    started = time.perf_counter()
    spec = CollectStage(type="collect", samples=list(sample_paths), dedup=dedup, include_gold=include_gold)
    for step in (Collect(spec), Publish(Output(shard_rows=shard_rows))):
        step.run(state)
    return BuildResult(out_dir, state.shards, state.stats, time.perf_counter() - started)
