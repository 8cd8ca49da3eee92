"""Verdicts for (gold, prediction) pairs: strict numeric fast path, math-verify for LaTeX, working timeouts, batches."""
from __future__ import annotations

import atexit
import concurrent.futures as cf
import multiprocessing as mp
import os
import re
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Iterable, Literal

from mathforge.verify.answers import boxed_extract, gsm8k_extract, strict_number

Mode = Literal["gsm8k", "math", "auto"]
CORRECT, WRONG, UNPARSEABLE = "correct", "wrong", "unparseable"
TIMEOUT_SECONDS = 5
MAX_BARE_ANSWER_CHARS = 200  # a longer text without \\boxed{} or #### is a solution, not an answer
PROSE_RE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}\s+[A-Za-z]{2,}")  # three words in a row: prose


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


VERIFIER = f"mathforge-grader/{_version('mathforge')}+math-verify/{_version('math-verify')}"


@dataclass(frozen=True)
class Verdict:
    """One grading outcome: the verdict, the extracted prediction and, when not correct, why."""

    verdict: str
    pred: str | None = None
    reason: str | None = None


def extract(text: str, mode: Mode, last_number_fallback: bool = False) -> str | None:
    """The final answer of a solution or bare answer, as the grader sees it."""
    if "\\boxed" in text or "\\fbox" in text:
        boxed = boxed_extract(text)
        if boxed is not None or mode == "math":
            return boxed
    if "####" in text or mode == "gsm8k":
        if "####" not in text and strict_number(text) is not None:
            return text.strip()
        return gsm8k_extract(text, last_number_fallback)
    stripped = text.strip()
    if strict_number(stripped) is not None:
        return stripped
    if len(stripped) <= MAX_BARE_ANSWER_CHARS and not PROSE_RE.search(stripped):
        return stripped or None  # a bare LaTeX answer such as \frac{1}{2}
    return gsm8k_extract(text, True) if last_number_fallback else None


def grade(gold: str, pred: str, mode: Mode = "auto", last_number_fallback: bool = False,
          timeout: float = TIMEOUT_SECONDS) -> Verdict:
    """Grade one prediction (an answer or a whole solution) against a gold answer or gold solution."""
    gold_answer = extract(gold, mode)
    if gold_answer is None:
        return Verdict(UNPARSEABLE, None, "gold answer unparseable")
    pred_answer = extract(pred, mode, last_number_fallback)
    if pred_answer is None:
        return Verdict(UNPARSEABLE, None, "no final answer found")
    gold_num, pred_num = strict_number(gold_answer), strict_number(pred_answer)
    if gold_num is not None and pred_num is not None:
        return Verdict(CORRECT if gold_num == pred_num else WRONG, pred_answer)
    if mode == "gsm8k":
        return Verdict(UNPARSEABLE, pred_answer, "not a number")
    return _latex_verdict(gold_answer, pred_answer, timeout)


def _latex_verdict(gold_answer: str, pred_answer: str, timeout: float) -> Verdict:
    """math-verify on LaTeX only (its plain-expression path runs sympy's parse_expr, i.e. eval)."""
    if threading.current_thread() is threading.main_thread():
        return _math_verify(gold_answer, pred_answer, timeout)
    return _in_helper_process(gold_answer, pred_answer, timeout)


def _math_verify(gold_answer: str, pred_answer: str, timeout: float | None) -> Verdict:
    """Run math-verify here (main thread: its SIGALRM timeouts work) on `$...$`-wrapped answers."""
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig()]
    seconds = max(1, int(round(timeout))) if timeout else None
    try:
        gold_parsed = parse(f"${gold_answer}$", extraction_config=config, parsing_timeout=seconds)
        pred_parsed = parse(f"${pred_answer}$", extraction_config=config, parsing_timeout=seconds)
    except Exception as exc:  # math-verify raises TimeoutError/ValueError on hostile input
        return Verdict(UNPARSEABLE, pred_answer, f"latex parse failed: {type(exc).__name__}")
    if not gold_parsed:
        return Verdict(UNPARSEABLE, pred_answer, "gold answer unparseable")
    if not pred_parsed:
        return Verdict(UNPARSEABLE, pred_answer, "prediction unparseable")
    try:
        ok = verify(gold_parsed, pred_parsed, timeout_seconds=seconds)
    except Exception as exc:
        return Verdict(UNPARSEABLE, pred_answer, f"comparison failed: {type(exc).__name__}")
    return Verdict(CORRECT if ok else WRONG, pred_answer)


_helper_lock = threading.Lock()
_helper: cf.ProcessPoolExecutor | None = None


def _in_helper_process(gold_answer: str, pred_answer: str, timeout: float) -> Verdict:
    """Off the main thread: grade in a helper process and kill it if it overruns the timeout."""
    global _helper
    with _helper_lock:
        if _helper is None:
            _helper = cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
        future = _helper.submit(_math_verify, gold_answer, pred_answer, timeout)
        try:
            return future.result(timeout=timeout * 2 + 30)  # the first call pays the import
        except (cf.TimeoutError, cf.process.BrokenProcessPool) as exc:
            for proc in list((_helper._processes or {}).values()):
                proc.kill()
            _helper.shutdown(wait=False, cancel_futures=True)
            _helper = None
            reason = "timeout" if isinstance(exc, cf.TimeoutError) else "grader process died"
            return Verdict(UNPARSEABLE, pred_answer, reason)


@atexit.register
def _shutdown_helper() -> None:
    global _helper
    if _helper is not None:
        _helper.shutdown(wait=True, cancel_futures=True)
        _helper = None


def _grade_chunk(args: tuple[list[tuple[str, str]], Mode, bool, float]) -> list[Verdict]:
    pairs, mode, fallback, timeout = args
    return [grade(g, p, mode, fallback, timeout) for g, p in pairs]


def grade_batch(pairs: Iterable[tuple[str, str]], mode: Mode = "auto", last_number_fallback: bool = False,
                workers: int | None = None, timeout: float = TIMEOUT_SECONDS, chunk: int = 512) -> list[Verdict]:
    """Grade many pairs, in order, on all cores (each worker's main thread keeps math-verify's timeouts)."""
    pairs = list(pairs)
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(pairs) <= chunk:
        return _grade_chunk((pairs, mode, last_number_fallback, timeout))
    chunks = [(pairs[i : i + chunk], mode, last_number_fallback, timeout) for i in range(0, len(pairs), chunk)]
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
        return [v for part in pool.map(_grade_chunk, chunks) for v in part]
