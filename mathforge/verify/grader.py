"""Verdicts for (gold, prediction) pairs: strict numeric fast path, math-verify for LaTeX, working timeouts, batches."""
from __future__ import annotations

import atexit
import concurrent.futures as cf
import functools
import multiprocessing as mp
import os
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from importlib import metadata
from typing import Iterable, Literal

import mathforge.lifeline as lifeline
from mathforge.verify.answers import GSM8K_ANSWER_RE, MAX_NUMBER_CHARS, gsm8k_extract, strict_number
from mathforge.verify.extract import MAX_ANSWER_CHARS, PROSE_RE, final_answer, split_reasoning
from mathforge.verify.extract import gold_answer as literal_answer
from mathforge.verify.exact_forms import decide as fast_decide
from mathforge.verify.normalize import answer_list, enclosed, exact_number, normalize, strip_assignments

Mode = Literal["gsm8k", "math", "auto"]
CORRECT, WRONG, UNPARSEABLE = "correct", "wrong", "unparseable"
TIMEOUT_SECONDS = 5           # math-verify's share of one comparison
ROW_BUDGET_SECONDS = 15.0     # the whole pipeline of one row (extraction, normalization, every comparison)
HELPERS = max(2, os.cpu_count() or 1)  # helper processes grading for threads other than the main thread
HELPER_START_SECONDS = 120    # a helper's one-time start (its imports): not charged to the row that waits on it
HELPER_GRACE_SECONDS = 1.0    # past its own alarm, a helper's answer is awaited this long, then it is killed
MAX_PARTS = 64                # answers in one multiple answer: more is not an answer to compare
TIMEOUT, GOLD = "timeout", "gold"  # the reasons of an overrun and of a gold answer that cannot be read
MALFORMED = "malformed answer (unbalanced braces or environment)"
BOX_INSIDE = "a box inside the answer"  # `-\\boxed 2`: no reader may take the box's content for the whole
BOX_CMD_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_ENVIRONMENT_RE = re.compile(r"\\(begin|end)\s*\{([^{}]*)\}")
MEMO_SIZE = 1 << 18           # remembered verdicts per process (each memo is emptied when it reaches this)
UNSETTLED = (TIMEOUT, "grader process died")  # reasons that depend on the moment, never remembered
# Verdicts by the path that decided them (whole comparisons, this process): `exact` (same spelling, exact numbers,
# counts of answers, sizes, prose), `fast` (exact_forms.py), `memo` (a comparison made before),
# `math-verify` (at least one Math-Verify call); `math-verify memo` counts Math-Verify calls answered from its cache.
PATHS: Counter = Counter()
_memo: dict[tuple[str, str], tuple[str, str]] = {}        # (gold, pred) as given -> verdict
_memo_normal: dict[tuple[str, str], tuple[str, str]] = {}  # (gold, pred) normalized -> verdict
_memo_latex: dict[tuple[str, str, int], tuple[str, str]] = {}  # Math-Verify's verdicts
_leaf = Counter()  # fast / math-verify decisions inside the comparison under way
_fast_on = [True]  # off only inside `reference_compare`


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


VERIFIER = f"mathforge-grader/{_version('mathforge')}+math-verify/{_version('math-verify')}"


@dataclass(frozen=True)
class Verdict:
    """One grading outcome: the verdict, the extracted prediction and why (every verdict names its reason)."""

    verdict: str
    pred: str | None = None
    reason: str | None = None


def extract(text: str, mode: Mode, last_number_fallback: bool = False) -> str | None:
    """The final answer of a solution or bare answer, as the grader sees it (see `extract.final_answer`)."""
    answer, _ = final_answer(text, mode)
    if answer is None and last_number_fallback:
        _, final = split_reasoning(text)
        answer = gsm8k_extract(final, True) if final is not None else None
    return answer


class Deadline:
    """A row's wall-time budget: `left()` seconds remain; a helper's one-time start is not charged (`pause`)."""

    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def pause(self, seconds: float) -> None:
        self.at += seconds


def grade(gold: str, pred: str, mode: Mode = "auto", last_number_fallback: bool = False,
          timeout: float = TIMEOUT_SECONDS, budget: float = ROW_BUDGET_SECONDS) -> Verdict:
    """Grade one prediction (an answer or a whole solution) against a gold answer or gold solution, within
    `budget` seconds of wall time for the whole row (past it: `unparseable`, reason `timeout`)."""
    if mode == "gsm8k" and not last_number_fallback:
        return _grade_gsm8k(gold, pred)
    deadline = Deadline(budget)
    gold_answer = _gold_answer(gold, mode)
    if gold_answer is None or not well_formed(gold_answer):
        return Verdict(UNPARSEABLE, None, GOLD)  # no answer in the gold, or a malformed one (`\\boxed{1`)
    pred_answer, how = final_answer(pred, mode)
    if pred_answer is None and last_number_fallback:
        pred_answer = extract(pred, mode, True)
    if pred_answer is None:
        return Verdict(UNPARSEABLE, None, "reasoning not finished" if how.startswith("reasoning")
                       else "no final answer found")
    if not well_formed(pred_answer):  # a cut-off answer (`\\boxed{`, `\\begin{pmatrix} 1`): malformed, as a gold
        return Verdict(UNPARSEABLE, pred_answer, MALFORMED)
    if deadline.left() <= 0:
        return Verdict(UNPARSEABLE, pred_answer, TIMEOUT)
    if mode == "gsm8k":
        gold_num, pred_num = strict_number(gold_answer), strict_number(pred_answer)
        if gold_num is None or pred_num is None:
            return Verdict(UNPARSEABLE, pred_answer, "not a number")
        return Verdict(*_numbers_verdict(gold_num, pred_num, pred_answer))
    verdict, reason = compare(gold_answer, pred_answer, timeout, deadline=deadline)
    return Verdict(verdict, pred_answer, reason)


@functools.lru_cache(maxsize=1 << 14)
def _gold_answer(gold: str, mode: Mode) -> str | None:
    """The gold answer of a gold solution, read once per distinct gold (every sample of a problem shares it)."""
    return literal_answer(gold, mode)


def _remember(memo: dict, key, verdict: tuple[str, str]) -> None:
    if verdict[1] not in UNSETTLED:
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[key] = verdict


def well_formed(answer: str) -> bool:
    """Balanced braces, and every `\\begin{env}` closed by its `\\end{env}` in order: `\\boxed{1` and
    `\\begin{align*}` (an answer cut off) are not."""
    if not balanced_braces(answer):
        return False
    if "\\begin" not in answer and "\\end" not in answer:
        return True
    opened: list[str] = []
    for m in _ENVIRONMENT_RE.finditer(answer):
        if m.group(1) == "begin":
            opened.append(m.group(2).strip())
        elif not opened or opened.pop() != m.group(2).strip():
            return False
    return not opened


def balanced_braces(text: str) -> bool:
    """Every unescaped `{` closed in order (`\\{` and `\\}` are set braces, not groups): `\\boxed{1` is not."""
    depth, i, size = 0, 0, len(text)
    while i < size:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


def _numbers_verdict(gold, pred, pred_answer: str) -> tuple[str, str, str]:
    return (CORRECT, pred_answer, "equal numbers") if gold == pred else (WRONG, pred_answer, "different numbers")


@functools.lru_cache(maxsize=1 << 16)
def _gsm8k_number(answer: str):
    """strict_number, cached: GSM8K answers repeat (every sample of a question shares its gold)."""
    short = len(answer) <= MAX_NUMBER_CHARS and answer.isascii()  # a 50,000-digit `#### n` is not a number
    return int(answer) if short and answer.isdigit() else strict_number(answer)


@functools.lru_cache(maxsize=1 << 16)
def _gsm8k_gold(gold: str) -> str | None:
    return literal_answer(gold, "gsm8k")


def _grade_gsm8k(gold: str, pred: str) -> Verdict:
    """The exact GSM8K rule on its fast path: `#### n` (or a bare number) compared as exact numbers."""
    gold_answer = _gsm8k_gold(gold)
    if gold_answer is None:
        return Verdict(UNPARSEABLE, None, GOLD)
    match = GSM8K_ANSWER_RE.search(pred if "\x00" not in pred else pred.split("\x00", 1)[0])
    if match is None:
        if "####" in pred or strict_number(pred) is None:
            return Verdict(UNPARSEABLE, None, "no final answer found")
        pred_answer = pred.strip()
    else:
        pred_answer = match.group(1).replace(",", "")
    gold_num, pred_num = _gsm8k_number(gold_answer), _gsm8k_number(pred_answer)
    if gold_num is None or pred_num is None:
        return Verdict(UNPARSEABLE, pred_answer, "not a number")
    return Verdict(*_numbers_verdict(gold_num, pred_num, pred_answer))


KINDS = {"gsm8k": "gsm8k", "latex": "math", "auto": "auto"}  # a source's answer kind -> the grading mode


def reference_answer(solution: str | None, kind: str = "auto") -> str | None:
    """The gold answer in a gold solution or bare answer (kind: gsm8k `#### n`, latex, or auto)."""
    return literal_answer(solution, KINDS[kind]) if solution else None


def answer_of(text: str, kind: str = "auto") -> str | None:
    """The final answer of a model's solution, as the grader reads it (None: it gives none)."""
    return extract(text, KINDS[kind])


def is_correct(text: str, gold: str | None, kind: str = "auto") -> bool:
    """A model solution's final answer is equivalent to the gold answer (always False without a gold answer)."""
    return gold is not None and grade(gold, text, KINDS[kind]).verdict == CORRECT


def same_answer(a: str, b: str, kind: str = "auto") -> bool:
    """Two extracted answers are equivalent (one class of a majority vote)."""
    if kind == "gsm8k":
        x, y = strict_number(a), strict_number(b)
        return x is not None and x == y
    return compare(a, b)[0] == CORRECT


def answer_classes(answers: list[str | None], kind: str = "auto") -> list[list[int]]:
    """Indices of the answers grouped by equivalence (not by spelling: `\\frac12` and `0.5` vote together),
    largest class first, ties by first appearance; None, empty and (gsm8k) non-numeric answers are in no class."""
    classes: list[list[int]] = []
    spelled: dict[str, int] = {}
    for i, answer in enumerate(answers):
        if answer is None or not answer.strip() or (kind == "gsm8k" and strict_number(answer) is None):
            continue
        if answer in spelled:
            classes[spelled[answer]].append(i)
            continue
        home = next((c for c, members in enumerate(classes) if same_answer(answers[members[0]], answer, kind)), None)
        if home is None:
            home = len(classes)
            classes.append([])
        classes[home].append(i)
        spelled[answer] = home
    return sorted(classes, key=lambda members: (-len(members), members[0]))


def compare(gold: str, pred: str, timeout: float = TIMEOUT_SECONDS, depth: int = 0,
            deadline: Deadline | None = None) -> tuple[str, str]:
    """(verdict, reason) for two extracted answers: normalized spelling, exact rationals, multiple answers in any
    order, then math-verify with an exactness guard. Never true by rounding: rationals compare exactly, exact
    irrationals at 120 digits, and a decimal only stands for an exact value when printed in full (15+ digits).
    Within `deadline` (default: ROW_BUDGET_SECONDS from now); past it, `unparseable` with reason `timeout`."""
    deadline = deadline if deadline is not None else Deadline(ROW_BUDGET_SECONDS)
    if depth:
        return _compare(normalize(gold), normalize(pred), timeout, depth, deadline)
    known = _memo.get((gold, pred))
    if known is None:
        g, p = normalize(gold), normalize(pred)
        known = _memo_normal.get((g, p))
        if known is None:
            fast, slow = _leaf["fast"], _leaf["math-verify"]
            known = _compare(g, p, timeout, depth, deadline)
            _remember(_memo_normal, (g, p), known)
            PATHS["math-verify" if _leaf["math-verify"] > slow else "fast" if _leaf["fast"] > fast else "exact"] += 1
            _remember(_memo, (gold, pred), known)
            return known
        _remember(_memo, (gold, pred), known)
    PATHS["memo"] += 1
    return known


def reference_compare(gold: str, pred: str, timeout: float = TIMEOUT_SECONDS) -> tuple[str, str]:
    """The slow path, for checks (one thread at a time): compare() without the fast forms and without any memo, so
    every pair that the normalization and exact-number rules leave open goes to Math-Verify."""
    _fast_on[0] = False
    try:
        return _compare(normalize(gold), normalize(pred), timeout, 0, Deadline(ROW_BUDGET_SECONDS))
    finally:
        _fast_on[0] = True


def _compare(g: str, p: str, timeout: float, depth: int, deadline: Deadline) -> tuple[str, str]:
    """compare() on normalized answers."""
    if g == p:
        return CORRECT, "same answer"
    if ("=" in g) != ("=" in p):  # `x = 3` against `3`; `x=2, y=-1` against `2, -1` or the point `(2, -1)`
        g, p = strip_assignments(g, enclosed(p)), strip_assignments(p, enclosed(g))
    exact_g, exact_p = exact_number(g), exact_number(p)
    if exact_g is not None and exact_p is not None:
        if exact_g == exact_p or _long_decimal_of(g, p, exact_g, exact_p):
            return CORRECT, "equal numbers"
        return WRONG, "different numbers"
    parts_g, parts_p = answer_list(g), answer_list(p)
    if (len(parts_g) > 1 or len(parts_p) > 1) and depth == 0:
        if len(parts_g) > MAX_PARTS or len(parts_p) > MAX_PARTS:
            return UNPARSEABLE, "too many answers"
        if len(parts_g) != len(parts_p):
            return WRONG, f"{len(parts_p)} answer(s) for {len(parts_g)}"
        return _match_all(parts_g, parts_p, timeout, deadline)
    if (why := too_large(g) or too_large(p)) is not None:
        return UNPARSEABLE, why
    if PROSE_RE.search(p) and not PROSE_RE.search(g):
        return WRONG, "a sentence, not an answer"  # never handed to the LaTeX parser
    if not _fast_on[0]:
        return _latex_verdict(g, p, timeout, decimal_digits(p), deadline)
    if (fast := fast_decide(g, p)) is not None:
        _leaf["fast"] += 1
        return fast
    digits = decimal_digits(p)
    known = _memo_latex.get((g, p, digits))
    if known is not None:
        PATHS["math-verify memo"] += 1
        return known
    _leaf["math-verify"] += 1
    verdict = _latex_verdict(g, p, timeout, digits, deadline)
    _remember(_memo_latex, (g, p, digits), verdict)
    return verdict


def _long_decimal_of(g: str, p: str, exact_g, exact_p) -> bool:
    """One side is a decimal printed in full (15+ significant digits, as a float64 prints it) within a relative
    1e-14 of the other side written as a fraction: 0.0833333333333333 is 1/12. A shorter decimal is a rounding,
    and two decimals (0.3, 0.30000000000000004) are compared exactly."""
    for text, value, other_text, other in ((g, exact_g, p, exact_p), (p, exact_p, g, exact_g)):
        if ("frac" in other_text or "/" in other_text) and decimal_digits(text) >= 15 and other != 0 \
                and abs(value - other) <= abs(other) * Fraction(1, 10**14):
            return True
    return False


def _match_all(golds: list[str], preds: list[str], timeout: float, deadline: Deadline) -> tuple[str, str]:
    """Every predicted answer matches a different gold answer (sets and multiple answers: any order)."""
    left = list(golds)
    for pred in preds:
        hit = None
        for i, gold in enumerate(left):
            verdict, reason = compare(gold, pred, timeout, depth=1, deadline=deadline)
            if reason == TIMEOUT:
                return UNPARSEABLE, TIMEOUT
            if verdict == CORRECT:
                hit = i
                break
        if hit is None:
            return WRONG, f"no gold answer matches {pred!r}"
        left.pop(hit)
    return CORRECT, "every answer matches"


DECIMAL_RE = re.compile(r"(?<![0-9])[0-9]+\.[0-9]+|\.[0-9]+")  # `[0-9]*\.[0-9]+`, entered once per digit run
MAX_DIGITS = 400          # a literal integer longer than this is not compared
MAX_EXPONENT = 10_000     # a literal exponent or factorial argument above this is not computed
MAX_NESTING = 40          # bracket depth
MAX_OPERATORS = 120       # + - * / ^ and LaTeX products: longer expressions are not an answer to compare
OPERATOR_RE = re.compile(r"[-+*/^]|\\cdot|\\times")
NESTED_POWER_RE = re.compile(r"\^\s*+\{[^{}]*(?:\^|!)")
# every pattern here is linear: a digit run is entered only at its first digit, and no two quantifiers overlap
EXPONENT_RE = re.compile(r"(?:\^\s*+(?:\{\s*+)?|\*\*\s*+)([0-9]+)|(?<![0-9])([0-9]+)\s*+!")
LONG_NUMBER_RE = re.compile(rf"(?<![0-9])[0-9]{{{MAX_DIGITS + 1}}}")


def too_large(answer: str) -> str | None:
    """Why an answer is not handed to the symbolic layer (None: it may be): size caps, so no parse can run away."""
    if len(answer) > MAX_ANSWER_CHARS:
        return "answer too long"
    if LONG_NUMBER_RE.search(answer):
        return "number too long"
    depth = peak = 0
    for ch in answer:
        depth += (ch in "{([") - (ch in "})]")
        peak = max(peak, depth)
    if peak > MAX_NESTING:
        return "nesting too deep"
    if len(OPERATOR_RE.findall(answer)) > MAX_OPERATORS:
        return "too many terms"
    if NESTED_POWER_RE.search(answer):
        return "nested exponent"
    for match in EXPONENT_RE.finditer(answer):
        if int(match.group(1) or match.group(2)) > MAX_EXPONENT:
            return "exponent too large"
    return None


def decimal_digits(text: str) -> int:
    """Significant digits of the longest decimal written in an answer (0: none): how precise an approximation is."""
    return max((len(m.replace(".", "").lstrip("0")) for m in DECIMAL_RE.findall(text)), default=0)


def _latex_verdict(gold_answer: str, pred_answer: str, timeout: float, digits: int = 0,
                   deadline: Deadline | None = None) -> tuple[str, str]:
    """math-verify on LaTeX only (its plain-expression path runs sympy's parse_expr, i.e. eval), for at most
    `timeout` seconds and never past the row's deadline."""
    if BOX_CMD_RE.search(gold_answer) or BOX_CMD_RE.search(pred_answer):
        return UNPARSEABLE, BOX_INSIDE  # math-verify reads a box's content only: `-\\boxed 2` would be 2
    deadline = deadline if deadline is not None else Deadline(timeout)
    seconds = min(timeout, deadline.left())
    if seconds <= 0:
        return UNPARSEABLE, TIMEOUT
    if threading.current_thread() is threading.main_thread():
        return _math_verify(gold_answer, pred_answer, seconds, digits)
    return _in_helper_process(gold_answer, pred_answer, seconds, digits, deadline)


class _Overrun(BaseException):
    """Raised by the alarm: a BaseException, so math-verify's `except Exception` cannot turn it into `wrong`."""


def _with_alarm(seconds: float, work):
    """`work()` on this (main) thread, interrupted after `seconds`; re-rung every 50 ms should code swallow it."""
    armed = [True]

    def ring(signum, frame):
        if armed[0]:
            raise _Overrun()

    previous = signal.signal(signal.SIGALRM, ring)
    started, (old_delay, old_interval) = time.monotonic(), (0.0, 0.0)
    try:
        old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001), 0.05)
        return work()
    finally:
        while True:  # disarm for certain: a ring landing here is caught and the disarming repeated
            try:
                armed[0] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                break
            except _Overrun:
                continue
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        if old_delay:  # a caller's own alarm runs on, less the time spent here
            signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.monotonic() - started), 0.001), old_interval)


def _quiet_math_verify():
    """math-verify's own timeouts are off (one SIGALRM at a time: ours); so is its warning that they are off."""
    import math_verify.grader
    import math_verify.parser

    math_verify.grader.TIMEOUT_WARNING_SHOWN = math_verify.parser.TIMEOUT_WARNING_SHOWN = True


def _math_verify(gold_answer: str, pred_answer: str, timeout: float | None, digits: int = 0) -> tuple[str, str]:
    """Run math-verify here (the main thread: the alarm works) on `$...$`-wrapped answers, all of it (parses,
    comparison, exactness check) within `timeout` seconds; a `True` on two numbers is then checked exactly
    (rationals) or to a relative 1e-12, never by rounding. An overrun is `unparseable: timeout`."""
    from math_verify import LatexExtractionConfig, parse, verify

    _quiet_math_verify()
    config = [LatexExtractionConfig()]

    def work() -> tuple[str, str]:
        try:
            gold_parsed = parse(f"${gold_answer}$", extraction_config=config, parsing_timeout=None)
            pred_parsed = parse(f"${pred_answer}$", extraction_config=config, parsing_timeout=None)
        except Exception as exc:  # math-verify raises ValueError and others on hostile input
            return UNPARSEABLE, f"latex parse failed: {type(exc).__name__}"
        if not gold_parsed:
            return UNPARSEABLE, GOLD
        if not pred_parsed:
            return UNPARSEABLE, "prediction unparseable"
        try:
            ok = verify(gold_parsed, pred_parsed, timeout_seconds=None)
            if ok and not _numbers_agree(gold_parsed[0], pred_parsed[0], digits):
                return WRONG, "differs beyond rounding"
        except Exception as exc:
            return UNPARSEABLE, f"comparison failed: {type(exc).__name__}"
        return (CORRECT, "equivalent (math-verify)") if ok else (WRONG, "not equivalent (math-verify)")

    if not timeout:
        return work()
    try:
        return _with_alarm(timeout, work)
    except _Overrun:
        return UNPARSEABLE, TIMEOUT


def _numbers_agree(gold, pred, digits: int = 0) -> bool:
    """For two plain numbers: exact equality of rationals, else a relative 1e-12 at 50 digits. Anything that is
    not a pair of numbers (sets, intervals, expressions with symbols) is left to math-verify's verdict."""
    import sympy

    if not (isinstance(gold, sympy.Expr) and isinstance(pred, sympy.Expr) and gold.is_number and pred.is_number):
        return True
    if gold.is_Rational and pred.is_Rational:
        return bool(gold == pred)
    # exact expressions (no decimal written) are compared at 120 digits, so sqrt(10^40+1) is not 10^20;
    # a written decimal is an approximation, held to a relative 1e-12 (never an absolute rounding): 12 or more
    # right significant digits are the value (0.0833333333333333 for 1/12), fewer are a rounding of it
    if pred.has(sympy.Float) and not gold.has(sympy.Float):
        # the decimals as written are exact values (10.5 is 21/2, 0.0000000001 is 10^-10): equal as such, or the
        # decimal is printed in full (15+ significant digits, as a float64 prints it) within a relative 1e-14;
        # any shorter decimal is a rounding of the answer, and wrong
        written = pred.xreplace({f: sympy.Rational(str(f)) for f in pred.atoms(sympy.Float)})
        return _close(gold, written, 120, "1e-100") or (digits >= 15 and _close(gold, pred, 50, "1e-14"))
    approximate = gold.has(sympy.Float) or pred.has(sympy.Float)
    return _close(gold, pred, 50, "1e-12") if approximate else _close(gold, pred, 120, "1e-100")


def _close(a, b, digits: int, tolerance: str) -> bool:
    """|a - b| <= tolerance * max(|a|, |b|) at `digits` digits: relative, so tiny numbers are never equal."""
    import sympy

    x, y = a.evalf(digits), b.evalf(digits)
    scale = max(abs(x), abs(y))
    return bool(scale == 0 or abs(x - y) <= sympy.Float(tolerance, digits) * scale)


# Threads other than the main thread cannot take a SIGALRM: they grade in helper processes, one pair per helper
# at a time, up to HELPERS at once (no lock held while waiting); a helper that overruns is killed and replaced.
_pool = threading.Condition()
_idle: list[cf.ProcessPoolExecutor] = []
_live = [0]


def _start_helper() -> None:
    """A helper's one-time start: the imports, so no row pays for them."""
    _quiet_math_verify()
    import math_verify  # noqa: F401
    import sympy  # noqa: F401


def _take_helper(deadline: Deadline) -> cf.ProcessPoolExecutor | None:
    with _pool:
        while not _idle and _live[0] >= HELPERS:
            if deadline.left() <= 0:
                return None
            _pool.wait(deadline.left())
        if _idle:
            return _idle.pop()
        _live[0] += 1
    started = time.monotonic()
    try:
        # a helper outlives the thread that started it: it watches this process rather than its starting thread
        helper = cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"),
                                        initializer=lifeline.die_with, initargs=(os.getpid(),))
        with lifeline.bound_children():  # the helper process starts here (without re-running a script's __main__)
            first = helper.submit(_start_helper)
        first.result(timeout=HELPER_START_SECONDS)
    except BaseException:
        _drop_helper(locals().get("helper"))
        raise
    finally:
        deadline.pause(time.monotonic() - started)
    return helper


def _give_helper(helper: cf.ProcessPoolExecutor) -> None:
    with _pool:
        _idle.append(helper)
        _pool.notify()


def _drop_helper(helper: cf.ProcessPoolExecutor | None) -> None:
    if helper is not None:
        for proc in list((helper._processes or {}).values()):
            proc.kill()
        helper.shutdown(wait=False, cancel_futures=True)
    with _pool:
        _live[0] -= 1
        _pool.notify()


def _in_helper_process(gold_answer: str, pred_answer: str, timeout: float, digits: int = 0,
                       deadline: Deadline | None = None) -> tuple[str, str]:
    """Off the main thread: grade in a helper process of the pool; kill it if it overruns."""
    deadline = deadline if deadline is not None else Deadline(timeout)
    try:
        helper = _take_helper(deadline)
    except Exception:
        return UNPARSEABLE, "grader process died"
    if helper is None:
        return UNPARSEABLE, TIMEOUT
    seconds = min(timeout, deadline.left())
    if seconds <= 0:
        _give_helper(helper)
        return UNPARSEABLE, TIMEOUT
    try:
        future = helper.submit(_math_verify, gold_answer, pred_answer, seconds, digits)
        result = future.result(timeout=seconds + HELPER_GRACE_SECONDS)
    except (cf.TimeoutError, cf.process.BrokenProcessPool, RuntimeError) as exc:
        _drop_helper(helper)
        return UNPARSEABLE, TIMEOUT if isinstance(exc, cf.TimeoutError) else "grader process died"
    except BaseException:
        _drop_helper(helper)
        raise
    _give_helper(helper)
    return result


def _forget_helpers() -> None:
    """In a forked child the parent's helpers are not ours: start afresh."""
    global _pool
    _pool = threading.Condition()
    _idle.clear()
    _live[0] = 0


os.register_at_fork(after_in_child=_forget_helpers)


@atexit.register
def _shutdown_helper() -> None:
    with _pool:
        helpers = list(_idle)
        _idle.clear()
    for helper in helpers:
        helper.shutdown(wait=True, cancel_futures=True)


def _grade_chunk(args: tuple[list[tuple[str, str]], Mode, bool, float]) -> list[Verdict]:
    pairs, mode, fallback, timeout = args
    return [grade(g, p, mode, fallback, timeout) for g, p in pairs]


def grade_batch(pairs: Iterable[tuple[str, str]], mode: Mode = "auto", last_number_fallback: bool = False,
                workers: int | None = None, timeout: float = TIMEOUT_SECONDS, chunk: int = 512) -> list[Verdict]:
    """Grade many pairs, in order, on all cores (each worker's main thread keeps math-verify's timeouts)."""
    pairs = list(pairs)
    workers = workers or os.cpu_count() or 1
    if mode == "gsm8k" and not last_number_fallback:
        workers = 1  # a few microseconds a pair: sending pairs to other processes costs more than grading them
    if workers == 1 or len(pairs) <= chunk:
        return _grade_chunk((pairs, mode, last_number_fallback, timeout))
    chunks = [(pairs[i : i + chunk], mode, last_number_fallback, timeout) for i in range(0, len(pairs), chunk)]
    with lifeline.bound_children(), \
            cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
        return [v for part in pool.map(_grade_chunk, chunks) for v in part]
