"""`benchmarks/rft-miniature/run.py --quick`: the paired, fixed-step protocol on tiny sizes through the real build,
train and eval; and the seed-paired statistics it reports, against figures computed by hand."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mathforge.testing.miniature import paired_difference

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "rft-miniature" / "run.py"


def test_paired_difference_by_hand():
    # differences +2, +4, 0, +6 points: mean 3; deviations -1, +1, -3, +3 -> variance 20/3 points^2 (n - 1), so the
    # standard error of the mean is sqrt(20/3/4) = 1.29 points, and 3 > 2 x 1.29
    found = paired_difference([0.02, 0.04, 0.00, 0.06])
    assert found["mean"] == 0.03 and found["se"] == 0.0129 and found["beyond_2se"] is True
    found = paired_difference([0.05, -0.03, 0.04, -0.02])  # mean 1 point, SE 2.04: not an effect
    assert found["mean"] == 0.01 and found["se"] == 0.0204 and found["beyond_2se"] is False
    assert paired_difference([0.1])["se"] is None and paired_difference([0.1])["beyond_2se"] is False


def test_the_quick_benchmark_pairs_every_arm_with_its_seeds_control(tmp_path):
    out = tmp_path / "mini"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--seeds", "0", "1", "2", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "rft-miniature.json").read_text())
    s = summary["settings"]
    assert [seed["seed"] for seed in summary["seeds"]] == [0, 1, 2]
    for seed in summary["seeds"]:
        runs = {r["arm"]: r for r in seed["results"]}
        assert set(runs) == {"sft", "rft", "union"}
        assert all(r["steps"] == s["steps"] and r["questions"] == s["test_problems"] for r in runs.values())
        assert sum(summary["difficulty"].values()) == s["test_problems"]
        # the RFT corpus samples this seed's SFT model, the union this seed's and the next seed's (cyclically)
        assert seed["corpora"]["rft"]["samples"] == s["k"] * s["train_problems"]
        assert seed["corpora"]["union"]["samples"] == 2 * s["k"] * s["train_problems"]
        nxt = (seed["seed"] + 1) % 3
        assert seed["union_members"] == [str(out / f"seed-{seed['seed']}" / "models" / "sft"),
                                         str(out / f"seed-{nxt}" / "models" / "sft")]
        assert runs["sft"]["training_rows"] == s["train_problems"]  # gold only
    accuracy = {(seed["seed"], r["arm"]): r["accuracy"] for seed in summary["seeds"] for r in seed["results"]}
    paired = summary["comparisons"]["rft - control"]
    assert paired["differences"] == [round(accuracy[i, "rft"] - accuracy[i, "sft"], 4) for i in range(3)]
    assert "| paired by seed |" in (out / "table.md").read_text()

    again = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], capture_output=True,
                           text=True, timeout=300, env=env)
    assert again.returncode == 2 and "--overwrite" in again.stderr  # a finished run is never overwritten silently
    assert (out / "rft-miniature.json").exists()


def test_overwrite_replaces_only_a_miniature_runs_directory(tmp_path):
    """`--overwrite` removes an earlier run; a directory holding anything else is refused and left as it was."""
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(mine), "--overwrite"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2 and "not a miniature run's directory" in result.stderr
    assert (mine / "thesis.tex").read_text() == "years of work"
    from mathforge.testing.miniature import is_run_dir

    run = tmp_path / "run"
    for d in ("data", "seed-0", "seed-12"):
        (run / d).mkdir(parents=True)
    (run / "rft-miniature.json").write_text("{}")
    (run / "table.md").write_text("")
    assert is_run_dir(run)
    (run / "seed-x").mkdir()
    assert not is_run_dir(run)


def test_one_seed_trains_an_extra_sft_model_for_its_union(tmp_path):
    out = tmp_path / "one"
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--seeds", "0", "--train-problems", "12",
                             "--test-problems", "8", "--out", str(out)], capture_output=True, text=True, timeout=900,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr[-3000:]
    seed = json.loads((out / "rft-miniature.json").read_text())["seeds"][0]
    assert seed["union_members"] == [str(out / "seed-0" / "models" / "sft"), str(out / "seed-0" / "models" / "sft-1")]
    assert "train sft-1" in seed["phases"]
