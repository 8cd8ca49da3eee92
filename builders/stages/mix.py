"""The `mix` stage: the methods' CPT texts and general corpora combined by token ratio and budget (the `mix` config)."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
from mathforge.builders.publish.views import training_views
from mathforge.builders.stages.base import BuildState, Stage
from mathforge.builders.stages.decontaminate import eval_index, overlaps
from mathforge.builders.stages.mix_ratios import mix, stream_needs

from mathforge.errors import InputError
from mathforge.tables import read_table

METHODS = ("gold", "rft", "tutor", "diversify", "expand", "retrospect")
MIX_SCHEMA = pa.schema([("text", pa.string()), ("group", pa.string())])


def token_counter(tokenizer_name: str) -> Callable[[str], int]:
    """Tokens of a text by this tokenizer, remembered per text (the mix counts a document more than once)."""
    if tokenizer_name == "whitespace":  # offline demos and tests: words, no tokenizer download
        return lambda text: len(text.split())
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_name)
    return lru_cache(maxsize=None)(lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]))


def clean_texts(rows: Iterable[dict], column: str, count: Callable[[str], int], index: set, n: int,
                need=None) -> tuple[list[str], int]:
    """The `column` strings of rows, without those sharing an n-gram with an evaluation set, read only until
    `need` tokens are held (None: all). Returns (texts, documents dropped as contaminated)."""
    texts, dropped, held = [], 0, 0
    for row in rows:
        if need is not None and held >= need:
            break
        text = row.get(column)
        if not isinstance(text, str):
            continue
        if index and overlaps(text, index, n):
            dropped += 1
            continue
        texts.append(text)
        held += count(text)
    return texts, dropped


class Mix(Stage):
    """Count tokens with the stage's tokenizer and take whole documents per group by ratio (and budget)."""

    type = "mix"

    @property
    def stats_key(self) -> str:  # type: ignore[override]
        """The config (and stats.json key) this mix writes: `mix`, or `mix-<name>` for one arm of a comparison."""
        return "mix" if self.spec.name is None else f"mix-{self.spec.name}"

    def check(self, state: BuildState) -> None:
        """Only methods and its general corpora are named, those files exist, a Hub corpus is bounded, and a
        corpus comes before it."""
        stage = self.spec
        names = set(METHODS) | {g.name for g in stage.general}
        for name in stage.ratio:
            if name not in names:
                raise InputError(f"unknown mix group {name!r} (methods: {', '.join(METHODS)}; general: "
                                 f"{', '.join(g.name for g in stage.general) or 'none'})",
                                 *self.where(state, "ratio", name))
        for g, group in enumerate(stage.general):
            if group.path is not None and not Path(group.path).is_file():
                raise InputError(f"general corpus file not found: {group.path}", *self.where(state, "general", g, "path"))
        weighted = {name for name, weight in stage.ratio.items() if weight > 0}
        if stage.token_budget is None and weighted and weighted <= {g.name for g in stage.general if g.hub}:
            raise InputError("a Hub general corpus is streamed only as far as the mix needs: give token_budget "
                             "or weigh a method or file group", *self.where(state, "ratio"))
        if not any(s.type == "collect" for s in state.recipe.stages[:self.index]):
            raise InputError("mix combines the corpus: put it after the collect stage", *self.where(state, "type"))

    def run(self, state: BuildState) -> None:
        stage, decontaminate = self.spec, state.recipe.decontaminate
        count = token_counter(stage.tokenizer)
        groups, dropped = self.groups(state, count, eval_index(decontaminate), decontaminate.n if decontaminate else 0)
        chosen, report = mix(groups, dict(stage.ratio), stage.token_budget, count, stage.seed, stage.max_repeat)
        state.configs[self.stats_key] = pa.table({"text": [t for _, t in chosen], "group": [g for g, _ in chosen]},
                                        schema=MIX_SCHEMA)
        self.stat_update(state, tokenizer=stage.tokenizer, **report,
                         **({"decontaminated": dict(sorted(dropped.items()))} if decontaminate else {}))

    def groups(self, state: BuildState, count, index: set, n: int) -> tuple[dict[str, list[str]], dict[str, int]]:
        """Every group's texts (methods, files, then Hub corpora streamed as far as the others let the mix grow)
        and, per general corpus, the documents dropped for overlapping an evaluation set."""
        stage, clean = self.spec, {"count": count, "index": index, "n": n}
        groups, dropped = self.method_groups(state), {}
        for group in stage.general:
            if group.path is not None:
                groups[group.name], dropped[group.name] = clean_texts(read_table(group.path)[0], group.column, **clean)
        streamed = [(g, group) for g, group in enumerate(stage.general) if group.hub is not None]
        for name in sorted(set(stage.ratio) - {group.name for _, group in streamed}):
            groups.setdefault(name, [])
        if streamed:
            needs = stream_needs(dict(stage.ratio), {name: sum(map(count, texts)) for name, texts in groups.items()},
                                 [group.name for _, group in streamed], stage.token_budget, stage.max_repeat)
            for g, group in streamed:
                groups[group.name], dropped[group.name] = self.stream(state, g, needs[group.name], clean)
        return groups, dropped

    def method_groups(self, state: BuildState) -> dict[str, list[str]]:
        """The CPT texts of the training rows (published methods, not flagged as contaminated) by method."""
        groups: dict[str, list[str]] = {}
        for chunk in state.corpus.chunks():
            cpt = training_views(chunk, state.recipe.publish)["cpt"]
            for text, method in zip(cpt["text"], cpt["method"]):
                groups.setdefault(method, []).append(text)
        return groups

    def stream(self, state: BuildState, g: int, need, clean: dict) -> tuple[list[str], int]:
        """General corpus g from the Hub, streamed in one pass until it holds `need` tokens."""
        import datasets

        group = self.spec.general[g]
        try:
            rows = datasets.load_dataset(group.hub, group.config, split=group.split, revision=group.revision,
                                         streaming=True)
            return clean_texts(rows, group.column, need=need, **clean)
        except Exception as exc:
            raise InputError(f"cannot stream Hub dataset {group.hub}: {exc}", *self.where(state, "general", g, "hub")) \
                from None

    def plan(self, state: BuildState) -> list[str]:
        return [(f"mix: {self.spec.ratio} by tokens of {self.spec.tokenizer}, groups repeated up to "
                 f"{self.spec.max_repeat}x against the budget")]
