"""Collect end to end: identical to the reference rule on ScRel-layout inputs, stats, tables, canonical mode."""
from __future__ import annotations

import json
import shutil

import orjson
import pyarrow.parquet as pq
import pytest
from mathforge.builders.build import run_collect
from mathforge.builders.sources import load_local
from reference import reference_collect

from mathforge.errors import InputError


def _corpus(out):
    return pq.read_table(out / "data").to_pylist()


def _gold_rows(screl):
    return [json.loads(line) for line in open(screl["gold"])]


@pytest.mark.parametrize("workers", [1, 2])
def test_paper_mode_reproduces_reference_union(screl, workers):
    problems = load_local(screl["gold"])
    out = screl["tmp"] / f"out{workers}"
    result = run_collect(problems, screl["models"], out, "paper", workers=workers)
    expected = reference_collect(_gold_rows(screl), screl["models"])
    rows = _corpus(out)
    for problem in problems:
        mine = [r for r in rows if r["problem_id"] == problem.problem_id]
        assert mine[0]["method"] == "gold" and mine[0]["solution"] == problem.solution
        assert [r["solution"] for r in mine[1:]] == expected[problem.index]
        assert all(r["method"] == "rft" and r["verdict"] == "correct" for r in mine[1:])
    stats = result.stats
    assert stats["samples"] == 30 * 3 * 12
    assert stats["distinct"] == sum(len(v) for v in expected.values())
    assert stats["distinct"] < stats["correct"] < stats["samples"]
    assert set(stats["rejected"]) >= {"wrong", "calculator", "duplicate"}
    assert sum(stats["distinct_per_problem"].values()) == 30
    assert stats["pass_at_k"]["36"] >= stats["pass_at_k"]["1"]
    assert [m for m in stats["models"]] == ["model0", "model1", "model2"]
    assert sum(m["kept"] for m in stats["models"].values()) == stats["distinct"]
    saved = json.loads((out / "stats.json").read_text())
    assert saved["distinct"] == stats["distinct"] and isinstance(saved["correct"], int)


def test_rows_carry_provenance(screl):
    out = screl["tmp"] / "out"
    run_collect(load_local(screl["gold"]), screl["models"], out, "paper")
    row = next(r for r in _corpus(out) if r["method"] == "rft")
    assert row["model"].startswith("model") and row["seed"] is not None
    assert json.loads(row["generation"]) == {"seed": row["seed"], "temperature": 0.7}
    assert row["equation_key"] == "|".join(row["equations"]).replace(" ", "")
    assert row["source"].split(":")[0].endswith(f"raw_generation_0.7_{row['seed']}.json")
    assert row["verifier"].startswith("mathforge-paper")


def test_model_order_and_numeric_seed_order(screl, tmp_path):
    gold = _gold_rows(screl)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    sol = gold[0]["answer"]
    lines_for = lambda text: "".join(json.dumps([["p", text if i == 0 else "#### x"]]) + "\n" for i in range(30))
    # seed 10 written first on disk; seed 9 must still be visited first
    (first / "raw_generation_0.7_10.json").write_text(lines_for(sol.replace("after", "AFTER")))
    (first / "raw_generation_0.7_9.json").write_text(lines_for(sol))
    (second / "raw_generation_0.7_0.json").write_text(lines_for("Intro.\n" + sol))
    out = tmp_path / "out"
    run_collect(load_local(screl["gold"]), [str(second), str(first)], out, "paper", include_gold=False)
    rows = _corpus(out)
    assert [r["model"] for r in rows] == ["b"]  # the first model's path came first and kept the key
    expected = reference_collect(gold, [str(second), str(first)])
    assert [r["solution"] for r in rows] == expected[0]


def test_unreadable_lines_and_short_files_are_reported(screl, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    sol = _gold_rows(screl)[0]["answer"]
    (folder / "raw_generation_0.7_0.json").write_text(
        json.dumps([["p", sol]]) + "\n{not json\n" + json.dumps([["p", 5]]) + "\n" + json.dumps({"gen": [sol]}) + "\n")
    out = tmp_path / "out"
    result = run_collect(load_local(screl["gold"]), [str(folder)], out, "paper")
    stats = result.stats
    assert stats["samples"] == 4
    assert sum(v for k, v in stats["rejected"].items() if k.startswith("unreadable")) == 2
    assert stats["short_files"] == [{"path": str(folder / "raw_generation_0.7_0.json"), "lines": 4}]
    assert {e["line"] for e in stats["rejected_examples"]} >= {2, 3}


def test_sample_tables_and_canonical_mode(screl, tmp_path):
    problems = load_local(screl["gold"])
    gold = problems[0].solution
    swapped = gold.replace("+", "PLUS", 1)
    a, rest = swapped.split(" has ", 1)[1].split("PLUS", 1)
    b = rest.split(" ", 1)[0]
    swapped = gold.replace(f"{a}+{b}", f"{b}+{a}")  # same steps, operands swapped: two paper keys, one canonical
    table = tmp_path / "samples.jsonl"
    rows = [{"problem_id": problems[0].problem_id, "model": "m", "solution": gold},
            {"question": problems[0].question, "model": "m", "solution": swapped},
            {"idx": 1, "model": "n", "solution": problems[1].solution},
            {"problem_id": "nope", "solution": gold}]
    table.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    paper = run_collect(problems, [str(table)], tmp_path / "p", "paper").stats
    canonical = run_collect(problems, [str(table)], tmp_path / "c", "canonical").stats
    assert paper["distinct"] == 3 and canonical["distinct"] == 2
    assert paper["rejected"]["unknown problem"] == 1
    keys = {r["equation_key"] for r in _corpus(tmp_path / "c") if r["method"] == "rft"}
    assert any("(+" in k for k in keys)


def test_canonical_rejects_bad_plain_text_arithmetic(tmp_path):
    gold = tmp_path / "g.jsonl"
    gold.write_text(json.dumps({"question": "q", "answer": "3+4 = 7\n#### 7"}) + "\n")
    table = tmp_path / "s.jsonl"
    table.write_text("".join(json.dumps({"idx": 0, "solution": s}) + "\n" for s in
                             ["3+4 = 7\n#### 7", "4 + 3 = 7\n#### 7", "3+4 = 8 so 7\n#### 7"]))
    stats = run_collect(load_local(gold), [str(table)], tmp_path / "o", "canonical").stats
    assert stats["distinct"] == 1 and stats["rejected"] == {"calculator": 1, "duplicate": 1}


def test_existing_output_is_never_clobbered(screl):
    out = screl["tmp"] / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    for overwrite in (False, True):  # overwrite replaces only a mathforge output (tests/test_output_safety.py)
        with pytest.raises(InputError):
            run_collect(load_local(screl["gold"]), screl["models"], out, "paper", overwrite=overwrite)
        assert (out / "keep.txt").read_text() == "precious"
    (out / "keep.txt").unlink()
    run_collect(load_local(screl["gold"]), screl["models"], out, "paper")
    (out / "stats.json").write_text("{}")  # a collect output, replaced by the next run
    run_collect(load_local(screl["gold"]), screl["models"], out, "paper", overwrite=True)
    assert json.loads((out / "stats.json").read_text())["problems"] == 30
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".out.")]


def test_gold_audit_flags_majority_disagreement(tmp_path):
    gold = tmp_path / "g.jsonl"
    gold.write_text(json.dumps({"question": "q", "answer": "<<2+2=4>>4\n#### 5"}) + "\n")
    folder = tmp_path / "m"
    folder.mkdir()
    for seed in range(6):
        answer = "4" if seed < 5 else "5"
        (folder / f"raw_generation_0.7_{seed}.json").write_text(json.dumps([["p", f"<<2+2=4>>4\n#### {answer}"]]) + "\n")
    stats = run_collect(load_local(gold), [str(folder)], tmp_path / "o", "paper").stats
    assert stats["gold_audit"]["count"] == 1
    assert stats["gold_audit"]["problems"][0]["majority"] == "4.0"


def test_deterministic_output(screl):
    problems = load_local(screl["gold"])
    a, b = screl["tmp"] / "a", screl["tmp"] / "b"
    run_collect(problems, screl["models"], a, "paper", workers=1)
    run_collect(problems, screl["models"], b, "paper", workers=2)
    files_a, files_b = sorted((a / "data").iterdir()), sorted((b / "data").iterdir())
    assert [f.read_bytes() for f in files_a] == [f.read_bytes() for f in files_b]
    shutil.rmtree(a), shutil.rmtree(b)


@pytest.mark.parametrize("dedup", ["paper", "canonical"])
def test_adversarial_annotations_are_rejected_not_run(tmp_path, dedup):
    marker = tmp_path / "pwned"
    gold = tmp_path / "g.jsonl"
    gold.write_text(json.dumps({"question": "q", "answer": "<<2+2=4>>4\n#### 4"}) + "\n")
    hostile = [f"<<__import__('os').system('touch {marker}')=0>>", "<<9**9**9**9=1>>", "<<" + "9" * 10_000 + "=1>>",
               "<<٢+٢=4>>", "<<" + "(" * 3000 + "1" + ")" * 3000 + "=1>>", "<<2**99999999=0>>"]
    table = tmp_path / "s.jsonl"
    table.write_text("".join(json.dumps({"idx": 0, "solution": f"{h}4\n#### 4"}) + "\n" for h in hostile))
    import time

    started = time.perf_counter()
    stats = run_collect(load_local(gold), [str(table)], tmp_path / "o", dedup).stats
    assert time.perf_counter() - started < 10
    assert stats["rejected"] == {"calculator": len(hostile)} and stats["distinct"] == 0
    assert not marker.exists()


def test_hub_style_dataset_directory_loads_through_datasets(tmp_path):
    import pyarrow as pa
    from mathforge.builders.sources import load_hub

    (tmp_path / "ds" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"question": ["q1", "q2"], "answer": ["#### 1", "#### 2"]}),
                   tmp_path / "ds" / "data" / "train-00000-of-00001.parquet")
    problems = load_hub(str(tmp_path / "ds"), split="train")
    assert [p.question for p in problems] == ["q1", "q2"]
    assert problems[0].problem_id == load_hub(str(tmp_path / "ds"), split="train")[0].problem_id
    with pytest.raises(InputError):
        load_hub(str(tmp_path / "missing"), split="train")
