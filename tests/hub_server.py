"""A Hugging Face Hub protocol server on 127.0.0.1 for tests: repos, commits, LFS, refs, resolve."""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import re
import socketserver
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("hub_server")

# URL segment ("models", "datasets", "spaces") -> repo_type; None (no prefix, resolve/LFS URLs) -> model.
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space", None: "model"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# Files with these suffixes are stored through LFS whatever their size (as a Hub .gitattributes would say).
LFS_SUFFIXES = (
    ".parquet", ".arrow", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".bin", ".safetensors", ".pt", ".pth",
    ".ckpt", ".npy", ".npz", ".h5", ".onnx", ".pkl", ".pickle", ".msgpack", ".zip", ".gz", ".tar", ".zst", ".lance",
)
INITIAL_GITATTRIBUTES = b"".join(
    b"*%s filter=lfs diff=lfs merge=lfs -text\n" % suffix.encode() for suffix in LFS_SUFFIXES
)
COMMIT_OID = re.compile(r"[0-9a-f]{40}")
SHA256_OID = re.compile(r"[0-9a-f]{64}")
TRUE_VALUES = {"1", "true", "True", "yes"}

# A file in a commit: ("regular", content) or ("lfs", sha256 hex oid, size).
Entry = tuple


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def entry_size(entry: Entry) -> int:
    return len(entry[1]) if entry[0] == "regular" else entry[2]


def entry_git_oid(entry: Entry) -> str:
    """The git blob oid: of the content for regular files, of the pointer file for LFS files."""
    return git_blob_oid(entry[1]) if entry[0] == "regular" else git_blob_oid(lfs_pointer(entry[1], entry[2]))


class HubError(Exception):
    """An HTTP error answered the way the Hub does: JSON {"error"}, X-Error-Code and X-Error-Message headers."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None,
                 extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, dict(headers or {})
        self.extra = dict(extra or {})  # more JSON body fields

    def response(self) -> Response:
        one_line = " ".join(self.message.split()).encode("ascii", "replace").decode()
        headers = {"X-Error-Message": one_line, **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return Response.json({"error": self.message, **self.extra}, status=self.status, headers=headers)


def repo_not_found(repo_type: str, repo_id: str, status: int = 404) -> HubError:
    return HubError(status, f"Repository Not Found: {repo_type} {repo_id}", "RepoNotFound")


@dataclass
class Request:
    method: str
    path: str  # raw (percent-encoded) path, no query
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # regex groups of the route, percent-decoded

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        return self.arg(name, "false") in TRUE_VALUES

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering (fault injection)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict | None = None, content_type: str = "application/json"):
        return cls(status, json.dumps(payload).encode(), {"Content-Type": content_type, **(headers or {})})


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, Entry]
    message: str
    description: str = ""
    date: str = field(default_factory=now_iso)
    author: str = "user"


class Repo:
    """One repository: its commits, branches, tags and LFS objects. Callers hold `lock` around reads and writes."""

    _oid_counter = itertools.count()

    def __init__(self, repo_type: str, repo_id: str, private: bool, author: str, gitattributes: bool):
        self.repo_type, self.repo_id, self.private = repo_type, repo_id, private
        self.created_at = now_iso()
        self.lock = threading.RLock()
        self.commits: dict[str, Commit] = {}
        self.branches: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.lfs_expected_sizes: dict[str, int] = {}  # announced by the batch API, checked by the PUT
        self.corrupted: dict[tuple[str, str], bytes] = {}  # (commit oid, path) -> bytes resolve serves instead
        files = {".gitattributes": ("regular", INITIAL_GITATTRIBUTES)} if gitattributes else {}
        root = self._new_commit(None, files, "initial commit", "", author)
        self.branches["main"] = root.oid

    def _new_commit(self, parent: str | None, files: dict, message: str, description: str, author: str) -> Commit:
        seed = f"{self.repo_type}/{self.repo_id}\n{parent}\n{message}\n{next(self._oid_counter)}\n{time.time_ns()}"
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, files, message, description, author=author)
        self.commits[commit.oid] = commit
        return commit

    def resolve(self, revision: str) -> Commit:
        """Branch, tag, refs/heads/x, refs/tags/x or a full commit oid; anything else is RevisionNotFound."""
        for prefix, refs in (("", self.branches), ("", self.tags), ("refs/heads/", self.branches),
                             ("refs/tags/", self.tags)):
            name = revision[len(prefix):] if revision.startswith(prefix) else None
            if name in refs:
                return self.commits[refs[name]]
        if COMMIT_OID.fullmatch(revision) and revision in self.commits:
            return self.commits[revision]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def refs(self) -> dict[str, dict[str, str]]:
        with self.lock:
            return {"branches": dict(self.branches), "tags": dict(self.tags)}

    def history(self, commit: Commit) -> list[Commit]:
        out = [commit]
        while out[-1].parent is not None:
            out.append(self.commits[out[-1].parent])
        return out

    def content(self, entry: Entry) -> bytes:
        return entry[1] if entry[0] == "regular" else self.lfs_objects[entry[1]]

    # -- listing ---------------------------------------------------------------------------------------------------

    @staticmethod
    def folders(files: dict[str, Entry]) -> set[str]:
        return {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}

    @staticmethod
    def subtree(files: dict[str, Entry], folder: str) -> dict[str, Entry]:
        prefix = folder.rstrip("/") + "/"
        return {p: e for p, e in files.items() if p.startswith(prefix)}

    def tree_oid(self, files: dict[str, Entry], folder: str) -> str:
        listing = "".join(f"{p}\0{entry_git_oid(e)}\n" for p, e in sorted(self.subtree(files, folder).items()))
        return hashlib.sha1(b"tree\0" + listing.encode()).hexdigest()

    def last_commit(self, commit: Commit, path: str, is_folder: bool) -> Commit:
        def state(c: Commit):
            return self.subtree(c.files, path) if is_folder else c.files.get(path)

        history = self.history(commit)
        for newer, older in itertools.pairwise(history):
            if state(newer) != state(older):
                return newer
        return history[-1]

    def path_info(self, commit: Commit, path: str, expand: bool) -> dict | None:
        """A tree / paths-info item for `path` (file or folder) at `commit`, or None if absent."""
        files = commit.files
        if path in files:
            entry = files[path]
            item: dict[str, Any] = {"type": "file", "oid": entry_git_oid(entry), "size": entry_size(entry),
                                    "path": path}
            if entry[0] == "lfs":
                item["lfs"] = {"oid": entry[1], "size": entry[2], "pointerSize": len(lfs_pointer(entry[1], entry[2]))}
            if expand:
                item["securityFileStatus"] = {"status": "safe", "avScan": {"virusFound": False, "virusNames": None},
                                              "pickleImportScan": None}
        elif path in self.folders(files):
            item = {"type": "directory", "oid": self.tree_oid(files, path), "size": 0, "path": path}
        else:
            return None
        if expand:
            last = self.last_commit(commit, path, item["type"] == "directory")
            item["lastCommit"] = {"id": last.oid, "title": last.message, "date": last.date}
        return item

    def tree(self, commit: Commit, folder: str, recursive: bool, expand: bool) -> list[dict]:
        files, folder = commit.files, folder.strip("/")
        if folder and folder not in self.folders(files):
            raise HubError(404, f"Folder {folder} does not exist at {commit.oid}", "EntryNotFound",
                           {"X-Repo-Commit": commit.oid})
        prefix = folder + "/" if folder else ""
        paths = sorted(p for p in set(files) | self.folders(files) if p.startswith(prefix))
        if not recursive:
            paths = [p for p in paths if "/" not in p[len(prefix):]]
        return [self.path_info(commit, p, expand) for p in paths]

    # -- writing ---------------------------------------------------------------------------------------------------

    def apply_commit(self, branch: str, header: dict, operations: list[dict], author: str) -> Commit:
        """Apply a whole NDJSON commit to `branch`, or raise and change nothing."""
        with self.lock:
            if branch not in self.branches:
                self.resolve(branch)  # RevisionNotFound for unknown revisions
                raise HubError(400, f"Invalid rev id: {branch} is not a branch")
            head = self.branches[branch]
            parent_commit = header.get("parentCommit")
            if parent_commit and parent_commit != head:
                raise HubError(412, f"A commit has happened since {parent_commit}. Please refresh and try again.")
            files = dict(self.commits[head].files)
            for op in operations:
                self._apply_operation(files, op.get("key"), op.get("value") or {})
            self._check_tree(files)
            commit = self._new_commit(head, files, header.get("summary") or "", header.get("description") or "",
                                      author)
            self.branches[branch] = commit.oid
            return commit

    def _apply_operation(self, files: dict[str, Entry], key: str | None, value: dict) -> None:
        if key == "file":
            path, encoding = checked_path(value.get("path")), value.get("encoding", "base64")
            content = value.get("content", "")
            try:
                files[path] = ("regular", base64.b64decode(content, validate=True) if encoding == "base64"
                               else content.encode())
            except ValueError as err:
                raise HubError(400, f"Invalid {encoding} content for {path}: {err}") from None
        elif key == "lfsFile":
            path, oid, size = checked_path(value.get("path")), value.get("oid"), value.get("size")
            if value.get("algo", "sha256") != "sha256" or oid not in self.lfs_objects:
                raise HubError(400, f"Your push was rejected because an LFS pointer pointed to a file that does not "
                                    f"exist: {path} ({oid})")
            if size is not None and size != len(self.lfs_objects[oid]):
                raise HubError(400, f"LFS object {oid} for {path} has size {len(self.lfs_objects[oid])}, not {size}")
            files[path] = ("lfs", oid, len(self.lfs_objects[oid]))
        elif key == "deletedFile":
            path = checked_path(value.get("path"))
            if path not in files:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del files[path]
        elif key == "deletedFolder":
            folder = checked_path(str(value.get("path") or "").rstrip("/"))
            doomed = self.subtree(files, folder)
            if not doomed:
                raise HubError(404, f"A folder with this name doesn't exist: {folder}", "EntryNotFound")
            for path in doomed:
                del files[path]
        else:
            raise HubError(400, f"Unknown commit operation key: {key!r}")

    def _check_tree(self, files: dict[str, Entry]) -> None:
        clash = self.folders(files) & set(files)
        if clash:
            raise HubError(400, f"Paths are both a file and a folder: {sorted(clash)}")


def checked_path(path: Any) -> str:
    if not isinstance(path, str) or not path or path.startswith("/") or path.endswith("/"):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    if any(part in ("", ".", "..", ".git") for part in path.split("/")):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


class HubStore:
    """All repositories, keyed by (repo_type, repo_id)."""

    def __init__(self, gitattributes: bool):
        self.gitattributes = gitattributes
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}

    def create(self, repo_type: str, repo_id: str, private: bool, author: str, url: str) -> Repo:
        with self.lock:
            if (repo_type, repo_id) in self.repos:  # the Hub's 409 carries the url; create_repo(exist_ok) needs it
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}", extra={"url": url})
            repo = Repo(repo_type, repo_id, private, author, self.gitattributes)
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def get(self, repo_type: str, repo_id: str) -> Repo:
        with self.lock:
            repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise repo_not_found(repo_type, repo_id)
        return repo

    def delete(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            if self.repos.pop((repo_type, repo_id), None) is None:
                raise repo_not_found(repo_type, repo_id)


# -- routes --------------------------------------------------------------------------------------------------------

_KIND = r"(?P<kind>models|datasets|spaces)"
_PREFIX = r"(?:(?P<kind>datasets|spaces)/)?"
_REPO = r"(?P<repo>[^/]+/[^/]+)"
_REV = r"(?P<rev>[^/]+)"
# (method, path regex on the raw percent-encoded path, route name, needs a token)
ROUTES: list[tuple[str, str, str, bool]] = [
    ("POST", r"/api/repos/create", "repo_create", True),
    ("POST", r"/api/repos/delete", "repo_delete", True),
    ("POST", r"/api/validate-yaml", "validate_yaml", False),
    ("GET", r"/api/whoami-v2", "whoami", True),
    ("GET", rf"/api/{_KIND}/{_REPO}", "repo_info", False),
    ("GET", rf"/api/{_KIND}/{_REPO}/revision/{_REV}", "repo_info", False),
    ("GET", rf"/api/{_KIND}/{_REPO}/refs", "refs", False),
    ("GET", rf"/api/{_KIND}/{_REPO}/tree/{_REV}(?:/(?P<path>.*))?", "tree", False),
    ("POST", rf"/api/{_KIND}/{_REPO}/paths-info/{_REV}", "paths_info", False),
    ("GET", rf"/api/{_KIND}/{_REPO}/commits/{_REV}", "commits", False),
    ("POST", rf"/api/{_KIND}/{_REPO}/preupload/{_REV}", "preupload", True),
    ("POST", rf"/api/{_KIND}/{_REPO}/commit/{_REV}", "commit", True),
    ("POST", rf"/api/{_KIND}/{_REPO}/tag/{_REV}", "tag_create", True),
    ("DELETE", rf"/api/{_KIND}/{_REPO}/tag/{_REV}", "tag_delete", True),
    ("POST", rf"/api/{_KIND}/{_REPO}/branch/{_REV}", "branch_create", True),
    ("DELETE", rf"/api/{_KIND}/{_REPO}/branch/{_REV}", "branch_delete", True),
    ("POST", rf"/{_PREFIX}{_REPO}\.git/info/lfs/objects/batch", "lfs_batch", True),
    ("POST", rf"/{_PREFIX}{_REPO}\.git/info/lfs/objects/verify", "lfs_verify", True),
    ("PUT", rf"/_lfs/{_KIND}/{_REPO}/(?P<oid>[0-9a-f]{{64}})", "lfs_put", False),  # the "presigned" upload URL
    ("GET", rf"/{_PREFIX}{_REPO}/resolve/{_REV}/(?P<path>.+)", "resolve_get", False),
    ("HEAD", rf"/{_PREFIX}{_REPO}/resolve/{_REV}/(?P<path>.+)", "resolve_head", False),
]
COMPILED_ROUTES = [(method, re.compile(pattern), name, auth) for method, pattern, name, auth in ROUTES]


class HubProtocol:
    """Maps Hub API requests onto the store: one method per route name, each returns a Response."""

    def __init__(self, hub: HubServer):
        self.hub = hub
        self.store = hub.store
        missing = [name for _, _, name, _ in ROUTES if not callable(getattr(self, name, None))]
        assert not missing, f"routes without a handler method: {missing}"

    def match(self, method: str, path: str) -> tuple[str, bool, dict[str, str]] | None:
        for route_method, pattern, name, auth in COMPILED_ROUTES:
            found = pattern.fullmatch(path)
            if route_method == method and found:
                params = {k: unquote(v) for k, v in found.groupdict().items() if v is not None}
                return name, auth, params
        return None

    # -- helpers ---------------------------------------------------------------------------------------------------

    def repo(self, req: Request) -> Repo:
        repo = self.store.get(REPO_TYPES[req.params.get("kind")], req.params["repo"])
        if repo.private and not req.headers.get("Authorization"):
            raise repo_not_found(repo.repo_type, repo.repo_id, status=401)
        return repo

    def repo_url(self, repo: Repo) -> str:
        return f"{self.hub.url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    # -- repos -----------------------------------------------------------------------------------------------------

    def repo_create(self, req: Request) -> Response:
        payload = req.json() or {}
        name, organization = payload.get("name"), payload.get("organization") or self.hub.username
        repo_type = payload.get("type") or "model"
        if not name or repo_type not in URL_PREFIXES:
            raise HubError(400, f"Invalid repo name or type: {name!r} {repo_type!r}")
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        repo_id = f"{organization}/{name}"
        url = f"{self.hub.url}/{URL_PREFIXES[repo_type]}{repo_id}"
        repo = self.store.create(repo_type, repo_id, private, self.hub.username, url)
        return Response.json({"url": url, "name": repo.repo_id, "id": repo.repo_id})

    def repo_delete(self, req: Request) -> Response:
        payload = req.json() or {}
        organization = payload.get("organization") or self.hub.username
        self.store.delete(payload.get("type") or "model", f"{organization}/{payload.get('name')}")
        return Response.json({})

    def validate_yaml(self, req: Request) -> Response:
        content = (req.json() or {}).get("content") or ""
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.DOTALL)
        if match:
            try:
                import yaml

                yaml.safe_load(match.group(1))
            except ImportError:
                pass
            except Exception as err:  # any YAML error is a validation error
                return Response.json({"errors": [{"message": f"Invalid YAML: {err}"}], "warnings": []}, status=400)
        return Response.json({"errors": [], "warnings": []})

    def whoami(self, req: Request) -> Response:
        token = {"displayName": "test", "role": "write"}
        return Response.json({"type": "user", "name": self.hub.username, "fullname": self.hub.username, "orgs": [],
                              "auth": {"type": "access_token", "accessToken": token}})

    def repo_info(self, req: Request) -> Response:
        repo = self.repo(req)
        with repo.lock:
            commit = repo.resolve(req.params.get("rev", "main"))
            blobs = req.flag("blobs")
            siblings = []
            for path in sorted(commit.files):
                sibling: dict[str, Any] = {"rfilename": path}
                if blobs:
                    info = repo.path_info(commit, path, expand=False)
                    sibling.update(size=info["size"], blobId=info["oid"])
                    if "lfs" in info:
                        sibling["lfs"] = {"sha256": info["lfs"]["oid"], "size": info["lfs"]["size"],
                                          "pointerSize": info["lfs"]["pointerSize"]}
                siblings.append(sibling)
            body = {
                "_id": hashlib.md5(f"{repo.repo_type}/{repo.repo_id}".encode()).hexdigest()[:24],
                "id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": commit.oid, "private": repo.private,
                "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
                "createdAt": repo.created_at, "lastModified": commit.date, "siblings": siblings,
            }
        if repo.repo_type == "model":
            body["modelId"] = repo.repo_id
        return Response.json(body)

    def refs(self, req: Request) -> Response:
        repo = self.repo(req)
        refs = repo.refs()

        def items(kind: str, mapping: dict[str, str]) -> list[dict]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": oid} for n, oid in sorted(mapping.items())]

        return Response.json({"branches": items("heads", refs["branches"]), "tags": items("tags", refs["tags"]),
                              "converts": [], "pullRequests": []})

    def tree(self, req: Request) -> Response:
        repo = self.repo(req)
        with repo.lock:
            commit = repo.resolve(req.params["rev"])
            return Response.json(repo.tree(commit, req.params.get("path", ""), req.flag("recursive"),
                                           req.flag("expand")))

    def paths_info(self, req: Request) -> Response:
        repo = self.repo(req)
        if (req.headers.get("Content-Type") or "").startswith("application/json"):
            payload = req.json() or {}
            paths, expand = payload.get("paths") or [], bool(payload.get("expand"))
        else:
            form = parse_qs(req.body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), (form.get("expand") or ["false"])[-1] in TRUE_VALUES
        with repo.lock:
            commit = repo.resolve(req.params["rev"])
            infos = [repo.path_info(commit, p.strip("/"), expand) for p in paths]
        return Response.json([info for info in infos if info is not None])

    def commits(self, req: Request) -> Response:
        repo = self.repo(req)
        with repo.lock:
            history = repo.history(repo.resolve(req.params["rev"]))
        return Response.json([{"id": c.oid, "title": c.message, "message": c.description, "date": c.date,
                               "authors": [{"user": c.author}]} for c in history])

    # -- refs ------------------------------------------------------------------------------------------------------

    def tag_create(self, req: Request) -> Response:
        repo, tag = self.repo(req), (req.json() or {}).get("tag")
        if not tag or not isinstance(tag, str):
            raise HubError(400, "Missing tag name")
        with repo.lock:
            target = repo.resolve(req.params["rev"])
            if tag in repo.tags:
                raise HubError(409, f"Tag {tag} already exists")
            repo.tags[tag] = target.oid
        return Response.json({"name": tag, "ref": f"refs/tags/{tag}", "targetCommit": target.oid})

    def tag_delete(self, req: Request) -> Response:
        repo, tag = self.repo(req), req.params["rev"]
        with repo.lock:
            if repo.tags.pop(tag, None) is None:
                raise HubError(404, f"Tag {tag} does not exist", "RevisionNotFound")
        return Response.json({})

    def branch_create(self, req: Request) -> Response:
        repo, branch = self.repo(req), req.params["rev"]
        starting_point = (req.json() or {}).get("startingPoint") or "main"
        with repo.lock:
            target = repo.resolve(starting_point)
            if branch in repo.branches:
                raise HubError(409, f"Branch {branch} already exists")
            repo.branches[branch] = target.oid
        return Response.json({})

    def branch_delete(self, req: Request) -> Response:
        repo, branch = self.repo(req), req.params["rev"]
        with repo.lock:
            if branch == "main":
                raise HubError(403, "Cannot delete the main branch")
            if repo.branches.pop(branch, None) is None:
                raise HubError(404, f"Branch {branch} does not exist", "RevisionNotFound")
        return Response.json({})

    # -- uploads ---------------------------------------------------------------------------------------------------

    def upload_mode(self, path: str, size: int, sample: bytes) -> str:
        if size == 0:
            return "regular"
        if path.lower().endswith(LFS_SUFFIXES) or size > self.hub.lfs_threshold or b"\0" in sample:
            return "lfs"
        return "regular"

    def preupload(self, req: Request) -> Response:
        repo, payload = self.repo(req), req.json() or {}
        with repo.lock:
            commit = repo.resolve(req.params["rev"])
            out = []
            for item in payload.get("files") or []:
                path, size = checked_path(item.get("path")), int(item.get("size", 0))
                sample = base64.b64decode(item.get("sample") or "")
                info: dict[str, Any] = {"path": path, "uploadMode": self.upload_mode(path, size, sample),
                                        "shouldIgnore": False}
                existing = commit.files.get(path)
                if existing is not None:  # lets the client skip unchanged files (sha256 for LFS, git sha1 otherwise)
                    info["oid"] = existing[1] if existing[0] == "lfs" else git_blob_oid(existing[1])
                out.append(info)
        return Response.json({"files": out, "commitOid": commit.oid})

    def commit(self, req: Request) -> Response:
        repo = self.repo(req)
        if req.flag("create_pr"):
            raise HubError(400, "hub_server does not implement create_pr")
        lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
        headers = [line.get("value") or {} for line in lines if line.get("key") == "header"]
        if len(headers) != 1:
            raise HubError(400, "A commit needs exactly one header line")
        if self.hub.take_fault("fail_commits"):
            raise HubError(500, "Injected commit failure (hub_server.fail_commits)")
        operations = [line for line in lines if line.get("key") != "header"]
        self.hub.wait_in_line()
        commit = repo.apply_commit(req.params["rev"], headers[0], operations, self.hub.username)
        return Response.json({"success": True, "commitOid": commit.oid, "pullRequestUrl": None,
                              "commitUrl": f"{self.repo_url(repo)}/commit/{commit.oid}"})

    def lfs_batch(self, req: Request) -> Response:
        repo, payload = self.repo(req), req.json() or {}
        if payload.get("operation") != "upload":
            raise HubError(400, f"hub_server only implements the LFS upload operation, not {payload.get('operation')}")
        kind = {"model": "models", "dataset": "datasets", "space": "spaces"}[repo.repo_type]
        objects = []
        with repo.lock:
            for obj in payload.get("objects") or []:
                oid, size = obj.get("oid"), obj.get("size")
                if not isinstance(oid, str) or not SHA256_OID.fullmatch(oid) or not isinstance(size, int) or size < 0:
                    raise HubError(422, f"Invalid LFS object: {obj!r}")
                if oid in repo.lfs_objects:
                    objects.append({"oid": oid, "size": size})  # already stored: no action, the client skips it
                    continue
                repo.lfs_expected_sizes[oid] = size
                objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                    "upload": {"href": f"{self.hub.url}/_lfs/{kind}/{repo.repo_id}/{oid}", "expires_in": 3600},
                    "verify": {"href": f"{self.repo_url(repo)}.git/info/lfs/objects/verify"},
                }})
        return Response.json({"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    def lfs_put(self, req: Request) -> Response:
        repo, oid = self.repo(req), req.params["oid"]
        if self.hub.take_fault("drop_lfs_puts"):
            return Response(drop=True)
        if self.hub.take_fault("fail_lfs_puts"):
            # Retry-After: 0 makes huggingface_hub wait 1 s between retries instead of 1, 2, 4, 8, 8 s.
            status = self.hub.fail_lfs_puts_status
            return Response(status, b"injected LFS PUT failure", {"Retry-After": "0", "Content-Type": "text/plain"})
        if hashlib.sha256(req.body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match its sha256 oid {oid}")
        with repo.lock:
            expected = repo.lfs_expected_sizes.get(oid)
            if expected is not None and expected != len(req.body):
                raise HubError(400, f"Uploaded {len(req.body)} bytes for {oid}, the batch announced {expected}")
            repo.lfs_objects[oid] = req.body
        return Response(200, b"", {"ETag": f'"{hashlib.md5(req.body).hexdigest()}"'})

    def lfs_verify(self, req: Request) -> Response:
        repo, payload = self.repo(req), req.json() or {}
        with repo.lock:
            data = repo.lfs_objects.get(payload.get("oid"))
        if data is None or len(data) != payload.get("size"):
            raise HubError(404, f"LFS object {payload.get('oid')} was not uploaded")
        return Response.json({})

    # -- downloads -------------------------------------------------------------------------------------------------

    def resolve_get(self, req: Request) -> Response:
        repo = self.repo(req)
        with repo.lock:
            commit = repo.resolve(req.params["rev"])
            entry = commit.files.get(req.params["path"])
            if entry is None:
                raise HubError(404, f"Entry not found: {req.params['path']}", "EntryNotFound",
                               {"X-Repo-Commit": commit.oid})
            data = repo.corrupted.get((commit.oid, req.params["path"])) or repo.content(entry)
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
                   "Content-Disposition": f'inline; filename="{req.params["path"].rsplit("/", 1)[-1]}"'}
        if entry[0] == "lfs":
            headers.update({"ETag": f'"{entry[1]}"', "X-Linked-Etag": f'"{entry[1]}"', "X-Linked-Size": str(entry[2])})
        else:
            headers["ETag"] = f'"{git_blob_oid(entry[1])}"'
        byte_range = parse_range(req.headers.get("Range"), len(data))
        if byte_range is None:
            return Response(200, data, headers)
        if byte_range == "unsatisfiable":
            return Response(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
        start, end = byte_range
        return Response(206, data[start:end + 1], {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"})

    resolve_head = resolve_get  # the handler sends no body for HEAD


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """One `bytes=` range -> inclusive (start, end); None to answer the whole body; "unsatisfiable" for a 416."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header or "")
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix range: the last N bytes
        length = int(last)
        return (max(size - length, 0), size - 1) if length and size else "unsatisfiable"
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return "unsatisfiable"
    return start, end


class HubRequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 I/O: bodies (Content-Length or chunked), keep-alive, auth bookkeeping, dropped connections."""

    protocol_version = "HTTP/1.1"
    server_version = "hub_server/1.0"

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        hub: HubServer = self.server.hub  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        req = Request(self.command, split.path, parse_qs(split.query, keep_blank_values=True), self.headers,
                      self._read_body())
        route = hub.protocol.match(req.method, req.path)
        name = route[0] if route else "unknown"
        try:
            if route is None:
                hub.note_unknown(req.method, self.path)
                raise HubError(404, f"hub_server has no route for {req.method} {split.path}")
            name, needs_token, req.params = route
            hub.note_request(name, req.headers.get("Authorization"))
            if needs_token and hub.require_auth and not (req.headers.get("Authorization") or "").startswith("Bearer "):
                raise HubError(401, "You must be authenticated (Authorization: Bearer <token>) for this request")
            response = getattr(hub.protocol, name)(req)
        except HubError as err:
            response = err.response()
        except Exception as err:  # answer 500 and keep serving, like a real server
            log.exception("hub_server: %s %s failed", req.method, split.path)
            response = HubError(500, f"hub_server internal error: {type(err).__name__}: {err}").response()
        hub.note_response(req.method, self.path, name, response)
        if response.drop:
            self.close_connection = True
            return
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if req.method != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("hub_server: " + format, *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's reverse DNS lookup of the host
        self.server_name, self.server_port = self.server_address[:2]


class HubServer:
    """The server: lifecycle on 127.0.0.1, fault knobs, counters. `HubServer().start()` or `with HubServer()`."""

    def __init__(self, *, username: str = "user", lfs_threshold: int = 10_000, initial_gitattributes: bool = True,
                 require_auth: bool = True):
        self.username = username  # namespace given to repos created without an organization; commit author
        self.lfs_threshold = lfs_threshold  # preupload answers "lfs" above this many bytes
        self.require_auth = require_auth  # writes without "Authorization: Bearer ..." get 401
        self.store = HubStore(initial_gitattributes)
        self.protocol = HubProtocol(self)
        # Fault knobs: each is a count of upcoming requests to spoil, decremented as they are spoiled.
        self.drop_lfs_puts = 0  # LFS PUTs answered by closing the connection (body read, no response)
        self.fail_lfs_puts = 0  # LFS PUTs answered with `fail_lfs_puts_status` and Retry-After: 0
        self.fail_lfs_puts_status = 500
        self.fail_commits = 0  # commit POSTs answered 500 before anything is applied
        self._commit_gate: threading.Barrier | None = None  # see line_up_commits
        self._gate_left = 0
        # Bookkeeping.
        self.counters: Counter[str] = Counter()  # route name -> requests; also "unknown", "unauthenticated"
        self.authorization_counts: Counter[str] = Counter()  # raw Authorization value -> requests (never logged)
        self.request_log: list[tuple[str, str, str, int]] = []  # (method, path+query, route, status or -1 dropped)
        self.unknown_routes: list[str] = []
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.host, self.port, self.url = "127.0.0.1", 0, ""

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> HubServer:
        self._httpd = _HTTPServer(("127.0.0.1", 0), HubRequestHandler)
        self._httpd.hub = self  # type: ignore[attr-defined]
        self.port = self._httpd.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"hub_server:{self.port}", daemon=True)
        self._thread.start()
        log.info("hub_server: listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def __enter__(self) -> HubServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client_env(self, hf_home: str, token: str = "hf_test_token") -> dict[str, str]:
        """Environment variables a client process needs (set them before importing huggingface_hub/datasets)."""
        return {"HF_ENDPOINT": self.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": token, "HF_HOME": hf_home,
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1", "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost"}

    # -- races and hostile edits (tests call these) ------------------------------------------------------------------

    def line_up_commits(self, count: int, timeout: float = 120.0) -> None:
        """The next `count` commit POSTs wait until all of them have arrived (or `timeout` passed), then are applied
        one at a time: concurrent pushes that read the same head really race (`parentCommit` decides)."""
        with self._lock:
            self._commit_gate, self._gate_left = threading.Barrier(count, timeout=timeout), count

    def wait_in_line(self) -> None:
        with self._lock:
            gate = self._commit_gate
            if gate is None:
                return
            self._gate_left -= 1
            if self._gate_left <= 0:
                self._commit_gate = None
        try:
            gate.wait()
        except threading.BrokenBarrierError:  # timed out waiting for the others: go ahead alone
            pass

    def commit_files(self, repo_id: str, files: dict[str, bytes] | None = None, delete: tuple[str, ...] = (),
                     branch: str = "main", tag: str | None = None, repo_type: str = "dataset",
                     message: str = "direct edit") -> str:
        """Commit straight into the store (no client, like someone else's push): add or replace `files` (regular
        entries), delete paths, and point `tag` (created or moved) at the new commit. Returns the commit oid."""
        repo = self.repo(repo_id, repo_type)
        operations = [{"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(),
                                                "encoding": "base64"}} for path, data in (files or {}).items()]
        operations += [{"key": "deletedFile", "value": {"path": path}} for path in delete]
        with repo.lock:
            commit = repo.apply_commit(branch, {"summary": message}, operations, self.username)
            if tag:
                repo.tags[tag] = commit.oid
        return commit.oid

    # -- inspection (tests call these; they raise KeyError for an unknown repo or revision) -------------------------

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        with self.store.lock:
            repo = self.store.repos.get((repo_type, repo_id))
        if repo is None:
            raise KeyError(f"hub_server has no {repo_type} repo {repo_id}")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        try:
            return repo.resolve(revision)
        except HubError:
            raise KeyError(f"{repo.repo_id} has no revision {revision}") from None

    def refs(self, repo_id: str, repo_type: str = "dataset") -> dict[str, dict[str, str]]:
        """A copy of {"branches": {name: commit oid}, "tags": {name: commit oid}}."""
        return self.repo(repo_id, repo_type).refs()

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> dict[str, bytes]:
        """{path: content} at a revision (branch, tag or commit oid)."""
        repo = self.repo(repo_id, repo_type)
        with repo.lock:
            return {path: repo.content(entry) for path, entry in self._commit(repo, revision).files.items()}

    def branch_files(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> set[str]:
        """The paths at a revision; an empty set when the repo was never created."""
        try:
            repo = self.repo(repo_id, repo_type)
        except KeyError:
            return set()
        with repo.lock:
            return set(self._commit(repo, revision).files)

    def upload_modes(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> dict[str, str]:
        """{path: "lfs" | "regular"} at a revision."""
        repo = self.repo(repo_id, repo_type)
        with repo.lock:
            return {path: entry[0] for path, entry in self._commit(repo, revision).files.items()}

    def corrupt(self, repo_id: str, revision: str, path: str, repo_type: str = "dataset") -> None:
        """Serve other bytes (same length) for `path` at that commit; the metadata (ETag, size, oids) stays true,
        like a bad CDN or bucket would."""
        repo = self.repo(repo_id, repo_type)
        with repo.lock:
            commit = self._commit(repo, revision)
            if path not in commit.files:
                raise KeyError(f"{repo_id}@{revision} has no file {path}")
            data = bytearray(repo.content(commit.files[path]) or b"\0")
            data[len(data) // 2] ^= 0xFF
            repo.corrupted[(commit.oid, path)] = bytes(data)

    def authorization_headers(self) -> list[str]:
        """The distinct Authorization header values received, in first-seen order (kept in memory, never logged)."""
        with self._lock:
            return list(self.authorization_counts)

    # -- called by the handler -------------------------------------------------------------------------------------

    def take_fault(self, knob: str) -> bool:
        with self._lock:
            if getattr(self, knob) > 0:
                setattr(self, knob, getattr(self, knob) - 1)
                self.counters[f"fault:{knob}"] += 1
                return True
            return False

    def note_request(self, route: str, authorization: str | None) -> None:
        with self._lock:
            self.counters[route] += 1
            if authorization:
                self.authorization_counts[authorization] += 1
            elif route != "lfs_put":  # LFS PUTs go to a "presigned" URL: like S3, they never carry the token
                self.counters["unauthenticated"] += 1

    def note_unknown(self, method: str, path: str) -> None:
        with self._lock:
            self.counters["unknown"] += 1
            self.unknown_routes.append(f"{method} {path}")
        log.warning("hub_server: NO ROUTE for %s %s (add it to tests/hub_server.py ROUTES)", method, path)

    def note_response(self, method: str, path: str, route: str, response: Response) -> None:
        with self._lock:
            self.request_log.append((method, path, route, -1 if response.drop else response.status))
        log.debug("hub_server: %s %s -> %s (%s)", method, path, "dropped" if response.drop else response.status, route)
