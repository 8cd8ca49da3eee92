"""The sample stage: k reasoning paths per problem per model through datatrove's InferenceRunner, to samples Parquet."""
from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.executor.local import LocalPipelineExecutor
import mathforge.lifeline as lifeline
from mathforge.builders import prompts
from mathforge.builders.generation import hub_models
from mathforge.builders.generation.client import RequestFailed
from mathforge.builders.recipe import Executor, ModelSpec, SampleStage
from mathforge.builders.sources import Problem

from mathforge.errors import InputError
from mathforge.verify.extract import split_reasoning
from mathforge.verify.grader import is_correct, reference_answer

SAMPLE_SCHEMA = pa.schema([
    ("problem_id", pa.string()), ("doc_id", pa.string()), ("idx", pa.int64()), ("model", pa.string()), ("model_id", pa.string()),
    ("revision", pa.string()), ("backend", pa.string()), ("sample_index", pa.int64()), ("seed", pa.int64()),
    ("temperature", pa.float64()), ("top_p", pa.float64()), ("max_tokens", pa.int64()), ("stop", pa.string()),
    ("prompt_format", pa.string()), ("text", pa.string()), ("finish_reason", pa.string()),
    ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()), ("attempts", pa.int64()),
    ("reasoning", pa.string()),  # a reasoning model's trace, apart from `text` (null: none; older files lack it)
])
FAILURE_SCHEMA = pa.schema([
    ("problem_id", pa.string()), ("doc_id", pa.string()), ("idx", pa.int64()), ("model", pa.string()), ("sample_index", pa.int64()),
    ("seed", pa.int64()), ("attempts", pa.int64()), ("error", pa.string()),
])
PROGRESS: Counter = Counter()  # requests answered and tokens generated in this process (for the progress line)
PROGRESS_EVERY = 1.0  # seconds between a client process's progress files (several processes share one line)
# Requests in flight one client process keeps up with: at 64 one process reaches ~0.95 of a 200 ms server's ceiling
# on a 2-core VM, at 256 it is CPU-bound near 0.4 (benchmarks/generation, RESULTS.md); more are spread over processes.
PER_PROCESS = 64


@dataclass(frozen=True)
class Doc:
    """One datatrove document: a rendered prompt about one problem (sampling: the problem itself)."""

    id: str
    idx: int
    problem_id: str
    text: str
    gold: str | None = None
    kind: str = "auto"  # the gold answer's kind (grading mode of the sample quota)


def problem_docs(problems: list[Problem], template: str) -> list[Doc]:
    return [Doc(p.problem_id, p.index, p.problem_id, prompts.render(template, prompts.problem_fields(p)),
                reference_answer(p.solution, p.answer_kind), p.answer_kind) for p in problems]


@dataclass
class ModelPass:
    """One model's sampling run: its spec, the stage settings, and a work directory named by its fingerprint."""

    spec: ModelSpec
    stage: SampleStage
    fingerprint: str
    dir: Path
    base_url: str | None = None
    commit: str | None = None  # the Hub commit a local/batched model id resolved to

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def samples_path(self) -> Path:
        return self.dir / "samples.parquet"

    @property
    def failures_path(self) -> Path:
        return self.dir / "failures.parquet"


@dataclass
class PassResult:
    """What one model pass produced and measured."""

    label: str
    samples_path: Path
    problems: int
    requests: int
    ok: int
    failed: int
    retries: int
    cache_hits: int
    completion_tokens: int
    seconds: float
    single_text_problems: int
    errors: Counter = field(default_factory=Counter)
    reused: bool = False
    model_revision: str | None = None  # the Hub commit that ran (a local/batched Hub id), for the lineage


# --------------------------------------------------------------------------- plan and preflight
def template_of(stage: SampleStage) -> str:
    return stage.prompt.template or (prompts.CHAT_USER if stage.prompt.chat else prompts.ALPACA)


def sampling_params(stage: SampleStage) -> dict:
    return {"k": stage.k, "temperature": stage.temperature, "top_p": stage.top_p, "max_tokens": stage.max_tokens,
            "seed": stage.seed, "stop": stage.stop, "chat": stage.prompt.chat, "system": stage.prompt.system,
            "template": template_of(stage), "quota": stage.quota.model_dump() if stage.quota else None}


def fingerprint(stage: SampleStage, spec: ModelSpec, docs: list[Doc]) -> str:
    """Everything that decides which requests are sent: model, params, template, the prompts themselves."""
    ids = hashlib.sha256("\n".join(f"{d.id}\t{d.text}" for d in docs).encode()).hexdigest()
    # where a server binds and which interpreter runs it: not content
    model = spec.model_dump(exclude={"name", "build_tiny", "reasoning", "host", "python"})
    for key in ("trust_remote_code", "server_args"):  # unset: caches from before the field keep their fingerprint
        if not model.get(key):
            model.pop(key, None)
    body = {"model": model, "params": sampling_params(stage),
            "problems": ids}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def plan(stage: SampleStage, docs: list[Doc], work_dir: Path, kind: str = "samples") -> list[ModelPass]:
    passes = []
    for spec in stage.models:
        fp = fingerprint(stage, spec, docs)
        passes.append(ModelPass(spec, stage, fp, work_dir / kind / f"{spec.label}-{fp}"))
    return passes


def preflight(stage_index: int, stage: SampleStage, problems: list[Problem], recipe) -> None:
    """Every check that can fail before a request is sent; raises InputError naming the recipe key."""
    key = ("stages", stage_index)
    fields = prompts.problem_fields(problems[0]) if problems else None
    for name, text in (("template", template_of(stage)), ("system", stage.prompt.system)):
        if text is not None:
            file, line, dotted = recipe.where(*key, "prompt", name)
            prompts.check_template(text, file, dotted, fields, line=line)
    check_models(stage, recipe, [(spec, key + ("models", m)) for m, spec in enumerate(stage.models)])


def check_models(stage, recipe, specs: list) -> None:
    """Local paths, installed backends, API-key variables, endpoint readiness: before any request is sent."""
    for spec, where in specs:
        file, line, dotted = recipe.where(*where, "model")
        if spec.backend in ("local", "batched"):
            path = Path(spec.model)
            if not path.exists() and not spec.build_tiny and hub_models.is_hub_id(spec.model):
                try:  # a Hub id: download (or find in the cache) now, before any request is sent
                    hub_models.resolve(spec.model, spec.revision)
                except InputError as exc:
                    raise InputError(exc.message, file, line, dotted) from None
                continue
            if not path.exists() and not spec.build_tiny:
                raise InputError(f"model directory does not exist (nor an org/name Hub id): {spec.model}", file,
                                 line, dotted)
            if path.exists() and not (path / "config.json").exists():
                raise InputError(f"not a transformers model directory (no config.json): {spec.model}", file,
                                 line, dotted)
        elif spec.backend == "scripted":
            from mathforge.testing.scripted import reply_for

            try:
                reply_for(spec.model)
            except ValueError as exc:
                raise InputError(str(exc), file, line, dotted) from None
        elif spec.backend in ("vllm", "sglang") and spec.python:
            file, line, dotted = recipe.where(*where, "python")
            check_interpreter(spec.python, spec.backend, file, line, dotted)
        elif spec.backend in ("vllm", "sglang"):
            if importlib.util.find_spec(spec.backend) is None:
                raise InputError(f"backend {spec.backend} is not installed here (pip install 'mathforge[vllm]', or "
                                 "`python:` an interpreter that has it: `make vllm` makes .venv-vllm, vLLM's CPU "
                                 "build)", file, line, dotted.replace(".model", ".backend"))
        if spec.api_key_env and not os.environ.get(spec.api_key_env):
            file, line, dotted = recipe.where(*where, "api_key_env")
            raise InputError(f"environment variable {spec.api_key_env} (the API key) is not set", file, line,
                             dotted)
        if spec.backend == "endpoint":
            file, line, dotted = recipe.where(*where, "base_url")
            wait_ready(spec, stage.ready_timeout, file, line, dotted)


def check_interpreter(python: str, module: str, file: str, line: int | None, key: str) -> None:
    """The recipe's `python` runs and can import the server's package (looked up, not imported: vLLM takes seconds)."""
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    try:
        found = subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"cannot run {python}: {exc}", file, line, key) from None
    if not found:
        raise InputError(f"{python} cannot import {module}" + (" (`make vllm` makes .venv-vllm with vLLM's CPU build)"
                                                                if module == "vllm" else ""), file, line, key)


def wait_ready(spec: ModelSpec, timeout: float, file: str, line: int | None, key: str) -> None:
    from mathforge.builders.generation.client import probe_ready

    headers = {"Authorization": f"Bearer {os.environ[spec.api_key_env]}"} if spec.api_key_env else {}
    deadline = time.monotonic() + timeout
    while True:
        if asyncio.run(probe_ready(spec.base_url, headers, timeout=min(5.0, timeout))):
            return
        if time.monotonic() >= deadline:
            raise InputError(f"{spec.base_url} did not answer /health or /v1/models with 200 within {timeout:g} s "
                             "(sample.ready_timeout)", file, line, key)
        time.sleep(min(1.0, timeout / 10))


# --------------------------------------------------------------------------- the rollout (runs inside datatrove)
def sample_seed(base: int, model: str, problem_id: str, index: int) -> int:
    digest = hashlib.sha256(f"{base}|{model}|{problem_id}|{index}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def request_payload(document, spec: dict, seed: int) -> dict:
    if spec["chat"]:
        messages = ([{"role": "system", "content": spec["system_text"]}] if spec["system_text"] else [])
        payload = {"messages": messages + [{"role": "user", "content": document.text}]}
    else:
        payload = {"prompt": document.text}
    payload.update(max_tokens=spec["max_tokens"], temperature=spec["temperature"], top_p=spec["top_p"], seed=seed)
    if spec["stop"]:
        payload["stop"] = spec["stop"]
    if spec.get("response_format"):
        payload["response_format"] = spec["response_format"]
    if spec["backend"] == "local":  # transformers serve samples only when its generation config says so
        payload["generation_config"] = json.dumps({"do_sample": spec["temperature"] > 0,
                                                   "temperature": spec["temperature"] or None,
                                                   "top_p": spec["top_p"], "max_new_tokens": spec["max_tokens"]})
    return payload


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Servers that ignore `stop` still get their text cut at the first stop string."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def split_sample(text: str, reasoning: str | None) -> tuple[str | None, str]:
    """(reasoning, solution text) of a reply: the server's separate reasoning field and any `<think>` block in
    the text, joined; the text keeps what follows the last closing tag (empty when the trace was cut off)."""
    inline, final = split_reasoning(text)
    joined = "\n\n".join(part for part in (reasoning, inline) if part) or None
    if inline is None:
        return joined, text
    return joined, final.lstrip() if final is not None else ""


async def one_sample(document, generate, spec: dict, index: int) -> dict:
    seed = sample_seed(spec["seed"], spec["label"], document.id, index)
    payload = request_payload(document, spec, seed)
    reason = "no attempt"
    for attempt in range(spec["max_retries"] + 1):
        try:
            result = await generate(dict(payload))
        except RequestFailed as exc:
            reason = exc.reason
            if not exc.retryable and "response_format" in payload and reason.startswith("http 4"):
                payload.pop("response_format")  # no structured output on this server: the text parser takes over
                continue
            if not exc.retryable:
                PROGRESS["failed"] += 1
                return {"sample_index": index, "seed": seed, "status": "failed", "error": reason,
                        "attempts": attempt + 1}
            await asyncio.sleep(min(spec["retry_backoff"] * 2 ** attempt, 30.0))
            continue
        text, cut = cut_at_stop(result.text, spec["stop"])
        reasoning, text = split_sample(text, result.reasoning)
        usage = result.usage or {}
        PROGRESS["done"] += 1
        PROGRESS["tokens"] += int(usage.get("completion_tokens") or 0)
        report_progress(spec.get("progress_dir"))
        return {"sample_index": index, "seed": seed, "status": "ok", "text": text, "reasoning": reasoning,
                "finish_reason": "stop" if cut else result.finish_reason,
                "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
                "attempts": attempt + 1}
    PROGRESS["done"] += 1
    PROGRESS["failed"] += 1
    report_progress(spec.get("progress_dir"))
    return {"sample_index": index, "seed": seed, "status": "failed", "error": f"gave up after "
            f"{spec['max_retries'] + 1} attempts: {reason}", "attempts": spec["max_retries"] + 1}


async def sample_problem(document, generate, spec: dict) -> dict:
    """All samples of one problem: k of them, or (quota) rounds of k until enough are correct."""
    quota = spec["quota"]
    rounds_left = 1 if quota is None else -(-quota["max_samples"] // spec["k"])
    samples: list[dict] = []
    correct = 0
    while rounds_left > 0:
        size = spec["k"] if quota is None else min(spec["k"], quota["max_samples"] - len(samples))
        start = len(samples)
        batch = await asyncio.gather(*(one_sample(document, generate, spec, start + i) for i in range(size)))
        samples.extend(batch)
        rounds_left -= 1
        if quota is None:
            continue  # k samples, graded later by the collect: grading here would stall every request in flight
        gold, kind = document.metadata.get("gold"), document.metadata.get("kind", "auto")
        texts = [s["text"] for s in batch if s["status"] == "ok"]
        # off the event loop (a slow LaTeX verdict takes tens of ms, and the loop serves every request in flight)
        correct += await asyncio.to_thread(lambda: sum(1 for text in texts if is_correct(text, gold, kind)))
        if correct >= quota["correct"]:
            break
    return {"samples": samples}


_last_report = [0.0]


def report_progress(folder: str | None) -> None:
    """A client process in a pool of several writes its counters to `<folder>/<pid>.json` about once a second;
    the build's progress line adds them up (one process alone is read in memory)."""
    now = time.monotonic()
    if folder is None or now - _last_report[0] < PROGRESS_EVERY:
        return
    _last_report[0] = now
    path = Path(folder) / f"{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(dict(PROGRESS)))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- running a pass
@dataclass(frozen=True)
class ClientLayout:
    """How one pass spreads its requests: `processes` client processes (datatrove tasks, one problem shard each),
    each with `concurrency` requests in flight."""

    processes: int
    concurrency: int


def client_layout(stage, executor: Executor, folder: Path, launches: bool = False) -> ClientLayout:
    """The recipe's `client_processes`, else one process per PER_PROCESS requests of `concurrency` (at most one per
    CPU: the processes share this machine's cores); a layout already on disk wins, since checkpoints and the request
    cache are per task and a resumed pass must shard its problems exactly as the first run did. An executor the
    recipe configured (Slurm, Ray, several local tasks) keeps its tasks, each with the stage's whole concurrency.
    `launches`: each task starts its own server (vllm, sglang), so one process unless `client_processes` says more."""
    concurrency = stage.concurrency
    if executor.type != "local" or executor.tasks > 1:
        return ClientLayout(executor.tasks, concurrency)
    saved = folder / "client-layout.json"
    if saved.exists():
        return ClientLayout(**json.loads(saved.read_text()))
    if (folder / "checkpoints").exists():
        processes = 1  # a pass begun before layouts were saved ran one task: resume it as it was sharded
    else:
        derived = 1 if launches else max(1, min(-(-concurrency // PER_PROCESS), os.cpu_count() or 1))
        processes = getattr(stage, "client_processes", None) or derived
    processes = min(processes, concurrency)
    layout = ClientLayout(processes, -(-concurrency // processes))
    tmp = saved.with_suffix(".tmp")
    tmp.write_text(json.dumps({"processes": layout.processes, "concurrency": layout.concurrency}))
    os.replace(tmp, saved)
    return layout


def write_inputs(mp: ModelPass, docs: list[Doc], tasks: int) -> Path:
    """Documents as JSONL shards, one per task, contiguous ranges (all samples of a problem in one task)."""
    folder = mp.dir / "input"
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(docs) // tasks) if docs else 0
    for rank in range(tasks):
        tmp = folder / f".{rank:05d}.jsonl.tmp"
        with open(tmp, "wb") as handle:
            for d in docs[rank * size:(rank + 1) * size]:
                handle.write(orjson.dumps({"id": d.id, "text": d.text, "metadata": {"idx": d.idx, "gold": d.gold,
                                                                                  "kind": d.kind}})
                             + b"\n")
        os.replace(tmp, folder / f"{rank:05d}.jsonl")
    return folder


def rollout_spec(mp: ModelPass, progress_dir: Path | None = None) -> dict:
    stage = mp.stage
    return {"label": mp.label, "progress_dir": str(progress_dir) if progress_dir else None,
            "backend": mp.spec.backend, "k": stage.k, "temperature": stage.temperature, "top_p": stage.top_p,
            "max_tokens": stage.max_tokens, "seed": stage.seed, "stop": stage.stop,
            "chat": stage.prompt.chat, "system_text": stage.prompt.system,
            "quota": stage.quota.model_dump() if stage.quota else None, "max_retries": stage.max_retries,
            "retry_backoff": stage.retry_backoff, "response_format": stage.response_format}


def pipeline(mp: ModelPass, layout: ClientLayout, progress_dir: Path | None = None) -> list:
    from datatrove.pipeline.inference.run_inference import InferenceConfig
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from mathforge.builders.generation.servers import LaunchingRunner

    stage, spec = mp.stage, mp.spec
    server_type = "endpoint" if spec.backend in ("endpoint", "local", "batched", "scripted") else spec.backend
    config = InferenceConfig(
        server_type=server_type, model_name_or_path=spec.model, use_chat=stage.prompt.chat,
        endpoint_url=mp.base_url, tp=spec.tp, dp=spec.dp, max_concurrent_generations=layout.concurrency,
        max_concurrent_documents=max(2, -(-layout.concurrency // stage.k) + 1), request_timeout=stage.request_timeout,
        metric_interval=60, server_log_folder=str(mp.dir / "server-logs"),
        model_kwargs={"revision": spec.revision} if spec.revision and server_type != "endpoint" else None,
        server_ready_delay_sec=1.0, server_ready_max_attempts=1500)  # datatrove's 25-minute window, polled each 1 s
    if getattr(spec, "server_args", None) and server_type != "endpoint":  # engine flags, as datatrove passes them
        config.model_kwargs = {**(config.model_kwargs or {}), **spec.server_args}
    if spec.api_key_env:  # beside the revision: a launched server gets the one, never the other (servers.OWN_KWARGS)
        config.model_kwargs = {**(config.model_kwargs or {}), "api_key_env": spec.api_key_env}
    writer = JsonlWriter(str(mp.dir / "output"), output_filename="${rank}_${chunk_index}.jsonl", compression=None)
    # vLLM/SGLang launched here bind 127.0.0.1 and run no code from the model repository unless the recipe says so
    runner = LaunchingRunner(sample_problem, config, writer, shared_context={"spec": rollout_spec(mp, progress_dir)},
                             checkpoints_local_dir=str(mp.dir / "checkpoints"),
                             records_per_chunk=stage.checkpoint_every, host=getattr(spec, "host", None),
                             trust_remote_code=bool(getattr(spec, "trust_remote_code", False)),
                             python=getattr(spec, "python", None))
    reader = JsonlReader(str(mp.dir / "input"), compression=None, glob_pattern="*.jsonl", add_file_path=False)
    return [reader, runner]


class LocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor whose task processes and manager die with this process (a kill -9 leaves nothing
    sending requests) and, spawned or forkserver-started, never re-run a script's `__main__`."""

    driver: int | None = None

    def save_executor_as_json(self, indent: int = 4):
        """datatrove's executor.json, with a step's large inputs (a collect plan's problems) summarized."""
        from datatrove.executor.base import ExecutorJSONEncoder

        class Encoder(ExecutorJSONEncoder):
            def default(self, o):
                summary = getattr(o, "executor_json", None)
                return summary() if callable(summary) else super().default(o)

        with self.logging_dir.open("executor.json", "w") as handle:
            json.dump(self, handle, cls=Encoder, indent=indent)

    def run(self):
        self.driver = os.getpid()
        with lifeline.bound_children():
            return super().run()

    def _launch_run_for_rank(self, rank: int, *args, **kwargs):
        if self.driver not in (None, os.getpid()):  # in a task process (workers == 1 runs tasks in the driver)
            if os.getppid() == self.driver:  # forked (already bound by the fork handler) or spawned
                lifeline.die_with_parent()
            else:  # a forkserver's child: watch the driver itself
                lifeline.die_with(self.driver)
        return super()._launch_run_for_rank(rank, *args, **kwargs)


def make_executor(executor: Executor, steps: list, logging_dir: Path, depends=None):
    """The recipe's datatrove executor over these steps (`depends`: an executor of the same type to run first)."""
    options = dict(executor.options)
    if depends is not None:
        options["depends"] = depends
    if executor.type == "local":
        return LocalExecutor(steps, tasks=executor.tasks, workers=executor.workers, logging_dir=str(logging_dir),
                             **options)
    if executor.type == "ray":
        from datatrove.executor.ray import RayPipelineExecutor

        start_ray(executor.ray_init)
        return RayPipelineExecutor(steps, tasks=executor.tasks, workers=executor.workers,
                                   logging_dir=str(logging_dir), **options)
    from mathforge.builders.generation.slurm import slurm_executor

    return slurm_executor(steps, executor.tasks, executor.workers, logging_dir, options)


def start_ray(ray_init: dict | None = None) -> None:
    """Connect to Ray as `ray_init` says. Without an `address` (or with `address: local`) start a local instance
    whose every socket is on 127.0.0.1: `ray_init`'s keys (num_cpus, ...) merge into those loopback settings."""
    ray_init = dict(ray_init or {})
    if ray_init.get("address") in (None, "local"):
        # Ray resolves 127.0.0.1 to the machine's outward address (and binds gRPC on all interfaces) unless it
        # believes clusters are off; with this it keeps the node, GCS, raylet and workers on loopback.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        import ray._private.ray_constants as ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False  # read at call time; the variable above reaches child processes
        ray_init = {"include_dashboard": False, "_node_ip_address": "127.0.0.1", "log_to_driver": False,
                    **ray_init, "address": "local"}
    import ray

    if not ray.is_initialized():
        ray.init(**ray_init)


def run_stats(logging_dir: Path) -> Counter:
    """Sum of every numeric stat the ranks of this run saved (datatrove writes stats/<rank>.json), plus
    `inference_time_slowest_task`: the longest one rank's requests took (ranks run side by side)."""
    totals: Counter = Counter()
    slowest = 0.0
    for path in sorted((logging_dir / "stats").glob("*.json")):
        for step in json.loads(path.read_text()):
            for name, value in (step.get("stats") or {}).items():
                total = value.get("total") if isinstance(value, dict) else value
                if isinstance(total, (int, float)):
                    totals[name] += total
                    if name == "inference_time":
                        slowest = max(slowest, total)
    totals["inference_time_slowest_task"] = slowest
    return totals


def run_pass(mp: ModelPass, docs: list[Doc], executor: Executor, console=None) -> PassResult:
    """Sample one model (resuming whatever a previous run left), then write samples/failures Parquet."""
    if mp.samples_path.exists() and mp.failures_path.exists():
        return summarize(mp, docs, 0.0, Counter(), reused=True)
    layout = client_layout(mp.stage, executor, mp.dir, launches=mp.spec.backend in ("vllm", "sglang"))
    write_inputs(mp, docs, layout.processes)
    repair_last_chunk(mp.dir / "checkpoints", mp.dir / "output")
    stamp = int(time.time() * 1000)
    logging_dir = mp.dir / f"logs-{stamp}"
    progress_dir = None
    if executor.type == "local" and executor.tasks == 1 and layout.processes > 1:
        progress_dir = mp.dir / f"progress-{stamp}"
        progress_dir.mkdir()
        # the processes fork this one: datatrove's forkserver would re-import everything per process and lose the
        # quiet task logger; this process runs no other thread that holds a lock the children need
        executor = Executor(type="local", tasks=layout.processes, workers=layout.processes,
                            options={"start_method": "fork", **executor.options})
    steps = pipeline(mp, layout, progress_dir)
    started = time.perf_counter()
    expected = len(docs) * (mp.stage.k if mp.stage.quota is None else mp.stage.quota.max_samples)
    with ProgressLine(mp.label, expected, console, progress_dir):
        launched = make_executor(executor, steps, logging_dir)
        launched.run()
        if executor.type == "slurm":  # sbatch returns at once: the pass is done when its job has run
            from mathforge.builders.generation.slurm import wait_for_jobs

            wait_for_jobs([launched])
    seconds = time.perf_counter() - started
    stats = run_stats(logging_dir)
    stats["client_processes"] = layout.processes
    if stats.get("failed_documents"):
        raise RuntimeError(f"{mp.label}: datatrove failed to save {stats['failed_documents']:g} documents "
                           f"(see {logging_dir}/logs); nothing was written")
    rows, failures = read_outputs(mp, docs)
    write_parquet(mp.failures_path, failures, FAILURE_SCHEMA)
    write_parquet(mp.samples_path, rows, SAMPLE_SCHEMA)  # written last: its presence marks the pass done
    (mp.dir / "run-stats.json").write_text(json.dumps(dict(stats), indent=1, sort_keys=True))
    return summarize(mp, docs, seconds, stats)


def repair_last_chunk(checkpoints: Path, outputs: Path) -> list[str]:
    """datatrove rewrites `last_chunk/<rank>.txt` in place, so a kill between its truncate and its write leaves
    the file empty and every resume then fails on int(''). Rebuild such a marker from what is on disk: chunk c
    is finished when its output file exists and its checkpoint file is gone (datatrove removes that file just
    before writing the marker). Returns the ranks repaired."""
    repaired = []
    for marker in sorted((checkpoints / "last_chunk").glob("*.txt")):
        text = marker.read_text().strip()
        if text.lstrip("-").isdigit():
            continue
        rank, chunk = marker.stem, -1
        while (outputs / f"{rank}_{chunk + 1}.jsonl").exists() and \
                not (checkpoints / rank / f"chunk_{chunk + 1:05d}.jsonl").exists():
            chunk += 1
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(str(chunk))
        os.replace(tmp, marker)
        repaired.append(rank)
    return repaired


def read_outputs(mp: ModelPass, docs: list[Doc]) -> tuple[list[dict], list[dict]]:
    """Join the runner's output documents back to the inputs; a missing document is an error, not a gap."""
    by_id: dict[str, dict] = {}
    for path in sorted((mp.dir / "output").glob("*.jsonl")):
        with open(path, "rb") as handle:
            for line in handle:
                doc = orjson.loads(line)
                by_id.setdefault(doc["id"], doc)
    missing = [d.id for d in docs if d.id not in by_id]
    if missing:
        raise RuntimeError(f"{mp.label}: {len(missing)} documents have no samples after the run "
                           f"(first: {missing[0]}); rerun the build to resume")
    spec, stage = mp.spec, mp.stage
    rows, failures = [], []
    for d in docs:
        results = by_id[d.id]["metadata"].get("rollout_results") or []
        samples = results[0]["samples"] if results else []
        for s in samples:
            if s["status"] == "ok":
                # documents checkpointed by a version before the reasoning split hold the raw text: split it here
                reasoning, text = (s["reasoning"], s["text"]) if "reasoning" in s else split_sample(s["text"], None)
                rows.append({"problem_id": d.problem_id, "doc_id": d.id, "idx": d.idx, "model": mp.label,
                             "model_id": spec.model,
                             "revision": mp.commit or spec.revision, "backend": spec.backend, "sample_index": s["sample_index"],
                             "seed": s["seed"], "temperature": stage.temperature, "top_p": stage.top_p,
                             "max_tokens": stage.max_tokens, "stop": json.dumps(stage.stop),
                             "prompt_format": "chat" if stage.prompt.chat else "completion", "text": text,
                             "finish_reason": s.get("finish_reason"), "prompt_tokens": s.get("prompt_tokens"),
                             "completion_tokens": s.get("completion_tokens"), "attempts": s["attempts"],
                             "reasoning": reasoning})
            else:
                failures.append({"problem_id": d.problem_id, "doc_id": d.id, "idx": d.idx, "model": mp.label,
                                 "sample_index": s["sample_index"], "seed": s["seed"], "attempts": s["attempts"],
                                 "error": s["error"]})
    return rows, failures


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def summarize(mp: ModelPass, docs: list[Doc], seconds: float, stats: Counter,
              reused: bool = False) -> PassResult:
    samples = pq.read_table(mp.samples_path, columns=["doc_id", "text", "attempts", "completion_tokens"]).to_pylist()
    failures = pq.read_table(mp.failures_path).to_pylist()
    texts: dict[str, set] = {}
    for s in samples:
        texts.setdefault(s["doc_id"], set()).add(s["text"])
    counts = Counter(s["doc_id"] for s in samples)
    single = sum(1 for idx, n in counts.items() if n >= 2 and len(texts[idx]) == 1)
    retries = sum(s["attempts"] - 1 for s in samples) + sum(max(f["attempts"] - 1, 0) for f in failures)
    return PassResult(mp.label, mp.samples_path, len(docs), len(samples) + len(failures), len(samples),
                      len(failures), retries, int(stats.get("cache_hits", 0)),
                      sum(s["completion_tokens"] or 0 for s in samples), seconds, single,
                      Counter(f["error"].split(":")[0] for f in failures), reused, mp.commit)


def check_pass(result: PassResult, stage: SampleStage) -> None:
    """Fail loudly where a run would otherwise quietly produce a broken corpus."""
    if result.requests and result.failed / result.requests > stage.max_failure_rate:
        raise RuntimeError(f"{result.label}: {result.failed} of {result.requests} requests failed permanently "
                           f"({dict(result.errors)}); over sample.max_failure_rate={stage.max_failure_rate:g}. "
                           f"Failures are listed in {result.samples_path.parent / 'failures.parquet'}")
    if stage.temperature > 0 and stage.k >= 2 and result.problems >= 3 \
            and result.single_text_problems >= 0.9 * result.problems:
        raise RuntimeError(f"{result.label}: {result.single_text_problems} of {result.problems} problems got "
                           f"{stage.k} identical samples at temperature {stage.temperature:g}: the server is not "
                           "sampling (greedy decoding?). RFT would collapse to one path per problem.")


def run_sample_stage(stage_index: int, stage: SampleStage, problems: list[Problem], recipe,
                     console=None) -> list[PassResult]:
    """Preflight every model, then one pass per model (local/batched models get their own server)."""
    quiet_datatrove()
    preflight(stage_index, stage, problems, recipe)
    return run_docs(stage_index, stage, problem_docs(problems, template_of(stage)), recipe, console)


def run_docs(stage_index: int, stage: SampleStage, docs: list[Doc], recipe, console=None,
             kind: str = "samples", keys: list[tuple] | None = None) -> list[PassResult]:
    """One pass per model of `stage` over prepared documents (local/batched models get their own server)."""
    from mathforge.builders.generation.servers import LocalServer

    from mathforge.testing.tinymodel import ensure_tiny_model

    results = []
    for m, mp in enumerate(plan(stage, docs, recipe.work_dir(), kind)):
        mp.dir.mkdir(parents=True, exist_ok=True)
        if mp.spec.backend in ("local", "batched") and not mp.samples_path.exists():
            if mp.spec.build_tiny:
                ensure_tiny_model(mp.spec.model)
            local, mp.commit = hub_models.resolve(mp.spec.model, mp.spec.revision)
            server = LocalServer(local, mp.dir / "server.log", stage.ready_timeout,
                                 batched=mp.spec.backend == "batched")
            try:
                server.start()
            except InputError as exc:  # cite the recipe line of the model that would not start
                where = keys[m] if keys else ("stages", stage_index, "models", m)
                file, line, key = recipe.where(*where, "model")
                raise InputError(f"{mp.spec.model}: {exc.message}", file, line, key) from None
            with server:
                mp.base_url = server.url
                result = run_pass(mp, docs, recipe.executor, console)
        elif mp.spec.backend == "scripted" and not mp.samples_path.exists():
            from mathforge.testing.fake_openai import FakeOpenAI
            from mathforge.testing.scripted import reply_for

            with FakeOpenAI(reply=reply_for(mp.spec.model)) as server:  # on 127.0.0.1, for this pass only
                mp.base_url = server.url
                result = run_pass(mp, docs, recipe.executor, console)
        else:
            mp.base_url = mp.spec.base_url
            result = run_pass(mp, docs, recipe.executor, console)
        check_pass(result, stage)
        results.append(result)
    return results


def quiet_datatrove() -> None:
    """datatrove's task logger prints INFO to the terminal and has no level option: keep its log file at DEBUG,
    show the terminal only MATHFORGE_LOG_LEVEL (default WARNING)."""
    import sys

    import datatrove.executor.base as executor_base
    import datatrove.utils.logging as datatrove_logging
    from loguru import logger

    level = os.environ.get("MATHFORGE_LOG_LEVEL", "WARNING")
    original = getattr(executor_base.add_task_logger, "__wrapped__", executor_base.add_task_logger)

    def add_task_logger(logging_dir, rank, local_rank=0, *args, **kwargs):
        # as local rank 1 datatrove's own terminal handler is at ERROR: its "Launching pipeline" line stays in the file
        logfile = original(logging_dir, rank, 1, *args, **kwargs)
        logger.remove()
        logger.add(logfile, level="DEBUG")
        logger.add(sys.stderr, level=level if local_rank == 0 else "ERROR")
        return logfile

    def setup_default_logger():
        logger.remove()
        logger.add(sys.stderr, level=level)

    add_task_logger.__wrapped__ = original
    executor_base.add_task_logger = add_task_logger
    datatrove_logging.setup_default_logger = setup_default_logger
    setup_default_logger()


class ProgressLine:
    """Sampling progress of this process: a live bar on a terminal (requests, req/s, tokens/s, failures, ETA), a
    plain line every few seconds otherwise (Slurm logs); no ETA until a rate is known."""

    def __init__(self, label: str, expected: int, console, progress_dir: Path | None = None, every: float = 5.0):
        self.label, self.expected, self.console, self.every = label, expected, console, every
        self.progress_dir = progress_dir  # several client processes: their counters come from files there
        self._stop = threading.Event()
        self._thread = None

    def counts(self) -> Counter:
        if self.progress_dir is None:
            return PROGRESS
        total: Counter = Counter()
        for path in self.progress_dir.glob("*.json"):
            try:
                total.update(orjson.loads(path.read_bytes()))
            except (OSError, orjson.JSONDecodeError):
                pass  # replaced as it was read: the next look sees it
        return total

    def __enter__(self) -> "ProgressLine":
        PROGRESS.clear()
        self.started = time.perf_counter()
        if self.console is not None:
            live = getattr(self.console, "is_terminal", False)
            self._thread = threading.Thread(target=self._bar if live else self._loop, daemon=True)
            self._thread.start()
        return self

    def figures(self) -> str:
        elapsed = time.perf_counter() - self.started
        counts = self.counts()
        done, tokens, failed = counts["done"], counts["tokens"], counts["failed"]
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f"{(self.expected - done) / rate:,.0f} s" if rate > 0 else "—"
        return (f"{done:,}/{self.expected:,} requests  {rate:,.1f} req/s  {tokens / max(elapsed, 1e-9):,.0f} tok/s  "
                f"{failed:,} failed  ETA {eta}")

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.console.print(f"[dim]{self.label}: {self.figures()}[/dim]")

    def _bar(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[figures]}"),
                      console=self.console, transient=True) as bar:
            task = bar.add_task(self.label, total=self.expected or None, figures="")
            while not self._stop.wait(0.5):
                bar.update(task, completed=self.counts()["done"], figures=self.figures())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)  # the bar is gone before the next line is printed
