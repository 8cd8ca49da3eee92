"""Seeded synthetic GSM8K-style problems and pseudo-samples, for tests, smoke runs and benchmarks."""
from __future__ import annotations

import random
import re
import zlib
from pathlib import Path

import orjson

PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{query}\n\n### Response:")
ANNOTATION = re.compile(r"<<([^>]*)>>")
NAMES = ["Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia"]
ITEMS = ["apples", "books", "stickers", "marbles", "pencils", "cookies"]
OPENERS = ["", "So ", "Then ", "Next, ", "We know that ", "First, ", "This means ", "Thus "]
REWORDS = [("altogether", "in total"), ("has", "owns"), ("There are", "We have"), (" is ", " equals ")]
# variant weights: as-is, paraphrase, swapped operands, miscomputed annotation, wrong answer, no answer
STRENGTHS = [(30, 35, 20, 3, 10, 2), (25, 30, 20, 5, 17, 3), (20, 25, 15, 7, 28, 5), (15, 20, 10, 10, 38, 7)]


def problem(rng: random.Random) -> dict:
    """One problem with two valid solution orders: {question, answer, solutions}."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b, c, d = rng.randint(2, 60), rng.randint(2, 40), rng.randint(2, 9), rng.randint(2, 12)
    s1, s2 = a + b, c * d
    total = s1 + s2
    question = (f"{name} has {a} {item}. A friend gives {name} {b} more. Then {name} buys {c} boxes with {d} "
                f"{item} each. How many {item} does {name} have altogether?")
    first = f"{name} has {a}+{b} = <<{a}+{b}={s1}>>{s1} {item} after the gift."
    second = f"The boxes hold {c}*{d} = <<{c}*{d}={s2}>>{s2} {item}."
    last = f"Altogether {name} has {s1}+{s2} = <<{s1}+{s2}={total}>>{total} {item}.\n#### {total}"
    return {"question": question, "answer": f"{first}\n{second}\n{last}",
            "solutions": [f"{first}\n{second}\n{last}", f"{second}\n{first}\n{last}"]}


def problems(n: int, seed: int = 0) -> list[dict]:
    """n seeded synthetic problems (same seed, same problems)."""
    rng = random.Random(seed)
    return [problem(rng) for _ in range(n)]


def paraphrase(solution: str, rng: random.Random) -> str:
    out = []
    for line in solution.split("\n"):
        if not line.startswith("####"):
            opener = rng.choice(OPENERS)
            if rng.random() < 0.3:
                old, new = rng.choice(REWORDS)
                line = line.replace(old, new)
            line = opener + (line[:1].lower() + line[1:] if opener else line)
        out.append(line)
    return "\n".join(out)


def swap_operands(solution: str, rng: random.Random) -> str:
    """Swap the operands of one commutative annotation `a+b` / `a*b` (and its plain-text twin)."""
    found = [m for m in ANNOTATION.finditer(solution) if re.fullmatch(r"\s*[\d.]+\s*[+*]\s*[\d.]+\s*=.*", m.group(1))]
    if not found:
        return paraphrase(solution, rng)
    m = rng.choice(found)
    lhs, rhs = m.group(1).split("=", 1)
    a, op, b = re.fullmatch(r"\s*([\d.]+)\s*([+*])\s*([\d.]+)\s*", lhs).groups()
    new = solution[: m.start()] + f"<<{b}{op}{a}={rhs}>>" + solution[m.end():]
    return new.replace(f"{a}{op}{b} =", f"{b}{op}{a} =", 1)


def miscompute(solution: str, rng: random.Random) -> str:
    found = list(ANNOTATION.finditer(solution))
    if not found:
        return solution
    m = rng.choice(found)
    lhs, _, rhs = m.group(1).partition("=")
    return solution[: m.start()] + f"<<{lhs}={rhs}1>>" + solution[m.end():]


def wrong_answer(solution: str, rng: random.Random) -> str:
    return re.sub(r"#### (.*)$", lambda m: f"#### {m.group(1).replace(',', '')}{rng.randint(1, 9)}", solution)


def sample(solution: str, weights, rng: random.Random) -> str:
    """One pseudo-sample of a solution: as-is, paraphrased, swapped, miscomputed, wrong or answerless."""
    kind = rng.choices(range(6), weights=weights)[0]
    if kind == 0:
        return solution
    if kind == 1:
        return paraphrase(solution, rng)
    if kind == 2:
        return swap_operands(solution, rng)
    if kind == 3:
        return miscompute(paraphrase(solution, rng), rng)
    if kind == 4:
        return wrong_answer(paraphrase(solution, rng), rng)
    return solution.rsplit("####", 1)[0] + "The answer is unclear."


def write_gold(rows: list[dict], path: str | Path) -> None:
    """Gold problems as GSM8K-style JSONL (`question`, `answer`)."""
    with open(path, "wb") as handle:
        for row in rows:
            handle.write(orjson.dumps({"question": row["question"], "answer": row["answer"]}) + b"\n")


def write_model_dir(rows: list[dict], folder: str | Path, model: int, seeds: int, temperature: str = "0.7") -> None:
    """A model directory in the gsm8k-ScRel layout: one `raw_generation_<T>_<seed>.json` per seed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = STRENGTHS[model % len(STRENGTHS)]
    for seed in range(seeds):
        rng = random.Random(model * 100_003 + seed)
        with open(folder / f"raw_generation_{temperature}_{seed}.json", "wb") as handle:
            for row in rows:
                # a small per-problem vocabulary of variants, so identical texts recur as in real sampling
                local = random.Random(zlib.crc32(row["question"].encode()) * 7 + rng.randint(0, 5))
                source = rng.choice(row.get("solutions") or [row["answer"]])
                text = sample(source, weights, local if rng.random() < 0.7 else rng)
                handle.write(orjson.dumps([[PROMPT.format(query=row["question"]), text]]) + b"\n")


def easy_problem(rng: random.Random, gold_order: str = "random") -> dict:
    """A one- or two-step add/sub problem with numbers <= 12 whose solutions are only GSM8K calculator annotations
    (`<<5+9=14>>` per line, then `#### 14`), so the RFT paper's equation key and calculator check apply; every valid
    order is listed and the gold `answer` is one of them, picked by the seed (`gold_order="first"`: always the
    first, left-to-right order), the quickstart's miniature GSM8K."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    kind = rng.randrange(4)
    a, b, c = rng.randint(1, 12), rng.randint(1, 12), rng.randint(1, 12)
    if kind == 0:
        question = f"{name} has {a} {item}. {name} gets {b} more. How many {item} does {name} have now?"
        orders = [[(a, "+", b)], [(b, "+", a)]]
    elif kind == 1:
        a, b = max(a, b), min(a, b)
        question = f"{name} has {a} {item} and gives away {b}. How many {item} does {name} have left?"
        orders = [[(a, "-", b)]]
    elif kind == 2:
        c = min(c, a + b)
        question = (f"{name} has {a} {item}. {name} gets {b} more and then gives away {c}. "
                    f"How many {item} does {name} have now?")
        orders = [[(a, "+", b), (a + b, "-", c)]] + ([[(a, "-", c), (a - c, "+", b)]] if a >= c else [])
    else:
        question = (f"{name} has {a} red {item}, {b} blue {item} and {c} green {item}. "
                    f"How many {item} does {name} have in total?")
        orders = [[(a, "+", b), (a + b, "+", c)], [(b, "+", c), (b + c, "+", a)], [(a, "+", c), (a + c, "+", b)]]
    solutions = list(dict.fromkeys(_equations(steps) for steps in orders))  # equal numbers: equal orders
    pick = rng.choice(solutions)  # drawn either way, so both orders give the same problems
    return {"question": question, "answer": pick if gold_order == "random" else solutions[0], "solutions": solutions}


def _equations(steps: list[tuple[int, str, int]]) -> str:
    lines = [f"<<{x}{op}{y}={x + y if op == '+' else x - y}>>" for x, op, y in steps]
    return "\n".join(lines) + f"\n#### {lines[-1][2:-2].rsplit('=', 1)[1]}"


def easy_problems(n: int, seed: int = 0, exclude: set[str] | None = None, gold_order: str = "random") -> list[dict]:
    """n seeded easy problems with distinct questions, none of them in `exclude`."""
    rng, seen, out = random.Random(seed), set(exclude or ()), []
    while len(out) < n:
        row = easy_problem(rng, gold_order)
        if row["question"] not in seen:
            seen.add(row["question"])
            out.append(row)
    return out
