"""diversify without the reference and with `min_distance`; expand's seed-similarity and benchmark screens, `solver`."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
from conftest import run
from mathforge.builders.recipe import DiversifyStage, ExpandStage
from mathforge.builders.stages.diversify import Diversify, shows_reference

from mathforge.testing.fake_openai import FakeOpenAI, prompt_text

# question, gold solution, the diversify reply (sent for every request of the problem), the expand writer's reply
SEEDS = [
    ("Tom has 3 bags with 5 marbles in each bag. He gives away 4 marbles. How many marbles does Tom have left?",
     "Tom has three bags of five marbles, which is fifteen marbles.\nAfter giving away four he keeps eleven.\n#### 11",
     # a near copy of the gold in words (no equations, so a new text key): too similar at min_distance 0.3
     "Tom has three bags of five marbles, that is fifteen marbles.\nAfter giving away four, he keeps eleven.\n#### 11",
     # a reworded seed problem
     {"problem": "Tom has 3 bags with 5 marbles in every bag. He gives away 4 of the marbles. How many marbles "
                 "does Tom have left now?", "solution": "3*5 = 15, 15-4 = 11.\n#### 11"}),
    ("Sara reads 12 pages a day for 4 days and then 10 more pages. How many pages does she read?",
     "She reads 12*4 = <<12*4=48>>48 pages in four days.\nThen 48+10 = <<48+10=58>>58 pages.\n#### 58",
     # plain text, another order, the right answer: kept once, then a duplicate
     "First come the ten extra pages, then four days of twelve pages each, forty-eight more.\n"
     "In total she reads fifty-eight pages.\n#### 58",
     # a benchmark question (the eval set's first)
     None),
    ("A baker has 7 boxes of 6 muffins and eats 2 muffins. How many muffins are left?",
     "7*6 = <<7*6=42>>42 muffins.\n42-2 = <<42-2=40>>40 left.\n#### 40",
     "7+6 = 13 muffins, and 13-2 = 11 are left.\n#### 11",  # wrong
     {"problem": "A farmer plants 9 rows of 4 trees and 5 of the trees die. How many trees are still alive?",
      "solution": "9*4 = 36 trees.\n36-5 = 31 trees are alive.\n#### 31"}),
]
BENCHMARK = ["A train travels at 60 miles per hour for 3 hours and then at 40 miles per hour for 2 hours. "
             "How many miles does the train travel in total?",
             "A pool holds 500 liters of water and loses 20 liters every hour. How many liters are left after a day?"]
BENCHMARK_REPLY = {"problem": BENCHMARK[0], "solution": "60*3 = 180, 40*2 = 80, 180+80 = 260.\n#### 260"}
K_DIVERSIFY, SOLUTIONS, AGREE = 2, 3, 2


def seed_of(text: str) -> tuple:
    return next(seed for seed in SEEDS if seed[0] in text)


def writer(payload: dict) -> str:
    text = prompt_text(payload)
    if "Write ONE NEW problem" in text:
        return json.dumps(seed_of(text)[3] or BENCHMARK_REPLY)
    if "in a way that differs" in text:  # samples of the wrong problem differ (the server is seen to sample)
        reply = seed_of(text)[2]
        return reply.replace("are left", f"are left (draft {payload['seed']})") if reply.endswith("11") else reply
    return "unexpected prompt"


def solver(payload: dict) -> str:
    return "There are 9*4 = 36 trees, and 36-5 = 31 remain.\n#### 31" if "farmer" in prompt_text(payload) else "?"


def jaccard5(a: str, b: str) -> float:
    grams = [{t[i:i + 5] for i in range(len(t) - 4)} for t in (a.lower(), b.lower())]
    return len(grams[0] & grams[1]) / len(grams[0] | grams[1])


def recipe_text(tmp_path, writer_url: str, solver_url: str) -> str:
    return f"""name: screens
version: 1.0.0
sources:
  - path: {tmp_path / 'gold.jsonl'}
stages:
  - type: diversify
    k: {K_DIVERSIFY}
    min_distance: 0.3
    model: {{name: writer, backend: endpoint, model: w, base_url: {writer_url}}}
  - type: expand
    k: 1
    solutions: {SOLUTIONS}
    agree: {AGREE}
    model: {{name: writer, backend: endpoint, model: w, base_url: {writer_url}}}
    solver: {{name: solver, backend: endpoint, model: s, base_url: {solver_url}}}
  - type: collect
decontaminate:
  eval_sets:
    - {{name: bench, path: {tmp_path / 'bench.jsonl'}}}
publish:
  methods: [gold, diversify, expand]
output:
  dir: {tmp_path}/build
  work_dir: {tmp_path}/work
"""


def test_diversify_and_expand_screens(tmp_path):
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps({"question": q, "answer": a}) + "\n"
                                                 for q, a, *_ in SEEDS))
    (tmp_path / "bench.jsonl").write_text("".join(json.dumps({"question": q, "answer": "#### 1"}) + "\n"
                                                  for q in BENCHMARK))
    with FakeOpenAI(reply=writer) as w, FakeOpenAI(reply=solver) as s:
        recipe = tmp_path / "screens.yaml"
        recipe.write_text(recipe_text(tmp_path, w.url, s.url))
        result = run("build", recipe, timeout=600)
        assert result.returncode == 0, result.stderr
        written, solved = [prompt_text(p) for p in w.payloads], [prompt_text(p) for p in s.payloads]
    build = tmp_path / "build"
    stats = json.loads((build / "stats.json").read_text())
    corpus = pq.read_table(build / "data").to_pylist()
    card = (build / "README.md").read_text()

    # diversify: the prompt never shows the gold solution; per problem k identical replies
    diversify = [t for t in written if "in a way that differs" in t]
    assert len(diversify) == K_DIVERSIFY * len(SEEDS)
    assert not any("Reference solution" in t or seed_of(t)[1] in t for t in diversify)
    expected = {"too similar": K_DIVERSIFY, "accepted": 1, "duplicate reasoning": K_DIVERSIFY - 1,
                "wrong answer": K_DIVERSIFY}
    assert stats["diversify"]["outcomes"] == expected
    kept = [r for r in corpus if r["method"] == "diversify"]
    assert [r["solution"] for r in kept] == [SEEDS[1][2]]
    assert json.loads(kept[0]["generation"])["reference_shown"] is False
    assert ", ".join(f"{k} {v}" for k, v in sorted(expected.items())) in card

    # expand: the reworded seed is too close, the benchmark question is dropped before solving, the new one is kept
    similarities = [jaccard5(seed[3]["problem"] if seed[3] else BENCHMARK[0], seed[0]) for seed in SEEDS]
    assert similarities[0] > 0.6 >= max(similarities[1:])
    assert stats["expand"]["seed_similarity"]["max"] == round(max(similarities), 4)
    expected = {"too close to seed": 1, "benchmark overlap": 1, "accepted": 1}
    assert stats["expand"]["outcomes"] == expected
    assert ", ".join(f"{k} {v}" for k, v in sorted(expected.items())) in card
    # every solve request went to the solver, only for the kept candidate
    assert not any(t.startswith("Solve step by step") for t in written)
    assert len(solved) == SOLUTIONS and all("farmer" in t for t in solved)
    expanded = [r for r in corpus if r["method"] == "expand"]
    assert [(r["question"], r["final_answer"]) for r in expanded] == [(SEEDS[2][3]["problem"], "31")]
    assert json.loads(expanded[0]["generation"])["solver"] == "solver"


def test_reference_prompt_and_defaults():
    model = {"backend": "endpoint", "model": "m", "base_url": "http://127.0.0.1:1"}
    default = DiversifyStage(type="diversify", model=model)
    assert (default.show_reference, default.min_distance) == (False, 0.0)
    assert not shows_reference(Diversify(default, 0).template())
    shown = DiversifyStage(type="diversify", model=model, show_reference=True)
    assert shows_reference(Diversify(shown, 0).template())
    expand = ExpandStage(type="expand", model=model)
    assert (expand.solver, expand.max_seed_similarity) == (None, 0.6)
