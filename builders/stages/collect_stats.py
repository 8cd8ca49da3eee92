"""Build statistics: counts, distinct paths per problem, pass@k over sample order, per-model union, gold audit."""
from __future__ import annotations

from collections import Counter

from mathforge.builders.publish.card import counted_spread

AUDIT_MIN_VOTES = 4


class PartialStats:
    """What one partition (or one input file) contributes to stats.json, in a form that adds up: counters and
    per-problem histograms, never per-sample lists, so merging thousands of partitions stays small."""

    COUNTERS = ("reasons", "model_samples", "model_correct", "kept_by_model", "only_solver", "distinct",
                "firsts", "pass_rate", "reasoning_chars", "reasoning_tokens")
    NUMBERS = ("problems", "samples", "correct", "replacements", "levenshtein_calls", "most", "gold_unparseable",
               "ungrounded_rows", "ungrounded_operands")

    def __init__(self) -> None:
        for name in self.COUNTERS:
            setattr(self, name, Counter())
        for name in self.NUMBERS:
            setattr(self, name, 0)
        self.audit: list[dict] = []
        self.examples: list[tuple[str, int, str]] = []
        self.short_files: list[tuple[str, int]] = []

    def reject(self, source: str, line: int, reason: str) -> None:
        self.reasons[reason] += 1
        if len(self.examples) < 20:
            self.examples.append((source, line, reason))

    def add_problem(self, problem, result, judge) -> None:
        """Fold one collected problem (a collect.ProblemResult) in."""
        self.problems += 1
        self.gold_unparseable += judge.gold[problem.index - judge.offset] is None  # no sample can match these
        self.samples += result.samples
        self.correct += result.correct
        self.distinct[len(result.kept)] += 1
        self.kept_by_model.update(k.model for k in result.kept)
        self.ungrounded_rows += sum(1 for k in result.kept if k.ungrounded)
        self.ungrounded_operands += sum(k.ungrounded for k in result.kept)
        if len(result.solved_by) == 1:
            self.only_solver[next(iter(result.solved_by))] += 1
        self.most = max(self.most, result.samples)
        if result.first_correct is not None:
            self.firsts[result.first_correct] += 1
        self.pass_rate[_pass_rate_label(result)] += 1
        flagged = audit_problem(problem, result, judge)
        if flagged is not None and len(self.audit) < 200:
            self.audit.append(flagged)

    def to_json(self) -> dict:
        out = {name: {str(k): v for k, v in getattr(self, name).items()} for name in self.COUNTERS}
        out.update({name: getattr(self, name) for name in self.NUMBERS})
        out.update(audit=self.audit, examples=self.examples, short_files=self.short_files)
        return out

    @classmethod
    def from_json(cls, data: dict) -> "PartialStats":
        part = cls()
        for name in cls.COUNTERS:
            keyed = int if name in ("distinct", "firsts", "reasoning_chars", "reasoning_tokens") else str
            setattr(part, name, Counter({keyed(k): v for k, v in data[name].items()}))
        for name in cls.NUMBERS:
            setattr(part, name, data.get(name, 0))
        part.audit = data["audit"]
        part.examples = [tuple(e) for e in data["examples"]]
        part.short_files = [tuple(f) for f in data["short_files"]]
        return part

    def merge(self, other: "PartialStats") -> "PartialStats":
        for name in self.COUNTERS:
            getattr(self, name).update(getattr(other, name))
        for name in self.NUMBERS:
            if name == "most":
                self.most = max(self.most, other.most)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))
        self.audit = (self.audit + other.audit)[:200]
        self.examples = (self.examples + other.examples)[:20]
        self.short_files += other.short_files
        return self


def build_stats(problems: int, total: PartialStats, judge, sources, include_gold: bool) -> dict:
    """The stats.json of a collect run (integers at top level: samples, correct, distinct) from the merged
    partial statistics of every input file and partition."""
    models = [s.model for s in sources if not s.is_table]  # a table's rows name their model
    for name in total.model_samples:
        if name not in models:
            models.append(name)
    reasoning = reasoning_stats(total)
    return {
        "problems": problems,
        "samples": total.samples,
        "correct": total.correct,
        "distinct": sum(k * v for k, v in total.distinct.items()),
        "gold_rows": problems if include_gold else 0,
        "gold_unparseable": total.gold_unparseable,
        "dedup": judge.name,
        "verifier": judge.verifier,
        "rejected": dict(sorted(total.reasons.items())),
        "replacements": total.replacements,
        "levenshtein_calls": total.levenshtein_calls,
        "distinct_per_problem": {str(k): v for k, v in sorted(total.distinct.items())},
        "pass_at_k": pass_at_k(total.firsts, total.most, problems),
        "pass_rate_histogram": pass_rate_histogram(total.pass_rate),
        "models": {m: {"samples": total.model_samples[m], "correct": total.model_correct[m],
                       "kept": total.kept_by_model[m], "only_solver": total.only_solver[m]} for m in models},
        "gold_audit": {"count": len(total.audit), "problems": total.audit[:200]},
        "grounding": {"kept_with_ungrounded": total.ungrounded_rows, "ungrounded_operands": total.ungrounded_operands,
                      "rejected": total.reasons.get("ungrounded", 0)},
        "inputs": [{"path": s.name(), "model": s.model, "seed_files": len(s.seed_files)} for s in sources],
        "rejected_examples": [{"source": s, "line": n, "reason": r} for s, n, r in total.examples][:20],
        "short_files": [{"path": p, "lines": n} for p, n in total.short_files],
        **({"reasoning": reasoning} if reasoning else {}),
    }


def reasoning_stats(total: PartialStats) -> dict | None:
    """Samples that came with a reasoning trace and the traces' length in characters and whitespace tokens
    (None when no sample had one)."""
    if not total.reasoning_chars:
        return None
    return {"samples": sum(total.reasoning_chars.values()), "chars": spread(total.reasoning_chars),
            "tokens": spread(total.reasoning_tokens)}


def spread(counts: Counter) -> dict:
    """mean (one decimal), median, p90 (the value at rank int(0.9 * (n - 1)) in sorted order, as the card's) of
    values given as value -> how often."""
    figures = counted_spread(counts)
    return {"mean": figures["mean"], "median": figures["median"], "p90": figures["p90"]}


def pass_at_k(firsts: Counter, most: int, problems: int) -> dict[str, float]:
    """Fraction of problems solved within their first k samples (sample order), k = 1, 2, 4, ... and the max;
    `firsts` counts problems by the position of their first correct sample."""
    if most == 0 or problems == 0:
        return {}
    ks = sorted({k for k in (1 << i for i in range(most.bit_length())) if k <= most} | {most})
    out, solved, previous = {}, 0, 0
    for k in ks:
        solved += sum(firsts[p] for p in range(previous, k))
        previous = k
        out[str(k)] = round(solved / problems, 6)
    return out


BINS = 10


def _pass_rate_label(result) -> str:
    if result.samples == 0:
        return "no samples"
    b = min(int(result.correct / result.samples * BINS), BINS - 1)
    return f"{b / BINS:.1f}-{(b + 1) / BINS:.1f}"


def pass_rate_histogram(counts: Counter) -> dict[str, int]:
    """Problems by the fraction of their samples that were correct: ten bins [0, .1), ..., [.9, 1]."""
    labels = [f"{b / BINS:.1f}-{(b + 1) / BINS:.1f}" for b in range(BINS)] + ["no samples"]
    return {label: counts[label] for label in labels if counts[label] or label != "no samples"}


def audit_problem(problem, result, judge) -> dict | None:
    """The gold audit of one problem: flagged when a clear majority of its parseable samples agree on one answer
    that differs from the gold."""
    votes = sum(result.answers.values())
    if votes < AUDIT_MIN_VOTES:
        return None
    answer, count = result.answers.most_common(1)[0]
    gold = judge.gold[problem.index - judge.offset]
    if count * 2 > votes and answer != gold and not (gold is not None and _same(answer, gold)):
        return {"problem_id": problem.problem_id, "index": problem.index, "gold": judge.gold_answer(problem.index),
                "majority": str(answer), "votes": count, "parseable": votes}
    return None


def _same(answer, gold) -> bool:
    try:
        return float(answer) == float(gold)
    except (TypeError, ValueError):
        return False
