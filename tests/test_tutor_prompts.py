"""Tutorship amplification, pure parts: steps, the teacher's prompt and schema, reply parsing, composition."""
from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mathforge.builders.prompts import render
from mathforge.builders.stages import tutor_prompts
from mathforge.builders.stages.tutor_prompts import (
    MAX_CHARS,
    REASONS,
    TEACHER_PROMPT,
    TEACHER_SCHEMA,
    Rejected,
    TeacherReply,
    compose,
    exchange_text,
    numbered,
    parse_teacher_reply,
    prompt_fields,
    response_format,
    split_steps,
)

QUESTION = "Ava has 3 apples and buys 4 boxes of 5 apples. How many apples does she have?"
STUDENT = "Ava buys 4*5 = 21 apples.\nShe has 3+21 = 24 apples.\n#### 24"
STEPS = split_steps(STUDENT)
FIX = "Ava buys 4*5 = 20 apples.\nShe has 3+20 = 23 apples.\n#### 23"


def wrong(step=1, correction=FIX, **extra) -> str:
    return json.dumps({"verdict": "wrong", "first_wrong_step": step, "correction": correction, **extra})


# ----------------------------------------------------------------------------------------------- steps

def test_split_steps_lines_stripped_and_answer_last():
    assert split_steps("  a = 1 \n\n\t b = 2\r\n#### 3\n\n") == ["a = 1", "b = 2", "#### 3"]
    assert split_steps("so the total is 3. #### 3") == ["so the total is 3.", "#### 3"]
    assert split_steps("#### 3") == ["#### 3"]
    assert split_steps("") == [] and split_steps("  \n \n") == []


def test_split_steps_unicode_and_odd_separators():
    assert split_steps("Ärger ≠ 2\u2028x = 3\x85#### 4") == ["Ärger ≠ 2", "x = 3", "#### 4"]
    assert split_steps("日本語のステップ\n#### ５") == ["日本語のステップ", "#### ５"]


@given(st.text())
@settings(max_examples=300)
def test_split_steps_never_raises(text):
    steps = split_steps(text)
    assert all(step and step == step.strip() for step in steps)


def test_split_steps_non_string_is_empty():
    assert split_steps(None) == []  # type: ignore[arg-type]


def test_numbered():
    assert numbered(["a", "b"]) == "Step 1: a\nStep 2: b"
    assert numbered([]) == ""


# ---------------------------------------------------------------------------------------- prompt, schema

def test_prompt_renders_with_fields():
    text = render(TEACHER_PROMPT, prompt_fields(QUESTION, STEPS))
    assert QUESTION in text and "Step 1: Ava buys 4*5 = 21 apples." in text and "Step 3: #### 24" in text
    assert "(1 to 3)" in text and "3 numbered steps" in text
    assert '"verdict"' in text and "####" in text and "REPLACES" in text


def test_prompt_is_strict_about_fields():
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        render(TEACHER_PROMPT, {"question": "q", "steps": "s"})


def test_schema_is_strict_structured_output_compatible():
    props = TEACHER_SCHEMA["properties"]
    assert set(TEACHER_SCHEMA["required"]) == set(props)
    assert TEACHER_SCHEMA["additionalProperties"] is False
    assert props["verdict"]["enum"] == ["correct", "wrong"]
    fmt = response_format(TEACHER_SCHEMA, "teacher_review")
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] is TEACHER_SCHEMA
    json.dumps(fmt)


def test_schema_validates_replies_the_parser_accepts():
    jsonschema = pytest.importorskip("jsonschema")
    good = {"verdict": "wrong", "first_wrong_step": 1, "explanation": "4*5 is 20", "correction": FIX}
    jsonschema.validate(good, TEACHER_SCHEMA)
    assert isinstance(parse_teacher_reply(json.dumps(good), 3), TeacherReply)
    ok = {"verdict": "correct", "first_wrong_step": None, "explanation": None, "correction": None}
    jsonschema.validate(ok, TEACHER_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**ok, "verdict": "maybe"}, TEACHER_SCHEMA)


# ------------------------------------------------------------------------------------------ JSON replies

def test_bare_json_wrong():
    reply = parse_teacher_reply(wrong(1, explanation="4*5 is 20, not 21."), 3)
    assert reply == TeacherReply("wrong", 1, FIX, "4*5 is 20, not 21.")


def test_json_in_fences_and_prose():
    fenced = f"Here is my review:\n```json\n{wrong(2)}\n```\nHope this helps!"
    assert parse_teacher_reply(fenced, 3) == TeacherReply("wrong", 2, FIX)
    prose = f"I checked it {{carefully}}. {wrong(2)} -- end {{x: 1}}"
    assert parse_teacher_reply(prose, 3) == TeacherReply("wrong", 2, FIX)


def test_json_nested_object_and_set_notation_before():
    text = 'Let S = {1, 2}. {"review": ' + wrong(1) + "}"
    assert parse_teacher_reply(text, 3) == TeacherReply("wrong", 1, FIX)


def test_correct_ignores_step_and_correction():
    text = json.dumps({"verdict": "correct", "first_wrong_step": 99, "correction": "junk"})
    assert parse_teacher_reply(text, 3) == TeacherReply("correct", None, None)
    assert parse_teacher_reply('{"verdict": " Correct. "}', 3) == TeacherReply("correct", None, None)


def test_lenient_json_values():
    assert parse_teacher_reply(wrong("2"), 3).first_wrong_step == 2
    assert parse_teacher_reply(wrong("Step 2"), 3).first_wrong_step == 2
    assert parse_teacher_reply(wrong(2.0), 3).first_wrong_step == 2
    lines = json.dumps({"verdict": "incorrect", "first_wrong_step": 1, "correction": FIX.split("\n")})
    assert parse_teacher_reply(lines, 3) == TeacherReply("wrong", 1, FIX)


def test_unicode_json():
    fix = "Ava achète 4×5 = 20 pommes 🍎.\n#### 23"
    reply = parse_teacher_reply(wrong(1, fix, explanation="４×５ ≠ 21"), 3)
    assert reply.correction == fix and reply.explanation == "４×５ ≠ 21"
    escaped = json.dumps({"verdict": "wrong", "first_wrong_step": 1, "correction": fix}, ensure_ascii=True)
    assert parse_teacher_reply(escaped, 3).correction == fix


# ------------------------------------------------------------------------------------------ text replies

def test_text_format():
    text = "Verdict: wrong\nFirst wrong step: 2\nExplanation: 3+21 uses the wrong product.\nCorrection:\n" + FIX
    assert parse_teacher_reply(text, 3) == TeacherReply("wrong", 2, FIX, "3+21 uses the wrong product.")


def test_text_format_case_and_markdown():
    text = "**VERDICT:** Incorrect\n**First Wrong Step:** Step 1\n**Correction:** " + FIX
    assert parse_teacher_reply(text, 3) == TeacherReply("wrong", 1, FIX)
    assert parse_teacher_reply("verdict: CORRECT", 3) == TeacherReply("correct", None, None)
    assert parse_teacher_reply("The verdict is correct.", 3) == TeacherReply("correct", None, None)


def test_text_format_step_is_wrong():
    text = "Step 1 is wrong: 4*5 is 20.\nCorrection: " + FIX
    assert parse_teacher_reply(text, 3) == TeacherReply("wrong", 1, FIX)
    text = "Verdict: wrong. The error is in step 2.\nCorrected solution:\n" + FIX
    assert parse_teacher_reply(text, 3) == TeacherReply("wrong", 2, FIX)


def test_text_format_correction_in_fence():
    text = f"Verdict: wrong\nFirst wrong step: 1\nCorrection:\n```\n{FIX}\n```"
    assert parse_teacher_reply(text, 3).correction == FIX


def test_text_format_correct_with_null_fields():
    text = "Verdict: correct\nFirst wrong step: null\nCorrection: none"
    assert parse_teacher_reply(text, 3) == TeacherReply("correct", None, None)


# ------------------------------------------------------------------------------------------- rejections

@pytest.mark.parametrize("text,finish,reason", [
    (None, None, "empty"),
    ("", None, "empty"),
    ("  \n\t ", None, "empty"),
    (wrong(1), "length", "truncated"),
    ('{"verdict": "wrong", "first_wrong_step": 1, "correction": "Ava buys', "length", "truncated"),
    (None, "length", "truncated"),
    ("I can't help with that.", None, "refusal"),
    ("I cannot review this solution.", None, "refusal"),
    ("As an AI language model, I do not grade homework.", None, "refusal"),
    ("I’m sorry, but I won’t do that.", None, "refusal"),
    ("The student did fine I think.", None, "malformed"),
    ('{"verdict": "wrong", "first_wrong_step": 1, "correction": "Ava buys', None, "malformed"),
    ("{'verdict': 'wrong', 'first_wrong_step': 1}", None, "malformed"),
    ('{"verdict": "maybe", "first_wrong_step": 1}', None, "bad verdict"),
    ('{"verdict": null}', None, "bad verdict"),
    ('{"verdict": 1}', None, "bad verdict"),
    ('{"first_wrong_step": 1, "correction": "#### 2"}', None, "bad verdict"),
    ("Verdict: unsure", None, "malformed"),
    (wrong(0), None, "step out of range"),
    (wrong(4), None, "step out of range"),
    (wrong(-1), None, "step out of range"),
    (wrong(None), None, "step out of range"),
    (wrong(True), None, "step out of range"),
    (wrong("two"), None, "step out of range"),
    (wrong(1.5), None, "step out of range"),
    ('{"verdict": "wrong", "first_wrong_step": 1e400, "correction": "#### 1"}', None, "step out of range"),
    (wrong(1, None), None, "missing correction"),
    (wrong(1, "   "), None, "missing correction"),
    (wrong(1, 42), None, "missing correction"),
    ("Verdict: wrong\nFirst wrong step: 2", None, "missing correction"),
    (wrong(1, "Ava buys 20 apples, so she has 23."), None, "correction without answer"),
])
def test_rejections(text, finish, reason):
    assert parse_teacher_reply(text, 3, finish) == Rejected(reason)
    assert reason in REASONS


def test_a_correction_may_end_in_any_answer_format_the_shared_grader_reads():
    for end in ("#### 23", "The answer is \\boxed{23}", "The answer is \\boxed{\\frac{1}{2}}", "The answer is 23."):
        reply = parse_teacher_reply(wrong(2, "Ava buys 4 boxes, so 20 more. " + end), 3, None)
        assert reply.verdict == "wrong" and reply.first_wrong_step == 2, end


def test_refusal_only_when_nothing_parses():
    text = "I'm sorry, I made a mistake earlier.\nVerdict: correct"
    assert parse_teacher_reply(text, 3) == TeacherReply("correct", None, None)


def test_stop_finish_reason_accepted():
    assert isinstance(parse_teacher_reply(wrong(1), 3, "stop"), TeacherReply)


def test_no_steps_means_every_step_out_of_range():
    assert parse_teacher_reply(wrong(1), 0) == Rejected("step out of range")
    assert parse_teacher_reply('{"verdict": "correct"}', 0) == TeacherReply("correct", None, None)


def test_huge_input_is_capped_and_fast():
    junk = "x" * (5 * MAX_CHARS)
    start = time.perf_counter()
    assert parse_teacher_reply(wrong(1) + junk, 3) == TeacherReply("wrong", 1, FIX)
    assert parse_teacher_reply(junk + wrong(1), 3) == Rejected("malformed")  # beyond the cap: not read
    assert parse_teacher_reply("{" * (2 * MAX_CHARS), 3) == Rejected("malformed")
    assert parse_teacher_reply('{"a":' * 50_000, 3) == Rejected("malformed")
    assert parse_teacher_reply("[" * 50_000 + wrong(1), 3) == TeacherReply("wrong", 1, FIX)
    assert parse_teacher_reply(json.dumps({"verdict": "wrong", "first_wrong_step": 1, "correction": "9" * 9000}),
                               3) == Rejected("correction without answer")
    assert parse_teacher_reply('{"verdict": "wrong", "first_wrong_step": ' + "9" * 5000 + "}", 3) \
        == Rejected("malformed")  # int too long for Python's int(str) limit: not JSON we accept
    assert time.perf_counter() - start < 10


def test_deeply_nested_json_does_not_crash():
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    assert parse_teacher_reply(deep, 3) == Rejected("malformed")


@given(st.text(max_size=2000), st.integers(-5, 50), st.sampled_from([None, "stop", "length", "content_filter"]))
@settings(max_examples=400, deadline=None)
def test_parse_never_raises_on_text(text, n_steps, finish):
    result = parse_teacher_reply(text, n_steps, finish)
    assert isinstance(result, (TeacherReply, Rejected))
    if isinstance(result, Rejected):
        assert result.reason in REASONS
    elif result.verdict == "wrong":
        assert 1 <= result.first_wrong_step <= n_steps and "####" in result.correction


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
TEACHERISH = st.fixed_dictionaries({}, optional={
    "verdict": st.sampled_from(["correct", "wrong", "Wrong", "incorrect", "", "x"]) | JSON_VALUES,
    "first_wrong_step": st.integers(-3, 10) | JSON_VALUES,
    "correction": st.sampled_from(["#### 5", "a\n#### 1,000", "no answer"]) | JSON_VALUES,
    "explanation": JSON_VALUES,
})


@given(TEACHERISH, st.text(max_size=40), st.text(max_size=40), st.integers(0, 6))
@settings(max_examples=400, deadline=None)
def test_parse_never_raises_on_json_like(obj, before, after, n_steps):
    result = parse_teacher_reply(before + json.dumps(obj) + after, n_steps)
    assert isinstance(result, (TeacherReply, Rejected))


# ---------------------------------------------------------------------------------------------- compose

def test_compose_keeps_prefix_verbatim():
    steps = ["Ava has  3 apples  (given).", "She buys 4*5 = 21 apples.", "3+21 = 24", "#### 24"]
    reply = TeacherReply("wrong", 2, "  She buys 4*5 = 20 apples.\n3+20 = 23\n#### 23  \n")
    assert compose(steps, reply) == "Ava has  3 apples  (given).\nShe buys 4*5 = 20 apples.\n3+20 = 23\n#### 23"


def test_compose_first_step_wrong_and_last_step_wrong():
    assert compose(STEPS, TeacherReply("wrong", 1, FIX)) == FIX
    last = compose(STEPS, TeacherReply("wrong", 3, "#### 23"))
    assert last == "Ava buys 4*5 = 21 apples.\nShe has 3+21 = 24 apples.\n#### 23"


def test_compose_correct_is_unchanged():
    assert compose(STEPS, TeacherReply("correct", None, None)) == STUDENT


def test_compose_drops_copied_step_labels():
    reply = TeacherReply("wrong", 2, "Step 2: She has 3+21 = 24.\n**Step 3:** So\n#### 24")
    assert compose(STEPS, reply) == "Ava buys 4*5 = 21 apples.\nShe has 3+21 = 24.\nSo\n#### 24"


def test_compose_rejects_inconsistent_reply():
    with pytest.raises(ValueError):
        compose(STEPS, TeacherReply("wrong", 4, FIX))
    with pytest.raises(ValueError):
        compose(STEPS, TeacherReply("wrong", 1, None))


@given(st.lists(st.text(min_size=1).map(str.strip).filter(bool), min_size=1, max_size=8), st.data())
@settings(max_examples=200, deadline=None)
def test_compose_property_prefix(steps, data):
    step = data.draw(st.integers(1, len(steps)))
    text = json.dumps({"verdict": "wrong", "first_wrong_step": step, "correction": "fixed\n#### 7"})
    reply = parse_teacher_reply(text, len(steps))
    out = compose(steps, reply)
    prefix = "\n".join(steps[: step - 1])
    assert out.startswith(prefix) and out.endswith("fixed\n#### 7")


def test_end_to_end_round_trip():
    reply = parse_teacher_reply(f"```json\n{wrong(1, explanation='4*5 = 20')}\n```", len(STEPS))
    amplified = compose(STEPS, reply)
    assert amplified == FIX


# --------------------------------------------------------------------------------------------- exchange

def test_exchange_text_wrong():
    """The paper's form: the attempt up to and including the faulty step, the error, then the continuation."""
    reply = TeacherReply("wrong", 2, "She has 3+20 = 23 apples.\n#### 23", "21 should be 20")
    steps = ["Ava has 3 apples.", "She buys 4*5 = 21 apples.", "She has 3+21 = 24 apples.", "#### 24"]
    text = exchange_text(QUESTION, steps, reply)
    assert text == (f"Problem:\n{QUESTION}\n\n"
                    "Student's attempt:\nStep 1: Ava has 3 apples.\nStep 2: She buys 4*5 = 21 apples.\n\n"
                    "Teacher's review:\nStep 2 is wrong. 21 should be 20\n"
                    "Step 1 is right; the solution continues from step 2.\n\n"
                    "Corrected solution from step 2:\nShe has 3+20 = 23 apples.\n#### 23\n")
    assert text.count("Ava has 3 apples.") == 1 and "3+21" not in text  # nothing after the faulty step, no repeats


def test_exchange_text_first_step_and_correct():
    text = exchange_text(QUESTION, STEPS, TeacherReply("wrong", 1, "Step 1: " + FIX))
    assert "Step 1 is wrong." in text and "right;" not in text and "She has 3+21" not in text
    assert text.rstrip().endswith("Corrected solution from step 1:\n" + FIX)  # copied step labels are dropped
    text = exchange_text(QUESTION, ["a", "b", "c", "#### 1"], TeacherReply("wrong", 3, "d\n#### 2"))
    assert "Steps 1 to 2 are right" in text and "Step 3: c" in text and "#### 1" not in text
    ok = exchange_text(QUESTION, STEPS, TeacherReply("correct", None, None))
    assert "The solution is correct." in ok and "Corrected solution" not in ok


# ------------------------------------------------------------------------------------------ fix checks

@pytest.mark.parametrize("fix", ["#### 72", "\\boxed{72}", "The answer is 72", "The answer is 72.\n#### 72",
                                 "$\\boxed{72}$.", "72", "**72**", "Final answer: 72", "...\n#### 72"])
def test_an_answer_only_fix_has_no_new_steps(fix):
    assert tutor_prompts.new_steps(fix) == []
    assert tutor_prompts.fix_problem(TeacherReply("wrong", 1, fix)) == tutor_prompts.ANSWER_ONLY
    assert tutor_prompts.fix_problem(TeacherReply("wrong", 1, fix), min_new_steps=0) is None


def test_new_steps_count_the_work_not_the_answer_line():
    assert tutor_prompts.new_steps(FIX) == ["Ava buys 4*5 = 20 apples.", "She has 3+20 = 23 apples."]
    assert tutor_prompts.fix_problem(TeacherReply("wrong", 1, FIX), min_new_steps=2) is None
    assert tutor_prompts.fix_problem(TeacherReply("wrong", 1, FIX), min_new_steps=3) == tutor_prompts.ANSWER_ONLY


def test_a_miscomputed_fix_fails_the_calculator():
    for fix in ("She has <<3+4=8>>8 apples.\n#### 8", "She has 3+4 = 8 apples.\n#### 8"):
        assert tutor_prompts.miscomputed(fix) == ["3+4=8"]
        assert tutor_prompts.fix_problem(TeacherReply("wrong", 1, fix)) == tutor_prompts.CALCULATOR
    assert tutor_prompts.miscomputed(FIX) == [] and tutor_prompts.fix_problem(TeacherReply("wrong", 1, FIX)) is None


def test_prompt_shows_the_reference_only_when_given():
    assert "reference" not in prompt_fields(QUESTION, STEPS)
    shown = render(TEACHER_PROMPT, prompt_fields(QUESTION, STEPS, "GOLD SOLUTION"))
    assert "A reference solution" in shown and "GOLD SOLUTION" in shown
    assert "reference solution" not in render(TEACHER_PROMPT, prompt_fields(QUESTION, STEPS))


LATEX_SOLUTION = r"""First, the area is
\[
A = \frac{1}{2} \cdot 6 \cdot 4
\]
so $A = 12$.
Then the perimeter is $6 + 4 + \sqrt{52}$.
$$ P \approx 17.2 $$
\begin{align}
x &= 1 \\
y &= 2
\end{align}
#### 12"""


def test_numbering_survives_multiline_latex_steps_and_composition_keeps_them_verbatim():
    steps = tutor_prompts.split_steps(LATEX_SOLUTION)
    assert len(steps) == 4 and steps[0].endswith("\\]") and "\\end{align}" in steps[2] and steps[3] == "#### 12"
    text = tutor_prompts.numbered(steps)
    starts = [line for line in text.splitlines() if line.startswith("Step ")]
    assert [line.split(":")[0] for line in starts] == ["Step 1", "Step 2", "Step 3", "Step 4"]
    assert starts[2] == "Step 3: Then the perimeter is $6 + 4 + \\sqrt{52}$."
    reply = tutor_prompts.TeacherReply("wrong", 3, "Then the perimeter is $6 + 4 + \\sqrt{52} \\approx 17.2$.\n#### 12")
    amplified = tutor_prompts.compose(steps, reply)
    kept = "\n".join(LATEX_SOLUTION.splitlines()[:5])  # the first two steps, every line as written
    assert amplified.startswith(kept + "\n") and amplified.endswith("#### 12")
    assert tutor_prompts.split_steps(amplified)[:2] == steps[:2]  # renumbering the result keeps the same steps
