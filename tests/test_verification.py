"""The shared grader beyond GSM8K: no false accepts, standard answer formats, reasoning blocks, hostile input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mathforge.verify.extract import final_answer, split_reasoning
from mathforge.verify.grader import answer_classes, compare, grade, reference_compare, too_large
from mathforge.verify.pairs import grade_file

GRADING = Path(__file__).resolve().parents[1] / "benchmarks" / "grading"


def verdict(gold: str, pred: str, mode: str = "auto") -> str:
    return grade(gold, pred, mode).verdict


@pytest.mark.parametrize("gold, pred", [  # the false accepts: numbers near zero equal after rounding
    (r"\frac{1}{2^{99}}", r"\frac{1}{2^{98}}"),
    (r"\frac{1}{2004!}", r"\frac{1}{2006!}"),
    (r"\frac{2^{2005}+1}{3\cdot 2^{2006}}", r"\frac{1}{3\cdot 2^{2006}}"),
    (r"\sqrt{10^{40}+1}", "10^{20}"),           # differs by 5e-21: exact irrationals compare at 120 digits
    (r"\frac{1}{3}", "0.333"),                   # a rounding of an exact answer is not the answer
    ("0.3", "0.30000000000000004"),              # two decimals compare exactly
    ("(1,2]", "[1,2]"), ("(2,6)", "(6,2)"), ("2x+1", "2x-1"),
])
def test_near_misses_are_wrong(gold, pred):
    assert verdict(gold, pred) == "wrong"


@pytest.mark.parametrize("gold, pred", [  # the formats that came back unparseable or wrong
    ("100", "Final Answer: The final answer is $100$. I hope it is correct."),
    ("18", "The answer is 18."), ("9", "The total is 3+6=9"), ("100", "100."), ("42", "**42**"),
    ("18", "18 dollars"), ("1000", "1 000"), ("1000", r"1{,}000"), ("12.5", r"It costs \$12.50."),
    (r"\{1,2\}", r"\boxed{1}, \boxed{2}"), ("(2, 2), (6, 2)", r"\boxed{(2,2)} \text{ and } \boxed{(6,2)}"),
    (r"\frac{1}{2}", "0.5"), (r"\frac12", r"\dfrac{1}{2}"), (r"\sqrt{8}", r"2\sqrt{2}"), ("3", "x = 3"),
    ("30", r"30^\circ"), ("C", r"\text{(C)}"), ("50", r"50\%"), ("2^{10}", "1024"), ("120", "5!"),
    (r"\pm 2", "2, -2"), ("(2, -1)", "x=2, y=-1"), (r"\emptyset", r"\varnothing"), ("east", "East"),
    (r"\frac{1}{12}", "0.0833333333333333"),     # a float64 printed in full is the value
    (r"10^{-10}", "0.0000000001"),                # a decimal that is exactly the value
    (r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"\begin{bmatrix}1&2\\3&4\end{bmatrix}"),
    ("x^2+2x+1", "(x+1)^2"), ("5", "Therefore, there are 5 ways. I hope it is correct. <|im_start|>user"),
])
def test_equivalent_answers_in_standard_formats(gold, pred):
    assert verdict(gold, pred) == "correct"


def test_the_answer_after_the_reasoning_is_the_one_graded():
    assert split_reasoning("<think>try 70</think>\nSo \\boxed{72}") == ("try 70", "\nSo \\boxed{72}")
    assert verdict("72", "<think>maybe \\boxed{70}</think> so \\boxed{72}") == "correct"
    assert verdict("72", "<think>it is \\boxed{72}</think> final: \\boxed{70}") == "wrong"
    cut = grade("72", "<think>so it is 72, but let me check")  # a trace cut off before its answer
    assert (cut.verdict, cut.reason) == ("unparseable", "reasoning not finished")
    assert verdict("7", "<think>3 + 4 = 7, so \\boxed{7}</think>\n\nI hope this helps!") == "unparseable"


def test_a_box_without_braces_is_read_as_tex_reads_it():
    # two MATH train solutions end `$\\boxed 2$` and `$\\boxed 9$`: TeX boxes the one token after the space
    gold = "Since we want the largest value of $x$, our answer is $\\boxed 2$."
    assert final_answer(gold) == ("2", "boxed")
    assert verdict(gold, "so $x = \\boxed{2}$") == "correct"
    assert verdict(gold, "$\\boxed{-2}$") == "wrong"
    assert final_answer("it is $\\boxed \\pi$.") == ("\\pi", "boxed")
    # `\\boxed 23` boxes only the 2 in TeX: no box is read, and no reader may take a box's content for the
    # whole answer (Math-Verify reads `-\\boxed 9` as 9: it was a false accept against the gold 9)
    assert final_answer("so $\\boxed 23$")[1] != "boxed"
    assert compare("\\boxed 9", "-\\boxed 9")[0] == reference_compare("\\boxed 9", "-\\boxed 9")[0] == "unparseable"
    assert final_answer("$-\\boxed 9$") == final_answer("$-\\boxed{9}$") == ("9", "boxed")  # the box, as with braces


def test_extraction_priority_is_documented_order():
    assert final_answer("\\boxed{3} ... #### 4") == ("3", "boxed")
    assert final_answer("so \\boxed{255} first.\nFinal Answer: The final answer is $10,455$.") == \
        ("10,455", "final answer is")  # a later "final answer is" beats an earlier intermediate box
    assert final_answer("x\n#### 1,234 apples\n\nQuestion: next one\n#### 9") == ("1234", "####")
    assert final_answer("#### see below\nso #### \\frac{1}{2}") == ("\\frac{1}{2}", "####")
    assert final_answer("no answer here at all, just words") == (None, "none")
    assert final_answer("Ava buys 20 apples, so she has 23.") == (None, "none")  # prose is not guessed


def test_gsm8k_mode_is_the_exact_rule():
    assert verdict("72", "so #### 72", "gsm8k") == "correct"
    assert verdict("72", "The answer is 72.", "gsm8k") == "unparseable"   # gsm8k mode reads `#### n` only
    assert verdict("1,000", "#### 1000.0", "gsm8k") == "correct"


def test_equivalent_answers_vote_together():
    answers = [r"\frac12", "0.5", "7", "1/2", None, "7", r"\dfrac{1}{2}"]
    assert answer_classes(answers) == [[0, 1, 3, 6], [2, 5]]


@pytest.mark.parametrize("answer, reason", [
    ("2^{2^{100}}", "nested exponent"), ("10^{99999999}", "exponent too large"), ("1000000!", "exponent too large"),
    ("{" * 60 + "1" + "}" * 60, "nesting too deep"), ("9" * 500, "number too long"),
])
def test_hostile_answers_are_refused_before_any_parse(answer, reason):
    assert too_large(answer) == reason
    assert grade("1", answer, "math").verdict == "unparseable"


@pytest.mark.parametrize("unit", ["a", "ab ", "\\[ ", "\\( ", "x: ", "is ", "= ", "**", "\\boxed{", "<think>",
                                  "final answer is ", "The answer is x ", "(((", "}{"])
def test_texts_that_bait_backtracking_are_read_once(unit):
    """Every extraction pattern is bounded; these would hang an unbounded one (the watchdog ends a hung test)."""
    assert grade("42", unit * 30_000).verdict in ("unparseable", "wrong")


def test_a_huge_prediction_is_not_an_answer():
    assert grade("1", "x" * 100_000 + " \\boxed{" + "1" * 2000 + "}").verdict == "unparseable"


def test_labelled_pairs_no_false_accept_and_better_than_math_verify():
    pairs = [json.loads(line) for line in (GRADING / "pairs.jsonl").read_text().splitlines() if line.strip()]
    results = json.loads((GRADING / "results.json").read_text())
    says = [(p, verdict(p["gold"], p["pred"]) == "correct") for p in pairs]
    false_accepts = [p["id"] for p, ok in says if ok and not p["equivalent"]]
    right = sum(ok == p["equivalent"] for p, ok in says)
    assert false_accepts == []
    assert right / len(pairs) > results["summary"]["overall"]["math_verify"]["accuracy"]  # recorded by compare.py


def test_math_verify_published_cases_pass_at_97_percent():
    cases = [json.loads(line) for line in (GRADING / "mathverify_cases.jsonl").read_text().splitlines() if line]
    passed = sum((verdict(c["gold"], c["pred"], "math") == "correct") == c["expected"] for c in cases)
    assert len(cases) >= 240 and passed / len(cases) >= 0.97, f"{passed}/{len(cases)}"


def test_grading_a_file_keeps_order_and_names_the_bad_line(tmp_path):
    rows = [{"id": i, "gold": str(i % 7), "pred": f"so #### {i % 5}"} for i in range(3000)]
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = grade_file(source, tmp_path / "out.jsonl", "gsm8k", workers=2)
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == list(range(3000))
    expected = ["correct" if i % 7 == i % 5 else "wrong" for i in range(3000)]
    assert [r["verdict"] for r in out] == expected and counts["correct"] == expected.count("correct")
    lines = source.read_text().splitlines()
    lines[2499] = '{"gold": "1", "pred": '
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match=r"pairs.jsonl:2500: invalid JSON"):
        grade_file(source, tmp_path / "bad.jsonl", "gsm8k", workers=2)
    assert not (tmp_path / "bad.jsonl").exists()


def test_validate_reports_how_many_gold_answers_parse(tmp_path):
    from conftest import run

    rows = [{"question": "q1", "answer": "so \\boxed{\\frac12}"}, {"question": "q2", "answer": "x = 3"},
            {"question": "q3", "answer": "there is no answer written anywhere in this text"}]
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "r.yaml").write_text(f"name: v\nversion: 1.0.0\nsources:\n  - path: {tmp_path / 'gold.jsonl'}\n"
                                     "    answer_kind: latex\nstages:\n  - type: collect\n")
    result = run("validate", tmp_path / "r.yaml")
    assert result.returncode == 0 and "2 of 3 gold answers parse (answer_kind latex)" in result.stdout


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_runs_of_lines_cover_the_file_at_line_boundaries(tmp_path, size):
    """`line_runs` against the file split whole: runs are contiguous, end at a newline (the last may not), and each
    starts at the line number the whole split gives; `iter_table(span=...)` reads exactly the run's rows."""
    from mathforge.tables import iter_table, line_runs

    rng = __import__("random").Random(size)
    lines = [json.dumps({"i": i, "pad": "x" * rng.randrange(0, 90)}) if rng.random() > 0.1 else "" for i in range(300)]
    data = ("\n".join(lines)).encode()  # no newline after the last line
    path = tmp_path / "t.jsonl"
    path.write_bytes(data)
    runs = line_runs(path, size)
    assert runs[0][0] == 0 and sum(length for _, length, _ in runs) == len(data)
    for (offset, length, first), following in zip(runs, runs[1:] + [None]):
        assert data.count(b"\n", 0, offset) + 1 == first
        if following is not None:
            assert offset + length == following[0] and data[offset + length - 1:offset + length] == b"\n"
    whole = list(iter_table(path))
    assert [item for run in runs for item in iter_table(path, span=run)] == whole
    assert [number for _, number in whole] == [n for n, line in enumerate(lines, 1) if line]
