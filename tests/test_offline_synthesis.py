"""The shipped offline synthesis recipe runs as it is: every method has rows, every arm a mix, every guard works."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
from conftest import run

ROOT = Path(__file__).resolve().parents[1]
ARMS = {"control": {"gold", "general"}, "tutorship": {"gold", "tutor", "general"},
        "diversification": {"gold", "diversify", "general"}, "expansion": {"gold", "expand", "general"},
        "retrospection": {"gold", "retrospect", "general"}}


def wrong_annotation(text: str) -> bool:
    """Some `<<a op b=c>>` before the first [back] is false (checked here with plain integer arithmetic)."""
    head = text.split("[back]", 1)[0]
    for a, op, b, c in re.findall(r"<<(\d+)([+*])(\d+)=(\d+)>>", head):
        if (int(a) + int(b) if op == "+" else int(a) * int(b)) != int(c):
            return True
    return False


def test_offline_synthesis_recipe_builds_every_method_and_arm(tmp_path):
    result = run("build", ROOT / "recipes" / "offline-synthesis.yaml", "--out", tmp_path / "build",
                 "--set", f"output.work_dir={tmp_path / 'work'}", cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    build = tmp_path / "build"
    corpus = pq.read_table(build / "data").to_pylist()
    stats = json.loads((build / "stats.json").read_text())
    card = (build / "README.md").read_text()
    methods = {row["method"] for row in corpus}
    assert methods == {"gold", "rft", "tutor", "diversify", "expand", "retrospect"}
    for arm, groups in ARMS.items():
        mix = pq.read_table(build / f"mix-{arm}").to_pylist()
        assert mix and {row["group"] for row in mix} == groups, arm
        assert f"config_name: mix-{arm}" in card and f"### CPT mix `mix-{arm}`" in card
    # every guard had work to do, and its rejections are counted in stats and shown on the card
    for reason in ("rejected: false critique", "rejected: answer-only fix", "rejected: calculator"):
        assert stats["tutor"]["statuses"].get(reason, 0) > 0 and reason in card, reason
    assert stats["expand"]["outcomes"].get("too close to seed", 0) > 0 and "too close to seed" in card
    assert stats["retrospect"]["outcomes"].get("no error before [back]", 0) > 0 and "no error before [back]" in card
    # what was kept is right: no tutor row fixes a correct attempt, every retrospect row made a real error first
    records = pq.read_table(next((tmp_path / "work").glob("tutor/teacher-*/records.parquet"))).to_pylist()
    assert all(not r["student_correct"] for r in records if r["fix_accepted"])
    retro = [row["solution"] for row in corpus if row["method"] == "retrospect"]
    assert retro and all(wrong_annotation(text) for text in retro)
