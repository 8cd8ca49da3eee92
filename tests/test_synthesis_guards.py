"""Synthesis stages that cannot teach the wrong thing: tutor and retrospect guards, end to end over real HTTP."""
from __future__ import annotations

import json
import threading
from collections import Counter

import pyarrow.parquet as pq
from conftest import run

from mathforge.testing.fake_openai import FakeOpenAI, prompt_text

# (a, b): "How many apples?" -> a + b. Per problem index, what the teacher does with a wrong attempt:
# 0 an answer-only fix, 1 a fix with a miscomputed annotation (right final answer), 2 a good fix, 3 a good fix
# with a LaTeX answer. A correct attempt is always called wrong (a false critique) with a good fix.
NUMBERS = [(3, 4), (12, 30), (7, 8), (25, 17)]
QUESTIONS = [f"Ava has {a} apples and buys {b} more. How many apples does she have?" for a, b in NUMBERS]
K = 4  # student samples per problem: arrivals alternate correct, wrong, so exactly K/2 of each


def gold(i: int, wrong: int = 0) -> str:
    a, b = NUMBERS[i]
    return f"Ava has {a}+{b} = <<{a}+{b}={a + b + wrong}>>{a + b + wrong} apples.\n#### {a + b + wrong}"


def teacher_fix(i: int, attempt_ok: bool) -> str:
    a, b = NUMBERS[i]
    if attempt_ok or i == 2:
        return gold(i)
    if i == 0:
        return f"#### {a + b}"
    if i == 1:
        return f"Ava has {a}+{b} = <<{a}+{b}={a + b + 1}>>{a + b} apples.\n#### {a + b}"
    return f"Ava has {a}+{b} = {a + b} apples.\nThe answer is \\boxed{{{a + b}}}"


def retrospect_reply(i: int) -> str:
    """Even problems: a [back] with nothing wrong before it; odd ones: a real wrong equation, [back], the fix."""
    a, b = NUMBERS[i]
    if i % 2 == 0:
        return f"{gold(i).splitlines()[0]}\n[back] Re-check step 1: it holds.\n#### {a + b}"
    return (f"Ava has {a}+{b} = {a + b + 1} apples.\n[back] Step 1 is wrong: {a}+{b} = {a + b}, not {a + b + 1}.\n"
            f"Ava has {a + b} apples.\n#### {a + b}")


class Script:
    """The scripted server: student, teacher and retrospect model, told apart by their prompts."""

    def __init__(self):
        self.arrivals, self.lock = Counter(), threading.Lock()

    def __call__(self, payload: dict) -> str:
        text = prompt_text(payload)
        i = next(n for n, q in enumerate(QUESTIONS) if q in text)
        if "Review a student's solution" in text:
            return json.dumps({"verdict": "wrong", "first_wrong_step": 1, "explanation": "Recount the apples.",
                               "correction": teacher_fix(i, "[ok]" in text)})
        if "[back]" in text:
            return retrospect_reply(i)
        with self.lock:
            n, self.arrivals[i] = self.arrivals[i], self.arrivals[i] + 1
        return ("[bad] " + gold(i, wrong=2)) if n % 2 else ("[ok] " + gold(i))


def build(tmp_path, name: str, tutor: str, retrospect: str = "") -> tuple[dict, list[dict], str, list[dict], list[dict]]:
    """Build sample -> tutor -> retrospect -> collect; (stats, corpus rows, card, teacher payloads, records)."""
    source = tmp_path / "gold.jsonl"
    source.write_text("".join(json.dumps({"question": q, "answer": gold(i)}) + "\n" for i, q in enumerate(QUESTIONS)))
    with FakeOpenAI(reply=Script()) as server:
        model = f"{{name: NAME, backend: endpoint, model: scripted, base_url: {server.url}}}"
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(f"""name: {name}
version: 1.0.0
sources:
  - path: {source}
stages:
  - type: sample
    k: {K}
    prompt: {{chat: true, template: "Solve: {{{{ question }}}}"}}
    models: [{model.replace('NAME', 'student')}]
  - type: tutor
    student: student
    structured: false
    teacher: {model.replace('NAME', 'teacher')}
{tutor}
  - type: retrospect
    k: 1
    model: {model.replace('NAME', 'writer')}
{retrospect}
  - type: collect
publish:
  methods: [gold, rft, tutor, retrospect]
output:
  dir: {tmp_path}/{name}/build
  work_dir: {tmp_path}/{name}/work
""")
        result = run("build", recipe, timeout=600)
        assert result.returncode == 0, result.stderr
        teacher = [p for p in server.payloads if "Review a student's solution" in prompt_text(p)]
    out = tmp_path / name / "build"
    records = pq.read_table(next((tmp_path / name / "work" / "tutor").glob("*/records.parquet"))).to_pylist()
    return (json.loads((out / "stats.json").read_text()), pq.read_table(out / "data").to_pylist(),
            (out / "README.md").read_text(), teacher, records)


def test_tutor_select_wrong_reviews_only_wrong_attempts_and_rejects_bad_fixes(tmp_path):
    attempts = 2
    stats, corpus, card, teacher, records = build(
        tmp_path, "wrong", f"    select: wrong\n    attempts: {attempts}\n    reference: true")
    # K/2 wrong samples per problem, of which the first `attempts` are reviewed; never a correct one
    reviewed = min(attempts, K // 2)
    assert len(teacher) == reviewed * len(QUESTIONS)
    assert all("[bad]" in prompt_text(p) and "[ok]" not in prompt_text(p) for p in teacher)
    assert all(gold(i) in prompt_text(p) for p in teacher for i, q in enumerate(QUESTIONS) if q in prompt_text(p))
    assert all(not r["student_correct"] for r in records)

    tutor = stats["tutor"]
    assert tutor["select"] == "wrong" and tutor["attempts"] == reviewed * len(QUESTIONS)
    assert tutor["reviewed_wrong"] == reviewed * len(QUESTIONS) and tutor["reviewed_correct"] == 0
    assert tutor["statuses"] == {"rejected: answer-only fix": reviewed, "rejected: calculator": reviewed,
                                 "ok": 2 * reviewed}
    assert tutor["fixes_accepted"] == 2 * reviewed
    for reason in ("rejected: answer-only fix", "rejected: calculator"):
        assert f"{reason} {reviewed}" in card

    rows = [r for r in corpus if r["method"] == "tutor"]
    assert sorted(r["question"] for r in rows) == sorted([QUESTIONS[2], QUESTIONS[3]] * reviewed)
    assert all(json.loads(r["generation"])["reference_shown"] is True for r in rows)


def test_tutor_mixed_rejects_a_false_critique_unless_allowed(tmp_path):
    stats, corpus, card, teacher, records = build(tmp_path, "mixed", "    select: mixed\n    attempts: 2")
    # wrong_ratio 0.5 of 2: one wrong and one correct attempt per problem; the correct one is called wrong
    assert len(teacher) == 2 * len(QUESTIONS)
    assert Counter("[ok]" in prompt_text(p) for p in teacher) == {True: len(QUESTIONS), False: len(QUESTIONS)}
    tutor = stats["tutor"]
    assert tutor["reviewed_wrong"] == tutor["reviewed_correct"] == len(QUESTIONS)
    assert tutor["statuses"] == {"rejected: false critique": len(QUESTIONS), "rejected: answer-only fix": 1,
                                 "rejected: calculator": 1, "ok": 2}
    assert all(r["status"] == "rejected: false critique" for r in records if r["student_correct"])
    assert f"rejected: false critique {len(QUESTIONS)}" in card
    assert sum(r["method"] == "tutor" for r in corpus) == 2
    assert all(json.loads(r["generation"])["reference_shown"] is False for r in corpus if r["method"] == "tutor")


def test_retrospect_keeps_only_a_real_error_before_back(tmp_path):
    tutor = "    select: any\n    allow_false_critique: true"
    stats, corpus, card, _teacher, _records = build(tmp_path, "retro", tutor)
    retro = stats["retrospect"]
    odd = len(QUESTIONS[1::2])
    assert retro["accepted"] == odd
    assert retro["outcomes"] == {"accepted": odd, "no error before [back]": len(QUESTIONS) - odd}
    rows = [r for r in corpus if r["method"] == "retrospect"]
    assert sorted(r["question"] for r in rows) == sorted(QUESTIONS[1::2])
    for r in rows:
        a, b = NUMBERS[QUESTIONS.index(r["question"])]
        assert json.loads(r["generation"])["error_before_back"] == f"{a}+{b}={a + b + 1}"
    assert f"no error before [back] {len(QUESTIONS) - odd}" in card
    # allow_false_critique: a correct attempt called wrong is kept when the fix is good (select any: first sample)
    assert stats["tutor"]["statuses"].get("rejected: false critique", 0) == 0


def test_grounded_rejects_tutor_and_retrospect_rows_that_use_a_number_from_nowhere(tmp_path, monkeypatch):
    """Problem 3 (25 + 17 apples): the teacher's fix and the retrospect model's recovery reach 42 through 50 - 8,
    right arithmetic and the right answer, but 50 is neither in the question nor computed before (8 is a small
    constant). Without `grounded` those rows are kept (their `ungrounded` column says 1); with it, rejected and
    counted by reason; the good rows are kept either way."""
    nowhere = "Ava has 50-8 = <<50-8=42>>42 apples.\n#### 42"
    fix, retro = teacher_fix, retrospect_reply
    monkeypatch.setitem(globals(), "teacher_fix", lambda i, ok: nowhere if i == 3 and not ok else fix(i, ok))
    monkeypatch.setitem(globals(), "retrospect_reply", lambda i: (
        "Ava has 25+17 = 43 apples.\n[back] Step 1 is wrong: 25+17 is not 43.\n" + nowhere
        if i == 3 else retro(i)))
    tutor = "    select: wrong\n    attempts: 1"
    stats, corpus, card, _teacher, _records = build(tmp_path, "loose", tutor)
    assert stats["tutor"]["statuses"] == {"rejected: answer-only fix": 1, "rejected: calculator": 1, "ok": 2}
    assert stats["retrospect"]["outcomes"] == {"accepted": 2, "no error before [back]": 2}
    loose = {(r["method"], r["question"]): r["ungrounded"] for r in corpus if r["method"] in ("tutor", "retrospect")}
    assert loose == {("tutor", QUESTIONS[2]): 0, ("tutor", QUESTIONS[3]): 1, ("retrospect", QUESTIONS[1]): 0,
                     ("retrospect", QUESTIONS[3]): 1}

    stats, corpus, card, _teacher, records = build(tmp_path, "grounded", tutor + "\n    grounded: true",
                                                   "    grounded: true")
    assert stats["tutor"]["statuses"] == {"rejected: answer-only fix": 1, "rejected: calculator": 1,
                                          "rejected: number from nowhere": 1, "ok": 1}
    assert stats["tutor"]["fixes_accepted"] == 1
    assert [r["fix_accepted"] for r in records if r["status"] == "rejected: number from nowhere"] == [False]
    assert stats["retrospect"]["outcomes"] == {"accepted": 1, "no error before [back]": 2, "number from nowhere": 1}
    assert stats["retrospect"]["accepted"] == 1
    kept = {(r["method"], r["question"]) for r in corpus if r["method"] in ("tutor", "retrospect")}
    assert kept == {("tutor", QUESTIONS[2]), ("retrospect", QUESTIONS[1])}
    assert "rejected: number from nowhere 1" in card and "number from nowhere 1" in card
    assert "it uses no number from nowhere" in card and "rows using a number from nowhere rejected" in card


def test_tutor_select_picks_by_the_verifier_in_sample_order():
    from types import SimpleNamespace

    from mathforge.builders.stages.tutor import select

    correct = [True, False, True, False, False]

    def pick(mode, attempts, ratio=0.5):
        return select(SimpleNamespace(select=mode, attempts=attempts, wrong_ratio=ratio), correct)

    assert pick("wrong", 2) == [1, 3] and pick("wrong", 9) == [1, 3, 4]
    assert pick("any", 2) == [0, 1] and pick("any", 9) == [0, 1, 2, 3, 4]
    assert pick("mixed", 2) == [0, 1] and pick("mixed", 3) == [0, 1, 3]  # 0.5 of 3 rounds up to 2 wrong
    assert pick("mixed", 3, 0.0) == [0, 2] and pick("mixed", 2, 1.0) == [1, 3]


def test_retrospect_error_before_back_needs_a_proven_wrong_equation():
    from mathforge.builders.stages.retrospect_prompts import error_before_back, proven_wrong

    assert proven_wrong("3+4=8") and proven_wrong("1/2+1/3=2/5") and not proven_wrong("3+4=7")
    assert not proven_wrong("x=5") and not proven_wrong("3+4=x")  # unreadable is not proven wrong
    assert error_before_back("She has <<3+4=8>>8.\n[back] 3+4=7\n#### 7") == "3+4=8"
    assert error_before_back("She has 3+4 = 7.\n[back] Check: 2+2 = 5\n#### 7") is None  # the error is after it
    assert error_before_back("Let x = 5.\n[BACK] fine\n#### 5") is None
