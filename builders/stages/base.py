"""The stage interface: a build's explicit state, and the base class every recipe stage type implements."""
from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Number
from pathlib import Path
from typing import Any, ClassVar

from mathforge.builders.sources import Problem


@dataclass
class MethodRows:
    """The verified rows one synthesis stage adds to the corpus (tutor, diversify, expand, retrospect)."""

    method: str
    rows: list[dict]        # each: problem, solution, final_answer, model, ... (see publish.corpus.append_method_rows)
    records_path: Path      # where every reviewed / generated reply and its outcome is kept


@dataclass
class BuildState:
    """Everything a build knows, passed from stage to stage: problems, sample sets, candidate rows, statistics.

    Stages read what earlier stages left and add their own part; nothing else travels between them.
    """

    recipe: Any                                   # the validated Recipe (None for a bare `mathforge collect`)
    out_dir: Path
    overwrite: bool = False
    workers: int | None = None
    console: Any = None
    problems_by_source: list[list[Problem]] = field(default_factory=list)
    passes: list = field(default_factory=list)          # generation.runner.PassResult of every model pass, in order
    samples: list[str] = field(default_factory=list)    # sample files of the sample stages (collect's default input)
    synthesized: list[MethodRows] = field(default_factory=list)
    corpus: Any = None                                  # publish.corpus.Corpus: the candidate rows, set by collect
    judge: Any = None                                   # collect's verifier, reused for synthesized rows
    sample_inputs: list[str] = field(default_factory=list)  # collect's listed sample inputs (for the lineage)
    configs: dict[str, Any] = field(default_factory=dict)   # extra Hub configs (e.g. `mix`): name -> pyarrow Table
    stats: dict = field(default_factory=dict)           # build statistics; stages write through Stage.stat_update
    shards: list[Path] = field(default_factory=list)    # the corpus shards, once published
    scratch: list[Path] = field(default_factory=list)   # work dirs that go once the build is in place

    @property
    def problems(self) -> list[Problem]:
        return [p for part in self.problems_by_source for p in part]

    @property
    def count(self) -> str:
        """The number of problems for plans: `N` while the sources are not loaded."""
        return f"{len(self.problems):,}" if self.problems_by_source else "N"


class Stage:
    """One recipe stage type: built from its validated recipe entry, run once over the build state.

    Subclasses set `type` (the recipe's `type:` name) and implement `run`; `check` runs for every stage of a build
    before any stage runs (so a bad template or file fails before the first request is sent).
    """

    type: ClassVar[str]
    stats_key: ClassVar[str | None] = None  # the section of stats.json this stage writes (None: the top level)

    def __init__(self, spec, index: int | None = None):
        self.spec, self.index = spec, index

    def check(self, state: BuildState) -> None:
        """Validate what can be validated before any request is sent (default: nothing)."""

    def run(self, state: BuildState) -> None:
        raise NotImplementedError

    def plan(self, state: BuildState) -> list[str]:
        """What `build --dry-run` prints for this stage (no request is sent); problems may be unknown (N)."""
        return [self.type]

    def stat_update(self, state: BuildState, **values) -> None:
        """Record this stage's statistics in the build's: numbers add up, anything else is set."""
        section = state.stats if self.stats_key is None else state.stats.setdefault(self.stats_key, {})
        for key, value in values.items():
            if isinstance(value, Number) and not isinstance(value, bool) and isinstance(section.get(key), Number):
                section[key] += value
            else:
                section[key] = value

    def where(self, state: BuildState, *key) -> tuple[str, int | None, str]:
        """(file, line, dotted key) of a key of this stage's recipe entry, for errors."""
        return state.recipe.where("stages", self.index, *key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(stage {self.index})"
