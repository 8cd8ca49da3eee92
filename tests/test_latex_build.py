"""A build on LaTeX answers (fractions, radicals) through a scripted server: sample -> tutor -> diversify -> collect."""
from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
from conftest import run

from mathforge.testing.fake_openai import FakeOpenAI, prompt_text

# question, gold answer, two correct solutions (different equations; the second spells the answer differently),
# and a wrong one. Correctness is by hand: 1/2+1/3 = 5/6, sqrt 8 = 2 sqrt 2, 3/4-1/6 = 7/12, sqrt 50 = 5 sqrt 2,
# 2/3*3/5 = 2/5, sqrt(12)/2 = sqrt 3.
PROBLEMS = [
    ("What is 1/2 + 1/3?", r"\frac{5}{6}",
     ["1/2 + 1/3 = 5/6\n[ok] The answer is \\boxed{\\frac{5}{6}}",
      "3/6 + 2/6 = 5/6\n[ok] The answer is \\boxed{\\dfrac{5}{6}}",
      "1/2 + 1/3 = 2/5\n[bad] The answer is \\boxed{\\frac{2}{5}}"]),
    ("Simplify the square root of 8.", r"2\sqrt{2}",
     ["8 = 4*2, so the root is 2 times root 2.\n[ok] \\boxed{2\\sqrt{2}}",
      "[ok] Final Answer: The final answer is $\\sqrt{8}$. I hope it is correct.",
      "[bad] \\boxed{4\\sqrt{2}}"]),
    ("What is 3/4 - 1/6?", r"\frac{7}{12}",
     ["9/12 - 2/12 = 7/12\n[ok] \\boxed{\\frac{7}{12}}",
      "3/4 - 1/6 = 7/12\n[ok] So the answer is 0.5833333333333334.",   # a float64 printed in full
      "[bad] The answer is \\boxed{0.58}."]),                           # a rounding is not the answer
    ("Simplify the square root of 50.", r"5\sqrt{2}",
     ["50 = 25*2\n[ok] \\boxed{5\\sqrt{2}}", "[ok] \\boxed{\\sqrt{2}\\cdot 5}", "[bad] \\boxed{2\\sqrt{5}}"]),
    ("What is 2/3 times 3/5?", r"\frac{2}{5}",
     ["2/3 * 3/5 = 6/15\n[ok] \\boxed{\\frac{2}{5}}", "[ok] \\boxed{0.4}", "[bad] \\boxed{\\frac{5}{9}}"]),
    ("Simplify the square root of 12, divided by 2.", r"\sqrt{3}",
     ["12 = 4*3\n[ok] \\boxed{\\sqrt{3}}", "[ok] \\boxed{\\frac{2\\sqrt{3}}{2}}", "[bad] \\boxed{\\sqrt{6}}"]),
]
BAD_FIX = 1  # the teacher's correction for this problem reaches a wrong answer


def scripted(payload: dict) -> str:
    text = prompt_text(payload)
    index = next(i for i, (q, *_) in enumerate(PROBLEMS) if q in text)
    question, gold, solutions = PROBLEMS[index]
    if "Review a student's solution" in text or "teacher" in text.lower():  # the tutor's teacher
        if "[ok]" in text:
            return json.dumps({"verdict": "correct", "first_wrong_step": None, "explanation": None,
                               "correction": None})
        answer = r"4\sqrt{3}" if index == BAD_FIX else gold
        return json.dumps({"verdict": "wrong", "first_wrong_step": 1, "explanation": "The result is wrong.",
                           "correction": f"Recompute it carefully.\nThe answer is \\boxed{{{answer}}}"})
    if "in a way that differs" in text:  # diversify: a right different solution for even problems, else a wrong one
        return solutions[1].replace("[ok]", "[div]") if index % 2 == 0 else solutions[2]
    return solutions[int(payload.get("seed") or 0) % 3]  # the student: the seed picks a solution


def test_latex_answers_through_sample_tutor_diversify_collect(tmp_path):
    gold = tmp_path / "latex.jsonl"
    gold.write_text("".join(json.dumps({"problem": q, "solution": a}) + "\n" for q, a, _ in PROBLEMS))
    with FakeOpenAI(reply=scripted) as server:
        model = f"{{name: NAME, backend: endpoint, model: scripted, base_url: {server.url}}}"
        recipe = tmp_path / "latex.yaml"
        recipe.write_text(f"""name: latex
version: 1.0.0
sources:
  - path: {gold}
    answer_kind: latex
stages:
  - type: sample
    k: 6
    prompt: {{chat: true, template: "{{{{ question }}}}"}}
    models: [{model.replace('NAME', 'student')}]
  - type: tutor
    student: student
    select: any
    structured: false
    teacher: {model.replace('NAME', 'teacher')}
  - type: diversify
    k: 1
    model: {model.replace('NAME', 'writer')}
  - type: collect
    dedup: canonical
publish:
  methods: [gold, rft, tutor, diversify]
output:
  dir: {tmp_path}/build
  work_dir: {tmp_path}/work
""")
        result = run("build", recipe, timeout=600)
    assert result.returncode == 0, result.stderr
    samples = pq.read_table(next((tmp_path / "work" / "samples").glob("student-*/samples.parquet"))).to_pylist()
    corpus = pq.read_table(tmp_path / "build" / "data").to_pylist()
    stats = json.loads((tmp_path / "build" / "stats.json").read_text())
    by_method = {m: [r for r in corpus if r["method"] == m] for m in ("gold", "rft", "tutor", "diversify")}

    # rft: only [ok] samples survive, every problem with an [ok] sample keeps at least one; [bad] ones are counted
    assert by_method["rft"] and all("[ok]" in r["solution"] for r in by_method["rft"])
    solved = {s["problem_id"] for s in samples if "[ok]" in s["text"]}
    assert {r["problem_id"] for r in by_method["rft"]} == solved
    assert stats["rejected"].get("wrong", 0) == sum("[bad]" in s["text"] for s in samples)
    assert all(r["reference_answer"] == PROBLEMS[[q for q, *_ in PROBLEMS].index(r["question"])][1]
               for r in by_method["gold"])

    # tutor: the first sample of each problem is reviewed; wrong ones are fixed unless the fix is itself wrong
    first = {s["problem_id"]: s for s in samples if s["sample_index"] == 0}
    question_of = {r["problem_id"]: r["question"] for r in by_method["gold"]}
    expected_fixes = {pid for pid, s in first.items()
                      if "[bad]" in s["text"] and question_of[pid] != PROBLEMS[BAD_FIX][0]}
    assert {r["problem_id"] for r in by_method["tutor"]} == expected_fixes
    assert stats["tutor"]["fixes_proposed"] == sum("[bad]" in s["text"] for s in first.values())
    assert stats["tutor"]["fixes_accepted"] == len(expected_fixes)

    # diversify: a right, differently spelled solution is kept for even problems; wrong ones are counted
    assert sorted(r["question"] for r in by_method["diversify"]) == sorted(q for q, *_ in PROBLEMS[::2])
    assert stats["diversify"]["outcomes"]["wrong answer"] == len(PROBLEMS[1::2])
    assert all(re.search(r"\[div\]", r["solution"]) for r in by_method["diversify"])
