"""The command line as a user runs it: exit codes, messages naming file/line/key, nothing written on error."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

CLI = [sys.executable, "-c", "from mathforge.cli import main; main()"]


def run(*args, cwd=None):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def recipe(tmp: Path, body: str) -> Path:
    path = tmp / "recipe.yaml"
    path.write_text(body)
    return path


def good_recipe(screl, out) -> str:
    models = ", ".join(screl["models"])
    return (f"name: synthetic-rft\nversion: 1.0.0\ndescription: test\nsources:\n  - name: synth\n"
            f"    path: {screl['gold']}\nstages:\n  - type: collect\n    samples: [{models}]\n"
            f"    dedup: paper\noutput:\n  dir: {out}\n")


def test_help_everywhere():
    for args in ([], ["validate"], ["build"], ["collect"], ["grade"]):
        result = run(*args, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout


def test_collect_command_with_multiple_samples(screl):
    out = screl["tmp"] / "corpus"
    result = run("collect", "--gold", screl["gold"], "--samples", *screl["models"], "--dedup", "canonical",
                 "--out", out)
    assert result.returncode == 0, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["samples"] == 30 * 3 * 12 and len(stats["models"]) == 3
    assert all(isinstance(stats[k], int) for k in ("samples", "correct", "distinct"))
    assert pq.read_table(out / "data").num_rows == 30 + stats["distinct"]


def test_validate_and_build(screl):
    out = screl["tmp"] / "built"
    path = recipe(screl["tmp"], good_recipe(screl, out))
    assert run("validate", path).returncode == 0
    dry = run("build", path, "--dry-run")
    assert dry.returncode == 0 and not out.exists()
    result = run("build", path)
    assert result.returncode == 0, result.stderr
    assert (out / "stats.json").exists()
    again = run("build", path)
    assert again.returncode == 2 and "exists" in again.stderr


def test_recipe_errors_name_line_and_key_and_write_nothing(screl):
    out = screl["tmp"] / "never"
    cases = {
        "malformed": ("name: x\nversion: [1\n", ":3: malformed YAML"),
        "unknown key": (good_recipe(screl, out).replace("    dedup: paper\n", "    dedup: paper\n    dedupe: x\n"),
                        ":11: stages.0.dedupe: unknown key"),
        "bad version": (good_recipe(screl, out).replace("1.0.0", "one"), ":2: version:"),
        "bad mode": (good_recipe(screl, out).replace("dedup: paper", "dedup: fuzzy"), ":10: stages.0.dedup:"),
        "no location": (good_recipe(screl, out).replace(f"    path: {screl['gold']}\n", ""), ":5: sources.0:"),
    }
    for name, (body, expected) in cases.items():
        path = recipe(screl["tmp"], body)
        for command in ("validate", "build"):
            result = run(command, path)
            assert result.returncode == 2, (name, result.stderr)
            assert expected in result.stderr.replace("\n", " "), (name, result.stderr)
        assert not out.exists()


def test_bad_data_exits_2(screl, tmp_path):
    bad_gold = tmp_path / "bad.jsonl"
    bad_gold.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q2"}\n')
    result = run("collect", "--gold", bad_gold, "--samples", screl["models"][0], "--out", tmp_path / "o")
    assert result.returncode == 2 and "bad.jsonl:2: answer" in result.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "q", "answer": "#### 1"}\n{oops\n')
    result = run("collect", "--gold", broken, "--samples", screl["models"][0], "--out", tmp_path / "o")
    assert result.returncode == 2 and "broken.jsonl:2: invalid JSON" in result.stderr
    no_cols = tmp_path / "cols.jsonl"
    no_cols.write_text('{"text": "q"}\n')
    result = run("collect", "--gold", no_cols, "--samples", screl["models"][0], "--out", tmp_path / "o")
    assert result.returncode == 2 and "question" in result.stderr
    result = run("collect", "--gold", screl["gold"], "--samples", tmp_path / "missing", "--out", tmp_path / "o")
    assert result.returncode == 2 and "missing: not found" in result.stderr
    assert not (tmp_path / "o").exists()


def test_grade_command(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in [
        {"gold": "#### 72", "pred": "48+24 = <<48+24=72>>72\n#### 72"},
        {"gold": r"\frac{1}{2}", "pred": r"\boxed{0.5}"},
        {"gold": "#### 3", "pred": "I do not know"},
    ]))
    out = tmp_path / "graded.jsonl"
    result = run("grade", pairs, "--out", out, "--mode", "auto")
    assert result.returncode == 0, result.stderr
    verdicts = [json.loads(line)["verdict"] for line in out.read_text().splitlines()]
    assert verdicts == ["correct", "correct", "unparseable"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"gold": "1"}\n')
    result = run("grade", bad, "--out", tmp_path / "x.jsonl")
    assert result.returncode == 2 and "bad.jsonl:1: pred" in result.stderr and not (tmp_path / "x.jsonl").exists()
