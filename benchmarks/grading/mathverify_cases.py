"""Extract Math-Verify 0.9.0's published (gold, pred, expected) test cases and grade them with mathforge."""
# Which of the sdist's tests are extracted (by `ast` from the source, never by running or exec-ing it):
#
# Included: every row of a @pytest.mark.parametrize table whose test asserts either
#   compare_strings(gold, pred, match_types=[...latex...], ...) == expected   (tests/test_all.py's helper,
#   used by test_all, test_boxed, test_numina_cases, test_open_thoughts), or
#   int(verify(parse(gold), parse(pred))) == result                          (test_yujianll),
# when the row compares with Math-Verify's default semantics: precision (float_rounding) 6, strict=True,
# allow_set_relation_comp=False. These are the cases "is this prediction the gold answer?" that
# mathforge's grade(gold, pred, mode="math") must also decide (compare_strings gives \boxed{} top
# priority, as mathforge does).
#
# Left out, and why:
# - match_types=["expr"] only (test_number_extraction): expression-only extraction of a number from
#   free text, including decimal commas ("1,22" == "1.22"), which contradicts the thousands-comma reading
#   mathforge must keep for GSM8K answers ("1,220" == 1220).
# - rows with a precision other than 6 (parts of test_complex_math_expressions, test_float_precision,
#   test_sqrt_precision, test_symbols): they accept rounded decimals (0.33 for 1/3), which pairs.jsonl
#   labels wrong unless a problem asks for rounding.
# - strict=False and allow_set_relation_comp=True rows (test_strict, test_set_rel_assymetry): optional,
#   non-default comparison semantics.
# - rows that are not plain literals (an f-string computing math.sqrt(17)): taking them would need exec.
# - tests without a (gold, pred, expected) table: test_precision (sympy_expr_eq internals), test_configs,
#   test_gamma_func, test_timeout, test_raise_on_error, test_string_extraction (parse() output only).

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from compare import HERE, clip, load_jsonl, mathforge_says

VERSION = "0.9.0"
CASES_PATH = HERE / "mathverify_cases.jsonl"
LICENSE_PATH = HERE / "LICENSE-math-verify.txt"
DEFAULTS = {"precision": 6, "strict": True, "allow_set_relation_comp": False}


def download_sdist(dest: Path) -> Path:
    """pip download the math-verify sdist (source only, no dependencies) into dest."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    f"math-verify=={VERSION}", "-d", str(dest)], check=True)
    return next(dest.glob(f"math_verify-{VERSION}.tar.gz"))


def read_members(sdist: Path) -> tuple[dict[str, str], str]:
    """The sdist's tests/*.py sources by relative path, and its licence text (read in memory, not unpacked)."""
    tests, licence = {}, ""
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            rel = member.name.split("/", 1)[-1]
            if member.isfile() and rel.startswith("tests/") and rel.endswith(".py"):
                tests[rel] = tar.extractfile(member).read().decode("utf-8")
            elif member.isfile() and rel in ("LICENCE", "LICENSE"):
                licence = tar.extractfile(member).read().decode("utf-8")
    return tests, licence


def parametrize_table(func: ast.FunctionDef) -> tuple[list[str], list[ast.expr]] | None:
    """Argument names and row nodes of a @pytest.mark.parametrize(names, rows) decorator, if any."""
    for deco in func.decorator_list:
        if isinstance(deco, ast.Call) and ast.unparse(deco.func) == "pytest.mark.parametrize":
            names = [n.strip() for n in ast.literal_eval(deco.args[0]).split(",")]
            return names, list(deco.args[1].elts)
    return None


def comparison(func: ast.FunctionDef) -> tuple[str, list[ast.expr], dict[str, ast.expr], str] | None:
    """The asserted comparison: (helper name, positional args, keyword args, expected-argument name)."""
    for node in ast.walk(func):
        if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare)):
            continue
        call, expected = node.test.left, node.test.comparators[0]
        if isinstance(call, ast.Call) and ast.unparse(call.func) == "int":
            call = call.args[0]
        if isinstance(call, ast.Call) and isinstance(expected, ast.Name):
            name = ast.unparse(call.func)
            if name in ("compare_strings", "verify"):
                return name, call.args, {k.arg: k.value for k in call.keywords}, expected.id
    return None


def resolve(node: ast.expr, row: dict) -> object:
    """A literal argument, or the row's value when the argument is a parameter name."""
    return row[node.id] if isinstance(node, ast.Name) else ast.literal_eval(node)


def row_case(helper: str, args: list[ast.expr], kwargs: dict[str, ast.expr], row: dict) -> dict | None:
    """The kept (gold, pred) of one row and its match types, or None when the row is left out."""
    if helper == "verify":  # verify(parse(gold), parse(pred)): all defaults
        gold, pred = (resolve(a.args[0], row) for a in args)
        return {"gold": gold, "pred": pred, "match_types": ["latex", "expr"]}
    settings = {k: resolve(kwargs[k], row) if k in kwargs else v for k, v in DEFAULTS.items()}
    match_types = resolve(kwargs["match_types"], row) if "match_types" in kwargs else ["latex", "expr"]
    if settings != DEFAULTS or "latex" not in match_types:
        return None
    return {"gold": resolve(args[0], row), "pred": resolve(args[1], row), "match_types": match_types}


def extract_cases(path: str, source: str) -> list[dict]:
    """All kept cases of one test file, each with its source test and expected result."""
    cases = []
    for func in ast.walk(ast.parse(source)):
        if not isinstance(func, ast.FunctionDef):
            continue
        table, compared = parametrize_table(func), comparison(func)
        if table is None or compared is None:
            continue
        names, rows = table
        helper, args, kwargs, expected_name = compared
        for node in rows:
            try:
                row = dict(zip(names, ast.literal_eval(node)))
            except ValueError:  # not a plain literal (e.g. an f-string): would need exec
                continue
            case = row_case(helper, args, kwargs, row)
            if case is not None:
                cases.append({"source": f"math-verify {VERSION} {path}::{func.name}", **case,
                              "expected": bool(row[expected_name])})
    return cases


def leading_comments(source: str) -> str:
    """The comment block (a licence notice) at the top of a source file."""
    lines = []
    for line in source.splitlines():
        if line and not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines).strip() + "\n"


def extract(sdist: Path | None) -> None:
    """Write mathverify_cases.jsonl and the licence file from the (downloaded) sdist."""
    with tempfile.TemporaryDirectory() as tmp:
        tests, licence = read_members(sdist or download_sdist(Path(tmp)))
    cases = [case for path in sorted(tests) for case in extract_cases(path, tests[path])]
    mit_notice = leading_comments(tests.get("tests/test_all.py", ""))
    with CASES_PATH.open("w", encoding="utf-8") as f:
        for case in cases:
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
    LICENSE_PATH.write_text(
        f"mathverify_cases.jsonl holds test cases extracted from math-verify {VERSION} (sdist on PyPI,\n"
        "https://github.com/huggingface/Math-Verify), licensed under the Apache License 2.0 below;\n"
        "tests/test_all.py carries this notice of its own:\n\n" + mit_notice + "\n" + "=" * 72 + "\n\n" + licence,
        encoding="utf-8")
    print(f"wrote {len(cases)} cases from {len(tests)} test files to {CASES_PATH.name}")


def run() -> None:
    """Grade every case with grade(gold, pred, mode="math"); print the pass rate and the failures."""
    cases = load_jsonl(CASES_PATH)
    failures = [case for case in cases if mathforge_says(case["gold"], case["pred"], "math")[0] != case["expected"]]
    passed = len(cases) - len(failures)
    print(f"mathforge (mode=math) on Math-Verify {VERSION} cases: {passed}/{len(cases)} = {passed / len(cases):.1%}")
    for case in failures:
        print(f"- expected {case['expected']}: {case['source'].split(' ')[-1]} "
              f"gold={clip(case['gold'])} pred={clip(case['pred'])}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    ext = sub.add_parser("extract", help="download the sdist and (re)write mathverify_cases.jsonl")
    ext.add_argument("--sdist", type=Path, help="use this math_verify-0.9.0.tar.gz instead of downloading")
    sub.add_parser("run", help="grade the cases with mathforge (the default)")
    args = parser.parse_args(argv)
    if args.command == "extract":
        extract(args.sdist)
    else:
        run()


if __name__ == "__main__":
    main()
