"""The API in a plain script (guard or not) finishes, and a kill -9 leaves nothing behind: every child of a build or
collect dies with it and nothing keeps requesting from the model server."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import run
from hub_server import HubServer

from mathforge.testing import synthetic
from mathforge.testing.fake_openai import FakeOpenAI, solver_reply

ROOT = Path(__file__).resolve().parent.parent
GRACE = 1.0  # seconds after the kill in which a request already on its way may still arrive


def readme_api_example() -> str:
    """The code block of the README's "## Python API" section, exactly as written there."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1
    return blocks[0]


def script(path: Path, body: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    path.write_text(body)
    return subprocess.run([sys.executable, path.name], cwd=path.parent, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_the_readme_python_api_example_runs_verbatim_as_a_script(tmp_path, tiny_model):
    """The README's example in a file of its own, no `__main__` guard, inputs from `mathforge synth`, the model id
    a local tiny model, pull / push against a Hub-protocol server on 127.0.0.1: it finishes with exit 0."""
    project = tmp_path / "project"
    (project / "recipes").mkdir(parents=True)
    shutil.copy(ROOT / "recipes" / "offline-collect.yaml", project / "recipes")
    synth = run("synth", "--out", "build/smoke-inputs", "--problems", 6, "--models", 4, "--seeds", 2, cwd=project)
    assert synth.returncode == 0, synth.stderr
    (project / "path" / "or").mkdir(parents=True)
    (project / "path" / "or" / "hub-id").symlink_to(tiny_model)
    with HubServer() as hub:
        env = {**hub.client_env(str(tmp_path / "hf")), "MATHFORGE_CACHE": str(tmp_path / "cache")}
        # `pull("org/name@v1.0.0")` needs a v1.0.0 on the Hub: an earlier build of the same recipe
        first = run("build", "recipes/offline-collect.yaml", "--set", "version=1.0.0", "--out", tmp_path / "v1",
                    cwd=project)
        assert first.returncode == 0, first.stderr
        assert run("push", tmp_path / "v1", "--repo", "org/name", env=env).returncode == 0
        started = time.monotonic()
        result = script(project / "example.py", readme_api_example(), env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert sorted(hub.refs("org/name")["tags"]) == ["v0.1.0", "v1.0.0"]  # the example's push arrived
    manifest = json.loads((project / "builds" / "demo" / "manifest.json").read_text())
    assert manifest["rows"]["sft"] > 0 and (project / "out").is_dir()  # the build and SFTTrainer's output dir
    print(f"README example as a script: {time.monotonic() - started:.1f} s")


UNGUARDED = """\
import threading
import mathforge
print("top of the script", flush=True)
built = mathforge.build({recipe!r})
print("rows", built.manifest["rows"]["default"], flush=True)
pairs = [("7", "#### 7"), ("7", "#### 8")] * 700
verdicts = mathforge.grade_batch(pairs, mode="math")
print("correct", sum(v.verdict == "correct" for v in verdicts), flush=True)
threaded = []  # off the main thread, a math-verify grade runs in a spawned helper process
worker = threading.Thread(target=lambda: threaded.append(mathforge.grade("\\\\frac{{\\\\sqrt{{2}}}}{{2}}",
                                                                         "\\\\frac{{1}}{{\\\\sqrt{{2}}}}")))
worker.start()
worker.join()
print("threaded", threaded[0].verdict, flush=True)
"""


def test_a_script_without_the_main_guard_builds_and_grades(tmp_path):
    """Sampling and collect on forkserver tasks, grading on a fork pool and in a spawned helper: every child process
    leaves the script's top-level code alone, so it runs once and finishes."""
    rows = synthetic.problems(12, seed=5)
    synthetic.write_gold(rows, tmp_path / "gold.jsonl")
    with FakeOpenAI(reply=solver_reply(rows)) as server:
        recipe = {"name": "unguarded", "version": "0.1.0", "sources": [{"path": str(tmp_path / "gold.jsonl")}],
                  "stages": [{"type": "sample", "k": 3, "max_tokens": 64,
                              "models": [{"name": "solver", "backend": "endpoint", "model": "fake",
                                          "base_url": server.url}]},
                             {"type": "collect", "workers": 2}],
                  "executor": {"tasks": 2, "workers": 2},
                  "output": {"dir": str(tmp_path / "b"), "work_dir": str(tmp_path / "w")}}
        result = script(tmp_path / "unguarded.py", UNGUARDED.format(recipe=recipe), timeout=240)
        requests = server.counts["POST /v1/completions"] + server.counts["POST /v1/chat/completions"]
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines.count("top of the script") == 1, result.stdout
    assert requests == 12 * 3  # one build's requests: no child started a second one
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert f"rows {manifest['rows']['default']}" in lines
    assert "correct 700" in lines and "threaded correct" in lines  # half of 1,400 pairs; sqrt(2)/2 == 1/sqrt(2)


# --------------------------------------------------------------------------------------------------- kill -9
def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_tree(proc: subprocess.Popen, within: float = 5.0) -> tuple[dict, float, list]:
    """The process tree under `proc` as it is now ({process: command line}); then kill -9 `proc` alone and wait up
    to `within` seconds for the rest to go. Returns the tree, the kill's time and what is still alive then."""
    tree = {}
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            tree[child] = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            pass
    killed = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    while any(map(_alive, tree)) and time.monotonic() < killed + within:
        time.sleep(0.05)
    left = [(p.pid, tree[p][:120]) for p in tree if _alive(p)]
    for p in tree:  # a failing run leaves nothing behind either
        if _alive(p):
            p.kill()
    return tree, killed, left


def children(proc: subprocess.Popen) -> list[str]:
    try:
        return [" ".join(p.cmdline()) for p in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def wait_for(condition, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"exited early ({proc.returncode}):\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)


def start(args: list, log: Path, cwd: Path) -> subprocess.Popen:
    with open(log, "wb") as handle:
        return subprocess.Popen([sys.executable, "-m", "mathforge", *map(str, args)], stdout=handle,
                                stderr=subprocess.STDOUT, cwd=cwd)


@pytest.mark.parametrize("layout", ["client-processes", "forkserver-tasks"])
def test_kill_9_of_a_build_leaves_no_process_and_no_requests(tmp_path, layout):
    """A build sampling a slow endpoint with several client processes (forked, or datatrove's forkserver tasks) is
    killed once requests flow: its whole tree is gone within seconds and the server hears nothing more."""
    rows = synthetic.problems(60, seed=1)
    synthetic.write_gold(rows, tmp_path / "gold.jsonl")
    arrivals: list[float] = []

    def latency(payload: dict) -> float:
        arrivals.append(time.monotonic())
        return 0.3

    spread = "    client_processes: 2\n" if layout == "client-processes" else ""
    executor = "executor:\n  tasks: 2\n  workers: 2\n" if layout == "forkserver-tasks" else ""
    with FakeOpenAI(reply=solver_reply(rows), latency=latency) as server:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(f"name: killed\nversion: 0.1.0\nsources:\n  - path: {tmp_path / 'gold.jsonl'}\nstages:\n"
                          f"  - type: sample\n    k: 8\n    max_tokens: 64\n    concurrency: 8\n{spread}"
                          f"    models:\n      - name: solver\n        backend: endpoint\n        model: fake\n"
                          f"        base_url: {server.url}\n  - type: collect\n{executor}"
                          f"output:\n  dir: {tmp_path / 'out'}\n  work_dir: {tmp_path / 'work'}\n")
        proc = start(["build", recipe], tmp_path / "build.log", tmp_path)
        wait_for(lambda: len(arrivals) >= 20, proc, tmp_path / "build.log")
        tree, killed, left = kill_tree(proc)
        time.sleep(GRACE + 2.0)  # a live client would have sent several more requests by now (8 in flight, 0.3 s)
        late = [round(t - killed, 2) for t in arrivals if t > killed + GRACE]
    assert sum("mathforge" in line or "forkserver" in line for line in tree.values()) >= 2  # the processes that sample were there to be killed
    assert left == [] and late == []
    assert len(arrivals) < 60 * 8  # killed mid-run


def test_kill_9_of_a_collect_with_workers_leaves_no_process(tmp_path):
    """`mathforge collect --workers 2` killed while its forked tasks verify: the tasks and the manager go with it."""
    made = run("synth", "--out", tmp_path / "in", "--problems", 6000, "--models", 2, "--seeds", 10)
    assert made.returncode == 0, made.stderr
    proc = start(["collect", "--gold", tmp_path / "in" / "gold.jsonl", "--samples", tmp_path / "in" / "model0",
                  "--samples", tmp_path / "in" / "model1", "--out", tmp_path / "out", "--workers", 2, "--tasks", 2,
                  "--partitions", 6], tmp_path / "collect.log", tmp_path)
    wait_for(lambda: len(children(proc)) >= 3, proc, tmp_path / "collect.log")  # a manager and two tasks
    tree, _, left = kill_tree(proc)
    assert len(tree) >= 3 and left == []  # manager + two tasks, all gone
    assert not (tmp_path / "out").exists()


def test_kill_9_of_a_build_takes_its_launched_model_server_along(tmp_path, tiny_model):
    """The batched backend launches its own model server: a kill -9 of the build ends the server too."""
    rows = synthetic.problems(40, seed=2)
    synthetic.write_gold(rows, tmp_path / "gold.jsonl")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: served\nversion: 0.1.0\nsources:\n  - path: {tmp_path / 'gold.jsonl'}\nstages:\n"
                      f"  - type: sample\n    k: 4\n    max_tokens: 48\n    models:\n      - name: tiny\n"
                      f"        backend: batched\n        model: {tiny_model}\n  - type: collect\n"
                      f"output:\n  dir: {tmp_path / 'out'}\n  work_dir: {tmp_path / 'work'}\n")
    proc = start(["build", recipe], tmp_path / "build.log", tmp_path)

    def serving() -> bool:  # the server answered /health and the pass has begun
        return any("batch_server" in line for line in children(proc)) and \
            any((tmp_path / "work").rglob("input/*.jsonl"))

    wait_for(serving, proc, tmp_path / "build.log", timeout=240)
    time.sleep(1.0)
    tree, _, left = kill_tree(proc)
    assert any("batch_server" in line for line in tree.values()) and left == []


HELPERS = """\
import json, threading, time
import mathforge
from mathforge.verify import grader

def grade(gold):  # answers outside the exact forms: Math-Verify decides, in the helper
    verdicts.append(mathforge.grade(gold, "\\\\frac{1}{2}").verdict)

verdicts = []
for gold in ("\\\\sin \\\\frac{\\\\pi}{6}", "\\\\cos \\\\frac{\\\\pi}{3}"):  # the helper outlives the thread that
    worker = threading.Thread(target=grade, args=(gold,))  # started it, and the second thread's grade reuses it
    worker.start()
    worker.join()
print(json.dumps({"verdicts": verdicts, "helpers": [p.pid for h in grader._idle for p in h._processes.values()],
                  "math_verify": grader.PATHS["math-verify"]}), flush=True)
time.sleep(600)
"""


def test_a_grading_helper_outlives_its_thread_and_dies_with_its_process(tmp_path):
    """Off the main thread, grades run in a spawned helper process that is kept for later grades: the thread that
    started it ending does not end it; a kill -9 of the process that owns it does."""
    (tmp_path / "helpers.py").write_text(HELPERS)
    with open(tmp_path / "out.txt", "wb") as handle:
        proc = subprocess.Popen([sys.executable, "helpers.py"], cwd=tmp_path, stdout=handle, stderr=subprocess.STDOUT)
    wait_for(lambda: '"helpers"' in (tmp_path / "out.txt").read_text(), proc, tmp_path / "out.txt")
    seen = json.loads((tmp_path / "out.txt").read_text().strip().splitlines()[-1])
    assert seen["verdicts"] == ["correct", "correct"] and len(seen["helpers"]) == 1  # one helper, alive, reused
    assert seen["math_verify"] == 2  # both grades reached the helper (neither an exact form nor a remembered verdict)
    tree, _, left = kill_tree(proc)
    assert seen["helpers"][0] in [p.pid for p in tree] and left == []
