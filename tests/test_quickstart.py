"""`mathforge quickstart` (shortened CI form): SFT -> RFT corpus -> SFT on gold + RFT -> eval; every figure traceable."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from conftest import run


def test_easy_problems_list_only_correct_solution_orders_and_held_out_is_disjoint():
    from mathforge.builders.sources import Problem

    from mathforge.testing import synthetic
    from mathforge.verify.judges import PaperJudge

    train = synthetic.easy_problems(300, seed=0)
    held = synthetic.easy_problems(100, seed=1, exclude={r["question"] for r in train})
    assert not {r["question"] for r in train} & {r["question"] for r in held}
    assert synthetic.easy_problems(300, seed=0) == train
    problems = [Problem(index=i, problem_id=str(i), question=r["question"], solution=r["answer"])
                for i, r in enumerate(train)]
    judge = PaperJudge(problems)  # the quickstart's dedup: the paper's annotation key
    orders = Counter()
    for problem, row in zip(problems, train):
        assert row["answer"] in row["solutions"]
        keys = {judge.judge(problem.index, s)[2] for s in row["solutions"]}
        assert len(keys) == len(row["solutions"])  # every order is a distinct reasoning path
        for solution in row["solutions"]:
            status, value, _ = judge.judge(problem.index, solution)
            assert status == "ok" and int(value) == int(row["answer"].rsplit("#### ", 1)[1])
            assert all(0 <= int(n) <= 36 for n in re.findall(r"\d+", solution))
        orders[len(row["solutions"])] += 1
    assert set(orders) == {1, 2, 3}
    first = synthetic.easy_problems(300, seed=0, gold_order="first")
    assert [r["question"] for r in first] == [r["question"] for r in train]
    assert all(r["answer"] == r["solutions"][0] for r in first)
    assert sum(r["answer"] != r["solutions"][0] for r in train) > 50  # random: other orders too


def test_quickstart_quick_form_end_to_end(tmp_path):
    out = tmp_path / "qs"
    result = run("quickstart", "--quick", "--out", out, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "quickstart.json").read_text())
    corpus, gold_corpus = Path(summary["corpus"]), Path(summary["gold_corpus"])
    assert corpus == out / "builds" / "quickstart" / "1.0.0" and gold_corpus == out / "builds" / "quickstart" / "0.1.0"

    # the corpus: versioned, verified, card and plots; gold = the training problems, rft = distinct correct paths
    from mathforge.builders.publish.manifest import verify

    manifest = verify(corpus)
    assert (corpus / "README.md").exists() and len(list((corpus / "plots").glob("*.png"))) == 3
    rows = pq.read_table(corpus / "data").to_pylist()
    methods = Counter(r["method"] for r in rows)
    stats = json.loads((corpus / "stats.json").read_text())
    assert methods["gold"] == summary["settings"]["train_problems"] and methods["rft"] == stats["distinct"]
    assert all(r["solution"] == r["solution"].strip() and r["verdict"] == "correct" for r in rows)
    assert summary["rft_corpus_stats"]["samples"] == summary["settings"]["train_problems"] * summary["settings"]["k"]
    heldout = {json.loads(line)["question"] for line in (out / "data" / "heldout.jsonl").read_text().splitlines()}
    assert len(heldout) == summary["settings"]["heldout"] and not heldout & {r["question"] for r in rows}

    # every number in the table is one measured in this run, by the eval reports and the trained models
    names = [row["dir"] for row in summary["models"]]
    assert names[:2] == ["sft", "rft"] and names[2:] in ([], ["sft-long"])
    rft_steps = summary["models"][1]["steps"]  # as many epochs as SFT: steps x RFT rows / gold rows
    assert rft_steps == round(summary["settings"]["steps"] * manifest["rows"]["sft"] / methods["gold"])
    for row in summary["models"]:
        name, build = row["dir"], corpus if row["dir"] == "rft" else gold_corpus
        greedy = json.loads((out / "eval" / f"{name}-greedy" / "report.json").read_text())
        sampled = json.loads((out / "eval" / f"{name}-sampled" / "report.json").read_text())
        correct = sum(q["correct"] for q in greedy["per_question"])
        assert greedy["questions"] == len(heldout) and row["accuracy"] == round(correct / len(heldout), 4)
        assert row["distinct_paths"] == sampled["distinct_paths_mean"]
        assert row["pass_at_k"] == sampled["pass_at_k"][str(summary["settings"]["eval_samples"])]
        trained = json.loads((out / "models" / name / "mathforge-training.json").read_text())
        assert trained["dataset_fingerprint"] == json.loads((build / "manifest.json").read_text())["fingerprint"]
        assert trained["steps"] == row["steps"] == (summary["settings"]["steps"] if name == "sft" else rft_steps)
        assert row["training_rows"] == json.loads((build / "manifest.json").read_text())["rows"]["sft"]
        assert f"{row['accuracy']:.1%}" in result.stdout and f"{row['distinct_paths']:.2f}" in result.stdout
    assert manifest["rows"]["sft"] == methods["gold"] + methods["rft"]
    for step in ("recipes/gold.yaml", "recipes/rft.yaml", *(f"configs/{name}.yaml" for name in names)):
        assert (out / step).exists()  # every step can be rerun by hand with `mathforge build` / `train sft`

    again = run("quickstart", "--quick", "--out", out)
    assert again.returncode == 2 and "--overwrite" in again.stderr and (out / "quickstart.json").exists()
    from mathforge.builders.publish.overwrite import check_replace

    check_replace(out, True, ("quickstart",))  # what `--overwrite` would replace: this run's directory, all its own
