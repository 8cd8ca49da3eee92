"""Dataset references (`org/name@v1.2.0` or a build path), and push / pull of versioned builds on the Hub."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mathforge.builders.publish.manifest import read_manifest, verify
from mathforge.builders.recipe import SEMVER_RE

from mathforge.errors import InputError

REPO_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[^\s@]+))?$")


@dataclass(frozen=True)
class DatasetRef:
    """Where a dataset lives: a local build directory, or a Hub repo at a revision (tag, branch or commit)."""

    text: str
    path: Path | None = None
    repo: str | None = None
    revision: str | None = None


def parse_ref(text: str) -> DatasetRef:
    """`org/name@v1.2.0` (a bare `1.2.0` means the tag `v1.2.0`; no `@` means main) or an existing directory."""
    path = Path(text).expanduser()
    if path.exists() or text.startswith(("/", "./", "../", "~")):
        return DatasetRef(text, path=path)
    match = REPO_RE.match(text)
    if not match:
        raise InputError("not a build directory and not a Hub reference org/name[@version]", text)
    revision = match["revision"]
    if revision and SEMVER_RE.match(revision):
        revision = f"v{revision}"
    return DatasetRef(text, repo=match["repo"], revision=revision or "main")


def cache_root() -> Path:
    return Path(os.environ.get("MATHFORGE_CACHE", Path.home() / ".cache" / "mathforge")) / "datasets"


def resolve(text: str, out: str | Path | None = None) -> Path:
    """A verified local directory for a reference: the build itself, or a pulled (cached) Hub revision."""
    ref = parse_ref(text)
    if ref.path is not None:
        if not ref.path.is_dir():
            raise InputError("build directory does not exist", str(ref.path))
        verify(ref.path)
        return ref.path
    target = Path(out) if out else cache_root() / ref.repo.replace("/", "--") / ref.revision
    if target.exists() and (target / "manifest.json").exists() and out is None:
        verify(target)
        return target
    return pull(ref, target)


def pull(ref: DatasetRef, target: Path) -> Path:
    """Download one revision into `target` (staged, then moved into place) and check every sha256."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if target.exists() and any(target.iterdir()) and not (target / "manifest.json").exists():
        raise InputError("exists, is not empty and is not a build: refusing to overwrite", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        try:
            snapshot_download(ref.repo, repo_type="dataset", revision=ref.revision, local_dir=staging)
        except RevisionNotFoundError:
            raise InputError(f"revision {ref.revision!r} does not exist in {ref.repo}", ref.text) from None
        except RepositoryNotFoundError:
            raise InputError("dataset repo not found (or not visible with your token)", ref.text) from None
        except (OfflineModeIsEnabled, LocalEntryNotFoundError) as exc:
            raise InputError(f"cannot reach the Hub to resolve it and it is not cached ({type(exc).__name__})",
                             ref.text) from None
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's local_dir metadata
        verify(staging)
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


@dataclass
class PushResult:
    repo: str
    tag: str
    fingerprint: str
    commit: str | None
    unchanged: bool


def push(build: str | Path, repo: str, private: bool = False) -> PushResult:
    """Upload a verified build in one commit and tag it `v<version>`; same tag + same fingerprint is a no-op."""
    from huggingface_hub import HfApi, hf_hub_download

    build = Path(build)
    manifest = verify(build)
    tag = f"v{manifest['version']}"
    if not REPO_RE.match(repo) or "@" in repo:
        raise InputError("expected a Hub repo id org/name", repo, key="--repo")
    api = HfApi()
    api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    tags = {t.name for t in api.list_repo_refs(repo, repo_type="dataset").tags}
    if tag in tags:
        remote = json.loads(Path(hf_hub_download(repo, "manifest.json", repo_type="dataset", revision=tag))
                            .read_text())
        if remote.get("fingerprint") == manifest["fingerprint"]:
            record_push(build, repo, tag)
            return PushResult(repo, tag, manifest["fingerprint"], None, True)
        raise InputError(f"{repo}@{tag} already exists with fingerprint {remote.get('fingerprint', '?')[:16]}; "
                         f"this build is {manifest['fingerprint'][:16]}. Bump the recipe's version.", str(build))
    commit = api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=build, delete_patterns="*",
                               commit_message=f"{manifest['name']} {tag}",
                               commit_description=f"mathforge build, fingerprint {manifest['fingerprint']}")
    api.create_tag(repo, tag=tag, revision=commit.oid, repo_type="dataset",
                   tag_message=f"fingerprint {manifest['fingerprint']}")
    record_push(build, repo, tag)
    return PushResult(repo, tag, manifest["fingerprint"], commit.oid, False)


def pushes_file(build: Path) -> Path:
    return build.parent / f".{build.name}.pushed.json"


def record_push(build: Path, repo: str, tag: str) -> None:
    """Remember where a build went, beside it (inside it would change its files)."""
    path = pushes_file(build)
    seen = json.loads(path.read_text()) if path.exists() else []
    if f"{repo}@{tag}" not in seen:
        seen.append(f"{repo}@{tag}")
    path.write_text(json.dumps(seen, indent=1) + "\n")


def pushed_to(build: Path) -> list[str]:
    path = pushes_file(build)
    return json.loads(path.read_text()) if path.exists() else []


def local_builds(root: Path) -> list[dict]:
    """Every build under root (`<name>/<version>/manifest.json`), for `mathforge list`."""
    rows = []
    for manifest_path in sorted(root.glob("*/*/manifest.json")):
        try:
            manifest = read_manifest(manifest_path.parent)
        except InputError:
            continue
        rows.append({"name": manifest["name"], "version": manifest["version"],
                     "fingerprint": manifest["fingerprint"], "rows": manifest.get("rows", {}).get("default"),
                     "path": str(manifest_path.parent), "pushed": pushed_to(manifest_path.parent)})
    return rows
