"""Slurm through datatrove: the executor with mathforge's defaults, waiting for a pass's jobs, options checked first."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from datatrove.executor import SlurmPipelineExecutor

from mathforge.errors import InputError

ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
          "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}
# a pending job with one of these reasons will not start unless an administrator changes the cluster: cancelled
NEVER = {"DependencyNeverSatisfied", "PartitionTimeLimit", "PartitionNodeLimit", "BadConstraints", "InvalidQOS",
         "InvalidAccount", "PartitionConfig"}
POLL_MAX = 10.0  # seconds between two looks at the queue, once a job has run a while


class SlurmExecutor(SlurmPipelineExecutor):
    """datatrove's SlurmPipelineExecutor where an unset `partition` or `time` is left to the cluster (the default
    partition and its default time limit), and no stats-merging job follows each job: mathforge adds up the tasks'
    `stats/<rank>.json` itself, so a collect is exactly three jobs and a sampling pass one."""

    def get_sbatch_args(self, max_array: int = 1) -> dict:
        return {key: value for key, value in super().get_sbatch_args(max_array).items() if value is not None}

    def launch_merge_stats(self) -> None:
        pass


def slurm_executor(steps: list, tasks: int, workers: int, logging_dir: Path, options: dict) -> SlurmExecutor:
    """The recipe's Slurm options over these steps. Jobs are named after their work (`mathforge-<pass or step>`)
    and run this process's Python (its bin directory first on PATH) unless the options say how to set one up."""
    logging_dir = Path(logging_dir)
    name = logging_dir.parent.name if logging_dir.name.startswith("logs-") else logging_dir.name
    options = {"partition": None, "time": None, "job_name": f"mathforge-{name}", **options}
    if not any(options.get(key) for key in ("env_command", "condaenv", "venv_path")):
        options["env_command"] = f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:\"$PATH\""
    return SlurmExecutor(steps, tasks=tasks, workers=workers, logging_dir=str(logging_dir), **options)


def _queue(job_ids: list[str]) -> list[tuple[str, str, str]]:
    """(job id, state, reason) of every task of these jobs still in Slurm's queue."""
    for attempt in range(5):
        result = subprocess.run(["squeue", "-h", "-j", ",".join(job_ids), "-t", "all", "-o", "%i|%T|%r"],
                                capture_output=True, text=True)
        if result.returncode == 0:
            return [tuple(line.split("|", 2)) for line in result.stdout.splitlines() if line.count("|") == 2]
        if "Invalid job id" in result.stderr:  # finished long enough ago to have left the controller's memory
            return []
        time.sleep(1 + attempt)
    raise RuntimeError(f"squeue failed: {result.stderr.strip()}")


def cancel(job_ids: list[str]) -> None:
    if job_ids:
        subprocess.run(["scancel", *job_ids], capture_output=True)


def wait_for_jobs(executors: list[SlurmExecutor], poll: float = 0.25) -> None:
    """Block until the jobs of these launched executors have left the queue (a job whose dependency failed can
    never start: it is cancelled), then check datatrove's completion markers: a task without one raises, naming
    its job's logs. Interrupted, the jobs are cancelled, so no task of this run outlives it."""
    ids = [str(e.job_id) for e in executors if e.job_id not in (None, -1)]
    blocked: dict[str, str] = {}
    try:
        while ids:
            active = [(job, state, reason) for job, state, reason in _queue(ids) if state in ACTIVE]
            stuck = {job.split("_")[0]: reason for job, state, reason in active
                     if state == "PENDING" and reason in NEVER}
            cancel(sorted(stuck))
            blocked.update(stuck)
            if not active:
                break
            time.sleep(poll)
            poll = min(poll * 1.5, POLL_MAX)
    except BaseException:
        cancel(ids)
        raise
    for executor in executors:
        missing = executor.get_incomplete_ranks()
        if missing:
            why = f", cancelled pending ({blocked[str(executor.job_id)]})" if str(executor.job_id) in blocked else ""
            raise RuntimeError(f"Slurm job {executor.job_id} ({executor.job_name}): {len(missing)} of "
                               f"{executor.tasks} tasks did not finish (ranks {', '.join(map(str, missing[:8]))}"
                               f"{'...' if len(missing) > 8 else ''}{why}); logs in {executor.slurm_logs_folder}. "
                               "Rerun to resume: finished tasks are not run again")


SBATCH_ERROR_KEYS = (("partition", "partition"), ("time limit", "time"), ("--time", "time"),
                     ("memory", "mem_per_cpu_gb"), ("qos", "qos"), ("account", "sbatch_args"))
RESOURCES = (("mem_per_cpu_gb", 1), ("cpus_per_task", 1), ("gpus_per_task", 0), ("nodes_per_task", 1))


def check_submission(recipe) -> None:
    """Ask the cluster (`sbatch --test-only`) whether it would take a job with the recipe's executor options, before
    anything is submitted or sampled; a refusal is an InputError at the option's recipe line. Slurm's "node
    configuration is not available" names no option: each resource option is tried at its least to find it."""
    executor = recipe.executor
    try:
        message = _refusal(executor, executor.options)
    except FileNotFoundError:
        raise InputError("executor.type is slurm but `sbatch` is not on PATH (run the build on a Slurm login node)",
                         *recipe.where("executor", "type")) from None
    if message is None:
        return
    option = next((name for needle, name in SBATCH_ERROR_KEYS if needle in message.lower()
                   and name in executor.options), None)
    if option is None and "node configuration" in message:
        option = next((name for name, least in RESOURCES if executor.options.get(name, least) != least
                       and _refusal(executor, {**executor.options, name: least}) is None), None)
    path = ("executor", "options", option) if option else ("executor", "options") if executor.options \
        else ("executor", "type")
    raise InputError(f"Slurm refuses these jobs: {message}", *recipe.where(*path))


def _refusal(executor, options: dict) -> str | None:
    """sbatch's reason to refuse an array job of `executor.tasks` tasks with these options (None: it would run)."""
    with tempfile.TemporaryDirectory(prefix="mathforge-slurm-check-") as tmp:
        probe = slurm_executor([], executor.tasks, executor.workers, Path(tmp) / "probe",
                               {**options, "slurm_logs_folder": tmp})
        script = Path(tmp) / "probe.sh"
        script.write_text(probe.get_launch_file_contents(probe.get_sbatch_args(executor.tasks), "true"))
        result = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True, timeout=60)
    if result.returncode == 0:
        return None
    lines = [line.removeprefix("sbatch: error: ") for line in result.stderr.splitlines()]
    return re.sub(r"\s+", " ", " ".join(lines)).strip() or "sbatch --test-only failed"
