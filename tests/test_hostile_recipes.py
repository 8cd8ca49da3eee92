"""Hostile recipes (alias bombs, duplicate keys, huge sizes, format-string and Jinja abuse) fail fast with exit 2."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import run
from mathforge.builders import prompts
from mathforge.builders.recipe import load_recipe

from mathforge.errors import InputError, load_yaml

TEMPLATE_LINE, K_LINE, SEED_LINE, DIR_LINE = 13, 8, 9, 16


def recipe_text(tmp: Path, k="2", seed="1", template="{{ question }}", out_dir: str | None = None,
                extra: str = "") -> str:
    """A small offline recipe; its k, seed, template and output.dir sit on the *_LINE lines above."""
    return "\n".join([
        "name: hostile", "version: 1.0.0", "sources:", "  - name: synth", "    synthetic: {problems: 3, seed: 1}",
        "stages:", "  - type: sample", f"    k: {k}", f"    seed: {seed}", "    models:",
        "      - {name: solver, backend: scripted, model: demo/solver}", "    prompt:",
        f"      template: {json.dumps(template)}", "  - type: collect", "output:",
        f"  dir: {out_dir or str(tmp / 'out' / '{name}' / '{version}')}",
        f"  work_dir: {tmp / 'work' / '{name}' / '{version}'}", extra])


def write(tmp: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def refused(path: Path, *expected: str, command: tuple = ("validate",)) -> str:
    """The CLI exits 2 with each expected text in its error, and writes nothing."""
    started = time.perf_counter()
    result = run(*command[:1], path, *command[1:], timeout=120)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    for text in expected:
        assert text in result.stderr, (text, result.stderr)
    assert "Traceback" not in result.stderr
    assert not (path.parent / "out").exists()
    assert time.perf_counter() - started < 60
    return result.stderr


def quickly(call, seconds: float = 1.0):
    """The call's InputError, raised within `seconds`."""
    started = time.perf_counter()
    with pytest.raises(InputError) as info:
        call()
    assert time.perf_counter() - started < seconds, f"took {time.perf_counter() - started:.2f} s"
    return info.value


# ------------------------------------------------------------------------------------------------------ YAML
def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_before_it_expands(tmp_path):
    text = billion_laughs()
    assert len(text) < 500
    path = write(tmp_path, text)
    error = quickly(lambda: load_recipe(path))
    assert "alias" in error.message and error.line == 6 and error.file == str(path)  # f: past 100,000 nodes
    refused(path, f"{path}:6: f.0: aliases expand the document past 100,000 nodes")


def test_too_many_aliases_and_a_recursive_alias_are_refused(tmp_path):
    many = "x: &x 1\ny: [" + ", ".join(["*x"] * 101) + "]\n"
    assert "more than 100 alias uses" in quickly(lambda: load_yaml(many, "many.yaml")).message
    path = write(tmp_path, recipe_text(tmp_path, extra="publish:\n  tags: &t [a, *t]\n"))
    error = quickly(lambda: load_recipe(path))
    assert error.line == 19 and "recursive alias *t" in error.message
    refused(path, f"{path}:19: publish.tags.1: recursive alias *t")


def test_a_few_anchors_are_fine_and_line_map_does_not_expand_aliases(tmp_path):
    text = recipe_text(tmp_path).replace("      - {name: solver, backend: scripted, model: demo/solver}",
                                         "      - &solver {name: solver, backend: scripted, model: demo/solver}")
    lines = text.splitlines()
    at = lines.index("  - type: collect")
    lines[at:at] = ["  - type: sample", "    k: 1", "    models:", "      - *solver"]
    parsed = load_recipe(write(tmp_path, "\n".join(lines) + "\n"))
    assert parsed.stages[1].models[0].label == "solver"
    assert parsed._lines[("stages", 1, "models", 0)] in (11, at + 4)


def test_a_duplicate_key_names_both_lines(tmp_path):
    text = recipe_text(tmp_path).replace("    seed: 1\n", "    seed: 1\n    k: 500\n")
    path = write(tmp_path, text)
    error = quickly(lambda: load_recipe(path))
    assert error.line == 10 and error.key == "stages.0.k"
    assert "first at line 8, again at line 10" in error.message
    refused(path, f"{path}:10: stages.0.k: duplicate key 'k': first at line 8, again at line 10")


# ------------------------------------------------------------------------------------------ sizes and seeds
def test_a_huge_k_is_refused_at_its_line_unless_the_recipe_raises_the_limit(tmp_path):
    path = write(tmp_path, recipe_text(tmp_path, k="100000000000000000000000"))
    error = quickly(lambda: load_recipe(path))
    assert (error.line, error.key) == (K_LINE, "stages.0.k") and "above the limit of 10,000" in error.message
    refused(path, f"{path}:{K_LINE}: stages.0.k:", "limits: {k:")
    allowed = write(tmp_path, recipe_text(tmp_path, k="20000", extra="limits: {k: 20000}\n"), "allowed.yaml")
    assert load_recipe(allowed).stages[0].k == 20000
    quota = recipe_text(tmp_path, extra="").replace("    seed: 1\n", "    seed: 1\n    quota: {correct: 1, "
                                                    "max_samples: 100000000}\n")
    error = quickly(lambda: load_recipe(write(tmp_path, quota, "quota.yaml")))
    assert error.key == "stages.0.quota.max_samples" and error.line == 10


def test_a_20_digit_seed_is_refused_before_any_work(tmp_path):
    path = write(tmp_path, recipe_text(tmp_path, seed="99999999999999999999"))
    error = quickly(lambda: load_recipe(path))
    assert (error.line, error.key) == (SEED_LINE, "stages.0.seed")
    refused(path, f"{path}:{SEED_LINE}: stages.0.seed:", "9223372036854775807")
    assert load_recipe(write(tmp_path, recipe_text(tmp_path, seed=str(2**63 - 1)), "max.yaml")).stages[0].seed


@pytest.mark.parametrize("template, expected", [
    ("{nope}", "{nope} is not a path field"),
    ("{name.__class__.__mro__}", "{name.__class__.__mro__} is not a path field"),
    ("{name:>999999999}", "{name:>999999999} is not a path field"),
    ("{0}", "{0} is not a path field"),
    ("x/{name", "is not a path template"),
])
def test_output_dir_templates_take_named_fields_only(tmp_path, template, expected):
    path = write(tmp_path, recipe_text(tmp_path, out_dir=f"'x/{template}'"))
    error = quickly(lambda: load_recipe(path))
    assert (error.line, error.key) == (DIR_LINE, "output.dir") and expected in error.message
    if template in ("{nope}", "{name.__class__.__mro__}"):
        refused(path, f"{path}:{DIR_LINE}: output.dir:", expected)


def test_output_dir_fills_name_and_version_and_literal_braces(tmp_path):
    parsed = load_recipe(write(tmp_path, recipe_text(tmp_path, out_dir="'b/{name}-{{x}}/{version}'")))
    assert parsed.output_dir() == Path("b/hostile-{x}/1.0.0")


# ------------------------------------------------------------------------------------------ Jinja templates
HOSTILE = {
    "power": "{{ 9**(9**9) }}",
    "nested ranges": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "repetition": "{{ 'a' * 10**9 }}",
    "list repetition": "{{ [1] * 10**9 }}",
    "doubling": "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
                "{% endfor %}{{ ns.s|length }}",
    "squaring": "{% set ns = namespace(n=3) %}{% for i in range(64) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
    "ljust": "{{ 'x'.ljust(10**9) }}",
    "center filter": "{{ 'x'|center(1000000000) }}",
    "percent width": "{{ '%0999999999d' % 1 }}",
    "format width": "{{ '{:>999999999}'.format(1) }}",
    "replace": "{{ ('a' * 100000).replace('', 'b' * 100000) }}",
    "join": "{{ ('a' * 1000)|join('b' * 100000) }}",
    "output in a loop": "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    "text in a loop": "{% for i in range(100000) %}" + "y" * 100 + "{% endfor %}",
    "batch": "{{ [1]|batch(1000000000, 0)|list }}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_unbounded_templates_are_refused_quickly(name):
    text = HOSTILE[name]
    error = quickly(lambda: prompts.check_template(text, "r.yaml", "stages.0.prompt.template", line=13))
    assert error.render().startswith("r.yaml:13: stages.0.prompt.template: prompt template exceeds its render budget")
    quickly(lambda: prompts.render(text, dict(prompts.SAMPLE_FIELDS)))
    quickly(lambda: prompts.screen_template(text, "r.yaml", 13, "k"))


@pytest.mark.parametrize("text, keyword", [
    ("{% include 'secret.txt' %}", "include"), ("{% import 'x' as y %}", "import"),
    ("{% extends 'base' %}", "extends"), ("{% from 'x' import y %}", "from ... import"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "macro"), ("{% block b %}{% endblock %}", "block"),
])
def test_templates_may_not_include_import_extend_or_recurse(text, keyword):
    error = quickly(lambda: prompts.screen_template(text, "r.yaml", 13, "stages.0.prompt.template"))
    assert f"`{{% {keyword} %}}` is not allowed" in error.message and error.line == 13


def test_ordinary_templates_still_render():
    fields = {"question": "Q?", "solution": "S", "problem_id": "p", "index": 3, "steps": ["a", "b"]}
    assert prompts.render(prompts.ALPACA, fields).endswith("Q?\n\n### Response:")
    text = ("{% for s in steps %}{{ loop.index }}. {{ s|upper }}\n{% endfor %}{{ question ~ '!' }} "
            "{{ '%s-%d' % (solution, index) }} {{ '{}/{}'.format(index, 10**3) }} {{ steps|join(', ') }} "
            "{{ 2**10 }} {{ 'ab' * 3 }} {{ range(3)|list|sum }} {{ solution|center(5) }}|{{ 'x'.ljust(3) }}|")
    assert prompts.render(text, fields) == "1. A\n2. B\nQ?! S-3 3/1000 a, b 1024 ababab 3   S  |x  |"
    with pytest.raises(Exception) as info:  # strict about undefined fields, as before
        prompts.render("{{ nope }}", fields)
    assert type(info.value).__name__ == "UndefinedError"


def test_template_errors_point_at_the_recipe_line(tmp_path):
    path = write(tmp_path, recipe_text(tmp_path, template="line one\nline two\n{{ oops"))
    error = quickly(lambda: load_recipe(path))
    assert (error.line, error.key) == (TEMPLATE_LINE, "stages.0.prompt.template")
    assert "does not compile (template line 3)" in error.message
    undefined = quickly(lambda: prompts.check_template("a\n{{ nope }}", str(path), "stages.0.prompt.template",
                                                       line=TEMPLATE_LINE))
    assert undefined.render().startswith(f"{path}:{TEMPLATE_LINE}: stages.0.prompt.template: prompt template uses "
                                         f"an undefined field")


@pytest.mark.parametrize("name", ["power", "nested ranges", "repetition"])
def test_validate_and_dry_run_refuse_a_hostile_template(tmp_path, name):
    path = write(tmp_path, recipe_text(tmp_path, template=HOSTILE[name]))
    expected = f"{path}:{TEMPLATE_LINE}: stages.0.prompt.template: prompt template exceeds its render budget"
    refused(path, expected)
    refused(path, expected, command=("build", "--dry-run"))


def test_include_is_refused_at_the_recipe_line_by_the_cli(tmp_path):
    (tmp_path / "secret.txt").write_text("secret")
    path = write(tmp_path, recipe_text(tmp_path, template="{% include 'secret.txt' %}"))
    refused(path, f"{path}:{TEMPLATE_LINE}: stages.0.prompt.template: prompt template does not compile",
            "`{% include %}` is not allowed", command=("build", "--dry-run"))
