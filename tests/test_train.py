"""`mathforge train cpt|sft`: TRL's SFTTrainer on built corpora — loss, masking, packing, resume, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run


@pytest.fixture
def build(corpus):
    result, path = corpus["build"](k=4)
    assert result.returncode == 0, result.stderr
    return path


def write_config(tmp: Path, name: str, body: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(body)
    return path


def summary_of(result) -> dict:
    line = next(line for line in result.stdout.splitlines() if line.startswith("summary: "))
    return json.loads(line.removeprefix("summary: "))


def sft_yaml(model, dataset, out, extra="") -> str:
    return (f"model_name_or_path: {model}\ndataset_name: {dataset}\noutput_dir: {out}\nper_device_train_batch_size: 4\n"
            f"learning_rate: 0.003\nlogging_steps: 1\nmax_length: 256\nseed: 0\n{extra}")


def test_sft_loss_goes_down_and_the_card_names_the_dataset(build, tiny_model, tmp_path):
    out = tmp_path / "sft"
    config = write_config(tmp_path, "sft", sft_yaml(tiny_model, build, out, "max_steps: 12\nsave_strategy: 'no'\n"))
    result = run("train", "sft", config, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = summary_of(result)
    manifest = json.loads((build / "manifest.json").read_text())
    assert summary["steps"] == 12 and summary["final_loss"] < summary["first_loss"] - 0.5
    assert summary["tokens_seen"] > 0 and summary["tokens_per_second"] > 0 and summary["completion_only_loss"]
    card = (out / "README.md").read_text()
    assert manifest["fingerprint"] in card and manifest["version"] in card
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()


def test_methods_train_on_their_rows_only(build, tiny_model, tmp_path):
    import pyarrow.parquet as pq

    methods = pq.read_table(build / "sft").column("method").to_pylist()
    assert 0 < methods.count("gold") < len(methods)  # the build also holds rft rows
    config = write_config(tmp_path, "gold", sft_yaml(tiny_model, build, tmp_path / "gold",
                                                     "max_steps: 2\nsave_strategy: 'no'\nmethods: [gold]\n"))
    result = run("train", "sft", config, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"methods gold: {methods.count('gold')} of {len(methods)} rows" in summary_of(result)["notes"]
    config = write_config(tmp_path, "tutor", sft_yaml(tmp_path / "no-such-model", build, tmp_path / "t",
                                                      "methods: [gold, tutor]\n"))
    result = run("train", "sft", config)
    assert result.returncode == 2 and "no rows of method(s) tutor (the config has: gold, rft)" in result.stderr
    assert "no-such-model" not in result.stderr


def test_completion_only_masking_at_the_token_level(build, tiny_model, tmp_path):
    from mathforge.trainers.run import build_trainer, prepare

    config = write_config(tmp_path, "sft", sft_yaml(tiny_model, build, tmp_path / "o", "max_steps: 1\n"))
    trainer = build_trainer(prepare("sft", config))
    tokenizer = trainer.processing_class
    import pyarrow.parquet as pq

    rows = pq.read_table(build / "sft").to_pylist()
    for i in range(3):
        example = trainer.train_dataset[i]
        batch = trainer.data_collator([example])
        ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
        prompt_len = len(tokenizer(rows[i]["prompt"])["input_ids"])
        assert all(label == -100 for label in labels[:prompt_len])  # no loss on the prompt
        trained = [t for t, label in zip(ids, labels) if label != -100]
        assert trained == ids[prompt_len:]  # loss on every completion token, eos included
        assert tokenizer.decode(trained) == rows[i]["completion"] + tokenizer.eos_token


def test_cpt_packs_to_at_least_99_percent_and_learns(build, tiny_model, tmp_path):
    out = tmp_path / "cpt"
    body = (f"model_name_or_path: {tiny_model}\ndataset_name: {build}\noutput_dir: {out}\nmax_steps: 10\n"
            "per_device_train_batch_size: 4\nlearning_rate: 0.003\nlogging_steps: 1\nmax_length: 32\n"
            "save_strategy: 'no'\n")
    result = run("train", "cpt", write_config(tmp_path, "cpt", body), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = summary_of(result)
    assert summary["packing"] == "wrapped" and summary["packing_efficiency"] >= 0.99
    import pyarrow.parquet as pq
    from mathforge.trainers.run import build_trainer, prepare

    texts = pq.read_table(build / "cpt").column("text").to_pylist()
    tokenizer = build_trainer(prepare("cpt", tmp_path / "cpt.yaml")).processing_class
    tokens = sum(len(tokenizer(t)["input_ids"]) + 1 for t in texts)  # + eos per document
    sequences = -(-tokens // 32)
    assert summary["packing_efficiency"] == round(tokens / (sequences * 32), 4)  # only the last one is short
    assert summary["final_loss"] < summary["first_loss"] - 0.5
    assert "packing efficiency" in result.stdout


def test_cpt_mixture_by_token_ratio(build, tiny_model, tmp_path):
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"text": f"General math note {i}: the sum of angles in a triangle is 180 "
                                                    f"degrees and {i} plus {i} is {2 * i}."}) + "\n"
                               for i in range(400)))
    body = (f"model_name_or_path: {tiny_model}\ndataset_name: {build}\noutput_dir: {tmp_path / 'mix'}\n"
            "max_steps: 2\nper_device_train_batch_size: 2\nmax_length: 128\nsave_strategy: 'no'\n"
            f"mix_dataset: {general}\nmix_ratio: 0.3\n")
    result = run("train", "cpt", write_config(tmp_path, "mix", body), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    note = next(n for n in summary_of(result)["notes"] if n.startswith("mix: "))
    report = json.loads(note.removeprefix("mix: "))
    assert report["general_documents"] > 0 and abs(report["achieved_ratio"] - 0.3) < 0.05


def test_resume_continues_from_the_saved_step(build, tiny_model, tmp_path):
    out = tmp_path / "resume"
    extra = "save_strategy: steps\nsave_steps: 2\n"
    first = run("train", "sft", write_config(tmp_path, "a", sft_yaml(tiny_model, build, out, extra + "max_steps: 4\n")),
                timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (out / "checkpoint-4").is_dir()
    body = sft_yaml(tiny_model, build, out, extra + "max_steps: 6\nresume_from_checkpoint: true\n")
    second = run("train", "sft", write_config(tmp_path, "b", body), timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = summary_of(second)
    assert summary["resumed_from"].endswith("checkpoint-4") and summary["steps"] == 6
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    logged = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert logged[:4] == [1, 2, 3, 4] and logged[-2:] == [5, 6]  # steps 1-4 from the first run, 5-6 resumed


def test_presets_fill_what_the_yaml_does_not_set(tmp_path, build):
    from mathforge.trainers.config import parse

    config = write_config(tmp_path, "p", f"model_name_or_path: m\ndataset_name: {build}\noutput_dir: o\n"
                                         "preset: rft-paper\nper_device_train_batch_size: 4\nlearning_rate: 1.0e-5\n")
    _, script, training, _ = parse("sft", config, on_cpu=True)
    assert training.num_train_epochs == 3 and training.learning_rate == 1e-5  # the YAML wins over the preset
    assert training.lr_scheduler_type == "cosine" and training.warmup_steps == 0.03 and training.max_length == 512
    assert training.gradient_accumulation_steps == 128 // 4 and script.dataset_config == "sft"
    assert training.bf16 is False and training.gradient_checkpointing is False
    config = write_config(tmp_path, "q", f"model_name_or_path: m\ndataset_name: {build}\noutput_dir: o\n"
                                         "preset: mathgpt-cpt\n")
    _, _, training, _ = parse("cpt", config, on_cpu=True)
    assert training.learning_rate == 1e-4 and training.lr_scheduler_kwargs == {"min_lr": 1e-5}
    assert training.packing and training.dataset_text_field == "text"


@pytest.mark.parametrize("case", ["unknown-key", "bad-ref", "missing-config", "hub-ref"])
def test_bad_input_exits_2_before_any_model_loads(case, build, tmp_path):
    dataset, extra = build, ""
    if case == "unknown-key":
        extra = "learning_rat: 0.1\n"
    elif case == "bad-ref":
        dataset = tmp_path / "no-such-build"
    elif case == "missing-config":
        extra = "dataset_config: chat\n"
    elif case == "hub-ref":
        dataset = "nobody/nothing@v1.0.0"
    body = f"model_name_or_path: {tmp_path / 'no-such-model'}\ndataset_name: {dataset}\noutput_dir: o\n{extra}"
    config = write_config(tmp_path, case, body)
    result = run("train", "sft", config, env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no-such-model" not in result.stderr  # the model was never touched
    expected = {"unknown-key": f"{config}:4: learning_rat: unknown key", "bad-ref": "does not exist",
                "missing-config": "no config 'chat'", "hub-ref": "nobody/nothing@v1.0.0"}[case]
    assert expected in result.stderr


def test_a_command_line_preset_applies_exactly_as_in_the_yaml(tmp_path):
    from mathforge.trainers.config import parse

    base = "model_name_or_path: m\ndataset_name: d\noutput_dir: o\nper_device_train_batch_size: 2\n"
    in_yaml = write_config(tmp_path, "in-yaml", base + "preset: rft-paper\n")
    plain = write_config(tmp_path, "plain", base)
    parsed = [parse("sft", in_yaml, on_cpu=True), parse("sft", plain, ["--preset", "rft-paper"], on_cpu=True),
              parse("sft", plain, ["--preset=rft-paper"], on_cpu=True)]
    # the numbers: global batch 128 / per-device 2 = 64 accumulation steps, max_length 512 (not 1, 1024)
    for margs, _, training, _ in parsed:
        assert margs.preset == "rft-paper" and training.gradient_accumulation_steps == 64
        assert training.max_length == 512 and training.num_train_epochs == 3 and training.learning_rate == 2e-5
    dumps = [(vars(m), vars(s), training.to_dict(), vars(model)) for m, s, training, model in parsed]
    assert dumps[0] == dumps[1] == dumps[2]
    # a key given beside the preset still wins over it, from the YAML and from the command line
    _, _, training, _ = parse("sft", plain, ["--preset", "rft-paper", "--max_length", "300"], on_cpu=True)
    assert training.max_length == 300 and training.gradient_accumulation_steps == 64


@pytest.mark.parametrize("line, override, expected", [
    ("preset: {a: 1}", None, ":4: preset: must be a preset name (rft-paper, mathgpt-cpt), not a mapping ({'a': 1})"),
    ("per_device_train_batch_size: 0", None, ":4: per_device_train_batch_size: must be a positive integer, not 0"),
    ("global_batch_size: -8", None, ":4: global_batch_size: must be a positive integer, not -8"),
    ("dataset_name: [x]", None, ":1: dataset_name: must be a string or null, not a list (['x'])"),
    ("global_batch_size: 12\nper_device_train_batch_size: 8", None,
     ":4: global_batch_size: global_batch_size 12 is not a multiple of per-device batch x processes = 8"),
    ("gradient_accumulation_steps: 0", None, ":4: gradient_accumulation_steps: must be a positive integer, not 0"),
    ("num_train_epochs: {a: 1}", None, ":4: num_train_epochs: must be a number, not a mapping ({'a': 1})"),
    ("", ["--per_device_train_batch_size", "0"],
     ": --per_device_train_batch_size (command line): must be a positive integer, not 0"),
    ("", ["--preset", "nope"], ": --preset (command line): unknown preset 'nope'"),
])
def test_bad_settings_exit_2_with_file_line_and_key(line, override, expected, tmp_path):
    body = "model_name_or_path: m\ndataset_name: d\noutput_dir: o\n" + line + "\n"
    if line.startswith("dataset_name"):
        body = line + "\nmodel_name_or_path: m\noutput_dir: o\n"
    config = write_config(tmp_path, "bad", body)
    result = run("train", "sft", config, *(override or []), timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr[-2000:]
    assert f"error: {config}{expected}" in result.stderr
    assert "Traceback" not in result.stderr
