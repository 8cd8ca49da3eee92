"""diversify / expand / retrospect / mix as recipe stages, end to end over HTTP with a scripted model."""
from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
from conftest import run
from mathforge.builders.stages.mix_ratios import mix

from mathforge.testing import synthetic
from mathforge.testing.fake_openai import FakeOpenAI, prompt_text, solver_reply


def scripted(rows):
    by_question = {row["question"]: row for row in rows}
    solver = solver_reply(rows)

    def answer_of(solution):
        return int(solution.rsplit("#### ", 1)[1])

    def reply(payload):
        text, seed = prompt_text(payload), int(payload["seed"])
        if "### Instruction" in text:
            return solver(payload)
        question = re.search(r"Problem:\n(.*?)\n\n", text + "\n\n", re.S)
        row = by_question.get(question.group(1)) if question else None
        if "in a way that differs" in text:
            solution = row["solutions"][0]
            return [row["solutions"][1], solution, solution.replace(f"#### {answer_of(solution)}",
                                                                    f"#### {answer_of(solution) + 5}")][seed % 3]
        if "Write ONE NEW problem" in text:
            if row is rows[0]:
                return "Here is a nice problem for you!"  # malformed: no JSON, no labels
            answer = answer_of(row["answer"]) + 1
            return json.dumps({"problem": f"NEW {row['question']} Then one more arrives. How many now?",
                               "solution": f"{row['answer'].rsplit('####', 1)[0]}One more: {answer}.\n#### {answer}"})
        if "[back]" in text:
            lines = row["answer"].split("\n")
            if seed % 2:
                return "\n".join(lines)  # no [back] marker
            slip = ["Then 2+2 = 5.", "[back] Step 2 is wrong: 2+2 = 4, not 5."]  # a real error, then the fix
            return "\n".join(lines[:1] + slip + lines[1:])
        if text.startswith("Solve step by step"):
            new = re.search(r"NEW (.*?) Then one more", text, re.S).group(1)
            answer = answer_of(by_question[new]["answer"]) + 1
            return f"Counting carefully.\n#### {answer + (2 if seed % 4 == 0 else 0)}"
        return "unexpected prompt"

    return reply


def test_synthesis_stages_and_mix(tmp_path, tiny_model):
    rows = synthetic.problems(6, seed=31)
    synthetic.write_gold(rows, tmp_path / "gold.jsonl")
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"text": f"Note {i}: a triangle's angles sum to 180 degrees."}) + "\n"
                               for i in range(60)))
    with FakeOpenAI(reply=scripted(rows)) as server:
        model = f"      name: m\n      backend: endpoint\n      model: m\n      base_url: {server.url}\n"
        recipe = tmp_path / "synth.yaml"
        recipe.write_text(f"""name: synth
version: 1.0.0
sources:
  - path: {tmp_path / 'gold.jsonl'}
stages:
  - type: sample
    k: 4
    models:
      - {{name: solver, backend: endpoint, model: m, base_url: {server.url}}}
  - type: diversify
    k: 3
    model:
{model}  - type: expand
    k: 1
    solutions: 4
    agree: 3
    max_seed_similarity: 1  # the scripted new problems are near copies of their seeds
    model:
{model}  - type: retrospect
    k: 2
    model:
{model}  - type: collect
  - type: mix
    tokenizer: {tiny_model}
    ratio: {{rft: 1, diversify: 1, retrospect: 1, expand: 1, notes: 6}}
    general:
      - {{name: notes, path: {general}}}
    seed: 3
output:
  dir: {tmp_path}/builds/{{name}}/{{version}}
  work_dir: {tmp_path}/work/{{name}}/{{version}}
""")
        result = run("build", recipe, timeout=600)
        assert result.returncode == 0, result.stderr
        payloads = list(server.payloads)

    build = tmp_path / "builds" / "synth" / "1.0.0"
    corpus = pq.read_table(build / "data").to_pylist()
    stats = json.loads((build / "stats.json").read_text())
    kinds = {"diversify": "in a way that differs", "retrospect": "[back]"}
    seeds = {k: [(int(p["seed"]), prompt_text(p)) for p in payloads if v in prompt_text(p)] for k, v in kinds.items()}

    # diversify: per problem, a swapped-order solution (seed % 3 == 0) is new reasoning once; the gold is a duplicate
    expected = len({text for seed, text in seeds["diversify"] if seed % 3 == 0})
    assert stats["diversify"]["accepted"] == expected == sum(r["method"] == "diversify" for r in corpus)
    assert stats["diversify"]["outcomes"].get("wrong answer", 0) == sum(s % 3 == 2 for s, _ in seeds["diversify"])
    # retrospect: even seeds carry a real error, a [back] marker and the right answer
    assert stats["retrospect"]["accepted"] == sum(s % 2 == 0 for s, _ in seeds["retrospect"])
    assert all("[back]" in r["solution"] for r in corpus if r["method"] == "retrospect")
    # expand: the malformed seed is rejected; a new problem is kept when >= 3 of its 4 solutions agree
    solve = {}
    for p in payloads:
        if prompt_text(p).startswith("Solve step by step"):
            solve.setdefault(prompt_text(p), []).append(int(p["seed"]) % 4 != 0)
    assert len(solve) == 5 and all(len(v) == 4 for v in solve.values())
    agreeing = sum(1 for v in solve.values() if sum(v) >= 3)
    assert stats["expand"]["accepted"] == agreeing and stats["expand"]["outcomes"]["malformed"] == 1
    assert stats["expand"]["outcomes"].get("no agreement", 0) == 5 - agreeing
    expanded = [r for r in corpus if r["method"] == "expand"]
    assert all(r["question"].startswith("NEW ") and r["final_answer"] == r["reference_answer"] for r in expanded)

    # mix: exactly what builders.mix selects from the same texts with the same tokenizer and seed
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    cpt = pq.read_table(build / "cpt").to_pylist()
    groups = {}
    for row in cpt:
        groups.setdefault(row["method"], []).append(row["text"])
    groups["notes"] = [json.loads(line)["text"] for line in general.read_text().splitlines()]
    ratio = {"rft": 1, "diversify": 1, "retrospect": 1, "expand": 1, "notes": 6}
    for name in ratio:
        groups.setdefault(name, [])
    chosen, report = mix(groups, ratio, None, lambda t: len(tokenizer(t, add_special_tokens=False)["input_ids"]), 3)
    mixed = pq.read_table(build / "mix").to_pylist()
    assert [(r["group"], r["text"]) for r in mixed] == chosen
    assert stats["mix"]["groups"] == json.loads(json.dumps(report["groups"]))
    card = (build / "README.md").read_text()
    assert "### Synthesis methods" in card and "### CPT mix" in card and "config_name: mix" in card
