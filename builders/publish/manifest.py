"""A build's manifest: file hashes, lineage, the recipe in canonical form, and the fingerprint over all of it."""
from __future__ import annotations

import hashlib
import json
import os
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mathforge.errors import InputError

MANIFEST = "manifest.json"
CARD = "README.md"  # the card shows the fingerprint, so the fingerprint covers every file but the card
FORMAT = 1
SHA256_RE = re.compile(r"[0-9a-f]{64}")


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
    """The manifest of a build, its structure and every file entry checked (bad input: InputError, exit 2)."""
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("not a mathforge build (no manifest.json)", str(root)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"manifest.json is not valid JSON: {exc.msg}", str(path), exc.lineno) from None
    except UnicodeDecodeError:
        raise InputError("manifest.json is not UTF-8 text", str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read manifest.json: {exc.strerror}", str(path)) from None
    return check_manifest(manifest, str(path))


def check_manifest(manifest, where: str) -> dict:
    """Required keys with the right types, and `files` a closed table of safe relative paths -> sha256 + size."""
    if not isinstance(manifest, dict):
        raise InputError("manifest.json is not a JSON object", where)
    for key in ("name", "version", "fingerprint", "files"):
        if key not in manifest:
            raise InputError("manifest.json lacks a required key", where, key=key)
    for key in ("name", "version", "fingerprint"):
        if not isinstance(manifest[key], str) or not manifest[key]:
            raise InputError("must be a non-empty string", where, key=key)
    files = manifest["files"]
    if not isinstance(files, dict):
        raise InputError("must be an object {relative path: {sha256, size}}", where, key="files")
    for rel, meta in files.items():
        problem = path_problem(rel)
        if problem:
            raise InputError(f"file entry {rel!r} {problem}", where, key="files")
        if not isinstance(meta, dict):
            raise InputError("must be an object {sha256, size}", where, key=f"files.{rel}")
        digest, size = meta.get("sha256"), meta.get("size")
        if not isinstance(digest, str) or not SHA256_RE.fullmatch(digest):
            raise InputError("must be 64 lowercase hex digits", where, key=f"files.{rel}.sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InputError("must be a non-negative integer", where, key=f"files.{rel}.size")
    return manifest


def path_problem(rel) -> str | None:
    """Why `rel` is not a normalized POSIX path inside the build (None when it is one)."""
    if not isinstance(rel, str) or not rel:
        return "is not a file path"
    if "\\" in rel or any(ord(c) < 32 for c in rel):
        return "contains a backslash or a control character"
    if rel.startswith("/"):
        return "is absolute: manifest paths are relative to the build"
    parts = rel.split("/")
    if ".." in parts:
        return "points outside the build (`..`)"
    if "" in parts or "." in parts:
        return "is not a normalized path"
    if rel == MANIFEST:
        return "is the manifest itself"
    return None


def build_files(root: Path) -> set[str]:
    """Every entry under root that is not a directory (symlinks to directories included, not followed), as POSIX
    relative paths, the manifest excepted."""
    found = set()
    for folder, dirnames, filenames in os.walk(root):
        base = Path(folder)
        for name in [d for d in dirnames if (base / d).is_symlink()]:
            dirnames.remove(name)
            filenames.append(name)
        found.update((base / name).relative_to(root).as_posix() for name in filenames)
    found.discard(MANIFEST)
    return found


def verify(root: str | Path, manifest: dict | None = None) -> dict:
    """The manifest is the closed list of the build's files: every listed file exists inside the build with its
    sha256 and size, and nothing else is there. Raises IntegrityError naming every offending file."""
    root = Path(root)
    manifest = check_manifest(manifest, str(root / MANIFEST)) if manifest is not None else read_manifest(root)
    inside = root.resolve()
    bad = []
    for rel, meta in sorted(manifest["files"].items()):
        path = root / rel
        try:
            escapes = not path.resolve().is_relative_to(inside)
        except (OSError, RuntimeError):  # a symlink loop
            escapes = True
        if escapes:
            bad.append(f"{rel}: resolves outside the build (symlink)")
        elif not path.is_file():
            bad.append(f"{rel}: missing")
        elif path.stat().st_size != meta["size"] or sha256_file(path) != meta["sha256"]:
            bad.append(f"{rel}: sha256 mismatch (expected {meta['sha256'][:12]}…)")
    bad += [f"{rel}: not in the manifest" for rel in sorted(build_files(root) - set(manifest["files"]))]
    if bad:
        raise IntegrityError(f"{len(bad)} file(s) do not match the manifest:\n  " + "\n  ".join(bad), str(root))
    return manifest


class IntegrityError(InputError):
    """Downloaded or local build files that do not match their manifest."""
