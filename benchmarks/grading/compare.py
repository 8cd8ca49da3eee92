"""Measure mathforge's grader against plain Math-Verify on the hand-labelled (gold, prediction) pairs."""
from __future__ import annotations

import argparse
import json
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAIRS_PATH = HERE / "pairs.jsonl"
RESULTS_PATH = HERE / "results.json"
GRADERS = ("mathforge", "math_verify")


def load_jsonl(path: Path) -> list[dict]:
    """Every non-blank line of a JSON Lines file, parsed."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def mathforge_says(gold: str, pred: str, mode: str) -> tuple[bool, float]:
    """mathforge's grade(): (verdict is "correct", seconds taken). Only the public call, no internals."""
    from mathforge.verify.grader import grade

    start = time.perf_counter()
    verdict = grade(gold, pred, mode=mode)
    return verdict.verdict == "correct", time.perf_counter() - start


def math_verify_says(gold: str, pred: str) -> bool:
    """Plain Math-Verify with its default configs; any exception counts as "not equivalent".

    Math-Verify's parse() of a plain string may run sympy's parse_expr (an eval). That is acceptable
    here only because every string comes from our own fixed, hand-written pairs.jsonl, never from a model.
    """
    from math_verify import parse, verify

    try:
        return bool(verify(parse(gold), parse(pred)))
    except Exception:  # noqa: BLE001 - any failure of Math-Verify counts as "not equivalent"
        return False


def judge_all(pairs: list[dict], mode: str) -> list[dict]:
    """One row per pair: the label, both graders' answers and mathforge's wall time."""
    mathforge_says(r"\frac{1}{2}", "0.5", mode)  # warm-up: one-time imports are no pair's time
    rows = []
    for pair in pairs:
        mathforge, seconds = mathforge_says(pair["gold"], pair["pred"], mode)
        rows.append({"id": pair["id"], "category": pair["category"], "label": pair["equivalent"],
                     "mathforge": mathforge, "math_verify": math_verify_says(pair["gold"], pair["pred"]),
                     "seconds": seconds})
    return rows


def score(rows: list[dict], grader: str) -> dict:
    """Accuracy, false accepts (said equivalent, label false) and false rejects (the reverse)."""
    false_accepts = sum(1 for r in rows if r[grader] and not r["label"])
    false_rejects = sum(1 for r in rows if not r[grader] and r["label"])
    return {"pairs": len(rows), "accuracy": round(1 - (false_accepts + false_rejects) / len(rows), 4),
            "false_accepts": false_accepts, "false_rejects": false_rejects}


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per category (in file order) and overall: both graders' scores and mathforge's max seconds per pair."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["category"], []).append(row)
    groups["overall"] = rows
    return {name: {**{g: score(group, g) for g in GRADERS},
                   "mathforge_max_seconds": round(max(r["seconds"] for r in group), 3)}
            for name, group in groups.items()}


def markdown_table(summary: dict[str, dict]) -> str:
    """The summary as a Markdown table: accuracy, false accepts (FA) and false rejects (FR) per grader."""
    lines = ["| category | pairs | mathforge acc | FA | FR | max s | math-verify acc | FA | FR |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        mf, mv = s["mathforge"], s["math_verify"]
        lines.append(f"| {name} | {mf['pairs']} | {mf['accuracy']:.1%} | {mf['false_accepts']} | "
                     f"{mf['false_rejects']} | {s['mathforge_max_seconds']:.2f} | {mv['accuracy']:.1%} | "
                     f"{mv['false_accepts']} | {mv['false_rejects']} |")
    return "\n".join(lines)


def misjudged(rows: list[dict], grader: str) -> list[str]:
    """Ids of the pairs a grader got wrong."""
    return [r["id"] for r in rows if r[grader] != r["label"]]


def show_errors(rows: list[dict], pairs: list[dict], grader: str) -> None:
    """Print every pair a grader misjudged, with its label and note."""
    by_id = {p["id"]: p for p in pairs}
    wrong = misjudged(rows, grader)
    print(f"\n## {grader}: {len(wrong)} misjudged")
    for pid in wrong:
        p = by_id[pid]
        kind = "false reject" if p["equivalent"] else "false accept"
        print(f"- {pid} ({kind}; {p['note']}): gold={clip(p['gold'])} pred={clip(p['pred'])}")


def clip(text: str, limit: int = 120) -> str:
    """A one-line repr, shortened in the middle when long."""
    text = repr(text)
    return text if len(text) <= limit else f"{text[: limit // 2]} ... {text[-limit // 2:]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["auto", "math", "gsm8k"], default="auto", help="mathforge grade() mode")
    parser.add_argument("--pairs", type=Path, default=PAIRS_PATH)
    parser.add_argument("--out", type=Path, default=RESULTS_PATH)
    parser.add_argument("--show-errors", action="store_true", help="list every misjudged pair per grader")
    args = parser.parse_args(argv)

    pairs = load_jsonl(args.pairs)
    rows = judge_all(pairs, args.mode)
    summary = summarise(rows)
    print(f"mathforge mode={args.mode}, {len(pairs)} pairs\n")
    print(markdown_table(summary))
    if args.show_errors:
        for grader in GRADERS:
            show_errors(rows, pairs, grader)
    result = {"mode": args.mode, "math_verify_version": metadata.version("math-verify"), "summary": summary,
              "misjudged": {g: misjudged(rows, g) for g in GRADERS}}
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
