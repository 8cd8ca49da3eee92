"""The house: dependencies point one way, every module names its job, every stage type is registered once."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"mathforge": "mathforge", "builders": "mathforge.builders", "eval": "mathforge.eval",
           "trainers": "mathforge.trainers"}

# layer -> the layers its modules may import (besides their own). Read top-down: CLI -> API/quickstart ->
# eval/trainers -> build -> stages -> generation/publish -> verification / recipe and sources -> errors/fixtures.
ALLOWED = {
    "errors": set(),
    "lifeline": set(),     # child processes that die with their parent
    "outputs": {"errors"},  # where an output may go (never over an input)
    "tables": {"errors"},
    "testing": {"verify"},  # fixtures may read solutions with the shared verifier (latex_variants)
    "verify": {"errors", "tables", "outputs", "lifeline"},
    "base": {"errors", "testing", "tables", "outputs"},
    "generation": {"base", "verify", "errors", "testing", "lifeline"},
    "publish": {"base", "verify", "errors", "outputs"},
    "stages": {"generation", "publish", "verify", "base", "errors", "testing", "tables"},
    "build": {"stages", "generation", "publish", "base", "errors", "outputs"},
    "eval": {"generation", "verify", "base", "errors", "outputs"},
    "trainers": {"publish", "errors", "outputs"},
    "api": {"build", "publish", "verify", "base", "errors"},
    "quickstart": {"build", "eval", "trainers", "publish", "base", "errors", "testing", "outputs"},
    "cli": {"api", "quickstart", "build", "stages", "eval", "trainers", "generation", "publish", "verify", "base", "errors",
            "tables", "testing", "package", "outputs", "lifeline"},
    "package": {"api", "base", "errors"},
}


def layer(module: str) -> str:
    parts = module.split(".")
    if module == "mathforge":
        return "package"
    if parts[1] in ("errors", "lifeline", "outputs", "tables", "testing", "verify", "api", "quickstart", "cli", "eval",
                    "trainers"):
        return parts[1]
    if parts[1] == "__main__":
        return "cli"
    if parts[1] == "builders":
        if len(parts) == 2 or parts[2] in ("recipe", "sources", "samples", "prompts", "hub_vocabulary"):
            return "base"
        return parts[2]  # generation, publish, stages, build
    raise AssertionError(f"no layer for {module}")


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_the_only_import_root_is_mathforge():
    stray = {f"{m}: {name}" for m, path in modules().items() for name in imports_of(path)
             if name.split(".")[0] in ("builders", "eval", "trainers")}
    assert not stray, sorted(stray)


def test_dependencies_point_one_way():
    known = modules()
    wrong = []
    for module, path in known.items():
        mine = layer(module)
        for name in imports_of(path):
            if name not in known or name == module:
                continue  # third-party, or `from pkg import CONSTANT`
            theirs = layer(name)
            if theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{module} ({mine}) imports {name} ({theirs})")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_layer_check_catches_an_upward_import(tmp_path):
    bad = tmp_path / "collect.py"
    bad.write_text("from mathforge.cli import main\nfrom mathforge.builders import build\n")
    assert {layer(n) for n in imports_of(bad) if n.startswith("mathforge.")} - ALLOWED["stages"] == {"cli", "build"}


@pytest.mark.parametrize("module", sorted(modules()))
def test_every_module_opens_with_a_one_line_docstring(module):
    doc = ast.get_docstring(ast.parse(modules()[module].read_text()), clean=False)
    assert doc and "\n" not in doc.strip(), f"{module}: a one-line docstring naming the module's job"


def test_every_recipe_stage_type_is_one_registered_class():
    from mathforge.builders.recipe import STAGE_TYPES
    from mathforge.builders.stages import STAGES, Stage

    assert set(STAGES) == set(STAGE_TYPES) | {"decontaminate", "publish"}
    for name, cls in STAGES.items():
        assert issubclass(cls, Stage) and cls.type == name and cls.run is not Stage.run, name
        module = modules()[cls.__module__]
        assert module.parent.name == "stages", f"{name} lives in {module}"
