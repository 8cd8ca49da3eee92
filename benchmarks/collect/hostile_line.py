"""One hostile 40 KB sample line in a 747,300-sample collect: does it cost more than its share of the time?"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from mathforge.testing.synthetic import PROMPT

SHAPES = {  # the audit's pathological shapes, 40 KB each
    "spaces-after-hashes": "####" + " " * 40_000 + "x",
    "open-angles": "<" * 40_000,
    "open-boxed": "\\boxed{" * 5_000,
    "digits-and-ops": "<<" + "1+" * 20_000 + "1=2>>\n#### 2",
}


def hostile_copy(data: Path, out: Path, shape: str) -> None:
    """The input with links to every file except model0's first seed file, whose line 0 is replaced."""
    shutil.copy(data / "gold.jsonl", out / "gold.jsonl")
    for model in sorted(data.glob("model*")):
        (out / model.name).mkdir()
        for seed_file in model.iterdir():
            target = out / model.name / seed_file.name
            if model.name == "model0" and seed_file.name.endswith("_0.json"):
                lines = seed_file.read_bytes().split(b"\n")
                question = orjson.loads(lines[0])[0][0]
                lines[0] = orjson.dumps([[question or PROMPT, SHAPES[shape]]])
                target.write_bytes(b"\n".join(lines))
            else:
                os.symlink(seed_file.resolve(), target)


def timed(data: Path, out: Path) -> float:
    cmd = [str(Path(sys.executable).with_name("mathforge")), "collect", "--gold", str(data / "gold.jsonl"),
           *[a for m in sorted(data.glob("model*")) for a in ("--samples", str(m))], "--out", str(out),
           "--dedup", "paper", "--tasks", "2", "--overwrite"]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="benchmarks/collect/data")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    data = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clean = min(timed(data, tmp / "clean") for _ in range(args.repeat))
        print(json.dumps({"input": data.name, "shape": None, "seconds": round(clean, 3)}), flush=True)
        for shape in SHAPES:
            hostile = tmp / shape
            hostile.mkdir()
            hostile_copy(data, hostile, shape)
            seconds = min(timed(hostile, tmp / f"out-{shape}") for _ in range(args.repeat))
            stats = json.loads((tmp / f"out-{shape}" / "stats.json").read_text())
            print(json.dumps({"input": data.name, "shape": shape, "seconds": round(seconds, 3),
                              "over_clean": round(seconds / clean, 3), "rejected": stats["rejected"]}), flush=True)


if __name__ == "__main__":
    main()
