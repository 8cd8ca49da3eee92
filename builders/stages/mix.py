"""The `mix` stage: the methods' CPT texts and general corpora combined by token ratio and budget (the `mix` config)."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from mathforge.builders.publish.views import training_views
from mathforge.builders.stages.base import BuildState, Stage
from mathforge.builders.stages.mixing import mix

from mathforge.errors import InputError
from mathforge.tables import read_table

METHODS = ("gold", "rft", "tutor", "diversify", "expand", "retrospect")
MIX_SCHEMA = pa.schema([("text", pa.string()), ("group", pa.string())])


class Mix(Stage):
    """Count tokens with the stage's tokenizer and take whole documents per group by ratio (and budget)."""

    type = "mix"
    stats_key = "mix"

    def check(self, state: BuildState) -> None:
        """Only methods and its general corpora are named, those files exist, and a corpus comes before it."""
        stage = self.spec
        names = set(METHODS) | {g.name for g in stage.general}
        for name in stage.ratio:
            if name not in names:
                raise InputError(f"unknown mix group {name!r} (methods: {', '.join(METHODS)}; general: "
                                 f"{', '.join(g.name for g in stage.general) or 'none'})",
                                 *self.where(state, "ratio", name))
        for g, group in enumerate(stage.general):
            if not Path(group.path).is_file():
                raise InputError(f"general corpus file not found: {group.path}", *self.where(state, "general", g, "path"))
        if not any(s.type == "collect" for s in state.recipe.stages[:self.index]):
            raise InputError("mix combines the corpus: put it after the collect stage", *self.where(state, "type"))

    def run(self, state: BuildState) -> None:
        from transformers import AutoTokenizer

        stage, cpt = self.spec, training_views(state.columns, state.recipe.publish)["cpt"]
        groups: dict[str, list[str]] = {}
        for text, method in zip(cpt["text"], cpt["method"]):
            groups.setdefault(method, []).append(text)
        for general in stage.general:
            rows, _ = read_table(general.path)
            groups[general.name] = [r["text"] for r in rows if isinstance(r.get("text"), str)]
        for name in stage.ratio:
            groups.setdefault(name, [])
        tokenizer = AutoTokenizer.from_pretrained(stage.tokenizer)
        count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
        chosen, report = mix(groups, dict(stage.ratio), stage.token_budget, count, stage.seed)
        state.configs["mix"] = pa.table({"text": [t for _, t in chosen], "group": [g for g, _ in chosen]},
                                        schema=MIX_SCHEMA)
        self.stat_update(state, tokenizer=stage.tokenizer, **report)

    def plan(self, state: BuildState) -> list[str]:
        return [f"mix: {self.spec.ratio} by tokens of {self.spec.tokenizer}"]
