"""The MathGPT sibling synthesis methods, pure parts: query expansion, answer agreement, retrospection, CPT mix."""
from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mathforge.builders.prompts import render
from mathforge.builders.stages.expand_prompts import EXPAND_PROMPT, EXPAND_REASONS, EXPAND_SCHEMA, agree, parse_expansion
from mathforge.builders.stages.mix_ratios import mix
from mathforge.builders.stages.retrospect_prompts import RETROSPECT_PROMPT, RETROSPECT_REASONS, parse_retrospective
from mathforge.builders.stages.tutor_prompts import MAX_CHARS, Rejected

SEED_Q = "Ava has 3 apples and buys 4 boxes of 5 apples. How many apples does she have?"
SEED_S = "4*5 = <<4*5=20>>20\n3+20 = <<3+20=23>>23\n#### 23"
NEW = {"problem": "Ben has 7 pens and buys 3 packs of 6 pens. How many pens does he have?",
       "solution": "3*6 = 18\n7+18 = 25\n#### 25"}


def words(text: str) -> int:
    return len(text.split())


# ------------------------------------------------------------------------------------------- expansion

def test_expand_prompt_renders():
    text = render(EXPAND_PROMPT, {"question": SEED_Q, "solution": SEED_S})
    assert SEED_Q in text and SEED_S in text and '"problem"' in text and "####" in text and "NEW" in text


def test_expand_schema():
    assert set(EXPAND_SCHEMA["required"]) == set(EXPAND_SCHEMA["properties"]) == {"problem", "solution"}
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(NEW, EXPAND_SCHEMA)


@pytest.mark.parametrize("wrap", [
    lambda j: j,
    lambda j: f"```json\n{j}\n```",
    lambda j: f"Sure! Here is a new problem {{as asked}}:\n{j}\nLet me know if you need more.",
    lambda j: f"```\n{j}\n```",
])
def test_parse_expansion_json(wrap):
    out = parse_expansion(wrap(json.dumps(NEW)))
    assert out == {**NEW, "answer": "25"}


def test_parse_expansion_text_format():
    text = f"New problem: {NEW['problem']}\n\nSolution:\n{NEW['solution']}\n"
    assert parse_expansion(text) == {**NEW, "answer": "25"}
    text = f"**Problem:** {NEW['problem']}\n**Solution:** {NEW['solution']}"
    assert parse_expansion(text) == {**NEW, "answer": "25"}


def test_parse_expansion_unicode_and_commas():
    new = {"problem": "Zoë a 1 000 € …", "solution": "1,000 + 234 = 1,234 €\n#### 1,234"}
    assert parse_expansion(json.dumps(new, ensure_ascii=False))["answer"] == "1234"


@pytest.mark.parametrize("text,finish,reason", [
    (None, None, "empty"),
    ("   ", None, "empty"),
    (json.dumps(NEW), "length", "truncated"),
    ("I can't create new problems.", None, "refusal"),
    ("As an AI, I won't do that.", None, "refusal"),
    ("Here is something unrelated.", None, "malformed"),
    ('{"problem": "Ben has 7 pens', None, "malformed"),
    (json.dumps({"solution": NEW["solution"]}), None, "missing problem"),
    (json.dumps({"problem": "", "solution": NEW["solution"]}), None, "missing problem"),
    (json.dumps({"problem": 5, "solution": NEW["solution"]}), None, "missing problem"),
    (json.dumps({"problem": NEW["problem"]}), None, "missing solution"),
    (json.dumps({"problem": NEW["problem"], "solution": None}), None, "missing solution"),
    (json.dumps({"problem": NEW["problem"], "solution": "He has 25 pens."}), None, "missing answer"),
    (f"Problem: {NEW['problem']}", None, "missing solution"),
    (f"Solution: {NEW['solution']}", None, "missing problem"),
])
def test_parse_expansion_rejections(text, finish, reason):
    assert parse_expansion(text, finish) == Rejected(reason)
    assert reason in EXPAND_REASONS


def test_parse_expansion_huge_input():
    junk = "z" * (3 * MAX_CHARS)
    assert parse_expansion(json.dumps(NEW) + junk)["answer"] == "25"
    assert parse_expansion(junk + json.dumps(NEW)) == Rejected("malformed")
    assert parse_expansion('{"problem":' * 30_000) == Rejected("malformed")


@given(st.text(max_size=2000), st.sampled_from([None, "stop", "length"]))
@settings(max_examples=300, deadline=None)
def test_parse_expansion_never_raises(text, finish):
    out = parse_expansion(text, finish)
    assert isinstance(out, dict) or out.reason in EXPAND_REASONS


@given(st.dictionaries(st.sampled_from(["problem", "solution", "x"]),
                       st.none() | st.integers() | st.text(max_size=30) | st.lists(st.text(max_size=5))),
       st.text(max_size=20))
@settings(max_examples=300, deadline=None)
def test_parse_expansion_never_raises_on_json_like(obj, prose):
    out = parse_expansion(prose + json.dumps(obj))
    assert isinstance(out, (dict, Rejected))


# ----------------------------------------------------------------------------------------------- agree

def test_agree_normalises_numbers():
    assert agree(["1,000", "1000.0", "$1000", None], 3) == "1000"
    assert agree(["1,000", "1000.0", "999"], 3) is None
    assert agree(["0.50", ".5", "1/2"], 2) == "0.5"       # "1/2" is not a strict number: ignored
    assert agree(["-3", "-3.00", "3"], 2) == "-3"
    assert agree(["50%", "50"], 2) == "50"


def test_agree_ignores_none_and_junk():
    assert agree([None, None, "abc", "", "7"], 1, kind="gsm8k") == "7"
    assert agree([None, None, "abc", "", "7"], 1) is None  # auto: "abc" is an answer too, and ties with 7
    assert agree(["\\frac12", "0.5", "1/2", "0.4", None], 3) == "\\frac12"  # one class by equivalence
    assert agree([None, None], 1) is None
    assert agree([], 1) is None
    assert agree(["１２"], 1, kind="gsm8k") is None          # non-ASCII digits are not strict numbers


def test_agree_tie_and_majority():
    assert agree(["1", "2", "1", "2"], 2) is None             # two values reach n: ambiguous
    assert agree(["1", "2", "1", "2", "2"], 2) == "2"
    assert agree(["5", "5", "5", "6"], 3) == "5"


def test_agree_n_must_be_positive():
    with pytest.raises(ValueError):
        agree(["1"], 0)


@given(st.lists(st.none() | st.text(max_size=10) | st.integers(-5, 5).map(str), max_size=10), st.integers(1, 5))
def test_agree_never_raises(answers, n):
    out = agree(answers, n)
    assert out is None or isinstance(out, str)


# ----------------------------------------------------------------------------------------- retrospection

RETRO = "4*5 = 21\n[back] Step 1 again: 4*5 is 20, not 21.\n3+20 = 23\n#### 23"


def test_retrospect_prompt_renders():
    text = render(RETROSPECT_PROMPT, {"question": SEED_Q, "solution": SEED_S})
    assert SEED_Q in text and SEED_S in text and "[back]" in text and "####" in text


def test_parse_retrospective_ok():
    assert parse_retrospective(RETRO) == RETRO
    assert parse_retrospective(f"```\n{RETRO}\n```\n") == RETRO
    assert parse_retrospective(RETRO.replace("[back]", "[BACK]")) == RETRO
    assert parse_retrospective(RETRO.replace("[back]", "[ Back ]")) == RETRO
    assert parse_retrospective("x [back] y\n#### 1", "stop") == "x [back] y\n#### 1"


@pytest.mark.parametrize("text,finish,reason", [
    (None, None, "empty"),
    ("\n\n", None, "empty"),
    (RETRO, "length", "truncated"),
    ("I'm sorry, but I cannot help with that.", None, "refusal"),
    ("4*5 = 20\n3+20 = 23\n#### 23", None, "no [back] marker"),
    ("I can't see step 1 any more... 4*5 = 20\n#### 20", None, "no [back] marker"),
    ("back to step 1\n#### 23", None, "no [back] marker"),
    ("4*5 = 21\n[back] 4*5 = 20\nso she has 23 apples", None, "missing answer"),
    ("[back]" + "x" * MAX_CHARS + "\n#### 1", None, "too long"),
])
def test_parse_retrospective_rejections(text, finish, reason):
    assert parse_retrospective(text, finish) == Rejected(reason)
    assert reason in RETROSPECT_REASONS


@given(st.text(max_size=1000), st.sampled_from([None, "stop", "length"]))
@settings(max_examples=300, deadline=None)
def test_parse_retrospective_never_raises(text, finish):
    out = parse_retrospective(text, finish)
    assert isinstance(out, str) and "[back]" in out or out.reason in RETROSPECT_REASONS


# ------------------------------------------------------------------------------------------------- mix

def corpus(seed: int = 0) -> dict[str, list[str]]:
    rng = random.Random(seed)
    def docs(tag, n, lo, hi):
        return [" ".join(f"{tag}{i}w{j}" for j in range(rng.randint(lo, hi))) for i in range(n)]
    return {"problem_solving": docs("p", 200, 5, 40), "general_math": docs("g", 400, 10, 80)}


def tokens_of(selected, group):
    return sum(words(text) for g, text in selected if g == group)


def max_doc(groups, group):
    return max(words(text) for text in groups[group])


def test_mix_ratio_within_one_document_of_target():
    groups = corpus()
    selected, report = mix(groups, {"problem_solving": 3, "general_math": 7}, 5000, words, seed=1)
    for name in groups:
        info = report["groups"][name]
        assert info["tokens"] == tokens_of(selected, name)
        assert info["target_tokens"] - max_doc(groups, name) < info["tokens"] <= info["target_tokens"]
    assert report["groups"]["problem_solving"]["target_tokens"] == pytest.approx(1500)
    assert report["groups"]["general_math"]["target_tokens"] == pytest.approx(3500)
    assert report["groups"]["problem_solving"]["achieved_ratio"] == pytest.approx(0.3, abs=0.02)
    assert report["total_tokens"] <= 5000 and report["limited_by"] is None


def test_mix_ratio_normalised():
    groups = corpus()
    a = mix(groups, {"problem_solving": 0.3, "general_math": 0.7}, 4000, words, seed=2)
    b = mix(groups, {"problem_solving": 30, "general_math": 70}, 4000, words, seed=2)
    assert a == b


def test_mix_deterministic_and_seed_sensitive():
    groups = corpus()
    ratio = {"problem_solving": 3, "general_math": 7}
    first = mix(groups, ratio, 3000, words, seed=5)
    assert first == mix({k: list(v) for k, v in reversed(groups.items())}, ratio, 3000, words, seed=5)
    other = mix(groups, ratio, 3000, words, seed=6)
    assert [t for _, t in first[0]] != [t for _, t in other[0]]


def test_mix_interleaves_groups():
    selected, _ = mix(corpus(), {"problem_solving": 1, "general_math": 1}, 4000, words, seed=0)
    labels = [g for g, _ in selected]
    first_half = labels[: len(labels) // 2]
    assert set(first_half) == {"problem_solving", "general_math"}


def test_mix_selected_are_whole_documents_without_repeats():
    groups = corpus()
    selected, _ = mix(groups, {"problem_solving": 3, "general_math": 7}, 6000, words, seed=3)
    assert len(selected) == len(set(selected))
    for name, text in selected:
        assert text in groups[name]


@given(st.integers(0, 20_000), st.integers(0, 10_000), st.floats(0.05, 20), st.floats(0.05, 20))
@settings(max_examples=60, deadline=None)
def test_mix_budget_honoured_and_ratio_held(budget, seed, wa, wb):
    groups = corpus(seed % 7)
    selected, report = mix(groups, {"problem_solving": wa, "general_math": wb}, budget, words, seed=seed)
    assert report["total_tokens"] == sum(words(t) for _, t in selected) <= budget
    for name in groups:
        info = report["groups"][name]
        assert info["target_tokens"] - max_doc(groups, name) < info["tokens"] <= info["target_tokens"] + 1e-6


def test_mix_exhausted_group_limits_the_mix():
    groups = {"problem_solving": ["a b c d e"] * 10, "general_math": ["x y z w v u t s r q"] * 1000}
    _, report = mix(groups, {"problem_solving": 3, "general_math": 7}, 1_000_000, words, seed=0)
    ps, gm = report["groups"]["problem_solving"], report["groups"]["general_math"]
    assert report["limited_by"] == "problem_solving"
    assert ps["documents"] == 10 and ps["tokens"] == 50                   # the scarce group is used in full
    assert gm["target_tokens"] == pytest.approx(50 * 7 / 3)
    assert gm["tokens"] == 110 and gm["documents"] == 11                  # within one document of 116.7
    assert report["total_tokens"] == 160 < report["token_budget"]


def test_mix_without_budget_is_limited_by_scarcest_group():
    groups = {"a": ["1 2"] * 10, "b": ["1 2"] * 100}
    _, report = mix(groups, {"a": 1, "b": 1}, None, words, seed=0)
    assert report["limited_by"] == "a"
    assert report["groups"]["a"]["tokens"] == report["groups"]["b"]["tokens"] == 20


def test_mix_natural_ratio_when_none():
    groups = corpus()
    selected, report = mix(groups, None, None, words, seed=0)
    assert len(selected) == 600 and report["limited_by"] is None
    _, budgeted = mix(groups, None, 1000, words, seed=0)
    assert budgeted["total_tokens"] <= 1000
    total = sum(words(t) for docs in groups.values() for t in docs)
    share = sum(words(t) for t in groups["problem_solving"]) / total
    assert budgeted["groups"]["problem_solving"]["target_ratio"] == pytest.approx(share)


def test_mix_groups_left_out_of_ratio_get_nothing():
    groups = {**corpus(), "web": ["lots of web text"] * 5}
    selected, report = mix(groups, {"problem_solving": 1}, 500, words, seed=0)
    assert {g for g, _ in selected} == {"problem_solving"}
    assert report["groups"]["web"]["documents"] == 0 and report["groups"]["general_math"]["tokens"] == 0


def test_mix_empty_group_with_weight_gives_empty_mix():
    _, report = mix({"a": [], "b": ["x y"]}, {"a": 1, "b": 1}, 100, words, seed=0)
    assert report["total_tokens"] == 0 and report["limited_by"] == "a"


def test_mix_large_first_document_is_not_split():
    _, report = mix({"a": ["w " * 500], "b": ["v"] * 100}, {"a": 1, "b": 1}, 100, words, seed=0)
    assert report["groups"]["a"]["documents"] == 0 and report["groups"]["b"]["tokens"] == 50


@pytest.mark.parametrize("ratio,budget,message", [
    ({"problem_solving": 3, "gen_math": 7}, None, "unknown groups \\['gen_math'\\]"),
    ({"problem_solving": -1, "general_math": 1}, None, "finite number >= 0"),
    ({"problem_solving": float("nan")}, None, "finite number >= 0"),
    ({"problem_solving": float("inf")}, None, "finite number >= 0"),
    ({"problem_solving": "3"}, None, "finite number >= 0"),
    ({"problem_solving": 0, "general_math": 0}, None, "weight of 0"),
    ({"problem_solving": 1}, -5, "token_budget"),
])
def test_mix_bad_arguments(ratio, budget, message):
    with pytest.raises(ValueError, match=message):
        mix(corpus(), ratio, budget, words, seed=0)


def test_mix_bad_token_counter():
    with pytest.raises(ValueError, match="count_tokens"):
        mix({"a": ["x"]}, None, None, lambda text: -1, seed=0)
    with pytest.raises(ValueError, match="count_tokens"):
        mix({"a": ["x"]}, None, None, lambda text: 1.5, seed=0)
