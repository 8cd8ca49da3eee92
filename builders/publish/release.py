"""A versioned build: corpus shards plus training configs, plots, the dataset card and the manifest."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import yaml
from mathforge.builders.publish.card import render_card, write_plots
from mathforge.builders.publish.corpus import write_shards
from mathforge.builders.publish.manifest import (
    file_table,
    fingerprint,
    problems_digest,
    sha256_file,
    sha256_input,
    write_manifest,
)
from mathforge.builders.publish.views import SCHEMAS, training_views

EXECUTION = {"output": True, "executor": True}  # where and how a build runs is not what it contains
STAGE_EXECUTION = ("tasks", "workers")          # a collect stage's tasks / workers: the output does not depend on them


def canonical_recipe(recipe, exclude_none: bool = False) -> dict:
    """The recipe as data, defaults filled in, without where the output goes or how the work is spread (neither
    changes the content: a build is byte-identical for any number of tasks)."""
    data = recipe.model_dump(mode="json", exclude=EXECUTION, exclude_none=exclude_none)
    for stage in data.get("stages", []):
        if stage.get("type") == "collect":
            for key in STAGE_EXECUTION:
                stage.pop(key, None)
    return data


def lineage(recipe, problems_by_source: list[list], passes: list, sample_inputs: list[str]) -> dict:
    """Inputs (content-hashed), sampled models (with their samples' hashes) and other sample inputs."""
    sources = []
    for source, problems in zip(recipe.sources, problems_by_source):
        where = source.path or (f"hub:{source.hub}" + (f":{source.config}" if source.config else "")
                                + f":{source.split}") if not source.synthetic else \
            f"synthetic:{source.synthetic.problems}:{source.synthetic.seed}"
        sources.append({"name": source.name or Path(source.path or source.hub or "synthetic").stem,
                        "where": where, "revision": source.revision, "problems": len(problems),
                        "sha256": problems_digest(problems)})
    models = []
    for stage in recipe.stages:
        if stage.type != "sample":
            continue
        for spec in stage.models:
            done = next((p for p in passes if p.label == spec.label), None)
            if done is not None:
                models.append({"name": spec.label, "backend": spec.backend, "model_id": spec.model,
                               "revision": spec.revision, "samples": done.ok,
                               "sha256": sha256_file(done.samples_path)})
    inputs = [{"path": str(path), "sha256": sha256_input(path)} for path in sample_inputs]
    return {"sources": sources, "models": models, "sample_inputs": inputs}


def write_release(root: Path, recipe, columns: dict[str, list], stats: dict, lineage_: dict,
                  shard_rows: int, configs: dict[str, pa.Table] | None = None) -> dict:
    """Add cpt/sft/messages configs (and the stages' extra configs, e.g. `mix`), plots, README.md and
    manifest.json to a staged build directory."""
    views = training_views(columns, recipe.publish)
    for name, view in views.items():
        write_shards(pa.table(view, schema=SCHEMAS[name]), root / name, shard_rows)
    rows = {"default": len(columns["problem_id"]), **{name: len(v["problem_id"]) for name, v in views.items()}}
    for name, table in (configs or {}).items():
        write_shards(table, root / name, shard_rows)
        rows[name] = table.num_rows
    write_plots(root, stats)
    canonical = canonical_recipe(recipe)
    print_ = fingerprint(canonical, lineage_, file_table(root))
    shown = canonical_recipe(recipe, exclude_none=True)
    recipe_yaml = yaml.safe_dump(shown, sort_keys=False, allow_unicode=True)
    card = render_card(recipe, recipe_yaml, stats, columns, rows, lineage_, print_, stats["verifier"])
    (root / "README.md").write_text(card)
    return write_manifest(root, recipe.name, recipe.version, canonical, lineage_, rows, stats["verifier"], print_)
