"""The `sample` stage: k reasoning paths per problem from each model, through the generation layer."""
from __future__ import annotations

from mathforge.builders.generation.runner import plan, problem_docs, run_sample_stage, template_of
from mathforge.builders.stages.base import BuildState, Stage


class Sample(Stage):
    """Sample every model of the stage; the sample files become collect's default input."""

    type = "sample"

    def run(self, state: BuildState) -> None:
        done = run_sample_stage(self.index, self.spec, state.problems, state.recipe, state.console)
        state.passes.extend(done)
        state.samples.extend(str(p.samples_path) for p in done)

    def plan(self, state: BuildState) -> list[str]:
        stage, recipe, problems = self.spec, state.recipe, state.problems
        per = stage.k if stage.quota is None else stage.quota.max_samples
        total = f"{len(problems) * len(stage.models) * per:,}" if problems else f"{len(stage.models) * per:,} x N"
        lines = [f"sample: {state.count} problems x {len(stage.models)} model(s) x {per} = "
                 f"{'up to ' if stage.quota else ''}{total} requests (T={stage.temperature:g}, top_p={stage.top_p:g}, "
                 f"max_tokens={stage.max_tokens}, seed={stage.seed}); executor {recipe.executor.type}, "
                 f"{recipe.executor.tasks} task(s)"]
        for mp in plan(stage, problem_docs(problems, template_of(stage)), recipe.work_dir()):
            where = mp.samples_path if problems else mp.dir.parent / (mp.label + "-*")
            kind = " (reasoning model)" if mp.spec.reasoning else ""
            lines.append(f"  {mp.label}: {mp.spec.backend} {mp.spec.base_url or mp.spec.model}{kind} -> {where}")
        return lines
