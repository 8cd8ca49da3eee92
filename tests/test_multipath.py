"""The multi-path problem family: several distinct equation lists per problem, all accepted by the shared verifier;
near misses rejected; the family's checker matches each sample to its path."""
from __future__ import annotations

import re
from collections import Counter

import pytest

from mathforge.testing import multipath

SEED = 7


def judge_for(rows):
    """The RFT collect's paper-mode judge (what `collect` with `dedup: paper` runs on every sample)."""
    from mathforge.builders.sources import Problem

    from mathforge.verify.judges import PaperJudge

    return PaperJudge([Problem(index=i, problem_id=str(i), question=r["question"], solution=r["answer"])
                       for i, r in enumerate(rows)])


def paper_keys(texts):
    from mathforge.verify.equations import annotations, paper_key

    return {paper_key(annotations(t)) for t in texts}


def lines(*steps, final):
    return "\n".join(steps) + f"\n#### {final}"


# One problem of each template (seed 7), worked by hand: the question, the answer, how many distinct step lists
# there are (counted by hand from the decompositions and the orders their steps allow) and a few of them.
CASES = {
    "gifts": dict(
        question="Chen has 12 apples. Chen gives 9 apples to Goran and 2 apples to a cousin, then buys 4 packs of "
                 "2 apples. How many apples does Chen have now?",
        final=9, count=13,  # 12-9-2 (3 places for 4*2), 12-(9+2) (3), (12+8)-9-2 (1), (12+8)-(9+2) (3), 12-2-9 (3)
        paths=[lines("<<12-9=3>>", "<<3-2=1>>", "<<4*2=8>>", "<<1+8=9>>", final=9),
               lines("<<9+2=11>>", "<<12-11=1>>", "<<4*2=8>>", "<<1+8=9>>", final=9),
               lines("<<4*2=8>>", "<<12+8=20>>", "<<20-9=11>>", "<<11-2=9>>", final=9)]),
    "change": dict(
        question="Ava buys 5 pens for 3 dollars each and 3 notebooks for 3 dollars each. Ava pays with 50 dollars. "
                 "How many dollars of change does Ava get?",
        final=26, count=8,  # 50-(15+9) (2 orders), 50-15-9 (3), 50-9-15 (3)
        paths=[lines("<<5*3=15>>", "<<3*3=9>>", "<<15+9=24>>", "<<50-24=26>>", final=26),
               lines("<<5*3=15>>", "<<50-15=35>>", "<<3*3=9>>", "<<35-9=26>>", final=26),
               lines("<<3*3=9>>", "<<50-9=41>>", "<<5*3=15>>", "<<41-15=26>>", final=26)]),
    "boxes": dict(
        question="A machine makes 12 marbles every hour. It runs for 7 hours on Monday and 6 hours on Tuesday. "
                 "The marbles are packed in boxes of 2. How many boxes are filled?",
        final=78, count=11,  # (84+72)/2 (2), 12*13/2 (1), (12/2)*13 (2), 84/2+72/2 (6 interleavings)
        paths=[lines("<<12*7=84>>", "<<12*6=72>>", "<<84+72=156>>", "<<156/2=78>>", final=78),
               lines("<<7+6=13>>", "<<12*13=156>>", "<<156/2=78>>", final=78),
               lines("<<12/2=6>>", "<<7+6=13>>", "<<6*13=78>>", final=78),
               lines("<<12*7=84>>", "<<84/2=42>>", "<<12*6=72>>", "<<72/2=36>>", "<<42+36=78>>", final=78)]),
    "share": dict(
        question="Ben has 7 red cookies, 12 blue cookies and 9 green cookies. Ben shares them equally among 7 "
                 "friends, and Ivan gives each friend 8 more cookies. How many cookies does each friend have?",
        final=12, count=3,  # three ways to add up 7, 12 and 9; 12 and 9 are not multiples of 7
        paths=[lines("<<7+12=19>>", "<<19+9=28>>", "<<28/7=4>>", "<<4+8=12>>", final=12),
               lines("<<12+9=21>>", "<<21+7=28>>", "<<28/7=4>>", "<<4+8=12>>", final=12),
               lines("<<7+9=16>>", "<<16+12=28>>", "<<28/7=4>>", "<<4+8=12>>", final=12)]),
    "packs": dict(
        question="Goran buys 3 bags with 9 red books each and 3 bags with 8 blue books each. Then Goran gives 9 "
                 "books to Hana. How many books does Goran have now?",
        final=42, count=9,  # 27+24-9 (2), 3*17-9 (1), 27-9+24 (3), 24-9+27 (3)
        paths=[lines("<<3*9=27>>", "<<3*8=24>>", "<<27+24=51>>", "<<51-9=42>>", final=42),
               lines("<<9+8=17>>", "<<3*17=51>>", "<<51-9=42>>", final=42),
               lines("<<3*8=24>>", "<<24-9=15>>", "<<3*9=27>>", "<<15+27=42>>", final=42)]),
    "reading": dict(
        question="Ivan reads 7 pages a day for 8 days. Fatima reads 5 pages a day for the same 8 days. Then Ivan "
                 "reads 9 more pages. How many more pages has Ivan read than Fatima?",
        final=25, count=6,  # 56-40+9 (2), (7-5)*8+9 (1), 56+9-40 (3)
        paths=[lines("<<7*8=56>>", "<<5*8=40>>", "<<56-40=16>>", "<<16+9=25>>", final=25),
               lines("<<7-5=2>>", "<<2*8=16>>", "<<16+9=25>>", final=25),
               lines("<<7*8=56>>", "<<56+9=65>>", "<<5*8=40>>", "<<65-40=25>>", final=25)]),
}

# Near misses of the `packs` and `boxes` problems, written by hand: (text, the paper judge's status, whether the
# family's checker calls it correct, grounded). The paper rule checks only the final answer and each
# annotation's arithmetic, so a sample that skips or invents a step but still ends on the gold answer passes it
# (as in the RFT reference); the family's checker also asks every operand to be given or computed before.
NEAR_MISSES = {
    "packs": [
        (lines("<<3*9=27>>", "<<3*8=13>>", "<<27+24=51>>", "<<51-9=42>>", final=42), "calculator", False, False),
        (lines("<<3*9=27>>", "<<3*8=24>>", "<<27+24=51>>", "<<51-9=42>>", final=43), "wrong", False, True),
        (lines("<<3*9=27>>", "<<3*8=24>>", "<<27+24=51>>", final=51), "wrong", False, True),  # dropped last step
        (lines("<<3*9=27>>", "<<27+24=51>>", "<<51-9=42>>", final=42), "ok", True, False),  # dropped 3*8: 24 unknown
        (lines("<<3*9=27>>", "<<3*7=21>>", "<<27+21=48>>", "<<48-9=39>>", final=39), "wrong", False, False),  # 7
        (lines("<<3*9=27>>", "<<3*7=21>>", "<<27+24=51>>", "<<51-9=42>>", final=42), "ok", True, False),  # 7, 24
        (lines("<<3*9=28>>", "<<3*8=24>>", "<<28+24=52>>", "<<52-9=42>>", final=42), "calculator", False, True),
        (lines("<<9+8=17>>", "<<3*17=51>>", "<<51-9=42>>", final=41), "wrong", False, True),
        ("<<3*9=27>>\n<<3*8=24>>\n<<27+24=51>>\n<<51-9=42>>\nThe answer is 42.", "unparseable", False, False),
    ],
    "boxes": [
        (lines("<<12*7=84>>", "<<12*6=72>>", "<<84+72=156>>", "<<156/2=77>>", final=78), "calculator", False, True),
        (lines("<<12*7=84>>", "<<12*6=72>>", "<<84+72=156>>", "<<156/2=78>>", final=156), "wrong", False, True),
        (lines("<<12*7=84>>", "<<12*6=72>>", "<<84+72=156>>", final=156), "wrong", False, True),  # no /2
        (lines("<<12*7=84>>", "<<84+72=156>>", "<<156/2=78>>", final=78), "ok", True, False),  # 72 never computed
        (lines("<<12*8=96>>", "<<12*6=72>>", "<<96+72=168>>", "<<168/2=84>>", final=84), "wrong", False, False),
        (lines("<<7+6=14>>", "<<12*14=168>>", "<<168/2=84>>", final=78), "calculator", False, True),
        (lines("<<7+6=13>>", "<<12*13=156>>", "<<156/3=52>>", final=52), "wrong", False, False),  # 3: not given
    ],
}


@pytest.fixture(scope="module")
def rows():
    return multipath.problems(200, seed=SEED)


def test_problems_are_seeded_distinct_and_respect_exclude(rows):
    assert multipath.problems(200, seed=SEED) == rows
    assert len({r["question"] for r in rows}) == 200
    held = multipath.problems(100, seed=SEED + 1, exclude={r["question"] for r in rows})
    assert not {r["question"] for r in held} & {r["question"] for r in rows}
    assert len(Counter(r["template"] for r in rows)) >= 5  # several structures, each well represented
    assert min(Counter(r["template"] for r in rows).values()) >= 15
    for r in rows:
        assert r["answer"] in r["solutions"]
        for solution in r["solutions"]:  # only annotations, one a line, then `#### n`, small numbers
            body, final = solution.rsplit("\n#### ", 1)
            assert all(re.fullmatch(r"<<\d+[-+*/]\d+=\d+>>", line) for line in body.split("\n"))
            assert 3 <= len(body.split("\n")) <= 6 and final == str(r["final"])  # 6: share split by friend
            assert all(int(n) <= 500 for n in re.findall(r"\d+", solution))
    assert sum(r["answer"] != r["solutions"][0] for r in rows) > 100  # the gold path is drawn, not always the first


def test_most_problems_have_three_or_more_distinct_paper_keys(rows):
    counts = [len(paper_keys(r["solutions"])) for r in rows]
    assert sum(c >= 3 for c in counts) >= 0.8 * len(rows)
    assert all(len(paper_keys(r["solutions"])) == len(r["solutions"]) for r in rows)  # each listed path is distinct


def test_the_shared_paper_verifier_accepts_every_listed_solution_and_the_checker_finds_its_path(rows):
    from mathforge.verify.judges import OK

    judge = judge_for(rows)
    for i, r in enumerate(rows):
        keys = multipath.path_keys(r)
        for p, solution in enumerate(r["solutions"]):
            status, value, key = judge.judge(i, solution)
            assert status == OK and value == float(r["final"]) and key
            verdict = multipath.check(r, solution, keys)
            assert verdict.correct and verdict.grounded and verdict.path == p and verdict.valid


@pytest.mark.parametrize("template", sorted(CASES))
def test_hand_worked_problem_of_each_template(rows, template):
    case = CASES[template]
    row = next(r for r in rows if r["template"] == template)
    assert row["question"] == case["question"] and row["final"] == case["final"]
    assert len(row["solutions"]) == case["count"] == len(paper_keys(row["solutions"]))
    judge = judge_for([row])
    for path in case["paths"]:
        assert path in row["solutions"]
        assert judge.judge(0, path)[0] == "ok"
        verdict = multipath.check(row, path)
        assert verdict.valid and row["solutions"][verdict.path] == path
        # the same steps with the operands of every + and * swapped: another paper key, the same path
        swapped = re.sub(r"<<(\d+)([+*])(\d+)=", r"<<\3\2\1=", path)
        if swapped != path:
            assert paper_keys([swapped]) != paper_keys([path]) and judge.judge(0, swapped)[0] == "ok"
            assert multipath.check(row, swapped).path == verdict.path


@pytest.mark.parametrize("template", sorted(NEAR_MISSES))
def test_hand_written_near_misses(rows, template):
    row = next(r for r in rows if r["template"] == template)
    judge = judge_for([row])
    for text, paper_status, correct, grounded in NEAR_MISSES[template]:
        assert judge.judge(0, text)[0] == paper_status, text
        verdict = multipath.check(row, text)
        assert (verdict.correct, verdict.grounded) == (correct, grounded), (text, verdict)
        assert verdict.path is None and not verdict.valid and verdict.reason


def test_mutated_gold_solutions_are_rejected(rows):
    """Mechanical near misses of every gold solution; the expected verdicts follow from the mutation alone."""
    judge = judge_for(rows)
    for i, r in enumerate(rows):
        steps = re.findall(r"<<(\d+)([-+*/])(\d+)=(\d+)>>", r["answer"])
        x, op, y, z = steps[0]
        given = {int(n) for n in re.findall(r"\d+", r["question"])}
        bumped = r["answer"].replace(f"<<{x}{op}{y}={z}>>", f"<<{x}{op}{y}={int(z) + 1}>>", 1)
        wrong = r["answer"].rsplit("#### ", 1)[0] + f"#### {r['final'] + 1}"
        last_dropped = "\n".join(r["answer"].split("\n")[:-2]) + f"\n#### {steps[-2][3]}"
        foreign = next(n for n in range(13, 100) if n not in given and n != int(y))
        value = {"+": foreign + int(y), "*": foreign * int(y), "-": foreign - int(y), "/": None}[op]
        cases = [(bumped, "calculator", False), (wrong, "wrong", False)]
        if int(steps[-2][3]) != r["final"]:
            cases.append((last_dropped, "wrong", False))
        if value is not None and value >= 0:  # the first step on a number the question lacks, the rest unchanged
            invented = r["answer"].replace(f"<<{x}{op}{y}={z}>>", f"<<{foreign}{op}{y}={value}>>", 1)
            cases.append((invented, "ok", True))  # arithmetic and answer right: the paper rule lets it through
        for text, paper_status, correct in cases:
            assert judge.judge(i, text)[0] == paper_status, text
            verdict = multipath.check(r, text)
            assert verdict.correct == correct and verdict.path is None and not verdict.valid, (text, verdict)
            if correct:
                assert not verdict.grounded


def test_checker_reads_arithmetic_exactly_without_eval():
    row = {"question": "Ana has 6 and 4 and 2.", "final": 5, "solutions": [lines("<<6+4=10>>", "<<10/2=5>>",
                                                                                   final=5)]}
    assert multipath.check(row, lines("<<6+4=10>>", "<<10/2=5>>", final=5)).path == 0
    assert multipath.check(row, lines("<<6+4=10>>", "<<10/2=5.0>>", final="5.0")).path == 0
    assert not multipath.check(row, lines("<<6+4=10>>", "<<10/2=5.001>>", final=5)).correct  # exact, no tolerance
    assert multipath.check(row, lines("<<6+4/2=8>>", "<<8-2=6>>", "<<6-1=5>>", final=5)).correct  # precedence
    assert not multipath.check(row, lines("<<6+4/2=5>>", final=5)).correct
    for hostile in ("<<__import__('os')=1>>", "<<2**99999=1>>", "<<(6+4)=10>>", "<<6/0=1>>", "<<6+=6>>"):
        verdict = multipath.check(row, hostile + "\n#### 5")
        assert not verdict.correct and "unreadable" in verdict.reason
    correct_elsewhere = multipath.check(row, lines("<<6-2=4>>", "<<4+4=8>>", "<<8-2=6>>", "<<6-1=5>>", final=5))
    assert correct_elsewhere.correct and not correct_elsewhere.grounded  # 1 is not in the question
    unlisted = multipath.check(row, lines("<<6*2=12>>", "<<12-4=8>>", "<<8-2=6>>", "<<6-6=0>>", "<<10/2=5>>", final=5))
    assert unlisted.correct and not unlisted.grounded  # 10 never computed
    detour = multipath.check(row, lines("<<6*2=12>>", "<<6+4=10>>", "<<10/2=5>>", final=5))
    assert detour.correct and detour.grounded and detour.path is None and not detour.valid
