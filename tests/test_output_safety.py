"""Nothing lost: an output is mathforge's own or empty, never an input, `.`, `..`, `/` or home; grade never over
its input; the fingerprint does not depend on where the work directory was."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run

from mathforge.errors import InputError
from mathforge.testing import synthetic
from mathforge.testing.fake_openai import FakeOpenAI, solver_reply

FOREIGN = "overwrite replaces only a mathforge build"


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root and its sha256: equal snapshots mean nothing was lost or changed."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def site(tmp_path):
    """in/ (gold + two model directories), a victim directory with a file in it, a solver endpoint that counts
    requests, and write(out, overwrite, work) -> a recipe that samples the endpoint and collects in/'s models."""
    rows = synthetic.problems(8, seed=5)
    inputs = tmp_path / "in"
    inputs.mkdir()
    synthetic.write_gold(rows, inputs / "gold.jsonl")
    for m in range(2):
        synthetic.write_model_dir(rows, inputs / f"model{m}", m, seeds=2)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("three years of notes\n")
    server = FakeOpenAI(reply=solver_reply(rows)).start()

    def write(out, overwrite=False, work=None, name="c.yaml"):
        recipe = tmp_path / name
        recipe.write_text(
            f"name: safety\nversion: 1.0.0\nsources:\n  - path: {inputs / 'gold.jsonl'}\nstages:\n"
            f"  - type: sample\n    k: 2\n    max_tokens: 64\n    models:\n"
            f"      - {{name: solver, backend: endpoint, model: fake, base_url: '{server.url}'}}\n"
            f"  - type: collect\n    samples: [{inputs / 'model0'}, {inputs / 'model1'}]\n"
            f"output:\n  dir: {out}\n  work_dir: {work or tmp_path / 'work'}\n  overwrite: {str(overwrite).lower()}\n")
        return recipe

    yield {"tmp": tmp_path, "in": inputs, "victim": victim, "server": server, "write": write}
    server.stop()


def untouched(site) -> bool:
    """No request reached the model, no work directory was made, the victim and the inputs are as they were."""
    return (not site["server"].counts and not (site["tmp"] / "work").exists()
            and (site["victim"] / "notes.txt").read_text() == "three years of notes\n"
            and sorted(p.name for p in site["victim"].iterdir()) == ["notes.txt"])


def test_a_victim_directory_survives_every_attempt(site):
    victim, before = site["victim"], snapshot(site["in"])
    recipe = site["write"](victim, overwrite=True)
    for command in (["validate", recipe], ["build", recipe]):  # the recipe's own output.dir + overwrite: true
        result = run(*command)
        assert result.returncode == 2 and f"{recipe}:14: output.dir: {FOREIGN}" in result.stderr, result.stderr
        assert f"{victim} holds other things: notes.txt" in result.stderr and untouched(site)
    plain = site["write"](site["tmp"] / "b", name="plain.yaml")
    result = run("build", plain, "--set", f"output.dir={victim}", "--set", "output.overwrite=true")
    assert result.returncode == 2 and "output.dir (from --set output.dir=" in result.stderr and untouched(site)
    result = run("build", plain, "--out", victim, "--overwrite")
    assert result.returncode == 2 and f"{victim}: --out: {FOREIGN}" in result.stderr, result.stderr
    assert "it holds other things: notes.txt" in result.stderr and untouched(site)
    result = run("collect", "--gold", site["in"] / "gold.jsonl", "--samples", site["in"] / "model0", "--out", victim,
                 "--overwrite")
    assert result.returncode == 2 and f"{victim}: --out: {FOREIGN}" in result.stderr and untouched(site)
    result = run("quickstart", "--quick", "--out", victim, "--overwrite")
    assert result.returncode == 2 and "a quickstart directory" in result.stderr and untouched(site)
    assert snapshot(site["in"]) == before and not (site["tmp"] / "b").exists()


def test_the_python_api_refuses_a_victim_directory_too(site):
    import mathforge

    victim = site["victim"]
    with pytest.raises(InputError, match="it holds other things: notes.txt"):
        mathforge.build(site["write"](site["tmp"] / "b"), out=victim, overwrite=True)
    with pytest.raises(InputError, match=f"{victim} holds other things: notes.txt"):
        mathforge.build(site["write"](victim, overwrite=True), overwrite=True)
    with pytest.raises(InputError, match="contains an input"):
        mathforge.build(site["write"](site["tmp"] / "b"), out=site["in"], overwrite=True)
    assert untouched(site)


def test_inputs_survive_an_output_over_them_and_nothing_runs(site):
    before = snapshot(site["in"])
    recipe = site["write"](site["tmp"] / "b")
    result = run("build", recipe, "--out", site["in"], "--overwrite")
    assert result.returncode == 2, result.stderr
    assert f"{site['in']}: --out: contains an input (sources.0.path: {site['in'] / 'gold.jsonl'})" in result.stderr
    result = run("build", recipe, "--out", site["in"] / "model1" / "corpus")  # inside an input directory
    assert result.returncode == 2 and "is inside the input directory" in result.stderr
    result = run("collect", "--gold", site["in"] / "gold.jsonl", "--samples", site["in"] / "model0", "--out",
                 site["in"], "--overwrite")
    assert result.returncode == 2 and "contains an input (--gold:" in result.stderr
    for out, why in ((site["in"], "contains an input"), (site["tmp"] / "work", "is an input (output.work_dir")):
        result = run("validate", recipe, "--set", f"output.dir={out}")
        assert result.returncode == 2 and f"output.dir (from --set output.dir={out}): {out} {why}" in result.stderr
    assert snapshot(site["in"]) == before and untouched(site)


@pytest.mark.parametrize("out", [".", "..", "/", "~", "HOME"])
def test_dot_dotdot_root_and_home_are_refused_at_once(site, out):
    home = site["tmp"] / "home"
    home.mkdir()
    out = str(home) if out == "HOME" else out
    env = {"HOME": str(home)}
    recipe = site["write"](site["tmp"] / "b")
    result = run("build", recipe, "--out", out, "--overwrite", cwd=site["in"], env=env)
    assert result.returncode == 2, result.stderr
    assert f"{out}: --out: is the {'home' if out in ('~', str(home)) else 'current'} directory or a folder above it" \
        in result.stderr
    result = run("validate", recipe, "--set", f"output.dir={home if out == '~' else out}", cwd=site["in"], env=env)
    assert result.returncode == 2 and "or a folder above it" in result.stderr
    result = run("collect", "--gold", "gold.jsonl", "--samples", "model0", "--out", out, "--overwrite",
                 cwd=site["in"], env=env)
    assert result.returncode == 2 and "or a folder above it" in result.stderr and untouched(site)


def test_a_build_and_a_collect_output_are_replaced_by_a_rerun(site):
    out = site["tmp"] / "b"
    recipe = site["write"](out)
    first = run("build", recipe)
    assert first.returncode == 0, first.stderr
    fingerprint = json.loads((out / "manifest.json").read_text())["fingerprint"]
    again = run("build", recipe, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "manifest.json").read_text())["fingerprint"] == fingerprint
    (out / "sft" / "notes.txt").write_text("mine")  # a foreign file inside a build: the build is no longer only ours
    result = run("build", recipe, "--overwrite")
    assert result.returncode == 2 and "it holds other things" not in result.stderr
    assert f"{out} holds other things: sft/notes.txt" in result.stderr and (out / "sft" / "notes.txt").exists()
    (out / "sft" / "notes.txt").unlink()
    collect = run("collect", "--gold", site["in"] / "gold.jsonl", "--samples", site["in"] / "model0", "--out", out,
                  "--overwrite")  # a build gives way to a collect output, and that to a build
    assert collect.returncode == 0 and sorted(p.name for p in out.iterdir()) == ["data", "stats.json"], collect.stderr
    assert run("build", recipe, "--overwrite").returncode == 0 and (out / "manifest.json").exists()


def test_a_quickstart_directory_is_recognised_precisely(tmp_path):
    from mathforge.builders.publish.overwrite import QUICKSTART_MARKER, check_replace

    out = tmp_path / "qs"
    for name in ("data", "models", "builds", "eval"):
        (out / name).mkdir(parents=True)
    (out / "models" / "anything").write_text("x")  # its folders' contents are its own
    with pytest.raises(InputError, match="it holds other things: builds, data, eval, models"):
        check_replace(out, True, ("quickstart",))  # no marker: not recognisably a quickstart's
    (out / QUICKSTART_MARKER).write_text("")
    check_replace(out, True, ("quickstart",))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="it holds other things: notes.txt"):
        check_replace(out, True, ("quickstart",))


def test_grade_never_writes_over_its_input_and_writes_the_format_its_out_names(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"gold": "5", "pred": "so it is 5\\n#### 5"}\n{"gold": "6", "pred": "#### 7", "id": 2}\n')
    before = pairs.read_bytes()
    result = run("grade", pairs, "--out", pairs)
    assert result.returncode == 2 and f"{pairs}: --out: is an input" in result.stderr and pairs.read_bytes() == before
    graded = tmp_path / "graded.parquet"
    result = run("grade", pairs, "--out", graded)
    assert result.returncode == 0, result.stderr
    rows = pq.read_table(graded).to_pylist()  # a real Parquet file, every input column kept
    assert [(r["gold"], r["verdict"], r["pred_answer"], r["id"]) for r in rows] == \
        [("5", "correct", "5", None), ("6", "wrong", "7", 2)]
    parquet_bytes = graded.read_bytes()
    result = run("grade", graded, "--out", graded)
    assert result.returncode == 2 and "is an input" in result.stderr and graded.read_bytes() == parquet_bytes
    again = tmp_path / "again.jsonl"
    assert run("grade", graded, "--out", again).returncode == 0
    assert [json.loads(line)["verdict"] for line in again.read_text().splitlines()] == ["correct", "wrong"]
    result = run("grade", pairs, "--out", tmp_path / "graded.csv")
    assert result.returncode == 2 and ".jsonl or .parquet" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.jsonl", "graded.parquet", "pairs.jsonl"]


def test_the_fingerprint_does_not_depend_on_the_work_directory(site):
    tmp, prints = site["tmp"], []
    for n in (1, 2):
        out, work = tmp / f"b{n}", tmp / f"somewhere-{n}" / "work"
        result = run("build", site["write"](out, work=work, name=f"w{n}.yaml"))
        assert result.returncode == 0, result.stderr
        prints.append(json.loads((out / "manifest.json").read_text())["fingerprint"])
        sources = {r["source"] for f in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(f).to_pylist()}
        assert not [s for s in sources if s and "somewhere" in s]
        assert any(s and s.startswith("samples/solver-") for s in sources)  # the sampled rows still say which file
        assert any(s and s.startswith(str(site["in"] / "model0")) for s in sources)  # listed inputs: as given
        assert "somewhere" not in (out / "stats.json").read_text()
    assert prints[0] == prints[1]


def test_eval_and_train_outputs_stay_clear_of_their_inputs(site, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    bench = tmp_path / "bench.jsonl"
    bench.write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    result = run("eval", model, "--benchmark", bench, "--out", model)
    assert result.returncode == 2 and f"{model}: --out: is an input (model: {model})" in result.stderr, result.stderr
    result = run("eval", model, "--benchmark", bench, "--out", ".", cwd=tmp_path)
    assert result.returncode == 2 and "is the current directory" in result.stderr
    config = tmp_path / "train.yaml"
    config.write_text(f"model_name_or_path: {model}\ndataset_name: {site['in']}\noutput_dir: {model}\n")
    result = run("train", "sft", config)
    assert result.returncode == 2 and f"{config}: output_dir: {model} is an input (model_name_or_path" \
        in result.stderr, result.stderr
    assert sorted(p.name for p in model.iterdir()) == ["config.json"] and untouched(site)
