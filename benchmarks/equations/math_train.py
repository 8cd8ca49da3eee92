"""The equation reader on MATH train's 7,500 human solutions (and GSM8K's): false calculator failures, relation
coverage, error recall by injection, key invariance, multi-path keys, groundedness, canonical collect on a samples
table built from the split. Prints a summary; `--out` writes every figure and every listed case as JSON."""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from mathforge.testing import multipath
from mathforge.testing.latex_variants import inject_error, latex_solution, reformat
from mathforge.verify.equations import annotation_spans, reasoning_key, steps, ungrounded
from mathforge.verify.relations import FALSE, read

ROOT = Path(__file__).resolve().parents[2]
RESULT_RE = re.compile(r"\$?\s*(\d+(?:,\d{3})*(?:\.\d+)?)")


def first_error(text: str):
    """(relation, pair index) of the first equality the reader proves wrong, or None."""
    for relation in read(text).relations:
        for i, verdict in enumerate(relation.verdicts):
            if verdict == FALSE:
                return relation, i
    return None


def coverage(solutions: list[dict]) -> dict:
    """Read every solution: equations, checks, unreadable sides, refuted solutions (listed), time."""
    wall, cpu = time.perf_counter(), time.process_time()
    readings = [read(row["solution"]) for row in solutions]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    refuted = [{"id": row["id"], "refuted": reading.wrong} for row, reading in zip(solutions, readings) if reading.wrong]
    relations = [len(r.relations) for r in readings]
    return {"solutions": len(solutions), "with_relations": sum(1 for n in relations if n),
            "relations": sum(relations), "relations_per_solution": round(statistics.mean(relations), 2),
            "equalities_checked": sum(r.checked for r in readings),
            "unreadable_sides": sum(r.unreadable for r in readings),
            "solutions_with_unreadable": sum(1 for r in readings if r.unreadable),
            "refuted_solutions": len(refuted), "refuted": refuted,
            "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "ms_per_solution_cpu": round(1000 * cpu / len(solutions), 3)}


def recall(solutions: list[dict], seed: int) -> dict:
    """Change one checked-true equality's result per solution (`inject_error`); is it proven wrong, and is the
    first proven error the injected one? Solutions the reader already refutes are left out."""
    rng = random.Random(seed)
    tried = proven = first = 0
    missed = []
    for row in solutions:
        if read(row["solution"]).wrong:
            continue
        injected = inject_error(row["solution"], rng)
        if injected is None:
            continue
        text, side_start, pair = injected
        tried += 1
        found = first_error(text)
        if found is None:
            if len(missed) < 30:
                missed.append({"id": row["id"], "pair": pair})
            continue
        proven += 1
        relation, i = found
        first += relation.sides[i + 1].start == side_start
    return {"injected": tried, "proven": proven, "first_is_injected": first,
            "recall": round(proven / tried, 4) if tried else None,
            "first_rate": round(first / tried, 4) if tried else None, "missed_examples": missed}


def gsm8k_plain(rows: list[dict]) -> list[dict]:
    """GSM8K answers without their `<<...>>` annotations, and where each annotated equality's written result sits in
    the plain text (only annotations written out in the text: `48/2 = <<48/2=24>>24`)."""
    out = []
    for n, row in enumerate(rows):
        answer, pieces, last, results = row["answer"], [], 0, []
        removed = 0  # annotation characters before the current point
        for start, end, _ in annotation_spans(answer):
            pieces.append(answer[last:start])
            removed += end - start
            before = answer[max(0, start - 3):start].rstrip(" $")
            m = RESULT_RE.match(answer, end)
            if before.endswith("=") and m and "<<" not in m.group(1):
                results.append((m.start(1) - removed, m.end(1) - removed))
            last = end
        pieces.append(answer[last:])
        out.append({"id": f"gsm8k-train-{n}", "solution": "".join(pieces), "results": results,
                    "question": row["question"]})
    return out


def gsm8k_recall(rows: list[dict], seed: int) -> dict:
    """Recall on plain-text GSM8K with the annotations as the oracle: every annotated equality written out in the text
    is a candidate, whether or not the reader checks it; one per solution has its result's last digit changed."""
    rng = random.Random(seed)
    tried = proven = first = 0
    missed = []
    for row in rows:
        if not row["results"] or read(row["solution"]).wrong:
            continue
        start, end = rng.choice(row["results"])
        text = row["solution"]
        digit = int(text[end - 1])
        changed = text[:end - 1] + str(digit + 1 if digit < 9 else 8) + text[end:]
        tried += 1
        found = first_error(changed)
        if found is None:
            if len(missed) < 30:
                missed.append({"id": row["id"], "result": text[start:end], "line": _line(changed, start)})
            continue
        proven += 1
        relation, i = found
        side = relation.sides[i + 1]
        first += side.start <= start < side.end + 1
    return {"injected": tried, "proven": proven, "first_is_injected": first,
            "recall": round(proven / tried, 4) if tried else None,
            "first_rate": round(first / tried, 4) if tried else None, "missed_examples": missed}


def _line(text: str, at: int) -> str:
    return text[text.rfind("\n", 0, at) + 1:(text.find("\n", at) + 1 or len(text) + 1) - 1]


def keys(solutions: list[dict]) -> dict:
    """Key invariance under `reformat`, and non-fallback keys shared by solutions of different problems."""
    same = same_keyed = keyed = 0
    changed = []
    by_key: dict[str, list[str]] = defaultdict(list)
    sizes: dict[str, int] = {}
    for row in solutions:
        key = reasoning_key(row["solution"])
        again = reasoning_key(reformat(row["solution"]))
        same += key == again
        if not key.startswith("text:"):
            keyed += 1
            same_keyed += key == again
            by_key[key].append(row["id"])
            sizes[key] = key.count("|") + 1
        if key != again and len(changed) < 30:
            changed.append({"id": row["id"], "key": key[:300], "reformatted_key": again[:300]})
    shared = {k: v for k, v in by_key.items() if len(v) > 1}
    return {"solutions": len(solutions), "invariant": same, "invariant_rate": round(same / len(solutions), 4),
            "keyed": keyed, "keyed_invariant": same_keyed, "changed_examples": changed,
            "shared_keys": len(shared), "solutions_sharing": sum(len(v) for v in shared.values()),
            "shared_by_relations": dict(sorted(Counter(min(sizes[k], 3) for k in shared).items())),
            "shared_examples": [{"key": k[:200], "ids": v} for k, v in list(shared.items())[:60]]}


def multipath_keys(count: int, seed: int) -> dict:
    """The multi-path family's listed paths rendered in LaTeX twice each: keys equal exactly when paths are."""
    rng = random.Random(seed)
    agree = pairs = same_path_same_key = renders = 0
    for row in multipath.problems(count, seed=seed):
        paths = multipath.path_keys(row)
        rendered = []
        for solution in row["solutions"]:
            step_list = []
            for body in multipath.ANNOTATION.findall(solution):
                lhs, _, result = body.partition("=")
                op = next(c for c in "+-*/" if c in lhs)
                x, y = lhs.split(op)
                step_list.append((int(x), op, int(y), int(result)))
            one, two = latex_solution(step_list, rng), latex_solution(step_list, rng)
            renders += 1
            same_path_same_key += reasoning_key(one) == reasoning_key(two)
            rendered.append(reasoning_key(one))
        for i in range(len(rendered)):
            for j in range(i + 1, len(rendered)):
                pairs += 1
                agree += (rendered[i] == rendered[j]) == (paths[i] == paths[j])
    return {"problems": count, "paths": renders, "same_path_same_key": same_path_same_key,
            "path_pairs": pairs, "pairs_agreeing": agree}


def grounding(rows: list[dict]) -> dict:
    """Ungrounded operands (neither in the question, nor computed earlier, nor a small constant) per solution."""
    counts = [len(ungrounded(row["question"], row["solution"])) for row in rows]
    flagged = [(row["id"], ungrounded(row["question"], row["solution"])) for row, n in zip(rows, counts) if n][:15]
    return {"solutions": len(rows), "with_ungrounded": sum(1 for n in counts if n), "operands": sum(counts),
            "examples": [{"id": i, "ungrounded": u} for i, u in flagged]}


def multipath_grounding(count: int, seed: int) -> dict:
    """The flag against the family's own checker: listed solutions, and copies whose first step uses 97 instead."""
    rng = random.Random(seed)
    agree = total = flagged_listed = flagged_forged = 0
    for row in multipath.problems(count, seed=seed):
        solution = rng.choice(row["solutions"])
        body = multipath.ANNOTATION.findall(solution)[0]
        lhs, _, _ = body.partition("=")
        op = next(c for c in "+-*/" if c in lhs)
        x = int(lhs.split(op)[0])
        if op not in "+-" or "97" in row["question"]:
            continue
        forged = solution.replace(f"<<{body}>>", f"<<{x}{op}97={x + 97 if op == '+' else x - 97}>>", 1)
        for text, forged_one in ((solution, False), (forged, True)):
            mine = bool(ungrounded(row["question"], text))
            theirs = not multipath.check(row, text).grounded
            total += 1
            agree += mine == theirs
            flagged_listed += mine and not forged_one
            flagged_forged += mine and forged_one
    return {"solutions": total, "agree_with_family_checker": agree, "listed_flagged": flagged_listed,
            "forged_flagged": flagged_forged}


def collect_table(solutions: list[dict], seed: int, workers: int) -> dict:
    """Canonical collect on a samples table from the split: per problem its solution, a reformatted copy, a copy with
    one injected error, and the next problem's solution. Each sample's verdict is also taken from the judge alone,
    by kind; then the real `run_collect` gives the totals."""
    from mathforge.builders.build import run_collect
    from mathforge.builders.sources import load_local
    from mathforge.verify.judges import CanonicalJudge

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        gold = Path(tmp) / "math.jsonl"
        gold.write_text("".join(json.dumps({"problem": r["question"], "solution": r["solution"]}) + "\n"
                                for r in solutions))
        problems = load_local(gold)
        samples, kinds = [], []
        for i, row in enumerate(solutions):
            injected = inject_error(row["solution"], rng, keep_answer=True)
            cases = [("solution", row["solution"]), ("reformatted", reformat(row["solution"]))]
            if injected is not None:
                cases.append(("injected", injected[0]))
            cases.append(("other", solutions[(i + 1) % len(solutions)]["solution"]))
            for kind, text in cases:
                samples.append({"idx": i, "model": kind, "solution": text})
                kinds.append(kind)
        table = Path(tmp) / "samples.jsonl"
        table.write_text("".join(json.dumps(s) + "\n" for s in samples))
        judge = CanonicalJudge(problems)
        verdicts: dict[str, Counter] = defaultdict(Counter)
        calculator_correct = []
        started = time.perf_counter()
        for sample, kind in zip(samples, kinds):
            status = judge.judge(sample["idx"], sample["solution"])[0]
            verdicts[kind][status] += 1
            if status == "calculator" and kind in ("solution", "reformatted"):
                calculator_correct.append({"kind": kind, "id": solutions[sample["idx"]]["id"]})
        judged = time.perf_counter() - started
        started = time.perf_counter()
        stats = run_collect(problems, [str(table)], Path(tmp) / "out", "canonical", workers=workers).stats
        collected = time.perf_counter() - started
    return {"problems": len(solutions), "samples": len(samples),
            "verdicts_by_kind": {k: dict(v) for k, v in verdicts.items()},
            "correct_rejected_as_calculator": calculator_correct, "judge_seconds": round(judged, 1),
            "collect": {"distinct": stats["distinct"], "rejected": stats["rejected"], "correct": stats["correct"],
                        "seconds": round(collected, 1)}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--math", default=str(ROOT.parent / "shared/data/math/train.jsonl"))
    parser.add_argument("--gsm8k", default=str(ROOT.parent / "shared/data/gsm8k/train.jsonl"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--multipath", type=int, default=300, help="multi-path family problems rendered in LaTeX")
    parser.add_argument("--collect", action="store_true", help="also run canonical collect on the whole split")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", help="write every figure and listed case here (JSON)")
    args = parser.parse_args(argv)
    math_rows = [json.loads(line) for line in open(args.math)]
    math = [{"id": r["unique_id"], "question": r["problem"], "solution": r["solution"]} for r in math_rows]
    gsm = gsm8k_plain([json.loads(line) for line in open(args.gsm8k)])
    report = {"command": " ".join(["python", "benchmarks/equations/math_train.py"] + (argv or sys.argv[1:])),
              "math": {"coverage": coverage(math)}, "gsm8k_plain": {"coverage": coverage(gsm)}}
    report["math"]["recall"] = recall(math, args.seed)
    report["gsm8k_plain"]["recall_annotated"] = gsm8k_recall(gsm, args.seed)
    report["gsm8k_plain"]["recall"] = recall(gsm, args.seed)
    report["math"]["keys"] = keys(math)
    report["multipath_latex"] = multipath_keys(args.multipath, args.seed)
    report["math"]["grounding"] = grounding(math)
    gsm_annotated = [{"id": r["id"], "question": r["question"], "solution": a["answer"]}
                     for r, a in zip(gsm, (json.loads(line) for line in open(args.gsm8k)))]
    report["gsm8k_annotated"] = {"grounding": grounding(gsm_annotated),
                                 "refuted": sum(1 for r in gsm_annotated if any(s.wrong for s in steps(r["solution"])))}
    report["multipath_grounding"] = multipath_grounding(args.multipath, args.seed)
    if args.collect:
        report["math"]["collect"] = collect_table(math, args.seed, args.workers)
    summary = json.dumps(report, indent=1, default=str)
    if args.out:
        Path(args.out).write_text(summary + "\n")
    for part in ("math", "gsm8k_plain"):
        c = report[part]["coverage"]
        print(f"{part}: {c['solutions']} solutions, {c['with_relations']} with relations, {c['relations']} relations "
              f"({c['relations_per_solution']}/solution), {c['equalities_checked']} equalities checked, "
              f"{c['unreadable_sides']} unreadable sides, {c['refuted_solutions']} refuted, "
              f"{c['cpu_seconds']} s CPU ({c['ms_per_solution_cpu']} ms/solution)")
    print(json.dumps({k: v for k, v in report.items() if k not in ("math", "gsm8k_plain")}, default=str))
    for part in ("math", "gsm8k_plain"):
        for name in ("recall", "recall_annotated"):
            if name in report[part]:
                r = report[part][name]
                print(f"{part} {name}: {r['proven']}/{r['injected']} proven ({r['recall']}), first = injected "
                      f"{r['first_is_injected']} ({r['first_rate']})")
    k = report["math"]["keys"]
    print(f"keys: invariant {k['invariant']}/{k['solutions']} ({k['invariant_rate']}), keyed {k['keyed_invariant']}/"
          f"{k['keyed']}; {k['shared_keys']} non-fallback keys shared across problems ({k['solutions_sharing']} "
          f"solutions; by relations {k['shared_by_relations']})")
    for refuted in report["math"]["coverage"]["refuted"]:
        print("refuted:", refuted["id"], refuted["refuted"])
    if "collect" in report["math"]:
        print(json.dumps({k: v for k, v in report["math"]["collect"].items()}, default=str))
    return report


if __name__ == "__main__":
    main()
