"""The distribution as users install it: one import name, one version, immune to a hostile working directory."""
from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib
from test_cli import good_recipe

import mathforge

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
SCRIPT = Path(sys.executable).parent / "mathforge"  # the venv's console script
HOSTILE = ("eval", "builders", "trainers")
SHIPPED = ("mathforge/builders/stages/__init__.py", "mathforge/eval/run.py", "mathforge/trainers/run.py",
           "mathforge/verify/grader.py")


def sh(*args, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([*map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def build_wheel(tmp: Path) -> Path:
    """A wheel of a clean copy of the tree (no stale build/ or egg-info can leak in, nothing written to the repo)."""
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "builds", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".hypothesis"))
    result = sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                "-w", tmp / "dist", src)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp / "dist").glob("mathforge-*.whl")
    return wheel


def source_modules() -> set[str]:
    """Every .py under pyproject's package-dir folders, as the wheel should name it."""
    names = set()
    for package, folder in PYPROJECT["tool"]["setuptools"]["package-dir"].items():
        prefix = package.replace(".", "/")
        names |= {f"{prefix}/{p.relative_to(ROOT / folder).as_posix()}" for p in (ROOT / folder).rglob("*.py")
                  if "__pycache__" not in p.parts}
    return names


def test_the_wheel_installs_one_top_level_name(tmp_path):
    with zipfile.ZipFile(build_wheel(tmp_path)) as wheel:
        names = wheel.namelist()
        (dist_info,) = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        meta = {n.split("/")[1]: wheel.read(n).decode() for n in names if n.startswith(f"{dist_info}/")}
    recorded = {line.split(",")[0] for line in meta["RECORD"].splitlines() if line}
    assert meta.get("top_level.txt", "mathforge").split() == ["mathforge"]
    assert "mathforge.cli:main" in meta["entry_points.txt"]
    modules = {n for n in recorded if n.endswith(".py") and not n.startswith(dist_info)}
    assert modules == {n for n in names if n.endswith(".py")}  # RECORD lists what the archive holds
    assert {n.split("/")[0] for n in modules} == {"mathforge"}
    assert set(SHIPPED) <= modules
    assert source_modules() <= modules, sorted(source_modules() - modules)


def test_version_agrees_everywhere(tmp_path):
    assert mathforge.__version__ == VERSION
    assert importlib.metadata.version("mathforge") == VERSION
    assert sh(SCRIPT, "--version", cwd=tmp_path).stdout.strip() == f"mathforge {VERSION}"
    printed = sh(sys.executable, "-c", "import mathforge; print(mathforge.__version__)", cwd=tmp_path)
    assert printed.stdout.strip() == VERSION, printed.stderr


def test_a_hostile_working_directory_changes_nothing(screl):
    hostile = screl["tmp"] / "hostile"
    hostile.mkdir()
    for name in HOSTILE:
        (hostile / f"{name}.py").write_text('raise RuntimeError("user module imported")\n')
    recipe = hostile / "recipe.yaml"
    recipe.write_text(good_recipe(screl, screl["tmp"] / "built"))
    env = {"PYTHONPATH": str(hostile)}  # the user's modules come before site-packages on sys.path
    runs = {
        "eval --help": sh(SCRIPT, "eval", "--help", cwd=hostile, env=env),
        "--version": sh(SCRIPT, "--version", cwd=hostile, env=env),
        "-m --version": sh(sys.executable, "-m", "mathforge", "--version", cwd=hostile, env=env),
        "build": sh(SCRIPT, "build", recipe, cwd=hostile, env=env),
        "imports": sh(sys.executable, "-c", "import mathforge.eval.run, mathforge.builders.build, "
                      "mathforge.trainers.run", cwd=hostile, env=env),
    }
    for name, result in runs.items():
        assert result.returncode == 0, (name, result.stderr)
        assert "user module imported" not in result.stderr, name
    assert "--benchmark" in runs["eval --help"].stdout
    assert runs["--version"].stdout.strip() == runs["-m --version"].stdout.strip() == f"mathforge {VERSION}"
    assert list((screl["tmp"] / "built" / "data").glob("*.parquet"))
    assert (screl["tmp"] / "built" / "manifest.json").is_file()
    # The three user files really are importable from there: the runs above did not pass by luck.
    probe = sh(sys.executable, "-c", "import eval", cwd=hostile, env=env)
    assert probe.returncode != 0 and "user module imported" in probe.stderr


def test_python_dash_m_mathforge(tmp_path):
    result = sh(sys.executable, "-m", "mathforge", "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"mathforge {VERSION}"
