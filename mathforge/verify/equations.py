"""Equations of a solution and the dedup keys built from them: the paper's raw key and a canonical key."""
from __future__ import annotations

import ast
import re
from fractions import Fraction

from mathforge.verify.answers import strict_number
from mathforge.verify.arithmetic import MAX_EXPR_CHARS, Refused, close_enough, exact_eval

ANNOTATION_RE = re.compile(r"<<([^>]*)>>")  # the reference pattern: `annotation_spans` is its linear-time scan

_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
_OPERAND = rf"(?:\\frac\{{{_NUM}\}}\{{{_NUM}\}}|\$?{_NUM})"
_OP = r"\s*(?:[-+*/×÷]|\bx\b|\\times|\\cdot|\\div)\s*"
_LHS_RE = re.compile(rf"(?<![\w.,])({_OPERAND}(?:{_OP}{_OPERAND})+)\s*$")
_RHS_RE = re.compile(rf"\s*\$?(-?{_NUM})(?![\d.]\d)")
# with fractions on the left, the result may be a fraction too: `3/6 + 2/6 = 5/6`, `\frac{1}{2}+\frac{1}{3}=\frac{5}{6}`
_FRACTION_RHS_RE = re.compile(rf"\s*\$?(-?(?:\\frac\{{{_NUM}\}}\{{{_NUM}\}}|{_NUM}\s*/\s*{_NUM}))(?![\d.]\d)")
_LHS_WINDOW = 200
_FRAC_RE = re.compile(r"\\frac\{([^{}]*)\}\{([^{}]*)\}")
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_LATEX_OPS = (("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("×", "*"), ("÷", "/"), ("$", ""))
_TIMES_X_RE = re.compile(r"(?<=[\d)\s])x(?=[\s\d(])")


def annotation_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, body) of every `<<body>>`, exactly as `ANNOTATION_RE.finditer` finds them, in linear time.

    The regex retries every `<` and rescans to the next `>` from each (`'<' * 40000` is quadratic); here a start
    whose first following `>` is not `>>` proves every start before that `>` fails too, so the scan skips them."""
    spans: list[tuple[int, int, str]] = []
    pos, size = 0, len(text)
    while (start := text.find("<<", pos)) >= 0:
        close = text.find(">", start + 2)
        if close < 0:
            break  # no `>` anywhere after: no later start can match either
        if close + 1 < size and text[close + 1] == ">":
            spans.append((start, close + 2, text[start + 2:close]))
            pos = close + 2
        else:  # starts in (start, close - 1) meet the same lone `>`; `close - 1` is the first that may not
            pos = max(start + 1, close - 1)
    return spans


def annotations(text: str) -> list[str]:
    """The bodies of the `<<...>>` calculator annotations, in order (`ANNOTATION_RE.findall`, in linear time)."""
    return [body for _, _, body in annotation_spans(text)] if "<<" in text else []


def paper_key(bodies: list[str]) -> str:
    """The reference key: annotation bodies joined by `|`, spaces removed."""
    return "|".join(bodies).replace(" ", "")


def plain_equations(text: str) -> list[tuple[int, str]]:
    """`a op b = c` equations written in plain text or LaTeX outside annotations, with their positions."""
    masked = text
    if "<<" in text:
        pieces, last = [], 0
        for start, end, _ in annotation_spans(text):
            pieces += [text[last:start], "#" * (end - start)]
            last = end
        masked = "".join(pieces) + text[last:]
    found = []
    pos = masked.find("=")
    while pos >= 0:
        rhs = _RHS_RE.match(masked, pos + 1)
        lhs = _LHS_RE.search(masked, max(0, pos - _LHS_WINDOW), pos) if rhs else None
        if lhs:
            fraction = _FRACTION_RHS_RE.match(masked, pos + 1) if ("/" in lhs.group(1) or "frac" in lhs.group(1)) else None
            found.append((lhs.start(), f"{lhs.group(1)}={(fraction or rhs).group(1)}"))
        pos = masked.find("=", pos + 1)
    return found


def all_equations(text: str) -> list[str]:
    """Annotation and plain-text equations in reading order."""
    found = [(start, body) for start, _, body in annotation_spans(text)] if "<<" in text else []
    found.extend(plain_equations(text))
    found.sort(key=lambda item: item[0])
    return [eq for _, eq in found]


def to_python_syntax(expr: str) -> str:
    """Rewrite human arithmetic (`×`, ` x `, `\\frac{a}{b}`, `1,000`, `^`) as Python-syntax arithmetic."""
    for old, new in _LATEX_OPS:
        expr = expr.replace(old, new)
    expr = _FRAC_RE.sub(r"((\1)/(\2))", expr)
    expr = _THOUSANDS_RE.sub("", expr)
    expr = _TIMES_X_RE.sub("*", expr)
    return expr.replace("^", "**").strip()


def format_number(value: Fraction) -> str:
    """A canonical spelling: integers plain, terminating decimals without trailing zeros, else p/q."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den == 1:
        places = max(twos, fives)
        scaled = abs(value.numerator) * 10**places // value.denominator
        sign = "-" if value < 0 else ""
        whole, frac = divmod(scaled, 10**places)
        return f"{sign}{whole}.{str(frac).rjust(places, '0').rstrip('0')}"
    return f"{value.numerator}/{value.denominator}"


def _canon(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return format_number(Fraction(repr(node.value)) if isinstance(node.value, float) else Fraction(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return f"-({_canon(node.operand)})"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
        return _canon(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        terms: list[str] = []
        _collect_terms(node, "+", terms)
        return "(" + "".join(sorted(terms)) + ")"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        factors: list[str] = []
        _collect_factors(node, factors)
        return "(" + "*".join(sorted(factors)) + ")"
    if isinstance(node, ast.BinOp):
        symbol = {ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "^", ast.BitXor: "^"}.get(type(node.op))
        if symbol:
            return f"({_canon(node.left)}{symbol}{_canon(node.right)})"
    raise Refused(f"not arithmetic: {type(node).__name__}")


def _collect_terms(node: ast.AST, sign: str, out: list[str]) -> None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        _collect_terms(node.left, sign, out)
        flipped = ("-" if sign == "+" else "+") if isinstance(node.op, ast.Sub) else sign
        _collect_terms(node.right, flipped, out)
    else:
        out.append(sign + _canon(node))


def _collect_factors(node: ast.AST, out: list[str]) -> None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        _collect_factors(node.left, out)
        _collect_factors(node.right, out)
    else:
        out.append(_canon(node))


def _fraction(text: str) -> Fraction | None:
    """`5/6` or `\\frac{5}{6}` as an exact rational (None when either part is not a plain number or is 0)."""
    match = _FRAC_RE.search(text)
    num, _, den = (match.group(1), None, match.group(2)) if match else text.partition("/")
    top, bottom = strict_number(num), strict_number(den)
    if top is None or not bottom:
        return None
    value = top / bottom
    return -value if text.strip().startswith("-") and value > 0 and match else value


def canonical_equation(equation: str) -> tuple[str, bool]:
    """(normalized `lhs=rhs`, whether the stated result is right). Unparseable sides stay raw and count as wrong."""
    lhs, _, rhs = equation.partition("=")
    rhs_value = strict_number(rhs) if "/" not in rhs and "frac" not in rhs else _fraction(rhs)
    python_lhs = to_python_syntax(lhs)
    try:
        if len(python_lhs) > MAX_EXPR_CHARS:
            raise Refused("expression too long")
        value = exact_eval(python_lhs)  # first: its budgets (length, nodes, depth, bit sizes) refuse hostile input
        lhs_key = _canon(ast.parse(python_lhs, mode="eval").body)
    except (Refused, SyntaxError, ValueError, MemoryError, RecursionError):
        return equation.replace(" ", ""), False
    if rhs_value is None:
        return f"{lhs_key}={rhs.strip()}", False
    if "/" in rhs or "frac" in rhs:  # a fraction is exact as written: no rounding reading applies
        return f"{lhs_key}={format_number(rhs_value)}", value == rhs_value
    return f"{lhs_key}={format_number(rhs_value)}", close_enough(value, rhs_value, rhs.strip().replace(",", ""))


def reasoning_key(text: str) -> str:
    """What makes two solutions the same reasoning: their canonical equations in order (annotations and plain
    text, so `4+3=7` is `3+4=7`); a solution without equations is keyed by its whitespace-folded text."""
    equations = all_equations(text)
    if equations:
        return "|".join(canonical_equation(e)[0] for e in equations)
    return "text:" + " ".join(text.split())
