"""A versioned build: corpus shards plus training configs, plots, the dataset card and the manifest."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import yaml
from mathforge.builders.publish.card import RowCounts, render_card, write_plots
from mathforge.builders.publish.corpus import SCHEMA, Corpus, ShardWriter, write_shards
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
CLIENT_EXECUTION = ("client_processes",)        # a sample stage's client processes: the same requests, spread out


def canonical_recipe(recipe, exclude_none: bool = False) -> dict:
    """The recipe as data, defaults filled in, without where the output goes or how the work is spread (neither
    changes the content: a build is byte-identical for any number of tasks)."""
    data = recipe.model_dump(mode="json", exclude=EXECUTION, exclude_none=exclude_none)
    for stage in data.get("stages", []):
        if stage.get("type") == "collect":
            for key in STAGE_EXECUTION:
                stage.pop(key, None)
        for key in CLIENT_EXECUTION:
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
                               "revision": getattr(done, "model_revision", None) or spec.revision, "samples": done.ok,
                               "sha256": sha256_file(done.samples_path)})
    inputs = [{"path": str(path), "sha256": sha256_input(path)} for path in sample_inputs]
    return {"sources": sources, "models": models, "sample_inputs": inputs}


def write_release(root: Path, recipe, corpus: Corpus, stats: dict, lineage_: dict,
                  shard_rows: int, configs: dict[str, pa.Table] | None = None) -> dict:
    """Write the corpus (default config) and its cpt/sft/messages configs in one pass over the corpus, one chunk at
    a time, then the stages' extra configs (e.g. `mix`), plots, README.md and manifest.json, into a staged build
    directory."""
    writers = {"default": ShardWriter(root / "data", SCHEMA, shard_rows)}
    writers.update({name: ShardWriter(root / name, schema, shard_rows) for name, schema in SCHEMAS.items()})
    counts = RowCounts()
    for chunk in corpus.chunks():
        writers["default"].write(pa.table(chunk, schema=SCHEMA))
        counts.add(chunk)
        for name, view in training_views(chunk, recipe.publish).items():
            writers[name].write(pa.table(view, schema=SCHEMAS[name]))
    for writer in writers.values():
        writer.close()
    rows = {name: writer.rows for name, writer in writers.items()}
    for name, table in (configs or {}).items():
        write_shards(table, root / name, shard_rows)
        rows[name] = table.num_rows
    write_plots(root, stats)
    canonical = canonical_recipe(recipe)
    print_ = fingerprint(canonical, lineage_, file_table(root))
    shown = canonical_recipe(recipe, exclude_none=True)
    recipe_yaml = yaml.safe_dump(shown, sort_keys=False, allow_unicode=True)
    card = render_card(recipe, recipe_yaml, stats, counts, rows, lineage_, print_, stats["verifier"])
    (root / "README.md").write_text(card)
    return write_manifest(root, recipe.name, recipe.version, canonical, lineage_, rows, stats["verifier"], print_)
