"""The exact fast paths agree with the slow path (Math-Verify behind the normalization) on hand-labelled pairs."""
from __future__ import annotations

from fractions import Fraction

import pytest

from mathforge.verify.exact_forms import decide
from mathforge.verify.grader import compare, grade, reference_compare
from mathforge.verify.normalize import normalize

Y, N = True, False  # hand labels: equivalent or not
M22 = "\\begin{pmatrix} \\frac{3}{5} & \\frac{1}{5} \\\\ -\\frac{3}{5} & 2 \\end{pmatrix}"
Z22 = "\\begin{pmatrix} 0 & 0 \\\\ 0 & 0 \\end{pmatrix}"
V2 = "\\begin{pmatrix} 4 \\\\ -3 \\end{pmatrix}"

PAIRS = [
    # integers and decimals
    ("42", "42.0", Y), ("42", "41", N), ("-7", "- 7", Y), ("0", "-0", Y), ("1000", "1,000", Y), ("2.50", "2.5", Y),
    ("2.5", "2.05", N), (".3", "0.3", Y), ("0.3", "0.30000000000000004", N), ("12", "12.000", Y),
    # fractions, \dfrac, \frac12, slashes, mixed numbers
    ("\\frac{1}{2}", "\\dfrac{1}{2}", Y), ("\\frac{1}{2}", "\\dfrac12", Y), ("\\frac{1}{2}", "0.5", Y),
    ("\\frac{1}{2}", "1/2", Y), ("\\frac{1}{2}", "\\frac{2}{4}", Y), ("\\frac{1}{2}", "\\frac{1}{3}", N),
    ("-\\frac{5}{2}", "\\frac{-5}{2}", Y), ("-\\frac{5}{2}", "-2.5", Y), ("-\\frac{5}{2}", "2.5", N),
    ("\\frac{5}{2}", "2\\frac{1}{2}", Y), ("-\\frac{5}{2}", "-2\\frac{1}{2}", Y), ("\\frac{5}{2}", "2\\frac{1}{3}", N),
    ("10\\frac{1}{12}", "\\frac{121}{12}", Y), ("1\\frac{2}{3}", "\\frac{5}{3}", Y), ("1\\frac{2}{3}", "\\frac{2}{3}", N),
    ("\\frac{7}{8}", "0.875", Y), ("\\frac{7}{8}", "0.88", N), ("\\frac{1}{3}", "0.33", N), ("\\frac{1}{3}", "0.333", N),
    ("\\frac{3}{4}", "\\frac34", Y), ("\\frac{3}{4}", "\\tfrac{3}{4}", Y), ("\\frac{9}{2}", "4.5", Y),
    # percent and degrees (the normalization strips the marks)
    ("50\\%", "50", Y), ("50\\%", "\\frac{100}{2}", Y), ("50\\%", "5", N), ("30^\\circ", "30", Y),
    ("30^\\circ", "\\frac{60}{2}", Y), ("45^{\\circ}", "\\frac{90}{2}^\\circ", Y), ("120^\\circ", "60", N),
    # radicals and sums of radical terms
    ("2\\sqrt{2}", "\\sqrt{8}", Y), ("3\\sqrt{2}", "\\sqrt{18}", Y), ("2\\sqrt{3}", "\\sqrt{6}", N),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", Y), ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{2}}{2}", N),
    ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", Y), ("\\frac{2}{\\sqrt{3}}", "\\frac{2\\sqrt3}{3}", Y),
    ("\\sqrt{2}+1", "1+\\sqrt2", Y), ("\\sqrt{2}+1", "\\sqrt{2}-1", N), ("\\sqrt{2}+\\sqrt{3}", "\\sqrt{5}", N),
    ("12+12\\sqrt{3}", "12(1+\\sqrt{3})", Y), ("12 - 6\\sqrt{3}", "6(2-\\sqrt3)", Y), ("4\\sqrt{5}", "\\sqrt{80}", Y),
    ("\\sqrt{50}", "5\\sqrt{2}", Y), ("\\sqrt{50}", "5\\sqrt{3}", N), ("2^{1/2}", "\\sqrt{2}", Y),
    ("\\frac{1}{\\sqrt{2}+1}", "\\sqrt{2}-1", Y), ("\\sqrt{12}-\\sqrt{3}", "\\sqrt{3}", Y), ("\\sqrt{4}", "2", Y),
    ("\\frac{2\\sqrt{35}}{35}", "\\frac{2}{\\sqrt{35}}", Y), ("\\frac{2\\sqrt{35}}{35}", "\\frac{2}{35}", N),
    # multiples of pi
    ("3\\pi", "3 \\pi", Y), ("\\frac{\\pi}{4}", "\\frac14\\pi", Y), ("\\frac{25\\pi}{2}", "12.5\\pi", None),
    ("2\\pi", "\\pi+\\pi", Y), ("\\pi^2", "\\pi \\cdot \\pi", Y), ("4\\pi", "4", N), ("\\pi", "\\frac{355}{113}", N),
    ("7-2\\pi", "-2\\pi+7", Y), ("7-2\\pi", "2\\pi-7", N), ("\\frac{\\pi}{3}", "\\frac{2\\pi}{6}", Y),
    ("16\\pi", "16 \\pi", Y), ("\\frac{9\\pi}{4}", "\\frac{9}{4}\\pi", Y), ("8\\sqrt{3}\\pi", "8\\pi\\sqrt{3}", Y),
    # powers and products of numbers
    ("2^{10}", "1024", Y), ("5^{12}", "244140625", Y), ("2^{-1}", "\\frac12", Y), ("10^{2}", "100", Y),
    ("2\\cdot 3", "6", Y), ("2\\times 3", "6", Y), ("2^{10}", "1000", N), ("3^4", "81", Y), ("3^4", "64", N),
    # polynomials (exact expansion over the rationals)
    ("x^2+2x+1", "(x+1)^2", Y), ("x^2+2x+1", "(x-1)^2", N), ("t^2-49", "(t-7)(t+7)", Y), ("x^2", "x^{2}", Y),
    ("-29x^5(7x^6-2)", "-203x^{11}+58x^5", Y), ("16x^2+4x+5", "16x^2+4x+6", N), ("3x+2y", "2y+3x", Y),
    ("\\frac{1}{2}x", "\\frac{x}{2}", Y), ("(2x+3)(x-3)", "2x^2-3x-9", Y), ("(2x+3)(x-3)", "2x^2+3x-9", N),
    ("-9x^3+3x^2-2x+2", "2-2x+3x^2-9x^3", Y), ("x^3-1", "(x-1)(x^2+x+1)", Y), ("x^3+1", "(x-1)(x^2+x+1)", N),
    ("y", "y", Y), ("x", "y", N), ("3x", "x+2x", None),  # normalize reads a bare `3x` as 3 and a unit: both paths
    ("2x+1", "x+x+1", Y), ("C", "{C}", Y), ("\\text{(D)}", "{\\text{(D)}}", Y), ("A", "B", N), ("4x^2", "(2x)^2", Y), ("x^2y", "y x^2", Y),
    ("\\sqrt{2}x+1", "1+x\\sqrt{2}", Y), ("\\pi r^2", "r^2\\pi", Y), ("2\\pi r", "2 r \\pi", Y),
    ("-2+3i", "-2 + 3i", Y), ("-2+3i", "3i-2", Y), ("5-12i", "5+12i", N), ("4-4i", "-\\frac34i", N),
    # tuples and intervals
    ("(3, -1)", "(3,-1)", Y), ("(1,2)", "(2,1)", N), ("(0,1)", "(0, 1.0)", Y), ("[0,3)", "[0, 3)", Y),
    ("[0,3)", "[0,4)", N), ("(\\frac{1}{8},\\frac{1}{3})", "(0.125, \\frac13)", Y), ("(1,2,3)", "(1,3,2)", N),
    ("(2\\sqrt{2}, \\pi)", "(\\sqrt{8}, \\pi)", Y), ("(-6, 1)", "(-6, 2)", N), ("(1,3)", "3", N), ("5", "(5,7)", N),
    ("(4,4)", "(4, 4)", Y), ("[-9, 9]", "[-9,9]", Y), ("[-9, 9]", "(-9,9)", N),
    # multiple answers and sets (any order)
    ("2, 3", "3, 2", Y), ("2, 3", "2, 4", N), ("\\{1, \\frac12\\}", "\\{0.5, 1\\}", Y), ("-2, 2", "\\pm 2", Y),
    ("1+\\sqrt{2}, 1-\\sqrt{2}", "1 \\pm \\sqrt{2}", Y), ("6, 8, and 10", "10, 8, 6", Y), ("6, 8, 10", "6, 8", N),
    # differences far below float precision: never equal by rounding
    ("1", "1+10^{-30}", N), ("\\frac{10^{20}+1}{10^{20}}", "1", N), ("\\sqrt{10^{10}+1}", "10^{5}", N),
    ("x+10^{-25}", "x", N), ("\\pi", "\\pi+10^{-40}", N), ("\\sqrt{2}", "\\frac{99}{70}", N),
    ("\\frac{1}{3}", "0.3333333333333333333334", Y),  # printed in full (15+ digits within 1e-14): the value
    ("\\frac{1}{3}", "0.33333333333", N),  # 11 digits: a rounding
    ("\\frac{2}{3}+1", "1.6666666666666666666667", Y), ("\\frac{2}{3}+1", "1.67", N),
    ("2^{64}", "18446744073709551616", Y), ("2^{64}", "18446744073709551617", N),
    ("\\frac{1}{7}", "0.142857142857142857142857142857142857", Y),
    # intervals with an infinite end, unions of intervals, `x = value` answers
    ("[1,\\infty)", "4", N), ("21", "[2,\\infty)", N), ("[1,\\infty)", "[2,\\infty)", N),
    ("[1,\\infty)", "[1, \\infty)", Y), ("[1,\\infty)", "(1,\\infty)", N), ("(-\\infty, 3)", "(-\\infty, 3]", N),
    ("(-\\infty, 3)", "(-\\infty, \\frac{6}{2})", Y), ("(-\\infty, 3)", "(3, \\infty)", N),
    ("(-\\infty, \\infty)", "(-\\infty, 0)", N), ("[1,\\infty)", "[1, 5]", N), ("(0, \\infty)", "(0.5, \\infty)", N),
    ("(-\\infty,5)\\cup(5,\\infty)", "5", N), ("-27", "(-\\infty,-27)\\cup(-27,\\infty)", N),
    ("(-\\infty,-27)\\cup(-27,\\infty)", "(-\\infty,-27)\\cup(-27,\\infty)", Y),
    ("(-\\infty,-2)\\cup(-2,2)\\cup(2,\\infty)", "3x^2-12", N), ("(0, \\frac13] \\cup (1, 2]", "x^4-16", N),
    ("k = \\frac{-33}{2}", "k = -16.5", Y), ("k = \\frac{-33}{2}", "k = \\frac{-33}{3}", N),
    ("k = \\frac{-33}{2}", "-k = \\frac{-33}{2}", N), ("y=-2x+1", "y=1-2x", Y), ("y=2x", "y=x+x+1", N),
    ("x=2", "x = 3", N), ("x=2", "y=2", None), ("y = x^2", "y = x \\cdot x", Y),
    # matrices: entry by entry (a leading minus negates each), another shape, against a value; words against numbers
    (M22, M22.replace("\\frac{3}{5}", "\\dfrac{6}{10}"), Y), (M22, "-" + M22, N), (M22, M22.replace("{1}{5}", "{1}{6}"), N),
    (Z22, "-" + Z22, Y), (Z22, Z22.replace("0 \\end", "10^{-30} \\end"), N), (M22, V2, N), (V2, "-" + V2, N),
    (V2, "\\begin{bmatrix} 4 \\\\ -3 \\end{bmatrix}", Y), (V2, "\\begin{pmatrix} 4 \\\\ -3 \\\\ \\end{pmatrix}", Y),
    (V2, "\\begin{pmatrix} 4 & -3 \\end{pmatrix}", N), (V2, "\\begin{pmatrix} 4 \\\\ -3 \\\\ 0 \\end{pmatrix}", N),
    (V2, "-3", N), ("4", V2, N), (V2, "\\sqrt{2}", N), ("\\frac{1}{3}", M22, N), (M22, "x", N),
    ("18", "odd", N), ("\\frac{41}{49}", "friday", N), ("friday", "-5", N), ("52", "\\text{even}", N),
    ("\\pi", "pi", N), ("0", "none", N), ("2.5", "neither", N),
    # an equation against a value: its last side (Math-Verify's reading, whether the chain holds or not)
    ("7", "5 + 2 = {7}", Y), ("7", "5 + 2 = 8", N), ("3", "1 + 1 = 3", Y), ("2", "1 + 1 = 3", N), ("7", "x = 3 + 4 = 7", Y),
    ("8", "x = 3 + 4 = 7", N), ("\\frac{1}{2}", "\\frac{2}{4} = 0.5", Y), ("5", "a + b = 5", Y), ("x", "y = x", Y),
    ("\\pi - 2", "\\frac 1 4 \\pi r^2 - \\frac 1 2 r^2 = {\\pi - 2}", Y), ("4", "2^2 = 4 = 3+1", Y), ("4", "2^2 = 4 = 3+2", N),
]

# generated families; expectations computed with Python's Fraction, not the code under test
for p, q in [(1, 2), (3, 4), (7, 8), (5, 16), (9, 20), (1, 25), (3, 40), (13, 50), (-3, 8), (-1, 5)]:
    value = Fraction(p, q)
    sign = "-" if p < 0 else ""
    text = f"{sign}\\frac{{{abs(p)}}}{{{q}}}"
    PAIRS += [(text, str(float(value)), Y), (text, str(float(value + Fraction(1, 1000))), N),
              (text, f"{sign}\\dfrac{{{abs(p) * 3}}}{{{q * 3}}}", Y), (text, f"{p}/{q}", Y), (text, f"{q}/{p}", N)]
for n in [2, 3, 5, 6, 7, 10, 11, 13, 15, 21]:
    for a in [2, 3, 5]:
        PAIRS += [(f"{a}\\sqrt{{{n}}}", f"\\sqrt{{{a * a * n}}}", Y), (f"{a}\\sqrt{{{n}}}", f"\\sqrt{{{a * n}}}", N)]
for a, b in [(1, 2), (2, 3), (3, 5), (5, 7)]:
    PAIRS += [(f"\\frac{{{a}\\pi}}{{{b}}}", f"\\frac{{{a}}}{{{b}}}\\pi", Y), (f"\\frac{{{a}\\pi}}{{{b}}}", f"{a}\\pi", N),
              (f"x^2+{a + b}x+{a * b}", f"(x+{a})(x+{b})", Y), (f"x^2+{a + b}x+{a * b}", f"(x+{a})(x-{b})", N),
              (f"({a}, {b})", f"({a},{b})", Y), (f"({a}, {b})", f"({b}, {a})", N)]


@pytest.mark.parametrize("gold, pred, label", PAIRS)
def test_fast_and_slow_paths_agree_with_the_hand_label(gold, pred, label):
    fast, slow = compare(gold, pred), reference_compare(gold, pred)
    assert fast[0] == slow[0], (fast, slow)
    if label is not None:
        assert fast[0] == ("correct" if label else "wrong"), fast


def test_most_of_these_pairs_are_decided_by_the_fast_forms():
    decided = [decide(normalize(g), normalize(p)) is not None for g, p, _ in PAIRS]
    assert len(PAIRS) >= 250 and sum(decided) >= 0.6 * len(PAIRS)


@pytest.mark.parametrize("gold, pred", [
    ("\\frac{x}{2}", "0.5x"), ("\\pi", "3.14"), ("x(x+1)", "x^2+x"), ("ab", "a b"), ("2x", "x2"),
    ("\\sqrt{x}", "x^{1/2}"), ("1+2\\frac{1}{2}", "3.5"), ("(2,1]", "(3,0]"), ("e", "2.718281828459045"),
    ("\\sqrt[3]{8}", "2"), ("i^2", "-1"), ("x=x+1", "x=x+2"), ("(\\infty, 3)", "4"), ("\\infty", "[1,\\infty)"), ("[3, -\\infty)", "[3, \\infty)"),
    ("(0,1)\\cup(1,2)", "(0,2)"), ("C", "{C}"), ("2X", "X+X"), ("1/2x", "\\frac{x}{2}"), ("x^23", "x^{23}"), ("f(x)", "x f"),
])
def test_forms_read_differently_by_math_verify_are_handed_on(gold, pred):
    assert decide(normalize(gold), normalize(pred)) is None


def test_a_sample_verdict_is_remembered_per_gold_and_answer():
    from mathforge.verify import grader

    before = grader.PATHS.copy()
    for _ in range(3):
        assert grade("The area is $\\boxed{\\frac{25\\pi}{3}}$.", "So it is \\boxed{\\dfrac{25}{3}\\pi}.", "math").verdict \
            == "correct"
    delta = grader.PATHS - before
    assert delta["fast"] == 1 and delta["memo"] == 2


@pytest.mark.parametrize("ending, answer", [
    ("So the answer is \\boxed{", "\\boxed{"), ("The answer is $\\boxed{\\frac{1}{2}$.", None),
    ("We get $\\boxed{\\begin{align*} x", None),
])
def test_a_cut_off_answer_is_malformed_not_wrong(ending, answer):
    verdict = grade("\\frac{1}{2}", "We compute. " + ending, "math")
    assert verdict.verdict == "unparseable"
    assert verdict.reason in ("malformed answer (unbalanced braces or environment)", "no final answer found")
    if answer is not None:
        assert verdict.pred == answer


def test_a_closed_environment_is_graded():
    assert grade("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "So $\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}$.",
                 "math").verdict == "correct"
    assert grade("5", "So $\\boxed{\\begin{pmatrix} 5 \\\\ 1 \\end{pmatrix}}$.", "math").verdict == "wrong"
