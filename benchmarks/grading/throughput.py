"""`mathforge grade` throughput: 105,520 GSM8K (gold, solution) pairs, JSONL in and out, the whole command timed."""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent.parent / "shared" / "data" / "gsm8k"


def make_pairs(path: Path, per_question: int = 12, seed: int = 0) -> int:
    """Real GSM8K solutions as predictions: each question's gold solution, and variants whose final answer is
    changed (off by one, scaled, a decimal, thousands commas, `$`), so about half are wrong; no two texts alike."""
    rng = random.Random(seed)
    rows = []
    for split in ("train", "test"):
        for line in (DATA / f"{split}.jsonl").read_text().splitlines():
            item = json.loads(line)
            body, answer = item["answer"].rsplit("####", 1)
            answer = answer.strip().replace(",", "")
            for k in range(per_question):
                value = int(answer) if answer.lstrip("-").isdigit() else None
                if k == 0 or value is None:
                    pred = item["answer"]
                elif k % 2:
                    pred = f"{body}#### {value + rng.choice([-2, -1, 1, 2, 10])}"
                else:
                    pred = f"{body}#### {rng.choice([f'{value:,}', f'${value}', f'{value}.0', str(value)])}"
                rows.append({"id": f"{split}-{len(rows)}", "gold": answer, "pred": pred})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", default="gsm8k")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pairs = HERE / "data" / "gsm8k-pairs.jsonl"
    n = make_pairs(pairs)
    exe = Path(sys.executable).parent / "mathforge"
    best = None
    for _ in range(args.repeat):
        started = time.perf_counter()
        subprocess.run([str(exe), "grade", str(pairs), "--out", str(HERE / "data" / "graded.jsonl"),
                        "--mode", args.mode], check=True, capture_output=True)
        seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    verdicts = [json.loads(line)["verdict"] for line in (HERE / "data" / "graded.jsonl").read_text().splitlines()]
    counts = {v: verdicts.count(v) for v in sorted(set(verdicts))}
    print(f"{n:,} pairs, mode {args.mode}: best of {args.repeat} {best:.2f} s = {n / best:,.0f} pairs/s "
          f"(whole command: start, read, grade, write); verdicts {counts}")


if __name__ == "__main__":
    main()
