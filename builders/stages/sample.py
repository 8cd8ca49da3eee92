"""The `sample` stage: k reasoning paths per problem from each model, through the generation layer."""
from __future__ import annotations

from mathforge.builders.generation.runner import run_sample_stage
from mathforge.builders.stages.base import BuildState, Stage


class Sample(Stage):
    """Sample every model of the stage; the sample files become collect's default input."""

    type = "sample"

    def run(self, state: BuildState) -> None:
        done = run_sample_stage(self.index, self.spec, state.problems, state.recipe, state.console)
        state.passes.extend(done)
        state.samples.extend(str(p.samples_path) for p in done)
