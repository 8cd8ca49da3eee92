"""`mathforge eval`: sample a model on a benchmark through the generation layer, grade with the builders' verifier."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from mathforge.eval.metrics import distinct_paths, majority, pass_at_k

BENCHMARKS = {"gsm8k": {"hub": "openai/gsm8k", "config": "main", "question": "question", "answer": "answer"},
              "math": {"hub": "HuggingFaceH4/MATH-500", "config": None, "question": "problem", "answer": "solution"}}


def benchmark_source(benchmark: str, split: str):
    from mathforge.builders.recipe import Columns, Source

    if benchmark in BENCHMARKS:
        b = BENCHMARKS[benchmark]
        return Source(name=benchmark, hub=b["hub"], config=b["config"], split=split,
                      columns=Columns(question=b["question"], answer=b["answer"]))
    return Source(name=Path(benchmark).stem, path=benchmark)


def ks_for(n: int) -> list[int]:
    return sorted({k for k in (1 << i for i in range(n.bit_length())) if k <= n} | {n})


def evaluate(model: str, benchmark: str, out: Path, split: str = "test", n: int = 1, temperature: float = 0.0,
             backend: str = "transformers", base_url: str | None = None, api_key_env: str | None = None,
             limit: int | None = None, max_tokens: int = 512, chat: bool = False, template: str | None = None,
             seed: int = 0, concurrency: int = 16, console=None) -> dict:
    """Sample n answers per question (greedy when temperature is 0), grade, write report.json/.md and plots."""
    from mathforge.builders.generation.runner import run_sample_stage
    from mathforge.builders.recipe import ModelSpec, Output, Prompt, Recipe, SampleStage
    from mathforge.builders.sources import load_sources

    spec = ModelSpec(name="model", backend="batched" if backend == "transformers" else backend, model=model,
                     base_url=base_url, api_key_env=api_key_env)
    stage = SampleStage(type="sample", models=[spec], k=n, temperature=temperature, max_tokens=max_tokens,
                        seed=seed, prompt=Prompt(template=template, chat=chat), concurrency=concurrency)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{Path(model).name}-{Path(benchmark).stem}")[:80]
    recipe = Recipe(name=f"eval-{slug}", version="0.0.0", sources=[benchmark_source(benchmark, split)],
                    stages=[stage], output=Output(dir=str(out / "unused"), work_dir=str(out / "work")))
    recipe._file = "mathforge eval"
    problems = load_sources(recipe.sources)[:limit] if limit else load_sources(recipe.sources)
    result = run_sample_stage(0, stage, problems, recipe, console)[0]
    report = grade_samples(problems, result.samples_path, n)
    report.update(model=model, benchmark=benchmark, split=split, n=n, temperature=temperature, backend=backend,
                  max_tokens=max_tokens, questions=len(problems), requests=result.requests,
                  failed_requests=result.failed)
    write_reports(out, report)
    return report


def grade_samples(problems, samples_path: Path, n: int) -> dict:
    import pyarrow.parquet as pq

    from mathforge.verify.judges import CALCULATOR, OK, CanonicalJudge

    judge = CanonicalJudge(problems)
    by_problem: dict[int, list[dict]] = {}
    for row in pq.read_table(samples_path, columns=["idx", "sample_index", "text"]).to_pylist():
        by_problem.setdefault(row["idx"], []).append(row)
    ks = ks_for(n)
    maj = Counter()
    passes = Counter()
    distinct = []
    per_question = []
    for p in problems:
        rows = sorted(by_problem.get(p.index, []), key=lambda r: r["sample_index"])
        verdicts = [judge.judge(p.index, r["text"]) for r in rows]
        correct = [status in (OK, CALCULATOR) for status, _, _ in verdicts]
        answers = [str(value) if value is not None else None for _, value, _ in verdicts]
        gold = judge.gold_answer(p.index)
        for k in ks:
            if len(rows) >= k:
                maj[k] += _majority_correct(answers, correct, k)
                passes[k] += pass_at_k(len(rows), sum(correct), k)
        paths = distinct_paths([key for _, _, key in verdicts], [s == OK for s, _, _ in verdicts])
        distinct.append(paths)
        per_question.append({"problem_id": p.problem_id, "gold": gold, "samples": len(rows),
                             "correct": sum(correct), "distinct_paths": paths})
    count = max(len(problems), 1)
    return {"verifier": judge.verifier, "accuracy": round(maj[1] / count, 4),
            "maj_at_k": {str(k): round(maj[k] / count, 4) for k in ks},
            "pass_at_k": {str(k): round(passes[k] / count, 4) for k in ks},
            "distinct_paths_mean": round(sum(distinct) / count, 4),
            "distinct_paths_histogram": {str(k): v for k, v in sorted(Counter(distinct).items())},
            "per_question": per_question}


def _majority_correct(answers: list, correct: list, k: int) -> bool:
    """maj1@k: the most common answer among the first k samples is a correct one (ties: first seen)."""
    winner = majority(answers[:k])
    return winner is not None and any(c for a, c in zip(answers[:k], correct[:k]) if a == winner)


def write_reports(out: Path, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    ks = list(report["pass_at_k"])
    lines = [f"# {report['model']} on {report['benchmark']} ({report['split']}, {report['questions']} questions)",
             "", f"n={report['n']} samples per question, temperature {report['temperature']:g}, "
                 f"max_tokens {report['max_tokens']}; verifier `{report['verifier']}`.", "",
             "| k | maj1@k | pass@k |", "|---|---|---|"]
    lines += [f"| {k} | {report['maj_at_k'][k]:.2%} | {report['pass_at_k'][k]:.2%} |" for k in ks]
    lines += ["", f"Distinct reasoning paths per question (correct samples, equation keys): mean "
                  f"{report['distinct_paths_mean']}.", "", "![pass@k](plots/pass_at_k.png)",
              "![distinct paths](plots/distinct_paths.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    (out / "plots").mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot([int(k) for k in ks], [report["pass_at_k"][k] for k in ks], marker="o", label="pass@k")
    ax.plot([int(k) for k in ks], [report["maj_at_k"][k] for k in ks], marker="s", label="maj1@k")
    ax.set_xlabel("k")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "plots" / "pass_at_k.png", metadata={"Software": None})
    plt.close(fig)
    hist = report["distinct_paths_histogram"]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.bar(list(hist), list(hist.values()))
    ax.set_xlabel("distinct correct reasoning paths")
    ax.set_ylabel("questions")
    fig.tight_layout()
    fig.savefig(out / "plots" / "distinct_paths.png", metadata={"Software": None})
    plt.close(fig)
