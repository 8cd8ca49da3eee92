"""Variants of LaTeX solutions that measure the equation reader: re-spelled, one result changed, multi-path in LaTeX."""
from __future__ import annotations

import random
import re

from mathforge.verify.relations import TRUE, group_end, read, regions

FINAL = "Final Answer: The final answer is ${answer}$. I hope it is correct."
_NUMBER = r"\d+(?:\.\d+)?"
_SUM = re.compile(rf"({_NUMBER})(\s*\+\s*)({_NUMBER})")
_PRODUCT = re.compile(rf"({_NUMBER})(\s*\\(?:cdot|times)\s*)({_NUMBER})")
_BEFORE_SUM = set("=({$+&[")
_BEFORE_PRODUCT = _BEFORE_SUM | {"-"}
_AFTER = set("=)}+-,.$&<>]")
_AFTER_SUM = re.compile(r"\\(?:right|le|leq|ge|geq|neq|ne|quad|qquad|end|text|\\)(?![A-Za-z])")
_AFTER_PRODUCT = re.compile(r"\\(?:cdot|times|right|le|leq|ge|geq|neq|ne|quad|qquad|end|text|\\)(?![A-Za-z])")
_LITERAL = re.compile(r"\d+(?:\.\d+)?")
TIMES = ("\\times", "\\cdot")


def _around(text: str, start: int, end: int) -> tuple[str, str]:
    """The non-space characters just before `start` and just after `end` ('' at either end of the text)."""
    before = text[:start].rstrip()
    after = text[end:].lstrip()
    return (before[-1] if before else ""), after


def _swap(pattern: re.Pattern, before_ok: set[str], after_commands: re.Pattern):
    def swap(region: str) -> str:
        def one(m: re.Match) -> str:
            before, after = _around(region, m.start(), m.end())
            if before and before not in before_ok:
                return m.group()
            if before == "-" and region[:m.start()].rstrip().endswith(("\\cdot", "\\times")):
                return m.group()
            if before == "{" and re.search(r"[\^_]\{$", region[:m.start()].rstrip()):
                return m.group()  # an exponent: 10^{2+3} stays (its value would not change, but keep it plain)
            if after and after[0] not in _AFTER and not after_commands.match(after):
                return m.group()
            if after.startswith(("\\%", "%")) or (after[:1] == "." and after[1:2] not in ("", " ", "\n", "$")):
                return m.group()
            return m.group(3) + m.group(2) + m.group(1)
        return pattern.sub(one, region)
    return swap


_commute_sums = _swap(_SUM, _BEFORE_SUM, _AFTER_SUM)
_commute_products = _swap(_PRODUCT, _BEFORE_PRODUCT, _AFTER_PRODUCT)


def _in_math(text: str, change) -> str:
    """`change` applied to every math region of the text, the rest kept."""
    out, last = [], 0
    for kind, start, end in regions(text):
        if kind == "math":
            out += [text[last:start], change(text[start:end])]
            last = end
    return "".join(out) + text[last:]


def box_to_final_line(text: str) -> str:
    """A solution's only `\\boxed{X}` unboxed in place and a Minerva closing line for X appended (a solution with
    several boxes, several answers, is left as it is)."""
    at = text.find("\\boxed{")
    if at < 0 or text.find("\\boxed{", at + 1) >= 0:
        return text
    end = group_end(text, at + len("\\boxed"))
    answer = text[at + len("\\boxed{"):end - 1]
    return text[:at] + answer + text[end:] + "\n" + FINAL.format(answer=" ".join(answer.split()))


def _spaced(region: str) -> str:
    region = re.sub(r"(?<!\\)\s*\+\s*", " + ", region)
    return re.sub(r"(?<![\\&<>!\s])\s*=\s*", " = ", region)


def reformat(text: str) -> str:
    """The same solution re-spelled: `\\dfrac` -> `\\frac`, `\\cdot` -> `\\times`, `\\left(`/`\\right)` dropped,
    spaces around `=` and `+`, operands of number sums and products swapped where that cannot change the value, and
    its box (when it has one) turned into a Minerva closing line."""
    text = text.replace("\\dfrac", "\\frac")
    text = re.sub(r"\\cdot(?![A-Za-z])", r"\\times", text)
    text = re.sub(r"\\left\s*([(\[])", r"\1", text)
    text = re.sub(r"\\right\s*([)\]])", r"\1", text)
    text = _in_math(text, lambda region: _commute_products(_commute_sums(region)))
    text = _in_math(text, _spaced)
    return box_to_final_line(text)


def _scripts(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of exponents and subscripts (`^{...}`, `_3`, `^\\frac12`) in text[start:end]."""
    zones = []
    for m in re.finditer(r"[\^_]\s*", text[:end]):
        if m.start() < start:
            continue
        at = m.end()
        if text.startswith("{", at):
            zones.append((at, group_end(text, at, end)))
        elif text.startswith("\\", at):
            command = re.match(r"\\[A-Za-z]+", text[at:])
            stop = at + (len(command.group()) if command else 2)
            while command and command.group() in ("\\frac", "\\dfrac", "\\tfrac") and stop < end and \
                    text[stop].isdigit():
                stop += 1
            zones.append((at, max(stop, at + 1)))
        else:
            zones.append((at, at + 1))
    return zones


def _answer_spans(text: str) -> list[tuple[int, int]]:
    """Where the final answer is written: every `\\boxed{...}`, and what follows `####`."""
    spans = [(m.end(), group_end(text, m.end() - 1)) for m in re.finditer(r"\\boxed\{", text)]
    at = text.find("####")
    return spans + ([(at, len(text))] if at >= 0 else [])


def inject_error(text: str, rng: random.Random, keep_answer: bool = False) -> tuple[str, int, str] | None:
    """One checked-true equality's result changed: the last digit of the last number of its right side that is not in
    an exponent or subscript, and whose change changes the side's value, moves by one (`=-30` -> `=-31`,
    `=\\frac{3}{4}` -> `=\\frac{3}{5}`, a 9 becomes 8).
    `keep_answer`: never a number inside `\\boxed{}` or after `####` (the final answer stays right).
    Returns (new text, offset of the changed side, the pair as written before the change) or None (nothing checked)."""
    candidates = [(relation, i) for relation in read(text).relations
                  for i, verdict in enumerate(relation.verdicts) if verdict == TRUE]
    answer = _answer_spans(text) if keep_answer else []
    rng.shuffle(candidates)
    for relation, i in candidates:
        side = relation.sides[i + 1]
        zones = _scripts(text, side.start, side.end)
        literals = [m for m in _LITERAL.finditer(text, side.start, side.end)
                    if not any(a <= m.start() < b for a, b in zones + answer)]
        if not literals:
            continue
        for m in reversed(literals):
            digit = int(m.group()[-1])
            changed = text[:m.start()] + m.group()[:-1] + str(digit + 1 if digit < 9 else 8) + text[m.end():]
            if _value_at(changed, side.start) != side.value:  # `\\binom{27}{13}` -> `{14}` changes nothing
                return changed, side.start, relation.pair(i)
    return None


def _value_at(text: str, start: int):
    """The value of the relation side that starts at `start` in the text, as read."""
    for relation in read(text).relations:
        for side in relation.sides:
            if side.start == start:
                return side.value
    return None


def latex_solution(steps: list[tuple], rng: random.Random) -> str:
    """A multi-path family step list `[(x, op, y, result)]` written as LaTeX prose: each step an inline equation with
    a drawn spelling (`\\times` or `\\cdot`, `\\frac{x}{y}` or `x \\div y`, operands of + and * in either order,
    spacing), the answer boxed or on a Minerva closing line."""
    lines = []
    for n, (x, op, y, result) in enumerate(steps):
        if op in "+*" and rng.random() < 0.5:
            x, y = y, x
        sp = rng.choice(["", " "])
        if op == "*":
            lhs = f"{x}{sp}{rng.choice(TIMES)} {y}"
        elif op == "/":
            lhs = rng.choice([f"\\frac{{{x}}}{{{y}}}", f"\\dfrac{{{x}}}{{{y}}}", f"{x}{sp}\\div {y}"])
        else:
            lhs = f"{x}{sp}{op}{sp}{y}"
        lead = rng.choice(["First, ", "Then ", "Next, ", "So ", "We get "]) if n else "First, "
        lines.append(f"{lead}${lhs}{sp}={sp}{result}$.")
    answer = steps[-1][3]
    if rng.random() < 0.5:
        lines.append(f"The answer is $\\boxed{{{answer}}}$.")
    else:
        lines.append(FINAL.format(answer=answer))
    return "\n".join(lines)
