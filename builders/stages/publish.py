"""The publish step: the candidate rows as a versioned build (shards, configs, card, manifest), written atomically."""
from __future__ import annotations

import shutil

from mathforge.builders.publish.corpus import write_output
from mathforge.builders.publish.release import lineage, write_release
from mathforge.builders.publish.views import check_templates
from mathforge.builders.stages.base import BuildState, Stage

from mathforge.errors import InputError


class Publish(Stage):
    """Write the corpus, stats.json and (for a recipe build) the training configs, plots, dataset card and
    manifest into a staging directory, then move it into place: never a half-written build. Always the last step."""

    type = "publish"

    def check(self, state: BuildState) -> None:
        if state.recipe is not None:
            check_templates(state.recipe.publish, state.recipe.where)

    def run(self, state: BuildState) -> None:
        if state.corpus is None:
            raise InputError("nothing to publish: the recipe has no collect stage", *state.recipe.where("stages"))
        recipe, shard_rows = state.recipe, self.spec.shard_rows

        def release(staging):
            lin = lineage(recipe, state.problems_by_source, state.passes, state.sample_inputs)
            write_release(staging, recipe, state.corpus, state.stats, lin, shard_rows, state.configs)

        state.shards = write_output(state.out_dir, None, state.stats, state.overwrite, shard_rows, release)
        for work in state.scratch:  # collect's partitions and the like: gone once the build is in place
            shutil.rmtree(work, ignore_errors=True)

    def plan(self, state: BuildState) -> list[str]:
        return [f"publish: configs, card and manifest -> output: {state.out_dir}  (work: {state.recipe.work_dir()})"]
