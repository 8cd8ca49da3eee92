"""Recipe stage types: one class per `type:`, each with one `run(state)`, registered here by name."""
from __future__ import annotations

from mathforge.builders.stages.base import BuildState, MethodRows, Stage
from mathforge.builders.stages.collect import Collect
from mathforge.builders.stages.decontaminate import Decontaminate
from mathforge.builders.stages.diversify import Diversify
from mathforge.builders.stages.expand import Expand
from mathforge.builders.stages.mix import Mix
from mathforge.builders.stages.publish import Publish
from mathforge.builders.stages.retrospect import Retrospect
from mathforge.builders.stages.sample import Sample
from mathforge.builders.stages.tutor import Tutor

# `type:` name -> stage class. A new stage type is one module with its class, plus one line here.
STAGES: dict[str, type[Stage]] = {cls.type: cls for cls in (
    Sample, Tutor, Diversify, Expand, Retrospect, Collect, Decontaminate, Mix, Publish,
)}


def steps_of(recipe) -> list[Stage]:
    """The steps of a recipe build: its stages in order, decontamination right after collect when the recipe
    declares `decontaminate:`, and publishing last."""
    steps: list[Stage] = []
    for index, spec in enumerate(recipe.stages):
        steps.append(STAGES[spec.type](spec, index))
        if spec.type == "collect" and recipe.decontaminate is not None:
            steps.append(Decontaminate(recipe.decontaminate))
    steps.append(Publish(recipe.output))
    return steps


__all__ = ["STAGES", "BuildState", "MethodRows", "Stage", "steps_of"]
