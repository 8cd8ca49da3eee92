"""`mathforge eval`: sample a model on benchmarks through the generation layer, grade with mathforge.verify, report."""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

from mathforge.eval.metrics import binomial_se, distinct_paths, mean_se, pass_at_k

from mathforge.errors import InputError
from mathforge.outputs import check_place

BENCHMARKS = {"gsm8k": {"hub": "openai/gsm8k", "config": "main", "question": "question", "answer": "answer",
                        "kind": "gsm8k"},
              "math": {"hub": "HuggingFaceH4/MATH-500", "config": None, "question": "problem", "answer": "solution",
                       "kind": "latex"}}
ANSWER_KINDS = ("gsm8k", "latex", "auto")


def benchmark_source(benchmark: str, split: str, answer_kind: str = "auto"):
    """The benchmark as a problem source: a named one with its own answer kind, or a local file of `answer_kind`."""
    from mathforge.builders.recipe import Columns, Source

    if answer_kind not in ANSWER_KINDS:
        raise InputError(f"must be one of {', '.join(ANSWER_KINDS)}, not {answer_kind!r}", key="--answer-kind")
    if benchmark in BENCHMARKS:
        b = BENCHMARKS[benchmark]
        return Source(name=benchmark, hub=b["hub"], config=b["config"], split=split, answer_kind=b["kind"],
                      columns=Columns(question=b["question"], answer=b["answer"]))
    return Source(name=Path(benchmark).stem, path=benchmark, answer_kind=answer_kind)


def benchmark_names(benchmarks: list[str]) -> list[str]:
    """A directory name per benchmark (gsm8k, math, a file's stem), made distinct with -2, -3, ..."""
    names: list[str] = []
    for b in benchmarks:
        base = b if b in BENCHMARKS else re.sub(r"[^A-Za-z0-9._-]+", "-", Path(b).stem) or "benchmark"
        name, i = base, 1
        while name in names:
            i += 1
            name = f"{base}-{i}"
        names.append(name)
    return names


def prompt_of(kind: str, shots: int, chat: bool, template: str | None) -> tuple[str | None, list[str]]:
    """(template, stop strings): the default zero-shot prompt (None) or `template`, or the few-shot prompt."""
    if not shots:
        return template, []
    if chat or template:
        raise InputError("few-shot prompts are completion prompts: not with --chat or a custom template",
                         key="--shots")
    from mathforge.eval.prompts import few_shot

    return few_shot(kind, shots)


def ks_for(n: int) -> list[int]:
    return sorted({k for k in (1 << i for i in range(n.bit_length())) if k <= n} | {n})


def evaluate(model: str, benchmark: str, out: Path, split: str = "test", n: int = 1, temperature: float = 0.0,
             backend: str = "transformers", base_url: str | None = None, api_key_env: str | None = None,
             limit: int | None = None, max_tokens: int = 512, chat: bool = False, template: str | None = None,
             seed: int = 0, concurrency: int = 16, console=None, shots: int = 0, answer_kind: str = "auto",
             python: str | None = None, server_args: dict | None = None) -> dict:
    """Sample n answers per question (greedy when temperature is 0), grade, write report.json/.md, samples.jsonl
    and plots into `out`. `shots` > 0: the few-shot prompt of the benchmark's answer kind (eval.prompts).
    `python` / `server_args`: a launched vLLM / SGLang's interpreter and engine flags, as the recipe keys."""
    from pydantic import ValidationError
    from mathforge.builders.generation.runner import run_sample_stage
    from mathforge.builders.recipe import ModelSpec, Output, Prompt, Recipe, SampleStage
    from mathforge.builders.sources import load_sources

    source = benchmark_source(benchmark, split, answer_kind)
    prompt, stop = prompt_of(source.answer_kind, shots, chat, template)
    try:
        spec = ModelSpec(name="model", backend="batched" if backend == "transformers" else backend, model=model,
                         base_url=base_url, api_key_env=api_key_env, python=python, server_args=server_args or {})
    except ValidationError as exc:
        raise InputError(exc.errors()[0]["msg"].removeprefix("Value error, "), key="--server-arg") from None
    # max_failure_rate 1: a request the server refuses for itself (a question past the context window) fails only
    # its own row, recorded in samples.jsonl; any other failure still fails the eval (check_failures)
    stage = SampleStage(type="sample", models=[spec], k=n, temperature=temperature, max_tokens=max_tokens,
                        seed=seed, stop=stop, prompt=Prompt(template=prompt, chat=chat), concurrency=concurrency,
                        max_failure_rate=1.0)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{Path(model).name}-{Path(benchmark).stem}")[:80]
    recipe = Recipe(name=f"eval-{slug}", version="0.0.0", sources=[source],
                    stages=[stage], output=Output(dir=str(out / "unused"), work_dir=str(out / "work")))
    recipe._file = "mathforge eval"
    problems = load_sources(recipe.sources)[:limit] if limit else load_sources(recipe.sources)
    result = run_sample_stage(0, stage, problems, recipe, console)[0]
    check_failures(result.samples_path.with_name("failures.parquet"), result.requests)
    report, samples = grade_samples(problems, result.samples_path, n, source.answer_kind)
    report.update(model=model, benchmark=benchmark, split=split, n=n, temperature=temperature, backend=backend,
                  max_tokens=max_tokens, shots=shots, stop=stop, questions=len(problems), requests=result.requests,
                  failed_requests=result.failed)
    write_reports(out, report, samples)
    return report


def evaluate_benchmarks(model: str, benchmarks: list[str], out: Path, **settings) -> dict[str, dict]:
    """Every benchmark in turn, {name: report}: one report in `out` for one benchmark; for several, `out/<name>/`
    each and a summary table in `out/report.md` (+ summary.json). Prompts are checked before the first request."""
    inputs = [("model", model), *(("--benchmark", b) for b in benchmarks)]
    check_place(out, [(what, path) for what, path in inputs if Path(path).exists()], key="--out")
    names = benchmark_names(benchmarks)
    for b in benchmarks:
        kind = benchmark_source(b, settings.get("split", "test"), settings.get("answer_kind", "auto")).answer_kind
        prompt_of(kind, settings.get("shots", 0), settings.get("chat", False), settings.get("template"))
    if len(benchmarks) == 1:
        return {names[0]: evaluate(model, benchmarks[0], out, **settings)}
    reports = {name: evaluate(model, b, out / name, **settings) for b, name in zip(benchmarks, names)}
    write_summary(out, reports)
    return reports


REJECTED = ("http 400", "http 413", "http 422")  # the server refused the request itself: retrying cannot help


def check_failures(failures_path: Path, requests: int) -> None:
    """Requests the server refused for themselves (HTTP 400/413/422) count as misses; anything else (a server
    that went away, timeouts past the retries) or every request refused fails the eval as before."""
    import pyarrow.parquet as pq

    failures = pq.read_table(failures_path, columns=["error"]).column("error").to_pylist()
    other = [error for error in failures if not error.startswith(REJECTED)]
    fatal = other or (failures if failures and len(failures) == requests else [])
    if fatal:
        raise RuntimeError(f"{len(fatal)} of {requests} requests failed (first: {fatal[0]}); every failure is "
                           f"listed in {failures_path}")


def path_key(text: str) -> str | None:
    """A correct sample's reasoning path, keyed as canonical collect keys it (`equations.checked_key`: annotations and
    LaTeX / plain-text relations, normalized; none: its text). None: the calculator refutes one of its equations,
    so it is no path the builders would keep."""
    from mathforge.verify.equations import checked_key

    refuted, key = checked_key(text)
    return None if refuted else key


def majority_vote(answers: list, correct: list, kind: str) -> tuple[str | None, bool]:
    """maj1@k's vote over k samples: the largest class of equivalent answers (`\\frac12` and `0.5` vote together;
    ties: the class seen first) and whether it is correct (its first answer's verdict). No answers: (None, False)."""
    from mathforge.verify.grader import answer_classes

    classes = answer_classes(answers, kind)
    return (answers[classes[0][0]], correct[classes[0][0]]) if classes else (None, False)


def grade_samples(problems, samples_path: Path, n: int, kind: str = "auto") -> tuple[dict, list[dict]]:
    """(report metrics, one graded row per sample): every sample graded against its problem's gold solution by
    the shared grader in the mode of `kind`; maj1@k and pass@k per question, their means and standard errors."""
    import pyarrow.parquet as pq

    from mathforge.verify.grader import CORRECT, KINDS, VERIFIER, grade_batch, reference_answer

    by_problem: dict[int, list[dict]] = {}
    for row in pq.read_table(samples_path, columns=["idx", "sample_index", "text"]).to_pylist():
        by_problem.setdefault(row["idx"], []).append(row)
    failed: dict[int, list[dict]] = {}
    failures_path = samples_path.with_name("failures.parquet")
    if failures_path.exists():
        for row in pq.read_table(failures_path, columns=["idx", "sample_index", "error"]).to_pylist():
            failed.setdefault(row["idx"], []).append(row)
    ordered = [(p, sorted(by_problem.get(p.index, []), key=lambda r: r["sample_index"])) for p in problems]
    verdicts = iter(grade_batch([(p.solution, r["text"]) for p, rows in ordered for r in rows], KINDS[kind]))
    ks = ks_for(n)
    maj: dict[int, list[float]] = {k: [] for k in ks}
    passes: dict[int, list[float]] = {k: [] for k in ks}
    distinct, per_question, samples = [], [], []
    for p, rows in ordered:
        graded = [next(verdicts) for _ in rows]
        correct = [v.verdict == CORRECT for v in graded]
        answers = [v.pred for v in graded]
        for k in ks:  # a question with fewer than k samples (failed requests) counts as a miss at k
            maj[k].append(float(len(rows) >= k and majority_vote(answers[:k], correct[:k], kind)[1]))
            passes[k].append(pass_at_k(len(rows), sum(correct), k) if len(rows) >= k else 0.0)
        paths = distinct_paths([path_key(r["text"]) if ok else None for r, ok in zip(rows, correct)], correct)
        distinct.append(paths)
        gold = reference_answer(p.solution, kind)
        vote, vote_correct = majority_vote(answers, correct, kind)
        lost = sorted(failed.get(p.index, []), key=lambda r: r["sample_index"])
        per_question.append({"problem_id": p.problem_id, "gold": gold, "samples": len(rows), "correct": sum(correct),
                             "failed": len(lost), "majority": vote, "majority_correct": vote_correct,
                             "distinct_paths": paths})
        samples += [{"problem_id": p.problem_id, "index": p.index, "question": p.question,
                     "sample_index": r["sample_index"], "text": r["text"], "answer": v.pred, "verdict": v.verdict,
                     "reason": v.reason, "gold": gold} for r, v in zip(rows, graded)]
        samples += [{"problem_id": p.problem_id, "index": p.index, "question": p.question,
                     "sample_index": r["sample_index"], "text": None, "answer": None, "verdict": "failed",
                     "reason": r["error"], "gold": gold} for r in lost]
    count = len(problems)
    accuracy = sum(maj[1]) / count if count else 0.0
    levels: dict[str, list[float]] = {}
    for (p, _), hit in zip(ordered, maj[1]):
        if p.difficulty is not None:
            levels.setdefault(p.difficulty, []).append(hit)
    report = {"verifier": f"{VERIFIER} ({KINDS[kind]} mode)", "answer_kind": kind,
              "accuracy": round(accuracy, 4), "accuracy_se": round(binomial_se(accuracy, count), 4),
              "maj_at_k": {str(k): round(sum(maj[k]) / max(count, 1), 4) for k in ks},
              "maj_at_k_se": {str(k): round(mean_se(maj[k]), 4) for k in ks},
              "pass_at_k": {str(k): round(sum(passes[k]) / max(count, 1), 4) for k in ks},
              "pass_at_k_se": {str(k): round(mean_se(passes[k]), 4) for k in ks},
              "distinct_paths_mean": round(sum(distinct) / max(count, 1), 4),
              "distinct_paths_histogram": {str(k): v for k, v in sorted(Counter(distinct).items())},
              "per_question": per_question}
    if levels:  # the benchmark's difficulty column (`level`, `difficulty` or a declared one): accuracy per value
        report["by_difficulty"] = {level: {"questions": len(hits), "accuracy": round(sum(hits) / len(hits), 4),
                                           "accuracy_se": round(binomial_se(sum(hits) / len(hits), len(hits)), 4)}
                                   for level, hits in sorted(levels.items(), key=lambda item: _level_order(item[0]))}
        report["difficulty_missing"] = count - sum(len(hits) for hits in levels.values())
    return report, samples


def _level_order(level: str) -> tuple:
    """`Level 2` before `Level 10`, numbers by value, other text after, alphabetically."""
    found = re.search(r"-?\d+(?:\.\d+)?", level)
    return (0, float(found.group()), level) if found else (1, 0.0, level)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a temporary sibling and move it into place: a reader sees the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def pm(value: float, se: float) -> str:
    """`61.00% ± 4.88%`: a rate and its standard error."""
    return f"{value:.2%} ± {se:.2%}"


def write_reports(out: Path, report: dict, samples: list[dict]) -> None:
    import orjson

    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "samples.jsonl", b"".join(orjson.dumps(row) + b"\n" for row in samples))
    write_atomic(out / "report.json", (json.dumps(report, indent=1) + "\n").encode())
    ks = list(report["pass_at_k"])
    prompt = f"{report['shots']}-shot prompt" if report["shots"] else "zero-shot prompt"
    lines = [f"# {report['model']} on {report['benchmark']} ({report['split']}, {report['questions']} questions)",
             "", f"n={report['n']} samples per question, temperature {report['temperature']:g}, "
                 f"max_tokens {report['max_tokens']}, {prompt}; verifier `{report['verifier']}`.", "",
             f"Accuracy (maj1@1{', greedy' if report['temperature'] == 0 else ''}): "
             f"{pm(report['accuracy'], report['accuracy_se'])} (± 1 standard error).", "",
             "| k | maj1@k | pass@k |", "|---|---|---|"]
    lines += [f"| {k} | {pm(report['maj_at_k'][k], report['maj_at_k_se'][k])} | "
              f"{pm(report['pass_at_k'][k], report['pass_at_k_se'][k])} |" for k in ks]
    lines += ["", "Standard errors are over questions: sqrt(p(1-p)/n) for the accuracy, the standard deviation of "
                  "the per-question values over sqrt(n) for maj1@k and pass@k.", "",
              f"Distinct reasoning paths per question (correct samples, equation keys): mean "
              f"{report['distinct_paths_mean']}.", "", "Every graded sample: `samples.jsonl`.", ""]
    if report.get("by_difficulty"):
        lines += ["Accuracy by difficulty (the benchmark's difficulty column; maj1@1 ± 1 standard error):", "",
                  "| difficulty | questions | accuracy |", "|---|---|---|"]
        lines += [f"| {level} | {row['questions']} | {pm(row['accuracy'], row['accuracy_se'])} |"
                  for level, row in report["by_difficulty"].items()]
        if report.get("difficulty_missing"):
            lines += [f"| (none given) | {report['difficulty_missing']} | — |"]
        lines += [""]
    if report.get("failed_requests"):
        lines += [f"{report['failed_requests']} of {report['requests']} requests were refused by the server (e.g. a "
                  "question past the model's context window): each counts as a miss and is in `samples.jsonl` "
                  "with verdict `failed` and the server's reason.", ""]
    lines += ["![pass@k](plots/pass_at_k.png)", "![distinct paths](plots/distinct_paths.png)", ""]
    write_atomic(out / "report.md", "\n".join(lines).encode())
    _plots(out / "plots", report)


def _plots(folder: Path, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(exist_ok=True)
    ks = list(report["pass_at_k"])
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    for key, marker, label in (("pass_at_k", "o", "pass@k"), ("maj_at_k", "s", "maj1@k")):
        ax.errorbar([int(k) for k in ks], [report[key][k] for k in ks], yerr=[report[f"{key}_se"][k] for k in ks],
                    marker=marker, capsize=3, label=label)
    ax.set_xlabel("k")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "pass_at_k.png", metadata={"Software": None})
    plt.close(fig)
    hist = report["distinct_paths_histogram"]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.bar(list(hist), list(hist.values()))
    ax.set_xlabel("distinct correct reasoning paths")
    ax.set_ylabel("questions")
    fig.tight_layout()
    fig.savefig(folder / "distinct_paths.png", metadata={"Software": None})
    plt.close(fig)


def summary_rows(reports: dict[str, dict]) -> list[dict]:
    """One row per benchmark: accuracy, maj1@n and pass@n (n = samples per question), each with its error."""
    rows = []
    for name, r in reports.items():
        k = str(r["n"])
        rows.append({"name": name, "benchmark": r["benchmark"], "questions": r["questions"], "n": r["n"],
                     "accuracy": r["accuracy"], "accuracy_se": r["accuracy_se"], "maj_at_n": r["maj_at_k"][k],
                     "maj_at_n_se": r["maj_at_k_se"][k], "pass_at_n": r["pass_at_k"][k],
                     "pass_at_n_se": r["pass_at_k_se"][k], "distinct_paths_mean": r["distinct_paths_mean"]})
    return rows


def write_summary(out: Path, reports: dict[str, dict]) -> None:
    """`summary.json` and the combined table `report.md` over the benchmarks' reports (`<name>/report.md`)."""
    rows = summary_rows(reports)
    write_atomic(out / "summary.json", (json.dumps(rows, indent=1) + "\n").encode())
    first = next(iter(reports.values()))
    lines = [f"# {first['model']} on {len(reports)} benchmarks", "",
             f"n={first['n']} samples per question, temperature {first['temperature']:g}, "
             f"{first['shots']}-shot; ± 1 standard error over questions.", "",
             "| benchmark | questions | accuracy (maj1@1) | maj1@n | pass@n | distinct paths | report |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['questions']} | {pm(r['accuracy'], r['accuracy_se'])} | "
              f"{pm(r['maj_at_n'], r['maj_at_n_se'])} | {pm(r['pass_at_n'], r['pass_at_n_se'])} | "
              f"{r['distinct_paths_mean']} | [{r['name']}/report.md]({r['name']}/report.md) |" for r in rows]
    write_atomic(out / "report.md", ("\n".join(lines) + "\n").encode())
