"""The Python API: load a recipe, run a build, open its configs as `datasets`, grade answers, pull and push builds."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from mathforge.builders.recipe import Recipe
from mathforge.builders.recipe import load_recipe as _load
from mathforge.errors import InputError

MODES = ("gsm8k", "math", "auto")  # grading modes (mathforge.verify.grader.Mode)


def _refuse(key: str, expected: str, value) -> InputError:
    """An argument of the wrong type or value, reported as the CLI reports a bad option: `key: must be ...`."""
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return InputError(f"must be {expected}, not {type(value).__name__} {shown}", key=key)


def _check_mode(mode) -> None:
    if not isinstance(mode, str) or mode not in MODES:
        raise _refuse("mode", "one of " + ", ".join(MODES), mode)


def load_recipe(recipe: str | Path | dict | Recipe, /, overrides: list[str] | dict | None = None,
                **values) -> Recipe:
    """A validated recipe from a YAML path, a mapping or a Recipe, with overrides applied first.

    Overrides are dotted paths, as with `mathforge build --set`: keyword arguments use `__` for the dots
    (`stages__0__k=4`); `overrides` takes "path=YAML" strings or a {dotted path: value} mapping.
    """
    if not isinstance(recipe, (str, Path, dict, Recipe)):
        raise _refuse("recipe", "a YAML path, a mapping or a Recipe", recipe)
    strings = isinstance(overrides, (list, tuple)) and all(isinstance(o, str) for o in overrides)
    mapping = isinstance(overrides, dict) and all(isinstance(k, str) for k in overrides)
    if not (overrides is None or strings or mapping):
        raise _refuse("overrides", 'a {"dotted.path": value} mapping or a list of "path=YAML" strings', overrides)
    if isinstance(recipe, Recipe):
        if not overrides and not values:
            return recipe
        recipe = recipe.model_dump(mode="json", exclude_none=True)
    if isinstance(overrides, dict):
        values = {**overrides, **values}
        overrides = None
    if overrides and values:
        raise InputError("give overrides as strings or as values, not both", key="overrides")
    return _load(recipe, list(overrides) if overrides else values)


@dataclass
class Build:
    """A build on disk: its directory, manifest and statistics, and its Hub configs as `datasets`."""

    out_dir: Path
    stats: dict
    manifest: dict | None = None
    seconds: float | None = None
    passes: list = field(default_factory=list)  # sampling passes of this run (model, requests, tokens, ...)

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> "Build":
        """An existing build directory (e.g. from `pull`), checked as `pull` checks it: the manifest is the closed
        list of its files and every sha256 matches (an extra, missing or changed file: IntegrityError).
        `verify=False` skips that (no hashing, for speed); `dataset()` reads only the manifest's files either way."""
        from mathforge.builders.publish.manifest import read_manifest
        from mathforge.builders.publish.manifest import verify as verify_build

        path = Path(path)
        manifest = verify_build(path) if verify else read_manifest(path)
        return cls(path, json.loads((path / "stats.json").read_text()), manifest)

    @property
    def fingerprint(self) -> str | None:
        return (self.manifest or {}).get("fingerprint")

    @property
    def configs(self) -> list[str]:
        """The build's configs: `default` (every row and its provenance), `cpt`, `sft`, `messages`, `mix`, ..."""
        return [name for name in (self.manifest or {}).get("rows", {"default": None})
                if self._files(name)]

    def _files(self, config: str) -> list[Path]:
        """The config's Parquet shards the manifest lists (a file it does not list is never read)."""
        folder = "data" if config == "default" else config
        return [self.out_dir / rel for rel in sorted((self.manifest or {}).get("files", {}))
                if rel.endswith(".parquet") and rel.rpartition("/")[0] == folder]

    def to_datasets(self):
        """A `datasets.DatasetDict` keyed by config name (`default`, `cpt`, `sft`, `messages`, ...), each the
        config's one `train` split as a `datasets.Dataset`, ready for TRL's trainers."""
        from datasets import DatasetDict

        return DatasetDict({name: self.dataset(name) for name in self.configs})

    def dataset(self, config: str = "default"):
        """One config as a `datasets.Dataset` (read into memory from the build's Parquet shards)."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        from datasets import Dataset

        files = self._files(config)
        if not files:
            raise InputError(f"no config {config!r} in this build (configs: {', '.join(self.configs)})",
                             str(self.out_dir))
        return Dataset(pa.concat_tables([pq.read_table(f) for f in files]))


def build(recipe: str | Path | dict | Recipe, out: str | Path | None = None, overwrite: bool = False,
          workers: int | None = None, console=None, **overrides) -> Build:
    """Run a recipe (path, mapping or Recipe; keyword overrides as in `load_recipe`) and return the build."""
    from mathforge.builders.build import run_recipe

    _check_build_args(out, overwrite, workers)
    parsed = load_recipe(recipe, **overrides)
    result = run_recipe(parsed, out, overwrite, workers, console)
    opened = Build.open(result.out_dir)
    opened.seconds, opened.passes = result.seconds, result.passes
    return opened


def _check_build_args(out, overwrite, workers) -> None:
    if out is not None and not isinstance(out, (str, Path)):
        raise _refuse("out", "a directory path or None", out)
    if not isinstance(overwrite, bool):  # "no" is truthy: it would replace the output
        raise _refuse("overwrite", "True or False", overwrite)
    if workers is not None and (type(workers) is not int or workers < 1):
        raise _refuse("workers", "a positive integer or None (all cores)", workers)


def grade(gold: str, pred: str, mode: str = "auto"):
    """One verdict (`correct` / `wrong` / `unparseable`, with the extracted answer and a reason) for a prediction
    (an answer or a whole solution) against a gold answer; mode: gsm8k, math or auto."""
    from mathforge.verify.grader import grade as _grade

    for key, value in (("gold", gold), ("pred", pred)):
        if not isinstance(value, str):
            raise _refuse(key, "a string", value)
    _check_mode(mode)
    return _grade(gold, pred, mode)


def grade_batch(pairs: Iterable[tuple[str, str]], mode: str = "auto", workers: int | None = None) -> list:
    """Verdicts for (gold, prediction) pairs, in order, on `workers` processes (default: all cores)."""
    from mathforge.verify.grader import grade_batch as _grade_batch

    if isinstance(pairs, (str, bytes, dict)) or not isinstance(pairs, Iterable):
        raise _refuse("pairs", "an iterable of (gold, prediction) pairs", pairs)
    pairs = list(pairs)
    for i, pair in enumerate(pairs):  # a string of two characters would unpack as a pair
        if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(isinstance(x, str) for x in pair):
            raise _refuse(f"pairs[{i}]", "a (gold, prediction) pair of strings", pair)
    _check_mode(mode)
    if workers is not None and (type(workers) is not int or workers < 1):
        raise _refuse("workers", "a positive integer or None (all cores)", workers)
    return _grade_batch(pairs, mode, workers=workers)


def pull(ref: str, out: str | Path | None = None) -> Path:
    """Download `org/name@v1.2.0` (or `org/name` for main) from the Hub, every file checked against the
    manifest's sha256; a local build directory is checked in place. The manifest is the closed list of files (an
    extra, missing or outside file is an InputError) and the revision must be a tag, branch or 40-hex commit.
    Returns the directory."""
    from mathforge.builders.publish.hub import resolve

    return resolve(ref, out)


def push(build_dir: str | Path | Build, repo: str, private: bool = False):
    """Upload a build in one commit and tag that commit `v<version>` (same fingerprint: no-op; other content:
    refused). A push that loses a race for the same version changes neither `main` nor the tag."""
    from mathforge.builders.publish.hub import push as _push

    return _push(build_dir.out_dir if isinstance(build_dir, Build) else build_dir, repo, private)
