"""Training overhead: `mathforge train sft` against a bare TRL SFTTrainer script, same data, model and settings.

Data: a mathforge build of GSM8K train (gold rows, from ../shared/data/gsm8k/train.jsonl), its `sft` config.
Model: a tiny Llama (d=128, 4 layers) with a BPE tokenizer, built locally. Both sides run SFTTrainer with the
same SFTConfig values and are timed the same way (wall clock around `trainer.train()`, tokens from
`state.num_input_tokens_seen`, non-padding). Runs alternate A, B, A, B, ... in this one process tree.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"max_steps": 40, "per_device_train_batch_size": 8, "learning_rate": 1e-3, "max_length": 512,
            "logging_steps": 10, "save_strategy": "no", "seed": 0, "bf16": False, "gradient_checkpointing": False,
            "use_cpu": True, "report_to": "none", "dataloader_num_workers": 0}
RECIPE = """name: gsm8k-gold
version: 1.0.0
sources:
  - name: gsm8k
    path: {gold}
stages:
  - type: collect
output:
  dir: {tmp}/builds/{{name}}/{{version}}
"""
BARE = r"""
import json, sys, time
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer
model, files, out, settings = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
ds = load_dataset("parquet", data_files=files, split="train").select_columns(["prompt", "completion"])
tok = AutoTokenizer.from_pretrained(model)
args = SFTConfig(output_dir=out, include_num_input_tokens_seen="non_padding", **settings)
trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model), args=args, train_dataset=ds,
                     processing_class=tok)
started = time.perf_counter()
trainer.train()
seconds = time.perf_counter() - started
tokens = trainer.state.num_input_tokens_seen
print("bare: " + json.dumps({"tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds}))
"""


def mathforge_run(model: Path, build: Path, out: Path, kind: str = "sft") -> dict:
    config = out.with_suffix(".yaml")
    lines = [f"model_name_or_path: {model}", f"dataset_name: {build}", f"output_dir: {out}"]
    lines += [f"{k}: {json.dumps(v)}" for k, v in SETTINGS.items()]
    config.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", "from mathforge.cli import main; main()", "train", kind,
                             str(config)], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(result.stderr)
    summary = json.loads(next(l for l in result.stdout.splitlines() if l.startswith("summary: "))[9:])
    return {"tokens": summary["tokens_seen"], "seconds": summary["seconds"],
            "tokens_per_second": summary["tokens_per_second"], "process_seconds": round(wall, 2),
            "packing_efficiency": summary["packing_efficiency"]}


def bare_run(model: Path, build: Path, out: Path) -> dict:
    files = sorted(str(p) for p in (build / "sft").glob("*.parquet"))
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", BARE, str(model), json.dumps(files), str(out),
                             json.dumps(SETTINGS)], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(result.stderr)
    run = json.loads(next(l for l in result.stdout.splitlines() if l.startswith("bare: "))[6:])
    return {**run, "process_seconds": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gold", default=str(ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from mathforge.testing.tinymodel import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        recipe = tmp / "recipe.yaml"
        recipe.write_text(RECIPE.format(gold=args.gold, tmp=tmp))
        built = subprocess.run([sys.executable, "-c", "from mathforge.cli import main; main()", "build", str(recipe)],
                               capture_output=True, text=True, cwd=ROOT)
        if built.returncode:
            raise SystemExit(built.stderr)
        build = tmp / "builds" / "gsm8k-gold" / "1.0.0"
        model = build_tiny_model(tmp / "model", hidden=128, layers=4)
        runs = {"mathforge": [], "bare": []}
        for i in range(args.repeat):
            for name, fn in (("mathforge", mathforge_run), ("bare", bare_run)):
                run = fn(model, build, tmp / f"{name}-{i}")
                runs[name].append(run)
                print(json.dumps({"run": name, **run}), flush=True)
        cpt = mathforge_run(model, build, tmp / "cpt", kind="cpt")
        print(json.dumps({"run": "mathforge cpt", **cpt}), flush=True)
    medians = {name: statistics.median(r["tokens_per_second"] for r in rs) for name, rs in runs.items()}
    process = {name: statistics.median(r["process_seconds"] for r in rs) for name, rs in runs.items()}
    print(json.dumps({"median_tokens_per_second": medians,
                      "overhead": round(1 - medians["mathforge"] / medians["bare"], 4),
                      "median_process_seconds": process,
                      "process_overhead": round(process["mathforge"] / process["bare"] - 1, 4),
                      "tokens_per_run": runs["bare"][0]["tokens"],
                      "cpt_packing_efficiency": cpt["packing_efficiency"]}))


if __name__ == "__main__":
    main()
