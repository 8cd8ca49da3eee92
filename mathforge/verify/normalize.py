"""Answer normalization before comparison: delimiters, text, units, currency, separators, degrees, number words."""
from __future__ import annotations

import re
from fractions import Fraction

from mathforge.verify.answers import strict_number

NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
DIGIT_GROUP_RE = re.compile(r"(?<=[0-9]),\s*\\[!,]\s*(?=[0-9]{3})")
SPACING_RE = re.compile(r"(?<!\\)\\[,;:! ]|\\quad|\\qquad|~")
DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
PERCENT_RE = re.compile(r"\s*\\?%\s*$")
CURRENCY_RE = re.compile(r"^\s*(?:\\\$|\$|US\$|USD|€|£)\s*|\s*(?:USD|dollars?|cents?|euros?)\s*$", re.IGNORECASE)
LEFT_RIGHT_RE = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?=[()\[\]|.]|\\\{|\\\})")
# a number followed by a unit of one to three words: "18 dollars", "5 cm", "12 square feet"
NUMBER_UNIT_RE = re.compile(r"^(-?[0-9][0-9,]*(?:\.[0-9]+)?|-?\.[0-9]+)\s*(?:[A-Za-z][A-Za-z/]*\.?(?:\s+[A-Za-z/]+\.?){0,2})$")
EMPTY_SET_RE = re.compile(r"^(?:\\varnothing|\\emptyset|∅|\\\{\s*\\\})$")
ASSIGN_ITEM_RE = re.compile(r"^\s*([A-Za-z](?:_\{?\w+\}?)?)\s*=\s*([^=,;]+)\s*(?:,|$)")
JOIN_WORD_RE = re.compile(r"\s+(?:and|or)\s+|\\text\{\s*(?:and|or)\s*\}|(?<=[)\]}])\s*(?:and|or)\s*(?=[(\[{])")
PLUS_MINUS_RE = re.compile(r"^(.*?)\s*\\pm\s*(.+)$")
SPACED_THOUSANDS_RE = re.compile(r"^-?[0-9]{1,3}(?:(?:\s|\\,|\{,\}|\\ )[0-9]{3})+(?:\.[0-9]+)?$")
BRACED_COMMA_RE = re.compile(r"\{,\}")
SIMPLE_EQUATION_RE = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?!.*=)(.+)$", re.DOTALL)
CHOICE_RE = re.compile(r"^\(?([A-Ea-e])\)?$")
INT_FRACTION_RE = re.compile(r"^(-?)\\frac\s*\{\s*(-?[0-9]+)\s*\}\s*\{\s*(-?[0-9]+)\s*\}$|^(-?)\\frac\s*([0-9])\s*([0-9])$")
SLASH_FRACTION_RE = re.compile(r"^(-?[0-9]+)\s*/\s*([0-9]+)$")


def normalize(answer: str, units: bool = True, percent: bool = True) -> str:
    """A canonical spelling of an answer for comparison; conservative: it never changes a value.

    Removes math delimiters, `\\text{}` wrappers, spacing commands, `\\left`/`\\right`, degree marks,
    thousands separators (`1,000`, `1 000`, `1{,}000`), currency, a trailing full stop, and (configurable)
    a percent sign or unit words after a number; `\\dfrac`/`\\tfrac` become `\\frac`; a number word up to
    twenty becomes its digits; an answer letter `(C)` becomes `C`.
    """
    text = answer.strip()
    for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(opener) and text.endswith(closer) and len(text) >= len(opener) + len(closer):
            text = text[len(opener):len(text) - len(closer)].strip()
    text = TEXT_CMD_RE.sub(lambda m: m.group(1), text)
    text = DIGIT_GROUP_RE.sub(",", text)  # 11,\\! 111 -> 11,111
    text = text.replace("<=", "\\leq ").replace(">=", "\\geq ").replace("!=", "\\neq ")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\displaystyle", "")
    text = LEFT_RIGHT_RE.sub("", text)
    text = DEGREE_RE.sub("", text)
    text = SPACING_RE.sub(" ", text).strip()
    text = text.rstrip(".").strip() if not text.endswith("..") else text
    if percent:
        text = PERCENT_RE.sub("", text)
    text = CURRENCY_RE.sub("", text).strip()
    if SPACED_THOUSANDS_RE.match(text):
        text = re.sub(r"\s|\\,|\{,\}|\\ ", "", text)
    text = BRACED_COMMA_RE.sub(",", text) if re.fullmatch(r"-?[0-9]{1,3}(\{,\}[0-9]{3})+(\.[0-9]+)?", text) else text
    if units and (match := NUMBER_UNIT_RE.match(text)):
        text = match.group(1)
    if text.lower() in NUMBER_WORDS:
        text = NUMBER_WORDS[text.lower()]
    if (choice := CHOICE_RE.match(text)) is not None:
        text = choice.group(1).upper()
    if EMPTY_SET_RE.match(text):
        text = "\\emptyset"
    if re.fullmatch(r"[A-Za-z]+(?: [A-Za-z]+)?", text):  # a word answer: East = east
        text = text.lower()
    return " ".join(text.split())


def strip_equation(answer: str) -> str:
    """`x = 3` -> `3` (one variable on the left, one `=`); anything else unchanged."""
    match = SIMPLE_EQUATION_RE.match(answer)
    return match.group(1).strip() if match else answer


def strip_assignments(answer: str, as_tuple: bool = False) -> str:
    """`x = 3` -> `3`; `x = -5, p = 14/3` -> `-5, 14/3`, or the point `(-5, 14/3)` when `as_tuple` (the other
    answer is a tuple) and the variables are distinct; anything that is not all assignments is unchanged."""
    items = _split_top(answer, ",")
    matches = [ASSIGN_ITEM_RE.match(item) for item in items]
    if not items or not all(matches):
        return strip_equation(answer)
    values = ", ".join(m.group(2).strip() for m in matches)
    distinct = len({m.group(1) for m in matches}) == len(items) > 1
    return f"({values})" if as_tuple and distinct else values


def exact_number(text: str) -> Fraction | None:
    """An exact rational for a plain number, `a/b` or `\\frac{a}{b}` with integers; None for anything else."""
    value = strict_number(text)
    if value is not None:
        return value
    if (match := SLASH_FRACTION_RE.match(text)) is not None:
        num, den = int(match.group(1)), int(match.group(2))
        return Fraction(num, den) if den else None
    if (match := INT_FRACTION_RE.match(text)) is not None:
        sign, num, den = (match.group(1), match.group(2), match.group(3)) if match.group(2) is not None \
            else (match.group(4), match.group(5), match.group(6))
        if len(num) > 400 or len(den) > 400 or int(den) == 0:
            return None
        value = Fraction(int(num), int(den))
        return -value if sign else value
    return None


def answer_list(answer: str) -> list[str]:
    """The answers of a multiple answer (`1, 2`, `\\{1, 2\\}`, `x = 1 or x = 2`), split at top-level commas,
    `and` / `or`; a single tuple, interval, point or matrix stays one answer."""
    text = answer.strip()
    if (pm := PLUS_MINUS_RE.match(text)) is not None and "," not in text:  # `\\pm 2` is 2, -2; `1 \\pm \\sqrt{2}`
        head, tail = pm.group(1).strip(), pm.group(2).strip()
        return [f"{head}+{tail}", f"{head}-{tail}"] if head else [tail, f"-{tail}"]
    if text.startswith("\\{") and text.endswith("\\}"):
        text = text[2:-2]
    elif text.startswith("{") and text.endswith("}") and _balanced(text[1:-1]) and "," in text:
        text = text[1:-1]  # `{1, 2, 3}` written with bare braces
    elif enclosed(text):
        return [answer]
    if ";" in text:
        groups = _split_top(text, ";")
        if len(groups) > 1:  # solutions of a system: `p=5,q=2; p=7,q=2` is (5, 2), (7, 2)
            return [as_point(group) for group in groups]
        text = text.replace(";", ",")  # `(0;-2;6)`: a tuple written with semicolons
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch in ",;" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    words = [piece for part in parts for piece in JOIN_WORD_RE.split(part)]
    unique: dict[str, str] = {}
    for word in (w.strip() for w in words):
        if word:
            unique.setdefault(re.sub(r"\s+", "", word), word)  # a set: the same answer twice counts once
    return list(unique.values()) or [answer]


def _split_top(text: str, separators: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "([{") - (ch in ")]}")
        if ch in separators and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [p.strip() for p in parts + [text[start:]] if p.strip()]


def as_point(group: str) -> str:
    """`p=5, q=2` (distinct variables) -> `(5, 2)`: the values of a solution of a system, in order; anything
    else (`x = -2, x = 3` is two roots) unchanged."""
    items = _split_top(group, ",")
    matches = [ASSIGN_ITEM_RE.match(item) for item in items]
    if len(items) > 1 and all(matches) and len({m.group(1) for m in matches}) == len(items):
        return "(" + ", ".join(m.group(2).strip() for m in matches) + ")"
    return group


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return False
    return depth == 0


def enclosed(text: str) -> bool:
    """One bracketed group from first to last character: `(1, 2)`, `[0, 1)`, `(1,2]`."""
    if len(text) < 2 or text[0] not in "([" or text[-1] not in ")]":
        return False
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch in "([{") - (ch in ")]}")
        if depth == 0 and i < len(text) - 1:
            return False
    return True
