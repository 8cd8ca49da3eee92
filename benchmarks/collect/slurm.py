"""The collect benchmark on the local, Ray and Slurm executors in one session: wall time, peak RSS per task, and
the Slurm jobs' timeline (queue wait, task start-up, work) with the overhead it adds. Run it on a cluster, e.g.:

    .venv/bin/python -m mathforge.testing.slurm_cluster up -- .venv/bin/python benchmarks/collect/slurm.py

One JSON line per run. Local and Ray runs are timed as in versus_reference.py (the whole command; --task-report for
each partition). A Slurm run is timed from the command's start to the output in place (the merge job's publish);
its task processes (`launch_pickled_pipeline`) are sampled every 50 ms from /proc for their peak RSS (VmHWM) and
lifetime, and each task's work is datatrove's own step time (logs/<job>/stats)."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from versus_reference import mathforge_command, models_of, run_ours  # noqa: E402


class TaskSampler(threading.Thread):
    """Every task process of the Slurm jobs: first and last time seen, peak RSS (VmHWM), job name, array task."""

    def __init__(self, marker: str):
        super().__init__(daemon=True)
        self.marker, self.tasks, self.stop = marker.encode(), {}, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            now = time.time()
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    command = (entry / "cmdline").read_bytes()
                    if b"launch_pickled_pipeline" not in command or self.marker not in command:
                        continue
                    status = (entry / "status").read_text()
                    env = dict(item.split(b"=", 1) for item in (entry / "environ").read_bytes().split(b"\0")
                               if b"=" in item)
                except OSError:
                    continue
                if b"python" not in command.split(b"\0")[0]:  # the task itself, not the `srun` that started it
                    continue
                hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
                key = (env.get(b"SLURM_JOB_NAME", b"?").decode(), int(env.get(b"SLURM_ARRAY_TASK_ID", b"0")))
                task = self.tasks.setdefault(key, {"first": now, "last": now, "peak_rss_mb": 0.0})
                task["last"] = now
                task["peak_rss_mb"] = max(task["peak_rss_mb"], round(hwm / 1024, 1))


def slurm_times(job: str) -> dict:
    line = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True,
                          check=True).stdout.splitlines()
    fields = [dict(token.split("=", 1) for token in row.split() if "=" in token) for row in line]
    stamp = lambda text: datetime.fromisoformat(text).timestamp()  # noqa: E731 (1 s resolution)
    return {"submit": min(stamp(f["SubmitTime"]) for f in fields), "start": min(stamp(f["StartTime"]) for f in fields),
            "end": max(stamp(f["EndTime"]) for f in fields), "states": sorted({f["JobState"] for f in fields})}


def task_log_times(log: Path) -> tuple[float, float]:
    """When datatrove began a task's pipeline (after the interpreter started and unpickled it) and finished it,
    from the task log's first and "Processing done" lines."""
    lines = log.read_text(errors="replace").splitlines()
    stamp = lambda line: datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()  # noqa: E731
    return stamp(lines[0]), stamp(next(line for line in lines if "Processing done for rank" in line))


def run_slurm(data: Path, out: Path, tasks: int) -> dict:
    cmd = [mathforge_command(), "collect", "--gold", str(data / "gold.jsonl")]
    for model in models_of(data):
        cmd += ["--samples", str(model)]
    cmd += ["--out", str(out), "--dedup", "paper", "--no-gold-rows", "--executor", "slurm", "--tasks", str(tasks)]
    before = set(subprocess.run(["squeue", "-h", "-t", "all", "-o", "%F"], capture_output=True, text=True,
                                check=True).stdout.split())
    sampler = TaskSampler(str(out.parent))
    sampler.start()
    started_wall, started = time.time(), time.perf_counter()
    submitted = subprocess.run(cmd, capture_output=True, text=True)
    submit_seconds = time.perf_counter() - started
    if submitted.returncode:
        raise SystemExit(f"submission failed: {submitted.stderr[-2000:]}")
    while not (out / "stats.json").exists():
        if not subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip():
            raise SystemExit(f"the jobs left the queue without an output; logs under {out.parent}")
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    while subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip():
        time.sleep(0.1)
    time.sleep(0.2)
    sampler.stop.set()
    sampler.join()
    listing = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%F|%j"], capture_output=True, text=True,
                             check=True).stdout.split()
    jobs = sorted({tuple(row.split("|")) for row in listing if row.split("|")[0] not in before},
                  key=lambda job: int(job[0]))
    logs = next(out.parent.glob(f".{out.name}.work/collect-*/logs"))
    timeline, previous_end = [], started_wall
    for job, name in jobs:
        times = slurm_times(job)
        folder = logs / name.removeprefix("mathforge-")
        spans = [task_log_times(p) for p in sorted((folder / "logs").glob("task_*.log"))]
        procs = [t for (n, _), t in sorted(sampler.tasks.items()) if n == name]
        timeline.append({
            "job": name, "tasks": len(spans), "states": times["states"],
            "queue_wait_s": round(times["start"] - max(previous_end, times["submit"]), 1),  # after its dependency
            "job_s": round(times["end"] - times["start"], 1),
            "task_work_s": [round(end - begin, 2) for begin, end in spans],
            "task_startup_s": [round(begin - t["first"], 2) for t, (begin, _) in zip(procs, spans)],
            "task_exit_s": [round(t["last"] - end, 2) for t, (_, end) in zip(procs, spans)],
            "task_peak_rss_mb": [t["peak_rss_mb"] for t in procs]})
        previous_end = times["end"]
    stats = json.loads((out / "stats.json").read_text())
    critical = sum(max(entry["task_work_s"] or [0]) for entry in timeline)
    return {"executor": "slurm", "samples": stats.get("samples"), "kept": stats.get("distinct"),
            "seconds": round(seconds, 2), "submit_command_s": round(submit_seconds, 2),
            "samples_per_s": round(stats["samples"] / seconds) if stats.get("samples") else None,
            "work_critical_path_s": round(critical, 2), "overhead_s": round(seconds - critical, 2),
            "jobs": timeline, "command": shlex.join(cmd)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE / "data-realistic"))
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--executors", nargs="*", default=["local", "ray", "slurm"])
    parser.add_argument("--repeat", type=int, default=1, help="best of N per executor")
    args = parser.parse_args()
    data = Path(args.data)
    for executor in args.executors:
        runs = []
        for attempt in range(args.repeat):
            load = os.getloadavg()[0]
            with tempfile.TemporaryDirectory(prefix=f"bench-{executor}-", dir=HERE) as tmp:
                tmp = Path(tmp)
                if executor == "slurm":
                    result = run_slurm(data, tmp / "out", args.tasks)
                else:
                    report = tmp / "tasks.json"
                    result = run_ours(data, tmp / "out", ["--tasks", str(args.tasks), "--executor", executor,
                                                          "--task-report", str(report)], tmp / "run.log")
                    stats = json.loads((tmp / "out" / "stats.json").read_text())
                    partitions = json.loads(report.read_text())["partitions"]
                    result = {"executor": executor, "samples": stats.get("samples"), "kept": stats.get("distinct"),
                              "seconds": result["seconds"],
                              "samples_per_s": round(stats["samples"] / result["seconds"]),
                              "peak_rss_mb_largest_process": result["peak_rss_mb"],
                              "partition_seconds": [p["seconds"] for p in partitions],
                              "partition_peak_rss_mb": [p["peak_rss_mb"] for p in partitions],
                              "command": result["command"]}
            result["load_before"] = round(load, 2)
            runs.append(result)
            print(json.dumps(result), flush=True)
        if args.repeat > 1:
            best = min(runs, key=lambda r: r["seconds"])
            print(json.dumps({"executor": executor, "best_seconds": best["seconds"],
                              "all_seconds": [r["seconds"] for r in runs]}), flush=True)


if __name__ == "__main__":
    main()
