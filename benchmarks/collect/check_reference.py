"""Check `paper` mode against the literal reference transcription (tests/reference.py) on the first N problems."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from rapidfuzz.distance import Levenshtein

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import reference  # noqa: E402
from mathforge.builders.build import run_collect  # noqa: E402
from mathforge.builders.sources import load_local  # noqa: E402


def _lines(path: Path) -> list[str]:
    """Lines split on newlines only (str.splitlines would also split inside JSON strings at U+2028)."""
    return [line + "\n" for line in path.read_text().split("\n") if line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="benchmarks/collect/data")
    parser.add_argument("--problems", type=int, default=500)
    args = parser.parse_args()
    reference.levenshtein = Levenshtein.distance  # same distance, C speed; the rule itself stays literal
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gold_lines = _lines(Path(args.data) / "gold.jsonl")[: args.problems]
        (tmp / "gold.jsonl").write_text("".join(gold_lines))
        models = []
        for folder in sorted(Path(args.data).glob("model*")):
            (tmp / folder.name).mkdir()
            for seed_file in folder.glob("raw_generation_*.json"):
                lines = _lines(seed_file)[: args.problems]
                (tmp / folder.name / seed_file.name).write_text("".join(lines))
            models.append(str(tmp / folder.name))
        rows = [{"answer": json.loads(line).get("answer") or json.loads(line)["response"]} for line in gold_lines]
        expected = reference.reference_collect(rows, models)
        problems = load_local(tmp / "gold.jsonl")
        run_collect(problems, models, tmp / "out", "paper", include_gold=False)
        ours: dict[str, list[str]] = {}
        for row in pq.read_table(tmp / "out" / "data").to_pylist():
            ours.setdefault(row["problem_id"], []).append(row["solution"])
        same = all(ours.get(p.problem_id, []) == expected[p.index] for p in problems)
        samples = sum(len(list(Path(m).glob("*.json"))) for m in models) * len(problems)
        print(json.dumps({"problems": len(problems), "samples": samples, "kept": sum(map(len, expected.values())),
                          "identical": same}))
        sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
