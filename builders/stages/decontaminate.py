"""The decontamination step: n-gram overlap of corpus questions and solutions with declared evaluation sets."""
from __future__ import annotations

import re
import shutil
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
from mathforge.builders.publish.corpus import SCHEMA, Corpus, write_parquet
from mathforge.builders.stages.base import BuildState, Stage

from mathforge.errors import InputError

WORD_RE = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams of a lowercased, punctuation-free text; a text shorter than n words is one gram."""
    tokens = words(text)
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def load_eval_texts(spec) -> list[str]:
    """The questions of one evaluation set (local JSONL/Parquet or a Hub dataset), read once per process: the
    decontamination step, expand and every mix arm ask for the same sets."""
    if spec.path:
        if not Path(spec.path).is_file():
            raise InputError("evaluation set not found", spec.path, key="decontaminate.eval_sets")
        stat = Path(spec.path).stat()  # a changed file is read again
        return list(_eval_texts(spec.name, spec.path, None, None, None, None, spec.column,
                                (stat.st_mtime_ns, stat.st_size)))
    return list(_eval_texts(spec.name, None, spec.hub, spec.config, spec.split, spec.revision, spec.column, None))


@lru_cache(maxsize=16)
def _eval_texts(name, path, hub, config, split, revision, column, version) -> tuple[str, ...]:
    from mathforge.builders.sources import load_hub, load_local

    if path:
        problems = load_local(path, name, column, None)
    else:
        problems = load_hub(hub, config, split, revision, column, None)
    return tuple(p.question for p in problems)


def ngram_index(eval_texts: list[str], n: int) -> set[tuple[str, ...]]:
    """Every n-gram of these evaluation questions."""
    index: set[tuple[str, ...]] = set()
    for text in eval_texts:
        index |= ngrams(text, n)
    return index


def eval_index(spec) -> set[tuple[str, ...]]:
    """The n-grams of all evaluation sets of a recipe's `decontaminate:` (empty when it has none)."""
    if spec is None:
        return set()
    return ngram_index([text for eval_set in spec.eval_sets for text in load_eval_texts(eval_set)], spec.n)


def overlaps(text: str, index: set[tuple[str, ...]], n: int) -> bool:
    return not index.isdisjoint(ngrams(text, n))


def contaminated(columns: dict[str, list], eval_texts: list[str], n: int) -> list[bool]:
    """Per corpus row: does its question or solution share an n-gram with any evaluation question?"""
    index = ngram_index(eval_texts, n)
    return [overlaps(question, index, n) or overlaps(solution, index, n)
            for question, solution in zip(columns["question"], columns["solution"])]


def apply(columns: dict[str, list], flags: list[bool], action: str) -> dict[str, list]:
    """`drop` removes flagged rows; `flag` keeps them with `contaminated: true` (in the default config only:
    publish.views leaves them out of cpt / sft / messages, and so of the mix)."""
    if action == "flag":
        return {**columns, "contaminated": flags}
    keep = [i for i, flag in enumerate(flags) if not flag]
    out = {name: [values[i] for i in keep] for name, values in columns.items()}
    out["contaminated"] = [False] * len(keep)
    return out


class Decontaminate(Stage):
    """Flag or drop candidate rows sharing an n-gram with any declared evaluation set (the recipe's
    `decontaminate:`; runs right after collect); counts per set and method go to stats.json and the card."""

    type = "decontaminate"
    stats_key = "decontamination"

    def run(self, state: BuildState) -> None:
        """One corpus chunk at a time: the evaluation sets' n-grams are the only index held; the kept rows go to
        new parts in the work dir."""
        spec = self.spec
        indexes = [(eval_set.name, ngram_index(load_eval_texts(eval_set), spec.n)) for eval_set in spec.eval_sets]
        work = state.recipe.work_dir() / "decontaminate"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        per_set, by_method, problems, flagged = Counter({name: 0 for name, _ in indexes}), Counter(), set(), 0
        parts = []
        for number, chunk in enumerate(state.corpus.chunks()):
            flags = [False] * len(chunk["problem_id"])
            for name, index in indexes:
                hits = [overlaps(q, index, spec.n) or overlaps(s, index, spec.n)
                        for q, s in zip(chunk["question"], chunk["solution"])]
                per_set[name] += sum(hits)
                flags = [a or b for a, b in zip(flags, hits)]
            flagged += sum(flags)
            by_method.update(m for m, f in zip(chunk["method"], flags) if f)
            problems.update(p for p, f in zip(chunk["problem_id"], flags) if f)
            part = work / f"part-{number:05d}.parquet"
            write_parquet(pa.table(apply(chunk, flags, spec.action), schema=SCHEMA), part)
            parts.append(part)
        state.corpus = Corpus(parts)
        state.scratch.append(work)
        self.stat_update(state, n=spec.n, action=spec.action, rows_flagged=flagged, by_eval_set=dict(per_set),
                         by_method=dict(sorted(by_method.items())), problems=sorted(problems))

    def plan(self, state: BuildState) -> list[str]:
        names = ", ".join(s.name for s in self.spec.eval_sets)
        return [f"decontaminate: {self.spec.n}-gram overlap with {names} ({self.spec.action})"]

    def where(self, state: BuildState, *key) -> tuple[str, int | None, str]:
        return state.recipe.where("decontaminate", *key)
