"""Shared fixtures: synthetic gold problems and model directories in the gsm8k-ScRel layout."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mathforge.testing import synthetic  # noqa: E402
from mathforge.testing.fake_openai import FakeOpenAI, solver_reply  # noqa: E402

CLI = [sys.executable, "-c", "from mathforge.cli import main; main()"]


def run(*args, cwd=None, env=None, timeout=300):
    """The mathforge CLI in a subprocess, as a user runs it (wide terminal so tables are not truncated)."""
    import subprocess

    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env)




@pytest.fixture
def screl(tmp_path: Path) -> dict:
    """30 problems, 3 models x 12 seeds of pseudo-samples (paraphrases, swaps, miscomputations, wrong answers)."""
    rows = synthetic.problems(30, seed=7)
    gold = tmp_path / "gold.jsonl"
    synthetic.write_gold(rows, gold)
    models = []
    for m in range(3):
        folder = tmp_path / f"model{m}"
        synthetic.write_model_dir(rows, folder, m, seeds=12)
        models.append(str(folder))
    return {"rows": rows, "gold": str(gold), "models": models, "tmp": tmp_path}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny Llama (random weights) + BPE tokenizer trained on synthetic problems, built once per session."""
    from mathforge.testing.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("PYTHONHASHSEED", "0")


RECIPE = """name: {name}
version: {version}
description: Synthetic RFT corpus for tests.
sources:
  - name: synth
    path: {gold}
stages:
  - type: sample
    k: {k}
    max_tokens: 64
    concurrency: 8
    models:
      - name: solver
        backend: endpoint
        model: fake-model
        base_url: {url}
  - type: collect
publish:
  license: mit
  tags: [gsm8k-style]
{publish}output:
  dir: {tmp}/builds/{{name}}/{{version}}
  work_dir: {tmp}/work/{{name}}/{{version}}
"""


@pytest.fixture
def corpus(tmp_path):
    """Build recipes sampling a scripted solver endpoint: build(version, k, name, publish, extra) -> (result, dir)."""
    rows = synthetic.problems(10, seed=11)
    synthetic.write_gold(rows, tmp_path / "gold.jsonl")
    server = FakeOpenAI(reply=solver_reply(rows)).start()

    def build(version="1.0.0", k=4, name="synth-rft", publish="", extra=()):
        recipe = tmp_path / f"{name}-{version}-{k}.yaml"
        recipe.write_text(RECIPE.format(name=name, version=version, gold=tmp_path / "gold.jsonl", k=k,
                                        url=server.url, tmp=tmp_path, publish=publish))
        result = run("build", recipe, *extra)
        return result, tmp_path / "builds" / name / version

    yield {"build": build, "tmp": tmp_path, "rows": rows, "server": server}
    server.stop()




@pytest.fixture(autouse=True)
def _watchdog():
    """A test still running after 15 minutes dumps every thread's traceback and ends the run: CI never hangs."""
    import faulthandler

    faulthandler.dump_traceback_later(900, repeat=False, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def pytest_configure(config):
    config.addinivalue_line("markers", "slurm: runs jobs on the one-node test cluster (mathforge.testing."
                                       "slurm_cluster); skipped where it cannot start, failed if "
                                       "MATHFORGE_REQUIRE_SLURM=1")


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A one-node Slurm cluster (2 CPUs) for the session, in this loopback-only network namespace; every daemon and
    job process gone at the end. Outside such a namespace (plain `make test`) its tests skip: `.ci/run` runs them
    under `python -m mathforge.testing.slurm_cluster netns -- ...` with MATHFORGE_REQUIRE_SLURM=1."""
    from mathforge.testing.slurm_cluster import SlurmCluster, why_not

    reason = why_not()
    if reason:
        if os.environ.get("MATHFORGE_REQUIRE_SLURM") == "1":
            pytest.fail(f"MATHFORGE_REQUIRE_SLURM=1 but the test cluster cannot start: {reason}")
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm-cluster"), max_time="1-00:00:00").start()
    yield cluster
    left = cluster.stop()
    assert not left, f"processes of the test cluster still running: {left}"
