"""Build statistics: counts, distinct paths per problem, pass@k over sample order, per-model union, gold audit."""
from __future__ import annotations

import statistics
from collections import Counter

AUDIT_MIN_VOTES = 4


def build_stats(problems, results, judge, sources, include_gold: bool) -> dict:
    """The stats.json of a collect run (integers at top level: samples, correct, distinct)."""
    per_problem = [r for w in results for r in w.problems]
    reasons = sum((w.reasons for w in results), Counter())
    model_samples = sum((w.model_samples for w in results), Counter())
    model_correct = sum((w.model_correct for w in results), Counter())
    kept_by_model = Counter(k.model for r in per_problem for k in r.kept)
    only_solver = Counter(next(iter(r.solved_by)) for r in per_problem if len(r.solved_by) == 1)
    distinct = [len(r.kept) for r in per_problem]
    models = [s.model for s in sources if not s.is_table]  # a table's rows name their model
    for name in model_samples:
        if name not in models:
            models.append(name)
    reasoning = reasoning_stats(results)
    return {
        "problems": len(problems),
        "samples": sum(r.samples for r in per_problem),
        "correct": sum(r.correct for r in per_problem),
        "distinct": sum(distinct),
        "gold_rows": len(problems) if include_gold else 0,
        "gold_unparseable": sum(1 for value in judge.gold if value is None),  # no sample can match these
        "dedup": judge.name,
        "verifier": judge.verifier,
        "rejected": dict(sorted(reasons.items())),
        "replacements": sum(w.replacements for w in results),
        "levenshtein_calls": sum(w.levenshtein_calls for w in results),
        "distinct_per_problem": {str(k): v for k, v in sorted(Counter(distinct).items())},
        "pass_at_k": pass_at_k(per_problem),
        "pass_rate_histogram": pass_rate_histogram(per_problem),
        "models": {m: {"samples": model_samples[m], "correct": model_correct[m], "kept": kept_by_model[m],
                       "only_solver": only_solver[m]} for m in models},
        "gold_audit": gold_audit(problems, per_problem, judge),
        "inputs": [{"path": s.path, "model": s.model, "seed_files": len(s.seed_files)} for s in sources],
        "rejected_examples": [{"source": s, "line": n, "reason": r} for w in results for s, n, r in w.rejected_examples][:20],
        "short_files": [{"path": p, "lines": n} for w in results for p, n in w.short_files],
        **({"reasoning": reasoning} if reasoning else {}),
    }


def reasoning_stats(results) -> dict | None:
    """Samples that came with a reasoning trace and the traces' length in characters and whitespace tokens
    (None when no sample had one)."""
    lengths = [pair for w in results for pair in w.reasoning_lengths]
    if not lengths:
        return None
    return {"samples": len(lengths), "chars": spread([c for c, _ in lengths]),
            "tokens": spread([t for _, t in lengths])}


def spread(values: list[int]) -> dict:
    """mean (one decimal), median, p90 (the value at rank int(0.9 * (n - 1)) in sorted order, as the card's)."""
    values = sorted(values)
    return {"mean": round(statistics.fmean(values), 1), "median": statistics.median(values),
            "p90": values[int(0.9 * (len(values) - 1))]}


def pass_at_k(per_problem) -> dict[str, float]:
    """Fraction of problems solved within their first k samples (sample order), k = 1, 2, 4, ... and the max."""
    most = max((r.samples for r in per_problem), default=0)
    if most == 0:
        return {}
    ks = sorted({k for k in (1 << i for i in range(most.bit_length())) if k <= most} | {most})
    firsts = Counter(r.first_correct for r in per_problem if r.first_correct is not None)
    out, solved, previous = {}, 0, 0
    for k in ks:
        solved += sum(firsts[p] for p in range(previous, k))
        previous = k
        out[str(k)] = round(solved / len(per_problem), 6)
    return out


def pass_rate_histogram(per_problem, bins: int = 10) -> dict[str, int]:
    """Problems by the fraction of their samples that were correct: ten bins [0, .1), ..., [.9, 1]."""
    counts = Counter()
    for r in per_problem:
        if r.samples == 0:
            counts["no samples"] += 1
        else:
            b = min(int(r.correct / r.samples * bins), bins - 1)
            counts[f"{b / bins:.1f}-{(b + 1) / bins:.1f}"] += 1
    labels = [f"{b / bins:.1f}-{(b + 1) / bins:.1f}" for b in range(bins)] + ["no samples"]
    return {label: counts[label] for label in labels if counts[label] or label != "no samples"}


def gold_audit(problems, per_problem, judge) -> dict:
    """Problems where a clear majority of parseable samples agree on one answer that differs from the gold."""
    flagged = []
    for problem, result in zip(problems, per_problem):
        votes = sum(result.answers.values())
        if votes < AUDIT_MIN_VOTES:
            continue
        answer, count = result.answers.most_common(1)[0]
        gold = judge.gold[problem.index]
        if count * 2 > votes and answer != gold and not (gold is not None and _same(answer, gold)):
            flagged.append({"problem_id": problem.problem_id, "index": problem.index,
                            "gold": judge.gold_answer(problem.index), "majority": str(answer),
                            "votes": count, "parseable": votes})
    return {"count": len(flagged), "problems": flagged[:200]}


def _same(answer, gold) -> bool:
    try:
        return float(answer) == float(gold)
    except (TypeError, ValueError):
        return False
