"""Where mathforge may write: never over an input, `.`, `..`, `/` or home; replace only mathforge's own outputs."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

from mathforge.errors import InputError

SHARD_RE = re.compile(r"train-\d{5}-of-\d{5}\.parquet")
QUICKSTART_MARKER = ".mathforge-quickstart"  # written first by `mathforge quickstart` into its --out
QUICKSTART_NAMES = {QUICKSTART_MARKER, "quickstart.json", "data", "models", "recipes", "builds", "configs", "logs",
                    "eval"}
SHOWN = 5  # foreign entries named in an error


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


def check_replace(out: str | Path, overwrite: bool, kinds: tuple[str, ...] = ("build", "collect"),
                  file: str | None = None, line: int | None = None, key: str | None = None) -> None:
    """An output directory that exists is empty, or `overwrite` is set and it holds one of mathforge's own
    outputs (`kinds`: build, collect, quickstart) and nothing else; otherwise an InputError that names what is
    there."""
    out = Path(out)
    if not out.is_dir():
        return
    entries = sorted(child.name for child in out.iterdir())
    if not entries:
        return
    if not overwrite:
        raise InputError("output directory exists and is not empty (use --overwrite)", file or str(out), line, key)
    found = {kind: KINDS[kind](out) for kind in kinds}
    if any(extra == [] for extra in found.values()):
        return
    extra = min((e for e in found.values() if e is not None), key=len, default=entries)
    more = f" and {len(extra) - SHOWN} more" if len(extra) > SHOWN else ""
    raise InputError(f"overwrite replaces only {' or '.join(DESCRIBED[k] for k in kinds)}; "
                     f"{f'{out} holds' if file else 'it holds'} other things: {', '.join(extra[:SHOWN])}{more} "
                     "(move them, or choose another output)", file or str(out), line, key)


def build_foreign(out: Path) -> list[str] | None:
    """A build: manifest.json lists its files; the entries its manifest does not list (None: no manifest)."""
    from mathforge.builders.publish.manifest import MANIFEST, build_files, check_manifest

    try:
        manifest = check_manifest(json.loads((out / MANIFEST).read_text()), str(out / MANIFEST))
    except (OSError, ValueError, InputError):
        return None
    return sorted(build_files(out) - set(manifest["files"]))


def collect_foreign(out: Path) -> list[str] | None:
    """`mathforge collect`'s output: stats.json and data/ of train-i-of-N.parquet shards (None: not one)."""
    try:
        json.loads((out / "stats.json").read_text())
    except (OSError, ValueError):
        return None
    if not (out / "data").is_dir() or (out / "data").is_symlink():
        return None
    extra = [child.name for child in out.iterdir() if child.name not in ("stats.json", "data")]
    extra += [f"data/{child.name}" for child in (out / "data").iterdir()
              if not SHARD_RE.fullmatch(child.name) or not child.is_file()]
    return sorted(extra)


def quickstart_foreign(out: Path) -> list[str] | None:
    """`mathforge quickstart`'s --out: its marker (or summary) and its own folders only (None: not one)."""
    names = {child.name for child in out.iterdir()}
    if not names & {QUICKSTART_MARKER, "quickstart.json"}:
        return None
    return sorted(names - QUICKSTART_NAMES)


KINDS = {"build": build_foreign, "collect": collect_foreign, "quickstart": quickstart_foreign}
DESCRIBED = {"build": "a mathforge build (manifest.json and the files it lists)",
             "collect": "a collect output (stats.json and data/ shards)",
             "quickstart": "a quickstart directory (its marker and folders)"}


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
