"""Equations of a solution (annotations, LaTeX / plain-text relations): calculator verdicts, dedup keys, groundedness."""
from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from fractions import Fraction

from mathforge.verify import relations
from mathforge.verify.answers import strict_number
from mathforge.verify.arithmetic import MAX_EXPR_CHARS, Refused, close_enough, exact_eval
from mathforge.verify.relations import format_number

ANNOTATION_RE = re.compile(r"<<([^>]*)>>")  # the reference pattern: `annotation_spans` is its linear-time scan

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


def to_python_syntax(expr: str) -> str:
    """Rewrite human arithmetic (`×`, ` x `, `\\frac{a}{b}`, `1,000`, `^`) as Python-syntax arithmetic."""
    for old, new in _LATEX_OPS:
        expr = expr.replace(old, new)
    expr = _FRAC_RE.sub(r"((\1)/(\2))", expr)
    expr = _THOUSANDS_RE.sub("", expr)
    expr = _TIMES_X_RE.sub("*", expr)
    return expr.replace("^", "**").strip()


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


@dataclass(frozen=True)
class Step:
    """One equation of a solution: a calculator annotation `<<lhs=rhs>>`, or a relation (chain) the LaTeX /
    plain-text reader found (`mathforge.verify.relations`)."""

    start: int
    text: str                  # as written: the annotation's body, or the relation's sides joined by their relations
    key: str                   # canonical: `canonical_equation` for an annotation, the relation's key otherwise
    wrong: tuple[str, ...]     # what the calculator refutes: an annotation that does not check out (as today,
                               # unreadable ones included), or each exactly false equality of the relation
    proven: bool               # a refutation with both sides evaluated (an unreadable annotation is not proven)


def steps(text: str) -> list[Step]:
    """Every annotation and relation of a text, in reading order (the text inside annotations is read only as an
    annotation; a Minerva closing line is not read)."""
    spans = annotation_spans(text) if "<<" in text else []
    found = []
    for start, end, body in spans:
        key, ok = canonical_equation(body)
        found.append(Step(start, body, key, () if ok else (body,), not ok and _both_sides_evaluate(body)))
    for relation in relations.read(text, [(start, end) for start, end, _ in spans]).relations:
        written = relation.sides[0].source + "".join(op + side.source for op, side in
                                                     zip(relation.ops, relation.sides[1:]))
        wrong = tuple(relation.wrong)
        found.append(Step(relation.start, written, relation.key, wrong, bool(wrong)))
    found.sort(key=lambda step: step.start)
    return found


def checked_key(text: str) -> tuple[bool, str]:
    """(whether the calculator refutes a step, the text's dedup key: its steps' keys, or `text_key` without any):
    what collect needs of `steps`, from `relations.keys` where it answers (no annotation, nothing refuted)."""
    if "<<" not in text:
        found = relations.keys(text)
        if found is not None:
            return False, "|".join(found) if found else text_key(text)
    found = steps(text)
    return any(step.wrong for step in found), "|".join(step.key for step in found) if found else text_key(text)


def _both_sides_evaluate(body: str) -> bool:
    for side in body.split("=", 1):
        try:
            exact_eval(to_python_syntax(side))
        except (Refused, ArithmeticError, ValueError, MemoryError, RecursionError, SyntaxError):
            return False
    return "=" in body


def all_equations(text: str) -> list[str]:
    """Annotation bodies and relations (LaTeX and plain text) as written, in reading order."""
    return [step.text for step in steps(text)]


def miscomputed(text: str) -> list[str]:
    """What the calculator refutes in a text: annotations that do not check out and exactly false equalities."""
    return [wrong for step in steps(text) for wrong in step.wrong]


def first_proven_error(text: str) -> str | None:
    """The first equation the calculator proves wrong (both sides evaluated), as written; None when there is none."""
    return next((step.wrong[0] for step in steps(text) if step.proven), None)


def text_key(text: str) -> str:
    """The fallback key of a solution without any equation: `text:` + `relations.fingerprint` (its math spelled
    canonically, statement by statement, its words with whitespace removed; a Minerva closing line dropped)."""
    return "text:" + relations.fingerprint(text)


def reasoning_key(text: str) -> str:
    """What makes two solutions the same reasoning: their canonical equations in order — annotations, and the
    relations of LaTeX math and plain-text arithmetic (numbers normalized, `\\dfrac` = `\\frac`, `\\cdot` =
    `\\times`, operands of sums and products sorted, spacing and `\\left(` ignored, `\\boxed{}` transparent, a
    Minerva closing line not read); a solution without any is keyed by `text_key`."""
    return checked_key(text)[1]


# Numbers a solution may use without taking them from the question or an earlier result: counting and unit
# constants — 0-12 (digits, a dozen, months, inches per foot), 16 (ounces per pound), 24 (hours per day), 52 (weeks
# per year), 60 (minutes, seconds), 100 (percent, cents), 180 and 360 (degrees), 365 (days), 1000 (metric),
# 3600 (seconds per hour), 5280 (feet per mile) — and the fractions 1/2, 1/3, 1/4.
SMALL_CONSTANTS = frozenset([Fraction(n) for n in (*range(13), 16, 24, 52, 60, 100, 180, 360, 365, 1000, 3600, 5280)]
                            + [Fraction(1, 2), Fraction(1, 3), Fraction(1, 4)])
_NUMBER_WORDS = {"half": Fraction(1, 2), "twice": 2, "double": 2, "triple": 3, "dozen": 12, "quarter": Fraction(1, 4),
                 "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
                 "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
                 "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000, "million": 10**6}
_QUESTION_NUMBER_RE = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?|\.\d+|[A-Za-z]+")


@functools.lru_cache(maxsize=1 << 12)
def question_numbers(question: str) -> frozenset[Fraction]:
    """The numbers a question gives: its numerals (and each as a percentage, n/100) and number words (read once per
    question: every kept path of a problem asks)."""
    found: set[Fraction] = set()
    for token in _QUESTION_NUMBER_RE.findall(question):
        if token[0].isalpha():
            word = _NUMBER_WORDS.get(token.lower())
            if word is not None:
                found.add(Fraction(word))
            continue
        value = Fraction(token.replace(",", ""))
        found.update((value, value / 100))
    return frozenset(found)


def ungrounded(question: str, text: str, annotations_only: bool = False) -> list[str]:
    """Operands of the text's checked equations (every annotation; each equality the reader checked, unless
    `annotations_only`: the paper rule checks annotations only) that are neither a number of the question, nor a
    result stated earlier in the text (any side of an earlier equation), nor in SMALL_CONSTANTS: the numbers "from
    nowhere", in order (each counted once)."""
    available = set(question_numbers(question)) | SMALL_CONSTANTS
    spans = annotation_spans(text) if "<<" in text else []
    items: list[tuple[int, list[Fraction], list[Fraction]]] = []
    for start, _, body in spans:
        lhs, _, rhs = body.partition("=")
        operands = [Fraction(n) for n in re.findall(r"\d+(?:\.\d+)?", lhs.replace(",", ""))]
        result = strict_number(rhs)
        items.append((start, operands, [abs(result)] if result is not None else []))
    found = [] if annotations_only else relations.read(text, [(start, end) for start, end, _ in spans]).relations
    for relation in found:
        checked = {i for i, v in enumerate(relation.verdicts) if v in (relations.TRUE, relations.ROUNDED)}
        used = {j for i in checked for j in (i, i + 1)}
        operands = [abs(q) for j in sorted(used) if relation.sides[j].stated is None
                    for q in relation.sides[j].literals]
        results = [abs(q) for side in relation.sides if side.value is not None
                   and (q := relations.rational(side.value)) is not None]
        results += [abs(q) for side in relation.sides if side.stated is not None for q in side.literals]
        items.append((relation.start, operands, results))
    items.sort(key=lambda item: item[0])
    out = []
    for _, operands, results in items:
        for q in operands:
            if q not in available:
                out.append(format_number(q))
                available.add(q)
        available.update(results)
    return out
