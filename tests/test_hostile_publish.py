"""Hostile builds and races: the manifest is the closed list of files, revisions are checked, pushes race cleanly."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import CLI, run
from hub_server import HubServer

from mathforge.errors import InputError

TOKEN = "hf_mathforge_hostile_token"
REPO = "mathforge-tests/hostile"
EXTRA = "sft/train-99999-of-99999.parquet"


def make_build(root: Path, version: str = "1.0.0", salt: str = "", rows: int = 4) -> Path:
    """A small but complete build (default + sft configs, stats, card, manifest) without sampling anything."""
    from mathforge.builders.publish.manifest import file_table, fingerprint, write_manifest

    (root / "data").mkdir(parents=True)
    (root / "sft").mkdir()
    pq.write_table(pa.table({"problem_id": [f"p{i}" for i in range(rows)], "method": ["rft"] * rows,
                             "model": ["m"] * rows, "solution": [f"{i} + {i} = {2 * i}{salt}" for i in range(rows)]}),
                   root / "data" / "train-00000-of-00001.parquet")
    pq.write_table(pa.table({"prompt": [f"What is {i} + {i}?" for i in range(rows)],
                             "completion": [f"{2 * i}{salt}" for i in range(rows)]}),
                   root / "sft" / "train-00000-of-00001.parquet")
    stats = {"problems": rows, "samples": rows, "correct": rows, "distinct": rows, "gold_rows": 0}
    (root / "stats.json").write_text(json.dumps(stats) + "\n")
    (root / "README.md").write_text("---\nlicense: mit\n---\n# hostile\n")
    recipe = {"name": "hostile", "salt": salt}
    write_manifest(root, "hostile", version, recipe, {}, {"default": rows, "sft": rows}, "test",
                   fingerprint(recipe, {}, file_table(root)))
    return root


def extra_shard() -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"prompt": ["poison"], "completion": ["poison"]}), sink)
    return sink.getvalue().to_pybytes()


def manifest_of(build: Path) -> dict:
    return json.loads((build / "manifest.json").read_text())


def rewrite_manifest(build: Path, change) -> None:
    manifest = manifest_of(build)
    change(manifest)
    (build / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def outside_file(tmp_path: Path) -> Path:
    """A real file outside every build: /etc/hostname where there is one."""
    if Path("/etc/hostname").is_file():
        return Path("/etc/hostname")
    path = tmp_path / "outside.txt"
    path.write_text("outside\n")
    return path


# -- local builds: `pull DIR` (verify in place), trainers ------------------------------------------------------------


def test_an_extra_shard_fails_verify_and_is_never_trained_on(tmp_path):
    from mathforge.builders.publish.hub import resolve
    from mathforge.trainers.data import config_files, resolve_config

    build = make_build(tmp_path / "b")
    root, manifest, files = resolve_config(str(build), "sft")
    assert files == [str(build / rel) for rel in manifest["files"] if rel.startswith("sft/")]
    (build / EXTRA).write_bytes(extra_shard())
    assert config_files(manifest, "sft") == ["sft/train-00000-of-00001.parquet"]  # a glob would take both
    checked = run("pull", build)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert f"{EXTRA}: not in the manifest" in checked.stderr and "Traceback" not in checked.stderr
    with pytest.raises(InputError, match=re.escape(EXTRA)):
        resolve_config(str(build), "sft")
    (build / EXTRA).unlink()
    (build / ".hidden").write_text("x")  # hidden files count too
    with pytest.raises(InputError, match=r"\.hidden: not in the manifest"):
        resolve(str(build))


def test_a_missing_file_fails_verify(tmp_path):
    build = make_build(tmp_path / "b")
    (build / "stats.json").unlink()
    checked = run("pull", build)
    assert checked.returncode == 2 and "stats.json: missing" in checked.stderr, checked.stderr


def test_manifest_paths_outside_the_build_are_refused(tmp_path):
    from mathforge.builders.publish.manifest import sha256_file, verify

    outside = outside_file(tmp_path)
    true_entry = {"sha256": sha256_file(outside), "size": outside.stat().st_size}
    build = make_build(tmp_path / "b")
    rewrite_manifest(build, lambda m: m["files"].update({str(outside): true_entry}))
    checked = run("pull", build)
    assert checked.returncode == 2, checked.stderr
    assert str(outside) in checked.stderr and "absolute" in checked.stderr and "Traceback" not in checked.stderr

    for bad in (f"../{outside.name}", "data/../../x", "./stats.json", "data//x", "data/", "a\\b", "manifest.json"):
        build = make_build(tmp_path / f"b{abs(hash(bad))}")
        rewrite_manifest(build, lambda m: m["files"].update({bad: true_entry}))
        with pytest.raises(InputError, match="file entry"):
            verify(build)

    # a symlink inside the build that leads out of it, listed with the true hash of what it points at
    build = make_build(tmp_path / "link")
    (build / "data" / "link.parquet").symlink_to(outside)
    rewrite_manifest(build, lambda m: m["files"].update({"data/link.parquet": true_entry}))
    checked = run("pull", build)
    assert checked.returncode == 2 and "data/link.parquet: resolves outside the build" in checked.stderr, \
        checked.stderr
    # a symlinked directory is not followed: it is an entry the manifest does not list
    build = make_build(tmp_path / "dirlink")
    (build / "more").symlink_to(tmp_path / "b" / "data", target_is_directory=True)
    with pytest.raises(InputError, match="more: not in the manifest"):
        verify(build)


@pytest.mark.parametrize("change, words", [
    (lambda m: m.update(files=["data/x"]), "files: must be an object"),
    (lambda m: m["files"].update({"data/x": "abc"}), "files.data/x: must be an object"),
    (lambda m: m["files"].update({"data/x": {"sha256": "zz", "size": 1}}), "sha256: must be 64"),
    (lambda m: m["files"].update({"data/x": {"sha256": "0" * 64, "size": "1"}}), "size: must be a non-negative"),
    (lambda m: m["files"].update({"data/x": {"sha256": "0" * 64, "size": True}}), "size: must be a non-negative"),
    (lambda m: m.update(version=3), "version: must be a non-empty string"),
    (lambda m: m.pop("fingerprint"), "fingerprint: manifest.json lacks a required key"),
])
def test_malformed_manifest_entries_are_input_errors(tmp_path, change, words):
    from mathforge.builders.publish.hub import resolve

    build = make_build(tmp_path / "b")
    rewrite_manifest(build, change)
    with pytest.raises(InputError, match=re.escape(words)):
        resolve(str(build))


def test_a_manifest_that_is_not_an_object_exits_2_without_a_traceback(tmp_path):
    build = make_build(tmp_path / "b")
    (build / "manifest.json").write_text("[1, 2]\n")
    checked = run("pull", build)
    assert checked.returncode == 2 and "not a JSON object" in checked.stderr
    assert "Traceback" not in checked.stderr


# -- revisions -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("revision", ["../../escape", "..", "a/../b", "refs/heads/../../x", ".hidden", "x.lock",
                                      "a//b", "/abs", "x.", "-x", "a~1", "a^", "a:b", "a?", "a*", "a[b", "a\\b",
                                      "a@{1}", "@"])
def test_bad_revisions_are_refused_before_anything(revision):
    from mathforge.builders.publish.hub import parse_ref

    with pytest.raises(InputError, match="is not a tag, branch or commit|not a Hub reference"):  # `@`: the latter
        parse_ref(f"org/name@{revision}")


def test_good_revisions_parse():
    from mathforge.builders.publish.hub import cache_dir, parse_ref

    assert parse_ref("org/name@1.2.0").revision == "v1.2.0"
    assert parse_ref("org/name").revision == "main"
    for revision in ("v1.2.0", "feature/x", "refs/heads/main", "a" * 40, "release-2024.1"):
        assert parse_ref(f"org/name@{revision}").revision == revision
    assert cache_dir(parse_ref("org/name@feature/x")).name == "feature--x"


def test_a_dotdot_revision_writes_nothing_outside_the_cache(tmp_path):
    cache = tmp_path / "deep" / "cache"
    env = {"MATHFORGE_CACHE": str(cache), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
    result = run("pull", "org/name@../../../escape", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not a tag, branch or commit" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no cache, no `escape`, nothing


# -- the Hub: pull integrity, concurrent pushes ------------------------------------------------------------------------


@pytest.fixture
def hub(tmp_path):
    server = HubServer().start()
    env = {"HF_ENDPOINT": server.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
           "MATHFORGE_CACHE": str(tmp_path / "cache"), "HF_HUB_ETAG_TIMEOUT": "5",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    yield server, env
    server.stop()


def test_pull_refuses_extra_missing_and_outside_files(hub, tmp_path):
    from mathforge.builders.publish.manifest import sha256_file

    server, env = hub
    build = make_build(tmp_path / "b")
    pushed = run("push", build, "--repo", REPO, env=env)
    assert pushed.returncode == 0, pushed.stderr

    # an extra shard beside the listed ones: the pull fails, and so does a trainer reading the config
    server.commit_files(REPO, {EXTRA: extra_shard()}, tag="extra")
    bad = run("pull", f"{REPO}@extra", "--out", tmp_path / "extra", env=env)
    assert bad.returncode == 2 and f"{EXTRA}: not in the manifest" in bad.stderr, bad.stdout + bad.stderr
    assert not (tmp_path / "extra").exists() and not list(tmp_path.glob(".extra.*"))
    code = f"from mathforge.trainers.data import resolve_config\nresolve_config({REPO + '@extra'!r}, 'sft')"
    trainer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, **env}, timeout=300)
    assert trainer.returncode != 0 and EXTRA in trainer.stderr

    # a listed file that is not there
    server.commit_files(REPO, delete=(EXTRA, "stats.json"), tag="missing")
    bad = run("pull", f"{REPO}@missing", "--out", tmp_path / "missing", env=env)
    assert bad.returncode == 2 and "stats.json: missing" in bad.stderr, bad.stderr

    # a manifest entry outside the build, with its true hash
    outside = outside_file(tmp_path)
    manifest = manifest_of(build)
    manifest["files"][str(outside)] = {"sha256": sha256_file(outside), "size": outside.stat().st_size}
    server.commit_files(REPO, {"stats.json": (build / "stats.json").read_bytes(),
                               "manifest.json": json.dumps(manifest).encode()}, tag="outside")
    bad = run("pull", f"{REPO}@outside", "--out", tmp_path / "outside", env=env)
    assert bad.returncode == 2 and str(outside) in bad.stderr and "absolute" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr

    # the honest version still pulls, to exactly its listed files (the Hub's .gitattributes stays behind)
    good = run("pull", f"{REPO}@1.0.0", "--out", tmp_path / "good", env=env)
    assert good.returncode == 0, good.stderr
    got = {p.relative_to(tmp_path / "good").as_posix() for p in (tmp_path / "good").rglob("*") if p.is_file()}
    assert got == set(manifest_of(build)["files"]) | {"manifest.json"}


def _push_together(env, builds):
    procs = [subprocess.Popen([*CLI, "push", str(b), "--repo", REPO], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200", **env})
             for b in builds]
    return [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]


def test_concurrent_pushes_of_one_version_leave_main_and_the_tag_on_the_winner(hub, tmp_path):
    server, env = hub
    first = make_build(tmp_path / "first", version="5.0.0", salt=" (first)")
    second = make_build(tmp_path / "second", version="5.0.0", salt=" (second)")
    assert manifest_of(first)["fingerprint"] != manifest_of(second)["fingerprint"]
    assert run("push", make_build(tmp_path / "base", version="4.0.0"), "--repo", REPO, env=env).returncode == 0
    base = server.refs(REPO)["branches"]["main"]

    server.line_up_commits(2)  # both commits reach the server before either is applied: a real race
    results = _push_together(env, [first, second])
    codes = [code for code, _, _ in results]
    assert sorted(code == 0 for code in codes) == [False, True], results
    winner, loser = (first, second) if codes[0] == 0 else (second, first)
    lost = next(result for result in results if result[0] != 0)
    assert "already exists" in lost[2] and "Bump the recipe's version" in lost[2] and "Traceback" not in lost[2]

    refs = server.refs(REPO)
    assert refs["tags"]["v5.0.0"] == refs["branches"]["main"]
    on_main = json.loads(server.files(REPO, "main")["manifest.json"])
    assert on_main["fingerprint"] == manifest_of(winner)["fingerprint"] != manifest_of(loser)["fingerprint"]
    history = [c.oid for c in server.repo(REPO).history(server.repo(REPO).resolve("main"))]
    assert history[1] == base  # exactly one commit on top of the previous head: the loser's never landed
    assert [status for _, _, route, status in server.request_log if route == "commit"][-2:].count(412) == 1

    # the same build pushed twice at once: both succeed, one commit, tag == main
    same = make_build(tmp_path / "same", version="5.1.0")
    server.line_up_commits(2)
    results = _push_together(env, [same, same])
    assert [code for code, _, _ in results] == [0, 0], results
    refs = server.refs(REPO)
    assert refs["tags"]["v5.1.0"] == refs["branches"]["main"]
    history = [c.oid for c in server.repo(REPO).history(server.repo(REPO).resolve("main"))]
    assert history[1] == refs["tags"]["v5.0.0"]


def test_a_push_that_finds_its_version_committed_but_untagged_does_not_commit_again(hub, tmp_path):
    server, env = hub
    build = make_build(tmp_path / "b", version="6.0.0")
    other = make_build(tmp_path / "o", version="6.0.0", salt="!")
    assert run("push", make_build(tmp_path / "base", version="0.1.0"), "--repo", REPO, env=env).returncode == 0
    files = {p.relative_to(build).as_posix(): p.read_bytes() for p in build.rglob("*") if p.is_file()}
    committed = server.commit_files(REPO, files)  # as if a push was killed between its commit and its tag
    refused = run("push", other, "--repo", REPO, env=env)
    assert refused.returncode == 2 and "not tagged yet" in refused.stderr, refused.stderr
    assert server.refs(REPO)["branches"]["main"] == committed and "v6.0.0" not in server.refs(REPO)["tags"]
    finished = run("push", build, "--repo", REPO, env=env)
    assert finished.returncode == 0, finished.stderr
    assert server.refs(REPO)["tags"]["v6.0.0"] == committed == server.refs(REPO)["branches"]["main"]


# -- staging directories left by a killed build ----------------------------------------------------------------------


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_rerun_removes_the_staging_left_by_a_killed_build_and_nothing_else(tmp_path):
    from mathforge.builders.publish.corpus import write_output

    out = tmp_path / "builds" / "x" / "1.0.0"
    code = f"""
import os, signal
from pathlib import Path
from mathforge.builders.publish.corpus import write_output
def killed(staging):
    (Path(staging) / "half.parquet").write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)
write_output({str(out)!r}, None, {{"problems": 1}}, extra=killed)
"""
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    stale = [p for p in out.parent.iterdir() if p.name.startswith(".1.0.0.")]
    assert len(stale) == 1 and (stale[0] / "half.parquet").exists() and not out.exists()

    host, dead = _host(), _dead_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        keep = [out.parent / f".1.0.0.{host}-{sleeper.pid}-inuse123",  # its owner still runs
                out.parent / f".1.0.0.otherhost-{dead}-abcdefgh",  # another machine's (shared filesystem)
                out.parent / f".1.0.1.{host}-{dead}-abcdefgh",  # another output's
                out.parent / ".1.0.0.legacy12"]  # no owner recorded: not clearly ours
        gone = [out.parent / f".1.0.0.old-{host}-{dead}", out.parent / f".1.0.0.{host}-{dead}-zz99zz99"]
        for folder in keep + gone:
            folder.mkdir()
            (folder / "f").write_text("x")
        write_output(out, None, {"problems": 2})
        assert json.loads((out / "stats.json").read_text()) == {"problems": 2}
        left = sorted(p.name for p in out.parent.iterdir() if p.name != "1.0.0")
        assert left == sorted(p.name for p in keep), left
        assert not stale[0].exists()
    finally:
        sleeper.kill()
        sleeper.wait()
