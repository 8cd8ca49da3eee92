"""MATH-scale grading: canonical `mathforge collect` and `mathforge grade --mode math` on >= 1 M MATH-style samples."""

# Input: MATH train's 7,500 problems x k samples x m models. A sample is the problem's human solution with its box
# taken out, a distinct opening line, and one ending drawn from a fixed mix (census printed): the gold in a surface
# form (as written, \dfrac, 0.5, 1/2, a mixed number, spacing, `$...$`), boxed, as a "The final answer is" sentence or a
# Minerva line; a near miss (the last digit moved by one, the sign flipped, a 2-digit rounding); one of the problem's
# three common wrong answers (other problems' golds, fixed per problem); an unparseable ending (no answer, an unclosed
# box, a prose refusal). Second row: the same samples respelled (each one's solution math re-spaced on its own: no
# shared region texts). Third: the old shape (real solutions: own, re-spelled, one injected error, three
# other problems' solutions). The reference, plain Math-Verify (parse + verify, one process), is timed on a seeded
# sample of the same pairs. `--check` grades every distinct (gold, answer) pair that the fast path decides again on the
# slow path (grader.reference_compare) and lists each difference.
from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

from mathforge.testing.latex_variants import inject_error, reformat
from mathforge.verify.extract import gold_answer
from mathforge.verify.exact_forms import _items, reading
from mathforge.verify.normalize import exact_number, normalize

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = HERE / "data" / "math_scale"
OPENERS = ["Let's solve this step by step.", "We work through the problem carefully.", "First, we restate the problem.",
           "Here is a solution.", "Consider the given information.", "We begin by analyzing the problem.",
           "To solve this, we proceed as follows.", "Let us think about this."]
MIX = [("gold", 45), ("near miss", 20), ("common wrong", 25), ("unparseable", 10)]


def form(answer: str | None) -> str:
    """The census form of a normalized gold answer, as the fast path sees it."""
    if answer is None:
        return "none"
    if exact_number(answer) is not None:
        return "plain number or fraction"
    if (items := _items(answer)) is not None:
        return "tuple/interval (fast)" if all(reading(i) is not None for i in items[1]) else "tuple/interval (other)"
    found = reading(answer)
    if found is not None:
        poly, _ = found
        return "polynomial (fast)" if any(m for m in poly) else "radical/pi/expression value (fast)"
    if "," in answer:
        return "multiple answers / other list"
    return "other (Math-Verify)"


def surface_forms(answer: str) -> list[str]:
    """The gold written several ways (all equal to it)."""
    forms = [answer, answer.replace("\\frac", "\\dfrac"), " ".join(answer.replace("+", " + ").split())]
    value = exact_number(normalize(answer))
    if value is not None and value.denominator != 1:
        p, q = value.numerator, value.denominator
        sign = "-" if p < 0 else ""
        forms += [f"{sign}\\frac{{{abs(p)}}}{{{q}}}", f"{p}/{q}"]
        if abs(p) < 10 and q < 10:
            forms.append(f"{sign}\\dfrac{abs(p)}{q}")
        if 2 ** 40 % q == 0 or 5 ** 40 % q == 0 or 10 ** 40 % q == 0:
            forms.append(_decimal(value))
        if abs(value) > 1:
            whole, rest = divmod(abs(p), q)
            forms.append(f"{sign}{whole}\\frac{{{rest}}}{{{q}}}")
    elif value is not None:
        forms += [f"{value.numerator}", f"{value.numerator}.0"]
    return list(dict.fromkeys(forms))


def _decimal(value: Fraction) -> str:
    for places in range(1, 41):
        if (value * 10 ** places).denominator == 1:
            return f"{float(value):.{places}f}" if places < 15 else str(value)
    return str(value)


def near_misses(answer: str) -> list[str]:
    out = []
    digits = list(re.finditer(r"\d", answer))
    if digits:
        d = digits[-1]
        out.append(answer[:d.start()] + str((int(d.group()) + 1) % 10) + answer[d.end():])
    out.append(answer[1:] if answer.startswith("-") else "-" + answer if not answer.startswith(("(", "[")) else answer)
    value = exact_number(normalize(answer))
    if value is not None and value.denominator not in (1, 2, 4, 5, 8, 10):
        out.append(f"{float(value):.2f}")
    return [m for m in dict.fromkeys(out) if m != answer]


def ending(answer: str, rng: random.Random) -> str:
    style = rng.randrange(3)
    if style == 0:
        return f"Therefore the answer is $\\boxed{{{answer}}}$."
    if style == 1:
        return f"The final answer is $\\boxed{{{answer}}}$."
    return f"Final Answer: The final answer is ${answer}$. I hope it is correct."


UNPARSEABLE_ENDINGS = ["I am not sure how to finish this.", "So the answer is \\boxed{", "Hence we cannot determine it",
                       "The answer depends on the case, and I will stop here"]


def generate(k: int, models: int, seed: int) -> dict:
    rows = [json.loads(line) for line in (ROOT.parent / "shared/data/math/train.jsonl").read_text().splitlines()]
    rng = random.Random(seed)
    golds = [gold_answer(r["solution"], "math") for r in rows]
    census = Counter(form(normalize(g) if g else None) for g in golds)
    DATA.mkdir(parents=True, exist_ok=True)
    with open(DATA / "gold.jsonl", "w") as handle:
        for r in rows:
            handle.write(json.dumps({"question": r["problem"], "answer": r["solution"]}) + "\n")
    kinds, endings = Counter(), Counter()
    with open(DATA / "samples.jsonl", "w") as samples, open(DATA / "pairs.jsonl", "w") as pairs:
        for i, (row, gold) in enumerate(zip(rows, golds)):
            if gold is None:
                continue
            body = re.sub(r"\\boxed\s*\{", "{", row["solution"])
            forms, misses = surface_forms(gold), near_misses(gold)
            wrong = [golds[(i + s) % len(rows)] for s in (1, 37, 1001)]
            wrong = [w for w in wrong if w and w != gold] or misses or ["0"]
            for m in range(models):
                for j in range(k):
                    kind = rng.choices([name for name, _ in MIX], [w for _, w in MIX])[0]
                    if kind == "gold":
                        text, answer = ending(rng.choice(forms), rng), True
                    elif kind == "near miss" and misses:
                        text = ending(rng.choice(misses), rng)
                    elif kind in ("near miss", "common wrong"):
                        kind = "common wrong"
                        text = ending(rng.choice(wrong), rng)
                    else:
                        text = rng.choice(UNPARSEABLE_ENDINGS)
                    kinds[kind] += 1
                    endings[text.split(" ", 2)[0]] += 1
                    solution = f"{OPENERS[(j + m) % len(OPENERS)]} (Attempt {m}.{j}.)\n\n{body}\n\n{text}"
                    samples.write(json.dumps({"idx": i, "model": f"model{m}", "solution": solution}) + "\n")
                    pairs.write(json.dumps({"gold": gold, "pred": solution}) + "\n")
    return {"census": dict(census.most_common()), "answer_mix": dict(kinds), "problems": len(rows),
            "samples": sum(kinds.values())}


def old_shape(problems: int, seed: int) -> dict:
    """The issue's old input: real MATH solutions, 6 samples per problem (own, re-spelled, one injected error, three
    other problems'), and 10,000 (gold answer, real solution) pairs from them."""
    rows = [json.loads(line) for line in (ROOT.parent / "shared/data/math/train.jsonl").read_text().splitlines()]
    rows = rows[-problems:]
    rng = random.Random(seed)
    out = DATA / "old"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "gold.jsonl", "w") as handle:
        for r in rows:
            handle.write(json.dumps({"question": r["problem"], "answer": r["solution"]}) + "\n")
    samples, pairs = [], []
    for i, r in enumerate(rows):
        injected = inject_error(r["solution"], rng, keep_answer=True)
        texts = [r["solution"], reformat(r["solution"]), injected[0] if injected else reformat(r["solution"]) + " "]
        texts += [rows[(i + s) % len(rows)]["solution"] for s in (1, 2, 3)]
        gold = gold_answer(r["solution"], "math")
        for m, text in enumerate(texts):
            samples.append({"idx": i, "model": f"v{m}", "solution": text})
            if gold is not None:
                pairs.append({"gold": gold, "pred": text})
    pairs = [pairs[j] for j in sorted(rng.sample(range(len(pairs)), min(10_000, len(pairs))))]
    (out / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (out / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return {"samples": len(samples), "pairs": len(pairs)}


_OPERATOR = re.compile(r"(?<!\\)\s*([=+-]|,(?!\d))\s*")  # not a thousands comma: `1,000` stays one number


def respelled(seed: int) -> dict:
    """The main input with every sample's solution math re-spelled on its own (a random 0-2 spaces on each side of
    every `=`, `+`, `-` and list comma in the math regions before its ending; the ending, its answer, as it was): the
    same solutions, read the same, but a problem's samples no longer share their math regions' texts, so the equation
    reader's region memo cannot use the generator's repetition."""
    from mathforge.verify.relations import regions

    out = DATA / "respelled"
    out.mkdir(parents=True, exist_ok=True)
    (out / "gold.jsonl").write_bytes((DATA / "gold.jsonl").read_bytes())
    rng, spaces = random.Random(seed + 1), ("", " ", "  ")
    n = 0
    with open(DATA / "samples.jsonl") as source, open(out / "samples.jsonl", "w") as target:
        for line in source:
            row = json.loads(line)
            text, pieces, last = row["solution"], [], 0
            ending = text.rfind("\n\n")  # the ending (the answer) as it was: only the solution's math changes
            for kind, start, end in regions(text):
                if kind == "math" and end <= ending:
                    body = _OPERATOR.sub(lambda m: rng.choice(spaces) + m.group(1) + rng.choice(spaces),
                                         text[start:end])
                    pieces += [text[last:start], body]
                    last = end
            row["solution"] = "".join(pieces) + text[last:]
            target.write(json.dumps(row) + "\n")
            n += 1
    return {"samples": n}


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS of the largest child process in MB, stdout) of one whole command."""
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{cmd} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, done.stdout


def run_collect(base: Path, workers: int) -> dict:
    out = base / "collect-out"
    report = base / "tasks.json"
    exe = str(Path(sys.executable).parent / "mathforge")
    seconds, rss, _ = timed([exe, "collect", "--gold", str(base / "gold.jsonl"), "--samples", str(base / "samples.jsonl"),
                             "--out", str(out), "--dedup", "canonical", "--workers", str(workers), "--overwrite",
                             "--task-report", str(report)])
    tasks = json.loads(report.read_text())["partitions"]
    stats = json.loads((out / "stats.json").read_text())
    paths = sum((Counter(t.get("grading", {})) for t in tasks), Counter())
    samples = sum(t["samples"] for t in tasks)
    return {"samples": samples, "seconds": round(seconds, 2), "samples_per_s": round(samples / seconds),
            "peak_rss_mb": round(rss, 1), "partition_seconds": [t["seconds"] for t in tasks],
            "partition_peak_rss_mb": max(t["peak_rss_mb"] for t in tasks), "paths": dict(paths),
            "equation_memo": dict(sum((Counter(t.get("equation memo", {})) for t in tasks), Counter())),
            "correct": stats.get("correct"), "distinct": stats.get("distinct")}


def run_grade(pairs: Path, workers: int) -> dict:
    exe = str(Path(sys.executable).parent / "mathforge")
    seconds, rss, out = timed([exe, "grade", str(pairs), "--out", str(pairs.with_name("graded.jsonl")), "--mode",
                               "math", "--workers", str(workers)])
    n = sum(1 for _ in open(pairs))
    line = " ".join(out.split())
    return {"pairs": n, "seconds": round(seconds, 2), "pairs_per_s": round(n / seconds), "peak_rss_mb": round(rss, 1),
            "output": line}


def reference(pairs: Path, sample: int, seed: int) -> dict:
    """Plain Math-Verify (parse both sides, verify; its own timeouts off), one process, on a seeded sample."""
    from math_verify import parse, verify

    from mathforge.verify.grader import _quiet_math_verify

    _quiet_math_verify()
    rows = [json.loads(line) for line in open(pairs)]
    chosen = random.Random(seed).sample(rows, min(sample, len(rows)))
    started = time.perf_counter()
    for row in chosen:
        try:
            verify(parse(row["gold"], parsing_timeout=None), parse(row["pred"], parsing_timeout=None), timeout_seconds=None)
        except Exception:
            pass
    seconds = time.perf_counter() - started
    return {"pairs": len(chosen), "seconds": round(seconds, 2), "pairs_per_s": round(len(chosen) / seconds, 1)}


def check(pairs: Path, limit: int | None) -> dict:
    """Every distinct normalized (gold, answer) pair that the fast path decides (or a multiple answer, whose parts it may
    decide) graded again on the slow path; differences listed. The other pairs take the same code on both paths, and a
    memo hit returns the verdict of the same normalized pair."""
    from mathforge.verify.extract import final_answer
    from mathforge.verify.exact_forms import decide
    from mathforge.verify.grader import reference_compare
    from mathforge.verify.normalize import answer_list

    seen, differences, fast, distinct = set(), [], 0, set()
    started = time.perf_counter()
    for line in open(pairs):
        row = json.loads(line)
        answer, _ = final_answer(row["pred"], "math")
        if answer is None:
            continue
        g, p = normalize(row["gold"]), normalize(answer)
        distinct.add((row["gold"], p))
        if (g, p) in seen:
            continue
        seen.add((g, p))
        if decide(g, p) is None and len(answer_list(g)) < 2 and len(answer_list(p)) < 2:
            continue  # neither fast-decided nor a multiple answer whose parts may be: the same code on both paths
        fast += 1
        if limit is not None and fast > limit:
            break
        from mathforge.verify.grader import compare
        new, old = compare(row["gold"], answer), reference_compare(row["gold"], answer)
        if new[0] != old[0]:
            differences.append({"gold": row["gold"], "answer": answer, "fast": new, "slow": old})
    return {"distinct_normalized_pairs": len(seen), "checked": fast, "differences": differences,
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reference-sample", type=int, default=2000)
    parser.add_argument("--check", action="store_true", help="slow path on every fast-decided distinct pair")
    parser.add_argument("--check-limit", type=int)
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--check-only", action="store_true", help="only the check, on the input already generated")
    parser.add_argument("--out", default=str(DATA / "results.json"))
    args = parser.parse_args()
    result: dict = {}
    if args.check_only:
        result["check"] = check(DATA / "pairs.jsonl", args.check_limit)
        print(json.dumps(result["check"], indent=1))
        Path(args.out).write_text(json.dumps(result, indent=1))
        return
    if not args.skip_generate:
        result["input"] = generate(args.k, args.models, args.seed)
        result["old_input"] = old_shape(5000, args.seed)
        result["respelled_input"] = respelled(args.seed)
        print(json.dumps(result, indent=1), flush=True)
    elif Path(args.out).exists():  # the census of the input generated before
        result.update({k: v for k, v in json.loads(Path(args.out).read_text()).items() if k.endswith("input")})
    if not (DATA / "respelled" / "samples.jsonl").exists():
        result["respelled_input"] = respelled(args.seed)
    loop = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    result["loop_1e7_s"] = round(time.perf_counter() - loop, 2)
    result["collect"] = run_collect(DATA, args.workers)
    print("collect", result["collect"], flush=True)
    result["grade"] = run_grade(DATA / "pairs.jsonl", args.workers)
    print("grade", result["grade"], flush=True)
    result["respelled_collect"] = run_collect(DATA / "respelled", args.workers)
    print("respelled collect", result["respelled_collect"], flush=True)
    result["old_collect"] = run_collect(DATA / "old", args.workers)
    result["old_grade"] = run_grade(DATA / "old" / "pairs.jsonl", args.workers)
    print("old", result["old_collect"], result["old_grade"], flush=True)
    result["reference"] = reference(DATA / "pairs.jsonl", args.reference_sample, args.seed)
    print("reference", result["reference"], flush=True)
    if args.check:
        result["check"] = check(DATA / "pairs.jsonl", args.check_limit)
        print("check", {k: v for k, v in result["check"].items() if k != "differences"},
              result["check"]["differences"][:20], flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
