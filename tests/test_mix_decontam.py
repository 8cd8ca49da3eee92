"""Flagged rows stay out of training configs and the mix; short mix groups repeat; general corpora stream from the Hub."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from fractions import Fraction

import pyarrow.parquet as pq
import pytest
from conftest import run
from hub_server import HubServer
from mathforge.builders.stages.mix_ratios import mix, stream_needs

from mathforge.testing import synthetic


def words(text: str) -> int:
    return len(text.split())


# ------------------------------------------------------------------------------------------ repeats (pure part)

def short_and_long() -> dict[str, list[str]]:
    """Problem solving: 10 documents x 5 tokens = 50; general: 1,000 x 10 = 10,000."""
    return {"problem_solving": [f"p{i} b c d e" for i in range(10)],
            "general": [f"g{i} y z w v u t s r q" for i in range(1000)]}


@pytest.mark.parametrize("ratio,budget,max_repeat,ps_docs,gen_docs,repeats,limited_by", [
    # 1:1 of 1,000 asks 500 problem-solving tokens, 10x the 50 there are: 4 passes (200), general matches 200
    ((1, 1), 1000, 4, 40, 20, 4, "problem_solving"),
    # 1:1 of 300 asks 150: 3 passes cover it, the budget holds (150 + 150)
    ((1, 1), 300, 4, 30, 15, 3, None),
    # 1:3 of 1,000 asks 250: 4 passes give 200, general 3 x 200 = 600
    ((1, 3), 1000, 4, 40, 60, 4, "problem_solving"),
    # no repeats allowed: 50 problem-solving tokens, 50 general
    ((1, 1), 1000, 1, 10, 5, 1, "problem_solving"),
    # no budget: each group at most once, the scarce one bounds the mix
    ((1, 1), None, 4, 10, 5, 1, "problem_solving"),
])
def test_a_short_group_is_repeated_up_to_max_repeat(ratio, budget, max_repeat, ps_docs, gen_docs, repeats,
                                                    limited_by):
    groups = short_and_long()
    selected, report = mix(groups, {"problem_solving": ratio[0], "general": ratio[1]}, budget, words, seed=0,
                           max_repeat=max_repeat)
    ps, gen = report["groups"]["problem_solving"], report["groups"]["general"]
    assert (ps["documents"], ps["tokens"], ps["repeats"]) == (ps_docs, 5 * ps_docs, repeats)
    assert (gen["documents"], gen["tokens"], gen["repeats"]) == (gen_docs, 10 * gen_docs, 1)
    assert report["total_tokens"] == 5 * ps_docs + 10 * gen_docs and report["limited_by"] == limited_by
    assert ps["achieved_ratio"] == pytest.approx(ratio[0] / sum(ratio))
    assert report["max_repeat"] == max_repeat
    # whole passes in the same shuffled order: every document as often as the passes that reached it
    counts = Counter(text for g, text in selected if g == "problem_solving")
    assert set(counts.values()) <= {repeats - 1, repeats} and sum(counts.values()) == ps_docs


def test_repeats_are_deterministic_and_seeded():
    groups, ratio = short_and_long(), {"problem_solving": 1, "general": 1}
    first = mix(groups, ratio, 1000, words, seed=3, max_repeat=4)
    assert first == mix(groups, ratio, 1000, words, seed=3, max_repeat=4)
    assert first[0] != mix(groups, ratio, 1000, words, seed=4, max_repeat=4)[0]
    with pytest.raises(ValueError, match="max_repeat"):
        mix(groups, ratio, 1000, words, seed=3, max_repeat=0)


def test_a_streamed_group_needs_no_more_than_its_share():
    assert stream_needs({"gold": 1, "web": 3}, {"gold": 100}, ["web"], 400, 4) == {"web": 300}
    assert stream_needs({"gold": 1, "web": 3}, {"gold": 100}, ["web"], 10_000, 4) == {"web": 1200}  # 4 x 100 x 3
    assert stream_needs({"gold": 1, "web": 3}, {"gold": 100}, ["web"], None, 4) == {"web": 300}     # gold once
    assert stream_needs({"gold": 1, "web": 0}, {"gold": 100}, ["web"], 400, 4) == {"web": Fraction(0)}
    with pytest.raises(ValueError, match="token_budget"):
        stream_needs({"web": 1}, {}, ["web"], None, 4)


# ------------------------------------------------------------------------------------------ builds

def leaky_corpus(tmp_path) -> tuple[list[dict], set[str]]:
    """25 gold problems, 5 of them benchmark questions verbatim; the benchmark file; the leaked questions."""
    benchmark = synthetic.problems(30, seed=42)
    synthetic.write_gold(synthetic.problems(20, seed=41) + benchmark[:5], tmp_path / "train.jsonl")
    synthetic.write_gold(benchmark, tmp_path / "test.jsonl")
    return benchmark, {q["question"] for q in benchmark[:5]}


def recipe_text(tmp_path, tokenizer, action: str, general: str, ratio: str, budget: int, max_repeat: int) -> str:
    return (f"name: mx\nversion: 1.0.0\nsources:\n  - path: {tmp_path / 'train.jsonl'}\nstages:\n  - type: collect\n"
            f"  - type: mix\n    tokenizer: {tokenizer}\n    ratio: {ratio}\n    token_budget: {budget}\n"
            f"    max_repeat: {max_repeat}\n    general:\n      - {general}\n"
            f"decontaminate:\n  action: {action}\n  eval_sets:\n    - name: bench\n      path: {tmp_path / 'test.jsonl'}\n"
            f"output:\n  dir: {tmp_path}/b/{{name}}/{{version}}\n  work_dir: {tmp_path}/w\n")


def read(build, config) -> list[dict]:
    return pq.read_table(build / config).to_pylist()


def test_flagged_rows_stay_in_default_only_and_short_groups_repeat_in_a_build(tmp_path, tiny_model):
    benchmark, leaked = leaky_corpus(tmp_path)
    notes = [{"text": f"Note {i}: the angles of a triangle sum to 180 degrees."} for i in range(600)]
    notes[7] = {"text": f"Worked example. {benchmark[2]['question']}"}  # a benchmark question in the general corpus
    (tmp_path / "notes.jsonl").write_text("".join(json.dumps(n) + "\n" for n in notes))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(recipe_text(tmp_path, tiny_model, "flag", f"{{name: notes, path: {tmp_path / 'notes.jsonl'}}}",
                                  "{gold: 1, notes: 1}", 100_000, 2))
    result = run("build", recipe, timeout=600)
    assert result.returncode == 0, result.stderr
    build = tmp_path / "b" / "mx" / "1.0.0"

    default = read(build, "data")
    flagged = {r["problem_id"] for r in default if r["question"] in leaked}
    assert len(flagged) == 5 and {r["problem_id"] for r in default if r["contaminated"]} == flagged
    clean = {r["problem_id"] for r in default} - flagged
    for config in ("cpt", "sft", "messages"):
        assert {r["problem_id"] for r in read(build, config)} == clean, config
    mixed = read(build, "mix")
    assert not [r for r in mixed if any(q in r["text"] for q in leaked)]
    assert {r["text"] for r in mixed if r["group"] == "gold"} == {r["text"] for r in read(build, "cpt")}

    stats = json.loads((build / "stats.json").read_text())
    gold = stats["mix"]["groups"]["gold"]
    assert gold["repeats"] == 2 and gold["documents"] == 2 * len(clean)  # 20 problems, far short of half of 100k
    assert gold["tokens"] == 2 * gold["available_tokens"] and stats["mix"]["limited_by"] == "gold"
    assert stats["mix"]["decontaminated"] == {"notes": 1}
    assert stats["mix"]["groups"]["notes"]["available_documents"] == 599
    card = (build / "README.md").read_text()
    assert f"group gold repeated 2x, ratio achieved {gold['achieved_ratio']:.3f}" in card
    assert "5 row(s) flagged" in card and "1 document(s) of notes dropped" in card


REPO = "mathforge-tests/web-notes"
UPLOAD = """
import sys
from huggingface_hub import HfApi
api = HfApi()
api.create_repo(sys.argv[2], repo_type="dataset", exist_ok=True)
api.upload_file(path_or_fileobj=sys.argv[1], path_in_repo="data/train.jsonl", repo_id=sys.argv[2], repo_type="dataset")
"""


def test_a_general_corpus_streams_from_the_hub_only_as_far_as_the_mix_needs(tmp_path, tiny_model):
    from transformers import AutoTokenizer

    benchmark, leaked = leaky_corpus(tmp_path)
    web = [f"Web page {i}: prime numbers have exactly two divisors." for i in range(2000)]
    web[3] = f"Forum post. {benchmark[0]['question']}"
    (tmp_path / "web.jsonl").write_text("".join(json.dumps({"body": text}) + "\n" for text in web))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(recipe_text(tmp_path, tiny_model, "drop", f"{{name: web, hub: {REPO}, column: body}}",
                                  "{gold: 1, web: 3}", 400, 4))
    with HubServer() as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
        env.update(hub.client_env(str(tmp_path / "hf")))
        upload = subprocess.run([sys.executable, "-c", UPLOAD, str(tmp_path / "web.jsonl"), REPO], env=env, check=False,
                                capture_output=True, text=True, timeout=300)
        assert upload.returncode == 0, upload.stderr[-3000:]
        result = run("build", recipe, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    build = tmp_path / "b" / "mx" / "1.0.0"

    # the web group's need: 3/4 of the 400-token budget (gold, repeated, could fill far more than its quarter)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    held, expected = 0, []
    for text in web:
        if held >= 300:
            break
        if text != web[3]:
            expected.append(text)
            held += len(tokenizer(text, add_special_tokens=False)["input_ids"])
    stats = json.loads((build / "stats.json").read_text())["mix"]
    group = stats["groups"]["web"]
    assert (group["available_documents"], group["available_tokens"]) == (len(expected), held)
    assert len(expected) < len(web)  # the stream stopped early
    assert stats["decontaminated"] == {"web": 1}
    mixed = read(build, "mix")
    web_texts = [r["text"] for r in mixed if r["group"] == "web"]
    assert web_texts and set(web_texts) <= set(expected) and group["tokens"] <= 300
    assert not [r for r in mixed if any(q in r["text"] for q in leaked)]


def test_a_general_corpus_is_a_file_or_a_hub_dataset_and_a_hub_one_needs_a_bound(tmp_path):
    from mathforge.builders.recipe import load_recipe

    from mathforge.errors import InputError

    def recipe(general, ratio):
        return {"name": "m", "version": "1.0.0", "sources": [{"path": str(tmp_path / "x.jsonl")}],
                "stages": [{"type": "collect"}, {"type": "mix", "tokenizer": "t", "ratio": ratio,
                                                 "general": [general]}]}

    with pytest.raises(InputError, match="exactly one of `path` or `hub`"):
        load_recipe(recipe({"name": "web", "path": "a.jsonl", "hub": "org/web"}, {"web": 1}))
    assert load_recipe(recipe({"name": "web", "hub": "org/web"}, {"web": 1})).stages[1].general[0].column == "text"
    synthetic.write_gold(synthetic.problems(3), tmp_path / "x.jsonl")
    unbounded = tmp_path / "r.yaml"
    unbounded.write_text(f"name: m\nversion: 1.0.0\nsources:\n  - path: {tmp_path / 'x.jsonl'}\nstages:\n"
                         "  - type: collect\n  - type: mix\n    tokenizer: t\n    ratio: {web: 1}\n"
                         "    general:\n      - {name: web, hub: org/web}\n")
    result = run("build", unbounded, cwd=tmp_path)
    assert result.returncode == 2 and "give token_budget" in result.stderr
