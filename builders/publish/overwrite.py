"""What `overwrite` may replace: a directory that is empty or holds one of mathforge's own outputs and nothing else."""
from __future__ import annotations

import json
import re
from pathlib import Path

from mathforge.builders.publish.manifest import MANIFEST, build_files, check_manifest
from mathforge.errors import InputError

SHARD_RE = re.compile(r"train-\d{5}-of-\d{5}\.parquet")
QUICKSTART_MARKER = ".mathforge-quickstart"  # written first by `mathforge quickstart` into its --out
QUICKSTART_NAMES = {QUICKSTART_MARKER, "quickstart.json", "data", "models", "recipes", "builds", "configs", "logs",
                    "eval"}
SHOWN = 5  # foreign entries named in an error


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
