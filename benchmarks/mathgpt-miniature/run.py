"""MathGPT's synthesis methods in miniature: a real tiny student, a competent teacher, every arm paired by seed.

Problems: mathforge.testing.multipath (3-6 step word problems with several valid step orders; difficulty = steps).
The teacher is mathforge.testing.teacher.CompetentTeacher served on 127.0.0.1 over the OpenAI chat protocol: it
answers the synthesis stages' own prompts from exact knowledge of each problem, and its replies go through the
stages' own checks. Per seed (the seed sets the initial weights and the data order; the problems are the same):

  1. the student: a tiny model from the seed's initial weights, SFT on the gold solutions (`student_steps`);
  2. one `mathforge build`: the student samples k solutions per training problem (sample stage), then tutor,
     diversify, expand and retrospect run with the teacher, collect verifies, and one `mix-<arm>` config per arm
     holds the CPT texts of that arm at the same token budget (gold alone repeated for the control; gold + the
     method's rows, each repeated up to `max_repeat` passes where short): control, tutorship, diversification,
     expansion, retrospection;
  3. every arm trains from the seed's initial weights for the same `steps` (CPT packs, so every arm also sees the
     same tokens: steps x batch x max_length); SFT (completion-only) for control (gold rows) and tutorship (gold +
     tutor rows), the same steps;
  4. every model is evaluated greedily on `test_problems` held-out problems: accuracy +- binomial SE, by difficulty
     (3 / 4 / 5 / 6 steps), and the family's stricter checked accuracy (every annotation right, every operand given
     or computed).

Each arm is compared with the control paired by seed (same initial weights, same student); the table reports the
mean paired difference and its standard error across seeds: an effect counts only beyond two of those. Run from the
repository root:

    HF_HUB_OFFLINE=1 python benchmarks/mathgpt-miniature/run.py --out /tmp/mathgpt-mini [--quick] [--seeds 0 1 2 3]
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mathforge.quickstart import PROMPT, build, evaluate, standard_error, train, write_yaml
from mathforge.testing import multipath
from mathforge.testing.fake_openai import FakeOpenAI
from mathforge.testing.miniature import (Phases, checked_accuracy, command, comparison_table, difficulty, keyed,
                                         paired_difference, phase_lines, settings, write_rows, write_summary)
from mathforge.testing.teacher import CompetentTeacher

ARMS = {"control": None, "tutorship": "tutor", "diversification": "diversify", "expansion": "expand",
        "retrospection": "retrospect"}
SFT_ARMS = {"control": ["gold"], "tutorship": ["gold", "tutor"]}
DIFFICULTIES = (3, 4, 5, 6)


@dataclass
class Settings:
    """Sizes of the benchmark; the defaults are the full run, `quick()` the smoke form."""

    train_problems: int = 1000
    test_problems: int = 1000
    problem_seed: int = 4321  # the problems are the same for every seed
    hidden: int = 128
    layers: int = 2           # 4 layers (the RFT miniature's) would double every training: 2 seeds, not 4, in 90 min
    student_steps: int = 300
    steps: int = 400
    warmup: int = 10
    batch: int = 32
    learning_rate: float = 1e-3
    max_length: int = 192     # packed rows; a text is 72-157 tokens (median 87, retrospect 135)
    k: int = 4                # student samples per training problem
    temperature: float = 1.0
    attempts: int = 2         # tutor: wrong attempts reviewed per problem
    per_problem: int = 1      # diversify / expand / retrospect rows asked per problem
    max_repeat: int = 8
    max_tokens: int = 96
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])

    @classmethod
    def quick(cls, **changes) -> "Settings":
        return cls(**{**dict(train_problems=12, test_problems=16, hidden=32, layers=1, student_steps=4, steps=4,
                             batch=4, max_length=128, k=2, seeds=[0, 1]), **changes})


def stratified(n: int, seed: int, exclude: set[str]) -> list[dict]:
    """n distinct problems, as many of each difficulty (3 / 4 / 5 / 6 steps; the family draws 4 steps 87 % of the
    time, 6 steps 1 %), none in `exclude`, in the order drawn."""
    import random

    rng, seen, per_level = random.Random(seed), set(exclude), -(-n // len(DIFFICULTIES))
    picked: dict[int, list[dict]] = {d: [] for d in DIFFICULTIES}
    while sum(min(len(v), per_level) for v in picked.values()) < n:
        row = multipath.problem(rng)
        level = difficulty(row)
        if row["question"] not in seen and level in picked and len(picked[level]) < per_level:
            seen.add(row["question"])
            picked[level].append(row)
    rows = [row for level in DIFFICULTIES for row in picked[level]]
    return rows[:n]


def tokens_of(tokenizer_dir: Path, texts: list[str]) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


def recipe(name: str, train_file: Path, out: Path, s: Settings, student: Path | None, teacher_url: str | None,
           budget: int, tokenizer: Path, seed: int) -> dict:
    """Gold only (student None), or the synthesis build: the student's samples, the four methods with the teacher,
    collect, and one mix per arm at the same token budget."""
    stages: list[dict] = []
    if student is not None:
        teacher = {"name": "teacher", "backend": "endpoint", "model": "teacher", "base_url": teacher_url}
        stages += [
            {"type": "sample", "k": s.k, "temperature": s.temperature, "max_tokens": s.max_tokens, "seed": seed,
             "concurrency": 64, "prompt": {"template": PROMPT},
             "models": [{"name": "student", "backend": "batched", "model": str(student)}]},
            {"type": "tutor", "student": "student", "attempts": s.attempts, "teacher": teacher, "seed": seed},
            {"type": "diversify", "k": s.per_problem, "model": teacher, "seed": seed},
            {"type": "expand", "k": s.per_problem, "solutions": 4, "agree": 3, "model": teacher, "seed": seed},
            {"type": "retrospect", "k": s.per_problem, "model": teacher, "seed": seed}]
    stages.append({"type": "collect", "dedup": "paper"})
    if student is not None:
        for arm, method in ARMS.items():
            stages.append({"type": "mix", "name": arm, "tokenizer": str(tokenizer),
                           "ratio": {"gold": 1.0} if method is None else {"gold": 1.0, method: 1.0},
                           "token_budget": budget, "max_repeat": s.max_repeat, "seed": seed})
    return {"name": name, "version": "1.0.0",
            "description": "mathgpt-miniature: multi-path problems" +
                           (", a tiny student's samples, a competent teacher, five arms" if student else ", gold"),
            "sources": [{"name": "train", "path": str(train_file)}], "stages": stages,
            "publish": {"methods": ["gold", "rft", "tutor", "diversify", "expand", "retrospect"],
                        "tags": ["mathgpt-miniature", "synthetic"],
                        "templates": {"prompt": PROMPT, "completion": " {{ solution }}",
                                      "text": PROMPT + " {{ solution }}"}},  # CPT texts framed as the test prompt
            "output": {"dir": str(out / "builds" / "{name}"), "work_dir": str(out / "builds" / ".work" / "{name}"),
                       "overwrite": True}}


def train_config(model: Path, dataset: Path, config: str, out: Path, s: Settings, steps: int, seed: int,
                 methods: list[str] | None = None) -> dict:
    """TRL's keys: constant learning rate after a fixed warmup, no checkpoints (fixed-step comparisons)."""
    return {"model_name_or_path": str(model), "dataset_name": str(dataset), "dataset_config": config,
            "output_dir": str(out), "max_steps": steps, "per_device_train_batch_size": s.batch,
            "learning_rate": s.learning_rate, "lr_scheduler_type": "constant_with_warmup",
            "warmup_steps": min(s.warmup, steps), "max_length": s.max_length, "logging_steps": max(1, steps // 4),
            "seed": seed, "data_seed": seed, "disable_tqdm": True, "save_strategy": "no",
            **({"methods": methods} if methods else {})}


def confirmed(build_dir: Path, rows: dict[str, dict]) -> dict:
    """Per method, the accepted rows of training problems that the family's checker confirms (correct, grounded);
    expand's rows are new problems, checked by the teacher's agreement only."""
    import pyarrow.parquet as pq

    table = pq.read_table(build_dir / "data", columns=["question", "solution", "method"]).to_pylist()
    out: dict[str, dict] = {}
    for r in table:
        problem = rows.get(r["question"])
        entry = out.setdefault(r["method"], {"rows": 0, "checked": 0, "confirmed": 0})
        entry["rows"] += 1
        if problem is None:
            continue
        entry["checked"] += 1
        lines = r["solution"].split("\n")
        back = next((i for i, line in enumerate(lines) if line.startswith("[back]")), None)
        if back is not None:  # retrospect: the path without its planted error and the [back] line naming it
            lines = lines[:max(back - 1, 0)] + lines[back + 1:]
        verdict = multipath.check(problem, "\n".join(lines), problem["_keys"])
        entry["confirmed"] += verdict.correct and verdict.grounded
    return out


def run_seed(seed: int, out: Path, data: Path, s: Settings, teacher_url: str, train_rows: dict, test_rows: dict,
             texts: list[str]) -> dict:
    """One seed: initial weights, student, the synthesis build, every arm trained and tested."""
    from mathforge.testing.tinymodel import build_tiny_model

    phases, out = Phases(), out / f"seed-{seed}"
    init = phases("init", build_tiny_model, out / "models" / "init", hidden=s.hidden, layers=s.layers, seed=seed,
                  texts=texts)
    gold_texts = [PROMPT.replace("{{ question }}", r["question"]) + " " + r["answer"] for r in train_rows.values()]
    budget = 2 * tokens_of(init, gold_texts)  # the control repeats gold twice; an arm: gold once + its rows
    gold = phases("build gold", build, write_yaml(out / "recipes" / "gold.yaml", recipe(
        "gold", data / "train.jsonl", out, s, None, None, budget, init, seed)), None).out_dir

    def fit(name: str, kind: str, dataset: Path, config: str, steps: int, methods=None) -> dict:
        path = write_yaml(out / "configs" / f"{name}.yaml", train_config(init, dataset, config, out / "models" / name,
                                                                        s, steps, seed, methods))
        return phases(f"train {name}", train, path, out / "logs" / f"{name}.log", kind)

    fit("student", "sft", gold, "sft", s.student_steps)
    synthesis = phases("sample + synthesis build", build, write_yaml(out / "recipes" / "synthesis.yaml", recipe(
        "synthesis", data / "train.jsonl", out, s, out / "models" / "student", teacher_url, budget, init, seed)),
        None).out_dir
    stats = json.loads((synthesis / "stats.json").read_text())
    runs = [(f"cpt-{arm}", "cpt", arm, f"mix-{arm}", None) for arm in ARMS] + \
           [(f"sft-{arm}", "sft", arm, "sft", methods) for arm, methods in SFT_ARMS.items()]
    results = []
    for name, kind, arm, config, methods in runs:
        summary = fit(name, kind, synthesis, config, s.steps, methods)
        report = phases("test eval", evaluate, out / "models" / name, data / "test.jsonl", out / "eval" / name,
                        s.max_tokens, seed)
        results.append({"seed": seed, "arm": arm, "kind": kind, "accuracy": report["accuracy"],
                        "se": round(standard_error(report["accuracy"], report["questions"]), 4),
                        "questions": report["questions"],
                        "by_difficulty": {str(k): v["accuracy"] for k, v in report.get("by_difficulty", {}).items()},
                        "checked_accuracy": checked_accuracy(out / "eval" / name, test_rows),
                        "tokens_seen": summary["tokens_seen"], "steps": summary["steps"],
                        "train_seconds": summary["seconds"], "notes": summary["notes"]})
    return {"seed": seed, "results": results, "phases": phases.seconds,
            "mix": {arm: stats.get(f"mix-{arm}") for arm in ARMS},
            "stages": {name: stats.get(name) for name in ("sample", "tutor", "diversify", "expand", "retrospect")},
            "confirmed": confirmed(synthesis, train_rows), "seconds": round(sum(phases.seconds.values()), 1)}


def paired(seeds: list[dict], kind: str, arm: str, base_kind: str, base_arm: str, key: str = "accuracy") -> dict:
    """Mean paired difference (arm - base) across seeds and its standard error (n - 1 in the variance)."""
    diffs = []
    for seed in seeds:
        by = {(r["kind"], r["arm"]): r for r in seed["results"]}
        diffs.append(by[(kind, arm)][key] - by[(base_kind, base_arm)][key])
    return paired_difference(diffs)


def comparisons(seeds: list[dict]) -> dict:
    found = {f"cpt {arm} - cpt control": paired(seeds, "cpt", arm, "cpt", "control") for arm in ARMS
             if arm != "control"}
    for arm in SFT_ARMS:
        found[f"cpt {arm} - sft {arm}"] = paired(seeds, "cpt", arm, "sft", arm)
        for level in DIFFICULTIES:
            try:
                found[f"cpt {arm} - sft {arm}, {level} steps"] = paired(
                    [{"results": [{**r, "level": r["by_difficulty"].get(str(level), 0.0)} for r in s["results"]]}
                     for s in seeds], "cpt", arm, "sft", arm, key="level")
            except KeyError:
                continue
    found["sft tutorship - sft control"] = paired(seeds, "sft", "tutorship", "sft", "control")
    return found


def table(summary: dict) -> str:
    lines = ["| seed | model | accuracy ± SE | " + " | ".join(f"{d} steps" for d in DIFFICULTIES) +
             " | checked | tokens seen | train s |", "|---|---|---|" + "---|" * len(DIFFICULTIES) + "---|---|---|"]
    for seed in summary["seeds"]:
        for r in seed["results"]:
            levels = " | ".join(f"{r['by_difficulty'].get(str(d), float('nan')):.1%}" for d in DIFFICULTIES)
            lines.append(f"| {r['seed']} | {r['kind']} {r['arm']} | {r['accuracy']:.1%} ± {r['se']:.1%} | {levels} | "
                         f"{r['checked_accuracy']:.1%} | {r['tokens_seen']:,} | {r['train_seconds']:.0f} |")
    lines += ["", *comparison_table(summary["comparisons"]), "", *phase_lines(summary["seeds"]),
              "", f"Total {summary['seconds']:.0f} s. Reproduce: `{summary['command']}`"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parsed = settings(Settings, __doc__.split("\n", 1)[0], Path("build/mathgpt-miniature"), argv)
    if parsed is None:
        return 2
    s, out = parsed
    started, data = time.perf_counter(), out / "data"
    train_rows = multipath.problems(s.train_problems, seed=s.problem_seed)
    test_rows = stratified(s.test_problems, s.problem_seed + 1, {r["question"] for r in train_rows})
    write_rows(data / "train.jsonl", train_rows)
    write_rows(data / "test.jsonl", test_rows)
    texts = [PROMPT.replace("{{ question }}", r["question"]) + " " + sol for r in train_rows for sol in r["solutions"]]
    seeds = []
    with FakeOpenAI(reply=CompetentTeacher(train_rows), model="teacher") as teacher:
        for seed in s.seeds:
            seeds.append(run_seed(seed, out, data, s, teacher.url, keyed(train_rows), keyed(test_rows), texts))
            print(f"seed {seed} done in {seeds[-1]['seconds']:.0f} s", file=sys.stderr)
    summary = {"settings": asdict(s), "difficulty": {str(d): sum(difficulty(r) == d for r in test_rows)
                                                     for d in DIFFICULTIES},
               "seeds": seeds, "comparisons": comparisons(seeds), "seconds": round(time.perf_counter() - started, 1),
               "command": command("benchmarks/mathgpt-miniature/run.py", argv)}
    write_summary(out, "mathgpt-miniature", summary, table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
