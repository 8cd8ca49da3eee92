"""RFT in miniature on problems with many reasoning paths: SFT vs RFT vs RFT-union, paired by seed at fixed steps.

Problems: mathforge.testing.multipath (3-6 step word problems, each with 3-13 distinct equation lists; the gold
solution is one of them). Every step runs through mathforge's real pipeline: `mathforge build` (gold corpus; sample
+ collect with the paper's verifier and equation dedup for the RFT corpora), `mathforge train sft` (TRL
SFTTrainer), `mathforge eval` (greedy, transformers backend). Per seed (the seed sets the initial weights, the data
order and the sampling; the problems are the same for every seed), every run from the seed's initial weights for the
same `steps`:

  1. SFT on gold: the compute-matched control (same steps, same batch as every other arm);
  2. RFT: gold + the paper-deduplicated correct samples (k per training problem, temperature T) of this seed's SFT
     model;
  3. RFT-union: gold + the pooled, deduplicated correct samples of `union_models` SFT models: this seed's and the
     next seeds' (cyclically, so every seed's union is a different pair; with one seed, extra SFT runs from other
     initial weights).

Every model is evaluated greedily on `test_problems` held-out problems: accuracy (the shared grader) +- binomial SE,
by difficulty (steps), and the family's stricter checked accuracy. Each arm is compared with the control paired by
seed; the table reports the mean paired difference and its standard error across seeds: an effect counts only beyond
two of those. No checkpoint is selected on a validation split (the earlier protocol did, on 100 problems, and its
selection noise was larger than the effects). Run from the repository root:

    HF_HUB_OFFLINE=1 python benchmarks/rft-miniature/run.py --out /tmp/rft-mini [--quick] [--seeds 0 1 2 3]
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mathforge.quickstart import PROMPT, build, corpus_rows, evaluate, standard_error, train, write_yaml
from mathforge.testing import multipath
from mathforge.testing.miniature import (Phases, checked_accuracy, command, comparison_table, difficulty, keyed,
                                         paired_difference, phase_lines, settings, write_rows, write_summary)

ARMS = ("sft", "rft", "union")
LABELS = {"sft": "SFT (gold), the control", "rft": "RFT (gold + RFT)", "union": "RFT-union"}


@dataclass
class Settings:
    """Sizes of the benchmark; the defaults are the full run, `quick()` the smoke form."""

    train_problems: int = 1000
    test_problems: int = 1000  # binomial SE ~1.4 points at 25 %, small beside the spread between seeds
    problem_seed: int = 1234   # the problems are the same for every seed
    hidden: int = 128
    layers: int = 4
    steps: int = 1000          # 32 epochs of the gold set; validation accuracy still rose at 1,000 in the 2-seed runs
    warmup: int = 20
    batch: int = 32
    learning_rate: float = 1e-3
    k: int = 8
    temperature: float = 1.0
    union_models: int = 2
    max_tokens: int = 96
    max_length: int = 192
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])

    @classmethod
    def quick(cls, **changes) -> "Settings":
        return cls(**{**dict(train_problems=40, test_problems=24, hidden=32, layers=1, steps=8, batch=8, k=2,
                             seeds=[0, 1]), **changes})


def train_config(model: Path, dataset: Path, out: Path, s: Settings, seed: int) -> dict:
    """TRL's own keys (what `mathforge train sft` reads): constant LR after a fixed warmup, no checkpoints."""
    return {"model_name_or_path": str(model), "dataset_name": str(dataset), "dataset_config": "sft",
            "output_dir": str(out), "max_steps": s.steps, "per_device_train_batch_size": s.batch,
            "learning_rate": s.learning_rate, "lr_scheduler_type": "constant_with_warmup",
            "warmup_steps": min(s.warmup, s.steps), "max_length": s.max_length,
            "logging_steps": max(1, s.steps // 5), "seed": seed, "data_seed": seed, "disable_tqdm": True,
            "save_strategy": "no"}


def recipe(name: str, version: str, train_file: Path, out: Path, s: Settings, models: list[tuple[str, Path]],
           seed: int) -> dict:
    """Gold only (no models) or gold + the paper-deduplicated correct samples of every model, pooled."""
    stages = []
    if models:
        stages.append({"type": "sample", "k": s.k, "temperature": s.temperature, "max_tokens": s.max_tokens,
                       "seed": seed, "concurrency": 256, "checkpoint_every": 1000, "prompt": {"template": PROMPT},
                       "models": [{"name": label, "backend": "batched", "model": str(path)} for label, path in models]})
    stages.append({"type": "collect", "dedup": "paper"})
    return {"name": name, "version": version,
            "description": "rft-miniature: multi-path synthetic problems" +
                           (f", gold + RFT samples (k={s.k}, T={s.temperature:g}) of {len(models)} SFT model(s)"
                            if models else ", gold solutions only"),
            "sources": [{"name": "train", "path": str(train_file)}], "stages": stages,
            "publish": {"methods": ["gold", "rft"], "tags": ["rft-miniature", "synthetic"],
                        "templates": {"prompt": PROMPT, "completion": " {{ solution }}"}},
            "output": {"dir": str(out / "builds" / "{name}" / "{version}"),
                       "work_dir": str(out / "builds" / "{name}" / ".work" / "{version}"), "overwrite": True}}


def corpus_paths(build_dir: Path, rows_by_question: dict[str, dict]) -> dict:
    """Distinct valid reasoning paths per training problem in a built corpus (gold + kept samples), by the family's
    checker; rows that pass the paper's verifier but are not a listed path are counted apart."""
    import pyarrow.parquet as pq

    found: dict[str, set] = {q: set() for q in rows_by_question}
    other = 0
    rows = pq.read_table(build_dir / "data", columns=["question", "solution"]).to_pylist()
    for r in rows:
        problem = rows_by_question[r["question"]]
        verdict = multipath.check(problem, r["solution"], problem["_keys"])
        if verdict.valid:
            found[r["question"]].add(verdict.path)
        else:
            other += 1
    counts = [len(v) for v in found.values()]
    listed = [len(rows_by_question[q]["solutions"]) for q in found]
    return {"rows": len(rows), "distinct_paths_per_problem": round(sum(counts) / len(counts), 3),
            "path_coverage": round(sum(c / n for c, n in zip(counts, listed)) / len(counts), 3),
            "rows_not_a_listed_path": other}


class Seed:
    """One seed: its initial weights, corpora, runs and wall time per phase."""

    def __init__(self, out: Path, data: Path, s: Settings, seed: int, texts: list[str]):
        from mathforge.testing.tinymodel import build_tiny_model

        self.out, self.data, self.s, self.seed = out, data, s, seed
        self.phases = Phases()
        self.init = self.phases("init", build_tiny_model, out / "models" / "init", hidden=s.hidden, layers=s.layers,
                                seed=seed, texts=texts)
        self.corpora = {"sft": self.build("gold", "0.1.0", [])}
        self.trained: dict[str, dict] = {}

    def build(self, name: str, version: str, models: list[tuple[str, Path]]) -> Path:
        config = write_yaml(self.out / "recipes" / f"{name}.yaml",
                            recipe("mini", version, self.data / "train.jsonl", self.out, self.s, models, self.seed))
        return self.phases(f"build {name}" if not models else f"sample + build {name}", build, config, None).out_dir

    def fit(self, arm: str, init: Path | None = None, seed: int | None = None, name: str | None = None) -> Path:
        name = name or arm
        config = write_yaml(self.out / "configs" / f"{name}.yaml",
                            train_config(init or self.init, self.corpora[arm], self.out / "models" / name, self.s,
                                         self.seed if seed is None else seed))
        self.trained[name] = self.phases(f"train {name}", train, config, self.out / "logs" / f"{name}.log")
        return self.out / "models" / name

    def extra_sft(self, j: int, texts: list[str]) -> tuple[str, Path]:
        """Another SFT model for the union when the run has one seed: other initial weights and data order."""
        from mathforge.testing.tinymodel import build_tiny_model

        other = self.seed + 1000 * j
        init = self.phases("init", build_tiny_model, self.out / "models" / f"init-{j}", hidden=self.s.hidden,
                           layers=self.s.layers, seed=other, texts=texts)
        return f"sft-{j}", self.fit("sft", init, other, name=f"sft-{j}")


def run_arms(st: Seed, members: list[tuple[str, Path]], train_rows: dict, test_rows: dict) -> dict:
    """RFT from this seed's SFT model and the union of `members` (this seed's first), trained like the control;
    every model evaluated on the test split."""
    s, out = st.s, st.out
    st.corpora["rft"] = st.build("rft", "1.0.0", members[:1])
    st.fit("rft")
    st.corpora["union"] = st.build("union", "2.0.0", members)
    st.fit("union")
    corpora = {arm: {**corpus_paths(path, train_rows),
                     **{k: v for k, v in json.loads((path / "stats.json").read_text()).items()
                        if k in ("samples", "correct", "distinct")}}
               for arm, path in st.corpora.items()}
    results = []
    for arm in ARMS:
        report = st.phases("test eval", evaluate, out / "models" / arm, st.data / "test.jsonl", out / "eval" / arm,
                           s.max_tokens, st.seed)
        results.append({"seed": st.seed, "arm": arm, "training_rows": corpus_rows(st.corpora[arm]),
                        "accuracy": report["accuracy"], "questions": report["questions"],
                        "se": round(standard_error(report["accuracy"], report["questions"]), 4),
                        "by_difficulty": {str(k): v["accuracy"] for k, v in report.get("by_difficulty", {}).items()},
                        "checked_accuracy": checked_accuracy(out / "eval" / arm, test_rows),
                        "corpus_paths": corpora[arm]["distinct_paths_per_problem"],
                        "steps": st.trained[arm]["steps"], "tokens_seen": st.trained[arm]["tokens_seen"],
                        "train_seconds": st.trained[arm]["seconds"]})
    return {"seed": st.seed, "results": results, "corpora": corpora,
            "union_members": [str(path) for _, path in members], "phases": st.phases.seconds,
            "seconds": round(sum(st.phases.seconds.values()), 1)}


def comparisons(seeds: list[dict]) -> dict:
    def diffs(arm: str, base: str, key: str) -> dict:
        by = [{r["arm"]: r for r in seed["results"]} for seed in seeds]
        return paired_difference([b[arm][key] - b[base][key] for b in by])

    return {"rft - control": diffs("rft", "sft", "accuracy"), "union - control": diffs("union", "sft", "accuracy"),
            "union - rft": diffs("union", "rft", "accuracy"),
            "rft - control, checked": diffs("rft", "sft", "checked_accuracy"),
            "union - control, checked": diffs("union", "sft", "checked_accuracy")}


def table(summary: dict) -> str:
    levels = sorted({d for seed in summary["seeds"] for r in seed["results"] for d in r["by_difficulty"]}, key=int)
    lines = ["| seed | arm | rows | paths in corpus | test acc ± SE | " + " | ".join(f"{d} steps" for d in levels) +
             " | checked acc | tokens seen | train s |", "|---|---|---|---|---|" + "---|" * len(levels) + "---|---|---|"]
    for seed in summary["seeds"]:
        for r in seed["results"]:
            by = " | ".join(f"{r['by_difficulty'][d]:.1%}" if d in r["by_difficulty"] else "-" for d in levels)
            lines.append(f"| {r['seed']} | {LABELS[r['arm']]} | {r['training_rows']:,} | {r['corpus_paths']:.2f} | "
                         f"{r['accuracy']:.1%} ± {r['se']:.1%} | {by} | {r['checked_accuracy']:.1%} | "
                         f"{r['tokens_seen']:,} | {r['train_seconds']:.0f} |")
    lines += ["", *comparison_table(summary["comparisons"]), "", *phase_lines(summary["seeds"]),
              "", f"Total {summary['seconds']:.0f} s. Reproduce: `{summary['command']}`"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parsed = settings(Settings, __doc__.split("\n", 1)[0], Path("build/rft-miniature"), argv)
    if parsed is None:
        return 2
    s, out = parsed
    started, data = time.perf_counter(), out / "data"
    train_rows = multipath.problems(s.train_problems, seed=s.problem_seed)
    test_rows = multipath.problems(s.test_problems, seed=s.problem_seed + 2,
                                   exclude={r["question"] for r in train_rows})
    write_rows(data / "train.jsonl", train_rows)
    write_rows(data / "test.jsonl", test_rows)
    texts = [PROMPT.replace("{{ question }}", r["question"]) + " " + sol for r in train_rows for sol in r["solutions"]]
    # every seed's SFT model first: a seed's union pools its own SFT model's samples with the next seeds' (differently
    # seeded SFT models, the U13B idea, without training extra ones); one seed trains extra models
    runs = [Seed(out / f"seed-{seed}", data, s, seed, texts) for seed in s.seeds]
    for st in runs:
        st.fit("sft")
    seeds = []
    for i, st in enumerate(runs):
        others = [runs[(i + j) % len(runs)] for j in range(1, len(runs))][:s.union_models - 1]
        members = [(f"sft-seed{o.seed}", o.out / "models" / "sft") for o in [st, *others]]
        members += [st.extra_sft(j, texts) for j in range(len(members), s.union_models)]
        seeds.append(run_arms(st, members, keyed(train_rows), keyed(test_rows)))
        print(f"seed {st.seed} done in {seeds[-1]['seconds']:.0f} s", file=sys.stderr)
    summary = {"settings": asdict(s), "listed_paths_per_train_problem":
               round(sum(len(r["solutions"]) for r in train_rows) / len(train_rows), 2),
               "difficulty": {str(d): sum(difficulty(r) == d for r in test_rows) for d in range(3, 7)},
               "seeds": seeds, "comparisons": comparisons(seeds), "seconds": round(time.perf_counter() - started, 1),
               "command": command("benchmarks/rft-miniature/run.py", argv)}
    write_summary(out, "rft-miniature", summary, table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
