"""Final-answer extraction from solutions: GSM8K `#### n`, `\\boxed{}`, and strict numbers."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

# The RFT reference (gsm8k-ScRel) pattern: first `#### ` followed by digits, dots, commas.
PAPER_ANSWER_RE = re.compile(r"#### (\-?[0-9\.\,]+)")
# mathforge's GSM8K pattern: tolerant of `$`, spaces, units after the number.
# Linear on any text: `\s*+(?:\$\s*+)?` is `\s*\$?\s*` without its quadratic backtracking over a run of spaces
GSM8K_ANSWER_RE = re.compile(r"####\s*+(?:\$\s*+)?(-?[0-9][0-9,]*(?:\.[0-9]+)?|-?\.[0-9]+)")
NUMBER_RE = re.compile(r"-?(?:[0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+)")
STRICT_NUMBER_RE = re.compile(
    r"^\s*+(?:\$\s*+)?(-?)\s*+(?:([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(\.[0-9]+)?|(\.[0-9]+))\s*+(%|\\%)?\s*+$"
)
MAX_NUMBER_CHARS = 400  # longer "numbers" are treated as unparseable, never converted


def paper_extract(completion: str) -> str | None:
    """The reference extractor: text after a NUL is cut, first `#### x`, commas removed; None if not a float."""
    nul = completion.find("\x00")
    if nul >= 0:
        completion = completion[:nul]
    match = PAPER_ANSWER_RE.search(completion)
    if not match:
        return None
    text = match.group(1).strip().replace(",", "")
    try:
        float(text)
    except ValueError:
        return None
    return text


def gsm8k_extract(solution: str, last_number_fallback: bool = False) -> str | None:
    """mathforge's GSM8K extractor: `#### [$]n` (commas removed), optionally the last number in the text."""
    nul = solution.find("\x00")
    if nul >= 0:
        solution = solution[:nul]
    match = GSM8K_ANSWER_RE.search(solution)
    if match:
        return match.group(1).replace(",", "")
    if last_number_fallback:
        numbers = NUMBER_RE.findall(solution)
        if numbers:
            return numbers[-1].replace(",", "").rstrip(".") or None
    return None


def boxed_extract(solution: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`), braces balanced; None if absent or unclosed."""
    start = max(solution.rfind("\\boxed"), solution.rfind("\\fbox"))
    if start < 0:
        return None
    brace = solution.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for i in range(brace, len(solution)):
        ch = solution[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return solution[brace + 1 : i].strip()
    return None


def strict_number(text: str) -> Fraction | None:
    """Parse a plain decimal number (`1,234.5`, `$12`, `-3`, `50%` as 50) exactly; None for anything else."""
    if len(text) > MAX_NUMBER_CHARS or not text.isascii():
        return None
    match = STRICT_NUMBER_RE.match(text)
    if not match:
        return None
    sign, whole, frac, bare_frac, _pct = match.groups()
    digits = (whole.replace(",", "") + (frac or "")) if whole else bare_frac
    try:
        value = Fraction(Decimal(digits))
    except (InvalidOperation, ValueError):
        return None
    return -value if sign else value

