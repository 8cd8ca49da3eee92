"""Safe arithmetic over model text: an AST whitelist, never eval/exec/sympify, with size caps."""
from __future__ import annotations

import ast
import math
import operator
from fractions import Fraction

# Budgets: with them every check finishes in well under 100 ms (benchmarks/grading/hostile_fuzz.py), or is refused.
MAX_EXPR_CHARS = 1000     # longer expressions are refused before parsing
MAX_INT_BITS = 20_000     # ~6,000 digits: larger operands, intermediates and results are refused
MAX_RATIONAL_BITS = 2_048  # a non-integer rational's numerator and denominator (canonical mode): sums of fractions
MAX_SHIFT = MAX_INT_BITS  # `a << n` is refused when n, or the result's bit length, would pass MAX_INT_BITS
MAX_DEPTH = 60
MAX_NODES = 600           # syntax-tree nodes of one expression


class Refused(Exception):
    """The expression is outside the whitelist or over a cap; it counts as a failed calculation."""


_PY_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.BitXor: operator.xor, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
    ast.LShift: operator.lshift, ast.RShift: operator.rshift,
}
_PY_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Invert: operator.invert, ast.Not: operator.not_}
_PY_CMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge}


def _bits(value) -> int:
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return value.bit_length()
    if isinstance(value, Fraction):
        return max(value.numerator.bit_length(), value.denominator.bit_length())
    return 0


def _guard_pow(base, exp) -> None:
    """Refuse powers whose result would exceed the integer cap (Python would happily try 9**9**9**9)."""
    if isinstance(exp, (int, Fraction)) and not isinstance(exp, bool):
        base_bits = _bits(base) if not isinstance(base, float) else 0
        if base_bits > 1 and abs(exp) * base_bits > MAX_INT_BITS:
            raise Refused("power too large")


def _guard_shift(op, left, right) -> None:
    if op is ast.LShift and isinstance(right, int) and (right > MAX_SHIFT or _bits(left) + right > MAX_INT_BITS):
        raise Refused("shift too large")


def _guard_result(value):
    """Refuse an intermediate over the bit budget (a chain of sums, shifts or quotients grows past any one cap)."""
    if _bits(value) > MAX_INT_BITS:
        raise Refused("intermediate too large")
    if isinstance(value, Fraction) and value.denominator != 1 and _bits(value) > MAX_RATIONAL_BITS:
        raise Refused("rational too large")
    return value


def _parse(text: str) -> ast.expr:
    if len(text) > MAX_EXPR_CHARS:
        raise Refused("expression too long")
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise Refused(f"syntax: {type(exc).__name__}") from None
    nodes = 0
    for _ in ast.walk(tree):
        nodes += 1
        if nodes > MAX_NODES:
            raise Refused("too many terms")
    return tree


def python_eval(text: str):
    """Evaluate arithmetic exactly as Python's eval would (ints, floats, `/`, `//`, `%`, `**`, `^` as xor).

    Divergence from eval, beyond the budget only: an expression over MAX_EXPR_CHARS or MAX_NODES, nested deeper
    than MAX_DEPTH, or with an integer operand, intermediate or result over MAX_INT_BITS (a power, product or
    shift that would pass it is refused before it is computed) raises Refused where eval would grind on."""
    return _py_node(_parse(text.lstrip(" \t")), 0)


def _py_node(node: ast.AST, depth: int):
    if depth > MAX_DEPTH:
        raise Refused("nesting too deep")
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (int, float, complex)):  # bool is an int
            if _bits(node.value) > MAX_INT_BITS:
                raise Refused("number too large")
            return node.value
        raise Refused("non-numeric constant")
    if isinstance(node, ast.BinOp) and type(node.op) in _PY_BINOPS:
        left, right = _py_node(node.left, depth + 1), _py_node(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            _guard_pow(left, right)
        _guard_shift(type(node.op), left, right)
        if isinstance(node.op, ast.Mult) and _bits(left) + _bits(right) > MAX_INT_BITS:
            raise Refused("product too large")
        return _guard_result(_PY_BINOPS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _PY_UNARY:
        return _guard_result(_PY_UNARY[type(node.op)](_py_node(node.operand, depth + 1)))
    if isinstance(node, ast.Compare) and all(type(op) in _PY_CMP for op in node.ops):
        left = _py_node(node.left, depth + 1)
        for op, comp in zip(node.ops, node.comparators):
            right = _py_node(comp, depth + 1)
            if not _PY_CMP[type(op)](left, right):
                return False
            left = right
        return True
    raise Refused(f"not arithmetic: {type(node).__name__}")


def paper_check(body: str) -> bool:
    """The RFT reference's calculator check of one `<<lhs=rhs>>` body: |eval(lhs) - float(rhs)| < 1e-3.

    Identical to the reference on every body within python_eval's budget; a body beyond it (a 20,000-bit
    intermediate, 600 nodes, 60 levels) fails the check here, where the reference's eval would run on."""
    if "=" not in body:
        return False
    parts = body.split("=")
    lhs, rhs = parts[0], parts[1]
    try:
        value = python_eval(lhs)
        return abs(float(value) - float(rhs)) < 1e-3
    except (Refused, ArithmeticError, TypeError, ValueError):
        return False


# ---- exact rationals, for mathforge's canonical mode ------------------------------------------

_EXACT_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                 ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}


def exact_eval(text: str) -> Fraction:
    """Evaluate arithmetic over exact rationals (`^` and `**` are powers); Refused on anything else."""
    return _exact_node(_parse(text.strip()), 0)


def _exact_node(node: ast.AST, depth: int) -> Fraction:
    if depth > MAX_DEPTH:
        raise Refused("nesting too deep")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if _bits(node.value) > MAX_INT_BITS:
            raise Refused("number too large")
        return Fraction(repr(node.value)) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.BinOp):
        left, right = _exact_node(node.left, depth + 1), _exact_node(node.right, depth + 1)
        if isinstance(node.op, (ast.Pow, ast.BitXor)):
            return _exact_pow(left, right)
        if type(node.op) not in _EXACT_BINOPS:
            raise Refused(f"operator {type(node.op).__name__}")
        if isinstance(node.op, ast.Mult) and _bits(left) + _bits(right) > MAX_INT_BITS:
            raise Refused("product too large")
        try:
            return _guard_result(_EXACT_BINOPS[type(node.op)](left, right))
        except ZeroDivisionError:
            raise Refused("division by zero") from None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _exact_node(node.operand, depth + 1)
        return -value if isinstance(node.op, ast.USub) else value
    raise Refused(f"not arithmetic: {type(node).__name__}")


def _exact_pow(base: Fraction, exp: Fraction) -> Fraction:
    if exp.denominator == 1:
        _guard_pow(base, exp.numerator)
        if base == 0 and exp < 0:
            raise Refused("division by zero")
        return _guard_result(base ** exp.numerator)
    if base < 0 or _bits(base) > 1000:
        raise Refused("non-real or huge root")
    try:  # fractional powers are irrational in general: a close rational approximation
        return Fraction(math.pow(float(base), float(exp))).limit_denominator(10**12)
    except (OverflowError, ValueError):
        raise Refused("power overflow") from None


def close_enough(value: Fraction, shown: Fraction, shown_text: str) -> bool:
    """Whether a stated result matches: within 1e-3 (the paper's tolerance) or correctly rounded as written."""
    if abs(value - shown) < Fraction(1, 1000):
        return True
    decimals = len(shown_text.split(".", 1)[1]) if "." in shown_text else 0
    step = Fraction(1, 10**decimals)
    return abs(value - shown) <= step / 2
