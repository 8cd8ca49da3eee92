"""Training configs: TRL's own YAML (ScriptArguments, SFTConfig, ModelConfig) plus mathforge keys and presets."""
from __future__ import annotations

import enum
import types
import typing
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
    methods: list[str] | None = field(default=None, metadata={
        "help": "Train only on the rows of these methods (the config's `method` column), e.g. gold tutor."})


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
    file, overrides = str(config_path), list(overrides or [])
    where = Where(file, lines, overrides)
    preset = cli_preset(overrides)  # `--preset` on the command line applies exactly as `preset:` in the YAML
    if preset is None:
        preset = config.get("preset")
    if preset is not None and not isinstance(preset, str):
        raise InputError(f"must be a preset name ({', '.join(PRESETS)}), not {yaml_kind(preset)} ({preset!r:.60})",
                         *where("preset"))
    if preset is not None and preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})", *where("preset"))
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
    check_types(config, where)
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
    apply_global_batch(margs, training, where, preset)
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


class Where:
    """(file, line, key) of a setting for an InputError: the command line's `--key` when it was given there, else
    the YAML line of the key (or of `preset:` when the preset set it)."""

    def __init__(self, file: str, lines: dict, overrides: list[str]):
        self.file, self.lines, self.overrides = file, lines, overrides

    def __call__(self, key: str, preset: str | None = None) -> tuple:
        if any(arg == f"--{key}" or arg.startswith(f"--{key}=") for arg in self.overrides):
            return self.file, None, f"--{key} (command line)"
        if (key,) not in self.lines and key in PRESETS.get(preset, {}):
            return self.file, self.lines.get(("preset",)), f"{key} (preset {preset})"
        return self.file, self.lines.get((key,)), key


def cli_preset(overrides: list[str]) -> str | None:
    """The value of `--preset X` / `--preset=X` among the command-line overrides (the last one wins, as argparse)."""
    preset = None
    for i, arg in enumerate(overrides):
        if arg == "--preset":
            if i + 1 == len(overrides):
                raise InputError("--preset needs a value", key="--preset")
            preset = overrides[i + 1]
        elif arg.startswith("--preset="):
            preset = arg.split("=", 1)[1]
    return preset


def field_types() -> dict:
    """Every config key's declared type (mathforge's, ScriptArguments', SFTConfig's, ModelConfig's)."""
    import dataclasses

    from trl import ModelConfig, ScriptArguments, SFTConfig

    declared = {}
    for cls in (MathforgeArguments, ScriptArguments, SFTConfig, ModelConfig):
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # an unresolvable annotation: the declared forms still say most
            hints = {}
        declared.update({f.name: hints.get(f.name, f.type) for f in dataclasses.fields(cls)})
    return declared


SCALARS = (str, int, float, bool)


def _parses(kind, value) -> bool:
    try:
        kind(value)
        return True
    except ValueError:
        return False


def accepts(tp, value) -> bool | None:
    """Whether a YAML value fits a declared type as TRL's parser takes it (a string default is converted by the
    field's type, so `"8"` is an integer and a string field takes any scalar, `resume_from_checkpoint: true`
    included); None where the type is not one YAML spells (no judgement)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is typing.Any or isinstance(tp, (str, typing.TypeVar)):
        return None
    if tp is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        verdicts = [accepts(arg, value) for arg in args]
        return True if any(verdicts) else None if None in verdicts else False
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple, set) or tp in (list, tuple, set):
        return isinstance(value, list) and (not args or all(accepts(args[0], v) is not False for v in value))
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if tp is bool:
        return isinstance(value, (bool, str))
    if tp in (int, float):
        if isinstance(value, str):
            return _parses(tp, value)
        return isinstance(value, int if tp is int else (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, SCALARS)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return isinstance(value, tp) or value in {member.value for member in tp}
    return None


def describe(tp) -> str:
    """A declared type in words: `a string or null`, `an integer`, `a list of strings`, ..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(describe(arg) for arg in args))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (list, tuple, set) or tp in (list, tuple, set):
        return f"a list of {describe(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(member.value) for member in tp)
    return {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "a string",
            dict: "a mapping"}.get(origin or tp, getattr(tp, "__name__", str(tp)))


def yaml_kind(value) -> str:
    return ("null" if value is None else "true/false" if isinstance(value, bool) else "an integer"
            if isinstance(value, int) else "a number" if isinstance(value, float) else "a string"
            if isinstance(value, str) else "a list" if isinstance(value, list) else "a mapping"
            if isinstance(value, dict) else type(value).__name__)


def check_types(config: dict, where: Where) -> None:
    """Every YAML value against its key's declared type: TRL's parser takes YAML values as they are, so `[x]` for
    a string or a mapping for a number would surface as a traceback deep in training."""
    declared = field_types()
    for key, value in config.items():
        if key in declared and accepts(declared[key], value) is False:
            shown = repr(value)
            raise InputError(f"must be {describe(declared[key])}, not {yaml_kind(value)} "
                             f"({shown if len(shown) <= 60 else shown[:57] + '...'})", *where(key))


def apply_global_batch(margs: MathforgeArguments, training, where: Where, preset: str | None) -> None:
    """Batch sizes and accumulation are positive; global_batch_size is a multiple of per-device batch x processes
    and sets gradient_accumulation_steps from it."""
    for key, value in (("per_device_train_batch_size", training.per_device_train_batch_size),
                       ("per_device_eval_batch_size", training.per_device_eval_batch_size),
                       ("gradient_accumulation_steps", training.gradient_accumulation_steps),
                       ("global_batch_size", margs.global_batch_size)):
        if value is not None and value < 1:
            raise InputError(f"must be a positive integer, not {value}", *where(key, preset))
    if margs.global_batch_size is None:
        return
    per_step = training.per_device_train_batch_size * max(training.world_size, 1)
    if margs.global_batch_size % per_step:
        raise InputError(f"global_batch_size {margs.global_batch_size} is not a multiple of per-device batch x "
                         f"processes = {per_step}", *where("global_batch_size", preset))
    training.gradient_accumulation_steps = margs.global_batch_size // per_step
