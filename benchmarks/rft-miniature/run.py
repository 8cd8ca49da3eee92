"""RFT in miniature on problems with many reasoning paths: SFT vs RFT vs RFT-union, each trained to convergence.

Problems: mathforge.testing.multipath (3-6 step word problems, each with 3-13 distinct equation lists; the gold
solution is one of them). Every step runs through mathforge's real pipeline, as `mathforge quickstart` does:
`mathforge build` (gold corpus; sample + collect with the paper's verifier and equation dedup for the RFT corpora),
`mathforge train sft` (TRL SFTTrainer, checkpoints every `--save-every` steps), `mathforge eval` (greedy and
sampled, transformers backend). Every seed (the seed sets the initial weights and the data order; the problems are
the same for every seed) first trains its SFT model; then, per seed:

  1. SFT on gold for `--steps` steps, constant learning rate after a fixed warmup, a checkpoint every
     `--save-every` steps; every checkpoint greedy-evaluated on the validation split; the best one is selected.
  2. RFT corpus: gold + deduplicated correct samples (k per training problem, temperature T) of the selected SFT
     checkpoint; RFT trained exactly like SFT (same steps, checkpoints, selection).
  3. Paper protocol: the RFT run's checkpoint nearest to as many epochs as the selected SFT checkpoint (steps x
     RFT rows / gold rows). With a constant learning rate and a fixed warmup, the checkpoint at step N of a long
     run *is* an N-step run (same schedule, same data order), so no second run is needed.
  4. Compute-matched control: the SFT run's checkpoint nearest to the selected RFT checkpoint's steps (both runs
     have the same length, so it always exists).
  5. Union: gold + the deduplicated pool of the correct samples of `--union-models` differently seeded SFT models
     (this seed's selected SFT model and the other seeds'; with one seed, extra SFT runs from other initial
     weights), one `sample` stage with several `models` and one `collect`; trained and selected like RFT.

Every arm's selected model is evaluated on the test split: greedy accuracy (maj1@1) +- binomial standard error,
and `--eval-samples` samples at T for pass@k, maj1@k and the distinct valid reasoning paths per question (the
family's checker: correct, every operand given or computed, and a listed path). For the corpora: distinct valid
paths per training problem. Run from the repository root:

    HF_HUB_OFFLINE=1 python benchmarks/rft-miniature/run.py --out /tmp/rft-mini [--quick] [--seeds 0 1]
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from mathforge.quickstart import PROMPT, build, corpus_rows, standard_error, train, write_problems, write_yaml
from mathforge.testing import multipath


@dataclass
class Settings:
    """Sizes of the benchmark; the defaults are the full run, `quick()` the smoke form."""

    train_problems: int = 1000
    val_problems: int = 100
    test_problems: int = 300
    problem_seed: int = 1234  # the problems are the same for every seed
    hidden: int = 128
    layers: int = 4
    steps: int = 1000
    save_every: int = 200
    warmup: int = 20
    batch: int = 32
    learning_rate: float = 1e-3
    k: int = 8
    temperature: float = 1.0
    union_models: int = 2
    eval_samples: int = 4
    max_tokens: int = 96
    max_length: int = 192
    seeds: list[int] = field(default_factory=lambda: [0, 1])

    @classmethod
    def quick(cls, **changes) -> "Settings":
        return cls(**{**dict(train_problems=60, val_problems=30, test_problems=40, hidden=64, layers=2, steps=60,
                             save_every=30, k=2, union_models=2, eval_samples=2, seeds=[0]), **changes})


def train_config(model: Path, dataset: Path, out: Path, s: Settings, steps: int, seed: int, save: bool) -> dict:
    """TRL's own keys (what `mathforge train sft` reads): constant LR after a fixed warmup, checkpoints if `save`."""
    return {"model_name_or_path": str(model), "dataset_name": str(dataset), "dataset_config": "sft",
            "output_dir": str(out), "max_steps": steps, "per_device_train_batch_size": s.batch,
            "learning_rate": s.learning_rate, "lr_scheduler_type": "constant_with_warmup",
            "warmup_steps": min(s.warmup, steps), "max_length": s.max_length,
            "logging_steps": max(1, s.save_every // 2), "seed": seed, "data_seed": seed, "disable_tqdm": True,
            **({"save_strategy": "steps", "save_steps": s.save_every, "save_only_model": True} if save else
               {"save_strategy": "no"})}


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


def evaluate(model: Path, problems_file: Path, out: Path, s: Settings, n: int, temperature: float, seed: int) -> dict:
    from mathforge.eval.run import evaluate as run_eval

    return run_eval(str(model), str(problems_file), out, n=n, temperature=temperature, backend="transformers",
                    max_tokens=s.max_tokens, template=PROMPT, seed=seed, concurrency=256, console=None)


class Phases:
    """Wall time per phase, in order."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, fn, *args, **kwargs):
        t = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t, 1)
        return result


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    found = [(int(p.name.split("-")[1]), p) for p in run_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit()]
    return sorted(found)


def curve(run_dir: Path, val: Path, out: Path, s: Settings, seed: int) -> list[dict]:
    """Greedy validation accuracy of every checkpoint of a run."""
    points = []
    for step, path in checkpoints(run_dir):
        report = evaluate(path, val, out / f"{run_dir.name}-val-{step}", s, 1, 0.0, seed)
        points.append({"step": step, "val_accuracy": report["accuracy"], "dir": str(path)})
    return points


def best(points: list[dict]) -> dict:
    """The checkpoint with the best validation accuracy (ties: the earliest)."""
    return max(points, key=lambda p: (p["val_accuracy"], -p["step"]))


def nearest(points: list[dict], steps: float) -> dict:
    return min(points, key=lambda p: (abs(p["step"] - steps), p["step"]))


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def corpus_paths(build_dir: Path, rows_by_question: dict[str, dict]) -> dict:
    """Distinct valid reasoning paths per training problem in a built corpus (gold + kept samples)."""
    import pyarrow.parquet as pq

    found: dict[str, set] = {q: set() for q in rows_by_question}
    other = 0
    rows = pq.read_table(build_dir / "data", columns=["question", "solution", "method"]).to_pylist()
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


def sampled_paths(eval_dir: Path, rows_by_question: dict[str, dict]) -> dict:
    """Distinct valid paths per test question among a model's samples, by the family's checker."""
    found: dict[str, set] = {}
    checked = total = 0
    for r in read_jsonl(eval_dir / "samples.jsonl"):
        problem = rows_by_question[r["question"]]
        verdict = multipath.check(problem, r["text"], problem["_keys"])
        found.setdefault(r["question"], set())
        total += 1
        if verdict.valid:
            found[r["question"]].add(verdict.path)
            checked += 1
    counts = [len(v) for v in found.values()]
    return {"distinct_valid_paths": round(sum(counts) / max(len(counts), 1), 3),
            "valid_sample_rate": round(checked / max(total, 1), 4)}


def greedy_checked(eval_dir: Path, rows_by_question: dict[str, dict]) -> float:
    """Greedy accuracy by the family's stricter checker (answer, arithmetic, every operand given or computed)."""
    rows = read_jsonl(eval_dir / "samples.jsonl")
    ok = 0
    for r in rows:
        problem = rows_by_question[r["question"]]
        verdict = multipath.check(problem, r["text"], problem["_keys"])
        ok += verdict.correct and verdict.grounded
    return round(ok / max(len(rows), 1), 4)


class Seed:
    """One seed's runs: its initial weights, corpora, training runs (validation curves) and wall time per phase."""

    def __init__(self, out: Path, data: Path, s: Settings, seed: int, by_question: dict):
        from mathforge.testing.tinymodel import build_tiny_model

        self.out, self.data, self.s, self.seed = out, data, s, seed
        self.phases, self.runs, self.inits = Phases(), {}, {}
        out.mkdir(parents=True, exist_ok=True)
        self.texts = [PROMPT.replace("{{ question }}", r["question"]) + " " + sol for r in by_question.values()
                      for sol in r["solutions"]]
        self.inits[seed] = self.phases("init", build_tiny_model, out / "models" / "init", hidden=s.hidden,
                                       layers=s.layers, seed=seed, texts=self.texts)
        self.corpora = {"gold": self.build("gold", "0.1.0", [])}

    def build(self, name: str, version: str, models: list[tuple[str, Path]]) -> Path:
        config = write_yaml(self.out / "recipes" / f"{name}.yaml",
                            recipe("mini", version, self.data / "train.jsonl", self.out, self.s, models, self.seed))
        return self.phases(f"build {name}" if not models else f"sample + build {name}", build, config, None).out_dir

    def fit(self, name: str, corpus: Path, steps: int, run_seed: int, save: bool = True) -> dict:
        config = write_yaml(self.out / "configs" / f"{name}.yaml",
                            train_config(self.inits[run_seed], corpus, self.out / "models" / name, self.s, steps,
                                         run_seed, save))
        return self.phases(f"train {name}", train, config, self.out / "logs" / f"train-{name}.log")

    def validate(self, name: str, steps: int) -> dict:
        """The run's validation curve (kept in `runs`) and its best checkpoint."""
        self.runs[name] = {"steps": steps, "curve": self.phases(f"val {name}", curve, self.out / "models" / name,
                                                                self.data / "val.jsonl", self.out / "eval", self.s,
                                                                self.seed)}
        return best(self.runs[name]["curve"])

    def sft(self) -> dict:
        """SFT on gold for `steps` steps, the best validation checkpoint selected."""
        self.fit("sft", self.corpora["gold"], self.s.steps, self.seed)
        self.sft_best = self.validate("sft", self.s.steps)
        return self.sft_best

    def extra_sft(self, j: int) -> tuple[str, Path]:
        """Another SFT model for the union when the run has one seed: other initial weights and data order."""
        from mathforge.testing.tinymodel import build_tiny_model

        other = self.seed + 1000 * j
        self.inits[other] = self.phases("init", build_tiny_model, self.out / "models" / f"init-{j}",
                                        hidden=self.s.hidden, layers=self.s.layers, seed=other, texts=self.texts)
        self.fit(f"sft-{j}", self.corpora["gold"], self.sft_best["step"], other, save=False)
        return (f"sft-{j}", self.out / "models" / f"sft-{j}")


def run_arms(st: Seed, members: list[tuple[str, Path]], test_rows: dict, by_question: dict) -> dict:
    """RFT from this seed's SFT model, the union of `members` (this seed's SFT model first), the paper's protocol
    and the compute-matched control; every selected model evaluated on the test split."""
    s, seed, out = st.s, st.seed, st.out
    sft_best = st.sft_best
    st.corpora["rft"] = st.build("rft", "1.0.0", [members[0]])
    gold_rows, rft_rows = corpus_rows(st.corpora["gold"]), corpus_rows(st.corpora["rft"])
    paper_steps = sft_best["step"] * rft_rows / gold_rows  # as many epochs as the selected SFT checkpoint
    st.fit("rft", st.corpora["rft"], s.steps, seed)
    rft_best = st.validate("rft", s.steps)
    for j in range(len(members), s.union_models):
        members.append(st.extra_sft(j))
    st.corpora["union"] = st.build("union", "2.0.0", members)
    st.fit("union", st.corpora["union"], s.steps, seed)
    union_best = st.validate("union", s.steps)

    control = nearest(st.runs["sft"]["curve"], rft_best["step"])
    paper = nearest(st.runs["rft"]["curve"], paper_steps)
    beyond = paper_steps > s.steps + s.save_every / 2
    arms = [("SFT (gold)", "sft", "gold", sft_best, "best val"),
            ("RFT (gold + RFT)", "rft", "rft", rft_best, "best val"),
            ("RFT, paper protocol", "rft", "rft", paper,
             f"SFT's epochs: {paper_steps:.0f} steps" + (" (beyond the run: its last checkpoint)" if beyond else "")),
            ("SFT (gold), compute control", "sft", "gold", control, f"RFT's {rft_best['step']} steps"),
            (f"RFT-union ({len(members)} SFT models)", "union", "union", union_best, "best val")]
    corpus_stats = {name: {**corpus_paths(path, by_question),
                           **{k: v for k, v in json.loads((path / "stats.json").read_text()).items()
                              if k in ("samples", "correct", "distinct")}}
                    for name, path in st.corpora.items()}
    rows, done = [], {}
    for label, run_name, corpus, point, rule in arms:
        key = point["dir"]
        if key not in done:
            tag = f"{run_name}-{point['step']}"
            greedy = st.phases("test eval", evaluate, Path(key), st.data / "test.jsonl",
                               out / "eval" / f"{tag}-test-greedy", s, 1, 0.0, seed)
            sampled = st.phases("test eval", evaluate, Path(key), st.data / "test.jsonl",
                                out / "eval" / f"{tag}-test-sampled", s, s.eval_samples, s.temperature, seed)
            done[key] = (greedy, sampled, greedy_checked(out / "eval" / f"{tag}-test-greedy", test_rows),
                         sampled_paths(out / "eval" / f"{tag}-test-sampled", test_rows))
        greedy, sampled, checked, paths = done[key]
        k = str(s.eval_samples)
        rows.append({"seed": seed, "arm": label, "run": run_name, "selection": rule, "steps": point["step"],
                     "max_steps": st.runs[run_name]["steps"], "corpus": corpus,
                     "training_rows": corpus_rows(st.corpora[corpus]),
                     "val_accuracy": point["val_accuracy"], "accuracy": greedy["accuracy"],
                     "se": round(standard_error(greedy["accuracy"], greedy["questions"]), 4),
                     "checked_accuracy": checked, "questions": greedy["questions"],
                     "pass_at_k": sampled["pass_at_k"][k], "maj_at_k": sampled["maj_at_k"][k],
                     "corpus_paths": corpus_stats[corpus]["distinct_paths_per_problem"],
                     "sampled_paths": paths["distinct_valid_paths"], "valid_sample_rate": paths["valid_sample_rate"],
                     "train_seconds": st.phases.seconds.get(f"train {run_name}")})
    return {"seed": seed, "rows": rows, "curves": {name: run["curve"] for name, run in st.runs.items()},
            "run_steps": {name: run["steps"] for name, run in st.runs.items()},
            "corpora": corpus_stats, "union_members": [str(path) for _, path in members],
            "phases": st.phases.seconds, "seconds": round(sum(st.phases.seconds.values()), 1)}


def table(summary: dict) -> str:
    k = summary["settings"]["eval_samples"]
    lines = ["| seed | arm | rows | steps (of run) | selected by | val acc | test acc ± SE "
             f"| checked acc | pass@{k} | maj1@{k} | paths in corpus | paths sampled | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for seed in summary["seeds"]:
        for r in seed["rows"]:
            lines.append(f"| {r['seed']} | {r['arm']} | {r['training_rows']:,} | {r['steps']} ({r['max_steps']}) | "
                         f"{r['selection']} | "
                         f"{r['val_accuracy']:.1%} | {r['accuracy']:.1%} ± {r['se']:.1%} | "
                         f"{r['checked_accuracy']:.1%} | {r['pass_at_k']:.1%} | {r['maj_at_k']:.1%} | "
                         f"{r['corpus_paths']:.2f} | {r['sampled_paths']:.2f} | {r['train_seconds']:.0f} |")
    lines += ["", "Validation curves (greedy accuracy per checkpoint step):", ""]
    for seed in summary["seeds"]:
        for name, points in seed["curves"].items():
            lines.append(f"- seed {seed['seed']} {name}: " + ", ".join(f"{p['step']}: {p['val_accuracy']:.1%}"
                                                                        for p in points))
    lines += ["", "Wall seconds per phase:", ""]
    for seed in summary["seeds"]:
        lines.append(f"- seed {seed['seed']}: " + ", ".join(f"{k} {v:.0f}" for k, v in seed["phases"].items()) +
                     f"; total {seed['seconds']:.0f}")
    lines += ["", f"Total {summary['seconds']:.0f} s. Reproduce: `{summary['command']}`"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=Path("build/rft-miniature"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke check of the whole protocol")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--overwrite", action="store_true")
    for name, value in asdict(Settings()).items():
        if name != "seeds":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=None)
    args = parser.parse_args(argv)
    changes = {name: getattr(args, name) for name in asdict(Settings()) if getattr(args, name, None) is not None}
    s = Settings.quick(**changes) if args.quick else Settings(**changes)
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            print(f"{out} exists and is not empty (use --overwrite)", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    started = time.perf_counter()
    data = out / "data"
    data.mkdir(parents=True)
    train_rows = multipath.problems(s.train_problems, seed=s.problem_seed)
    val_rows = multipath.problems(s.val_problems, seed=s.problem_seed + 1, exclude={r["question"] for r in train_rows})
    test_rows = multipath.problems(s.test_problems, seed=s.problem_seed + 2,
                                   exclude={r["question"] for r in train_rows + val_rows})
    for name, rows in (("train", train_rows), ("val", val_rows), ("test", test_rows)):
        write_problems(data / f"{name}.jsonl", rows)
        (data / f"{name}-paths.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    by_question = {r["question"]: {**r, "_keys": multipath.path_keys(r)} for r in train_rows}
    test_by_question = {r["question"]: {**r, "_keys": multipath.path_keys(r)} for r in test_rows}
    listed = [len(r["solutions"]) for r in train_rows]
    # every seed's SFT model first: the union of a seed pools its own SFT model's samples with the other seeds'
    # (differently seeded SFT models, the U13B idea, without training extra ones); one seed trains an extra model
    runs = [Seed(out / f"seed-{seed}", data, s, seed, by_question) for seed in s.seeds]
    for st in runs:
        st.sft()
    seeds = []
    for st in runs:
        members = [(f"sft-seed{st.seed}", Path(st.sft_best["dir"]))] + \
            [(f"sft-seed{o.seed}", Path(o.sft_best["dir"])) for o in runs if o is not st][:s.union_models - 1]
        seeds.append(run_arms(st, members, test_by_question, by_question))
        print(f"seed {st.seed} done in {seeds[-1]['seconds']:.0f} s", file=sys.stderr)
    command = "HF_HUB_OFFLINE=1 python benchmarks/rft-miniature/run.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    summary = {"settings": asdict(s), "listed_paths_per_train_problem": round(sum(listed) / len(listed), 2),
               "seeds": seeds, "seconds": round(time.perf_counter() - started, 1), "command": command}
    (out / "rft-miniature.json").write_text(json.dumps(summary, indent=1) + "\n")
    text = table(summary)
    (out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
