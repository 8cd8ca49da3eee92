"""Hostile inputs and launches: exit 2 with file:line: key and nothing written; vLLM/SGLang bound to loopback."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import run

from mathforge.testing import synthetic

BIG_SEED = 12345678901234567890  # 20 digits: past int64 (and orjson still reads it: it fits in uint64)


# --------------------------------------------------------------------------- vLLM / SGLang command lines
def _config(server_type: str, **changes):
    from datatrove.pipeline.inference.run_inference import InferenceConfig

    return InferenceConfig(server_type=server_type, model_name_or_path="org/model", **changes)


def _flag(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_launched_servers_bind_loopback_and_trust_no_remote_code_by_default(kind):
    from mathforge.builders.generation.servers import sglang_command, vllm_command

    build = vllm_command if kind == "vllm" else sglang_command
    command = build(_config(kind, model_kwargs={"revision": "abc123", "api_key_env": "SECRET_NAME"}, tp=2), 8123)
    assert _flag(command, "--host") == "127.0.0.1" and _flag(command, "--port") == "8123"
    assert "--trust-remote-code" not in command
    assert "--revision=abc123" in command
    assert not [part for part in command if "api_key_env" in part or "SECRET_NAME" in part]
    assert ("--tensor-parallel-size=2" if kind == "vllm" else "--tp-size=2") in command
    if kind == "vllm":
        assert command[:3] == ["vllm", "serve", "org/model"]
    else:
        assert command[1:3] == ["-m", "sglang.launch_server"] and _flag(command, "--model-path") == "org/model"


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
def test_launched_servers_take_the_recipe_host_and_trust_remote_code(kind):
    from mathforge.builders.generation.servers import sglang_command, vllm_command

    build = vllm_command if kind == "vllm" else sglang_command
    command = build(_config(kind), 8123, host="0.0.0.0", trust_remote_code=True)
    assert _flag(command, "--host") == "0.0.0.0" and command.count("--trust-remote-code") == 1


def _pass(tmp_path: Path, backend: str, **spec_fields):
    """A model pass as runner.pipeline() gets it; the spec may carry the recipe's `host` / `trust_remote_code`."""
    from mathforge.builders.generation.runner import ModelPass
    from mathforge.builders.recipe import ModelSpec, SampleStage

    stage = SampleStage(type="sample", models=[ModelSpec(backend="vllm", model="org/model")], k=2)
    spec = SimpleNamespace(backend=backend, model="org/model", revision=None, api_key_env=None, tp=1, dp=1,
                           label="model", **spec_fields)
    return ModelPass(spec, stage, "f" * 16, tmp_path / "pass")


@pytest.mark.parametrize("kind", ["vllm", "sglang"])
@pytest.mark.parametrize("recipe, host, trusted", [({}, "127.0.0.1", False),
                                                   ({"host": "0.0.0.0", "trust_remote_code": True}, "0.0.0.0", True)])
def test_the_sample_pipeline_launches_what_the_recipe_allows(tmp_path, monkeypatch, kind, recipe, host, trusted):
    """The server the Runner of runner.pipeline() starts (vLLM/SGLang need not be installed: the spawn is caught)."""
    import datatrove.pipeline.inference.servers.sglang_server as sglang_server
    import datatrove.pipeline.inference.servers.vllm_server as vllm_server
    from mathforge.builders.generation import servers
    from mathforge.builders.generation.runner import ClientLayout, pipeline

    monkeypatch.setattr(vllm_server, "check_required_dependencies", lambda *a, **k: None)
    monkeypatch.setattr(sglang_server, "check_required_dependencies", lambda *a, **k: None)
    spawned = []

    async def fake_exec(*command, **kwargs):
        spawned.append(list(command))

    monkeypatch.setattr(asyncio, "create_subprocess_exec", fake_exec)
    runner = pipeline(_pass(tmp_path, kind, **recipe), ClientLayout(1, 64))[-1]

    async def launch():
        server = runner._init_server(0)
        server._port = 4321
        await (server._start_vllm_task() if kind == "vllm" else server.create_sglang_task())
        return server

    server = asyncio.run(launch())
    assert isinstance(server, servers.LAUNCHED[kind])
    assert len(spawned) == 1 and spawned[0] == server.command()
    assert _flag(spawned[0], "--host") == host and ("--trust-remote-code" in spawned[0]) is trusted
    assert server.get_base_url() == "http://127.0.0.1:4321"  # a wildcard bind is still reached on loopback


def test_endpoint_passes_still_get_an_endpoint_server(tmp_path):
    from mathforge.builders.generation.client import Endpoint
    from mathforge.builders.generation.runner import ClientLayout, pipeline

    mp = _pass(tmp_path, "endpoint")
    mp.base_url = "http://127.0.0.1:9"
    runner = pipeline(mp, ClientLayout(1, 64))[-1]
    assert isinstance(asyncio.run(_init(runner)), Endpoint)


async def _init(runner):
    return runner._init_server(0)


# --------------------------------------------------------------------------- bad input: exit 2, nothing written
def _gold(tmp_path: Path, n: int = 6) -> tuple[Path, list[dict]]:
    rows = synthetic.problems(n, seed=3)
    path = tmp_path / "gold.jsonl"
    synthetic.write_gold(rows, path)
    return path, rows


def _recipe(tmp_path: Path, source: Path, out: str, stages: str | None = None, work: str | None = None) -> Path:
    stages = stages or "  - type: collect\n    samples: []\n"
    body = (f"name: hostile\nversion: 1.0.0\nsources:\n  - name: s\n    path: {source}\nstages:\n{stages}"
            f"output:\n  dir: {out}\n  work_dir: {work or tmp_path / 'work'}\n")
    path = tmp_path / "recipe.yaml"
    path.write_text(body)
    return path


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_a_source_path_that_is_a_directory_exits_2(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    path = _recipe(tmp_path, folder, str(tmp_path / "out"))
    before = _listing(tmp_path)
    result = run("build", path)
    assert result.returncode == 2, result.stderr
    assert f"{folder}: is a directory, not a JSONL or Parquet file" in result.stderr
    assert "Traceback" not in result.stderr and _listing(tmp_path) == before


def test_an_output_dir_under_a_regular_file_exits_2(tmp_path):
    gold, _ = _gold(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    path = _recipe(tmp_path, gold, f"{blocker}/out")
    before = _listing(tmp_path)
    result = run("build", path)
    assert result.returncode == 2, result.stderr
    assert f"{path}:10: output.dir: cannot create the output directory: {blocker} is a file" in result.stderr
    result = run("build", path, "--out", blocker / "elsewhere")
    assert result.returncode == 2 and f"{blocker}/elsewhere: --out: cannot create" in result.stderr
    work = _recipe(tmp_path, gold, str(tmp_path / "out"), work=f"{blocker}/work")
    result = run("build", work)
    assert result.returncode == 2 and f"{work}:11: output.work_dir: cannot create" in result.stderr
    table = tmp_path / "samples.jsonl"
    table.write_text(json.dumps({"idx": 0, "solution": "#### 1"}) + "\n")
    before = _listing(tmp_path)
    result = run("collect", "--gold", gold, "--samples", table, "--out", blocker / "corpus")
    assert result.returncode == 2 and f"{blocker}/corpus: --out: cannot create" in result.stderr
    result = run("collect", "--gold", gold, "--samples", table, "--out", blocker)
    assert result.returncode == 2 and f"{blocker}: --out: cannot create the output directory: {blocker} is a file" \
        in result.stderr
    for command in (["synth", "--out", blocker / "s"], ["tiny-model", blocker / "m"],
                    ["grade", gold, "--out", blocker / "graded.jsonl"]):
        result = run(*command)
        assert result.returncode == 2 and "cannot create the output directory" in result.stderr, (command, result)
    assert "Traceback" not in result.stderr and _listing(tmp_path) == before
    assert blocker.read_text() == "not a directory"


def test_gold_that_is_a_directory_exits_2(tmp_path):
    _, rows = _gold(tmp_path)
    models = tmp_path / "model0"
    synthetic.write_model_dir(rows, models, 0, seeds=2)
    before = _listing(tmp_path)
    result = run("collect", "--gold", models, "--samples", models, "--out", tmp_path / "out")
    assert result.returncode == 2, result.stderr
    assert f"{models}: --gold: is a directory" in result.stderr and "--samples" in result.stderr
    assert _listing(tmp_path) == before


def _collect(tmp_path: Path, gold: Path, table: Path, *extra):
    out = tmp_path / "out"
    result = run("collect", "--gold", gold, "--samples", table, "--out", out, *extra)
    return result, out


def test_an_unhashable_problem_id_is_a_rejected_row_not_a_crash(tmp_path):
    from mathforge.builders.sources import load_local

    gold, _ = _gold(tmp_path)
    problems = load_local(gold)
    table = tmp_path / "samples.jsonl"
    rows = [{"problem_id": [1, 2], "solution": problems[0].solution},
            {"problem_id": {"a": 1}, "solution": problems[0].solution},
            {"problem_id": problems[1].problem_id, "solution": problems[1].solution}]
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result, out = _collect(tmp_path, gold, table)
    assert result.returncode == 0, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rejected"]["problem_id is not a string (a list)"] == 1
    assert stats["rejected"]["problem_id is not a string (a dict)"] == 1
    assert stats["samples"] == 1


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_20_digit_seed_is_rejected_not_an_overflow(tmp_path, fmt):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from mathforge.builders.sources import load_local

    gold, _ = _gold(tmp_path)
    problems = load_local(gold)
    rows = [{"idx": 0, "solution": problems[0].solution, "seed": BIG_SEED},
            {"idx": 1, "solution": problems[1].solution, "seed": 7},
            {"idx": 2, "solution": problems[2].solution, "seed": (1 << 63) - 1}]
    table = tmp_path / f"samples.{fmt}"
    if fmt == "jsonl":
        table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema([("idx", pa.int64()), ("solution", pa.string()),
                                                                      ("seed", pa.uint64())])), table)
    result, out = _collect(tmp_path, gold, table)
    assert result.returncode == 0, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rejected"] == {"seed does not fit in a signed 64-bit integer": 1} and stats["samples"] == 2
    seeds = {r["seed"] for r in pq.read_table(out / "data").to_pylist() if r["method"] == "rft"}
    assert seeds == {7, (1 << 63) - 1}


def test_a_20_digit_seed_in_a_seed_file_name_exits_2(tmp_path):
    gold, rows = _gold(tmp_path)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / f"raw_generation_0.7_{BIG_SEED}.json").write_text(
        "".join(json.dumps([["p", r["answer"]]]) + "\n" for r in rows))
    before = _listing(tmp_path)
    result, _ = _collect(tmp_path, gold, folder)
    assert result.returncode == 2, result.stderr
    assert f"raw_generation_0.7_{BIG_SEED}.json: the seed in this file name does not fit" in result.stderr
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_an_empty_samples_table_exits_2(tmp_path, fmt):
    """An empty samples table is an error, not a warning: a run that wrote nothing must not pass as a corpus."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    gold, rows = _gold(tmp_path)
    empty = tmp_path / f"empty.{fmt}"
    if fmt == "jsonl":
        empty.write_text("\n\n")
    else:
        pq.write_table(pa.table({"idx": pa.array([], pa.int64()), "solution": pa.array([], pa.string())}), empty)
    models = tmp_path / "model0"
    synthetic.write_model_dir(rows, models, 0, seeds=2)
    before = _listing(tmp_path)
    result = run("collect", "--gold", gold, "--samples", models, empty, "--out", tmp_path / "out")
    assert result.returncode == 2, result.stderr
    assert f"{empty}: --samples: the samples table has no rows" in result.stderr
    assert _listing(tmp_path) == before


SAMPLE_STAGE = """  - type: sample
    k: 1
    models:
      - backend: endpoint
        model: m
        base_url: http://127.0.0.1:9
    prompt:
      template: "{template}"
"""


@pytest.mark.parametrize("template", ["{{% include 'other.txt' %}}",
                                      "{{% macro f() %}}{{{{ f() }}}}{{% endmacro %}}{{{{ f() }}}}"])
def test_template_include_and_recursion_exit_2(tmp_path, template):
    """Templates are builders/prompts.py's; here the CLI's side: an InputError about the template is exit 2."""
    gold, _ = _gold(tmp_path)
    path = _recipe(tmp_path, gold, str(tmp_path / "out"), stages=SAMPLE_STAGE.format(template=template))
    before = _listing(tmp_path)
    result = run("build", path)
    assert result.returncode == 2, result.stderr
    assert f"{path}" in result.stderr and "stages.0.prompt.template" in result.stderr
    assert "Traceback" not in result.stderr and _listing(tmp_path) == before
