"""Hostile arguments at the door: the Python API and `--set` refuse bad types, modes, names and sources with
InputErrors that read like the CLI's (exit 2 on the command line), before anything is read or written."""
from __future__ import annotations

import json
import os
import time

import pytest
from conftest import run

import mathforge
from mathforge.errors import InputError

RECIPE = """name: hostile
version: 0.1.0
sources:
  - name: g
    path: {gold}
stages:
  - type: collect
    samples: [{samples}]
output:
  dir: {tmp}/out
  work_dir: {tmp}/work
"""


@pytest.fixture
def recipe(screl):
    path = screl["tmp"] / "recipe.yaml"
    path.write_text(RECIPE.format(gold=screl["gold"], samples=", ".join(screl["models"]), tmp=screl["tmp"]))
    return path


def collect_mapping(screl, out) -> dict:
    return {"name": "api-hostile", "version": "1.0.0", "sources": [{"name": "synth", "path": screl["gold"]}],
            "stages": [{"type": "collect", "samples": screl["models"], "dedup": "paper"}],
            "output": {"dir": str(out), "work_dir": str(screl["tmp"] / "work")}}


# --------------------------------------------------------------------------- --set on the command line
@pytest.mark.parametrize("override, expected", [
    ("²=1", "recipe.yaml:1: ²: unknown key (from --set ²=1)"),   # '²'.isdigit() is True; int('²') fails
    ("stages.²=1", "--set stages.²=1: stages has 1 item(s): no index '²'"),
    ("name=" + "a" * 300, "recipe.yaml:1: name: String should have at most 96 characters"),
    ("version=1.0.0-" + "a" * 300, "recipe.yaml:1: version: String should have at most 96 characters"),
])
def test_set_overrides_that_crashed_or_passed_validation_exit_2(override, expected, recipe, screl):
    for command in ("validate", "build"):
        result = run(command, recipe, "--set", override)
        assert result.returncode == 2, result.stdout + result.stderr
        assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (screl["tmp"] / "out").exists() and not (screl["tmp"] / "work").exists()


def test_a_source_that_is_a_device_a_pipe_or_too_large_is_refused_before_it_is_read(recipe, screl):
    from mathforge.builders.sources import SOURCE_MAX_BYTES, load_local

    started = time.monotonic()
    result = run("build", recipe, "--set", "sources.0.path=/dev/zero")  # read until memory ran out
    assert result.returncode == 2, result.stderr
    assert "/dev/zero: is not a regular file" in result.stderr and time.monotonic() - started < 60
    fifo = screl["tmp"] / "pipe.jsonl"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    with pytest.raises(InputError, match="is not a regular file"):
        load_local(fifo)
    sparse = screl["tmp"] / "huge.jsonl"  # a sparse file: past the cap in size, no disk used
    with open(sparse, "wb") as handle:
        handle.truncate(SOURCE_MAX_BYTES + 1)
    with pytest.raises(InputError, match=f"{SOURCE_MAX_BYTES + 1:,} bytes: a source file is at most"):
        load_local(sparse)
    assert load_local(screl["gold"])  # a regular file under the cap still loads


# --------------------------------------------------------------------------- the Python API
def test_grade_and_grade_batch_check_their_arguments():
    with pytest.raises(InputError) as error:
        mathforge.grade(1, 2)
    assert str(error.value) == "gold: must be a string, not int 1"
    with pytest.raises(InputError) as error:
        mathforge.grade("1", "1", mode="bogus")  # was silently `auto`
    assert str(error.value) == "mode: must be one of gsm8k, math, auto, not str 'bogus'"
    with pytest.raises(InputError) as error:
        mathforge.grade_batch(["ab"])  # graded "a" against "b"
    assert str(error.value) == "pairs[0]: must be a (gold, prediction) pair of strings, not str 'ab'"
    with pytest.raises(InputError, match="pairs: must be an iterable"):
        mathforge.grade_batch("ab")
    with pytest.raises(InputError, match=r"pairs\[1\]: .* not tuple \('1', 2\)"):
        mathforge.grade_batch([("1", "1"), ("1", 2)])
    with pytest.raises(InputError, match="workers: must be a positive integer"):
        mathforge.grade_batch([("1", "1")], workers=0)
    assert mathforge.grade("#### 4", "2 + 2 = 4\n#### 4", mode="gsm8k").verdict == "correct"
    assert [v.verdict for v in mathforge.grade_batch([("4", "4"), ["4", "5"]], workers=1)] == ["correct", "wrong"]


def test_load_recipe_overrides_are_a_mapping_or_strings_and_errors_have_no_none_line(recipe):
    with pytest.raises(InputError) as error:
        mathforge.load_recipe(recipe, overrides="name=y")  # iterated characters: "n", "a", ...
    assert str(error.value).startswith("overrides: must be a {\"dotted.path\": value} mapping or a list of")
    with pytest.raises(InputError, match="overrides: must be"):
        mathforge.load_recipe(recipe, overrides={1: "y"})
    with pytest.raises(InputError, match="overrides: must be"):
        mathforge.load_recipe(recipe, overrides=["name=y", 3])
    with pytest.raises(InputError, match="recipe: must be a YAML path, a mapping or a Recipe, not int 3"):
        mathforge.load_recipe(3)
    with pytest.raises(InputError, match="overrides: give overrides as strings or as values, not both"):
        mathforge.load_recipe(recipe, overrides=["name=y"], version="2.0.0")
    assert mathforge.load_recipe(recipe, overrides="name=y".split()).name == "y"
    assert mathforge.load_recipe(recipe, overrides=("name=z",)).name == "z"
    assert mathforge.load_recipe(recipe, overrides={"name": "w"}).name == "w"
    with pytest.raises(InputError) as error:
        mathforge.load_recipe({})
    assert str(error.value).splitlines() == ["<recipe>: name: Field required", "<recipe>: version: Field required",
                                             "<recipe>: sources: Field required", "<recipe>: stages: Field required"]


def test_build_refuses_a_non_bool_overwrite_and_bad_workers_before_touching_the_output(screl):
    out = screl["tmp"] / "b"
    first = mathforge.build(collect_mapping(screl, out), workers=1)
    manifest = (out / "manifest.json").read_bytes()
    assert json.loads(manifest)["version"] == "1.0.0" and first.fingerprint
    changed = {**collect_mapping(screl, out), "version": "2.0.0"}
    for bad, expected in (({"overwrite": "no"}, "overwrite: must be True or False, not str 'no'"),  # "no" is truthy
                          ({"overwrite": 1}, "overwrite: must be True or False, not int 1"),
                          ({"overwrite": True, "workers": -3}, "workers: must be a positive integer or None"),
                          ({"overwrite": True, "workers": 2.5}, "workers: must be a positive integer or None"),
                          ({"overwrite": True, "out": 7}, "out: must be a directory path or None, not int 7")):
        with pytest.raises(InputError) as error:
            mathforge.build(changed, **bad)
        assert str(error.value).startswith(expected)
        assert (out / "manifest.json").read_bytes() == manifest  # the first build is untouched
    assert json.loads((out / "manifest.json").read_text())["version"] == "1.0.0"
    assert mathforge.build(changed, overwrite=True, workers=1).manifest["version"] == "2.0.0"  # a real bool works
