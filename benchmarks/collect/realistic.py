"""Realistic pooled pseudo-samples from GSM8K train: mostly distinct texts, equation keys that recur as in RFT."""
from __future__ import annotations

import argparse
import ast
import hashlib
import multiprocessing as mp
import random
import re
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import orjson

from mathforge.testing.synthetic import PROMPT, STRENGTHS
from mathforge.verify.answers import paper_extract
from mathforge.verify.arithmetic import paper_check

ANN = re.compile(r"<<([^>]*)>>")
SPLIT = re.compile(r"(<<[^>]*>>)")  # prose and annotation segments of a line, annotations at odd positions
NUM = r"\d+(?:\.\d+)?"
TOKEN = re.compile(rf"(?<![\d.]){NUM}(?![\d.])")
OPS = re.compile(r"(?<=[\d)])\s*([-+*/])\s*(?=[\d(])")
TIMES = re.compile(r"(?<=\d)\s*[x*×]\s*(?=\$?\d)")
PLUS_MINUS_DIV = re.compile(r"(?<=\d)\s*([-+/])\s*(?=\$?\d)")
BIG = re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+|\d{4,})(?![\d,])")
DOLLARS = re.compile(r"\$(\d[\d,]*)(?![\d,]|\.\d)")
LINK = re.compile(r"\s*=\s*(\$?)\s*$")
FINAL = re.compile(r"####\s*(.*)$")

# 4 outcomes per model, from synthetic.STRENGTHS: correct (as-is + paraphrase + swapped), miscomputed, wrong, no answer
OUTCOMES = [(s[0] + s[1] + s[2], s[3], s[4], s[5]) for s in STRENGTHS]
CORRECT, MISCOMPUTED, WRONG, NO_ANSWER = range(4)
VERBATIM = 0.02  # a correct sample that is the gold text itself (real samplers repeat easy solutions)

INTROS = ["Let's solve this step by step.", "Let's think step by step.", "Let me work through this.",
          "We need to break this problem into parts.", "First, let's figure out what we know.",
          "Here is how to solve it.", "Let's start with the given information.", "We can solve this in steps.",
          "Let's compute each quantity in turn.", "To answer this, we work step by step.",
          "Let's go through the problem carefully.", "Start by writing down what is given.",
          "We'll calculate the pieces one at a time.", "Let's figure this out.", "Okay, let's see."]
OPENERS = ["So ", "Then ", "Next, ", "First, ", "Now ", "This means ", "Thus ", "We know that ", "Therefore, ",
           "After that, ", "In addition, ", "Also, ", "Since ", "Note that ", "It follows that ", "Hence ",
           "From this, ", "Given that ", "Now, ", "Similarly, ", "Furthermore, ", "As a result, ", "In other words, ",
           "That means ", "Clearly, ", "We get that ", "Remember that ", "Second, ", "Finally, ", "Altogether, ",
           "On top of that, ", "Because of this, ", "Recall that ", "Let's see: ", "We find that ", "Moreover, ",
           "Meanwhile, ", "To begin, ", "Consequently, ", "In this case, "]
LOWER_OK = {"The", "This", "That", "She", "He", "They", "It", "There", "So", "Then", "In", "If", "We", "Her", "His",
            "Each", "Since", "Their", "One", "Two", "Three", "A", "An", "All", "After", "For", "Now", "Altogether",
            "Together", "Adding", "Multiplying", "Subtracting", "Dividing", "To", "When", "At", "On", "Of", "With"}
LINKS = [" = ", " = ", " = ", "=", " is ", " equals ", " gives ", " makes ", ", which is ", " which comes to ",
         ", that is, ", " amounts to ", " results in ", ", or ", " leaves "]
TERSE = ["{e} = {a}{r}.", "{e} = {a}{r}", "We compute {e} = {a}{r}.", "That gives {e} = {a}{r}.",
         "Calculating: {e} = {a}{r}.", "We have {e} = {a}{r}.", "So {e} = {a}{r}.", "Compute {e} = {a}{r}.",
         "This is {e} = {a}{r}.", "Working it out: {e} = {a}{r}."]
SIDE_REMARKS = [" That's the first piece.", " Keep this number in mind.", " Let's write that down.",
                " This is an intermediate result.", " Good so far.", " We will use this next.",
                " That settles this part.", " Let's carry this forward."]
CLOSERS = ["The answer is {x}.", "So the answer is {x}.", "Therefore, the final answer is {x}.",
           "The final answer is {x}.", "Thus, the answer is {x}.", "Hence the answer is {x}.", "Answer: {x}",
           "So the result is {x}.", "That gives us {x}.", "In conclusion, the answer is {x}."]
CHECK_LINES = ["Check: {e} = {a}{r}, which matches.", "To double-check, {e} = {a}{r}.",
               "Checking backwards: {e} = {a}{r}.", "Verify: {e} = {a}{r}. Correct."]
RESTATE_LINES = ["So in total, {e} = {a}{r}.", "Putting it together: {e} = {a}{r}.", "Overall, {e} = {a}{r}.",
                 "That means {e} = {a}{r} in the end."]
SPLIT_LINES = ["First, {e} = {a}{r}.", "Start with {e} = {a}{r}.", "{e} = {a}{r} first.", "Partial sum: {e} = {a}{r}."]
CUTOFFS = ["", " So the", " The answer", " Therefore,", " which", " So we"]
SYNONYMS = {
    "altogether": ["altogether", "in total", "in all", "combined"], "in total": ["in total", "altogether", "overall",
                                                                                "in all"],
    "a total of": ["a total of", "a combined", "altogether"], "bought": ["bought", "purchased", "got"],
    "buys": ["buys", "purchases", "gets"], "buy": ["buy", "purchase", "get"], "earns": ["earns", "makes", "gets paid"],
    "earned": ["earned", "made"], "spent": ["spent", "paid", "used"], "spends": ["spends", "pays", "uses"],
    "left": ["left", "remaining"], "remaining": ["remaining", "left over", "still left"],
    "Therefore": ["Therefore", "Thus", "So", "Hence", "Consequently"], "Thus": ["Thus", "So", "Therefore", "Hence"],
    "So": ["So", "Thus", "Therefore", "Hence", "This means"], "This means": ["This means", "That means", "So"],
    "Since": ["Since", "Because", "As"], "There are": ["There are", "We have", "There're"],
    "There is": ["There is", "We have"], "per": ["per", "each", "a"], "each": ["each", "every"],
    "every": ["every", "each"], "needs": ["needs", "requires", "has to get"], "gets": ["gets", "receives", "obtains"],
    "got": ["got", "received"], "gave": ["gave", "handed over"], "number of": ["number of", "count of"],
    "which is": ["which is", "that is", "i.e."], "means": ["means", "implies", "shows"], "Then": ["Then", "Next",
                                                                                             "After that"],
    "the rest": ["the rest", "the remainder"], "together": ["together", "combined"], "Now": ["Now", "At this point"],
    "pays": ["pays", "spends"], "costs": ["costs", "is priced at", "comes to"], "twice": ["twice", "two times"],
    "more than": ["more than", "in addition to"], "times": ["times", "multiplied by"], "sells": ["sells", "sold"],
    "makes": ["makes", "produces"], "takes": ["takes", "needs"], "the total": ["the total", "the sum", "the overall"],
    "half": ["half", "one half"], "minutes": ["minutes", "mins"], "hours": ["hours", "hrs"],
    "dollars": ["dollars", "bucks"], "owns": ["owns", "has"], "receives": ["receives", "gets"],
    "additional": ["additional", "extra", "more"], "original": ["original", "initial", "starting"],
    "Finally": ["Finally", "Lastly", "In the end"], "In the beginning": ["In the beginning", "At first", "Initially"],
}
CONNECTIVE = re.compile(r"^(?:So|Thus|Therefore|Hence|Then|Next|Now|Finally|This means|That means|Since|Also|"
                        r"In addition|After that|Altogether|First|Second|Lastly|Additionally|And|But),?\s+")
SYNONYM_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, SYNONYMS), key=len, reverse=True)) + r")\b")


# ---- exact arithmetic on annotation bodies (plain numbers, + - * /, parentheses) ----------------------------------

def value(expr: str) -> Fraction | None:
    try:
        return _node(ast.parse(expr.strip(), mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, TypeError):
        return None


def _node(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(repr(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_node(node.operand)
    if isinstance(node, ast.BinOp):
        a, b = _node(node.left), _node(node.right)
        ops = {ast.Add: a.__add__, ast.Sub: a.__sub__, ast.Mult: a.__mul__, ast.Div: a.__truediv__}
        if type(node.op) in ops:
            return ops[type(node.op)](b)
    raise ValueError("not plain arithmetic")


def fmt(v: Fraction) -> str | None:
    """A number as a model would write it (integers plain, up to 2 decimals); None for repeating decimals."""
    if v.denominator == 1:
        return str(v.numerator)
    scaled = v * 100
    if scaled.denominator != 1:
        return None
    return f"{float(v):.2f}".rstrip("0")


def number(v: Fraction) -> str:
    return fmt(v) or f"{float(v):.4f}"


def holds(lhs: str, rhs: str) -> bool:
    left, right = value(lhs), value(rhs)
    return left is not None and right is not None and abs(float(left) - float(right)) < 1e-3


def key_of(lines: list[str]) -> str:
    return "|".join(ANN.findall("\n".join(lines))).replace(" ", "")


# ---- per-problem plans: the main annotation lists and the minority decompositions ---------------------------------

@dataclass
class Plan:
    """How one problem is sampled: a few main skeletons (line lists) and a pool of alternative decompositions."""

    prompt: str
    gold_text: str
    answer: str                  # the gold `#### x` text
    mains: list[list[str]]
    main_keys: set[str]
    main_weights: list[float]
    alts: list[list[str]]
    alt_weights: list[float]
    difficulty: float            # multiplies the models' correct weight


def dependencies(lines: list[str]) -> list[set[int]]:
    """deps[j]: earlier lines whose results (annotation rhs, or a plain line's numbers) line j's lhs uses."""
    produced, deps = [], []
    for j, line in enumerate(lines):
        bodies = ANN.findall(line)
        uses = {float(t) for b in bodies for t in TOKEN.findall(b.split("=")[0])} if bodies else \
            {float(t) for t in TOKEN.findall(line.replace(",", ""))}
        deps.append({i for i in range(j) if produced[i] & uses})
        made = set()
        for b in bodies:
            rhs = b.split("=")[-1].strip()
            if TOKEN.fullmatch(rhs):
                made.add(float(rhs))
        produced.append(made if bodies else {float(t) for t in TOKEN.findall(line.replace(",", ""))})
    return deps


def linear_extension(deps: list[set[int]], rng: random.Random) -> tuple[int, ...]:
    placed: list[int] = []
    left = set(range(len(deps)))
    while left:
        ready = sorted(j for j in left if deps[j] <= set(placed))
        pick = rng.choice(ready)
        placed.append(pick)
        left.remove(pick)
    return tuple(placed)


def _with_annotation(line: str, k: int, new_body: str | None) -> str:
    """Line with its k-th annotation replaced by `<<new_body>>` (or dropped when new_body is None)."""
    parts = SPLIT.split(line)
    parts[2 * k + 1] = "" if new_body is None else f"<<{new_body}>>"
    return "".join(parts)


def swap_operands(lines: list[str], rng: random.Random) -> list[str] | None:
    """Reorder the operands of one all-`+` or all-`*` annotation (and its plain-text twin, if written)."""
    spots = [(i, k, b) for i, line in enumerate(lines) for k, b in enumerate(ANN.findall(line))
             if re.fullmatch(rf"\s*{NUM}(?:\s*\+\s*{NUM})+\s*=.*|\s*{NUM}(?:\s*\*\s*{NUM})+\s*=.*", b)]
    rng.shuffle(spots)
    for i, k, body in spots:
        lhs, rhs = body.split("=", 1)
        op = "+" if "+" in lhs else "*"
        terms = [t.strip() for t in lhs.split(op)]
        order = terms[:]
        for _ in range(4):
            rng.shuffle(order)
            if order != terms:
                break
        if order == terms:
            continue
        out = lines[:]
        out[i] = _with_annotation(lines[i], k, op.join(order) + "=" + rhs)
        if len(terms) == 2:  # the prose twin, `a x b = ` / `a + b = `
            sym = r"\s*[x*×]\s*" if op == "*" else r"\s*\+\s*"
            out[i] = re.sub(rf"(?<![\d.]){re.escape(terms[0])}({sym}){re.escape(terms[1])}(?![\d.])",
                            lambda m: f"{terms[1]}{m.group(1)}{terms[0]}", out[i], count=1)
        return out
    return None


def drop_annotation(lines: list[str], rng: random.Random) -> list[str] | None:
    """Write one calculation as plain text only (models often skip the calculator markup)."""
    spots = [(i, k) for i, line in enumerate(lines) for k in range(len(ANN.findall(line)))]
    if not spots:
        return None
    i, k = rng.choice(spots)
    out = lines[:]
    out[i] = _with_annotation(lines[i], k, None)
    return out


def merge_steps(lines: list[str], rng: random.Random) -> list[str] | None:
    """Inline an earlier step into a later annotation: `<<48/2=24>>`, `<<24+48=72>>` -> `<<(48/2)+48=72>>`."""
    spots = []
    for i, line in enumerate(lines):
        for k, body in enumerate(ANN.findall(line)):
            lhs, _, rhs = body.partition("=")
            rhs = rhs.strip()
            if not TOKEN.fullmatch(rhs):
                continue
            for j in range(i + 1, len(lines)):
                for m, later in enumerate(ANN.findall(lines[j])):
                    l2, _, r2 = later.partition("=")
                    if re.search(rf"(?<![\d.]){re.escape(rhs)}(?![\d.])", l2):
                        spots.append((i, k, lhs, rhs, j, m, l2, r2))
    rng.shuffle(spots)
    for i, k, lhs, rhs, j, m, l2, r2 in spots:
        merged = re.sub(rf"(?<![\d.]){re.escape(rhs)}(?![\d.])", f"({lhs.strip()})", l2, count=1)
        if not holds(merged, r2):
            continue
        out = lines[:]
        out[j] = _with_annotation(lines[j], m, f"{merged}={r2}")
        out[i] = _with_annotation(out[i], k, None)
        return out
    return None


def split_step(lines: list[str], rng: random.Random) -> list[str] | None:
    """Split a chain `<<a-b-c=d>>` into `<<a-b=s>>` on a new line and `<<s-c=d>>`."""
    spots = [(i, k, b) for i, line in enumerate(lines) for k, b in enumerate(ANN.findall(line))
             if re.fullmatch(rf"{NUM}(?:[-+]{NUM}){{2,}}=.*|{NUM}(?:[*/]{NUM}){{2,}}=.*", b.replace(" ", ""))]
    rng.shuffle(spots)
    for i, k, body in spots:
        lhs, rhs = body.replace(" ", "").split("=", 1)
        m = re.match(rf"({NUM}[-+*/]{NUM})(.*)", lhs)
        first, rest = m.group(1), m.group(2)
        v = value(first)
        s = fmt(v) if v is not None and v >= 0 else None
        if s is None or not holds(s + rest, rhs):
            continue
        out = lines[:]
        out[i] = _with_annotation(lines[i], k, f"{s}{rest}={rhs}")
        out.insert(i, rng.choice(SPLIT_LINES).format(e=prose_expr(first), a=f"<<{first}={s}>>", r=s))
        return out
    return None


def _two_operand(lines: list[str]) -> tuple[str, str, str, str] | None:
    for body in reversed(ANN.findall("\n".join(lines))):
        m = re.fullmatch(rf"\s*({NUM})\s*([-+*/])\s*({NUM})\s*=\s*({NUM})\s*", body)
        if m:
            return m.groups()
    return None


def check_step(lines: list[str], rng: random.Random) -> list[str] | None:
    """Append an inverse check of the last two-operand step: `a+b=c` -> `c-b=a`."""
    found = _two_operand(lines)
    if not found:
        return None
    a, op, b, c = found
    lhs = f"{c}{ {'+': '-', '-': '+', '*': '/', '/': '*'}[op] }{b}".replace(" ", "")
    if not holds(lhs, a):
        return None
    return lines + [rng.choice(CHECK_LINES).format(e=prose_expr(lhs), a=f"<<{lhs}={a}>>", r=a)]


def restate_step(lines: list[str], rng: random.Random) -> list[str] | None:
    """Repeat the last calculation as a summary line."""
    bodies = ANN.findall("\n".join(lines))
    if not bodies:
        return None
    lhs, _, rhs = bodies[-1].partition("=")
    return lines + [rng.choice(RESTATE_LINES).format(e=prose_expr(lhs), a=f"<<{bodies[-1]}>>", r=rhs.strip())]


DECOMPOSITIONS = [drop_annotation, merge_steps, split_step, swap_operands, check_step, restate_step]


def alternative(mains: list[list[str]], keys: set[str], rng: random.Random) -> list[str] | None:
    """A different decomposition: one or two rewrites of a main skeleton, with a key no main skeleton has."""
    for _ in range(6):
        lines = rng.choice(mains)
        for fn in rng.sample(DECOMPOSITIONS, rng.choice((1, 1, 2))):
            lines = fn(lines, rng) or lines
        if key_of(lines) not in keys:
            return lines
    return None


def plan(index: int, row: dict, question: str) -> Plan:
    rng = random.Random(index * 1_000_003 + 17)
    body, _, final = row["answer"].rpartition("####")
    answer = final.strip()
    lines = [line for line in body.strip().split("\n") if line.strip()]
    deps = dependencies(lines)
    target = rng.choices((1, 2, 3, 4), weights=(35, 35, 20, 10))[0]
    mains, keys = [lines], {key_of(lines)}
    for _ in range(12):
        if len(mains) >= target:
            break
        order = linear_extension(deps, rng)
        candidate = [lines[j] for j in order]
        if key_of(candidate) not in keys:
            mains.append(candidate)
            keys.add(key_of(candidate))
    for _ in range(4):
        if len(mains) >= target:
            break
        candidate = swap_operands(rng.choice(mains), rng)
        if candidate and key_of(candidate) not in keys:
            mains.append(candidate)
            keys.add(key_of(candidate))
    alts: list[list[str]] = []
    for _ in range(rng.randint(2, 6)):
        candidate = alternative(mains, keys, rng)
        if candidate:
            alts.append(candidate)
            keys.add(key_of(candidate))
    steps_factor = 1.1 if len(lines) <= 3 else 0.9 if len(lines) <= 5 else 0.7
    return Plan(PROMPT.format(query=question), row["answer"], answer, mains, {key_of(m) for m in mains},
                [1.0] + [rng.uniform(0.15, 0.7) for _ in mains[1:]], alts, [1 / (i + 1) for i in range(len(alts))],
                rng.lognormvariate(-0.3, 1.1) * steps_factor)  # a wide spread: some problems few models solve


# ---- surface rendering: wording, numbers, whitespace, phrasing ----------------------------------------------------

def prose_expr(lhs: str, times: str = " x ", spaced: bool = True) -> str:
    """An annotation's left side as prose writes it: `0.2*50` -> `0.2 x 50`."""
    lhs = lhs.replace(" ", "")
    out = OPS.sub(lambda m: times if m.group(1) == "*" else (f" {m.group(1)} " if spaced else m.group(1)), lhs)
    return out


def _commas(text: str, on: bool) -> str:
    if on:
        return BIG.sub(lambda m: f"{int(m.group(1).replace(',', '')):,}", text)
    return BIG.sub(lambda m: m.group(1).replace(",", ""), text)


def render(lines: list[str], answer: str, rng: random.Random, closer_answer: str | None = None,
           final: bool = True) -> str:
    """One sample's text: the skeleton's lines reworded, reformatted and re-spaced, then `#### answer`."""
    times = rng.choice((" x ", " * ", "*", " × ", "x", None))
    spaced = rng.random() < 0.6
    commas = rng.choice((True, False, None))
    dollars = rng.choice(("keep", "keep", "words", "cents"))
    syn_rate, opener_rate = rng.uniform(0.05, 0.5), rng.uniform(0.05, 0.55)
    link_rate, terse_rate = rng.uniform(0.0, 0.5), rng.uniform(0.0, 0.3)
    ann_spaced = rng.random() < 0.25
    blank = rng.uniform(0.0, 0.6) if rng.random() < 0.25 else 0.0
    trailing = rng.uniform(0.1, 0.5) if rng.random() < 0.15 else 0.0
    remark = rng.uniform(0.0, 0.2) if rng.random() < 0.3 else 0.0
    out = []
    if rng.random() < 0.2:
        out.append(rng.choice(INTROS))
    for line in lines:
        bodies = ANN.findall(line)
        if len(bodies) == 1 and rng.random() < terse_rate:
            lhs, _, rhs = bodies[0].partition("=")
            line = rng.choice(TERSE).format(e=prose_expr(lhs, times or " x ", spaced), a=f"<<{bodies[0]}>>",
                                            r=rhs.strip())
        parts = SPLIT.split(line)
        for p in range(0, len(parts), 2):
            text = parts[p]
            if syn_rate:
                text = SYNONYM_RE.sub(lambda m: rng.choice(SYNONYMS[m.group(1)]) if rng.random() < syn_rate
                                      else m.group(1), text)
            if times is not None:
                text = TIMES.sub(times, text)
            text = PLUS_MINUS_DIV.sub(lambda m: f" {m.group(1)} " if spaced else m.group(1), text)
            if commas is not None:
                text = _commas(text, commas)
            if dollars == "words":
                text = DOLLARS.sub(lambda m: f"{m.group(1)} dollars", text)
            elif dollars == "cents":
                text = DOLLARS.sub(lambda m: f"${m.group(1)}.00", text)
            if p + 1 < len(parts) and link_rate and rng.random() < link_rate:
                text = LINK.sub(lambda m: rng.choice(LINKS).rstrip(" ") + (" " + m.group(1) if m.group(1) else " "),
                                text, count=1)
            parts[p] = text
        if ann_spaced:
            for p in range(1, len(parts), 2):
                lhs, _, rhs = parts[p][2:-2].partition("=")
                parts[p] = f"<<{prose_expr(lhs, ' * ', True)}={rhs}>>"
        line = "".join(parts)
        if rng.random() < opener_rate:  # a new opener replaces the line's own connective, if it has one
            line = CONNECTIVE.sub("", line, count=1)
            first = line.split(" ", 1)[0]
            line = rng.choice(OPENERS) + (line[0].lower() + line[1:] if first in LOWER_OK else line)
        if remark and rng.random() < remark:
            line += rng.choice(SIDE_REMARKS)
        if trailing and rng.random() < trailing:
            line += " " * rng.randint(1, 2)
        out.append(line)
    if closer_answer is not None and rng.random() < 0.25:
        out.append(rng.choice(CLOSERS).format(x=closer_answer))
    text = out[0]
    for line in out[1:]:
        text += ("\n\n" if blank and rng.random() < blank else "\n") + line
    return text + (f"\n#### {answer}" if final else "")


# ---- outcomes ----------------------------------------------------------------------------------------------------

def miscompute(lines: list[str], rng: random.Random) -> list[str]:
    """One annotation's result is off (the prose repeats the wrong number); the final answer stays right."""
    spots = [(i, k, b) for i, line in enumerate(lines) for k, b in enumerate(ANN.findall(line))
             if TOKEN.fullmatch(b.partition("=")[2].strip())]
    if not spots:
        return lines
    i, k, body = rng.choice(spots)
    lhs, _, rhs = body.partition("=")
    rhs = rhs.strip()
    v = Fraction(rhs)
    wrong = number(v + rng.choice((1, -1, 2, 10, -10, 3))) if rng.random() < 0.7 else rhs[::-1].lstrip("0") or "1"
    if value(wrong) is None or abs(float(value(wrong) - v)) < 1e-3:
        wrong = number(v + 1)
    parts = SPLIT.split(lines[i])
    parts[2 * k + 1] = f"<<{lhs}={wrong}>>"
    if 2 * k + 2 < len(parts) and parts[2 * k + 2].startswith(rhs):
        parts[2 * k + 2] = wrong + parts[2 * k + 2][len(rhs):]
    return lines[:i] + ["".join(parts)] + lines[i + 1:]


def wrong_answer(lines: list[str], answer: str, rng: random.Random) -> tuple[list[str], str]:
    """Stop at an intermediate result, or slip on the final number."""
    gold = float(answer.replace(",", ""))
    if len(lines) > 1 and rng.random() < 0.45:
        cut = rng.randrange(1, len(lines))
        results = [b.partition("=")[2].strip() for b in ANN.findall("\n".join(lines[:cut]))]
        results = [r for r in results if TOKEN.fullmatch(r) and float(r) != gold]
        if results:
            return lines[:cut], results[-1]
    v = Fraction(answer.replace(",", ""))
    for _ in range(5):
        slip = rng.choice((1, -1, 2, 5, 10, -10))
        candidate = number(v * 2 if slip == 2 else v + slip)
        if float(candidate) != gold:
            return lines, candidate
    return lines, str(int(gold) + 7)


def sample(p: Plan, model: int, rng: random.Random) -> str:
    correct, misc, wrong, none = OUTCOMES[model % len(OUTCOMES)]
    kind = rng.choices(range(4), weights=(correct * p.difficulty, misc, wrong, none))[0]
    if kind == CORRECT and rng.random() < VERBATIM:
        return p.gold_text
    if rng.random() < 0.16 + 0.03 * (model % 4):  # a minority decomposition: mostly the problem's pool, some fresh
        lines = rng.choices(p.alts, weights=p.alt_weights)[0] if p.alts and rng.random() < 0.75 else \
            alternative(p.mains, p.main_keys, rng) or p.mains[0]
    else:
        lines = rng.choices(p.mains, weights=p.main_weights)[0]
    if kind == CORRECT:
        return render(lines, p.answer, rng, p.answer)
    if kind == MISCOMPUTED:
        return render(miscompute(lines, rng), p.answer, rng, p.answer)
    if kind == WRONG:
        lines, answer = wrong_answer(lines, p.answer, rng)
        return render(lines, answer, rng, answer)
    text = render(lines, p.answer, rng, None, final=False)  # no `#### x`: cut off, or an answer in words
    roll = rng.random()
    if roll < 0.4:
        return text + "\n" + rng.choice(CLOSERS).format(x=p.answer)
    if roll < 0.8:
        return text[: rng.randrange(max(1, len(text) // 2), len(text) + 1)] + rng.choice(CUTOFFS)
    last = text.rsplit("\n", 1)[-1]
    return text + ("\n" + last) * rng.randint(2, 6)  # a degenerate repetition loop


# ---- writing ------------------------------------------------------------------------------------------------------

_PLANS: list[Plan] = []  # set in the parent before forking


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") | 1


def _write(task: tuple[str, int, int, float]) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, int]:
    """One seed file of one model; per problem: text hash, equation-key hash (0 unless correct and clean), outcome."""
    folder, model, seed, temperature = task
    n = len(_PLANS)
    texts, keys, outcome = np.zeros(n, np.uint64), np.zeros(n, np.uint64), np.zeros(n, np.uint8)
    checked: dict[str, bool] = {}
    chars = 0
    path = Path(folder) / f"model{model}" / f"raw_generation_{temperature}_{seed}.json"
    with open(path, "wb") as handle:
        for index, p in enumerate(_PLANS):
            rng = random.Random((model * 1_000_003 + seed) * 10_000_019 + index)
            text = sample(p, model, rng)
            chars += len(text)
            handle.write(orjson.dumps([[p.prompt, text]]) + b"\n")
            texts[index] = _hash(text)
            found = paper_extract(text)
            if found is None:
                outcome[index] = 3
            elif float(found) != float(p.answer.replace(",", "")):
                outcome[index] = 2
            else:
                bodies = ANN.findall(text)
                ok = True
                for body in bodies:
                    if body not in checked:
                        checked[body] = paper_check(body)
                    ok = ok and checked[body]
                outcome[index] = 0 if ok else 1
                if ok:
                    keys[index] = _hash("|".join(bodies).replace(" ", ""))
    return model, seed, texts, keys, outcome, chars


def _plan_chunk(chunk: list[tuple[int, dict, str]]) -> list[Plan]:
    return [plan(i, row, q) for i, row, q in chunk]


def distinct_per_column(hashes: np.ndarray, skip_zero: bool = False) -> np.ndarray:
    """Number of distinct values in each column (optionally not counting 0)."""
    s = np.sort(hashes, axis=0)
    new = np.ones_like(s, dtype=bool)
    new[1:] = s[1:] != s[:-1]
    if skip_zero:
        new &= s != 0
    return new.sum(axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", default="../shared/data/gsm8k/train.jsonl")
    parser.add_argument("--out", default="benchmarks/collect/data-realistic")
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--problems", type=int, default=None)
    parser.add_argument("--scale", type=int, default=1, help="repeat the problem list N times as distinct problems")
    parser.add_argument("--min-distinct", type=float, default=0.90)
    args = parser.parse_args()
    started = time.perf_counter()
    base = [orjson.loads(line) for line in open(args.train, "rb")][: args.problems]
    rows = [{"question": row["question"] + (f" (variant {j})" if j else ""), "answer": row["answer"]}
            for j in range(args.scale) for row in base]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "gold.jsonl", "wb") as handle:
        for row in rows:
            handle.write(orjson.dumps(row) + b"\n")
    for m in range(args.models):
        (out / f"model{m}").mkdir(exist_ok=True)
    chunks = [[(i, rows[i], rows[i]["question"]) for i in range(lo, min(lo + 2000, len(rows)))]
              for lo in range(0, len(rows), 2000)]
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        _PLANS[:] = [p for part in pool.map(_plan_chunk, chunks) for p in part]
    tasks = [(str(out), m, s, 0.7) for m in range(args.models) for s in range(args.seeds)]
    with ctx.Pool(2) as pool:  # forked after the plans exist: workers read them without pickling
        results = pool.map(_write, tasks, chunksize=1)
    texts = np.stack([r[2] for r in results])
    keys = np.stack([r[3] for r in results])
    outcomes = np.stack([r[4] for r in results])
    total = texts.shape[0]
    distinct = float((distinct_per_column(texts) / total).mean())
    clean = (keys != 0).sum(axis=0)
    key_counts = distinct_per_column(keys, skip_zero=True)
    per_problem_keys = float(key_counts[clean > 0].mean()) if (clean > 0).any() else 0.0
    names = ("correct", "calculator", "wrong", "no_answer")
    meta = {"generator": "realistic", "problems": len(rows), "base_problems": len(base), "scale": args.scale,
            "models": args.models, "seeds": args.seeds, "samples": int(texts.size),
            "distinct_text_fraction": round(distinct, 4),
            "min_distinct_text_fraction": round(float((distinct_per_column(texts) / total).min()), 4),
            "distinct_keys_per_problem": round(per_problem_keys, 3),
            "outcomes": {name: round(float((outcomes == code).mean()), 4) for code, name in enumerate(names)},
            "mean_sample_chars": round(sum(r[5] for r in results) / texts.size, 1),
            "mean_gold_chars": round(sum(len(row["answer"]) for row in rows) / len(rows), 1),
            "seconds": round(time.perf_counter() - started, 1)}
    (out / "meta.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    print(f"wrote {args.models} models x {args.seeds} seeds x {len(rows)} problems = {texts.size} samples to {out}")
    print(f"distinct texts per problem: {distinct:.4f} (mean of distinct/total); distinct equation keys among correct "
          f"samples per problem: {per_problem_keys:.2f}; outcomes {meta['outcomes']}")
    if distinct < args.min_distinct:
        print(f"FAIL: distinct text fraction {distinct:.4f} < {args.min_distinct}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
