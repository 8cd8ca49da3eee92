"""Every Slurm path on a real one-node cluster (loopback only): chained collect jobs, sampling and tutoring passes,
options reaching the jobs, refusals before submission, cancelled jobs and killed tasks resumed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import CLI, run

from mathforge.testing import synthetic
from mathforge.testing.fake_openai import FakeOpenAI, solver_reply
from mathforge.testing.slurm_cluster import listening_sockets, network_problems

slurm = pytest.mark.slurm


# --------------------------------------------------------------------------- helpers (Slurm's own clients)
def jobs() -> dict[str, dict]:
    """Every job the controller knows (finished ones too): array job id -> name, its tasks' states."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%F|%j|%T"], capture_output=True, text=True,
                         check=True).stdout
    found: dict[str, dict] = {}
    for line in out.splitlines():
        job, name, state = line.split("|")
        found.setdefault(job, {"name": name, "states": []})["states"].append(state)
    return found


def show_job(job: str) -> dict[str, str]:
    """`scontrol show job -o` of a job's first task as key -> value."""
    line = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True,
                          check=True).stdout.splitlines()[0]
    return dict(token.split("=", 1) for token in line.split() if "=" in token)


def new_jobs(before: dict) -> list[tuple[str, dict]]:
    return sorted(((j, info) for j, info in jobs().items() if j not in before), key=lambda item: int(item[0]))


def wait_until_idle(timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, subprocess.run(["squeue"], capture_output=True, text=True).stdout
        time.sleep(0.2)


def task_processes(logs: Path) -> dict[int, int]:
    """{SLURM_ARRAY_TASK_ID: pid} of the task processes running the pickled pipeline of one job's logging dir."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            if not any(b"launch_pickled_pipeline" in part for part in command[:2]) or \
                    str(logs).encode() not in b" ".join(command):
                continue
            env = dict(item.split(b"=", 1) for item in (entry / "environ").read_bytes().split(b"\0") if b"=" in item)
        except OSError:
            continue
        if b"SLURM_ARRAY_TASK_ID" in env:
            found[int(env[b"SLURM_ARRAY_TASK_ID"])] = int(entry.name)
    return found


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def synth_inputs(tmp: Path, problems: int) -> list[str]:
    result = run("synth", "--out", tmp / "in", "--problems", problems, "--models", 4, "--seeds", 10)
    assert result.returncode == 0, result.stderr
    samples = [a for m in range(4) for a in ("--samples", tmp / "in" / f"model{m}")]
    return ["--gold", tmp / "in" / "gold.jsonl", *samples]


# --------------------------------------------------------------------------- the cluster itself
@slurm
def test_the_test_cluster_is_reachable_on_loopback_only(slurm_cluster):
    """Each daemon's network namespace holds `lo` alone, with loopback addresses only, and every socket a daemon
    listens on is bound to an address of that namespace: nothing outside this machine can reach the cluster."""
    pids = slurm_cluster.daemon_pids()
    assert set(pids) == {"munged", "slurmctld", "slurmd"}
    ports = {}
    for name, pid in pids.items():
        assert network_problems(pid) == [], (name, network_problems(pid))
        for address, port in listening_sockets(pid):
            assert address in ("0.0.0.0", "::") or address.startswith("127.") or address == "::1", (name, address)
            ports.setdefault(name, set()).add(port)
    assert 6817 in ports["slurmctld"] and 6818 in ports["slurmd"] and "munged" not in ports  # munge: a unix socket
    outside = outer_process()
    if outside is not None:  # the same check, on the machine's namespace (where `unshare` ran), finds its interfaces
        assert network_problems(outside), "the check must see the interfaces outside the namespace"
    elif os.environ.get("MATHFORGE_REQUIRE_SLURM") == "1":
        pytest.fail("no process outside this network namespace to check the check against")


def outer_process() -> int | None:
    """The nearest ancestor of this process in another network namespace (None when there is none we may read)."""
    ours, pid = os.stat("/proc/self/ns/net").st_ino, os.getpid()
    while pid > 1:
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino != ours:
                return pid
        except OSError:
            return None
    return None


# --------------------------------------------------------------------------- mathforge collect --executor slurm
COLLECT_OPTIONS = ["--tasks", 2, "--partitions", 4, "--dedup", "paper"]


@slurm
def test_collect_runs_as_three_chained_jobs_and_matches_local_bytes(slurm_cluster, tmp_path):
    inputs = synth_inputs(tmp_path, 300)
    local = run("collect", *inputs, *COLLECT_OPTIONS, "--out", tmp_path / "local")
    assert local.returncode == 0, local.stderr
    before = jobs()
    result = run("collect", *inputs, *COLLECT_OPTIONS, "--out", tmp_path / "slurm", "--executor", "slurm",
                 env={"SBATCH_TIMELIMIT": "00:23:00"})  # sbatch's own variables: how a collect takes options
    assert result.returncode == 0, result.stderr
    assert "submitted to Slurm" in result.stderr
    submitted = new_jobs(before)
    assert [info["name"] for _, info in submitted] == ["mathforge-index-2", "mathforge-collect-2", "mathforge-merge"]
    assert {show_job(job)["TimeLimit"] for job, _ in submitted} == {"00:23:00"}
    (index, _), (collect, _), (merge, _) = submitted
    assert show_job(collect)["Dependency"].startswith(f"afterok:{index}")
    assert show_job(merge)["Dependency"].startswith(f"afterok:{collect}")
    wait_until_idle()
    finished = {job: jobs()[job] for job, _ in submitted}
    assert [len(info["states"]) for info in finished.values()] == [2, 2, 1]  # array tasks: 2 index, 2 collect, 1
    assert all(state == "COMPLETED" for info in finished.values() for state in info["states"]), finished
    ours, theirs = tree(tmp_path / "local"), tree(tmp_path / "slurm")
    assert len(ours) == 5 and ours == theirs  # 4 partition shards + stats.json, byte for byte
    work = next((tmp_path / ".slurm.work").iterdir())  # the jobs' logs stay; nothing reads as done for a rerun
    assert {p.name for p in work.iterdir()} == {"logs", "owner"}
    assert len(list(work.glob("logs/*/slurm_logs/*.out"))) == 5
    assert [p.parent.name for p in work.glob("logs/*/completions")] == ["merge"]


@slurm
def test_a_cancelled_job_and_a_killed_task_resume_from_completion_markers(slurm_cluster, tmp_path):
    """One task at a time (--workers 1): the collect job is cancelled once its first task has finished; the rerun
    runs only the other task, which is killed mid-way; the third run completes. Nothing is redone twice or lost:
    the output equals the local executor's byte for byte, and the first task's partitions were written once."""
    inputs = synth_inputs(tmp_path, 1200)
    options = [*inputs, "--tasks", 2, "--partitions", 6, "--workers", 1]
    local = run("collect", *options, "--out", tmp_path / "local")
    assert local.returncode == 0, local.stderr
    out = tmp_path / "slurm"
    before = jobs()
    assert run("collect", *options, "--out", out, "--executor", "slurm").returncode == 0
    submitted = new_jobs(before)
    work = Path(next((tmp_path / ".slurm.work").iterdir()))
    deadline = time.monotonic() + 240
    while not (work / "logs" / "collect-2" / "completions" / "00000").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    subprocess.run(["scancel", *[job for job, _ in submitted]], check=True)
    wait_until_idle()
    states = {info["name"]: set(jobs()[job]["states"]) for job, info in submitted}
    assert states["mathforge-index-2"] == {"COMPLETED"} and "CANCELLED" in states["mathforge-collect-2"]
    assert states["mathforge-merge"] == {"CANCELLED"} and not out.exists()
    first = {p.name: p.stat().st_mtime_ns for p in (work / "parts").glob("*.json")}
    assert sorted(first) == ["p00000.json", "p00002.json", "p00004.json"]  # task 0's partitions, all done

    before = jobs()
    assert run("collect", *options, "--out", out, "--executor", "slurm").returncode == 0
    resumed = new_jobs(before)
    assert [info["name"] for _, info in resumed] == ["mathforge-collect-2", "mathforge-merge"]  # index: all done
    logs = work / "logs" / "collect-2"
    assert json.loads((logs / "ranks_to_run.json").read_text()) == [1]
    deadline = time.monotonic() + 240
    while not (work / "parts" / "p00001.json").exists():  # task 1 has finished one of its three partitions
        assert time.monotonic() < deadline
        time.sleep(0.01)
    running = task_processes(logs)
    assert list(running) == [0]  # datatrove's rank 1 is the job's array task 0
    os.kill(running[0], signal.SIGKILL)
    assert not (work / "parts" / "p00005.json").exists()
    deadline = time.monotonic() + 60
    while "FAILED" not in jobs()[resumed[0][0]]["states"]:
        assert time.monotonic() < deadline, jobs()
        time.sleep(0.1)
    while show_job(resumed[1][0])["Reason"] != "DependencyNeverSatisfied":  # Slurm's way: the merge never runs
        assert time.monotonic() < deadline, show_job(resumed[1][0])
        time.sleep(0.1)
    subprocess.run(["scancel", resumed[1][0]], check=True)
    wait_until_idle()
    assert not out.exists() and not (logs / "completions" / "00001").exists()
    assert {p.name: p.stat().st_mtime_ns for p in (work / "parts").glob("*.json")
            if p.name in first} == first  # task 0's partitions were not redone

    before = jobs()
    assert run("collect", *options, "--out", out, "--executor", "slurm").returncode == 0
    assert [info["name"] for _, info in new_jobs(before)] == ["mathforge-collect-2", "mathforge-merge"]
    wait_until_idle()
    assert tree(tmp_path / "local") == tree(out)
    assert all(state == "COMPLETED" for job, _ in new_jobs(before) for state in jobs()[job]["states"])


# --------------------------------------------------------------------------- recipe builds on Slurm
SYNTHESIS = """name: slurm-synthesis
version: 1.0.0
sources:
  - name: synthetic
    synthetic: {{problems: 12, seed: 3}}
stages:
  - type: sample
    k: 4
    checkpoint_every: 2
    models:
      - {{name: student, backend: scripted, model: synthesis-demo/student}}
  - type: tutor
    student: student
    attempts: 2
    select: mixed
    teacher: {{name: teacher, backend: scripted, model: synthesis-demo/teacher}}
  - type: collect
publish:
  methods: [gold, rft, tutor]
executor:
  type: slurm
  tasks: 2
  workers: 2
  options:
    partition: debug
    time: "00:17:00"
    cpus_per_task: 2
    mem_per_cpu_gb: 1
output:
  dir: {tmp}/out
  work_dir: {tmp}/work
"""


@slurm
def test_recipe_sample_tutor_and_collect_on_slurm_match_local(slurm_cluster, tmp_path):
    """Sampling, tutoring and collect passes of one recipe as Slurm jobs (models served on 127.0.0.1 by the build,
    the jobs' tasks sending the requests): problems x k samples exactly, checkpoints and request cache per task,
    the recipe's options on every job, and the same corpus fingerprint as the local executor."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(SYNTHESIS.format(tmp=tmp_path))
    before = jobs()
    result = run("build", recipe, timeout=900)
    assert result.returncode == 0, result.stderr
    submitted = new_jobs(before)
    names = [info["name"] for _, info in submitted]
    assert names[0].startswith("mathforge-student-") and names[1].startswith("mathforge-teacher-"), names
    assert names[2:] == ["mathforge-index-1", "mathforge-collect-1"], names  # 12 problems: one partition
    for job, info in submitted:
        assert info["states"] == ["COMPLETED"] * len(info["states"])
        shown = show_job(job)
        assert (shown["Partition"], shown["TimeLimit"], shown["MinMemoryCPU"]) == ("debug", "00:17:00", "1G")
        assert shown["NumCPUs"] == "2" and shown["CPUs/Task"] == "2", shown
    assert len(jobs()[submitted[0][0]]["states"]) == 2  # two tasks of the sampling pass

    samples_dir = next((tmp_path / "work" / "samples").glob("student-*"))
    samples = pq.read_table(samples_dir / "samples.parquet").to_pylist()
    failures = pq.read_table(samples_dir / "failures.parquet").to_pylist()
    assert len(samples) + len(failures) == 12 * 4 and not failures
    assert Counter((s["problem_id"], s["sample_index"]) for s in samples).most_common(1)[0][1] == 1
    # per task: its checkpoint marker, its checkpointed chunks (6 problems, one chunk per 2), its own request cache
    markers = sorted(p.name for p in (samples_dir / "checkpoints" / "last_chunk").iterdir())
    assert markers == ["00000.txt", "00001.txt"]
    assert Counter(p.name.split("_")[0] for p in (samples_dir / "output").glob("*.jsonl")) == {"00000": 3, "00001": 3}
    per_task = [sum(step["stats"].get("cache_misses", {}).get("total", 0) for step in json.loads(p.read_text()))
                for p in sorted(samples_dir.glob("logs-*/stats/*.json"))]
    assert per_task == [24, 24]
    slurm_manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())

    local = run("build", recipe, "--out", tmp_path / "out-local", "--set", "executor.type=local", "--set",
                "executor.options={}", "--set", f"output.work_dir={tmp_path / 'work-local'}", timeout=900)
    assert local.returncode == 0, local.stderr
    local_manifest = json.loads((tmp_path / "out-local" / "manifest.json").read_text())
    tutored = [json.loads((tmp_path / out / "stats.json").read_text())["tutor"] for out in ("out", "out-local")]
    assert tutored[0] == tutored[1] and tutored[0]["fixes_accepted"] > 0
    assert slurm_manifest["rows"] == local_manifest["rows"]
    assert slurm_manifest["fingerprint"] == local_manifest["fingerprint"]


@slurm
@pytest.mark.parametrize("option, value, refusal", [
    ("partition", "nowhere", "invalid partition"),
    ("time", "\"3-00:00:00\"", "time limit"),
    ("mem_per_cpu_gb", "64", "node configuration is not available"),
])
def test_options_the_cluster_refuses_fail_before_anything_is_submitted(slurm_cluster, tmp_path, option, value,
                                                                          refusal):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(SYNTHESIS.format(tmp=tmp_path).replace(f"    {option}: ", f"    {option}: {value}  # "))
    line = next(n for n, text in enumerate(recipe.read_text().splitlines(), 1) if text.startswith(f"    {option}:"))
    before = jobs()
    result = run("build", recipe)
    assert result.returncode == 2, result.stderr
    assert f"recipe.yaml:{line}: executor.options.{option}: Slurm refuses these jobs" in result.stderr
    assert refusal in result.stderr.lower()
    assert new_jobs(before) == [] and not (tmp_path / "work").exists()


@slurm
def test_a_killed_sampling_task_fails_the_build_and_the_rerun_completes(slurm_cluster, tmp_path):
    rows = synthetic.problems(24, seed=5)
    synthetic.write_gold(rows, tmp_path / "gold.jsonl")
    with FakeOpenAI(reply=solver_reply(rows), latency=lambda payload: 0.15) as server:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(f"name: gen\nversion: 1.0.0\nsources:\n  - path: {tmp_path / 'gold.jsonl'}\nstages:\n"
                          f"  - type: sample\n    k: 4\n    max_tokens: 16\n    concurrency: 2\n"
                          f"    checkpoint_every: 2\n    models:\n      - name: solver\n        backend: endpoint\n"
                          f"        model: fake-model\n        base_url: {server.url}\n  - type: collect\n"
                          f"executor:\n  type: slurm\n  tasks: 2\n  workers: 2\n"
                          f"output:\n  dir: {tmp_path}/out\n  work_dir: {tmp_path}/work\n")
        build = subprocess.Popen([*CLI, "build", str(recipe)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        deadline = time.monotonic() + 240
        while server.counts["ok"] < 12:
            assert time.monotonic() < deadline and build.poll() is None, build.stderr.read() if build.poll() else ""
            time.sleep(0.02)
        logs = next((tmp_path / "work" / "samples").glob("solver-*/logs-*"))
        killed = task_processes(logs)
        assert set(killed) == {0, 1}
        os.kill(killed[1], signal.SIGKILL)
        _, stderr = build.communicate(timeout=300)
        assert build.returncode != 0
        assert "1 of 2 tasks did not finish (ranks 1)" in stderr and "Rerun to resume" in stderr, stderr
        served = server.counts["ok"]
        assert served < 24 * 4
        time.sleep(0.5)  # requests in flight at the kill finish on the server's side
        served = server.counts["ok"]

        result = run("build", recipe, timeout=600)
        assert result.returncode == 0, result.stderr
    samples_dir = next((tmp_path / "work" / "samples").glob("solver-*"))
    samples = pq.read_table(samples_dir / "samples.parquet").to_pylist()
    assert len(samples) == 24 * 4
    assert Counter((s["problem_id"], s["sample_index"]) for s in samples).most_common(1)[0][1] == 1
    assert server.counts["ok"] - served <= 12 * 4  # at most task 1's share asked again: task 0's was finished


# --------------------------------------------------------------------------- no cluster needed
@pytest.mark.parametrize("options, key, message", [
    ("partiton: debug", "partiton", "not an option of datatrove's SlurmPipelineExecutor"),
    ("tasks: 4", "tasks", "set by mathforge"),
    ("time: ten minutes", "time", "not a Slurm time limit"),
    ("cpus_per_task: 0", "cpus_per_task", "must be a whole number >= 1"),
    ("partition: \"debug\\n#SBATCH --uid=0\"", "partition", "must be one line"),
    ("sbatch_args: {\"account; rm\": x}", "sbatch_args.account; rm", "not an option name"),
])
def test_a_bad_slurm_option_is_refused_at_its_recipe_line(tmp_path, options, key, message):
    recipe = tmp_path / "recipe.yaml"
    lines = SYNTHESIS.format(tmp=tmp_path).splitlines()
    name = options.split(":")[0]
    at = next((n for n, text in enumerate(lines) if text.startswith(f"    {name}:")),
              lines.index("    partition: debug"))
    lines[at] = f"    {options}"
    recipe.write_text("\n".join(lines) + "\n")
    line = next(n for n, text in enumerate(recipe.read_text().splitlines(), 1) if text == f"    {options}")
    result = run("validate", recipe)
    assert result.returncode == 2
    assert f"recipe.yaml:{line}: executor.options.{key}: {message}" in result.stderr, result.stderr
