"""Training configs: TRL's own YAML (ScriptArguments, SFTConfig, ModelConfig) plus mathforge keys and presets."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mathforge.errors import InputError, line_map
from mathforge.errors import load_yaml as load_bounded_yaml

# Settings of the papers, one flag away. A key set in the YAML (or on the command line) wins over the preset.
PRESETS = {
    # Yuan et al. 2023 (RFT): 3 epochs, lr 2e-5, cosine, warmup 3 %, global batch 128, max length 512
    "rft-paper": {"num_train_epochs": 3, "learning_rate": 2e-5, "lr_scheduler_type": "cosine", "warmup_steps": 0.03,
                  "max_length": 512, "global_batch_size": 128},
    # MathGPT-8B CPT: peak lr 1e-4, cosine decay to 1e-5
    "mathgpt-cpt": {"learning_rate": 1e-4, "lr_scheduler_type": "cosine_with_min_lr",
                    "lr_scheduler_kwargs": {"min_lr": 1e-5}, "warmup_steps": 0.01},
}
DEFAULT_CONFIG = {"cpt": "cpt", "sft": "sft"}


@dataclass
class MathforgeArguments:
    """Keys mathforge adds to TRL's config (the dataset itself is TRL's `dataset_name` / `dataset_config`)."""

    preset: str | None = field(default=None, metadata={"help": f"One of: {', '.join(PRESETS)}."})
    global_batch_size: int | None = field(default=None, metadata={
        "help": "Sets gradient_accumulation_steps = global / (per-device batch x processes)."})
    mix_dataset: str | None = field(default=None, metadata={
        "help": "CPT only: a general corpus (build path, org/name@version, or a local .jsonl/.parquet with `text`)."})
    mix_config: str = field(default="cpt", metadata={"help": "Config of mix_dataset when it is a mathforge build."})
    mix_ratio: float | None = field(default=None, metadata={
        "help": "CPT only: fraction of training tokens from the problem-solving corpus (e.g. 0.3 for 3:7)."})
    mix_seed: int = 0


def parser():
    from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser

    return TrlParser((MathforgeArguments, ScriptArguments, SFTConfig, ModelConfig))


def load_yaml(path: Path) -> tuple[dict, dict]:
    """The config mapping and, for error messages, the line of every key (the recipe loader's line map)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read config: {exc.strerror}", str(path)) from None
    data, node = load_bounded_yaml(text, str(path))  # no alias bombs, no duplicate keys (the recipe loader's)
    if not isinstance(data, dict):
        raise InputError("a training config is a YAML mapping", str(path), 1)
    return data, line_map(node)


def parse(kind: str, config_path: Path, overrides: list[str] | None = None, on_cpu: bool = True):
    """(mathforge, script, training, model) arguments; any key TRL does not know is an InputError (exit 2)."""
    config, lines = load_yaml(config_path)
    preset = config.get("preset")
    if preset is not None and preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})", str(config_path), key="preset")
    merged = {**PRESETS.get(preset, {}), **cpu_defaults(kind, on_cpu), **config}
    if "env" in merged:
        raise InputError("`env` is not supported here: set environment variables outside", str(config_path), key="env")
    p = parser()
    known = {action.dest for action in p._actions}
    unknown = sorted(k for k in merged if k not in known)
    if unknown:
        first = unknown[0]
        raise InputError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: not a field of TRL's "
                         "ScriptArguments, SFTConfig or ModelConfig, nor a mathforge key", str(config_path),
                         lines.get((first,)), first)
    p.set_defaults_with_config(**merged)
    p.allow_abbrev = False  # `--learning_rat 1` must not silently set learning_rate
    try:
        margs, script, training, model = p.parse_args_into_dataclasses(args=list(overrides or []))
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc), str(config_path)) from None
    except SystemExit:
        raise InputError("invalid command-line override (see the message above)", str(config_path)) from None
    if not script.dataset_name:
        raise InputError("`dataset_name` is required: a build directory or org/name@version", str(config_path),
                         key="dataset_name")
    if not model.model_name_or_path:
        raise InputError("`model_name_or_path` is required", str(config_path), key="model_name_or_path")
    script.dataset_config = script.dataset_config or DEFAULT_CONFIG[kind]
    if kind == "sft" and (margs.mix_dataset or margs.mix_ratio is not None):
        raise InputError("mix_dataset / mix_ratio are for `train cpt`", str(config_path), key="mix_dataset")
    if (margs.mix_dataset is None) != (margs.mix_ratio is None):
        raise InputError("give both mix_dataset and mix_ratio (or neither)", str(config_path), key="mix_ratio")
    if margs.mix_ratio is not None and not 0 < margs.mix_ratio < 1:
        raise InputError("mix_ratio is a fraction between 0 and 1", str(config_path), key="mix_ratio")
    apply_global_batch(margs, training)
    return margs, script, training, model


def cpu_defaults(kind: str, on_cpu: bool) -> dict:
    """TRL's SFTConfig defaults assume a GPU (bf16, gradient checkpointing, padding-free bfd packing)."""
    defaults = {"report_to": "none"}
    if on_cpu:
        defaults.update(bf16=False, gradient_checkpointing=False, use_cpu=True)
    if kind == "cpt":
        defaults.update(packing=True, dataset_text_field="text",
                        packing_strategy="wrapped" if on_cpu else "bfd")
    return defaults


def apply_global_batch(margs: MathforgeArguments, training) -> None:
    if margs.global_batch_size is None:
        return
    per_step = training.per_device_train_batch_size * max(training.world_size, 1)
    if margs.global_batch_size % per_step:
        raise InputError(f"global_batch_size {margs.global_batch_size} is not a multiple of per-device batch x "
                         f"processes = {per_step}", key="global_batch_size")
    training.gradient_accumulation_steps = margs.global_batch_size // per_step
