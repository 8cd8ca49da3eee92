"""Push and pull by version through the real huggingface_hub / datasets clients against a Hub-protocol server."""
from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from conftest import run
from hub_server import HubServer

TOKEN = "hf_mathforge_test_token_42"
REPO = "mathforge-tests/synth-rft"


@pytest.fixture
def hub(tmp_path):
    server = HubServer().start()
    env = {"HF_ENDPOINT": server.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
           "MATHFORGE_CACHE": str(tmp_path / "cache"), "HF_HUB_ETAG_TIMEOUT": "5"}
    yield server, env
    server.stop()


def rows(path):
    return pq.read_table(path / "data").to_pylist()


def tags(env) -> list[str]:
    code = (f"from huggingface_hub import HfApi\nprint(sorted(t.name for t in HfApi().list_repo_refs({REPO!r}, "
            "repo_type='dataset').tags))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return eval(result.stdout)  # noqa: S307 (our own subprocess printing a list literal)


def test_push_pull_by_version_and_train_from_the_hub(corpus, hub, tmp_path):
    server, env = hub
    first, v1 = corpus["build"](version="1.0.0", k=2)
    second, v11 = corpus["build"](version="1.1.0", k=4)
    assert first.returncode == 0 and second.returncode == 0
    v1_rows = rows(v1)

    pushed = run("push", v1, "--repo", REPO, env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert run("push", v11, "--repo", REPO, env=env).returncode == 0
    again = run("push", v1, "--repo", REPO, env=env)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert tags(env) == ["v1.0.0", "v1.1.0"]

    out = tmp_path / "pulled"
    pulled = run("pull", f"{REPO}@v1.0.0", "--out", out, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert rows(out) == v1_rows and rows(out) != rows(v11)
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} >= \
        set(json.loads((v1 / "manifest.json").read_text())["files"])
    assert run("pull", f"{REPO}@1.1.0", "--out", tmp_path / "v11", env=env).returncode == 0  # bare version = tag
    assert rows(tmp_path / "v11") == rows(v11)

    diff = run("diff", f"{REPO}@v1.0.0", f"{REPO}@v1.1.0", "--json", env=env)
    assert diff.returncode == 0, diff.stderr
    assert json.loads(diff.stdout)["stats"]["samples"]["delta"] == 10 * (4 - 2)
    listing = run("list", "--root", tmp_path / "builds")
    assert f"{REPO}@v1.0.0" in listing.stdout and f"{REPO}@v1.1.0" in listing.stdout

    missing = run("pull", f"{REPO}@v9.9.9", "--out", tmp_path / "nope", env=env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr

    # other content under an existing version: refused
    _, other = corpus["build"](version="1.0.0", k=6, name="synth-rft", extra=("--overwrite",))
    refused = run("push", other, "--repo", REPO, env=env)
    assert refused.returncode == 2 and "already exists" in refused.stderr
    assert tags(env) == ["v1.0.0", "v1.1.0"]

    # the token went to the server and nowhere else
    assert any(TOKEN in h for h in server.authorization_headers())
    for result in (pushed, pulled, refused):
        assert TOKEN not in result.stdout + result.stderr
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size < 5_000_000
                and TOKEN.encode() in p.read_bytes() and "hf" not in p.relative_to(tmp_path).parts[:1]]

    # load_dataset(repo, "sft", revision=...) feeds TRL's SFTTrainer unchanged
    from mathforge.testing.tinymodel import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    script = f"""
import json
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer
ds = load_dataset({REPO!r}, "sft", revision="v1.0.0", split="train")
tok = AutoTokenizer.from_pretrained({str(model)!r})
config = SFTConfig(output_dir={str(tmp_path / "sft-run")!r}, max_steps=2, per_device_train_batch_size=4,
                   bf16=False, gradient_checkpointing=False, report_to=[], logging_steps=1, save_strategy="no",
                   use_cpu=True, max_length=256, learning_rate=1e-3)
trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained({str(model)!r}), args=config, train_dataset=ds,
                     processing_class=tok)
out = trainer.train()
print(json.dumps({{"rows": len(ds), "columns": ds.column_names, "steps": out.global_step, "loss": out.training_loss}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["rows"] == len(v1_rows) and report["steps"] == 2 and report["loss"] > 0
    assert {"prompt", "completion"} <= set(report["columns"])


def test_a_push_whose_upload_drops_leaves_no_version_and_a_retry_succeeds(corpus, hub):
    server, env = hub
    result, build = corpus["build"](version="2.0.0", k=2)
    assert result.returncode == 0, result.stderr
    server.drop_lfs_puts = 1000  # every LFS upload attempt loses its connection
    failed = run("push", build, "--repo", REPO, env=env, timeout=600)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert tags(env) == []
    assert server.branch_files(REPO, "main") <= {".gitattributes"}  # no half version on main either
    server.drop_lfs_puts = 0
    retried = run("push", build, "--repo", REPO, env=env)
    assert retried.returncode == 0, retried.stderr
    assert tags(env) == ["v2.0.0"]


def test_pull_fails_loudly_when_remote_bytes_do_not_match_the_manifest(corpus, hub, tmp_path):
    server, env = hub
    result, build = corpus["build"](version="3.0.0", k=2)
    assert run("push", build, "--repo", REPO, env=env).returncode == 0
    server.corrupt(REPO, "v3.0.0", "sft/train-00000-of-00001.parquet")
    bad = run("pull", f"{REPO}@v3.0.0", "--out", tmp_path / "bad", env=env)
    assert bad.returncode == 2 and "sft/train-00000-of-00001.parquet: sha256 mismatch" in bad.stderr
    assert not (tmp_path / "bad").exists()  # nothing half-pulled left behind


def test_a_trained_model_is_pushed_through_the_same_client_path(corpus, hub, tiny_model, tmp_path):
    server, env = hub
    result, build = corpus["build"](version="4.0.0", k=2)
    assert result.returncode == 0, result.stderr
    config = tmp_path / "push.yaml"
    config.write_text(f"model_name_or_path: {tiny_model}\ndataset_name: {build}\noutput_dir: {tmp_path / 'm'}\n"
                      "max_steps: 2\nper_device_train_batch_size: 2\nmax_length: 128\nsave_strategy: 'no'\n"
                      "push_to_hub: true\nhub_model_id: mathforge-tests/tiny-sft\n")
    trained = run("train", "sft", config, env=env, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    files = server.branch_files("mathforge-tests/tiny-sft", "main", repo_type="model")
    assert {"model.safetensors", "tokenizer.json", "config.json"} <= files
    card = server.files("mathforge-tests/tiny-sft", "main", repo_type="model").get("mathforge-training.json")
    assert card and json.loads(card)["dataset_fingerprint"] == json.loads((build / "manifest.json").read_text())[
        "fingerprint"]
    assert TOKEN not in trained.stdout + trained.stderr
