"""A build, top to bottom: recipe -> sources -> sample (each model) -> collect (verify, dedup, union) -> corpus."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from builders.collect import collect
from builders.corpus import append_method_rows, corpus_rows, write_output
from builders.errors import InputError
from builders.release import lineage, write_release
from builders.render import check_templates
from builders.recipe import (CollectStage, DiversifyStage, ExpandStage, MixStage, Recipe, RetrospectStage,
                             SampleStage, Source, TutorStage)
from builders.samples import discover
from builders.sources import Problem, load_hub, load_local, load_synthetic
from builders.stats import build_stats


@dataclass
class BuildResult:
    """What a build wrote and its statistics."""

    out_dir: Path
    shards: list[Path]
    stats: dict
    seconds: float
    passes: list = None  # generate.PassResult per sampled model


def load_sources(sources: list[Source]) -> list[Problem]:
    """All problems of the recipe's sources, in order (indices renumbered across sources)."""
    return [p for part in load_sources_split(sources) for p in part]


def load_sources_split(sources: list[Source]) -> list[list[Problem]]:
    """The problems of each source (indices already renumbered across sources)."""
    parts: list[list[Problem]] = []
    problems: list[Problem] = []
    for source in sources:
        if source.path:
            part = load_local(source.path, source.name, source.columns.question, source.columns.answer)
        elif source.synthetic:
            part = load_synthetic(source.synthetic.problems, source.synthetic.seed)
        else:
            part = load_hub(source.hub, source.config, source.split, source.revision,
                            source.columns.question, source.columns.answer)
        offset = len(problems)
        renumbered = [Problem(offset + i, p.problem_id, p.question, p.solution) for i, p in enumerate(part)]
        problems.extend(renumbered)
        parts.append(renumbered)
    return parts


def run_collect(problems: list[Problem], sample_paths: list[str], out_dir: str | Path, dedup: str = "paper",
                include_gold: bool = True, workers: int | None = None, overwrite: bool = False,
                shard_rows: int = 100_000, release=None, synthesized: list | None = None,
                decontaminate=None) -> BuildResult:
    """Collect samples against gold problems and write the corpus (Parquet shards + stats.json)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InputError("output directory exists and is not empty (use --overwrite)", str(out_dir))
    sources = [discover(path) for path in sample_paths]
    started = time.perf_counter()
    results, judge = collect(problems, sources, dedup, workers)
    stats = build_stats(problems, results, judge, sources, include_gold)
    columns = corpus_rows(problems, results, judge, include_gold)
    for result in synthesized or []:  # tutor, diversify, expand, retrospect: verified rows and their statistics
        append_method_rows(columns, result.rows, result.method, judge, str(result.records_path))
        stats[result.method] = result.stats
    if decontaminate is not None:
        columns, stats["decontamination"] = decontaminate_columns(columns, decontaminate)
    extra = None if release is None else (lambda staging: release(staging, columns, stats))
    shards = write_output(out_dir, columns, stats, overwrite, shard_rows, extra)
    return BuildResult(out_dir, shards, stats, time.perf_counter() - started)


METHODS = ("gold", "rft", "tutor", "diversify", "expand", "retrospect")


def decontaminate_columns(columns: dict[str, list], spec) -> tuple[dict[str, list], dict]:
    """Flag or drop rows sharing an n-gram with any declared evaluation set; counts per set for the card."""
    from collections import Counter

    from builders import decontam

    flags = [False] * len(columns["problem_id"])
    per_set = {}
    for eval_set in spec.eval_sets:
        hits = decontam.contaminated(columns, decontam.load_eval_texts(eval_set), spec.n)
        per_set[eval_set.name] = sum(hits)
        flags = [a or b for a, b in zip(flags, hits)]
    by_method = Counter(m for m, f in zip(columns["method"], flags) if f)
    report = {"n": spec.n, "action": spec.action, "rows_flagged": sum(flags), "by_eval_set": per_set,
              "by_method": dict(sorted(by_method.items())),
              "problems": sorted({p for p, f in zip(columns["problem_id"], flags) if f})}
    return decontam.apply(columns, flags, spec.action), report


def check_mix(recipe: Recipe) -> None:
    """A mix names only methods and its general corpora, and those files exist (before any request)."""
    for index, stage in enumerate(recipe.stages):
        if not isinstance(stage, MixStage):
            continue
        names = set(METHODS) | {g.name for g in stage.general}
        for name in stage.ratio:
            if name not in names:
                file, line, key = recipe.where("stages", index, "ratio", name)
                raise InputError(f"unknown mix group {name!r} (methods: {', '.join(METHODS)}; general: "
                                 f"{', '.join(g.name for g in stage.general) or 'none'})", file, line, key)
        for g, group in enumerate(stage.general):
            if not Path(group.path).is_file():
                file, line, key = recipe.where("stages", index, "general", g, "path")
                raise InputError(f"general corpus file not found: {group.path}", file, line, key)


def run_recipe(recipe: Recipe, out_dir: str | Path | None = None, overwrite: bool | None = None,
               workers: int | None = None, console=None) -> BuildResult:
    """Run every stage of a validated recipe, in order; collect takes the samples of the sample stages before it."""
    out_dir = Path(out_dir or recipe.output_dir())
    overwrite = recipe.output.overwrite if overwrite is None else overwrite
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:  # checked before any request is sent
        raise InputError("output directory exists and is not empty (use --overwrite)", str(out_dir))
    check_templates(recipe.publish, recipe.where)
    check_mix(recipe)
    by_source = load_sources_split(recipe.sources)
    problems = [p for part in by_source for p in part]
    sampled: list[str] = []
    passes: list = []
    tutored: list = []
    result = None
    for index, stage in enumerate(recipe.stages):
        if isinstance(stage, SampleStage):
            from builders.generate import run_sample_stage

            done = run_sample_stage(index, stage, problems, recipe, console)
            passes.extend(done)
            sampled.extend(str(p.samples_path) for p in done)
        elif isinstance(stage, TutorStage):
            from builders.tutor import run_tutor_stage

            students = {p.label: p.samples_path for p in passes}
            tutored.append(run_tutor_stage(index, stage, problems, recipe, students, console))
            passes.extend(tutored[-1].passes)
        elif isinstance(stage, (DiversifyStage, ExpandStage, RetrospectStage)):
            from builders.synthesize import run_synthesis_stage

            tutored.append(run_synthesis_stage(index, stage, problems, recipe, console))
            passes.extend(tutored[-1].passes)
        elif isinstance(stage, CollectStage):
            shard_rows = recipe.output.shard_rows

            def release(staging, columns, stats, stage=stage):
                lin = lineage(recipe, by_source, passes, stage.samples)
                write_release(staging, recipe, columns, stats, lin, shard_rows)

            result = run_collect(problems, stage.samples + sampled, out_dir, stage.dedup, stage.include_gold,
                                 workers or stage.workers, overwrite, shard_rows, release, tutored,
                                 recipe.decontaminate)
            result.passes = passes
    return result
