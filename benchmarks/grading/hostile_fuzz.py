"""Seeded hostile-input fuzz of extraction, arithmetic and grading: max and p99 seconds per function family, as JSON."""
from __future__ import annotations

import argparse
import json
import random
import sys
import time

from mathforge.verify.answers import boxed_extract, gsm8k_extract, paper_extract, strict_number
from mathforge.verify.arithmetic import Refused, exact_eval, paper_check, python_eval
from mathforge.verify.equations import all_equations, annotations, canonical_equation, reasoning_key
from mathforge.verify.extract import final_answer, gold_answer
from mathforge.verify.grader import ROW_BUDGET_SECONDS, grade
from mathforge.verify.normalize import answer_list, normalize

# tokens whose long runs make backtracking regular expressions rescan a text from every position
RUNS = [" ", "<", "<<", "#", "####", "#### ", "\\boxed{", "{", "}", "1", "9,", "1.", ".", "$", "$$", "\\[", "\\(",
        "a", "ab ", "x: ", "is ", "= ", "=", "**", ":", "\t", "\n", "final answer is ", "The answer is ", "<think>",
        "</think>", "\\frac{1}{2}", "1/3+", "+", "x_", "^{", "!", "\\{", "\\,", "(", ")", ">", "- ", "%"]
MARKERS = ["", "####", "#### ", "#### $", "<<", "<<1+1=", "\\boxed{", "final answer is ", "The answer is ",
           "**", "$$", "\\[", "x = ", "1 + 2 = ", "<think>", "Answer: ", "=", "$", "\\frac{"]
TAILS = ["", "x", "1", ">", ">>", "}", "$", "\n", ". I hope it is correct.", "=3", "!"]


def arithmetic_case(rng: random.Random) -> str:
    """An annotation body built to be expensive: huge powers and shifts, long sums of fractions, deep nesting."""
    kind = rng.randrange(7)
    if kind == 0:
        return "1" + "<<20000" * rng.randrange(1, 60) + "=1"
    if kind == 1:
        return "+".join(f"1/{rng.randrange(2, 10**6)}" for _ in range(rng.randrange(10, 200)))[:999] + "=1"
    if kind == 2:
        inner = "+".join(f"1/{p}" for p in rng.sample(range(2, 5000), 40))
        return "(" * 20 + inner + ")" * 20 + "=0"
    if kind == 3:
        return f"{rng.choice(['9', '2', '10', '7/3'])}**{rng.choice(['9**9', '99999', '20001', '3**3**3'])}=1"
    if kind == 4:
        return "*".join(["9" * rng.randrange(100, 900)] * rng.randrange(2, 12))[:999] + "=1"
    if kind == 5:
        terms = [f"({rng.randrange(1, 99)}/{rng.randrange(1, 99)}+{rng.randrange(1, 99)}/{rng.randrange(1, 99)})"
                 for _ in range(rng.randrange(5, 40))]
        return "*".join(terms)[:999] + "=1"
    return "".join(rng.choice(["1", "9", "<<", ">>", "**", "+", "-", "/", "(", ")", "%", "//", "^", ".5", "e9"])
                   for _ in range(rng.randrange(5, 400))) + "=1"


def hostile_text(rng: random.Random, max_chars: int = 100_000) -> str:
    """A model output shaped to hurt: a marker, a long run of one token, a tail; or nesting, digits, soup."""
    kind = rng.randrange(6)
    size = rng.choice([100, 1_000, 10_000, 40_000, max_chars])
    if kind <= 2:
        run = rng.choice(RUNS)
        return (rng.choice(MARKERS) + run * max(1, size // len(run)) + rng.choice(TAILS))[:max_chars]
    if kind == 3:
        depth = rng.randrange(1, size // 7 + 2)
        return ("\\boxed{" * depth + "1" + "}" * rng.randrange(0, depth + 1))[:max_chars]
    if kind == 4:
        return "<<" + arithmetic_case(rng) + ">>" + rng.choice(["", "\n#### 1", " " * 1000])
    return "".join(rng.choice(RUNS + MARKERS) for _ in range(rng.randrange(1, 2000)))[:max_chars]


def _quiet(fn, *args):
    try:
        fn(*args)
    except (Refused, ArithmeticError, ValueError, TypeError):
        pass


FAMILIES = {
    "extraction": lambda text: [final_answer(text, "auto"), final_answer(text, "math"), final_answer(text, "gsm8k"),
                                gold_answer(text), gsm8k_extract(text, True), paper_extract(text), boxed_extract(text),
                                strict_number(text), normalize(text[:1000]), answer_list(text[:1000])],
    "equations": lambda text: [annotations(text), all_equations(text), reasoning_key(text)],
    "arithmetic": lambda body: [paper_check(body), canonical_equation(body), _quiet(python_eval, body.split("=")[0]),
                                _quiet(exact_eval, body.split("=")[0])],
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--grade-every", type=int, default=10, help="grade every n-th case (grading is slowest)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    grade("1", "1", "math")  # imports outside the timing
    times: dict[str, list[float]] = {name: [] for name in (*FAMILIES, "grading")}
    slowest: dict[str, tuple[float, str]] = {name: (0.0, "") for name in times}
    verdicts: dict[str, int] = {}
    for case in range(args.cases):
        text = hostile_text(rng)
        inputs = {"extraction": text, "equations": text, "arithmetic": arithmetic_case(rng)}
        for name, fn in FAMILIES.items():
            started = time.perf_counter()
            fn(inputs[name])
            seconds = time.perf_counter() - started
            times[name].append(seconds)
            if seconds > slowest[name][0]:
                slowest[name] = (seconds, repr(inputs[name][:60]))
        if case % args.grade_every == 0:
            gold = rng.choice([r"\frac{1}{2}", "42", r"2\sqrt{2}", r"\boxed{1", "#### 7", r"x^2+1"])
            started = time.perf_counter()
            verdict = grade(gold, text, rng.choice(["math", "auto", "gsm8k"]))
            seconds = time.perf_counter() - started
            times["grading"].append(seconds)
            key = f"{verdict.verdict}: {verdict.reason}" if verdict.verdict != "correct" else "correct"
            verdicts[key] = verdicts.get(key, 0) + 1
            if seconds > slowest["grading"][0]:
                slowest["grading"] = (seconds, repr(text[:60]))
    report = {"cases": args.cases, "seed": args.seed, "row_budget_s": ROW_BUDGET_SECONDS,
              "families": {name: {"calls": len(values), "max_ms": round(max(values, default=0) * 1000, 2),
                                  "p99_ms": round(percentile(values, 0.99) * 1000, 2),
                                  "slowest_input": slowest[name][1]} for name, values in times.items()},
              "verdicts": dict(sorted(verdicts.items(), key=lambda kv: -kv[1])[:12])}
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
