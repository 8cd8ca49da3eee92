"""What changed between two builds: problems, solutions per method and model, stats deltas."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from mathforge.builders.publish.manifest import read_manifest

STAT_KEYS = ("problems", "samples", "correct", "distinct", "gold_rows")


def _rows(build: Path) -> tuple[set[str], set[tuple]]:
    table = _concat(build)
    problems = set(table["problem_id"])
    solutions = {(p, m, mo or "", hashlib.sha256(s.encode()).hexdigest())
                 for p, m, mo, s in zip(table["problem_id"], table["method"], table["model"], table["solution"])}
    return problems, solutions


def _concat(build: Path) -> dict[str, list]:
    """The default config's rows, from the shards the manifest lists (never a glob: an extra file is not read)."""
    columns: dict[str, list] = {"problem_id": [], "method": [], "model": [], "solution": []}
    shards = [rel for rel in read_manifest(build)["files"] if rel.startswith("data/") and rel.endswith(".parquet")
              and rel.count("/") == 1]
    for shard in sorted(shards):
        part = pq.read_table(build / shard, columns=list(columns)).to_pydict()
        for name in columns:
            columns[name].extend(part[name])
    return columns


def diff_builds(a: Path, b: Path) -> dict:
    problems_a, solutions_a = _rows(a)
    problems_b, solutions_b = _rows(b)
    added = Counter((m, mo) for _, m, mo, _ in solutions_b - solutions_a)
    removed = Counter((m, mo) for _, m, mo, _ in solutions_a - solutions_b)
    stats_a = json.loads((a / "stats.json").read_text())
    stats_b = json.loads((b / "stats.json").read_text())
    manifest_a, manifest_b = read_manifest(a), read_manifest(b)
    return {
        "a": {"name": manifest_a["name"], "version": manifest_a["version"], "fingerprint": manifest_a["fingerprint"]},
        "b": {"name": manifest_b["name"], "version": manifest_b["version"], "fingerprint": manifest_b["fingerprint"]},
        "problems_added": len(problems_b - problems_a), "problems_removed": len(problems_a - problems_b),
        "problems_common": len(problems_a & problems_b),
        "solutions": [{"method": m, "model": mo or None, "added": added[(m, mo)], "removed": removed[(m, mo)]}
                      for m, mo in sorted(set(added) | set(removed))],
        "stats": {k: {"a": stats_a.get(k), "b": stats_b.get(k),
                      "delta": (stats_b.get(k) or 0) - (stats_a.get(k) or 0)} for k in STAT_KEYS},
    }
