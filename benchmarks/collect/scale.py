"""The 10x collect run: a `--scale 10` realistic input, then `mathforge collect --tasks 4` on each executor, timed."""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from versus_reference import models_of, run_ours

HERE = Path(__file__).resolve().parent
RUNS = ["--tasks 4 --executor local", "--tasks 4 --executor ray"]
BYTES_PER_SAMPLE = 1100  # prompt + completion + JSON framing, as measured on the 1x realistic input


def input_bytes(data: Path) -> int:
    return sum(p.stat().st_size for p in data.rglob("*") if p.is_file())


def per_sample_bytes() -> float:
    """Bytes per sample of the 1x realistic input when it exists (the 10x input repeats it), else an estimate."""
    meta = HERE / "data-realistic" / "meta.json"
    if meta.exists():
        return input_bytes(HERE / "data-realistic") / json.loads(meta.read_text())["samples"]
    return BYTES_PER_SAMPLE


def reusable(data: Path, args) -> bool:
    meta = data / "meta.json"
    if not meta.exists():
        return False
    meta = json.loads(meta.read_text())
    return meta.get("scale") == args.scale and meta.get("models") == args.models and meta.get("seeds") == args.seeds \
        and (args.problems is None or meta.get("base_problems") == args.problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(HERE / "data-realistic-x10"))
    parser.add_argument("--train", default="../shared/data/gsm8k/train.jsonl")
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--problems", type=int, default=None, help="base problems (default: all 7,473)")
    parser.add_argument("--runs", nargs="*", default=RUNS, help="extra `mathforge collect` arguments, one run each")
    parser.add_argument("--repeat", type=int, default=1, help="best of N per run")
    parser.add_argument("--check-only", action="store_true", help="report the disk needed and stop")
    args = parser.parse_args()
    data = Path(args.data)
    base = args.problems or sum(1 for _ in open(args.train, "rb"))
    samples = base * args.scale * args.models * args.seeds
    need = int(per_sample_bytes() * samples * 1.15)  # + the output corpus and logs
    free = shutil.disk_usage(data.parent if data.parent.exists() else Path.cwd()).free
    disk = {"input": data.name, "samples": samples, "disk_needed_gb": round(need / 1e9, 2),
            "disk_free_gb": round(free / 1e9, 2), "reuse": reusable(data, args)}
    if not disk["reuse"] and need > free:
        print(json.dumps({**disk, "error": "not enough disk for the input; free space or pass --data elsewhere"}))
        sys.exit(2)
    print(json.dumps(disk), flush=True)
    if args.check_only:
        return
    if not disk["reuse"]:
        cmd = [sys.executable, str(HERE / "realistic.py"), "--train", args.train, "--out", str(data), "--scale",
               str(args.scale), "--models", str(args.models), "--seeds", str(args.seeds)]
        cmd += ["--problems", str(args.problems)] if args.problems else []
        started = time.perf_counter()
        subprocess.run(cmd, check=True)
        print(json.dumps({"generated": str(data), "seconds": round(time.perf_counter() - started, 1),
                          "bytes": input_bytes(data)}), flush=True)
    for extra in args.runs:
        with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
            tmp = Path(tmp)
            try:
                report = tmp / "tasks.json"
                runs = [run_ours(data, tmp / "out", shlex.split(extra) + ["--task-report", str(report)],
                                 tmp / f"run{r}.log") for r in range(args.repeat)]
            except SystemExit as exc:  # one executor failing does not hide the others' figures
                print(json.dumps({"input": data.name, "extra": extra, "error": str(exc)[-2000:]}), flush=True)
                continue
            best = min(runs, key=lambda r: r["seconds"])
            stats = json.loads((tmp / "out" / "stats.json").read_text())
            line = {"input": data.name, "models": len(models_of(data)), "samples": stats.get("samples"),
                    "extra": extra, "seconds": best["seconds"], "seconds_all": [r["seconds"] for r in runs],
                    "samples_per_s": round(stats["samples"] / best["seconds"]) if stats.get("samples") else None,
                    "peak_rss_mb": best["peak_rss_mb"], "peak_tree_rss_mb": best["peak_tree_rss_mb"],
                    "kept": stats.get("distinct"), "levenshtein_calls": stats.get("levenshtein_calls")}
            partitions = json.loads(report.read_text())["partitions"]
            line["partitions"] = len(partitions)
            line["per_partition"] = {"samples": sum(p["samples"] for p in partitions) // len(partitions),
                                     "seconds_max": max(p["seconds"] for p in partitions),
                                     "peak_rss_mb_max": max(p["peak_rss_mb"] for p in partitions)}
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
