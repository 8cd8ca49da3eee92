"""Hub model ids on the local backends: a tiny model repo on the Hub-protocol server is sampled and evaluated."""
from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
from conftest import run
from hub_server import HubServer

from mathforge.testing import synthetic

TOKEN = "hf_mathforge_test_token_42"
MODEL = "mathforge-tests/tiny-llama"


def _env(server, tmp_path, offline="0"):
    return {"HF_ENDPOINT": server.url if server else "http://127.0.0.1:9", "HF_HUB_DISABLE_XET": "1",
            "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_OFFLINE": offline, "HF_DATASETS_OFFLINE": offline, "HF_HUB_ETAG_TIMEOUT": "5"}


def test_a_hub_model_id_is_sampled_with_the_batched_backend_and_evaluated(tmp_path, tiny_model):
    gold = tmp_path / "gold.jsonl"
    synthetic.write_gold(synthetic.problems(6, seed=1), gold)
    server = HubServer().start()
    env = _env(server, tmp_path)
    try:
        upload = (f"from huggingface_hub import HfApi\napi = HfApi()\napi.create_repo({MODEL!r})\n"
                  f"print(api.upload_folder(repo_id={MODEL!r}, folder_path={str(tiny_model)!r}).oid)")
        uploaded = subprocess.run([sys.executable, "-c", upload], capture_output=True, text=True, env={**env},
                                  timeout=120)
        assert uploaded.returncode == 0, uploaded.stderr
        commit = uploaded.stdout.strip().splitlines()[-1]
        recipe = tmp_path / "r.yaml"
        recipe.write_text(f"name: hubmodel\nversion: 1.0.0\nsources:\n  - path: {gold}\nstages:\n  - type: sample\n"
                          f"    k: 2\n    max_tokens: 8\n    models:\n      - name: tiny\n        backend: batched\n"
                          f"        model: {MODEL}\n  - type: collect\noutput:\n  dir: {tmp_path / 'out'}\n"
                          f"  work_dir: {tmp_path / 'work'}\n")
        built = run("build", recipe, env=env, timeout=600)
        assert built.returncode == 0, built.stderr
        samples = [r for p in (tmp_path / "work").rglob("samples.parquet") for r in pq.read_table(p).to_pylist()]
        assert len(samples) == 12 and {s["revision"] for s in samples} == {commit}
        lineage = json.loads((tmp_path / "out" / "manifest.json").read_text())["lineage"]
        assert lineage["models"][0]["model_id"] == MODEL and lineage["models"][0]["revision"] == commit
        evaluated = run("eval", MODEL, "--benchmark", gold, "--max-tokens", "8", "--out", tmp_path / "eval", env=env,
                        timeout=600)
        assert evaluated.returncode == 0, evaluated.stderr
        assert json.loads((tmp_path / "eval" / "report.json").read_text())["questions"] == 6
    finally:
        server.stop()


def test_offline_without_a_cache_is_a_clear_exit_2(tmp_path):
    gold = tmp_path / "gold.jsonl"
    synthetic.write_gold(synthetic.problems(2, seed=1), gold)
    result = run("eval", MODEL, "--benchmark", gold, "--out", tmp_path / "eval", env=_env(None, tmp_path, "1"))
    assert result.returncode == 2, result.stderr
    assert "not in the local cache" in result.stderr and MODEL in result.stderr
