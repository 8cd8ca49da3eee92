"""vLLM's CPU build for real (.venv-vllm, made by `make vllm`): a build and an eval through the `vllm` backend, the
servers started and stopped by mathforge, kill -9 and resume; skipped without that environment unless
MATHFORGE_REQUIRE_VLLM=1 (CI). A vLLM start costs tens of seconds on 2 cores, so the module shares what it can."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import CLI, run

from mathforge.testing import synthetic

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
# on the CPU: a small memory share (the default 0.92 is refused), the tiny model's context, float32 (as its weights;
# vLLM's CPU default is bfloat16), no chunked prefill (vLLM 0.32.0's CPU build dies when it splits the prefill of a
# seeded request: "CPU Generator does not use offset"), no torch.compile (a minute or two per new model path)
SERVER_ARGS = {"gpu-memory-utilization": 0.15, "max-model-len": 1024, "dtype": "float32",
               "enable-chunked-prefill": False, "enforce-eager": True}
TEMPLATE = "Question: {{ question }}\nAnswer:"
PROBLEMS, K, MAX_TOKENS, SEED = 48, 4, 32, 11
TAG = "MATHFORGE_VLLM_TEST"


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    if VLLM_PYTHON.exists():
        return VLLM_PYTHON
    if os.environ.get("MATHFORGE_REQUIRE_VLLM") == "1":
        pytest.fail(f"MATHFORGE_REQUIRE_VLLM=1 but {VLLM_PYTHON} does not exist (make vllm)")
    pytest.skip("no .venv-vllm (make vllm)")


@pytest.fixture(scope="module")
def model(vllm_python, tmp_path_factory) -> Path:
    """The tiny Llama with 2 heads of 32: vLLM's CPU attention has no kernel for `mathforge tiny-model`'s old 16."""
    from mathforge.testing.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("vllm") / "tiny", hidden=64, heads=2)


def tagged_env(tag: str) -> dict:
    """The environment of a process under test: every process it starts (vLLM's engine too) inherits the tag."""
    return {**os.environ, TAG: tag, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"}


def tagged(tag: str) -> list[str]:
    """Live processes carrying `tag` in their environment: `pid command` of each."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name} {command[:120]}")
        except OSError:
            pass  # gone meanwhile, or a zombie
    return found


def gone(tag: str, within: float) -> list[str]:
    """Wait up to `within` s for every tagged process to end; what is still there."""
    deadline = time.monotonic() + within
    while (left := tagged(tag)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


class Direct:
    """A vLLM server the test starts itself (mathforge's command line for it), for expectations computed apart from
    the build: same request, same seed, same text. Started first: its start overlaps the build's."""

    def __init__(self, python: Path, model: Path, log: Path):
        from datatrove.pipeline.inference.run_inference import InferenceConfig

        from mathforge.builders.generation.servers import free_port, vllm_command

        self.model, self.port, self.tag = str(model), free_port(), uuid.uuid4().hex
        config = InferenceConfig(server_type="vllm", model_name_or_path=self.model, model_kwargs=dict(SERVER_ARGS))
        self.command = vllm_command(config, self.port, python=str(python))
        with open(log, "wb") as handle:
            self.process = subprocess.Popen(self.command, stdout=handle, stderr=subprocess.STDOUT,
                                            env=tagged_env(self.tag), start_new_session=True)
        self.log = log

    def ready(self, timeout: float = 900) -> "Direct":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"vLLM not ready after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def complete(self, prompt: str, **params) -> list[str]:
        body = {"model": self.model, "prompt": prompt, "top_p": 1.0, **params}
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/completions", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return [choice["text"] for choice in sorted(json.load(response)["choices"], key=lambda c: c["index"])]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of its engine is left
        except ProcessLookupError:
            pass
        self.process.wait()


@pytest.fixture(scope="module")
def direct(vllm_python, model, tmp_path_factory):
    server = Direct(vllm_python, model, tmp_path_factory.mktemp("direct") / "vllm.log")
    yield server
    server.stop()
    assert gone(server.tag, 30) == []


def recipe_text(gold: Path, model: Path, tmp: Path) -> str:
    args = "".join(f"          {key}: {json.dumps(value)}\n" for key, value in SERVER_ARGS.items())
    return (f"name: vllm-cpu\nversion: 1.0.0\nsources:\n  - path: {gold}\nstages:\n  - type: sample\n"
            f"    k: {K}\n    temperature: 0.7\n    max_tokens: {MAX_TOKENS}\n    seed: {SEED}\n    concurrency: 4\n"
            f"    checkpoint_every: 8\n    prompt: {{template: {json.dumps(TEMPLATE)}}}\n    models:\n"
            f"      - name: tiny\n        backend: vllm\n        model: {model}\n        python: {VLLM_PYTHON}\n"
            f"        server_args:\n{args}  - type: collect\n"
            f"output:\n  dir: {tmp}/out/{{name}}/{{version}}\n  work_dir: {tmp}/work/{{name}}/{{version}}\n")


def cached_replies(work: Path) -> int:
    database = work / "checkpoints" / "00000" / "replay.sqlite3"
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM request_cache WHERE result IS NOT NULL").fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet


@pytest.fixture(scope="module")
def built(direct, model, tmp_path_factory) -> dict:
    """`mathforge build` through the vllm backend, kill -9 of the build once replies are cached, then the rerun."""
    tmp = tmp_path_factory.mktemp("build")
    rows = synthetic.problems(PROBLEMS, seed=5)
    gold = tmp / "gold.jsonl"
    synthetic.write_gold(rows, gold)
    recipe = tmp / "vllm.yaml"
    recipe.write_text(recipe_text(gold, model, tmp))
    tag = uuid.uuid4().hex
    build = subprocess.Popen([*CLI, "build", str(recipe)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=tagged_env(tag), start_new_session=True)
    samples = tmp / "work" / "vllm-cpu" / "1.0.0" / "samples"
    deadline = time.monotonic() + 900  # the server's start: imports in three processes
    work = None
    while time.monotonic() < deadline and build.poll() is None:
        work = work or next(samples.glob("tiny-*"), None)
        if work is not None and cached_replies(work) >= 24:
            break
        time.sleep(0.05)
    assert build.poll() is None and work is not None, build.stderr.read().decode()[-3000:]
    os.killpg(build.pid, signal.SIGKILL)  # the build's process group: vLLM runs in a session of its own
    build.wait()
    after_kill = gone(tag, 60)  # vLLM gets SIGTERM when its parent dies and stops its engine processes
    cached = cached_replies(work)  # replies of documents not yet in a finished chunk
    marker = work / "checkpoints" / "last_chunk" / "00000.txt"
    finished = (int(marker.read_text()) + 1) * 8 if marker.exists() and marker.read_text().strip() else 0
    assert not (work / "samples.parquet").exists()

    started = time.monotonic()
    result = run("build", recipe, env={TAG: tag, "VLLM_NO_USAGE_STATS": "1"}, timeout=900)
    return {"rows": rows, "work": work, "after_kill": after_kill, "cached": cached, "finished": finished,
            "result": result,
            "after_build": tagged(tag), "rerun_seconds": time.monotonic() - started}


def test_a_build_samples_through_vllm_resumes_after_kill9_and_leaves_no_process(built):
    assert built["after_kill"] == [], "vLLM outlived the kill -9 of its build"
    result = built["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert built["after_build"] == [], "vLLM outlived the build"
    stats = json.loads((built["work"] / "run-stats.json").read_text())
    # nothing completed before the kill is asked again: finished chunks and documents checkpointed one by one are
    # restored whole, replies in the request cache are read back
    restored = PROBLEMS - stats["documents_processed"]
    assert built["cached"] + built["finished"] * K > 0 and restored > 0
    assert stats.get("cache_hits", 0) + K * restored >= built["cached"] + K * built["finished"]
    assert stats.get("cache_hits", 0) + stats["cache_misses"] == K * stats["documents_processed"]
    samples = pq.read_table(built["work"] / "samples.parquet").to_pylist()
    assert len(samples) == PROBLEMS * K
    assert Counter(s["idx"] for s in samples) == {i: K for i in range(PROBLEMS)}
    assert {s["backend"] for s in samples} == {"vllm"}
    assert {s["reasoning"] for s in samples} == {None}  # reasoning off: no trace split from the text
    assert all(s["completion_tokens"] and 0 < s["completion_tokens"] <= MAX_TOKENS for s in samples)
    by_problem: dict[int, set] = {}
    for s in samples:
        by_problem.setdefault(s["idx"], set()).add(s["text"])
    assert sum(len(texts) == K for texts in by_problem.values()) >= PROBLEMS * 0.9  # sampled, not greedy
    assert len({s["seed"] for s in samples}) == PROBLEMS * K


def test_the_same_request_and_seed_give_the_same_text_on_another_vllm(built, direct):
    """Samples of the build (from the first server, read back from the cache, or from the rerun's) against a server
    the test started: the same prompt, parameters and seed give the same text; another seed, other text."""
    direct.ready()
    samples = sorted(pq.read_table(built["work"] / "samples.parquet").to_pylist(),
                     key=lambda s: (s["idx"], s["sample_index"]))[::12]
    assert len(samples) == 16
    other = 0
    for s in samples:
        prompt = TEMPLATE.replace("{{ question }}", built["rows"][s["idx"]]["question"])
        params = {"max_tokens": MAX_TOKENS, "temperature": 0.7}
        assert direct.complete(prompt, seed=s["seed"], **params) == [s["text"]]
        other += direct.complete(prompt, seed=s["seed"] + 1, **params) != [s["text"]]
    assert other >= 14


def test_n_above_one_uses_consecutive_seeds_and_the_server_binds_loopback(direct, model):
    """n > 1 with seed s is n = 1 with seeds s, s+1, ... (as the batched backend); vLLM's API server listens on
    127.0.0.1 only, as mathforge's command line asks."""
    import psutil

    direct.ready()
    prompt = TEMPLATE.replace("{{ question }}", "Tom has 3 apples and buys 4 more. How many apples?")
    together = direct.complete(prompt, n=3, seed=7, max_tokens=20, temperature=0.8)
    alone = [direct.complete(prompt, n=1, seed=7 + i, max_tokens=20, temperature=0.8)[0] for i in range(3)]
    assert together == alone and len(set(together)) == 3
    assert direct.command[direct.command.index("--host") + 1] == "127.0.0.1"
    server = psutil.Process(direct.process.pid)
    listening = {(c.laddr.ip, c.laddr.port) for process in [server, *server.children(recursive=True)]
                 for c in process.net_connections("inet") if c.status == psutil.CONN_LISTEN}
    assert ("127.0.0.1", direct.port) in listening
    assert {ip for ip, _ in listening} == {"127.0.0.1"}


def test_a_burst_of_seeded_requests_leaves_the_engine_serving(direct):
    """128 seeded requests at once: without `enable-chunked-prefill: false` the CPU build splits prefills and its
    engine dies at the first (every request then fails); with it, every one is answered."""
    from concurrent.futures import ThreadPoolExecutor

    direct.ready()
    prompts = [TEMPLATE.replace("{{ question }}", f"A farmer has {i} cows and buys {i + 3} more. How many cows?")
               for i in range(128)]
    with ThreadPoolExecutor(128) as pool:
        replies = list(pool.map(lambda i: direct.complete(prompts[i], seed=i, max_tokens=24, temperature=0.7),
                                range(128)))
    assert all(len(reply) == 1 for reply in replies) and direct.process.poll() is None
    assert direct.complete(prompts[5], seed=5, max_tokens=24, temperature=0.7) == replies[5]  # alone as in the crowd


def test_eval_through_vllm_matches_greedy_decoding_and_stops_its_server(built, direct, model, tmp_path):
    direct.ready()
    bench = tmp_path / "bench.jsonl"
    synthetic.write_gold(built["rows"][:12], bench)
    tag = uuid.uuid4().hex
    args = [f"--server-arg={key}={str(value).lower() if value is True else value}"
            for key, value in SERVER_ARGS.items()]
    result = run("eval", model, "--benchmark", bench, "--backend", "vllm", "--python", VLLM_PYTHON, *args,
                 "--max-tokens", "16", "--out", tmp_path / "report", env={TAG: tag, "VLLM_NO_USAGE_STATS": "1"},
                 timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert tagged(tag) == []
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["questions"] == 12 and report["requests"] == 12 and report["failed_requests"] == 0
    rows = [json.loads(line) for line in (tmp_path / "report" / "samples.jsonl").read_text().splitlines()]
    alpaca = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
              "request.\n\n### Instruction:\n{question}\n\n### Response:")
    for row in rows:  # greedy (temperature 0): the text the test's own server decodes for the same prompt
        assert [row["text"]] == direct.complete(alpaca.format(question=row["question"]), max_tokens=16,
                                                temperature=0.0)


# --------------------------------------------------------------------------- without vLLM: the recipe's keys
@pytest.mark.parametrize("python, message", [("no-python", "cannot run"), (sys.executable, "cannot import vllm")])
def test_an_interpreter_that_cannot_serve_is_an_input_error_at_its_recipe_line(tmp_path, python, message):
    synthetic.write_gold(synthetic.problems(3, seed=1), tmp_path / "gold.jsonl")
    recipe = tmp_path / "vllm.yaml"
    python = str(tmp_path / python) if python == "no-python" else python
    recipe.write_text(recipe_text(tmp_path / "gold.jsonl", Path("org/model"), tmp_path).replace(str(VLLM_PYTHON),
                                                                                                python))
    result = run("build", recipe)
    line = next(i for i, text in enumerate(recipe.read_text().splitlines(), 1) if "python:" in text)
    assert result.returncode == 2 and f"vllm.yaml:{line}" in result.stderr and message in result.stderr, result.stderr
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").rglob("*.parquet"))


@pytest.mark.parametrize("args, message", [({"host": "0.0.0.0"}, "mathforge sets it (`host`)"),
                                           ({"--dtype": "half"}, "not an engine flag name"),
                                           ({"trust_remote_code": True}, "mathforge sets it")])
def test_server_args_that_mathforge_sets_or_that_are_no_flag_names_are_refused(tmp_path, args, message):
    text = recipe_text(tmp_path / "gold.jsonl", Path("org/model"), tmp_path)
    head, _, tail = text.partition("        server_args:\n")
    body = "".join(f"          {json.dumps(key)}: {json.dumps(value)}\n" for key, value in args.items())
    recipe = tmp_path / "vllm.yaml"
    recipe.write_text(head + "        server_args:\n" + body + tail[tail.index("  - type: collect"):])
    synthetic.write_gold(synthetic.problems(3, seed=1), tmp_path / "gold.jsonl")
    result = run("build", recipe)
    assert result.returncode == 2 and message in result.stderr and "server_args" in result.stderr, result.stderr


def test_engine_flags_from_the_recipe_reach_the_command_line_and_override_the_context_default():
    from datatrove.pipeline.inference.run_inference import InferenceConfig

    from mathforge.builders.generation.servers import vllm_command
    from mathforge.builders.recipe import ModelSpec

    spec = ModelSpec(backend="vllm", model="org/m", python="/envs/v/bin/python",
                     server_args={"gpu_memory_utilization": 0.15, "max_model_len": 1024, "enforce_eager": True,
                                  "enable_prefix_caching": False})
    config = InferenceConfig(server_type="vllm", model_name_or_path="org/m", model_kwargs=dict(spec.server_args))
    command = vllm_command(config, 8000, python=spec.python)
    assert command[:5] == ["/envs/v/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model", "org/m"]
    assert {"--gpu-memory-utilization=0.15", "--max-model-len=1024", "--enforce-eager",
            "--no-enable-prefix-caching"} <= set(command)
    assert "--max-model-len" not in command  # the recipe's, not datatrove's 8192 beside it
    assert vllm_command(InferenceConfig(server_type="vllm", model_name_or_path="org/m"), 8000)[:3] == \
        ["vllm", "serve", "org/m"]  # no interpreter named: `vllm serve`, as on a GPU machine


def test_tiny_model_heads_default_to_a_size_every_backend_serves(tmp_path):
    result = run("tiny-model", tmp_path / "m")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["hidden_size"] // config["num_attention_heads"] == 32  # vLLM's CPU attention has none under 32
    bad = run("tiny-model", tmp_path / "n", "--hidden", "64", "--heads", "3")
    assert bad.returncode == 2 and "--heads" in bad.stderr and not (tmp_path / "n").exists()


@pytest.mark.parametrize("args, key", [(["--backend", "sglang"], "--backend"), (["--python", "py"], "--python")])
def test_quickstart_samples_through_batched_or_vllm_only(tmp_path, args, key):
    result = run("quickstart", "--quick", "--out", tmp_path / "q", *args)
    assert result.returncode == 2 and key in result.stderr and not (tmp_path / "q").exists()
