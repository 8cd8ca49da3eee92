"""A build's manifest: file hashes, lineage, the recipe in canonical form, and the fingerprint over all of it."""
from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mathforge.errors import InputError

MANIFEST = "manifest.json"
CARD = "README.md"  # the card shows the fingerprint, so the fingerprint covers every file but the card
FORMAT = 1


def mathforge_version() -> str:
    try:
        return version("mathforge")
    except PackageNotFoundError:
        return "0+unknown"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_input(path: str | Path) -> str:
    """A sample input's content hash: the file, or every file of a directory (sorted names and contents)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{child.relative_to(path)}\0{sha256_file(child)}\n".encode())
    return digest.hexdigest()


def problems_digest(problems) -> str:
    digest = hashlib.sha256()
    for p in problems:
        digest.update(json.dumps([p.problem_id, p.question, p.solution]).encode() + b"\n")
    return digest.hexdigest()


def file_table(root: Path) -> dict[str, dict]:
    """sha256 and size of every file under root except the manifest itself, by POSIX relative path."""
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel != MANIFEST:
            files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return files


def fingerprint(recipe: dict, lineage: dict, files: dict[str, dict]) -> str:
    """Everything that determines content: recipe (without output placement), inputs, models, every file."""
    body = {"format": FORMAT, "recipe": recipe, "lineage": lineage,
            "files": {path: meta["sha256"] for path, meta in files.items() if path != CARD}}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_manifest(root: Path, name: str, version_: str, recipe: dict, lineage: dict, rows: dict,
                   verifier: str, fingerprint_: str) -> dict:
    files = file_table(root)
    manifest = {"format": FORMAT, "name": name, "version": version_, "fingerprint": fingerprint_,
                "mathforge": mathforge_version(), "verifier": verifier, "recipe": recipe, "lineage": lineage,
                "rows": rows, "files": files}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def read_manifest(root: str | Path) -> dict:
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("not a mathforge build (no manifest.json)", str(root)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"manifest.json is not valid JSON: {exc.msg}", str(path), exc.lineno) from None
    for key in ("name", "version", "fingerprint", "files"):
        if key not in manifest:
            raise InputError("manifest.json lacks a required key", str(path), key=key)
    return manifest


def verify(root: str | Path, manifest: dict | None = None) -> dict:
    """Every file the manifest lists exists with its sha256 and size; raises on the first mismatch."""
    root = Path(root)
    manifest = manifest or read_manifest(root)
    bad = []
    for rel, meta in sorted(manifest["files"].items()):
        path = root / rel
        if not path.is_file():
            bad.append(f"{rel}: missing")
        elif path.stat().st_size != meta["size"] or sha256_file(path) != meta["sha256"]:
            bad.append(f"{rel}: sha256 mismatch (expected {meta['sha256'][:12]}…)")
    if bad:
        raise IntegrityError(f"{len(bad)} file(s) do not match the manifest:\n  " + "\n  ".join(bad), str(root))
    return manifest


class IntegrityError(InputError):
    """Downloaded or local build files that do not match their manifest."""
