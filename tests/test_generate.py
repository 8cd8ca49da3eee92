"""The sample stage end to end over real HTTP: transformers serve, a scripted server with faults, kill -9, quotas."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import CLI, run
from mathforge.builders.generation.runner import cut_at_stop, request_payload, sample_seed

from mathforge.testing import synthetic
from mathforge.testing.fake_openai import FakeOpenAI, FaultPlan, solver_reply


@pytest.fixture
def gold(tmp_path) -> dict:
    rows = synthetic.problems(12, seed=3)
    path = tmp_path / "gold.jsonl"
    synthetic.write_gold(rows, path)
    return {"rows": rows, "path": path, "tmp": tmp_path}


def sample_recipe(tmp: Path, gold_path: Path, models: str, stage: str = "", executor: str = "",
                  name: str = "gen") -> Path:
    body = (f"name: {name}\nversion: 1.0.0\nsources:\n  - path: {gold_path}\nstages:\n  - type: sample\n"
            f"    k: 4\n    max_tokens: 16\n    concurrency: 8\n    checkpoint_every: 3\n    retry_backoff: 0.05\n"
            f"{stage}    models:\n{models}  - type: collect\n{executor}"
            f"output:\n  dir: {tmp}/out/{{name}}/{{version}}\n  work_dir: {tmp}/work/{{name}}/{{version}}\n")
    path = tmp / f"{name}.yaml"
    path.write_text(body)
    return path


def endpoint(url: str, name: str = "fake", extra: str = "") -> str:
    return f"      - name: {name}\n        backend: endpoint\n        model: fake-model\n        base_url: {url}\n{extra}"


def samples_of(tmp: Path, name: str = "gen", model: str = "") -> list[dict]:
    paths = sorted((tmp / "work" / name / "1.0.0" / "samples").glob(f"{model}*/samples.parquet"))
    return [row for path in paths for row in pq.read_table(path).to_pylist()]


def test_seeds_payload_and_stop_cut():
    assert sample_seed(0, "m", "p", 1) == sample_seed(0, "m", "p", 1) != sample_seed(0, "m", "p", 2)

    class Doc:
        text, id = "Q", "p"

    spec = {"chat": False, "system_text": None, "max_tokens": 8, "temperature": 0.7, "top_p": 1.0, "stop": [],
            "backend": "local"}
    payload = request_payload(Doc, spec, 5)
    assert payload["seed"] == 5 and json.loads(payload["generation_config"])["do_sample"] is True
    assert "generation_config" not in request_payload(Doc, {**spec, "backend": "endpoint"}, 5)
    assert cut_at_stop("a\n\nQuestion: b", ["Question:"]) == ("a\n\n", True)
    assert cut_at_stop("abc", ["x"]) == ("abc", False)


def test_local_transformers_serve_and_endpoint_union(gold, tiny_model):
    """Real `transformers serve` on CPU plus a scripted endpoint: problems x models x k requests, provenance."""
    with FakeOpenAI(reply=solver_reply(gold["rows"])) as server:
        models = (f"      - name: tiny\n        backend: local\n        model: {tiny_model}\n"
                  + endpoint(server.url))
        result = run("build", sample_recipe(gold["tmp"], gold["path"], models))
        assert result.returncode == 0, result.stderr
    tiny, fake = samples_of(gold["tmp"], model="tiny"), samples_of(gold["tmp"], model="fake")
    assert len(tiny) == len(fake) == 12 * 4  # requests = problems x models x k
    for row in tiny:
        assert row["backend"] == "local" and row["model_id"] == str(tiny_model) and row["temperature"] == 0.7
        assert row["finish_reason"] in ("length", "stop") and row["completion_tokens"] > 0 and row["seed"] >= 0
    by_problem: dict = {}
    for row in tiny:
        by_problem.setdefault(row["problem_id"], set()).add(row["text"])
    assert all(len(texts) >= 2 for texts in by_problem.values())  # really sampling, not greedy
    assert len({(r["problem_id"], r["sample_index"]) for r in tiny}) == 48
    stats = json.loads((gold["tmp"] / "out" / "gen" / "1.0.0" / "stats.json").read_text())
    assert stats["models"]["fake"]["samples"] == 48 and stats["models"]["tiny"]["samples"] == 48
    assert stats["models"]["fake"]["kept"] > 0  # the solver's paths made it into the union
    assert "sampling" in result.stdout and "tiny" in result.stdout


@pytest.mark.parametrize("processes", [1, 2])
def test_kill9_then_resume(gold, processes):
    """kill -9 mid-sampling (one client process, or two sharing the server); the rerun finishes from checkpoints and
    the request cache, nothing lost or doubled; a resume keeps the first run's split even if the recipe changes it."""
    rows = synthetic.problems(40, seed=5)
    synthetic.write_gold(rows, gold["path"])
    latency = lambda payload: 0.02 + payload["seed"] % 5 * 0.03  # noqa: E731 (uneven: documents half done)
    with FakeOpenAI(reply=solver_reply(rows), latency=latency) as server:
        recipe = sample_recipe(gold["tmp"], gold["path"], endpoint(server.url),
                               stage=f"    client_processes: {processes}\n")
        process = subprocess.Popen([*CLI, "build", str(recipe)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   start_new_session=True)
        deadline = time.monotonic() + 120
        while (server.counts["ok"] < 70 or server.counts["ok"] % 4 == 0) and time.monotonic() < deadline \
                and process.poll() is None:
            time.sleep(0.005)
        assert process.poll() is None, process.stderr.read().decode()
        os.killpg(process.pid, signal.SIGKILL)  # the build and every client process it forked
        process.wait()
        work = next((gold["tmp"] / "work" / "gen" / "1.0.0" / "samples").iterdir())
        assert not (work / "samples.parquet").exists()
        assert json.loads((work / "client-layout.json").read_text())["processes"] == processes
        checkpoints = work / "checkpoints"
        ranks = sorted(p.name for p in checkpoints.iterdir() if p.name.isdigit())
        assert len(ranks) == processes  # each process its own checkpoints and cache
        cached, finished_docs = 0, 0
        for rank in ranks:
            last_chunk = checkpoints / "last_chunk" / f"{rank}.txt"
            marker = last_chunk.read_text().strip() if last_chunk.exists() else ""  # empty: killed mid-write
            finished_docs += (int(marker) + 1) * 3 if marker else 0
            with sqlite3.connect(checkpoints / rank / "replay.sqlite3") as conn:  # replies of unfinished chunks only:
                cached += conn.execute(  # a finished chunk's rows may outlive its checkpoint (dropped just after)
                    "SELECT COUNT(*) FROM request_cache WHERE result IS NOT NULL AND chunk_index > ?",
                    (int(marker) if marker else -1,)).fetchone()[0]
        completed_before = cached + 4 * finished_docs  # requests whose answers were on disk at the kill
        time.sleep(0.5)  # requests in flight at the kill finish on the server side (their client is gone)
        served_before = server.counts["ok"]

        text = recipe.read_text().replace(f"client_processes: {processes}", "client_processes: 3")
        recipe.write_text(text)  # not what the first run used: the saved split must win, or ranks would mismatch
        result = run("build", recipe)
        assert result.returncode == 0, result.stderr
        stats = json.loads((work / "run-stats.json").read_text())
        assert stats["client_processes"] == processes
        not_resampled = 40 - stats["documents_processed"]  # restored whole from datatrove's checkpoints
        hits = stats.get("cache_hits", 0)
        assert cached == 0 or hits > 0  # answers in the request cache at the kill are read back, not re-asked
        assert hits + 4 * not_resampled >= completed_before  # nothing completed was asked again
        assert server.counts["ok"] - served_before == stats["cache_misses"]
        # sent twice: at most the replies that had not reached the disk at the kill (the cache writer commits
        # from a queue, so under load that can be more than the requests in flight)
        assert server.counts["ok"] - 160 <= served_before - completed_before
    samples = samples_of(gold["tmp"])
    assert len(samples) == 160
    assert Counter((s["problem_id"], s["sample_index"]) for s in samples).most_common(1)[0][1] == 1
    assert {s["sample_index"] for s in samples} == {0, 1, 2, 3}
    assert len({s["problem_id"] for s in samples}) == 40


def test_a_torn_last_chunk_marker_resumes_without_resampling(gold):
    """datatrove truncates, then writes `last_chunk/<rank>.txt`: a kill between the two leaves it empty and a plain
    resume dies on int(''). mathforge rebuilds the marker from the outputs on disk and asks nothing again."""
    with FakeOpenAI(reply=solver_reply(gold["rows"])) as server:
        recipe = sample_recipe(gold["tmp"], gold["path"], endpoint(server.url))
        assert run("build", recipe).returncode == 0
        work = next((gold["tmp"] / "work" / "gen" / "1.0.0" / "samples").iterdir())
        before = sorted((s["problem_id"], s["sample_index"], s["text"]) for s in samples_of(gold["tmp"]))
        marker = work / "checkpoints" / "last_chunk" / "00000.txt"
        assert marker.read_text() == "3"  # 12 problems, 3 per chunk: chunks 0..3 finished
        for done in ("samples.parquet", "failures.parquet"):
            (work / done).unlink()  # the pass is unfinished again, as after a kill
        marker.write_text("")  # the torn write
        served = server.counts["ok"]
        result = run("build", recipe, "--overwrite")
        assert result.returncode == 0, result.stderr[-2000:]
        assert server.counts["ok"] == served  # every document came back from disk
        assert marker.read_text() == "3"
    assert sorted((s["problem_id"], s["sample_index"], s["text"]) for s in samples_of(gold["tmp"])) == before


def test_faults_are_retried_and_permanent_failures_recorded(gold):
    """~20 % of requests fail once (500, timeout, dropped connection, malformed JSON); one problem always gets 400."""
    rows = synthetic.problems(30, seed=4)
    synthetic.write_gold(rows, gold["path"])
    bad_question = rows[5]["question"]
    plan = FaultPlan(rate=0.2, seed=1, permanent=lambda payload: bad_question in payload.get("prompt", ""))
    with FakeOpenAI(reply=solver_reply(rows), faults=plan, hang_seconds=5) as server:
        stage = "    request_timeout: 1\n    max_failure_rate: 0.05\n"
        result = run("build", sample_recipe(gold["tmp"], gold["path"], endpoint(server.url), stage=stage))
        assert result.returncode == 0, result.stderr
        for kind in ("500", "timeout", "drop", "malformed"):
            assert server.counts[f"fault:{kind}"] > 0, kind
    work = next((gold["tmp"] / "work" / "gen" / "1.0.0" / "samples").iterdir())
    samples = pq.read_table(work / "samples.parquet").to_pylist()
    failures = pq.read_table(work / "failures.parquet").to_pylist()
    assert len(samples) == 29 * 4 and len(failures) == 4  # nothing silently dropped
    assert all(f["error"].startswith("http 400") and f["idx"] == 5 for f in failures)
    retried = sum(s["attempts"] - 1 for s in samples)
    assert retried == sum(v for k, v in server.counts.items() if k.startswith("fault:") and k != "fault:400")
    assert "4 permanent failures" in result.stderr and "retries" in result.stdout


def test_failure_rate_over_the_limit_fails_the_build(gold):
    plan = FaultPlan(permanent=lambda payload: gold["rows"][0]["question"] in payload.get("prompt", ""))
    with FakeOpenAI(reply=solver_reply(gold["rows"]), faults=plan) as server:
        result = run("build", sample_recipe(gold["tmp"], gold["path"], endpoint(server.url)))
    assert result.returncode == 1 and "failed permanently" in result.stderr
    assert not (gold["tmp"] / "out").exists()


def test_a_server_that_does_not_sample_is_caught(gold):
    with FakeOpenAI(reply=lambda payload: "the same text\n#### 3") as server:
        result = run("build", sample_recipe(gold["tmp"], gold["path"], endpoint(server.url)))
    assert result.returncode == 1 and "not sampling" in result.stderr


def test_quota_samples_until_enough_correct(gold):
    """DART-style: rounds of k until 3 correct paths or 12 samples; the solver is wrong on every 3rd seed."""
    with FakeOpenAI(reply=solver_reply(gold["rows"])) as server:
        stage = "    quota:\n      correct: 5\n      max_samples: 12\n"
        result = run("build", sample_recipe(gold["tmp"], gold["path"], endpoint(server.url), stage=stage))
        assert result.returncode == 0, result.stderr
    by_problem: dict = {}
    for row in samples_of(gold["tmp"]):
        by_problem.setdefault(row["problem_id"], []).append(row)
    for rows in by_problem.values():
        rows.sort(key=lambda r: r["sample_index"])
        correct = [r["seed"] % 3 != 0 for r in rows]
        assert len(rows) % 4 == 0 and 4 <= len(rows) <= 12
        before_last = sum(correct[:-4])
        assert before_last < 5 and (sum(correct) >= 5 or len(rows) == 12)


def test_chat_form_with_system_prompt(gold):
    with FakeOpenAI(reply=solver_reply(gold["rows"])) as server:
        stage = "    prompt:\n      chat: true\n      system: 'Solve step by step.'\n"
        result = run("build", sample_recipe(gold["tmp"], gold["path"], endpoint(server.url), stage=stage))
        assert result.returncode == 0, result.stderr
        assert server.counts["POST /v1/chat/completions"] == 48 and server.counts["POST /v1/completions"] == 0
        messages = server.payloads[0]["messages"]
    assert messages[0] == {"role": "system", "content": "Solve step by step."}
    assert messages[1]["role"] == "user" and messages[1]["content"] in {r["question"] for r in gold["rows"]}
    assert {r["prompt_format"] for r in samples_of(gold["tmp"])} == {"chat"}
    stats = json.loads((gold["tmp"] / "out" / "gen" / "1.0.0" / "stats.json").read_text())
    assert stats["distinct"] > 0


@pytest.mark.parametrize("case", ["missing-model", "unhealthy", "api-key", "template", "vllm-missing",
                                  "local-broken"])
def test_bad_input_fails_before_any_request(gold, case, monkeypatch):
    monkeypatch.delenv("MATHFORGE_TEST_KEY", raising=False)
    with FakeOpenAI(reply=solver_reply(gold["rows"]), healthy=case != "unhealthy") as server:
        stage, models = "    ready_timeout: 1\n", endpoint(server.url)
        if case == "missing-model":
            models = "      - backend: local\n        model: /nonexistent/model\n"
        elif case == "api-key":
            models = endpoint(server.url, extra="        api_key_env: MATHFORGE_TEST_KEY\n")
        elif case == "template":
            stage += "    prompt:\n      template: 'Q: {{ question }} ({{ difficulty }})'\n"
        elif case == "vllm-missing":
            pytest.importorskip("builders")  # vLLM is an optional extra, absent here and in CI
            if __import__("importlib").util.find_spec("vllm"):
                pytest.skip("vllm is installed")
            models = "      - backend: vllm\n        model: some/model\n"
        elif case == "local-broken":  # transformers serve starts, cannot load the model, exits
            broken = gold["tmp"] / "broken-model"
            broken.mkdir()
            (broken / "config.json").write_text('{"model_type": "nonsense"}')
            models = f"      - backend: local\n        model: {broken}\n" + endpoint(server.url)
        recipe = sample_recipe(gold["tmp"], gold["path"], models, stage=stage)
        result = run("build", recipe)
        posts = sum(v for k, v in server.counts.items() if k.startswith("POST"))
    assert result.returncode == 2, result.stderr
    assert posts == 0
    message = result.stderr
    expected = {"missing-model": "does not exist", "unhealthy": "did not answer", "api-key": "MATHFORGE_TEST_KEY",
                "template": "difficulty", "vllm-missing": "mathforge[vllm]",
                "local-broken": "healthy"}[case]
    assert expected in message and str(recipe) in message
    assert not (gold["tmp"] / "out").exists()


def test_api_key_is_sent_and_never_written(gold, monkeypatch):
    monkeypatch.setenv("MATHFORGE_TEST_KEY", "sk-secret-123")
    seen = []

    class Recording(FakeOpenAI):
        async def _handle(self, method, path, headers, body, writer):
            seen.append(headers.get("authorization"))
            return await super()._handle(method, path, headers, body, writer)

    with Recording(reply=solver_reply(gold["rows"])) as server:
        models = endpoint(server.url, extra="        api_key_env: MATHFORGE_TEST_KEY\n")
        result = run("build", sample_recipe(gold["tmp"], gold["path"], models))
    assert result.returncode == 0, result.stderr
    assert seen and all(h == "Bearer sk-secret-123" for h in seen)
    leaked = [p for p in gold["tmp"].rglob("*") if p.is_file() and b"sk-secret-123" in p.read_bytes()]
    assert leaked == [] and "sk-secret-123" not in result.stdout + result.stderr


def corpus_rows(tmp: Path, name: str) -> list[dict]:
    shards = sorted((tmp / "out" / name / "1.0.0" / "data").glob("*.parquet"))
    rows = [row for shard in shards for row in pq.read_table(shard).to_pylist()]
    for row in rows:  # the source names the work directory's samples file, which differs by recipe name
        row["source"] = row["source"] and row["source"].rsplit("/", 1)[-1]
    return sorted(rows, key=lambda r: (r["problem_id"], r["method"], r["sample_index"] or -1))


def test_ray_executor_gives_the_same_corpus_as_local(gold):
    """datatrove's RayPipelineExecutor on a local, loopback-only Ray instance; 2 tasks each way."""
    pytest.importorskip("ray")
    with FakeOpenAI(reply=solver_reply(gold["rows"])) as server:
        executor = "executor:\n  type: {kind}\n  tasks: 2\n"
        for kind in ("local", "ray"):
            recipe = sample_recipe(gold["tmp"], gold["path"], endpoint(server.url),
                                   executor=executor.format(kind=kind), name=kind)
            result = run("build", recipe, timeout=600)
            assert result.returncode == 0, result.stderr
    local, ray_rows = corpus_rows(gold["tmp"], "local"), corpus_rows(gold["tmp"], "ray")
    assert len(local) > 12 and local == ray_rows


def test_local_ray_listens_on_loopback_only():
    """With a `ray_init` that gives no `address` (`num_cpus: 1`), every listening socket of the Ray processes we
    start (this process and all its descendants: GCS, raylet, agents, workers) is on 127.0.0.1, and num_cpus holds."""
    pytest.importorskip("ray")
    psutil = pytest.importorskip("psutil")
    code = ("import os, json, psutil, ray\nfrom mathforge.builders.generation.runner import start_ray\n"
            "start_ray({'num_cpus': 1})\nray.get(ray.remote(lambda: 1).remote())\nme = psutil.Process()\n"
            "addrs = set()\nfor p in [me, *me.children(recursive=True)]:\n    try:\n"
            "        addrs |= {c.laddr.ip for c in p.net_connections('inet') if c.status == psutil.CONN_LISTEN}\n"
            "    except psutil.Error:\n        pass\n"
            "print(json.dumps([sorted(addrs), ray.cluster_resources()['CPU']]))\nray.shutdown()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    addresses, cpus = json.loads(result.stdout.strip().splitlines()[-1])
    loopback = {a for a in addresses if a.removeprefix("::ffff:") == "127.0.0.1"}
    assert len(addresses) >= 1 and set(addresses) == loopback, addresses
    assert cpus == 1  # the user's key reached ray.init
    del psutil


def test_every_shipped_recipe_validates_and_dry_runs_offline(tmp_path):
    root = Path(__file__).parent.parent
    for recipe in sorted((root / "recipes").glob("*.yaml")):
        assert run("validate", recipe).returncode == 0, recipe
        dry = run("build", recipe, "--dry-run", cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
        assert dry.returncode == 0 and "output:" in dry.stdout, (recipe, dry.stderr)
    result = run("build", root / "recipes" / "offline-tiny.yaml", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "16 problems x 1 model(s) x 4 = 64 requests" in result.stdout
    assert not any(tmp_path.iterdir())  # a dry run writes nothing and starts nothing


def test_several_client_processes_send_the_same_requests_and_write_the_same_samples(gold, monkeypatch):
    """concurrency 16 split over 1, 2 or 3 client processes: the same requests (seeds), the same samples, one
    progress line over all of them; the split is not content (the manifest's recipe, which the fingerprint covers,
    does not change)."""
    by_layout = {}
    with FakeOpenAI(reply=solver_reply(gold["rows"]), latency=0.01) as server:
        for processes in (1, 2, 3):
            tmp = gold["tmp"] / f"p{processes}"
            tmp.mkdir()
            recipe = sample_recipe(tmp, gold["path"], endpoint(server.url),
                                   stage=f"    client_processes: {processes}\n")
            result = run("build", recipe)
            assert result.returncode == 0, result.stderr
            work = next((tmp / "work" / "gen" / "1.0.0" / "samples").iterdir())
            assert json.loads((work / "run-stats.json").read_text())["client_processes"] == processes
            assert len(list((work / "input").glob("*.jsonl"))) == processes
            samples = samples_of(tmp)
            manifest = json.loads((tmp / "out" / "gen" / "1.0.0" / "manifest.json").read_text())
            by_layout[processes] = ({(s["problem_id"], s["sample_index"], s["seed"], s["text"]) for s in samples},
                                    manifest["recipe"])
    assert len(by_layout[1][0]) == 12 * 4
    assert by_layout[1] == by_layout[2] == by_layout[3]


def test_client_layout_is_derived_from_concurrency_and_kept_on_disk(tmp_path, monkeypatch):
    from mathforge.builders.generation import runner
    from mathforge.builders.recipe import Executor, ModelSpec, SampleStage

    monkeypatch.setattr(runner.os, "cpu_count", lambda: 16)
    for name in "abcdefg":
        (tmp_path / name).mkdir()
    stage = lambda **kw: SampleStage(type="sample", models=[ModelSpec(backend="endpoint", model="m",  # noqa: E731
                                                                      base_url="http://127.0.0.1:9")], **kw)
    local = Executor()
    assert runner.client_layout(stage(concurrency=64), local, tmp_path / "a") == runner.ClientLayout(1, 64)
    assert runner.client_layout(stage(concurrency=256), local, tmp_path / "b") == runner.ClientLayout(4, 64)
    assert runner.client_layout(stage(concurrency=100), local, tmp_path / "c") == runner.ClientLayout(2, 50)
    assert runner.client_layout(stage(concurrency=4096), local, tmp_path / "d") == runner.ClientLayout(16, 256)
    assert runner.client_layout(stage(concurrency=3, client_processes=8), local, tmp_path / "e") == \
        runner.ClientLayout(3, 1)  # never a process without a request to send
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)
    assert runner.client_layout(stage(concurrency=256), local, tmp_path / "f") == runner.ClientLayout(2, 128)
    assert runner.client_layout(stage(concurrency=256), local, tmp_path / "b") == runner.ClientLayout(4, 64)  # saved
    # an executor the recipe configured keeps its tasks, each with the whole concurrency (one server per task)
    assert runner.client_layout(stage(concurrency=256), Executor(type="local", tasks=3), tmp_path / "g") == \
        runner.ClientLayout(3, 256)
    for name in "abcdef":
        assert (tmp_path / name / "client-layout.json").exists()
    assert not (tmp_path / "g" / "client-layout.json").exists()
    (tmp_path / "h" / "checkpoints").mkdir(parents=True)  # begun by a version that saved no layout: one task
    assert runner.client_layout(stage(concurrency=256), local, tmp_path / "h") == runner.ClientLayout(1, 256)


def test_without_a_quota_samples_are_not_graded_while_requests_are_in_flight(monkeypatch):
    """Grading belongs to the collect; a slow verdict inside the rollout stalls every request in flight (it cost
    the c64 benchmark two thirds of its throughput)."""
    import asyncio

    from mathforge.builders.generation import runner

    def refuse(*args, **kwargs):
        raise AssertionError("graded inside the rollout")

    monkeypatch.setattr(runner, "is_correct", refuse)

    class Reply:
        text, reasoning, usage, finish_reason = "<<2+2=4>>\n#### 4", None, {"completion_tokens": 3}, "stop"

    async def generate(payload):
        return Reply()

    class Document:
        id, text, metadata = "p", "Q", {"gold": "4", "kind": "auto"}

    spec = {"seed": 0, "label": "m", "k": 3, "quota": None, "max_retries": 0, "retry_backoff": 0, "stop": [],
            "chat": False, "system_text": None, "max_tokens": 8, "temperature": 0.7, "top_p": 1.0,
            "backend": "endpoint"}
    out = asyncio.run(runner.sample_problem(Document, generate, spec))
    assert [s["status"] for s in out["samples"]] == ["ok"] * 3
    monkeypatch.undo()
    quota = {**spec, "quota": {"correct": 2, "max_samples": 9}}
    out = asyncio.run(runner.sample_problem(Document, generate, quota))
    assert len(out["samples"]) == 3  # the first round of 3 was correct: the quota of 2 is met, no second round


def test_the_progress_line_adds_up_several_client_processes(tmp_path):
    from mathforge.builders.generation import runner

    (tmp_path / "101.json").write_text(json.dumps({"done": 30, "tokens": 300, "failed": 1}))
    (tmp_path / "102.json").write_text(json.dumps({"done": 12, "tokens": 100}))
    (tmp_path / "103.tmp").write_text("{")  # a file being replaced: not read
    line = runner.ProgressLine("m", 100, None, tmp_path)
    assert line.counts() == {"done": 42, "tokens": 400, "failed": 1}


def test_padded_replies_are_as_long_as_asked_and_all_different():
    """The benchmark's long replies (`fake_openai --reply-chars`): exact length, distinct per request."""
    from mathforge.testing.fake_openai import padded_reply

    reply = padded_reply(1500)
    texts = [reply({"prompt": f"Q{i}", "seed": s}) for i in range(5) for s in range(4)]
    assert {len(t) for t in texts} == {1500} and len(set(texts)) == 20
    assert "<<" in texts[0] and padded_reply(5)({"prompt": "Q", "seed": 0}).startswith("sample ")
