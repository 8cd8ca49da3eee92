"""A competent teacher for the multi-path family: answers the synthesis stages' real prompts from the problem's paths."""
from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from fractions import Fraction

from mathforge.testing import multipath
from mathforge.testing.fake_openai import prompt_text

TUTOR_MARK = "Review a student's solution to a math problem."
DIVERSIFY_MARKS = ("in a way that differs from the most obvious approach", "in a way that differs from the reference")
EXPAND_MARK = "Write ONE NEW problem that is related to the seed problem"
RETROSPECT_MARK = "the way a solver who catches their own mistake writes it"
SOLVE_MARK = 'Solve step by step, one step per line, and end with a final line "#### <number>".\n\n'
QUESTION_RE = re.compile(r"Problem:\n(.*?)\n\n(?:Student's solution \(|Your solution:|Reference solution:|Solution:|A correct "
                         r"solution:)", re.S)
STEP_RE = re.compile(r"^Step (\d+): (.*)$", re.M)
STEP_FORM_RE = re.compile(r"\s*(?:<<[^<>\n]*>>\s*)+")  # a step of the family: calculations and nothing else
ANNOTATED_RE = re.compile(r"<<(\d+)([-+*/])(\d+)=(\d+)>>")


@dataclass(frozen=True)
class Review:
    """The first wrong step (1-based; None: the attempt is right), why, and the steps that continue correctly from
    the step before it to the answer (annotation lines, then `#### n`)."""

    first_wrong: int | None
    why: str
    continuation: list[str]


def review(row: dict, steps: list[str]) -> Review:
    """Read a student's numbered steps against the problem's listed paths: a step is wrong when an annotation is
    miscomputed or unreadable, uses a number neither given nor computed before, or leaves every listed path (its
    steps so far are no path's first steps); the `#### n` step when n is not the answer or the work before it has
    not reached it. The continuation follows the first listed path that begins with the right steps kept."""
    paths = multipath.path_keys(row)
    lines = {key: text for key, text in zip(paths, (s.split("\n#### ")[0].split("\n") for s in row["solutions"]))}
    available = {Fraction(int(n)) for n in multipath.NUMBER.findall(row["question"])}
    done: list[tuple] = []
    for number, step in enumerate(steps, 1):
        final = multipath.FINAL.search(step)
        if final is not None and not multipath.ANNOTATION.search(step):
            if multipath._number(final.group(1)) != Fraction(row["final"]):
                return _wrong(row, paths, lines, done, number, f"the answer is {row['final']}, not {final.group(1)}")
            if tuple(done) not in paths:
                return _wrong(row, paths, lines, done, number, "the work stops before the answer is reached")
            return Review(None, "", [])
        if final is not None or not STEP_FORM_RE.fullmatch(step):  # the family writes calculations, one per step
            return _wrong(row, paths, lines, done, number, "this step is not a calculation of the solution")
        kept = tuple(done)  # the fix replaces the whole wrong step: a right calculation before the wrong one in the
        for body in multipath.ANNOTATION.findall(step):  # same step is written again, not assumed
            lhs, eq, rhs = body.partition("=")
            value, numbers, ops = multipath._arithmetic(lhs)
            result = multipath._number(rhs) if eq else None
            if value is None or result is None or len(ops) != 1:
                return _wrong(row, paths, lines, kept, number, f"<<{body}>> is not one calculation")
            if value != result:
                return _wrong(row, paths, lines, kept, number, f"{lhs.strip()} is {_show(value)}, not {rhs.strip()}")
            if any(x not in available for x in numbers):
                return _wrong(row, paths, lines, kept, number, f"<<{body}>> uses a number that is neither given nor "
                                                                 "computed before")
            key = multipath.step_key(numbers[0], ops[0], numbers[1], result)
            if not any(path[:len(done) + 1] == (*done, key) for path in paths):
                return _wrong(row, paths, lines, kept, number, f"<<{body}>> does not lead to the answer")
            done.append(key)
            available.add(result)
    return _wrong(row, paths, lines, done, len(steps), "the solution never states its final answer") if steps else \
        Review(1, "there is no solution", [])


def _wrong(row: dict, paths: list[tuple], lines: dict, done, number: int, why: str) -> Review:
    """Step `number` is wrong: the continuation follows the first listed path that begins with `done`, the
    calculations of the steps before it."""
    path = next(path for path in paths if path[:len(done)] == tuple(done))
    return Review(number, why, [*lines[path][len(done):], f"#### {row['final']}"])


def _show(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


class CompetentTeacher:
    """The reply function of a FakeOpenAI server (`FakeOpenAI(CompetentTeacher(rows))`): every stage prompt it knows
    is answered from the problem's row, found by its question."""

    def __init__(self, rows: list[dict]):
        self.rows = {row["question"]: row for row in rows}

    def __call__(self, payload: dict) -> str:
        prompt = prompt_text(payload)
        rng = random.Random(int(hashlib.sha256(f"{prompt}|{payload.get('seed')}".encode()).hexdigest()[:16], 16))
        if TUTOR_MARK in prompt:
            return self.tutor(prompt)
        if any(mark in prompt for mark in DIVERSIFY_MARKS):
            return self.diversify(prompt, rng)
        if EXPAND_MARK in prompt:
            return self.expand(prompt, rng)
        if RETROSPECT_MARK in prompt:
            return self.retrospect(prompt, rng)
        if prompt.startswith(SOLVE_MARK):
            return self.solve(prompt[len(SOLVE_MARK):].strip(), rng)
        raise ValueError("not a prompt this teacher knows")

    def _row(self, prompt: str) -> dict:
        return self.rows[QUESTION_RE.search(prompt).group(1).strip()]

    def diversify(self, prompt: str, rng: random.Random) -> str:
        """A listed path other than the gold's (the seed picks which)."""
        row = self._row(prompt)
        others = [s for s in row["solutions"] if s != row["answer"]] or row["solutions"]
        return rng.choice(others)

    def expand(self, prompt: str, rng: random.Random) -> str:
        """A new problem of the seed's template (new names and numbers) with one of its listed paths; remembered, so
        the solve prompt for it is answered too."""
        seed = self._row(prompt)
        while True:
            row = multipath.problem(rng)
            if row["template"] == seed["template"] and row["question"] not in self.rows:
                break
        self.rows[row["question"]] = row
        return json.dumps({"problem": row["question"], "solution": row["answer"]})

    def solve(self, question: str, rng: random.Random | None = None) -> str:
        """One of the problem's listed paths (the request's seed picks which: a sampling server's k replies differ)."""
        row = self.rows.get(question)
        if row is None:
            return "I cannot solve this problem.\n#### 0"
        return rng.choice(row["solutions"]) if rng is not None else row["answer"]

    def retrospect(self, prompt: str, rng: random.Random) -> str:
        """A listed path with one planted miscomputation (a step's result off by one, written out), then `[back]`
        naming it, then the path again from that step."""
        row = self._row(prompt)
        path = rng.choice(row["solutions"]).split("\n#### ")[0].split("\n")
        at = rng.randrange(len(path))
        x, op, y, r = ANNOTATED_RE.fullmatch(path[at]).groups()
        wrong = int(r) + rng.choice((-1, 1))
        lines = [*path[:at], f"{x}{op}{y} = {wrong}",
                 f"[back] Step {at + 1} is wrong: {x}{op}{y} = {r}, not {wrong}.", *path[at:], f"#### {row['final']}"]
        return "\n".join(lines)

    def tutor(self, prompt: str) -> str:
        question = QUESTION_RE.search(prompt).group(1).strip()
        steps = [text for _, text in STEP_RE.findall(prompt.split("\n\nStudent's solution (", 1)[1])]
        found = review(self.rows[question], steps)
        if found.first_wrong is None:
            return json.dumps({"verdict": "correct", "first_wrong_step": None, "explanation": None, "correction": None})
        return json.dumps({"verdict": "wrong", "first_wrong_step": found.first_wrong,
                           "explanation": f"Step {found.first_wrong} is wrong: {found.why}.",
                           "correction": "\n".join(found.continuation)})
