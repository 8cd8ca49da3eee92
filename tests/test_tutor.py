"""The tutor stage end to end over real HTTP: a tiny student behind `transformers serve`, a scripted teacher."""
from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
from conftest import run
from mathforge.builders.stages import tutor_prompts

from mathforge.testing import synthetic
from mathforge.testing.fake_openai import FakeOpenAI, FaultPlan


def teacher_script(rows):
    """Per problem, one scripted behaviour of the teacher (by the problem's position in the gold file)."""
    position = {row["question"]: i for i, row in enumerate(rows)}

    def reply(payload):
        prompt = payload["messages"][-1]["content"]
        question = re.search(r"Problem:\n(.*?)\n\n", prompt, re.S).group(1)
        i = position[question]
        answer = int(rows[i]["answer"].rsplit("#### ", 1)[1])
        step = 2 if "Step 2:" in prompt else 1
        fix = f"Add the numbers again carefully.\n#### {answer}"
        if i == 0:
            return json.dumps({"verdict": "correct", "first_wrong_step": None, "explanation": None, "correction": None})
        if i == 1 or i >= 6:  # a fix at step 2 whenever the attempt has a step 2
            return json.dumps({"verdict": "wrong", "first_wrong_step": step, "explanation": "Wrong arithmetic.",
                               "correction": fix})
        if i == 2:
            return json.dumps({"verdict": "wrong", "first_wrong_step": 1, "explanation": "Off by one.",
                               "correction": f"So the total is {answer + 1}.\n#### {answer + 1}"})
        if i == 3:
            return "verdict?? {{{ the student is ... hmm"
        if i == 4:
            return "I'm sorry, but I can't help with that."
        if i == 5:
            return '{"verdict": "wrong", "first_wrong_step": 2, "explanation": "The sum', "length"
        return "unreachable"  # problem 7 is answered with an HTTP 400 by the fault plan

    return reply


def test_tutor_stage_end_to_end(tmp_path, tiny_model):
    rows = synthetic.problems(12, seed=21)
    synthetic.write_gold(rows, tmp_path / "gold.jsonl")
    permanent = FaultPlan(permanent=lambda payload: rows[7]["question"] in payload["messages"][-1]["content"])
    with FakeOpenAI(reply=teacher_script(rows), faults=permanent) as teacher:
        recipe = tmp_path / "tutor.yaml"
        recipe.write_text(f"""name: tutor-test
version: 1.0.0
sources:
  - path: {tmp_path / 'gold.jsonl'}
stages:
  - type: sample
    k: 2
    max_tokens: 120
    models:
      - name: student
        backend: local
        model: {tiny_model}
  - type: tutor
    student: student
    select: any
    max_failure_rate: 0.2
    retry_backoff: 0.05
    teacher:
      name: teacher
      backend: endpoint
      model: teacher-model
      base_url: {teacher.url}
  - type: collect
output:
  dir: {tmp_path}/builds/{{name}}/{{version}}
  work_dir: {tmp_path}/work/{{name}}/{{version}}
""")
        result = run("build", recipe, timeout=600)
        assert result.returncode == 0, result.stderr
        payloads = list(teacher.payloads)
    structured = [p for p in payloads if rows[7]["question"] not in p["messages"][-1]["content"]]
    assert len(structured) == 11 and all(p["response_format"]["type"] == "json_schema" for p in structured)
    # the 400 on problem 7 is retried once without response_format (servers that refuse structured output)
    assert [("response_format" in p) for p in payloads if p not in structured] == [True, False]

    records_path = next((tmp_path / "work" / "tutor-test" / "1.0.0" / "tutor").glob("*/records.parquet"))
    records = {r["idx"]: r for r in pq.read_table(records_path).to_pylist()}
    assert len(records) == 12
    assert records[0]["status"] == "ok" and records[0]["verdict"] == "correct"
    assert records[0]["teacher_agrees"] is False  # the random student is wrong; the verifier says so
    fixed = [1, 6, 8, 9, 10, 11]
    assert any(records[i]["first_wrong_step"] == 2 for i in fixed)  # some attempts have a step 2 to fix
    accepted = []
    for i in fixed:
        r = records[i]
        steps = tutor_prompts.split_steps(r["student_solution"])
        kept = steps[:r["first_wrong_step"] - 1]
        assert r["teacher_agrees"] is True and r["first_wrong_step"] == (2 if len(steps) >= 2 else 1)
        assert r["amplified"] == "\n".join(kept + ["Add the numbers again carefully.", r["amplified"].rsplit("\n", 1)[1]])
        assert r["amplified"].startswith("\n".join(kept))  # the student's steps before the faulty one, verbatim
        if "\x00" in r["amplified"]:  # a NUL in the kept student text ends the answer scan (the reference rule)
            assert r["status"].startswith("fix rejected") and not r["fix_accepted"]
        else:
            assert r["status"] == "ok" and r["fix_accepted"]
            accepted.append(i)
    assert any(records[i]["first_wrong_step"] == 2 for i in accepted)
    assert records[2]["status"].startswith("fix rejected") and not records[2]["fix_accepted"]
    assert records[3]["status"] == "rejected: malformed"
    assert records[4]["status"] == "rejected: refusal"
    assert records[5]["status"] == "rejected: truncated" and records[5]["finish_reason"] == "length"
    assert records[7]["status"].startswith("request failed: http 400")

    build = tmp_path / "builds" / "tutor-test" / "1.0.0"
    corpus = pq.read_table(build / "data").to_pylist()
    tutor_rows = [r for r in corpus if r["method"] == "tutor"]
    assert sorted(r["problem_id"] for r in tutor_rows) == sorted(records[i]["problem_id"] for i in accepted)
    assert all(r["teacher"] == "teacher" and r["model"] == "student" and r["verdict"] == "correct" for r in tutor_rows)
    cpt = [r["text"] for r in pq.read_table(build / "cpt").to_pylist() if r["method"] == "tutor"]
    assert len(cpt) == len(accepted)
    assert all("Teacher's review:" in t and "Corrected solution from step" in t for t in cpt)
    stats = json.loads((build / "stats.json").read_text())["tutor"]
    assert stats["attempts"] == 12 and stats["fixes_accepted"] == len(accepted) and stats["fixes_proposed"] == 7
    assert stats["judged"] == 8 and stats["teacher_verifier_agreement"] == 0.875
    assert sum(stats["faulty_step"].values()) == 7
    card = (build / "README.md").read_text()
    assert "### Tutorship" in card and "87.5%" in card


def test_a_server_without_structured_output_falls_back_to_the_text_parser(tmp_path):
    """The teacher answers 400 to any request carrying response_format; plain text replies are parsed."""
    rows = synthetic.problems(3, seed=5)
    synthetic.write_gold(rows, tmp_path / "gold.jsonl")
    answers = {row["question"]: int(row["answer"].rsplit("#### ", 1)[1]) for row in rows}

    def reply(payload):
        text = payload.get("prompt") or payload["messages"][-1]["content"]
        if "### Instruction" in text:
            return "We add the numbers.\nThen we are done.\n#### 1"
        question = re.search(r"Problem:\n(.*?)\n\n", text, re.S).group(1)
        return (f"Verdict: wrong\nFirst wrong step: 2\nExplanation: the total is off.\n"
                f"Correction: Add all of them.\n#### {answers[question]}")

    refuse_schema = FaultPlan(permanent=lambda payload: "response_format" in payload)
    with FakeOpenAI(reply=reply, faults=refuse_schema) as server:
        spec = f"{{name: m, backend: endpoint, model: m, base_url: {server.url}}}"
        recipe = tmp_path / "r.yaml"
        recipe.write_text(f"name: fb\nversion: 1.0.0\nsources:\n  - path: {tmp_path / 'gold.jsonl'}\nstages:\n"
                          f"  - type: sample\n    k: 2\n    temperature: 0\n    models: [{spec}]\n"
                          f"  - type: tutor\n    student: m\n    select: any\n    teacher: {spec}\n  - type: collect\n"
                          f"output:\n  dir: {tmp_path}/b/{{name}}/{{version}}\n  work_dir: {tmp_path}/w\n")
        result = run("build", recipe)
        assert result.returncode == 0, result.stderr
        assert server.counts["fault:400"] == 3  # one refused structured request per attempt, then plain text
    records = pq.read_table(next((tmp_path / "w" / "tutor").glob("*/records.parquet"))).to_pylist()
    assert [r["status"] for r in records] == ["ok"] * 3 and all(r["fix_accepted"] for r in records)
    assert all(r["amplified"].startswith("We add the numbers.\nAdd all of them.") for r in records)
