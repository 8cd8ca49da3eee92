"""`mathforge eval` over HTTP against a scripted server: metrics equal those derived from the request seeds."""
from __future__ import annotations

import json

import pytest

from conftest import run
from mathforge.eval.metrics import pass_at_k

from mathforge.testing import synthetic
from mathforge.testing.fake_openai import FakeOpenAI, solver_reply


def test_eval_metrics_match_the_seeds(tmp_path):
    rows = synthetic.problems(10, seed=51)
    synthetic.write_gold(rows, tmp_path / "bench.jsonl")
    with FakeOpenAI(reply=solver_reply(rows)) as server:  # seed % 3 == 0 -> answer + 1; seed % 2 -> order
        result = run("eval", "fake-model", "--benchmark", tmp_path / "bench.jsonl", "--n", "4", "--temperature", "0.7",
                     "--backend", "endpoint", "--base-url", server.url, "--out", tmp_path / "report")
        assert result.returncode == 0, result.stderr
        payloads = list(server.payloads)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["questions"] == 10 and report["requests"] == 40
    by_question = {}
    for p in payloads:
        question = p["prompt"].split("### Instruction:\n", 1)[1].split("\n\n### Response:")[0]
        by_question.setdefault(question, []).append(int(p["seed"]))
    assert len(by_question) == 10
    expected = {k: 0.0 for k in ("1", "2", "4")}
    distinct = 0
    for seeds in by_question.values():
        correct = [s % 3 != 0 for s in seeds]
        for k in expected:
            expected[k] += pass_at_k(4, sum(correct), int(k)) / 10
        distinct += len({s % 2 for s in seeds if s % 3 != 0})
    assert report["pass_at_k"] == {k: round(v, 4) for k, v in expected.items()}
    assert report["distinct_paths_mean"] == round(distinct / 10, 4)
    assert (tmp_path / "report" / "report.md").exists() and (tmp_path / "report" / "plots" / "pass_at_k.png").exists()
    assert "maj1@k" in result.stdout


# Four questions, four scripted samples each (by sample index). Answers spelled differently but equal vote together:
# question 0 is right by majority only when 0.5, \frac12 and \frac{1}{2} are one class (by spelling, 1/3 would win).
SCRIPT = {
    "What is one half?": (r"\frac{1}{2}", [r"\boxed{1/3}", r"So it is $\boxed{0.5}$.", r"\boxed{\frac12}",
                                           "Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct."]),
    "What is twelve?": ("12", [r"\boxed{12}", r"\boxed{13}", "The answer is 13.", r"\boxed{13.0}"]),
    "What is the square root of two?": (r"\sqrt{2}", ["I think it is hard", r"\boxed{\sqrt 2}", r"\boxed{2^{1/2}}",
                                                       r"\boxed{1.41}"]),
    "What is seven?": ("7", [r"\boxed{8}", "8", "The answer is 8.", r"\boxed{7}"]),
}
# By hand: the grader's verdict of each sample above (1.41 is a rounding of sqrt 2, "I think it is hard" no answer).
CORRECT = {"What is one half?": [0, 1, 1, 1], "What is twelve?": [1, 0, 0, 0],
           "What is the square root of two?": [0, 1, 1, 0], "What is seven?": [0, 0, 0, 1]}
# maj1@k by hand, per question: the largest class of equal answers among the first k (ties: the class seen first).
# k=1: 1/3 | 12 | no answer | 8;  k=2: tie 1/3 vs 0.5 -> 1/3 | tie 12 vs 13 -> 12 | sqrt 2 | 8;
# k=4: {0.5, \frac12, \frac{1}{2}} | {13, 13, 13.0} | {sqrt 2, 2^(1/2)} | {8, 8, 8}
MAJ = {1: [0, 1, 0, 0], 2: [0, 1, 1, 0], 4: [1, 0, 1, 0]}


def scripted_bench(tmp_path, n=4):
    """The benchmark file and a reply that answers each question's sample i with SCRIPT[question][1][i]."""
    from mathforge.builders.generation.runner import sample_seed
    from mathforge.builders.sources import problem_id

    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"question": q, "answer": gold}) + "\n" for q, (gold, _) in SCRIPT.items()))
    by_seed = {sample_seed(0, "model", problem_id("bench", q), i): replies[i]
               for q, (_, replies) in SCRIPT.items() for i in range(n)}
    return bench, lambda payload: by_seed[int(payload["seed"])]


def test_eval_grades_with_the_shared_grader_votes_by_equivalence_and_reports_standard_errors(tmp_path):
    import statistics
    from math import comb, sqrt

    bench, reply = scripted_bench(tmp_path)
    with FakeOpenAI(reply=reply) as server:
        result = run("eval", "fake-model", "--benchmark", bench, "--answer-kind", "latex", "--n", "4",
                     "--temperature", "0.7", "--backend", "endpoint", "--base-url", server.url,
                     "--out", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["questions"] == 4 and report["answer_kind"] == "latex" and report["shots"] == 0

    # expected values from the hand-made verdicts: binomial SE for the accuracy, SE over questions for the rest
    assert report["accuracy"] == 0.25 and report["accuracy_se"] == round(sqrt(0.25 * 0.75 / 4), 4) == 0.2165
    for k, values in MAJ.items():
        assert report["maj_at_k"][str(k)] == sum(values) / 4
        assert report["maj_at_k_se"][str(k)] == round(statistics.pstdev(values) / 2, 4)
    assert report["maj_at_k"] == {"1": 0.25, "2": 0.5, "4": 0.5}
    for k in (1, 2, 4):
        per_question = [1 - comb(4 - sum(c), k) / comb(4, k) if 4 - sum(c) >= k else 1.0 for c in CORRECT.values()]
        assert report["pass_at_k"][str(k)] == round(sum(per_question) / 4, 4)
        assert report["pass_at_k_se"][str(k)] == round(statistics.pstdev(per_question) / 2, 4)
    assert report["pass_at_k"] == {"1": 0.4375, "2": 0.7083, "4": 1.0}
    assert report["pass_at_k_se"] == {"1": 0.1036, "2": 0.1083, "4": 0.0}
    majorities = {q["gold"]: (q["majority"], q["majority_correct"]) for q in report["per_question"]}
    assert majorities == {r"\frac{1}{2}": ("0.5", True), "12": ("13", False), r"\sqrt{2}": (r"\sqrt 2", True),
                          "7": ("8", False)}

    # every sample, graded, in samples.jsonl
    rows = [json.loads(line) for line in (tmp_path / "report" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 16
    assert {(r["question"], r["sample_index"]): r["text"] for r in rows} == \
        {(q, i): text for q, (_, replies) in SCRIPT.items() for i, text in enumerate(replies)}
    for r in rows:
        assert (r["verdict"] == "correct") == bool(CORRECT[r["question"]][r["sample_index"]])
        assert r["gold"] == SCRIPT[r["question"]][0] and len(r["problem_id"]) == 16
    hard = next(r for r in rows if r["text"] == "I think it is hard")
    assert hard["answer"] is None and hard["verdict"] == "unparseable" and hard["reason"] == "no final answer found"
    assert next(r for r in rows if r["text"] == r"\boxed{13.0}")["answer"] == "13.0"
    assert not list((tmp_path / "report").glob(".*.tmp"))

    md = (tmp_path / "report" / "report.md").read_text()
    assert "25.00% ± 21.65%" in md and "| 2 | 50.00% ± 25.00% | 70.83% ± 10.83% |" in md
    assert "25.00% ± 21.65%" in result.stdout and "70.83% ± 10.83%" in result.stdout


def last_instruction(payload: dict) -> str:
    return payload["prompt"].rsplit("### Instruction:\n", 1)[1].split("\n\n### Response:")[0]


def test_eval_few_shot_prompt_and_several_benchmarks_in_one_call(tmp_path):
    # two GSM8K-style files with the same stem (reports gsm/ and gsm-2/), the RFT 8-shot prompt cut to 2 shots
    gsm, other = tmp_path / "gsm.jsonl", tmp_path / "other" / "gsm.jsonl"
    gsm.write_text(json.dumps({"question": "Tom has 3 apples and buys 4. How many now?", "answer": "3 + 4 = 7\n#### 7"})
                   + "\n" + json.dumps({"question": "Ann has 10 pens and loses 4. How many now?",
                                        "answer": "10 - 4 = 6\n#### 6"}) + "\n")
    other.parent.mkdir()
    other.write_text(json.dumps({"question": "Bob has 2 cats and gets 2. How many now?", "answer": "#### 4"}) + "\n")

    def reply(payload):  # Tom and Bob right, Ann wrong; then the model runs on into a new exemplar
        answer = {"Tom": 7, "Ann": 5, "Bob": 4}[last_instruction(payload).split()[0]]
        return f"\nSo it is {answer}.\n#### {answer}\n\n### Instruction:\nWhat is 2+2?\n\n### Response:\n#### 6"

    with FakeOpenAI(reply=reply) as server:
        result = run("eval", "fake-model", "--benchmark", gsm, "--benchmark", other, "--shots", "2",
                     "--backend", "endpoint", "--base-url", server.url, "--out", tmp_path / "out")
        payloads = list(server.payloads)
    assert result.returncode == 0, result.stderr
    ann = next(p for p in payloads if last_instruction(p).startswith("Ann"))
    assert ann["prompt"] == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nThere are 15 trees in the grove. Grove workers will plant trees in the grove today. "
        "After they are done, there will be 21 trees. How many trees did the grove workers plant today?\n\n"
        "### Response:\nThere are 15 trees originally. Then there were 21 trees after some more were planted. So "
        "there must have been 21 - 15 = 6.\n#### 6\n\n### Instruction:\nIf there are 3 cars in the parking lot and 2 "
        "more cars arrive, how many cars are in the parking lot?\n\n### Response:\nThere are originally 3 cars. 2 more "
        "cars arrive. 3 + 2 = 5.\n#### 5\n\n### Instruction:\nAnn has 10 pens and loses 4. How many now?\n\n"
        "### Response:")
    assert len(payloads) == 3 and all(p["stop"] == ["### Instruction:"] for p in payloads)

    # one report per benchmark; the text after the stop string is cut before grading
    first = json.loads((tmp_path / "out" / "gsm" / "report.json").read_text())
    second = json.loads((tmp_path / "out" / "gsm-2" / "report.json").read_text())
    assert (first["answer_kind"], first["shots"], first["accuracy"], first["accuracy_se"]) == ("auto", 2, 0.5, 0.3536)
    assert (second["questions"], second["accuracy"], second["accuracy_se"]) == (1, 1.0, 0.0)
    samples = [json.loads(line) for line in (tmp_path / "out" / "gsm" / "samples.jsonl").read_text().splitlines()]
    assert all("What is 2+2" not in s["text"] for s in samples)
    assert [(s["answer"], s["verdict"]) for s in samples] == [("7", "correct"), ("5", "wrong")]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(r["name"], r["accuracy"], r["accuracy_se"]) for r in summary] == [("gsm", 0.5, 0.3536),
                                                                               ("gsm-2", 1.0, 0.0)]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| gsm | 2 | 50.00% ± 35.36% |" in md and "[gsm-2/report.md](gsm-2/report.md)" in md
    assert "50.00% ± 35.36%" in result.stdout and "2 benchmarks" in result.stdout


def test_eval_minerva_prompt_for_latex_answers(tmp_path):
    tex = tmp_path / "tex.jsonl"
    tex.write_text(json.dumps({"question": "Simplify $\\frac{2}{4}$.", "answer": "\\boxed{\\frac{1}{2}}"}) + "\n")
    reply = ("We have $\\frac{2}{4}=\\frac{1}{2}$.\nFinal Answer: The final answer is $0.5$. I hope it is correct."
             "\n\nProblem:\nWhat is $1+1$?\n\nSolution:\nFinal Answer: The final answer is $3$. I hope it is correct.")
    with FakeOpenAI(reply=lambda payload: reply) as server:
        result = run("eval", "fake-model", "--benchmark", tex, "--answer-kind", "latex", "--shots", "1",
                     "--backend", "endpoint", "--base-url", server.url, "--out", tmp_path / "out")
        (payload,) = server.payloads
    assert result.returncode == 0, result.stderr
    assert payload["prompt"] == (
        "Problem:\nFind the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.}\n\nSolution:\nThe "
        "expressions inside each square root must be non-negative. Therefore, $x-2 \\ge 0$, so $x\\ge2$, and "
        "$5 - x \\ge 0$, so $x \\le 5$. Also, the denominator cannot be equal to zero, so $5-x>0$, which gives $x<5$. "
        "Therefore, the domain of the expression is $\\boxed{[2,5)}$.\nFinal Answer: The final answer is $[2,5)$. I "
        "hope it is correct.\n\nProblem:\nSimplify $\\frac{2}{4}$.\n\nSolution:")
    assert payload["stop"] == ["Problem:"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (sample,) = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert (sample["answer"], sample["verdict"], sample["gold"]) == ("0.5", "correct", "\\frac{1}{2}")
    assert (report["answer_kind"], report["accuracy"], report["accuracy_se"]) == ("latex", 1.0, 0.0)


def test_eval_refuses_impossible_prompts_before_sampling(tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": "Q?", "answer": "#### 1"}) + "\n")
    common = ("--backend", "endpoint", "--base-url", "http://127.0.0.1:9", "--out", tmp_path / "out")
    too_many = run("eval", "m", "--benchmark", bench, "--answer-kind", "latex", "--shots", "5", *common)
    assert too_many.returncode == 2 and "--shots" in too_many.stderr and "4 exemplars" in too_many.stderr
    chat = run("eval", "m", "--benchmark", bench, "--shots", "1", "--chat", *common)
    assert chat.returncode == 2 and "--chat" in chat.stderr
    kind = run("eval", "m", "--benchmark", bench, "--answer-kind", "tex", *common)
    assert kind.returncode == 2 and "--answer-kind" in kind.stderr
    assert not (tmp_path / "out").exists()


def test_few_shot_exemplars_are_read_by_the_grader():
    from mathforge.eval.prompts import GSM8K_SHOTS, MINERVA_SHOTS

    from mathforge.verify.grader import answer_of

    assert [answer_of(a, "gsm8k") for _, a in GSM8K_SHOTS] == ["6", "5", "39", "8", "9", "29", "33", "8"]
    assert [answer_of(a, "latex") for _, a in MINERVA_SHOTS] == ["[2,5)", "24", "16", "-\\frac{2}{3}"]
    assert all("The answer is" not in a and a.count("####") == 1 for _, a in GSM8K_SHOTS)


def test_one_question_past_the_context_window_fails_alone_and_quickly(tmp_path, tiny_model):
    import time

    import pyarrow.parquet as pq

    # the reproducer: five questions, one of 200,000 characters, on a model with a 1,024-token window
    rows = synthetic.problems(5, seed=3)
    long_question = "Ava has 5 apples and gets 3 more. " * 5_883
    assert len(long_question) >= 200_000
    rows[3] = {**rows[3], "question": long_question}
    bench = tmp_path / "bench.jsonl"
    synthetic.write_gold(rows, bench)
    started = time.monotonic()
    result = run("eval", tiny_model, "--benchmark", bench, "--max-tokens", "8", "--out", tmp_path / "report")
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert seconds < 120  # one attempt, no batch-wide failure and retries with backoff
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["questions"] == 5 and report["requests"] == 5 and report["failed_requests"] == 1
    assert [q["failed"] for q in report["per_question"]] == [0, 0, 0, 1, 0]
    assert [q["samples"] for q in report["per_question"]] == [1, 1, 1, 0, 1]
    samples = [json.loads(line) for line in (tmp_path / "report" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 5
    [failed] = [s for s in samples if s["verdict"] == "failed"]
    assert failed["question"] == long_question and failed["text"] is None
    assert failed["reason"].startswith("http 400: This model's maximum context length is 1024 tokens")
    assert all(s["text"] is not None for s in samples if s is not failed)
    [failures] = list((tmp_path / "report" / "work").rglob("failures.parquet"))
    assert [f["attempts"] for f in pq.read_table(failures).to_pylist()] == [1]  # a 400 is not retried
    assert "1 of 5 requests were refused" in (tmp_path / "report" / "report.md").read_text()
    assert "1 of 5 requests were refused" in result.stderr


def test_eval_reports_accuracy_by_difficulty_when_the_benchmark_has_a_level_column(tmp_path):
    """MATH's `level` column read without being declared: maj1@1 per level with its binomial SE, levels in natural
    order (`Level 2` before `Level 10`). By hand from CORRECT/MAJ above: at k=1 only "What is twelve?" is right."""
    from math import sqrt

    bench, reply = scripted_bench(tmp_path)
    levels = {"What is one half?": "Level 1", "What is twelve?": "Level 1", "What is the square root of two?": "Level 10",
              "What is seven?": "Level 2"}
    bench.write_text("".join(json.dumps({"question": q, "answer": gold, "level": levels[q]}) + "\n"
                             for q, (gold, _) in SCRIPT.items()))
    with FakeOpenAI(reply=reply) as server:
        result = run("eval", "fake-model", "--benchmark", bench, "--answer-kind", "latex", "--n", "4",
                     "--temperature", "0.7", "--backend", "endpoint", "--base-url", server.url,
                     "--out", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert list(report["by_difficulty"]) == ["Level 1", "Level 2", "Level 10"]
    assert report["by_difficulty"]["Level 1"] == {"questions": 2, "accuracy": 0.5,
                                                  "accuracy_se": round(sqrt(0.5 * 0.5 / 2), 4)}
    assert report["by_difficulty"]["Level 2"] == report["by_difficulty"]["Level 10"] == \
        {"questions": 1, "accuracy": 0.0, "accuracy_se": 0.0}
    assert report["difficulty_missing"] == 0
    assert "| Level 1 | 2 | 50.00% ± 35.36% |" in (tmp_path / "report" / "report.md").read_text()


def test_a_difficulty_column_is_optional_and_a_declared_one_must_exist(tmp_path):
    from mathforge.builders.sources import load_local
    from mathforge.errors import InputError

    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n")
    assert load_local(plain)[0].difficulty is None
    rated = tmp_path / "rated.jsonl"
    rated.write_text(json.dumps({"question": "q", "answer": "#### 1", "stars": 3}) + "\n")
    assert load_local(rated, difficulty="stars")[0].difficulty == "3"
    with pytest.raises(InputError) as error:
        load_local(plain, difficulty="stars")
    assert error.value.key == "difficulty" and "stars" in error.value.message
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "#### 1", "level": [1]}) + "\n")
    with pytest.raises(InputError) as error:
        load_local(bad)
    assert error.value.line == 1 and error.value.key == "level"
