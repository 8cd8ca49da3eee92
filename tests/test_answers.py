"""Answer extraction and grading: GSM8K, boxed LaTeX via math-verify, timeouts off the main thread, batches."""
from __future__ import annotations

import threading
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mathforge.verify.answers import boxed_extract, gsm8k_extract, paper_extract, strict_number
from mathforge.verify.grader import grade, grade_batch


@pytest.mark.parametrize("text,expected", [
    ("so\n#### 1,234", "1234"), ("#### $12", "12"), ("####42 apples", "42"), ("#### -3.5", "-3.5"),
    ("no marker here 5 then 7", None), ("#### .5", ".5"),
])
def test_gsm8k_extract(text, expected):
    assert gsm8k_extract(text) == expected


def test_last_number_fallback_is_explicit():
    assert gsm8k_extract("she has 5 then 7.") is None
    assert gsm8k_extract("she has 5 then 7.", last_number_fallback=True) == "7"


def test_paper_extract_reference_semantics():
    assert paper_extract("#### 1,000") == "1000"
    assert paper_extract("#### 1.2.3") is None          # float() fails: invalid, as in the reference
    assert paper_extract("#### 5\x00#### 6") == "5"
    assert paper_extract("\x00#### 5") is None         # text after NUL is cut
    assert paper_extract("####  5") is None            # exactly one space, as the reference pattern


def test_boxed_and_numbers():
    assert boxed_extract(r"so \boxed{\frac{1}{2}} done") == r"\frac{1}{2}"
    assert boxed_extract(r"\boxed{a} then \boxed{b{c}}") == "b{c}"
    assert boxed_extract(r"\boxed{unclosed") is None
    assert strict_number("1,234.50") == Fraction(246_9, 2)
    assert strict_number("1,23") is None and strict_number("٣") is None and strict_number("9" * 500) is None


@settings(max_examples=200, deadline=None)
@given(st.integers(-10**12, 10**12))
def test_gsm8k_grading_roundtrip(n):
    formatted = f"{n:,}"
    assert grade(f"#### {n}", f"work...\n#### {formatted}", "gsm8k").verdict == "correct"
    assert grade(f"#### {n}", f"#### {n + 1}", "gsm8k").verdict == "wrong"


def test_math_verify_latex():
    assert grade(r"\frac{1}{2}", r"the answer is \boxed{0.5}", "math").verdict == "correct"
    assert grade(r"\frac{1}{2}", r"\boxed{\dfrac{2}{4}}", "math").verdict == "correct"
    assert grade(r"x^2+1", r"\boxed{1+x^2}", "math").verdict == "correct"
    assert grade(r"\sqrt{2}", r"\boxed{2}", "math").verdict == "wrong"
    assert grade("#### 5", "nothing", "gsm8k").verdict == "unparseable"


def test_hostile_prediction_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    pred = rf"\boxed{{__import__('os').system('touch {marker}')}}"
    verdict = grade("3", pred, "math")
    assert verdict.verdict in ("wrong", "unparseable")
    assert not marker.exists()


def test_grading_works_off_the_main_thread():
    results = []
    thread = threading.Thread(target=lambda: results.append(grade(r"\sqrt{4}", r"\boxed{2}", "math")))
    thread.start()
    thread.join(120)
    assert results and results[0].verdict == "correct"


def test_batch_matches_sequential_and_keeps_order():
    pairs = [(f"#### {i}", f"#### {i if i % 3 else i + 1}") for i in range(1500)] + [(r"\frac{1}{3}", r"\boxed{1/3}")]
    batch = grade_batch(pairs, "auto", workers=2, chunk=256)
    assert batch == [grade(g, p, "auto") for g, p in pairs]
    assert sum(v.verdict == "wrong" for v in batch) == 500
