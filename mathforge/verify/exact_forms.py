"""Exact verdicts without sympy for common competition answers: numbers, radicals, pi, polynomials, intervals."""

# A normalized answer made only of integers, decimals, \frac, \sqrt, \pi, single-letter variables, + - * / ^, \cdot,
# \times and brackets is read into a polynomial whose coefficients are exact sums of rational * sqrt(squarefree) *
# pi^k (relations.py's values). Two readings are equal exactly when the answers are; anything else outside these
# forms, or where Math-Verify reads the text differently, is handed on (None). Never a float, never a random point.
from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache

from mathforge.verify.arithmetic import Refused
from mathforge.verify.relations import _add, _const, _inv, _mul, _neg, _pow, _sqrt, rational

CORRECT, WRONG = "correct", "wrong"
MAX_CHARS = 200          # longer answers go to the slow path
MAX_POWER = 32           # exponent of a variable
MAX_MONOMIALS = 64
SEPARATION = Fraction(1, 10**10)  # a decimal against a rational: unequal beyond this (relative) is WRONG exactly
ALLOWED_RE = re.compile(r"^(?:[0-9a-zA-Z+\-*/^(){}\[\]., ]|\\(?:frac|sqrt|pi|cdot|times)(?![a-zA-Z]))*$")
TOKEN_RE = re.compile(r"\s*(?:(\d+\.\d+|\.\d+|\d+)|\\([a-z]+)|([a-zA-Z])|(.))")
MIXED_RE = re.compile(r"^(-?)(\d+)\\frac(?:\{(\d+)\}\{(\d+)\}|(\d)(\d))$")  # 2\frac{1}{2} is 5/2, as Math-Verify reads it
RESERVED = frozenset("eEI")  # Euler's number (and I) to Math-Verify: not variables here
IMAGINARY = "i"  # behind the normalization Math-Verify reads i as a symbol (i^2 is not -1): so does this reader


class _Handed(Exception):
    """Outside the fast forms: the slow path decides."""


Poly = dict  # {((var, exp), ...): Value}; {} is zero


def _padd(a: Poly, b: Poly) -> Poly:
    out = dict(a)
    for mono, c in b.items():
        s = _add(out.get(mono, {}), c)
        if s:
            out[mono] = s
        else:
            out.pop(mono, None)
    return out


def _pmul(a: Poly, b: Poly) -> Poly:
    out: Poly = {}
    for m1, c1 in a.items():
        for m2, c2 in b.items():
            powers = dict(m1)
            for var, e in m2:
                powers[var] = powers.get(var, 0) + e
            if any(e > MAX_POWER for e in powers.values()):
                raise _Handed
            if powers.get(IMAGINARY, 0) > 1:
                raise _Handed  # i^2: left to Math-Verify
            out = _padd(out, {tuple(sorted(powers.items())): _mul(c1, c2)})
    if len(out) > MAX_MONOMIALS:
        raise _Handed
    return out


def _constant(p: Poly):
    """The Value of a polynomial without variables (None when it has one)."""
    if not p:
        return {}
    if len(p) == 1 and () in p:
        return p[()]
    return None


class _Parser:
    def __init__(self, text: str):
        self.tokens = []
        for m in TOKEN_RE.finditer(text):
            num, cmd, var, ch = m.groups()
            if num is not None:
                self.tokens.append(("num", num))
            elif cmd is not None:
                self.tokens.append(("cmd", cmd))
            elif var is not None:
                self.tokens.append(("var", var))
            elif ch is not None and ch.strip():
                self.tokens.append(("op", ch))
        self.i = 0
        self.decimal = any(kind == "num" and "." in value for kind, value in self.tokens)

    def peek(self, ahead: int = 0):
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else ("end", "")

    def take(self, kind: str | None = None, value: str | None = None):
        tok = self.peek()
        if (kind is not None and tok[0] != kind) or (value is not None and tok[1] != value):
            raise _Handed
        self.i += 1
        return tok

    def whole(self) -> Poly:
        p = self.expr()
        if self.peek()[0] != "end":
            raise _Handed
        return p

    def expr(self) -> Poly:
        sign = 1
        if self.peek() in (("op", "-"), ("op", "+")):
            sign = -1 if self.take()[1] == "-" else 1
        total = self.term()
        if sign < 0:
            total = {m: _neg(c) for m, c in total.items()}
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            t = self.term()
            total = _padd(total, t if op == "+" else {m: _neg(c) for m, c in t.items()})
        return total

    def term(self) -> Poly:
        out = self.power()
        divided = False
        while True:
            tok = self.peek()
            if tok in (("op", "*"), ("cmd", "cdot"), ("cmd", "times")):
                self.take()
                out = _pmul(out, self.power())
            elif tok == ("op", "/"):
                self.take()
                divisor = _constant(self.power())
                if divisor is None:
                    raise _Handed  # division by a variable: a rational function, not a polynomial
                out = _pmul(out, {(): _inv(divisor)})
                divided = True
            elif tok[0] in ("var", "cmd") or tok in (("op", "("), ("op", "{")):
                if divided:
                    raise _Handed  # 1/2x: read either way by different readers
                out = _pmul(out, self.power())
            else:
                return out

    def power(self) -> Poly:
        base = self.primary()
        if self.peek() != ("op", "^"):
            return base
        self.take()
        tok = self.peek()
        if tok[0] == "num" and len(tok[1]) == 1:
            self.take()
            e = Fraction(int(tok[1]))
        elif tok == ("op", "{"):
            self.take()
            value = _constant(self.expr())
            self.take("op", "}")
            e = rational(value) if value is not None else None
            if e is None:
                raise _Handed
        else:
            raise _Handed  # x^23 is x^2 3 in LaTeX; x^-1, x^\pi: not here
        if self.peek() == ("op", "^"):
            raise _Handed
        value = _constant(base)
        if value is not None:
            if e.denominator != 1 and rational(value) is None:
                raise _Handed
            return {(): v} if (v := _pow(value, _const(e))) else {}
        if e.denominator != 1 or e < 0 or e > MAX_POWER:
            raise _Handed
        out: Poly = {(): _const(1)}
        for _ in range(int(e)):
            out = _pmul(out, base)
        return out

    def primary(self) -> Poly:
        kind, value = self.take()
        after = self.peek()
        if kind == "num":
            if after[0] == "num" or after == ("cmd", "frac"):
                raise _Handed  # `2 3`, or a mixed number inside an expression
            q = Fraction(int(value)) if value.isdigit() else Fraction(value)
            return {(): _const(q)} if q else {}
        if kind == "var":
            if value in RESERVED or not value.islower() or after[0] in ("var", "num") or after == ("op", "("):
                raise _Handed  # `ab`, `x2`, `f(x)`: names and functions; capitals (choice letters: C and c agree)
            return {((value, 1),): _const(1)}
        if kind == "cmd" and value == "pi":
            return {(): {(1, 1): Fraction(1)}}
        if kind == "cmd" and value == "sqrt":
            inner = _constant(self.argument())
            if inner is None:
                raise _Handed
            return {(): v} if (v := _sqrt(inner)) else {}
        if kind == "cmd" and value == "frac":
            top, bottom = self.argument(), _constant(self.argument())
            if bottom is None:
                raise _Handed
            return _pmul(top, {(): _inv(bottom)})
        if (kind, value) in (("op", "("), ("op", "{")):
            inner = self.expr()
            self.take("op", ")" if value == "(" else "}")
            return inner
        raise _Handed

    def argument(self) -> Poly:
        """A command's argument: `{...}`, or one character (`\\frac12`, `\\sqrt2`)."""
        tok = self.peek()
        if tok == ("op", "{"):
            self.take()
            inner = self.expr()
            self.take("op", "}")
            return inner
        if tok[0] == "num":
            digits = tok[1]
            if not digits.isdigit():
                raise _Handed
            if len(digits) == 1:
                self.take()
            elif len(digits) == 2 and self.tokens[self.i - 1] == ("cmd", "frac"):
                self.tokens[self.i:self.i + 1] = [("num", digits[0]), ("num", digits[1])]  # \frac12
                self.take()
            else:
                raise _Handed
            return {(): _const(int(digits[0]))} if digits[0] != "0" else {}
        if tok[0] == "var" and tok[1] not in RESERVED and tok[1].islower():
            self.take()
            return {((tok[1], 1),): _const(1)}
        raise _Handed


@lru_cache(maxsize=1 << 16)
def reading(answer: str):
    """(polynomial, has a decimal) for an answer in the fast forms; None for anything else."""
    if len(answer) > MAX_CHARS or not ALLOWED_RE.match(answer):
        return None
    if (m := MIXED_RE.match(answer)) is not None:
        sign, whole, num, den = m.group(1), int(m.group(2)), m.group(3) or m.group(5), m.group(4) or m.group(6)
        if int(den) == 0:
            return None
        value = whole + Fraction(int(num), int(den))
        return ({(): _const(-value if sign else value)} if value else {}), False
    try:
        parser = _Parser(answer)
        return parser.whole(), parser.decimal
    except (_Handed, Refused, ZeroDivisionError, ValueError, OverflowError, RecursionError):
        return None


def _float(value) -> float:
    return sum(float(c) * math.sqrt(r) * math.pi ** k for (r, k), c in value.items())


def _items(answer: str) -> tuple[str, list[str]] | None:
    """(bracket pair, items) of a tuple or interval `(a, b)` / `[a, b)`; None when not one."""
    if len(answer) < 2 or answer[0] not in "([" or answer[-1] not in ")]":
        return None
    items, depth, start = [], 0, 1
    for i, ch in enumerate(answer):
        depth += (ch in "([{") - (ch in ")]}")
        if depth == 0 and i < len(answer) - 1:
            return None
        if ch == "," and depth == 1:
            items.append(answer[start:i].strip())
            start = i + 1
    items.append(answer[start:-1].strip())
    return (answer[0] + answer[-1], items) if len(items) > 1 and all(items) else None


ASSIGNMENT_RE = re.compile(r"^([a-z])\s*=\s*([^=]+)$")
INFINITY_RE = re.compile(r"^([+-]?)\\infty$")


def _assignment(gold: str, pred: str) -> str | None:
    """`x = A` against `x = B` (the same one-letter name, not in A or B): the verdict of A against B; else None."""
    g, p = ASSIGNMENT_RE.match(gold), ASSIGNMENT_RE.match(pred)
    if g is None or p is None or g.group(1) != p.group(1) or g.group(1) in RESERVED or g.group(1) == IMAGINARY:
        return None
    if g.group(1) in g.group(2) or g.group(1) in p.group(2):
        return None  # `x = x + 1`: Math-Verify may read such an equation as a truth value
    return _decide_one(g.group(2).strip(), p.group(2).strip())


def _interval(items: list[str]) -> bool:
    """Two ends the fast forms read, each a fast-form value or an infinity on its side (`-\\infty` low, `\\infty`
    high)."""
    if len(items) != 2:
        return False
    for item, sides in zip(items, (("-",), ("", "+"))):
        infinite = INFINITY_RE.match(item)
        if (infinite is None and reading(item) is None) or (infinite is not None and infinite.group(1) not in sides):
            return False
    return True


def _intervals(answer: str) -> list[tuple[str, list[str]]] | None:
    """The intervals of `I \\cup J ...` (each a bracket pair and two ends in the fast forms or infinite)."""
    parts = answer.split("\\cup")
    if len(parts) < 2:
        return None
    out = [_items(part.strip()) for part in parts]
    return out if all(x is not None and _interval(x[1]) for x in out) else None


def _infinite_ends(g_items, p_items) -> str | None:
    """Two intervals with at least one infinite end (`[1, \\infty)`), compared as sets: infinite ends are open
    whatever the bracket (as sympy reads them), finite ends exactly with their brackets; None to hand on."""
    if len(g_items[1]) != 2 or len(p_items[1]) != 2:
        return None
    ends = []
    for brackets, (low, high) in (g_items, p_items):
        if not _interval([low, high]):
            return None  # `(\infty, 3)`, `(x, \infty]`...: not an interval the fast forms read
        lo, hi = INFINITY_RE.match(low), INFINITY_RE.match(high)
        ends.append(((None if lo else (brackets[0], low)), (None if hi else (brackets[1], high))))
    for g_end, p_end in zip(ends[0], ends[1]):
        if (g_end is None) != (p_end is None):
            return WRONG  # one end infinite, the other finite: the sets differ (neither interval is empty)
        if g_end is not None:
            verdict = _decide_one(g_end[1], p_end[1])
            if verdict != CORRECT:
                return verdict  # None hands on
            if g_end[0] != p_end[0]:
                return WRONG  # the same end, closed in one and open in the other
    return CORRECT


MATRIX_RE = re.compile(r"^(-?)\s*\\begin\{([pb]matrix)\}(.*)\\end\{\2\}$", re.S)
WORD_RE = re.compile(r"^[a-z]*[a-df-hj-z][a-z]*$")  # a word of letters, one of them neither e nor i


def _matrix(answer: str) -> tuple[bool, list[list[str]]] | None:
    """(negated, rows of entries) of a `pmatrix` / `bmatrix` answer, optionally negated, whose entries are all in the
    fast forms; None for anything else."""
    m = MATRIX_RE.match(answer)
    if m is None or len(answer) > 4 * MAX_CHARS or "\\begin" in m.group(3) or "\\end" in m.group(3):
        return None
    rows = [row.split("&") for row in m.group(3).split("\\\\")]
    if len(rows) > 1 and rows[-1] == [rows[-1][0]] and not rows[-1][0].strip():
        rows.pop()  # a trailing `\\`
    rows = [[entry.strip() for entry in row] for row in rows]
    if any(len(row) != len(rows[0]) for row in rows) or any(reading(e) is None for row in rows for e in row):
        return None
    return bool(m.group(1)), rows


def _decide_matrices(gold: str, pred: str) -> tuple[str, str] | None:
    """A matrix against a matrix (entry by entry; another shape is WRONG) or against a value (never equal); a leading
    minus negates every entry, as Math-Verify reads it."""
    g, p = _matrix(gold), _matrix(pred)
    if g is None and p is None:
        return None
    if g is None or p is None:
        matrix, other = (g, pred) if p is None else (p, gold)
        if matrix is not None and reading(other) is not None:  # (a value's reading has no `\\begin`)
            return WRONG, "a matrix against a value (exact)"
        return None
    (g_negated, g_rows), (p_negated, p_rows) = g, p
    if len(g_rows) != len(p_rows) or len(g_rows[0]) != len(p_rows[0]):
        return WRONG, "matrices of different shapes (exact)"
    for g_row, p_row in zip(g_rows, p_rows):
        for g_entry, p_entry in zip(g_row, p_row):
            verdict = _decide_one(g_entry, p_entry if g_negated == p_negated else f"-({p_entry})")
            if verdict is None:
                return None
            if verdict == WRONG:
                return WRONG, "different matrices (exact)"
    return CORRECT, "equal matrices (exact)"


def decide(gold: str, pred: str) -> tuple[str, str] | None:
    """(verdict, reason) for two normalized answers when both are in the fast forms, else None (the slow path)."""
    if "\\begin" in gold or "\\begin" in pred:
        return _decide_matrices(gold, pred)
    if "=" in pred and "=" not in gold and (last := _last_side(pred)) is not None:
        verdict = _decide_one(gold, last)  # `5 + 2 = 7` against `7`: Math-Verify reads the last side
        return None if verdict is None else (verdict, "the last side, " + ("equal" if verdict == CORRECT else
                                                                           "different") + " (exact)")
    for word, other in ((gold, pred), (pred, gold)):  # `odd`, `friday`: a product of unknowns, never a number
        if WORD_RE.match(word) and len(word) > 1 and _is_number(other):
            return WRONG, "a word against a number (exact)"
    if "=" in gold and "=" in pred:
        verdict = _assignment(gold, pred)
        return None if verdict is None else (verdict, "the same name, " + ("equal" if verdict == CORRECT else
                                                                            "different") + " values (exact)")
    if "\\cup" in gold or "\\cup" in pred:  # a union of intervals against a value: never equal
        union, other = (_intervals(gold), pred) if "\\cup" in gold else (_intervals(pred), gold)
        if union is not None and "\\cup" not in other and reading(other) is not None:
            return WRONG, "a union of intervals against a value (exact)"
        return None
    g_items, p_items = _items(gold), _items(pred)
    if g_items is not None or p_items is not None:
        if (g_items is None) != (p_items is None):  # a tuple or interval against a value: never equal
            items, other = (g_items, pred) if p_items is None else (p_items, gold)
            if reading(other) is not None and (_interval(items[1]) or all(reading(item) is not None
                                                                         for item in items[1])):
                return WRONG, "a tuple against a value (exact)"
            return None
        if any(INFINITY_RE.match(x) for x in g_items[1] + p_items[1]):
            verdict = _infinite_ends(g_items, p_items)
            return None if verdict is None else (verdict, f"{'equal' if verdict == CORRECT else 'different'} "
                                                          "intervals (exact)")
        if g_items[0] != p_items[0] or len(g_items[1]) != len(p_items[1]):
            return None
        verdicts = []
        for g, p in zip(g_items[1], p_items[1]):
            verdict = _decide_one(g, p)
            if verdict is None:
                return None
            verdicts.append(verdict)
        if g_items[0] != "()" and len(g_items[1]) == 2 and (_empty(g_items[1]) or _empty(p_items[1])):
            return None  # an empty interval such as [2, 1]: Math-Verify reads them all as one set
        ok = all(v == CORRECT for v in verdicts)
        return (CORRECT, "equal items (exact)") if ok else (WRONG, "different items (exact)")
    verdict = _decide_one(gold, pred)
    if verdict is None:
        return None
    return (CORRECT, "equal (exact)") if verdict == CORRECT else (WRONG, "different (exact)")


def _last_side(chain: str) -> str | None:
    """The last side of `a = b = c` when every side is in the fast forms (an equation against a value is its last
    side to Math-Verify, whether the chain holds or not); None for anything else."""
    sides = [side.strip() for side in chain.split("=")]
    return sides[-1] if len(sides) > 1 and all(side and reading(side) is not None for side in sides) else None


def _is_number(answer: str) -> bool:
    found = reading(answer)
    return found is not None and not any(monomial for monomial in found[0])


def _empty(items: list[str]) -> bool:
    a, b = reading(items[0]), reading(items[1])
    va, vb = (_constant(a[0]) if a else None), (_constant(b[0]) if b else None)
    return va is None or vb is None or _float(va) >= _float(vb)  # only chooses to hand on, never decides


def _decide_one(gold: str, pred: str) -> str | None:
    g, p = reading(gold), reading(pred)
    if g is None or p is None:
        return None
    (gp, g_decimal), (pp, p_decimal) = g, p
    if not (g_decimal or p_decimal):
        return CORRECT if gp == pp else WRONG
    # a decimal: only rational values are decided here (Math-Verify's float comparisons beyond them are not mirrored)
    gv, pv = _constant(gp), _constant(pp)
    gq, pq = (rational(gv) if gv is not None else None), (rational(pv) if pv is not None else None)
    if gq is None or pq is None:
        return None
    if gq == pq:
        return CORRECT
    return WRONG if abs(gq - pq) > SEPARATION * max(abs(gq), abs(pq)) else None
