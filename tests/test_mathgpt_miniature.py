"""`benchmarks/mathgpt-miniature/run.py --quick`: the whole protocol on tiny sizes, through the real build, train
and eval, with the competent teacher served on 127.0.0.1."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_quick_benchmark_runs_every_arm_paired_by_seed(tmp_path):
    out = tmp_path / "mini"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mathgpt-miniature" / "run.py"), "--quick",
                             "--out", str(out)], capture_output=True, text=True, timeout=900,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "mathgpt-miniature.json").read_text())
    s = summary["settings"]
    assert summary["difficulty"] == {"3": 4, "4": 4, "5": 4, "6": 4}  # 16 test problems, stratified by steps
    assert [seed["seed"] for seed in summary["seeds"]] == [0, 1]
    for seed in summary["seeds"]:
        runs = {(r["kind"], r["arm"]): r for r in seed["results"]}
        assert set(runs) == {("cpt", a) for a in ("control", "tutorship", "diversification", "expansion",
                                                  "retrospection")} | {("sft", "control"), ("sft", "tutorship")}
        assert all(r["steps"] == s["steps"] and r["questions"] == 16 and r["tokens_seen"] > 0 for r in runs.values())
        assert set(runs["cpt", "control"]["by_difficulty"]) == {"3", "4", "5", "6"}
        assert runs["sft", "control"]["notes"][0].startswith("methods gold: ")
        stages = seed["stages"]
        assert stages["tutor"]["fixes_accepted"] > 0 and stages["tutor"]["judged"] == 12 * s["attempts"]
        assert all(stages[name]["accepted"] > 0 for name in ("diversify", "expand", "retrospect"))
        for method, found in seed["confirmed"].items():  # the family's checker confirms every row a teacher made
            if method != "expand":
                assert found["confirmed"] == found["checked"] == found["rows"] > 0, (method, found)
        budget = seed["mix"]["control"]["groups"]["gold"]["target_tokens"]
        for arm, mix in seed["mix"].items():  # every arm's mix holds about the same tokens: whole documents, and
            held = sum(group["tokens"] for group in mix["groups"].values())  # at these sizes one is ~1/4 of a share
            assert 0.8 * budget <= held <= budget, (arm, held, budget)
    control = [next(r["accuracy"] for r in seed["results"] if (r["kind"], r["arm"]) == ("cpt", "control"))
               for seed in summary["seeds"]]
    tutor = [next(r["accuracy"] for r in seed["results"] if (r["kind"], r["arm"]) == ("cpt", "tutorship"))
             for seed in summary["seeds"]]
    paired = summary["comparisons"]["cpt tutorship - cpt control"]
    assert paired["differences"] == [round(t - c, 4) for t, c in zip(tutor, control)]
    assert "| paired by seed |" in (out / "table.md").read_text()
    import pyarrow.parquet as pq  # CPT texts are framed as the test prompt (a CPT model is tested with it)

    mix = pq.read_table(out / "seed-0" / "builds" / "synthesis" / "mix-control").to_pylist()
    assert all(r["text"].startswith("Question: ") and "\nAnswer: " in r["text"] for r in mix)
