"""The `scripted` backend's model: plays student, teacher, writers and solver on synthetic problems, erring on purpose."""
from __future__ import annotations

import hashlib
import json
import random
import re

from mathforge.testing import synthetic
from mathforge.testing.fake_openai import prompt_text

QUESTION_RE = re.compile(r"(?P<name>[A-Z][a-z]+) has (?P<a>\d+) (?P<item>[a-z]+)\. A friend gives (?P=name) (?P<b>\d+) "
                         r"more\. Then (?P=name) buys (?P<c>\d+) boxes with (?P<d>\d+) (?P=item) each\. How many "
                         r"(?P=item) does (?P=name) have altogether\?")
STEPS_RE = re.compile(r"^Step \d+: (.*)$", re.M)
ROLES = ("student", "teacher", "diversify", "expand", "solver", "retrospect")


def solve(match: re.Match) -> dict:
    """The synthetic problem a question states, rebuilt: {question, answer, solutions}."""
    a, b, c, d = (int(match.group(k)) for k in "abcd")
    name, item = match.group("name"), match.group("item")
    s1, s2, total = a + b, c * d, a + b + c * d
    first = f"{name} has {a}+{b} = <<{a}+{b}={s1}>>{s1} {item} after the gift."
    second = f"The boxes hold {c}*{d} = <<{c}*{d}={s2}>>{s2} {item}."
    last = f"Altogether {name} has {s1}+{s2} = <<{s1}+{s2}={total}>>{total} {item}.\n#### {total}"
    return {"question": match.group(0), "total": total, "steps": [first, second, last],
            "solutions": [f"{first}\n{second}\n{last}", f"{second}\n{first}\n{last}"]}


def _rng(payload: dict, text: str) -> random.Random:
    digest = hashlib.sha256(f"{text}|{payload.get('seed')}".encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def _wrong(solution: str, total: int) -> str:
    """The last step miscomputed: a wrong annotation and a wrong final answer."""
    head, _, _ = solution.rpartition("\n#### ")
    lines = head.split("\n")
    lines[-1] = re.sub(r"=\d+>>\d+", f"={total + 1}>>{total + 1}", lines[-1])
    return "\n".join(lines) + f"\n#### {total + 1}"


def student(problem: dict, rng: random.Random, _: str) -> str:
    solution = rng.choice(problem["solutions"])
    return _wrong(solution, problem["total"]) if rng.random() < 0.4 else solution


def teacher(problem: dict, rng: random.Random, prompt: str) -> str:
    """Right about wrong attempts most of the time; sometimes a false critique, an answer-only or a bad fix."""
    steps = STEPS_RE.findall(prompt)
    said = re.search(r"#### (-?\d+)", "\n".join(steps))
    correct = said is not None and int(said.group(1)) == problem["total"]
    review = {"verdict": "correct", "first_wrong_step": None, "explanation": None, "correction": None}
    roll = rng.random()
    if correct and roll >= 0.2:
        return json.dumps(review)
    step = len(steps) if correct or not steps else next(
        (i + 1 for i, s in enumerate(steps) if f"{problem['total'] + 1}" in s), len(steps))
    fixed = problem["steps"][step - 1:] if step <= len(problem["steps"]) else problem["steps"][-1:]
    correction = "\n".join(fixed)
    if roll < 0.1:
        correction = f"#### {problem['total']}"  # an answer-only fix
    elif roll < 0.2 and not correct:
        correction = _wrong(correction, problem["total"])  # the teacher errs too
    return json.dumps({"verdict": "wrong", "first_wrong_step": step,
                       "explanation": "The last calculation is wrong." if not correct else "This step looks off.",
                       "correction": correction})


def diversify(problem: dict, rng: random.Random, _: str) -> str:
    """Another order of the steps, reworded, or (sometimes) a wrong one."""
    solution = problem["solutions"][1 if rng.random() < 0.7 else 0]
    if rng.random() < 0.2:
        return _wrong(solution, problem["total"])
    return solution.replace("altogether", "in total") if rng.random() < 0.5 else solution


def expand(problem: dict, rng: random.Random, _: str) -> str:
    """A new problem (another seeded one), or the seed reworded, or a broken reply."""
    roll = rng.random()
    if roll < 0.2:
        reworded = problem["question"].replace("A friend gives", "Then a friend hands").replace("altogether", "in all")
        return json.dumps({"problem": reworded, "solution": problem["solutions"][0]})
    if roll < 0.3:
        return "Here is a new problem: it is about apples."
    new = synthetic.problem(rng)
    return json.dumps({"problem": new["question"], "solution": new["answer"]})


def solver(problem: dict, rng: random.Random, prompt: str) -> str:
    return student(problem, rng, prompt)


def retrospect(problem: dict, rng: random.Random, _: str) -> str:
    """A real error, a `[back]` to it and the fix; or (sometimes) a `[back]` after nothing wrong."""
    first, second, last = problem["steps"]
    if rng.random() < 0.3:
        return f"{first}\n[back] Let me re-check step 1: it holds.\n{second}\n{last}"
    s1 = int(re.search(r"=(\d+)>>", first).group(1))
    slip = first.replace(f"={s1}>>{s1}", f"={s1 + 2}>>{s1 + 2}")
    return f"{slip}\n[back] Step 1 is wrong: the sum is {s1}, not {s1 + 2}.\n{first}\n{second}\n{last}"


SCRIPTS = {"student": student, "teacher": teacher, "diversify": diversify, "expand": expand, "solver": solver,
           "retrospect": retrospect}


def reply_for(model: str):
    """The reply function of `synthesis-demo/<role>` (the `model` of a `backend: scripted` recipe entry)."""
    family, _, role = model.partition("/")
    if family != "synthesis-demo" or role not in SCRIPTS:
        raise ValueError(f"unknown scripted model {model!r} (synthesis-demo/{{{', '.join(ROLES)}}})")

    def reply(payload: dict) -> str:
        text = prompt_text(payload)
        if role == "expand" and "Solve step by step" in text:  # the agreement solves go to the same model
            play = solver
        else:
            play = SCRIPTS[role]
        matches = list(QUESTION_RE.finditer(text))
        if not matches:
            return "I cannot read this problem."
        return play(solve(matches[0]), _rng(payload, text), text)

    return reply
