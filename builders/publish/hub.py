"""Dataset references (`org/name@v1.2.0` or a build path), and push / pull of versioned builds on the Hub."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mathforge.builders.publish.manifest import MANIFEST, IntegrityError, read_manifest, verify
from mathforge.builders.recipe import SEMVER_RE

from mathforge.errors import InputError

REPO_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[^\s@]+))?$")
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
HUB_METADATA = ".gitattributes"  # the Hub keeps it in every repo; not part of a build unless its manifest says so


@dataclass(frozen=True)
class DatasetRef:
    """Where a dataset lives: a local build directory, or a Hub repo at a revision (tag, branch or commit)."""

    text: str
    path: Path | None = None
    repo: str | None = None
    revision: str | None = None


def revision_problem(revision: str) -> str | None:
    """Why `revision` is neither a 40-hex commit nor a tag / branch name by git's ref rules (None when it is one)."""
    if COMMIT_RE.fullmatch(revision):
        return None
    if any(ord(c) < 32 or ord(c) == 127 or c in " ~^:?*[\\" for c in revision):
        return "contains a space, a control character or one of ~ ^ : ? * [ \\"
    if revision == "@" or "@{" in revision:
        return "is `@` or contains `@{`"
    if ".." in revision:
        return "contains `..`"
    if revision.startswith("-"):
        return "starts with `-`"
    parts = revision.split("/")
    if "" in parts:
        return "has an empty path component (leading, trailing or double `/`)"
    if any(part.startswith(".") or part.endswith(".lock") for part in parts):
        return "has a component starting with `.` or ending with `.lock`"
    if revision.endswith("."):
        return "ends with `.`"
    return None


def parse_ref(text: str) -> DatasetRef:
    """`org/name@v1.2.0` (a bare `1.2.0` means the tag `v1.2.0`; no `@` means main) or an existing directory.

    The revision is checked (git ref rules, or a 40-hex commit) here, before anything touches the filesystem:
    it names the cache directory."""
    match = REPO_RE.match(text)
    if match and match["revision"] is not None:
        problem = revision_problem(match["revision"])
        if problem:
            raise InputError(f"revision {match['revision']!r} is not a tag, branch or commit: it {problem}", text)
    path = Path(text).expanduser()
    if text.startswith(("/", "./", "../", "~")) or path.exists():
        return DatasetRef(text, path=path)
    if not match:
        raise InputError("not a build directory and not a Hub reference org/name[@version]", text)
    revision = match["revision"]
    if revision and SEMVER_RE.match(revision):
        revision = f"v{revision}"
    return DatasetRef(text, repo=match["repo"], revision=revision or "main")


def cache_root() -> Path:
    return Path(os.environ.get("MATHFORGE_CACHE", Path.home() / ".cache" / "mathforge")) / "datasets"


def cache_dir(ref: DatasetRef) -> Path:
    """The cache directory of a Hub revision: one folder per repo, one per revision (`/` in a branch as `--`)."""
    if revision_problem(ref.revision):  # parse_ref checked it; a hand-made DatasetRef is checked here
        raise InputError(f"revision {ref.revision!r} is not a tag, branch or commit", ref.text)
    return cache_root() / ref.repo.replace("/", "--") / ref.revision.replace("/", "--")


def resolve(text: str, out: str | Path | None = None) -> Path:
    """A verified local directory for a reference: the build itself, or a pulled (cached) Hub revision."""
    ref = parse_ref(text)
    if ref.path is not None:
        if not ref.path.is_dir():
            raise InputError("build directory does not exist", str(ref.path))
        verify(ref.path)
        return ref.path
    target = Path(out) if out else cache_dir(ref)
    if target.exists() and (target / "manifest.json").exists() and out is None:
        try:
            verify(target)
            return target
        except InputError as bad:  # a damaged or stale cached copy: fetch it again (verified) or say both
            try:
                return pull(ref, target)
            except InputError as exc:
                raise InputError(f"the cached copy does not verify ({bad.message.splitlines()[0]}) and pulling it "
                                 f"again failed: {exc.message}", ref.text) from None
    return pull(ref, target)


def pull(ref: DatasetRef, target: Path) -> Path:
    """Download one revision into `target` (staged, then moved into place). The manifest is the closed list of the
    build's files: its paths must be safe, the remote files must be exactly those it lists, and every sha256 must
    match; anything else fails before the build is moved into place."""
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{ref.repo}@{ref.revision}"
    if target.exists() and any(target.iterdir()) and not (target / "manifest.json").exists():
        raise InputError("exists, is not empty and is not a build: refusing to overwrite", str(target))
    api = HfApi()
    try:
        commit = api.repo_info(ref.repo, repo_type="dataset", revision=ref.revision).sha
        # everything below reads this one commit, whatever the branch or tag does meanwhile
        remote = set(api.list_repo_files(ref.repo, repo_type="dataset", revision=commit))
    except RevisionNotFoundError:
        raise InputError(f"revision {ref.revision!r} does not exist in {ref.repo}", ref.text) from None
    except RepositoryNotFoundError:
        raise InputError("dataset repo not found (or not visible with your token)", ref.text) from None
    except (OfflineModeIsEnabled, LocalEntryNotFoundError) as exc:
        raise InputError(f"cannot reach the Hub to resolve it and it is not cached ({type(exc).__name__})",
                         ref.text) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if MANIFEST not in remote:
            raise InputError("not a mathforge build (no manifest.json)", where)
        try:
            hf_hub_download(ref.repo, MANIFEST, repo_type="dataset", revision=commit, local_dir=staging)
        except EntryNotFoundError:
            raise InputError("not a mathforge build (no manifest.json)", where) from None
        try:
            manifest = read_manifest(staging)
        except InputError as exc:  # named by where it came from, not by the staging directory
            raise InputError(exc.message, f"{where}: {MANIFEST}", exc.line, exc.key) from None
        listed = set(manifest["files"])
        ignored = set() if HUB_METADATA in listed else {HUB_METADATA}
        bad = [f"{rel}: not in the manifest" for rel in sorted(remote - listed - ignored - {MANIFEST})]
        bad += [f"{rel}: missing" for rel in sorted(listed - remote)]
        if bad:
            raise IntegrityError(f"{len(bad)} file(s) do not match the manifest:\n  " + "\n  ".join(bad), where)
        snapshot_download(ref.repo, repo_type="dataset", revision=commit, local_dir=staging,
                          ignore_patterns=sorted(ignored) or None)
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's local_dir metadata
        try:
            verify(staging, manifest)
        except IntegrityError as exc:
            raise IntegrityError(exc.message, where) from None
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


PUSH_ATTEMPTS = 5  # `main` moved under us (another version pushed meanwhile): look again, this many times


def push(build: str | Path, repo: str, private: bool = False) -> PushResult:
    """Upload a verified build in one commit on `main` and tag that exact commit `v<version>`; same tag + same
    fingerprint is a no-op, other content under the tag is refused.

    Concurrent pushes: the commit is made with `parent_commit` = the head whose state was checked, so the Hub
    refuses it (412) if `main` moved meanwhile; then the state is read again. A version already on `main` (tagged,
    or committed by a concurrent push that has not tagged it yet) is never committed twice, so a losing push
    leaves `main` and the tag as the winner made them."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    build = Path(build)
    manifest = verify(build)
    tag = f"v{manifest['version']}"
    if not REPO_RE.match(repo) or "@" in repo:
        raise InputError("expected a Hub repo id org/name", repo, key="--repo")
    if revision_problem(tag):
        raise InputError(f"version {manifest['version']!r} does not make a valid tag name", str(build), key="version")
    ours = manifest["fingerprint"]
    api = HfApi()
    api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    for _ in range(PUSH_ATTEMPTS):
        refs = api.list_repo_refs(repo, repo_type="dataset")
        head = next((b.target_commit for b in refs.branches if b.name == "main"), None)
        tagged = next((t.target_commit for t in refs.tags if t.name == tag), None)
        if tagged is not None:
            return _same_or_refuse(api, build, repo, tag, tagged, ours, tagged=True)
        if head is not None and _remote_manifest(api, repo, head).get("version") == manifest["version"]:
            # a concurrent (or interrupted) push committed this version and has not tagged it yet
            return _same_or_refuse(api, build, repo, tag, head, ours, tagged=False)
        try:
            with tempfile.TemporaryDirectory(prefix=".push-", dir=build.parent) as staged:
                folder = card_for_repo(build, manifest, repo, Path(staged))
                commit = api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=folder, delete_patterns="*",
                                           commit_message=f"{manifest['name']} {tag}", parent_commit=head,
                                           commit_description=f"mathforge build, fingerprint {ours}")
        except HfHubHTTPError as exc:
            if _status(exc) in (409, 412):  # main moved since `head`: nothing of ours was committed
                continue
            raise
        _create_tag(api, repo, tag, commit.oid, ours)
        record_push(build, repo, tag)
        return PushResult(repo, tag, ours, commit.oid, False)
    raise PushConflict(f"{repo}: main kept moving while pushing {tag} ({PUSH_ATTEMPTS} attempts); nothing of this "
                       "build was committed. Run the push again.", str(build))


def card_for_repo(build: Path, manifest: dict, repo: str, staged: Path) -> Path:
    """The build as it is pushed: every file hard-linked, except README.md, whose `<org>/<name>` placeholders
    name the real repo, and manifest.json, whose README entry follows (the fingerprint does not cover the card)."""
    card = build / "README.md"
    text = card.read_text() if card.is_file() else None
    if text is None or f"<org>/{manifest['name']}" not in text:
        return build
    for rel in manifest["files"]:
        target = staged / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(build / rel, target)
        except OSError:
            shutil.copyfile(build / rel, target)
    (staged / "README.md").unlink()
    data = text.replace(f"<org>/{manifest['name']}", repo).encode()
    (staged / "README.md").write_bytes(data)
    files = dict(manifest["files"])
    files["README.md"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (staged / MANIFEST).write_text(json.dumps({**manifest, "files": files}, indent=1, sort_keys=True) + "\n")
    return staged


class PushConflict(InputError):
    """A push that lost a race with other pushes to the same repo; it changed nothing."""


def _status(exc) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _remote_manifest(api, repo: str, revision: str) -> dict:
    """The manifest at a commit of the repo ({} when there is none or it is not a JSON object)."""
    from huggingface_hub.errors import EntryNotFoundError

    try:
        text = Path(api.hf_hub_download(repo, MANIFEST, repo_type="dataset", revision=revision)).read_text()
        data = json.loads(text)
    except (EntryNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _same_or_refuse(api, build: Path, repo: str, tag: str, commit: str, ours: str, tagged: bool) -> PushResult:
    """`commit` holds this version: a no-op if it is this very build (tagging it if it is not yet), else refused."""
    theirs = _remote_manifest(api, repo, commit).get("fingerprint")
    if theirs != ours:
        how = "" if tagged else " (committed on main by another push, not tagged yet)"
        raise InputError(f"{repo}@{tag} already exists{how} with fingerprint {str(theirs or '?')[:16]}; this build is "
                         f"{ours[:16]}. Bump the recipe's version.", str(build))
    if not tagged:
        _create_tag(api, repo, tag, commit, ours)
    record_push(build, repo, tag)
    return PushResult(repo, tag, ours, None, True)


def _create_tag(api, repo: str, tag: str, commit: str, ours: str) -> None:
    """Tag exactly `commit`; a tag created meanwhile by another push is fine only if it holds the same build."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.create_tag(repo, tag=tag, revision=commit, repo_type="dataset", tag_message=f"fingerprint {ours}")
    except HfHubHTTPError as exc:
        if _status(exc) != 409:
            raise
        tagged = next((t.target_commit for t in api.list_repo_refs(repo, repo_type="dataset").tags
                       if t.name == tag), None)
        theirs = _remote_manifest(api, repo, tagged).get("fingerprint") if tagged else None
        if tagged != commit and theirs != ours:
            raise PushConflict(f"{repo}@{tag} was created by a concurrent push (fingerprint "
                               f"{str(theirs or '?')[:16]}) while this build ({ours[:16]}) was committed as "
                               f"{commit[:12]}; `main` and the tag now differ: push a new version.", repo) from None


def pushes_file(build: Path) -> Path:
    return build.parent / f".{build.name}.pushed.json"


def record_push(build: Path, repo: str, tag: str) -> None:
    """Remember where a build went, beside it (inside it would change its files)."""
    path = pushes_file(build)
    seen = pushed_to(build)
    if f"{repo}@{tag}" not in seen:
        seen.append(f"{repo}@{tag}")
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)  # replaced whole: concurrent pushes
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(seen, indent=1) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def pushed_to(build: Path) -> list[str]:
    try:
        seen = json.loads(pushes_file(build).read_text())
    except (OSError, ValueError):
        return []
    return [str(item) for item in seen] if isinstance(seen, list) else []


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
