"""The competent teacher (mathforge.testing.teacher) against the tutor stage's own prompt, parser and checks, on
multi-path problems and a scripted student whose mistakes are planted at known steps."""
from __future__ import annotations

import re

import pytest

from mathforge.builders.prompts import render
from mathforge.builders.stages import tutor_prompts as tp
from mathforge.testing import multipath
from mathforge.testing.teacher import CompetentTeacher

ROWS = multipath.problems(12, seed=11)


def _prompt(row: dict, steps: list[str]) -> str:
    """The tutor stage's prompt as the stage renders it."""
    return render(tp.TEACHER_PROMPT, tp.prompt_fields(row["question"], steps))


def _plant(row: dict, kind: str) -> tuple[list[str], int | None]:
    """A student's steps with one mistake of `kind` and the (1-based) step it is at, worked out by hand rules."""
    steps = tp.split_steps(row["answer"])
    if kind == "right":
        return steps, None
    if kind == "miscomputed":  # the second step's result off by one (later steps keep the student's own numbers)
        steps[1] = re.sub(r"=(\d+)>>", lambda m: f"={int(m.group(1)) + 1}>>", steps[1])
        return steps, 2
    if kind == "from nowhere":  # the first step's second operand replaced by a number not in the question
        given = set(re.findall(r"\d+", row["question"]))
        stranger = next(str(n) for n in range(97, 1000) if str(n) not in given)
        x, op, y, _ = re.match(r"<<(\d+)([-+*/])(\d+)=(\d+)>>", steps[0]).groups()
        value = {"+": int(x) + int(stranger), "-": int(x) - int(stranger), "*": int(x) * int(stranger)}.get(op)
        if value is None or value < 0:
            value = int(x) + int(stranger)
            op = "+"
        steps[0] = f"<<{x}{op}{stranger}={value}>>"
        return steps, 1
    if kind == "no calculation":  # an untrained student's noise where the second step should be
        steps[1] = "friends \u00e9 each machine <<"
        return steps, 2
    if kind == "wrong answer":  # the work is right, the final line is not
        steps[-1] = f"#### {row['final'] + 1}"
        return steps, len(steps)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["right", "miscomputed", "from nowhere", "no calculation", "wrong answer"])
def test_the_teacher_finds_the_planted_step_and_its_fix_is_valid(kind):
    teacher = CompetentTeacher(ROWS)
    for row in ROWS:
        steps, planted = _plant(row, kind)
        reply = tp.parse_teacher_reply(teacher({"messages": [{"role": "user", "content": _prompt(row, steps)}]}),
                                       len(steps), "stop")
        assert not isinstance(reply, tp.Rejected), reply
        if planted is None:
            assert reply.verdict == tp.CORRECT  # nothing correct is criticized
            continue
        assert reply.verdict == tp.WRONG and reply.first_wrong_step == planted
        amplified = tp.compose(steps, reply)
        assert multipath.check(row, amplified).valid  # the family's checker: right, grounded, a listed path
        if kind == "wrong answer":
            assert tp.fix_problem(reply) == tp.ANSWER_ONLY  # the stage's own rule: a bare answer is no fix
        else:
            assert tp.fix_problem(reply) is None


def test_a_step_that_leaves_every_path_is_the_first_wrong_one():
    """A right calculation on given numbers that no listed path takes first (by hand: the question's first two
    numbers added, where no path starts with their sum) is where the attempt goes wrong."""
    teacher = CompetentTeacher(ROWS)
    found = 0
    for row in ROWS:
        a, b = (int(n) for n in re.findall(r"\d+", row["question"])[:2])
        key = multipath.step_key(a, "+", b, a + b)
        if any(path[0] == key for path in multipath.path_keys(row)):
            continue
        steps = [f"<<{a}+{b}={a + b}>>", *tp.split_steps(row["answer"])]
        reply = tp.parse_teacher_reply(teacher({"messages": [{"role": "user", "content": _prompt(row, steps)}]}),
                                       len(steps), "stop")
        assert reply.verdict == tp.WRONG and reply.first_wrong_step == 1
        assert multipath.check(row, tp.compose(steps, reply)).valid
        found += 1
    assert found >= 3


def _ask(teacher, prompt: str, seed: int = 0) -> str:
    return teacher({"messages": [{"role": "user", "content": prompt}], "seed": seed})


def test_retrospect_rows_go_back_to_the_planted_error_and_reach_the_answer():
    """Every reply parses, the calculator's proven error before `[back]` is the miscomputation the teacher planted
    (recomputed here from the reply's own planted line), and the final answer is the problem's."""
    from mathforge.builders.stages import retrospect_prompts as rp
    from mathforge.verify.grader import is_correct

    teacher = CompetentTeacher(ROWS)
    for row in ROWS:
        for seed in range(4):
            prompt = render(rp.RETROSPECT_PROMPT, {"question": row["question"], "solution": row["answer"]})
            text = rp.parse_retrospective(_ask(teacher, prompt, seed), "stop")
            assert isinstance(text, str), text
            planted = next(line for line in text.split("\n") if re.fullmatch(r"\d+[-+*/]\d+ = -?\d+", line))
            x, op, y, said = re.fullmatch(r"(\d+)([-+*/])(\d+) = (-?\d+)", planted).groups()
            true = {"+": int(x) + int(y), "-": int(x) - int(y), "*": int(x) * int(y)}.get(op, int(x) // max(int(y), 1))
            assert int(said) != true
            assert rp.error_before_back(text) is not None and said in rp.error_before_back(text)
            assert is_correct(text, str(row["final"]), "auto")


def test_diversify_gives_listed_paths_other_than_the_gold():
    from mathforge.builders.stages.diversify import DIVERSIFY_PROMPT

    teacher = CompetentTeacher(ROWS)
    for row in ROWS:
        replies = {_ask(teacher, render(DIVERSIFY_PROMPT, {"question": row["question"]}), seed) for seed in range(6)}
        assert all(multipath.check(row, reply).valid for reply in replies)
        if len(row["solutions"]) > 1:
            assert row["answer"] not in replies


def test_expand_writes_new_family_problems_that_the_checker_solves():
    from mathforge.builders.stages.expand import SOLVE_PROMPT
    from mathforge.builders.stages.expand_prompts import EXPAND_PROMPT, parse_expansion

    teacher = CompetentTeacher(ROWS)
    questions = {row["question"] for row in ROWS}
    for row in ROWS:
        parsed = parse_expansion(_ask(teacher, render(EXPAND_PROMPT, {"question": row["question"],
                                                                      "solution": row["answer"]}), 1), "stop")
        assert isinstance(parsed, dict) and parsed["problem"] not in questions
        new = teacher.rows[parsed["problem"]]
        assert new["template"] == row["template"] and multipath.check(new, parsed["solution"]).valid
        solved = _ask(teacher, render(SOLVE_PROMPT, {"question": parsed["problem"]}))
        assert multipath.check(new, solved).valid


def test_a_right_calculation_in_a_wrong_step_is_written_again_in_the_fix():
    """Seen in the miniature's run: a student's step 1 `<<3*5=15>> <<3*7=21>>` (the 7 from nowhere). The fix replaces
    the whole step, so it must compute 15 again; before, it went on from 15 and the row used 15 from nowhere."""
    teacher = CompetentTeacher(ROWS)
    for row in ROWS:
        steps = tp.split_steps(row["answer"])
        given = set(re.findall(r"\d+", row["question"]))
        stranger = next(str(n) for n in range(97, 1000) if str(n) not in given)
        steps[0] = f"{steps[0]} <<2*{stranger}={2 * int(stranger)}>>"
        reply = tp.parse_teacher_reply(teacher({"messages": [{"role": "user", "content": _prompt(row, steps)}]}),
                                       len(steps), "stop")
        assert reply.verdict == tp.WRONG and reply.first_wrong_step == 1
        assert multipath.check(row, tp.compose(steps, reply)).valid  # right, grounded, a listed path
