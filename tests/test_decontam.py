"""Decontamination: exactly the rows that carry a benchmark question are dropped or flagged."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import run
from mathforge.builders.stages.decontaminate import contaminated, ngrams

from mathforge.testing import synthetic


def test_ngrams_and_overlap():
    assert ngrams("A b, c!", 13) == {("a", "b", "c")}  # shorter than n: the whole text is one gram
    assert len(ngrams(" ".join(str(i) for i in range(15)), 13)) == 3
    columns = {"question": ["How many apples does Ava have now?", "Something else entirely"],
               "solution": ["x", "y"]}
    assert contaminated(columns, ["how many apples does Ava have now"], 13) == [True, False]


@pytest.mark.parametrize("action", ["drop", "flag"])
def test_seeded_benchmark_questions_are_exactly_the_rows_removed(tmp_path, action):
    benchmark = synthetic.problems(30, seed=42)
    corpus = synthetic.problems(20, seed=41) + benchmark[:5]  # 5 benchmark questions leaked, verbatim
    synthetic.write_gold(corpus, tmp_path / "train.jsonl")
    synthetic.write_gold(benchmark, tmp_path / "test.jsonl")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: dc\nversion: 1.0.0\nsources:\n  - path: {tmp_path / 'train.jsonl'}\nstages:\n"
                      f"  - type: collect\ndecontaminate:\n  action: {action}\n  eval_sets:\n"
                      f"    - name: bench\n      path: {tmp_path / 'test.jsonl'}\n"
                      f"output:\n  dir: {tmp_path}/b/{{name}}/{{version}}\n")
    result = run("build", recipe)
    assert result.returncode == 0, result.stderr
    build = tmp_path / "b" / "dc" / "1.0.0"
    rows = pq.read_table(build / "data").to_pylist()
    leaked = {q["question"] for q in benchmark[:5]}
    stats = json.loads((build / "stats.json").read_text())["decontamination"]
    assert stats["rows_flagged"] == 5 and stats["by_eval_set"] == {"bench": 5}
    if action == "drop":
        assert len(rows) == 20 and not leaked & {r["question"] for r in rows}
    else:
        assert len(rows) == 25
        assert {r["question"] for r in rows if r["contaminated"]} == leaked
    assert "5 row(s)" in (build / "README.md").read_text()
