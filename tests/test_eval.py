"""`mathforge eval` over HTTP against a scripted server: metrics equal those derived from the request seeds."""
from __future__ import annotations

import json

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
