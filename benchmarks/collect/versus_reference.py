"""Time `mathforge collect --dedup paper` and the literal reference rule side by side on one input; check kept sets."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parents[1] / "tests"
SEED_FILE = re.compile(r"raw_generation_([0-9.]+)_(\d+)\.json$")


def mathforge_command() -> str:
    """The `mathforge` entry point next to this interpreter (the repo's venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("mathforge")
    return str(beside) if beside.exists() else "mathforge"


def models_of(data: Path) -> list[Path]:
    return sorted((p for p in data.glob("model*") if p.is_dir()), key=lambda p: (len(p.name), p.name))


def timed(cmd: list[str], log: Path, sample_tree: bool = True) -> dict:
    """Run one command; wall seconds, exit code, the peak RSS of its largest process (wait4: the command and every
    descendant it reaped) and, sampled every 0.2 s, the peak summed RSS of its process tree (shared pages counted
    once per process, so an upper bound)."""
    tree_peak = [0]
    done = threading.Event()
    with open(log, "wb") as handle:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT)

        def sample() -> None:
            try:
                import psutil
            except ImportError:
                return
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not done.wait(0.2):
                try:
                    total = root.memory_info().rss
                    for child in root.children(recursive=True):
                        try:
                            total += child.memory_info().rss
                        except psutil.Error:
                            pass
                except psutil.Error:
                    return
                tree_peak[0] = max(tree_peak[0], total)

        sampler = threading.Thread(target=sample, daemon=True) if sample_tree else None
        if sampler:
            sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if sampler:
            sampler.join()
    return {"seconds": round(seconds, 3), "rc": proc.returncode, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "peak_tree_rss_mb": round(tree_peak[0] / 2**20, 1) if tree_peak[0] else None}


def run_ours(data: Path, out: Path, extra: list[str], log: Path, gold_rows: bool = False) -> dict:
    """The whole `mathforge collect` command, timed from outside as a user would see it."""
    cmd = [mathforge_command(), "collect", "--gold", str(data / "gold.jsonl")]
    for model in models_of(data):
        cmd += ["--samples", str(model)]
    cmd += ["--out", str(out), "--dedup", "paper", "--overwrite"] + ([] if gold_rows else ["--no-gold-rows"]) + extra
    result = timed(cmd, log)
    result["command"] = shlex.join(cmd)
    if result["rc"] != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"mathforge collect failed (rc {result['rc']}):\n{tail}")
    return result


def ours_kept(out: Path, data: Path) -> list[list[str]]:
    """Kept solutions per gold problem index, in row order, from OUT/data/*.parquet (matched by question text)."""
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in _lines(data / "gold.jsonl")]
    questions = [row.get("question") or row.get("query") for row in rows]
    index = {q: i for i, q in enumerate(questions)}
    kept: list[list[str]] = [[] for _ in questions]
    if len(index) == len(questions):
        for shard in sorted((out / "data").glob("*.parquet")):
            table = pq.read_table(shard, columns=["question", "solution"])
            for question, solution in zip(table.column("question").to_pylist(), table.column("solution").to_pylist()):
                kept[index[question]].append(solution)
        return kept
    from mathforge.builders.sources import load_local  # repeated questions: map by problem id instead

    by_id = {p.problem_id: p.index for p in load_local(data / "gold.jsonl")}
    for shard in sorted((out / "data").glob("*.parquet")):
        table = pq.read_table(shard, columns=["problem_id", "solution"])
        for pid, solution in zip(table.column("problem_id").to_pylist(), table.column("solution").to_pylist()):
            kept[by_id[pid]].append(solution)
    return kept


def _lines(path: Path) -> list[str]:
    """Lines split on newlines only (str.splitlines would also split inside JSON strings at U+2028)."""
    return [line for line in path.read_text().split("\n") if line]


def reference_worker(data: Path, result_path: Path) -> None:
    """In a fresh process: the reference rule over the whole input with rapidfuzz's distance, calls counted."""
    started = time.perf_counter()
    sys.path.insert(0, str(TESTS))
    import reference
    from rapidfuzz.distance import Levenshtein

    calls = [0]
    distance = Levenshtein.distance

    def counted(a: str, b: str) -> int:
        calls[0] += 1
        return distance(a, b)

    reference.levenshtein = counted  # same distance at C speed; the rule itself stays literal
    with open(data / "gold.jsonl") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    rows = [{"answer": row.get("answer") or row["response"]} for row in rows]
    seeds = [int(m.group(2)) for folder in models_of(data) for p in folder.iterdir() if (m := SEED_FILE.search(p.name))]
    kept = reference.reference_collect(rows, [str(m) for m in models_of(data)], max(seeds, default=0))
    seconds = time.perf_counter() - started
    result_path.write_text(json.dumps({"seconds": seconds, "levenshtein_calls": calls[0],
                                       "kept": [kept[i] for i in range(len(rows))]}))


def distinct_fraction(data: Path) -> float | None:
    """Mean over problems of distinct texts / samples, from the generator's meta.json, else measured here."""
    meta = data / "meta.json"
    if meta.exists():
        return json.loads(meta.read_text()).get("distinct_text_fraction")
    per_problem: list[set[bytes]] = []
    total: list[int] = []
    for folder in models_of(data):
        for path in folder.glob("raw_generation_*.json"):
            for i, line in enumerate(_lines(path)):
                if i == len(per_problem):
                    per_problem.append(set())
                    total.append(0)
                per_problem[i].add(hashlib.blake2b(json.loads(line)[0][1].encode(), digest_size=8).digest())
                total[i] += 1
    return round(sum(len(s) / t for s, t in zip(per_problem, total)) / len(total), 4) if total else None


def compare(data: Path, extra: list[str], repeat: int, skip_reference: bool, keep_out: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="versus-") as tmp:
        tmp = Path(tmp)
        out = keep_out or tmp / "out"
        load = [round(x, 2) for x in os.getloadavg()]  # the machine may be shared: noisy timings show here
        runs = [run_ours(data, out, extra, tmp / f"ours{r}.log") for r in range(repeat)]
        best = min(runs, key=lambda r: r["seconds"])  # best of N: other load on the machine is noise
        stats = json.loads((out / "stats.json").read_text())
        line = {"input": data.name, "samples": stats.get("samples"), "distinct_text_fraction": distinct_fraction(data),
                "extra": " ".join(extra), "ours_seconds": best["seconds"],
                "ours_seconds_all": [r["seconds"] for r in runs], "ours_peak_rss_mb": best["peak_rss_mb"],
                "ours_peak_tree_rss_mb": best["peak_tree_rss_mb"], "load_before": load}
        ours_calls = stats.get("levenshtein_calls")
        kept = ours_kept(out, data)
        line["kept"] = sum(map(len, kept))
        if skip_reference:
            line["levenshtein_calls"] = {"ours": ours_calls}
            return line
        result_path = tmp / "reference.json"
        ref = timed([sys.executable, str(Path(__file__).resolve()), "--reference-worker", str(data), str(result_path)],
                    tmp / "reference.log")
        if ref["rc"] != 0:
            raise SystemExit(f"reference failed:\n{(tmp / 'reference.log').read_text()[-3000:]}")
        result = json.loads(result_path.read_text())
        expected = result["kept"]
        differing = [i for i in range(max(len(kept), len(expected)))
                     if (kept[i] if i < len(kept) else None) != (expected[i] if i < len(expected) else None)]
        line.update({"reference_seconds": ref["seconds"], "reference_inner_seconds": round(result["seconds"], 3),
                     "reference_peak_rss_mb": ref["peak_rss_mb"],
                     "ratio": round(ref["seconds"] / best["seconds"], 2),
                     "levenshtein_calls": {"ours": ours_calls, "reference": result["levenshtein_calls"]},
                     "kept_reference": sum(map(len, expected)), "identical": not differing})
        if differing:
            line["differing_problems"] = len(differing)
            line["first_differing_problem"] = differing[0]
        return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", action="append", help="input dir (gold.jsonl + model*/); repeatable")
    parser.add_argument("--extra", default="", help='extra `mathforge collect` arguments, e.g. "--tasks 2"')
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs of ours (the reference runs once)")
    parser.add_argument("--skip-reference", action="store_true", help="time ours only (big inputs)")
    parser.add_argument("--keep-out", type=Path, default=None, help="write ours' output here instead of a temp dir")
    parser.add_argument("--reference-worker", nargs=2, metavar=("DATA", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_worker:
        reference_worker(Path(args.reference_worker[0]), Path(args.reference_worker[1]))
        return
    failed = False
    for data in args.data or ["benchmarks/collect/data-realistic"]:
        line = compare(Path(data), shlex.split(args.extra), max(1, args.repeat), args.skip_reference, args.keep_out)
        failed |= line.get("identical") is False
        print(json.dumps(line), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
