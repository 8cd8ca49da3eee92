"""The dataset card: huggingface_hub's DatasetCard reads it, its metadata uses the Hub's vocabularies, it cites."""
from __future__ import annotations

import pytest
from conftest import run
from huggingface_hub import DatasetCard
from mathforge.builders.hub_vocabulary import LICENSES, SIZE_CATEGORIES, license_problem, size_category

RECIPE = """name: card-test
version: 1.0.0
sources:
  - name: synthetic
    path: {gold}
stages:
  - type: collect
    samples: [{models}]
publish:
  license: {license}
output:
  dir: {out}
  work_dir: {work}
"""


def _build(screl, license="mit"):
    out = screl["tmp"] / "build"
    recipe = screl["tmp"] / "r.yaml"
    recipe.write_text(RECIPE.format(gold=screl["gold"], models=", ".join(screl["models"]), out=out,
                                    work=screl["tmp"] / "work", license=license))
    return recipe, out


def test_the_card_loads_with_huggingface_hub_and_uses_hub_values(screl):
    recipe, out = _build(screl)
    result = run("build", recipe)
    assert result.returncode == 0, result.stderr
    card = DatasetCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["license"] in LICENSES and data["license"] == "mit"
    assert data["size_categories"] == ["n<1K"] and data["size_categories"][0] in {c for _, c in SIZE_CATEGORIES}
    assert set(data["task_categories"]) <= {"text-generation", "question-answering"}
    assert [c["config_name"] for c in data["configs"]][:4] == ["default", "cpt", "sft", "messages"]
    assert "arXiv:2308.01825" in card.text and "2501.14002" not in card.text  # collect only: the RFT paper
    assert "## Uses" in card.text and "## Limitations" in card.text
    assert 'load_dataset("<org>/card-test"' in card.text  # the repo id is known only at push time


@pytest.mark.parametrize("rows, category", [(0, "n<1K"), (999, "n<1K"), (1_000, "1K<n<10K"),
                                            (99_999_999, "10M<n<100M"), (100_000_000, "100M<n<1B"),
                                            (5 * 10**9, "1B<n<10B"), (10**12, "n>1T")])
def test_size_categories_at_every_scale(rows, category):
    assert size_category(rows) == category


def test_license_problems_name_the_hub_identifier():
    assert license_problem("apache-2.0") is None and license_problem("llama3.1") is None
    message = license_problem("Apache 2.0")
    assert "not a Hub license identifier" in message and "apache-2.0" in message


def test_the_pushed_card_names_the_real_repo_and_still_verifies(screl, tmp_path):
    import subprocess
    import sys

    from hub_server import HubServer

    recipe, out = _build(screl)
    assert run("build", recipe).returncode == 0
    fingerprint = __import__("json").loads((out / "manifest.json").read_text())["fingerprint"]
    server = HubServer().start()
    env = {"HF_ENDPOINT": server.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_mathforge_test_token_42",
           "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0",
           "HF_DATASETS_OFFLINE": "0", "MATHFORGE_CACHE": str(tmp_path / "cache"), "HF_HUB_ETAG_TIMEOUT": "5"}
    repo = "mathforge-tests/card-test"
    try:
        pushed = run("push", out, "--repo", repo, env=env)
        assert pushed.returncode == 0, pushed.stderr
        code = (f"from huggingface_hub import hf_hub_download\nprint(hf_hub_download({repo!r}, 'README.md', "
                "repo_type='dataset', revision='v1.0.0'))")
        fetched = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert fetched.returncode == 0, fetched.stderr
        card = DatasetCard.load(fetched.stdout.strip().splitlines()[-1])
        pulled = run("pull", f"{repo}@v1.0.0", "--out", tmp_path / "pulled", env=env)
        assert pulled.returncode == 0, pulled.stderr  # the manifest's README entry follows the re-rendered card
    finally:
        server.stop()
    assert f'load_dataset("{repo}"' in card.text and "<org>/" not in card.text
    data = card.data.to_dict()  # the pushed card's metadata, against the Hub's vocabularies
    assert data["license"] in LICENSES and data["size_categories"][0] in {c for _, c in SIZE_CATEGORIES}
    assert set(data["task_categories"]) <= {"text-generation", "question-answering"}
    assert __import__("json").loads((tmp_path / "pulled" / "manifest.json").read_text())["fingerprint"] == fingerprint
    assert "<org>/card-test" in (out / "README.md").read_text()  # the local build is unchanged


def test_validate_refuses_a_license_the_hub_does_not_know(screl):
    recipe, _ = _build(screl, license='"Apache 2.0"')
    result = run("validate", recipe)
    assert result.returncode == 2
    assert "publish.license" in result.stderr and "apache-2.0" in result.stderr and "r.yaml:" in result.stderr
