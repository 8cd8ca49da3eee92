"""The Python API as a notebook uses it, and `--set` overrides on the command line."""
from __future__ import annotations

import json
import math

import pytest
from conftest import run

import mathforge
from mathforge.testing import synthetic
from mathforge.testing.fake_openai import FakeOpenAI, solver_reply


def collect_recipe(screl, out) -> dict:
    """An offline collect recipe as a Python mapping (no YAML file anywhere)."""
    return {"name": "api-rft", "version": "1.0.0", "sources": [{"name": "synth", "path": screl["gold"]}],
            "stages": [{"type": "collect", "samples": screl["models"], "dedup": "paper"}],
            "output": {"dir": str(out)}}


def recipe_file(screl, out):
    path = screl["tmp"] / "recipe.yaml"
    models = ", ".join(screl["models"])
    path.write_text(f"name: set-rft\nversion: 1.0.0\nsources:\n  - path: {screl['gold']}\nstages:\n"
                    f"  - type: collect\n    samples: [{models}]\n    dedup: paper\noutput:\n  dir: {out}\n")
    return path


def test_notebook_build_then_trl_sft_trainer(tmp_path, tiny_model):
    """mathforge.build(...) over a sampled recipe, then to_datasets()["sft"] straight into TRL's SFTTrainer."""
    from trl import SFTConfig, SFTTrainer

    rows = synthetic.problems(8, seed=3)
    synthetic.write_gold(rows, tmp_path / "gold.jsonl")
    with FakeOpenAI(reply=solver_reply(rows)).start() as server:
        recipe = {"name": "nb", "version": "0.1.0", "sources": [{"path": str(tmp_path / "gold.jsonl")}],
                  "stages": [{"type": "sample", "k": 4, "max_tokens": 64,
                              "models": [{"name": "solver", "backend": "endpoint", "model": "fake",
                                          "base_url": server.url}]},
                             {"type": "collect"}],
                  "output": {"dir": str(tmp_path / "b"), "work_dir": str(tmp_path / "w")}}
        built = mathforge.build(recipe, stages__0__k=2)
    assert built.out_dir == tmp_path / "b" and built.fingerprint and built.passes[0].requests == 8 * 2
    data = built.to_datasets()
    assert {"default", "cpt", "sft", "messages"} <= set(data)
    default = data["default"]
    assert default.num_rows == built.manifest["rows"]["default"] == len(rows) + built.stats["distinct"]
    assert sorted(set(default["method"])) == ["gold", "rft"] and default["method"].count("gold") == len(rows)
    sft = data["sft"]  # gold and rft rows are published by default: one sft row per corpus row, same order
    assert sft.column_names[:2] == ["prompt", "completion"] and sft.num_rows == default.num_rows
    assert all(c == " " + s for c, s in zip(sft["completion"], default["solution"]))
    trainer = SFTTrainer(model=str(tiny_model), train_dataset=sft,
                         args=SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=2, per_device_train_batch_size=4,
                                        report_to=[], save_strategy="no", logging_steps=1, use_cpu=True))
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert trainer.state.global_step == 2 and len(losses) == 2 and all(math.isfinite(x) for x in losses)


def test_build_open_pull_and_grade(screl, tmp_path):
    built = mathforge.build(collect_recipe(screl, tmp_path / "b"))
    again = mathforge.Build.open(mathforge.pull(str(tmp_path / "b")))
    assert again.fingerprint == built.fingerprint and again.stats == built.stats
    assert again.dataset("default").num_rows == built.manifest["rows"]["default"]
    with pytest.raises(mathforge.InputError, match="no config 'mix'"):
        again.dataset("mix")
    # verdicts checked by hand: 1/2 == 0.5; 24 is not 23; no answer at all is unparseable
    assert mathforge.grade("\\frac{1}{2}", "0.5", mode="math").verdict == "correct"
    assert mathforge.grade("23", "20 + 3 = 24\n#### 24").verdict == "wrong"
    assert [v.verdict for v in mathforge.grade_batch([("7", "#### 7"), ("7", "no idea")], mode="gsm8k",
                                                     workers=1)] == ["correct", "unparseable"]



def test_build_open_refuses_a_poisoned_copy_as_pull_does(screl, tmp_path):
    """A copied build with one extra shard of 1,000 POISON rows: `Build.open` refuses it as `pull` does; unverified,
    it still reads only the manifest's shards. A listed shard changed in place is refused too."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    mathforge.build(collect_recipe(screl, tmp_path / "b"))
    listed = sorted((tmp_path / "b" / "sft").glob("*.parquet"))
    sft_rows = sum(pq.read_metadata(f).num_rows for f in listed)  # counted from the files, before any poison
    assert mathforge.Build.open(tmp_path / "b").dataset("sft").num_rows == sft_rows > 0
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "b", copy)
    first = pq.read_table(listed[0]).slice(0, 1)
    poison = pa.concat_tables([first] * 1000)
    for i, column in enumerate(poison.schema):
        if pa.types.is_string(column.type):
            poison = poison.set_column(i, column.name, pa.array(["POISON"] * 1000))
    pq.write_table(poison, copy / "sft" / "train-00001-of-00001.parquet")
    with pytest.raises(mathforge.InputError, match="sft/train-00001-of-00001.parquet: not in the manifest"):
        mathforge.pull(str(copy))
    with pytest.raises(mathforge.InputError, match="sft/train-00001-of-00001.parquet: not in the manifest"):
        mathforge.Build.open(copy)
    unverified = mathforge.Build.open(copy, verify=False).dataset("sft")
    assert unverified.num_rows == sft_rows and "POISON" not in unverified["completion"]
    (copy / "sft" / "train-00001-of-00001.parquet").unlink()
    shard = copy / listed[0].relative_to(tmp_path / "b")
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 1  # same size, one bit changed
    shard.write_bytes(bytes(data))
    with pytest.raises(mathforge.InputError, match=f"sft/{shard.name}: sha256 mismatch"):
        mathforge.Build.open(copy)


def test_overrides_in_python_name_the_override(screl, tmp_path):
    recipe = collect_recipe(screl, tmp_path / "b")
    assert mathforge.load_recipe(recipe, stages__0__dedup="canonical").stages[0].dedup == "canonical"
    assert mathforge.load_recipe(recipe, overrides=["stages.0.include_gold=false"]).stages[0].include_gold is False
    with pytest.raises(mathforge.InputError) as bad:
        mathforge.load_recipe(recipe, stages__3__dedup="paper")
    assert "stages__3__dedup" in str(bad.value) and "no index '3'" in str(bad.value)
    with pytest.raises(mathforge.InputError) as bad:
        mathforge.load_recipe(recipe, stages__0__dedup="fuzzy")
    assert "stages.0.dedup" in str(bad.value) and "stages__0__dedup='fuzzy'" in str(bad.value)
    assert recipe["stages"][0]["dedup"] == "paper"  # the caller's mapping is not modified


def test_set_overrides_change_the_build_and_its_fingerprint(screl, tmp_path):
    base = run("build", recipe_file(screl, tmp_path / "a"))
    assert base.returncode == 0, base.stderr
    changed = run("build", recipe_file(screl, tmp_path / "b"), "--set", "stages.0.include_gold=false",
                  "--set", "version=1.1.0")
    assert changed.returncode == 0, changed.stderr
    a, b = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("a", "b"))
    assert a["fingerprint"] != b["fingerprint"] and b["version"] == "1.1.0"
    assert a["recipe"]["stages"][0]["include_gold"] is True and b["recipe"]["stages"][0]["include_gold"] is False
    assert a["rows"]["default"] - b["rows"]["default"] == len(screl["rows"])  # exactly the 30 gold rows are gone


@pytest.mark.parametrize("override, says", [
    ("stages.3.k=4", "--set stages.3.k=4: stages has 1 item(s): no index '3'"),
    ("stagez.0.k=4", "--set stagez.0.k=4: no key 'stagez'"),
    ("stages.0.dedup=fuzzy", "stages.0.dedup: Input should be 'paper' or 'canonical' (from --set stages.0.dedup=fuzzy)"),
    ("stages.0.dedup", "an override is KEY.PATH=VALUE"),
])
def test_a_bad_override_exits_2_naming_it_and_writes_nothing(screl, tmp_path, override, says):
    result = run("build", recipe_file(screl, tmp_path / "out"), "--set", override)
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
