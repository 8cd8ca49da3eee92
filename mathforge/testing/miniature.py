"""What the miniature benchmarks share: problem files, checked accuracy, phase timing, seed-paired differences."""
from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import orjson

from mathforge.testing import multipath


def difficulty(row: dict) -> int:
    """A multipath problem's steps: the calculations of its gold solution."""
    return len(multipath.ANNOTATION.findall(row["answer"]))


def write_rows(path: Path, rows: list[dict]) -> None:
    """Problems as `mathforge build` and `mathforge eval` read them, with a `difficulty` column (steps)."""
    with open(path, "wb") as handle:
        for row in rows:
            handle.write(orjson.dumps({"question": row["question"], "answer": row["answer"],
                                       "difficulty": difficulty(row)}) + b"\n")


def keyed(rows: list[dict]) -> dict[str, dict]:
    """Problems by question, each with its listed paths' keys (what `multipath.check` compares with)."""
    return {r["question"]: {**r, "_keys": multipath.path_keys(r)} for r in rows}


def checked_accuracy(eval_dir: Path, rows: dict[str, dict]) -> float:
    """Accuracy of an eval's samples by the family's checker: the answer, every annotation, every operand given or
    computed earlier (stricter than the shared grader, which reads the final answer)."""
    found = [orjson.loads(line) for line in (eval_dir / "samples.jsonl").read_bytes().splitlines() if line.strip()]
    ok = 0
    for r in found:
        verdict = multipath.check(rows[r["question"]], r["text"], rows[r["question"]]["_keys"])
        ok += verdict.correct and verdict.grounded
    return round(ok / max(len(found), 1), 4)


class Phases:
    """Wall seconds per named phase, summed over repeats, in first-seen order."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, fn, *args, **kwargs):
        t = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t, 1)
        return result


def paired_difference(diffs: list[float]) -> dict:
    """Mean of per-seed paired differences and its standard error across seeds (n - 1 in the variance); an effect
    counts only beyond two of those."""
    mean = sum(diffs) / len(diffs)
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs)) if len(diffs) > 1 else None
    return {"differences": [round(d, 4) for d in diffs], "mean": round(mean, 4),
            "se": round(se, 4) if se is not None else None,
            "beyond_2se": bool(se is not None and abs(mean) > 2 * se)}


def comparison_table(comparisons: dict[str, dict]) -> list[str]:
    """Markdown rows: every paired comparison, its per-seed differences, mean +- SE, and whether beyond 2 SE."""
    lines = ["| paired by seed | differences | mean ± SE | beyond 2 SE |", "|---|---|---|---|"]
    for name, c in comparisons.items():
        se = f"{c['se']:.1%}" if c["se"] is not None else "n/a"
        lines.append(f"| {name} | {', '.join(f'{d:+.1%}' for d in c['differences'])} | {c['mean']:+.1%} ± {se} | "
                     f"{'yes' if c['beyond_2se'] else 'no'} |")
    return lines


def phase_lines(seeds: list[dict]) -> list[str]:
    lines = ["Wall seconds per phase:", ""]
    for seed in seeds:
        lines.append(f"- seed {seed['seed']}: " + ", ".join(f"{k} {v:.0f}" for k, v in seed["phases"].items()) +
                     f"; total {seed['seconds']:.0f}")
    return lines


def settings(settings_class, description: str, default_out: Path, argv: list[str] | None):
    """Parse `--out --quick --seeds --overwrite` and one option per field of the settings dataclass; prepare `--out`
    (refused when it holds anything and `--overwrite` is not given). Returns (settings, out) or None if refused."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke check of the whole protocol")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--overwrite", action="store_true")
    for name, value in asdict(settings_class()).items():
        if name != "seeds":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=None)
    args = parser.parse_args(argv)
    changes = {name: getattr(args, name) for name in asdict(settings_class()) if getattr(args, name, None) is not None}
    s = settings_class.quick(**changes) if args.quick else settings_class(**changes)
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            print(f"{out} exists and is not empty (use --overwrite)", file=sys.stderr)
            return None
        if not is_run_dir(out):  # --overwrite replaces an earlier run, never a directory that holds anything else
            print(f"{out} is not a miniature run's directory: not overwritten", file=sys.stderr)
            return None
        shutil.rmtree(out)
    (out / "data").mkdir(parents=True)
    return s, out


def is_run_dir(path: Path) -> bool:
    """Does `path` hold only what a miniature run writes (`data/`, `seed-<n>/`, its `.json` summary, `table.md`)?"""
    return path.is_dir() and not path.is_symlink() and all(
        (e.name == "data" or re.fullmatch(r"seed-\d+", e.name)) and e.is_dir() and not e.is_symlink()
        or e.name == "table.md" or re.fullmatch(r"[a-z-]+\.json", e.name) and e.is_file()
        for e in path.iterdir())


def command(script: str, argv: list[str] | None) -> str:
    """The command line that reproduces this run."""
    return f"HF_HUB_OFFLINE=1 python {script} " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))


def write_summary(out: Path, name: str, summary: dict, text: str) -> None:
    """`<name>.json` (every figure) and `table.md` into `out`; the table printed."""
    (out / f"{name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "table.md").write_text(text + "\n")
    print(text)
