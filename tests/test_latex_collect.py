"""Canonical collect on MATH solutions (a slice of MATH train in tests/data): correct LaTeX kept or deduped, an
injected error rejected as `calculator`; groundedness recorded on every row and rejected on request."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pyarrow.parquet as pq
from mathforge.builders.build import run_collect
from mathforge.builders.sources import load_local
from mathforge.builders.stages.collect import collect_problem
from mathforge.builders.stages.collect_inputs import Sample
from mathforge.builders.stages.collect_stats import PartialStats

from mathforge.testing.latex_variants import inject_error, reformat
from mathforge.verify.equations import reasoning_key
from mathforge.verify.judges import CALCULATOR, OK, WRONG, CanonicalJudge

SLICE = Path(__file__).parent / "data" / "math_train_slice.jsonl"


def _boxed(solution: str) -> str:
    return re.findall(r"\\boxed\{(.*)\}", solution)[-1]


def test_canonical_collect_on_math_solutions(tmp_path):
    rows = [json.loads(line) for line in SLICE.read_text().splitlines()]
    problems = load_local(SLICE)
    n = len(problems)
    # preconditions, by hand: neighbouring problems have different answers, so "other" is a wrong answer
    assert all(_boxed(rows[i]["solution"]) != _boxed(rows[(i + 1) % n]["solution"]) for i in range(n))
    samples, expected = [], []
    for i, row in enumerate(rows):
        solution = row["solution"]
        injected = inject_error(solution, random.Random(i), keep_answer=True)
        cases = [("solution", solution, OK), ("reformatted", reformat(solution), OK),
                 ("other", rows[(i + 1) % n]["solution"], WRONG)]
        if injected is not None:
            cases.append(("injected", injected[0], CALCULATOR))
        for kind, text, status in cases:
            samples.append({"idx": i, "model": kind, "solution": text})
            expected.append(status)
    injected_count = sum(s["model"] == "injected" for s in samples)
    assert injected_count >= n // 2  # an equality checked before the answer, in most of the slice

    judge = CanonicalJudge(problems)
    assert [judge.judge(s["idx"], s["solution"])[0] for s in samples] == expected
    for row in rows:  # the reformatted copy is the same reasoning: same key, so collect dedups it
        assert reasoning_key(row["solution"]) == reasoning_key(reformat(row["solution"]))

    table = tmp_path / "samples.jsonl"
    table.write_text("".join(json.dumps(s) + "\n" for s in samples))
    stats = run_collect(problems, [str(table)], tmp_path / "out", "canonical").stats
    assert stats["distinct"] == n
    assert stats["rejected"] == {"calculator": injected_count, "duplicate": n, "wrong": n}
    corpus = pq.read_table(tmp_path / "out" / "data").to_pylist()
    kept = [r for r in corpus if r["method"] == "rft"]
    assert sorted(r["solution"] for r in kept) == sorted(row["solution"] for row in rows)
    assert all(isinstance(r["ungrounded"], int) for r in corpus)
    assert stats["grounding"]["kept_with_ungrounded"] == sum(1 for r in kept if r["ungrounded"])


def test_grounded_collect_rejects_numbers_from_nowhere():
    question = "Ava has 3 apples and buys 4 more. How many apples does she have?"
    problems = load_local_rows([{"question": question, "answer": "<<3+4=7>>7\n#### 7"}])
    judge = CanonicalJudge(problems)
    texts = ["She has 3+4 = 7 apples.\n#### 7",            # grounded
             "She has 3+17 = 20, then 20-13 = 7.\n#### 7"]   # 17 and 13 from nowhere (20: computed before)
    samples = [Sample("m", text, None, None, "s.jsonl", line) for line, text in enumerate(texts, 1)]
    for grounded, kept, rejected in ((False, 2, {}), (True, 1, {"ungrounded": 1})):
        stats = PartialStats()
        result = collect_problem(0, samples, judge, stats, question=question, grounded=grounded)
        assert len(result.kept) == kept and dict(stats.reasons) == rejected
        assert [k.ungrounded for k in result.kept] == ([0, 2] if not grounded else [0])


def load_local_rows(rows: list[dict]):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gold.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return load_local(path)
