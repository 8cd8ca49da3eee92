"""Seeded multi-step word problems whose answer is reached by several distinct equation lists, and their checker."""
from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from fractions import Fraction

NAMES = ["Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia", "Kofi", "Lena"]
ITEMS = ["apples", "books", "stickers", "marbles", "pencils", "cookies", "cards", "shells"]
MAX_VALUE = 500  # no intermediate quantity above this (a tiny model must learn the arithmetic)
MAX_PATHS = 48   # a problem lists at most this many paths (the first ones, in template order)
ANNOTATION = re.compile(r"<<([^>]*)>>")
FINAL = re.compile(r"####\s*(-?[\d,]*\.?\d+)")
NUMBER = re.compile(r"\d+")
TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([-+*/]))")
OPS = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
       "/": lambda x, y: x / y if y else None}

# An expression tree is a leaf (an int taken from the question) or (op, left, right).


def _value(tree) -> Fraction | None:
    if isinstance(tree, int):
        return Fraction(tree)
    op, left, right = tree
    x, y = _value(left), _value(right)
    return None if x is None or y is None else OPS[op](x, y)


def _valid(tree) -> bool:
    """Every intermediate is a whole number in 0..MAX_VALUE (no negative, fractional or huge step)."""
    if isinstance(tree, int):
        return True
    value = _value(tree)
    ok = value is not None and value.denominator == 1 and 0 <= value <= MAX_VALUE
    return ok and _valid(tree[1]) and _valid(tree[2])


def _orders(tree) -> list[list[tuple[int, str, int, int]]]:
    """Every order of the tree's steps that computes each step after its operands: a list of (x, op, y, result)."""
    nodes: list[tuple] = []

    def walk(node) -> int | None:  # post-order; returns the node's index in `nodes`
        if isinstance(node, int):
            return None
        left, right = walk(node[1]), walk(node[2])
        nodes.append((node, left, right))
        return len(nodes) - 1

    walk(tree)
    needs = [{i for i in (left, right) if i is not None} for _, left, right in nodes]
    out: list[list[tuple]] = []

    def extend(done: list[int]) -> None:
        if len(done) == len(nodes):
            out.append([_step(nodes[i][0]) for i in done])
            return
        for i in range(len(nodes)):
            if i not in done and needs[i] <= set(done):
                extend(done + [i])

    extend([])
    return out


def _step(node) -> tuple[int, str, int, int]:
    op, left, right = node
    return int(_value(left)), op, int(_value(right)), int(_value(node))


def step_key(x, op: str, y, result) -> tuple:
    """A step as a path sees it: `3*4=12` and `4*3=12` are the same step (operands of + and * sorted)."""
    if op in "+*":
        x, y = min(x, y), max(x, y)
    return (Fraction(x), op, Fraction(y), Fraction(result))


def solution_text(steps) -> str:
    """GSM8K calculator annotations only, one per line, then `#### answer` (synthetic.easy_problem's format)."""
    return "\n".join(f"<<{x}{op}{y}={r}>>" for x, op, y, r in steps) + f"\n#### {steps[-1][3]}"


def _problem(template: str, question: str, trees: list, rng: random.Random) -> dict | None:
    """The row of a question and the trees that answer it (the first tree is the statement's own reading)."""
    trees = [t for t in trees if t is not None]
    if not trees or not _valid(trees[0]):
        return None
    answer = _value(trees[0])
    paths: dict[tuple, list] = {}
    for tree in trees:
        if not _valid(tree) or _value(tree) != answer:
            continue
        for steps in _orders(tree):
            paths.setdefault(tuple(step_key(*s) for s in steps), steps)
    solutions = [solution_text(steps) for steps in itertools.islice(paths.values(), MAX_PATHS)]
    return {"question": question, "answer": rng.choice(solutions), "solutions": solutions, "template": template,
            "final": int(answer)}


# ---- templates: each draws its numbers and lists the decompositions of one statement -------------------------


def _packs(rng, name, other, item):
    """a bags of b and a bags of c, minus d: a*b + a*c - d = a*(b+c) - d."""
    a, b, c = rng.randint(2, 6), rng.randint(2, 9), rng.randint(2, 9)
    if b == c:
        return None
    d = rng.randint(1, min(a * b, a * c, 12))
    q = (f"{name} buys {a} bags with {b} red {item} each and {a} bags with {c} blue {item} each. "
         f"Then {name} gives {d} {item} to {other}. How many {item} does {name} have now?")
    ab, ac = ("*", a, b), ("*", a, c)
    return q, [("-", ("+", ab, ac), d), ("-", ("*", a, ("+", b, c)), d), ("+", ("-", ab, d), ac),
               ("+", ("-", ac, d), ab)]


def _gifts(rng, name, other, item):
    """a, minus b and c, plus d packs of e: a - b - c + d*e."""
    a, b, c = rng.randint(10, 30), rng.randint(1, 9), rng.randint(1, 9)
    d, e = rng.randint(2, 6), rng.randint(2, 9)
    if b == c or b + c >= a:
        return None
    q = (f"{name} has {a} {item}. {name} gives {b} {item} to {other} and {c} {item} to a cousin, "
         f"then buys {d} packs of {e} {item}. How many {item} does {name} have now?")
    de = ("*", d, e)
    return q, [("+", ("-", ("-", a, b), c), de), ("+", ("-", a, ("+", b, c)), de), ("-", ("-", ("+", a, de), b), c),
               ("-", ("+", a, de), ("+", b, c)), ("+", ("-", ("-", a, c), b), de)]


def _boxes(rng, name, other, item):
    """a per hour for b and c hours, in boxes of d: (a*b + a*c) / d = a*(b+c) / d."""
    a, b, c = rng.randint(2, 12), rng.randint(2, 8), rng.randint(2, 8)
    divisors = [d for d in range(2, 13) if (a * (b + c)) % d == 0 and d not in (a, b, c)]
    if b == c or not divisors:
        return None
    d = rng.choice(divisors)
    q = (f"A machine makes {a} {item} every hour. It runs for {b} hours on Monday and {c} hours on Tuesday. "
         f"The {item} are packed in boxes of {d}. How many boxes are filled?")
    ab, ac, bc = ("*", a, b), ("*", a, c), ("+", b, c)
    trees = [("/", ("+", ab, ac), d), ("/", ("*", a, bc), d)]
    if a % d == 0:
        trees.append(("*", ("/", a, d), bc))
    if (b + c) % d == 0:
        trees.append(("*", a, ("/", bc, d)))
    if (a * b) % d == 0 and (a * c) % d == 0:
        trees.append(("+", ("/", ab, d), ("/", ac, d)))
    return q, trees


def _change(rng, name, other, item):
    """pays e for a at b and c at d: e - (a*b + c*d) = e - a*b - c*d."""
    a, b, c, d = rng.randint(2, 6), rng.randint(2, 9), rng.randint(2, 6), rng.randint(2, 9)
    if a * b == c * d:
        return None
    e = next(note for note in (20, 50, 100, 200) if note > a * b + c * d)
    q = (f"{name} buys {a} pens for {b} dollars each and {c} notebooks for {d} dollars each. "
         f"{name} pays with {e} dollars. How many dollars of change does {name} get?")
    ab, cd = ("*", a, b), ("*", c, d)
    return q, [("-", e, ("+", ab, cd)), ("-", ("-", e, ab), cd), ("-", ("-", e, cd), ab)]


def _share(rng, name, other, item):
    """a, b and c shared among d, each gets e more: (a+b+c)/d + e."""
    a, b, c = rng.sample(range(2, 13), 3)
    divisors = [d for d in range(2, 10) if (a + b + c) % d == 0]
    if not divisors:
        return None
    d, e = rng.choice(divisors), rng.randint(1, 9)
    q = (f"{name} has {a} red {item}, {b} blue {item} and {c} green {item}. {name} shares them equally among "
         f"{d} friends, and {other} gives each friend {e} more {item}. How many {item} does each friend have?")
    trees = [("+", ("/", ("+", ("+", a, b), c), d), e), ("+", ("/", ("+", ("+", b, c), a), d), e),
             ("+", ("/", ("+", ("+", a, c), b), d), e)]
    if a % d == 0 and b % d == 0 and c % d == 0:
        trees.append(("+", ("+", ("+", ("/", a, d), ("/", b, d)), ("/", c, d)), e))
    return q, trees


def _reading(rng, name, other, item):
    """a and c pages a day for b days, plus d: a*b - c*b + d = (a-c)*b + d."""
    a, c, b = rng.randint(4, 12), rng.randint(2, 9), rng.randint(2, 9)
    d = rng.randint(2, 20)
    if c >= a or b in (a, c):
        return None
    q = (f"{name} reads {a} pages a day for {b} days. {other} reads {c} pages a day for the same {b} days. "
         f"Then {name} reads {d} more pages. How many more pages has {name} read than {other}?")
    ab, cb = ("*", a, b), ("*", c, b)
    return q, [("+", ("-", ab, cb), d), ("+", ("*", ("-", a, c), b), d), ("-", ("+", ab, d), cb)]


TEMPLATES = {"packs": _packs, "gifts": _gifts, "boxes": _boxes, "change": _change, "share": _share,
             "reading": _reading}


def problem(rng: random.Random) -> dict:
    """One problem: {question, answer (one valid path, picked by the seed), solutions (every valid path, listed
    once per distinct step list up to swapped operands of + and *), template, final}."""
    while True:
        template = rng.choice(sorted(TEMPLATES))
        name, other = rng.sample(NAMES, 2)
        drawn = TEMPLATES[template](rng, name, other, rng.choice(ITEMS))
        row = _problem(template, drawn[0], drawn[1], rng) if drawn else None
        if row is not None:
            return row


def problems(n: int, seed: int = 0, exclude: set[str] | None = None) -> list[dict]:
    """n seeded problems with distinct questions, none of them in `exclude` (same seed, same problems)."""
    rng, seen, out = random.Random(seed), set(exclude or ()), []
    while len(out) < n:
        row = problem(rng)
        if row["question"] not in seen:
            seen.add(row["question"])
            out.append(row)
    return out


# ---- the checker ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """A sample's verdict: `correct` (final answer right, every annotation exactly right), `grounded` (every
    operand is a number of the question or an earlier result), `path` (index of the listed solution whose step
    list it follows, up to swapped operands of + and *; None if none), and why not, when not."""

    correct: bool
    grounded: bool
    path: int | None
    reason: str = ""

    @property
    def valid(self) -> bool:
        return self.correct and self.grounded and self.path is not None


def _number(text: str) -> Fraction | None:
    text = text.strip().replace(",", "")
    if not re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        return None
    return Fraction(text)


def _arithmetic(expr: str) -> tuple[Fraction | None, list[Fraction], list[str]]:
    """Exact value of `a op b op c ...` (+ - * /, usual precedence, no parentheses), its operands and ops."""
    pos, numbers, ops = 0, [], []
    expr = expr.strip()
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            return None, [], []
        number, op = m.groups()
        if (number is not None) != (len(numbers) == len(ops)):
            return None, [], []  # operands and operators must alternate
        if number is not None:
            numbers.append(Fraction(number))
        else:
            ops.append(op)
        pos = m.end()
    if not numbers or len(numbers) != len(ops) + 1:
        return None, [], []
    terms, signs, current = [], [], numbers[0]
    for op, y in zip(ops, numbers[1:]):
        if op in "*/":
            if op == "/" and y == 0:
                return None, [], []
            current = current * y if op == "*" else current / y
        else:
            terms.append(current)
            signs.append(op)
            current = y
    terms.append(current)
    value = terms[0]
    for sign, term in zip(signs, terms[1:]):
        value = value + term if sign == "+" else value - term
    return value, numbers, ops


def path_keys(row: dict) -> list[tuple]:
    """The step-list key of every listed solution of a problem, in order."""
    return [_steps_key(solution)[0] for solution in row["solutions"]]


def _steps_key(text: str) -> tuple[tuple | None, str]:
    keys = []
    for body in ANNOTATION.findall(text):
        lhs, eq, rhs = body.partition("=")
        value, numbers, ops = _arithmetic(lhs)
        result = _number(rhs)
        if not eq or value is None or result is None or len(ops) != 1:
            return None, body
        keys.append(step_key(numbers[0], ops[0], numbers[1], result))
    return tuple(keys), ""


def check(row: dict, text: str, keys: list[tuple] | None = None) -> Check:
    """Judge one sample against its problem row (pass `keys=path_keys(row)` when checking many samples)."""
    final = FINAL.search(text)
    gold = Fraction(row["final"])
    if final is None or _number(final.group(1)) is None:
        return Check(False, False, None, "no final answer")
    available = [Fraction(int(n)) for n in NUMBER.findall(row["question"])]
    correct, grounded, reason, steps = True, True, "", []
    for body in ANNOTATION.findall(text):
        lhs, eq, rhs = body.partition("=")
        value, numbers, ops = _arithmetic(lhs)
        result = _number(rhs) if eq else None
        if value is None or result is None:
            correct, reason = False, reason or f"unreadable annotation <<{body}>>"
            continue
        if value != result:
            correct, reason = False, reason or f"miscomputed <<{body}>>"
        if any(x not in available for x in numbers):
            grounded, reason = False, reason or f"<<{body}>> uses a number neither given nor computed before"
        available.append(result)
        steps.append(step_key(numbers[0], ops[0], numbers[1], result) if len(ops) == 1 else None)
    if _number(final.group(1)) != gold:
        correct, reason = False, f"final answer {final.group(1)} is not {row['final']}"
    keys = path_keys(row) if keys is None else keys
    key = tuple(steps)
    path = keys.index(key) if correct and None not in key and key in keys else None
    if correct and grounded and path is None:
        reason = "correct, but not a listed path"
    return Check(correct, grounded, path, reason)
