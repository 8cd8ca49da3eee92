"""tests/hub_server.py against the real huggingface_hub and datasets clients: versions, tags, faults, wire details."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hub_server import HubServer

REPO = "mathforge-tests/hub-roundtrip"
TOKEN = "hf_hub_server_test_token"
README = """---
configs:
- config_name: sft
  data_files:
  - split: train
    path: "sft/*.parquet"
- config_name: default
  data_files:
  - split: train
    path: "data/*.parquet"
---
# {title}
"""
# Client side: runs in a fresh interpreter because huggingface_hub and datasets read HF_ENDPOINT at import time.
# `args` is the JSON in argv[1]; `emit(obj)` reports back on the last stdout line.
PRELUDE = """
import json, sys
from pathlib import Path
from huggingface_hub import HfApi
args = json.loads(sys.argv[1])
api = HfApi()
def emit(obj):
    print("RESULT " + json.dumps(obj))
"""
PUBLISH = """
api.create_repo(args["repo"], repo_type="dataset", private=False, exist_ok=True)
for folder, tag, message in args["versions"]:
    info = api.upload_folder(folder_path=folder, repo_id=args["repo"], repo_type="dataset", delete_patterns="*",
                             commit_message=message)
    api.create_tag(args["repo"], tag=tag, revision=info.oid, repo_type="dataset")
refs = api.list_repo_refs(args["repo"], repo_type="dataset")
emit({"tags": {t.name: t.target_commit for t in refs.tags},
      "branches": {b.name: b.target_commit for b in refs.branches}})
"""


@pytest.fixture
def hub():
    with HubServer() as server:
        yield server


def client(hub: HubServer, hf_home: Path, code: str, timeout: int = 120, **args) -> dict:
    """Run PRELUDE + code against `hub` in a subprocess with its own HF_HOME; return what it emitted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(hub.client_env(str(hf_home), token=TOKEN))
    result = subprocess.run([sys.executable, "-c", PRELUDE + code, json.dumps(args)], env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"client failed:\n{result.stderr[-4000:]}\nunknown routes: {hub.unknown_routes}"
    assert TOKEN not in result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(lines[-1][len("RESULT "):])


def write_version(folder: Path, tag: str, sft_rows: list[dict], data_rows: list[dict], png: bool) -> Path:
    (folder / "sft").mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "README.md").write_text(README.format(title=f"corpus {tag}"))
    pq.write_table(pa.Table.from_pylist(sft_rows), folder / "sft" / "train-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(data_rows), folder / "data" / "train-00000-of-00001.parquet")
    if png:
        (folder / "figures").mkdir()
        (folder / "figures" / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    return folder


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and ".cache" not in p.relative_to(folder).parts}


V1_SFT = [{"prompt": "1+1?", "completion": "2"}, {"prompt": "2+3?", "completion": "5"}]
V2_SFT = [{"prompt": "7*6?", "completion": "42"}, {"prompt": "9-4?", "completion": "5"},
          {"prompt": "8/2?", "completion": "4"}]


@pytest.fixture
def versions(tmp_path) -> dict[str, Path]:
    return {
        "v1.0.0": write_version(tmp_path / "v1", "v1.0.0", V1_SFT, [{"x": 1}, {"x": 2}], png=True),
        "v1.1.0": write_version(tmp_path / "v2", "v1.1.0", V2_SFT, [{"x": 3}], png=False),
    }


def publish(hub: HubServer, tmp_path: Path, versions: dict[str, Path]) -> dict:
    plan = [(str(folder), tag, f"Release {tag}") for tag, folder in versions.items()]
    return client(hub, tmp_path / "hf-publish", PUBLISH, repo=REPO, versions=plan)


def test_versions_round_trip_through_snapshot_download_and_load_dataset(hub, tmp_path, versions):
    refs = publish(hub, tmp_path, versions)
    assert set(refs["tags"]) == {"v1.0.0", "v1.1.0"}
    assert refs["branches"] == {"main": refs["tags"]["v1.1.0"]} == hub.refs(REPO)["branches"]
    assert hub.refs(REPO)["tags"] == refs["tags"]
    assert hub.counters["commit"] == 2  # one commit per upload_folder
    modes = hub.upload_modes(REPO, "v1.0.0")
    assert modes["README.md"] == "regular" and modes["figures/plot.png"] == "lfs"
    assert modes["sft/train-00000-of-00001.parquet"] == modes["data/train-00000-of-00001.parquet"] == "lfs"

    pull = """
from huggingface_hub import hf_hub_download, snapshot_download
from datasets import load_dataset
out = {}
for tag in ("v1.0.0", "v1.1.0"):
    snapshot_download(args["repo"], repo_type="dataset", revision=tag, local_dir=args["out"] + "/" + tag)
    out[tag] = load_dataset(args["repo"], "sft", revision=tag, split="train").to_list()
out["default"] = load_dataset(args["repo"], revision="v1.0.0", split="train").to_list()
out["png"] = hf_hub_download(args["repo"], "figures/plot.png", repo_type="dataset", revision="v1.0.0")
out["sha"] = api.dataset_info(args["repo"], revision="v1.0.0").sha
emit(out)
"""
    out = client(hub, tmp_path / "hf-pull", pull, repo=REPO, out=str(tmp_path / "pulled"))
    for tag, folder in versions.items():  # exactly that version's files (plus the Hub's .gitattributes), byte-equal
        pulled = folder_files(tmp_path / "pulled" / tag)
        assert pulled.pop(".gitattributes") == hub.files(REPO, tag)[".gitattributes"]
        assert pulled == folder_files(folder)
    assert out["v1.0.0"] == V1_SFT and out["v1.1.0"] == V2_SFT
    assert out["default"] == [{"x": 1}, {"x": 2}]
    assert Path(out["png"]).read_bytes() == (versions["v1.0.0"] / "figures" / "plot.png").read_bytes()
    assert out["sha"] == refs["tags"]["v1.0.0"]
    assert "figures/plot.png" not in hub.branch_files(REPO, "main")  # delete_patterns="*" removed it in v1.1.0

    assert hub.authorization_headers() == [f"Bearer {TOKEN}"]
    assert hub.counters["unauthenticated"] == 0 and hub.counters["lfs_put"] == 5
    assert hub.unknown_routes == []


def test_unknown_revisions_fail_and_existing_tags_are_not_moved(hub, tmp_path, versions):
    refs = publish(hub, tmp_path, {"v1.0.0": versions["v1.0.0"]})
    probe = """
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError
import datasets
out = {"main": Path(snapshot_download(args["repo"], repo_type="dataset")).name}  # main now in the local cache
def error(fn):
    try:
        fn()
    except (HfHubHTTPError, datasets.exceptions.DatasetNotFoundError) as err:
        status = err.response.status_code if isinstance(err, HfHubHTTPError) else None
        return [type(err).__name__, isinstance(err, RevisionNotFoundError), status]
    return None
out["snapshot"] = error(lambda: snapshot_download(args["repo"], repo_type="dataset", revision="v9.9.9"))
out["download"] = error(lambda: hf_hub_download(args["repo"], "README.md", repo_type="dataset", revision="v9.9.9"))
out["commit"] = error(lambda: api.dataset_info(args["repo"], revision="0" * 40))
out["load"] = error(lambda: datasets.load_dataset(args["repo"], "sft", revision="v9.9.9", split="train"))
out["tag"] = error(lambda: api.create_tag(args["repo"], tag="v1.0.0", revision="main", repo_type="dataset"))
out["exists"] = [api.file_exists(args["repo"], "README.md", repo_type="dataset", revision="v1.0.0"),
                 api.file_exists(args["repo"], "README.md", repo_type="dataset", revision="v9.9.9"),
                 api.file_exists(args["repo"], "nope.md", repo_type="dataset", revision="v1.0.0")]
emit(out)
"""
    out = client(hub, tmp_path / "hf-probe", probe, repo=REPO)
    assert out["main"] == refs["branches"]["main"]
    for key in ("snapshot", "download", "commit"):
        assert out[key] == ["RevisionNotFoundError", True, 404], key
    assert out["load"] == ["DatasetNotFoundError", False, None]
    assert out["tag"] == ["HfHubHTTPError", False, 409]
    assert out["exists"] == [True, False, False]
    assert hub.refs(REPO)["tags"] == refs["tags"]
    assert hub.unknown_routes == []


UPLOAD = """
try:
    info = api.upload_folder(folder_path=args["folder"], repo_id=args["repo"], repo_type="dataset",
                             delete_patterns="*", commit_message="Release v1.1.0")
    emit({"ok": info.oid})
except Exception as err:
    emit({"error": type(err).__name__, "cause": type(err.__cause__).__name__})
"""


def test_failed_lfs_uploads_leave_the_repo_unchanged_and_a_retry_succeeds(hub, tmp_path, versions):
    publish(hub, tmp_path, {"v1.0.0": versions["v1.0.0"]})
    before, files_before, puts_before = hub.refs(REPO), hub.files(REPO), hub.counters["lfs_put"]

    hub.fail_lfs_puts = 1000  # every PUT answers 500 (Retry-After: 0): ~5 s of client retries, then it gives up
    out = client(hub, tmp_path / "hf-fail", UPLOAD, repo=REPO, folder=str(versions["v1.1.0"]))
    assert out == {"error": "RuntimeError", "cause": "HfHubHTTPError"}
    assert hub.counters["lfs_put"] - puts_before == 6 * 2  # 2 new LFS files, 1 try + 5 retries each
    assert hub.refs(REPO) == before and hub.files(REPO) == files_before
    assert hub.counters["commit"] == 1  # the failed push never reached the commit endpoint

    hub.fail_lfs_puts, hub.fail_commits = 0, 1  # uploads pass, the commit itself fails: still nothing lands
    out = client(hub, tmp_path / "hf-fail", UPLOAD, repo=REPO, folder=str(versions["v1.1.0"]))
    assert out == {"error": "HfHubHTTPError", "cause": "HTTPStatusError"}
    assert hub.refs(REPO) == before and hub.files(REPO) == files_before

    out = client(hub, tmp_path / "hf-fail", UPLOAD, repo=REPO, folder=str(versions["v1.1.0"]))
    assert out["ok"] == hub.refs(REPO)["branches"]["main"] != before["branches"]["main"]
    assert hub.refs(REPO)["tags"] == before["tags"]
    assert {p: b for p, b in hub.files(REPO).items() if p != ".gitattributes"} == folder_files(versions["v1.1.0"])


def test_a_dropped_lfs_connection_is_retried_by_the_client(hub, tmp_path, versions):
    hub.drop_lfs_puts = 1  # one PUT loses its connection without a response; the client retries it after 1 s
    refs = publish(hub, tmp_path, {"v1.0.0": versions["v1.0.0"]})
    assert hub.counters["fault:drop_lfs_puts"] == 1 and hub.counters["lfs_put"] == 3 + 1
    assert hub.files(REPO, "v1.0.0")["figures/plot.png"] == (versions["v1.0.0"] / "figures/plot.png").read_bytes()
    assert refs["tags"]["v1.0.0"] == refs["branches"]["main"]


def test_wire_details_without_a_client_library(hub):
    """Bind address, LFS integrity, atomic commits, ranges and error codes, straight over HTTP."""
    assert hub.url.startswith("http://127.0.0.1:")
    auth = {"Authorization": "Bearer x"}
    with httpx.Client(base_url=hub.url, headers=auth) as http:
        assert http.post("/api/repos/create", json={"name": "wire", "organization": "o", "type": "dataset"}).is_success
        main = hub.refs("o/wire")["branches"]["main"]
        data = b"0123456789" * 2000
        oid = hashlib.sha256(data).hexdigest()

        def commit(*ops: dict) -> httpx.Response:
            lines = [{"key": "header", "value": {"summary": "s"}}, *ops]
            return http.post("/api/datasets/o/wire/commit/main", content="\n".join(map(json.dumps, lines)),
                             headers={"Content-Type": "application/x-ndjson"})

        regular = {"key": "file", "value": {"path": "a.txt", "content": "aGk=", "encoding": "base64"}}
        lfs = {"key": "lfsFile", "value": {"path": "b.bin", "algo": "sha256", "oid": oid, "size": len(data)}}
        assert commit(regular, lfs).status_code == 400  # the LFS object was never uploaded: nothing lands
        assert hub.refs("o/wire")["branches"]["main"] == main and hub.branch_files("o/wire") == {".gitattributes"}

        batch = http.post("/datasets/o/wire.git/info/lfs/objects/batch",
                          json={"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]}).json()
        href = batch["objects"][0]["actions"]["upload"]["href"]
        assert href.startswith(hub.url)
        assert httpx.put(href, content=data[:-1] + b"!").status_code == 400  # sha256 mismatch is refused
        assert httpx.put(href, content=data).status_code == 200
        assert commit(regular, lfs).is_success and hub.branch_files("o/wire") == {".gitattributes", "a.txt", "b.bin"}

        url = "/datasets/o/wire/resolve/main/b.bin"
        head = http.head(url)
        assert head.headers["X-Linked-Etag"] == head.headers["ETag"] == f'"{oid}"'
        assert head.headers["X-Linked-Size"] == head.headers["Content-Length"] == str(len(data))
        assert head.headers["X-Repo-Commit"] == hub.refs("o/wire")["branches"]["main"]
        part = http.get(url, headers={"Range": "bytes=5-14"})
        assert part.status_code == 206 and part.content == data[5:15]
        assert part.headers["Content-Range"] == f"bytes 5-14/{len(data)}"
        assert http.get(url, headers={"Range": "bytes=-3"}).content == data[-3:]
        assert http.get(url, headers={"Range": f"bytes={len(data)}-"}).status_code == 416
        for path, code in [("/datasets/o/wire/resolve/nope/b.bin", "RevisionNotFound"),
                           ("/datasets/o/wire/resolve/main/zzz", "EntryNotFound"),
                           ("/datasets/o/none/resolve/main/b.bin", "RepoNotFound")]:
            response = http.get(path)
            assert (response.status_code, response.headers["X-Error-Code"]) == (404, code)
        assert http.get("/api/not-a-route").status_code == 404 and hub.unknown_routes == ["GET /api/not-a-route"]
        assert httpx.post(f"{hub.url}/api/repos/create", json={"name": "x"}).status_code == 401  # writes need a token
