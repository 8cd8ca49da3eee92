"""Where mathforge may write: never over or inside an input, never `.`, `..`, `/` or home (see publish.overwrite)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from mathforge.errors import InputError


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def check_place(out: str | Path, inputs: Iterable[tuple[str, str | Path | None]] = (), file: str | None = None,
                line: int | None = None, key: str | None = None) -> None:
    """An output (file or directory) is not the current directory, the home directory or a folder above either
    (`.`, `..`, `/`), does not equal or contain an input, and is not inside an input directory. `inputs`: (what,
    path) pairs; a path that is None is skipped. Paths are compared resolved. Raises InputError at (file, line,
    key)."""
    target = _resolved(out)
    shown, name = (file, f"{out} ") if file else (str(out), "")
    for what, place in (("the current directory", Path.cwd()), ("the home directory", Path.home())):
        place = place.resolve()
        if target == place or target in place.parents:
            raise InputError(f"{name}is {what} or a folder above it: an output goes in a directory of its own",
                             shown, line, key)
    for what, path in inputs:
        if path is None or str(path) == "":
            continue
        source = _resolved(path)
        if source == target:
            raise InputError(f"{name}is an input ({what}: {path}): an output never replaces its inputs", shown, line,
                             key)
        if target in source.parents:
            raise InputError(f"{name}contains an input ({what}: {path}): an output never replaces its inputs",
                             shown, line, key)
        if source in target.parents and not source.is_file():  # a directory input, or one not made yet
            raise InputError(f"{name}is inside the input directory {path} ({what}): an output goes outside its "
                             "inputs", shown, line, key)


def recipe_inputs(recipe) -> list[tuple[str, str | None]]:
    """(key path, path) of every local input a recipe names: sources, listed samples, general corpora, eval sets,
    local models and tokenizers that exist on disk, and the recipe file."""
    found = [(f"sources.{i}.path", s.path) for i, s in enumerate(recipe.sources)]
    for i, stage in enumerate(recipe.stages):
        found += [(f"stages.{i}.samples.{j}", p) for j, p in enumerate(getattr(stage, "samples", None) or [])]
        found += [(f"stages.{i}.general.{j}.path", g.path) for j, g in enumerate(getattr(stage, "general", None) or [])]
        models = [getattr(stage, name, None) for name in ("teacher", "model", "solver")]
        models += list(getattr(stage, "models", None) or [])
        local = [m.model for m in models if m is not None and m.backend != "endpoint"]
        tokenizer = getattr(stage, "tokenizer", None)
        found += [(f"stages.{i} model", m) for m in local + [tokenizer] if m and Path(m).exists()]
    if recipe.decontaminate is not None:
        found += [(f"decontaminate.eval_sets.{j}.path", e.path) for j, e in enumerate(recipe.decontaminate.eval_sets)]
    if recipe._file and not recipe._file.startswith("<"):
        found.append(("the recipe", recipe._file))
    return found


def check_recipe(recipe) -> None:
    """A recipe's output.dir and output.work_dir are in places of their own: output.dir clear of every input and
    of the work dir (check_place); the work dir not `.`, `..`, `/` or home."""
    inputs = recipe_inputs(recipe) + [("output.work_dir", recipe.work_dir())]
    check_place(recipe.output_dir(), inputs, *recipe.where("output", "dir"))
    check_place(recipe.work_dir(), (), *recipe.where("output", "work_dir"))
