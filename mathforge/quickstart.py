"""`mathforge quickstart`: easy synthetic problems -> SFT -> RFT corpus from its samples -> SFT on gold + RFT -> eval both."""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
import yaml

from mathforge.builders.publish.overwrite import QUICKSTART_MARKER, check_replace
from mathforge.outputs import check_place
from mathforge.testing import synthetic

PROMPT = "Question: {{ question }}\nAnswer:"


@dataclass
class Settings:
    """Sizes of the miniature; the defaults are the full run (about 6 CPU minutes), `quick()` the CI form."""

    train_problems: int = 2000
    heldout: int = 300
    hidden: int = 128
    layers: int = 4
    steps: int = 400
    rft_steps: int | None = None  # None: as many epochs as the SFT model (the paper's protocol), so more steps
    batch: int = 32
    learning_rate: float = 2e-3
    k: int = 8
    temperature: float = 0.7
    eval_samples: int = 4
    max_tokens: int = 40
    seed: int = 0
    gold_order: str = "random"  # or "first": every gold solution in left-to-right order, other orders left to RFT
    backend: str = "batched"  # the RFT sampling's backend: batched, or vllm (`python`: its interpreter)
    python: str | None = None

    @property
    def heads(self) -> int:
        """4 heads; for vLLM heads of 32 (its CPU build serves no head size under 32): the same 4 at d=128,
        2 in the quick form's d=64."""
        return max(1, self.hidden // 32) if self.backend == "vllm" else 4

    @classmethod
    def quick(cls, **changes) -> "Settings":
        return cls(**{**dict(train_problems=120, heldout=40, hidden=64, layers=2, steps=30, k=4, eval_samples=2),
                      **changes})


def write_problems(path: Path, rows: list[dict]) -> None:
    with open(path, "wb") as handle:
        for row in rows:
            handle.write(orjson.dumps({"question": row["question"], "answer": row["answer"]}) + b"\n")


def sampler(s: Settings, model: Path) -> dict:
    """The RFT sampling model's recipe entry; through vLLM, engine flags that also suit its CPU build: a small memory
    share, the tiny model's context, float32 as the batched backend computes, no chunked prefill (vLLM 0.32.0's CPU
    build dies when it splits the prefill of a seeded request)."""
    entry = {"name": "sft", "backend": s.backend, "model": str(model)}
    if s.backend == "vllm":
        entry["server_args"] = {"gpu-memory-utilization": 0.15, "max-model-len": 1024, "dtype": "float32",
                                "enable-chunked-prefill": False}
        if s.python:
            entry["python"] = s.python
    return entry


def recipe_yaml(name: str, version: str, train: Path, out: Path, s: Settings, model: Path | None) -> dict:
    """The build recipe: gold only (no model), or gold + RFT samples of `model` (k, T, the paper's dedup)."""
    stages = []
    if model is not None:
        stages.append({"type": "sample", "k": s.k, "temperature": s.temperature, "max_tokens": s.max_tokens,
                       "seed": s.seed, "concurrency": 256, "checkpoint_every": 1000,
                       "prompt": {"template": PROMPT},
                       "models": [sampler(s, model)]})
    stages.append({"type": "collect", "dedup": "paper"})
    return {"name": name, "version": version,
            "description": "mathforge quickstart: easy synthetic add/sub problems" +
                           (f", gold + RFT samples (k={s.k}, T={s.temperature:g}) of the SFT model" if model else
                            ", gold solutions only"),
            "sources": [{"name": "train", "path": str(train)}], "stages": stages,
            "publish": {"methods": ["gold", "rft"], "tags": ["quickstart", "synthetic"],
                        "templates": {"prompt": PROMPT, "completion": " {{ solution }}"}},
            "output": {"dir": str(out / "builds" / "{name}" / "{version}"),
                       "work_dir": str(out / "builds" / "{name}" / ".work" / "{version}"), "overwrite": True}}


def train_yaml(model: Path, dataset: Path, out: Path, s: Settings, steps: int | None = None) -> dict:
    """TRL's own config keys: SFTTrainer on the build's `sft` config, the same schedule for both models."""
    return {"model_name_or_path": str(model), "dataset_name": str(dataset), "dataset_config": "sft",
            "output_dir": str(out), "max_steps": steps or s.steps, "per_device_train_batch_size": s.batch,
            "learning_rate": s.learning_rate, "lr_scheduler_type": "cosine", "warmup_steps": 0.05,
            "max_length": 128, "logging_steps": max(1, s.steps // 8), "save_strategy": "no", "seed": s.seed,
            "data_seed": s.seed, "disable_tqdm": True}


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def build(recipe_path: Path, console):
    from mathforge.builders.build import run_recipe
    from mathforge.builders.recipe import load_recipe

    return run_recipe(load_recipe(recipe_path), console=console)


def train(config: Path, log: Path, kind: str = "sft") -> dict:
    """`mathforge train sft|cpt CONFIG`, its log (TRL's loss lines, progress bars) in `log` instead of the terminal."""
    from mathforge.trainers.run import prepare
    from mathforge.trainers.run import train as run_training

    plan = prepare(kind, config)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        return run_training(plan)


def evaluate(model: Path, heldout: Path, out: Path, max_tokens: int, seed: int, n: int = 1, temperature: float = 0.0,
             console=None) -> dict:
    """`mathforge eval` with the transformers backend and PROMPT (greedy unless `n` and `temperature` say)."""
    from mathforge.eval.run import evaluate as run_eval

    return run_eval(str(model), str(heldout), out, n=n, temperature=temperature, backend="transformers",
                    max_tokens=max_tokens, template=PROMPT, seed=seed, concurrency=256, console=console)


def standard_error(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n) if n else 0.0


def fit(out: Path, name: str, init: Path, corpus: Path, steps: int, s: Settings, timings: dict) -> dict:
    """Train `models/<name>` from the shared initial weights on a corpus's `sft` config for `steps` steps."""
    t = time.perf_counter()
    config = write_yaml(out / "configs" / f"{name}.yaml", train_yaml(init, corpus, out / "models" / name, s, steps))
    summary = train(config, out / "logs" / f"train-{name}.log")
    timings[f"train {name}"] = time.perf_counter() - t
    return summary


def model_row(label: str, name: str, rows: int, trained: dict, greedy: dict, sampled: dict, s: Settings) -> dict:
    acc, k = greedy["accuracy"], str(s.eval_samples)
    return {"model": label, "dir": name, "steps": trained["steps"], "training_rows": rows, "accuracy": acc,
            "se": round(standard_error(acc, greedy["questions"]), 4),
            "questions": greedy["questions"], "pass_at_k": sampled["pass_at_k"][k], "maj_at_k": sampled["maj_at_k"][k],
            "distinct_paths": sampled["distinct_paths_mean"], "train_seconds": trained["seconds"]}


def run(out: Path, s: Settings, overwrite: bool = False, console=None) -> dict:
    """The whole loop; every number in the returned summary (and the printed table) is measured here."""
    from mathforge.testing.tinymodel import build_tiny_model

    check_place(out, key="--out")
    check_replace(out, overwrite, ("quickstart",), key="--out")  # only a previous quickstart's directory goes
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out)
    started = time.perf_counter()
    say = (lambda text: console.print(f"[bold]quickstart[/bold] {text}")) if console else (lambda text: None)
    data = out / "data"
    data.mkdir(parents=True)
    (out / QUICKSTART_MARKER).write_text("written by `mathforge quickstart`: --overwrite may replace this directory\n")
    train_rows = synthetic.easy_problems(s.train_problems, seed=s.seed, gold_order=s.gold_order)
    held = synthetic.easy_problems(s.heldout, seed=s.seed + 10_000, exclude={r["question"] for r in train_rows})
    write_problems(data / "train.jsonl", train_rows)
    write_problems(data / "heldout.jsonl", held)
    texts = [PROMPT.replace("{{ question }}", r["question"]) + " " + sol for r in train_rows for sol in r["solutions"]]
    init = build_tiny_model(out / "models" / "init", hidden=s.hidden, layers=s.layers, heads=s.heads, seed=s.seed,
                            texts=texts)
    say(f"{len(train_rows)} training / {len(held)} held-out problems, tiny Llama d={s.hidden} x {s.layers} layers")

    gold = build(write_yaml(out / "recipes" / "gold.yaml", recipe_yaml("quickstart", "0.1.0", data / "train.jsonl",
                                                                      out, s, None)), console)
    say(f"gold corpus: {gold.out_dir}")
    timings: dict[str, float] = {}
    sft = fit(out, "sft", init, gold.out_dir, s.steps, s, timings)
    say(f"SFT model: {sft['steps']} steps, loss {sft['first_loss']:.3f} -> {sft['final_loss']:.3f}")

    t = time.perf_counter()
    rft = build(write_yaml(out / "recipes" / "rft.yaml", recipe_yaml("quickstart", "1.0.0", data / "train.jsonl",
                                                                    out, s, out / "models" / "sft")), console)
    timings["sample + build rft corpus"] = time.perf_counter() - t
    say(f"RFT corpus: {rft.out_dir}")
    rft_steps = s.rft_steps or round(s.steps * corpus_rows(rft.out_dir) / corpus_rows(gold.out_dir))
    arms = [("SFT (gold)", "sft", gold.out_dir, sft),
            ("RFT (gold + RFT)", "rft", rft.out_dir, fit(out, "rft", init, rft.out_dir, rft_steps, s, timings))]
    if rft_steps != s.steps:  # the RFT model trained longer: the same longer run on gold alone tells how much of
        arms.append((f"SFT (gold), {rft_steps} steps", "sft-long", gold.out_dir,  # the gain is only compute
                     fit(out, "sft-long", init, gold.out_dir, rft_steps, s, timings)))
    rows = []
    for label, name, corpus, trained in arms:
        t = time.perf_counter()
        greedy = evaluate(out / "models" / name, data / "heldout.jsonl", out / "eval" / f"{name}-greedy",
                          s.max_tokens, s.seed, 1, 0.0, console)
        sampled = evaluate(out / "models" / name, data / "heldout.jsonl", out / "eval" / f"{name}-sampled",
                           s.max_tokens, s.seed, s.eval_samples, s.temperature, console)
        timings[f"eval {name}"] = time.perf_counter() - t
        rows.append(model_row(label, name, corpus_rows(corpus), trained, greedy, sampled, s))
    stats = json.loads((rft.out_dir / "stats.json").read_text())
    summary = {"settings": asdict(s), "models": rows, "corpus": str(rft.out_dir), "gold_corpus": str(gold.out_dir),
               "rft_corpus_stats": {k: stats.get(k) for k in ("gold_rows", "samples", "correct", "distinct")},
               "timings": {k: round(v, 1) for k, v in timings.items()},
               "seconds": round(time.perf_counter() - started, 1)}
    (out / "quickstart.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def corpus_rows(build_dir: Path) -> int:
    manifest = json.loads((build_dir / "manifest.json").read_text())
    return manifest["rows"]["sft"]
