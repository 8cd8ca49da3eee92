"""`mathforge train cpt|sft CONFIG.yaml`: a short top-down main over TRL's configs and SFTTrainer."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from mathforge.errors import InputError
from mathforge.outputs import check_place
from mathforge.trainers.config import parse
from mathforge.trainers.data import load_config, load_general, mix_by_tokens, resolve_config


@dataclass
class Plan:
    """Everything a run needs, checked before any model is loaded."""

    kind: str
    config_path: Path
    margs: object
    script: object
    training: object
    model_args: object
    dataset_dir: Path
    manifest: dict
    files: list[str]
    notes: list[str] = field(default_factory=list)


def on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def prepare(kind: str, config_path: str | Path, overrides: list[str] | None = None) -> Plan:
    """Parse TRL's YAML + mathforge keys, resolve the dataset and its config. Raises InputError (exit 2)."""
    config_path = Path(config_path)
    margs, script, training, model_args = parse(kind, config_path, overrides, on_cpu())
    inputs = [("model_name_or_path", model_args.model_name_or_path), ("dataset_name", script.dataset_name),
              ("mix_dataset", margs.mix_dataset)]
    check_place(training.output_dir, [(k, v) for k, v in inputs if v and Path(v).exists()], str(config_path),
                key="output_dir")
    root, manifest, files = resolve_config(script.dataset_name, script.dataset_config)
    check_methods(files, margs.methods, script.dataset_name)
    if margs.mix_dataset:
        load_general(margs.mix_dataset, margs.mix_config)  # resolves (and fails) before the model loads
    return Plan(kind, config_path, margs, script, training, model_args, root, manifest, files)


def build_trainer(plan: Plan):
    """Tokenizer, model, dataset (mixed for CPT if asked) and TRL's SFTTrainer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    args, model_args = plan.training, plan.model_args
    args.include_num_input_tokens_seen = "non_padding"
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset = select_methods(load_config(plan.files), plan.margs.methods, plan.notes)
    if plan.kind == "cpt":
        dataset = dataset.select_columns(["text"])
        if plan.margs.mix_dataset:
            general = load_general(plan.margs.mix_dataset, plan.margs.mix_config)
            count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
            dataset, report = mix_by_tokens(dataset, general, plan.margs.mix_ratio, count, plan.margs.mix_seed)
            plan.notes.append(f"mix: {json.dumps(report)}")
    else:
        keep = [c for c in ("prompt", "completion", "messages") if c in dataset.column_names]
        dataset = dataset.select_columns(keep)
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision,
                                                 dtype=model_args.dtype or "auto")
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def check_methods(files: list[str], methods: list[str] | None, ref: str) -> None:
    """Every method asked for has rows in the config (read from its Parquet `method` column, before any model)."""
    if not methods:
        return
    import pyarrow.parquet as pq

    if any("method" not in pq.read_schema(f).names for f in files):
        raise InputError("`methods` needs a config with a `method` column (cpt, sft, messages)", ref, key="methods")
    present = {m for f in files for m in pq.read_table(f, columns=["method"]).column("method").unique().to_pylist()}
    missing = [m for m in methods if m not in present]
    if missing:
        raise InputError(f"no rows of method(s) {', '.join(missing)} (the config has: {', '.join(sorted(present))})",
                         ref, key="methods")


def select_methods(dataset, methods: list[str] | None, notes: list[str]):
    """The rows of `methods` only (None: all), counted in the run's notes."""
    if not methods:
        return dataset
    wanted, total = set(methods), len(dataset)
    dataset = dataset.filter(lambda method: method in wanted, input_columns="method")
    notes.append(f"methods {', '.join(methods)}: {len(dataset)} of {total} rows")
    return dataset


def packing_efficiency(trainer) -> float | None:
    """Non-padding fraction of the training sequences as packed (None when not packing)."""
    if not trainer.args.packing:
        return None
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    return sum(lengths) / (len(lengths) * trainer.args.max_length) if lengths else None


def train(plan: Plan) -> dict:
    """Train (resuming from the last checkpoint if asked), save model + tokenizer + card, return the summary."""
    from transformers.trainer_utils import get_last_checkpoint

    trainer = build_trainer(plan)
    resume = plan.training.resume_from_checkpoint
    if resume in (True, "True", "true", "last"):
        resume = get_last_checkpoint(plan.training.output_dir)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume or None)
    seconds = time.perf_counter() - started
    trainer.save_model(plan.training.output_dir)
    trainer.processing_class.save_pretrained(plan.training.output_dir)
    summary = summarize(plan, trainer, result, seconds, resume)
    write_card(plan, summary, trainer)
    if plan.training.push_to_hub:
        trainer.create_model_card = lambda *args, **kwargs: None  # TRL's card would replace the lineage card
        trainer.push_to_hub(commit_message=f"mathforge {plan.kind} on {plan.script.dataset_name}")
    return summary


def summarize(plan: Plan, trainer, result, seconds: float, resumed) -> dict:
    state = trainer.state
    tokens = int(state.num_input_tokens_seen or 0)
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    efficiency = packing_efficiency(trainer)
    return {"kind": plan.kind, "dataset": plan.script.dataset_name, "dataset_config": plan.script.dataset_config,
            "dataset_version": plan.manifest["version"], "dataset_fingerprint": plan.manifest["fingerprint"],
            "model": plan.model_args.model_name_or_path, "steps": state.global_step,
            "resumed_from": str(resumed) if resumed else None, "tokens_seen": tokens,
            "tokens_per_second": round(tokens / seconds, 1) if seconds else None, "seconds": round(seconds, 2),
            "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
            "train_loss": result.training_loss,
            "packing": plan.training.packing_strategy if plan.training.packing else "off",
            "packing_efficiency": round(efficiency, 4) if efficiency is not None else None,
            "completion_only_loss": plan.kind == "sft" and plan.training.completion_only_loss is not False,
            "methods": plan.margs.methods, "notes": plan.notes}


def write_card(plan: Plan, summary: dict, trainer=None) -> None:
    """README.md of the trained model: TRL's model card (when a trainer is given) with mathforge's lineage merged
    in: `base_model`, `datasets` (a Hub build), tags, and the dataset's version, fingerprint and config, the training
    config and the run's summary; plus mathforge-training.json."""
    from huggingface_hub import ModelCard, ModelCardData

    out = Path(plan.training.output_dir)
    (out / "mathforge-training.json").write_text(json.dumps(summary, indent=1) + "\n")
    base = plan.model_args.model_name_or_path
    hub_base = base if _is_hub_id(base) else None
    dataset = plan.script.dataset_name
    hub_dataset = dataset.split("@", 1)[0] if _is_hub_id(dataset.split("@", 1)[0]) else None
    text = ""
    if trainer is not None:
        try:  # TRL's card: framework versions, how to use, citations of TRL itself
            trainer.create_model_card(model_name=out.name, dataset_name=hub_dataset, tags=["mathforge"])
            text = ModelCard.load(out / "README.md").text
            # TRL names a local base model "[None](https://huggingface.co/None)": name it as it was given
            text = text.replace("[None](https://huggingface.co/None)", f"`{base}`")
        except Exception:  # TRL's card is a courtesy; the lineage below is what must be there
            text = ""
    data = ModelCardData(base_model=hub_base, datasets=[hub_dataset] if hub_dataset else None,
                         library_name="transformers",
                         tags=sorted({"mathforge", plan.kind, "trl", "math",
                                      *(["rft"] if "rft" in plan.manifest.get("recipe", {}).get("name", "") else [])}))
    lines = [f"# {out.name}", "",
             f"Trained with `mathforge train {plan.kind}` (TRL SFTTrainer) from `{base}`.", "",
             "## Training data (mathforge lineage)", "",
             "| | |", "|---|---|",
             f"| dataset | `{dataset}` config `{summary['dataset_config']}` |",
             f"| dataset version | {summary['dataset_version']} (tag `v{summary['dataset_version']}`) |",
             f"| dataset fingerprint | `{summary['dataset_fingerprint']}` |",
             f"| base model | `{base}` |",
             f"| steps | {summary['steps']} |", f"| tokens seen | {summary['tokens_seen']:,} |",
             f"| tokens/s | {summary['tokens_per_second']} |", f"| final loss | {summary['final_loss']} |",
             f"| packing | {summary['packing']} (efficiency {summary['packing_efficiency']}) |", "",
             "The dataset fingerprint covers the recipe, its inputs and every file of the build: "
             f"`mathforge pull {hub_dataset or dataset}@v{summary['dataset_version']}` checks it.", "",
             "Training config (TRL's fields as run):", "", "```yaml", _training_yaml(plan), "```", "",
             "Training arguments are in `training_args.bin`; the summary in `mathforge-training.json`.", ""]
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n" + "\n".join(lines) + ("\n" + text if text else ""))
    card.save(out / "README.md")


def _is_hub_id(name: str) -> bool:
    """`org/name` that is not a local path."""
    return name.count("/") == 1 and not Path(name).exists() and not name.startswith((".", "/", "~"))


def _training_yaml(plan: Plan) -> str:
    import yaml

    keys = ("num_train_epochs", "max_steps", "learning_rate", "lr_scheduler_type", "warmup_steps",
            "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "packing", "seed", "bf16")
    values = {k: getattr(plan.training, k, None) for k in keys}
    values = {k: (v.value if hasattr(v, "value") else v) for k, v in values.items() if v is not None}
    return yaml.safe_dump({"preset": plan.margs.preset, **values}, sort_keys=False).strip()
