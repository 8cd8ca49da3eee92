"""Every shipped training recipe under recipes/train/ is a valid TRL + mathforge config; the tiny one trains."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run
from mathforge.trainers.config import parse

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes" / "train").rglob("*.yaml"))


def test_recipes_are_shipped_for_each_paper_and_a_cpu():
    names = {p.relative_to(ROOT / "recipes" / "train").as_posix() for p in RECIPES}
    assert {"llama-2-7b/sft-rft-paper.yaml", "qwen2.5-0.5b/sft-rft-union.yaml", "qwen2.5-0.5b/cpt-mathgpt.yaml",
            "qwen2.5-0.5b/sft-after-cpt.yaml", "tiny/sft-offline.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.relative_to(ROOT / "recipes" / "train").as_posix())
def test_each_training_recipe_parses_with_trl(path):
    """Every key is a field of TRL's ScriptArguments / SFTConfig / ModelConfig or a mathforge key, every value
    parses (no download: the dataset and model are resolved only when training starts)."""
    kind = path.stem.split("-")[0]
    assert kind in ("sft", "cpt"), f"{path.name}: name it sft-... or cpt-..."
    margs, script, training, model = parse(kind, path, on_cpu=True)
    assert script.dataset_name and model.model_name_or_path and training.output_dir
    if margs.preset == "rft-paper":
        assert training.learning_rate == 2e-5 and training.num_train_epochs == 3 and training.max_length == 512
    if margs.preset == "mathgpt-cpt":
        assert training.learning_rate == 1e-4 and margs.mix_ratio == 0.3


def test_the_tiny_recipe_trains_as_shipped(tmp_path, tiny_model):
    """recipes/train/tiny/sft-offline.yaml with only its paths pointed at test data."""
    synth = run("synth", "--out", tmp_path / "inputs", "--problems", "40", "--models", "2", "--seeds", "3")
    assert synth.returncode == 0, synth.stderr
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: tiny\nversion: 1.0.0\nsources:\n  - name: s\n    path: {tmp_path / 'inputs' / 'gold.jsonl'}\n"
                      f"stages:\n  - type: collect\n    samples: [{tmp_path / 'inputs' / 'model0'}]\n"
                      f"output:\n  dir: {tmp_path / 'b'}\n  work_dir: {tmp_path / 'w'}\n")
    built = run("build", recipe)
    assert built.returncode == 0, built.stderr
    result = run("train", "sft", ROOT / "recipes" / "train" / "tiny" / "sft-offline.yaml",
                 "--model_name_or_path", tiny_model, "--dataset_name", tmp_path / "b",
                 "--output_dir", tmp_path / "run", "--max_steps", "3", timeout=600)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "README.md").exists()


def test_overrides_must_be_exact_option_names():
    """argparse's prefix matching would take `--learning_rat 1` as learning_rate=1: refused (exit 2)."""
    from mathforge.errors import InputError

    path = ROOT / "recipes" / "train" / "tiny" / "sft-offline.yaml"
    assert parse("sft", path, ["--learning_rate", "0.5"], on_cpu=True)[2].learning_rate == 0.5
    with pytest.raises(InputError, match="learning_rat"):
        parse("sft", path, ["--learning_rat", "1"], on_cpu=True)
