"""Hostile answers against the grader: deep nesting, huge exponents and factorials, 100 KB predictions, LaTeX soup,
regex-backtracking bait; the slowest pair's wall time (the target: none over 1 s)."""
from __future__ import annotations

import argparse
import random
import time

from mathforge.verify.grader import grade

PIECES = [r"\frac{", "}{", "}", "^{", r"\sqrt{", "(", ")", "[", "]", r"\{", r"\}", "!", "+", "-", r"\cdot ",
          "x", "y", "9", "99999", "0.", ",", "=", r"\boxed{", r"\begin{pmatrix}", r"\end{pmatrix}", "&", r"\\",
          r"\infty", r"\pi", "e", "<think>", "</think>", "####", "$", r"\left(", r"\right)", r"\text{", "10^{"]


def hostile(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 7:  # inputs that make backtracking regular expressions scan a text over and over
        return rng.choice(["a", "ab ", "\\[ ", "$$ x ", "\\( ", "x: ", "is ", "= ", "**", "\\boxed{",
                           "final answer is ", "The answer is x ", "<think>"]) * rng.randrange(5_000, 30_000)
    if kind == 0:
        depth = rng.randrange(20, 400)
        return r"\frac{" * depth + "1" + "}{2}" * depth
    if kind == 1:
        return f"{rng.choice(['2', '10', '9'])}^{{{rng.choice(['10^{10}', '99999999', '2^{2^{100}}', '4096'])}}}"
    if kind == 2:
        return f"{rng.choice(['1000000', '99999', '3000'])}!"
    if kind == 3:
        return "word " * 20_000 + r"\boxed{" + "1" * rng.randrange(100, 3000) + "}"
    if kind == 4:
        return "(" * rng.randrange(100, 5000) + "1" + ")" * rng.randrange(100, 5000)
    if kind == 5:
        return r"\boxed{" + " + ".join(f"x^{{{rng.randrange(1, 60)}}}" for _ in range(rng.randrange(50, 400))) + "}"
    return "".join(rng.choice(PIECES) for _ in range(rng.randrange(5, 300)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    golds = [r"\frac{1}{2}", "42", r"2\sqrt{2}", r"x^2+1", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}"]
    grade("1", "1", "math")  # imports outside the timing
    worst, verdicts = (0.0, None), {}
    for _ in range(args.pairs):
        gold, pred = rng.choice(golds), hostile(rng)
        started = time.perf_counter()
        verdict = grade(gold, pred, rng.choice(["math", "auto"]))
        seconds = time.perf_counter() - started
        verdicts[verdict.verdict] = verdicts.get(verdict.verdict, 0) + 1
        if seconds > worst[0]:
            worst = (seconds, pred[:80])
    print(f"{args.pairs} hostile pairs: slowest {worst[0]:.3f} s ({worst[1]!r}...); verdicts {verdicts}")


if __name__ == "__main__":
    main()
