"""The trained model's card keeps the lineage: base_model, datasets, version and fingerprint, locally and pushed."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import run
from hub_server import HubServer

TOKEN = "hf_mathforge_test_token_42"
DATASET = "mathforge-tests/tiny-rft"
MODEL = "mathforge-tests/tiny-sft"
BASE = "mathforge-tests/tiny-base"


def test_pushed_model_card_names_the_dataset_version_and_fingerprint(corpus, tiny_model, tmp_path):
    result, build = corpus["build"](k=2)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((build / "manifest.json").read_text())
    server = HubServer().start()
    env = {"HF_ENDPOINT": server.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
           "MATHFORGE_CACHE": str(tmp_path / "cache"), "HF_HUB_ETAG_TIMEOUT": "5"}
    try:
        assert run("push", build, "--repo", DATASET, env=env).returncode == 0
        upload = (f"from huggingface_hub import HfApi\napi = HfApi()\napi.create_repo({BASE!r})\n"
                  f"api.upload_folder(repo_id={BASE!r}, folder_path={str(tiny_model)!r})")
        uploaded = subprocess.run([sys.executable, "-c", upload], capture_output=True, text=True, env=env, timeout=120)
        assert uploaded.returncode == 0, uploaded.stderr
        config = tmp_path / "sft.yaml"  # the base model and the dataset both from the Hub
        config.write_text(f"model_name_or_path: {BASE}\ndataset_name: {DATASET}@v{manifest['version']}\n"
                          f"output_dir: {tmp_path / 'run'}\nper_device_train_batch_size: 4\nmax_steps: 2\n"
                          f"max_length: 128\npush_to_hub: true\nhub_model_id: {MODEL}\nsave_strategy: 'no'\n")
        trained = run("train", "sft", config, env=env, timeout=600)
        assert trained.returncode == 0, trained.stderr
        code = (f"from huggingface_hub import hf_hub_download\nprint(open(hf_hub_download({MODEL!r}, 'README.md'))"
                ".read())")
        fetched = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert fetched.returncode == 0, fetched.stderr
    finally:
        server.stop()
    for card in (fetched.stdout, (tmp_path / "run" / "README.md").read_text()):
        front, body = card.split("---\n", 2)[1:]
        assert f"- {DATASET}" in front and "mathforge" in front and "sft" in front
        assert f"base_model: {BASE}" in front
        assert manifest["fingerprint"] in body and f"v{manifest['version']}" in body
        assert "fine-tuned version of [None]" not in card
