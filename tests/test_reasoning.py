"""Reasoning models: traces kept apart from the solution, graded on the final text, carried to the corpus and shown."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run

import mathforge
from mathforge.testing import synthetic
from mathforge.testing.fake_openai import INSTRUCTION_RE, FakeOpenAI, prompt_text

KINDS = ("right", "wrong", "cut")  # by seed: right final answer after a wrong guess; right guess, wrong final; cut off


class Script:
    """A scripted reasoning model; `sent` records, per (question, seed), the kind of reply and its parts."""

    def __init__(self, rows: list[dict], form: str):
        self.by_question = {row["question"]: row for row in rows}
        self.form = form  # "field": reasoning_content beside the content; "think": a <think> block in the text
        self.sent: dict[tuple[str, int], dict] = {}

    def __call__(self, payload: dict):
        text = prompt_text(payload)
        match = INSTRUCTION_RE.search(text)
        question = match.group(1) if match else text.strip()
        seed = int(payload["seed"])
        right = self.by_question[question]["solutions"][seed % 2]
        head, _, answer = right.rpartition("#### ")
        other = int(answer) + 1
        kind = KINDS[seed % len(KINDS)]
        reasoning, solution = {
            "right": (f"Seed {seed}. A first guess: {other}.\n#### {other}\nNo: recheck the sum.", right),
            "wrong": (f"Seed {seed}. Working it out:\n#### {answer}\nso the answer is {answer}.",
                      f"{head}#### {other}"),
            "cut": (f"Seed {seed}. Let me see, {answer} or {other}, still", None),
        }[kind]
        self.sent[(question, seed)] = {"kind": kind, "reasoning": reasoning, "solution": solution}
        finish = "length" if solution is None else "stop"
        if self.form == "field":
            return {"content": solution, "reasoning_content": reasoning}, finish
        return (f"<think>\n{reasoning}\n</think>\n\n{solution}" if solution is not None
                else f"<think>\n{reasoning}"), finish


class RenamedField(FakeOpenAI):
    """A server that names the reasoning field `reasoning` (as some OpenAI-compatible servers do)."""

    def _completion(self, path, payload, reply, finish="stop"):
        data = super()._completion(path, payload, reply, finish)
        message = data["choices"][0].get("message", {})
        if "reasoning_content" in message:
            message["reasoning"] = message.pop("reasoning_content")
        return data


@pytest.fixture
def gold(tmp_path) -> dict:
    rows = synthetic.problems(8, seed=11)
    synthetic.write_gold(rows, tmp_path / "gold.jsonl")
    return {"rows": rows, "tmp": tmp_path}


def recipe(tmp: Path, url: str, chat: bool, publish: dict | None = None) -> dict:
    """A sample + collect recipe for one reasoning model (max_tokens left to its default)."""
    model = {"name": "thinker", "backend": "endpoint", "model": "fake-model", "base_url": url, "reasoning": True}
    return {"name": "reason", "version": "1.0.0", "sources": [{"name": "synth", "path": str(tmp / "gold.jsonl")}],
            "stages": [{"type": "sample", "k": 3, "concurrency": 8, "retry_backoff": 0.05,
                        "prompt": {"chat": chat}, "models": [model]},
                       {"type": "collect"}],
            "publish": publish or {},
            "output": {"dir": str(tmp / "builds" / "{name}" / "{version}"), "work_dir": str(tmp / "work")}}


def table(folder: Path) -> list[dict]:
    return [row for shard in sorted(folder.glob("*.parquet")) for row in pq.read_table(shard).to_pylist()]


def spread(values: list[int]) -> dict:
    """mean (one decimal), median, and p90 as documented: the value at rank int(0.9 * (n - 1)) when sorted."""
    ordered = sorted(values)
    return {"mean": round(sum(ordered) / len(ordered), 1), "median": statistics.median(ordered),
            "p90": ordered[int(0.9 * (len(ordered) - 1))]}


def check_build(built, script: Script) -> list[dict]:
    """Every verdict and every RFT row against what the script sent; returns the corpus rows."""
    kinds = [s["kind"] for s in script.sent.values()]
    assert set(kinds) == set(KINDS) and len(kinds) == 8 * 3
    stats = built.stats
    assert stats["samples"] == len(kinds) and stats["correct"] == kinds.count("right")
    assert stats["rejected"]["wrong"] == kinds.count("wrong")  # the right answer inside the reasoning counts for nothing
    assert stats["rejected"]["unparseable"] == kinds.count("cut")  # a trace cut off has no answer
    rows = table(built.out_dir / "data")
    rft = [r for r in rows if r["method"] == "rft"]
    assert rft and len(rft) == stats["distinct"]
    for row in rft:
        sent = script.sent[(row["question"], row["seed"])]
        assert sent["kind"] == "right" and row["reasoning"] == sent["reasoning"]
        assert row["solution"] == sent["solution"].strip() and "think>" not in row["solution"]
        assert "first guess" not in row["solution"].lower()
    assert all(r["reasoning"] is None for r in rows if r["method"] == "gold")
    reasoning = [s["reasoning"] for s in script.sent.values()]  # every sample came with one
    assert stats["reasoning"] == {"samples": len(reasoning), "chars": spread([len(r) for r in reasoning]),
                                  "tokens": spread([len(r.split()) for r in reasoning])}
    return rows


def samples_table(tmp: Path) -> list[dict]:
    return [row for path in sorted((tmp / "work" / "samples").glob("thinker-*/samples.parquet"))
            for row in pq.read_table(path).to_pylist()]


@pytest.mark.parametrize("server_class", [FakeOpenAI, RenamedField], ids=["reasoning_content", "reasoning"])
def test_reasoning_field_is_kept_apart_and_the_final_answer_graded(gold, server_class):
    script = Script(gold["rows"], "field")
    with server_class(reply=script).start() as server:
        built = mathforge.build(recipe(gold["tmp"], server.url, chat=True))
        sent_max_tokens = {p["max_tokens"] for p in server.payloads}
    assert sent_max_tokens == {32768}  # a reasoning model's default, since the recipe gives none
    check_build(built, script)
    samples = samples_table(gold["tmp"])
    assert len(samples) == 24
    for sample in samples:
        sent = script.sent[(gold["rows"][sample["idx"]]["question"], sample["seed"])]
        assert sample["reasoning"] == sent["reasoning"]
        assert sample["text"] == (sent["solution"] or "")  # content null (cut off): empty text
        assert sample["finish_reason"] == ("length" if sent["kind"] == "cut" else "stop")
    card = (built.out_dir / "README.md").read_text()
    assert "### Reasoning traces" in card and f"{len(samples)} of {len(samples)} samples" in card


def test_think_block_in_the_text_is_split_and_published_as_asked(gold):
    script = Script(gold["rows"], "think")
    with FakeOpenAI(reply=script).start() as server:
        built = mathforge.build(recipe(gold["tmp"], server.url, chat=False, publish={"reasoning": "think"}))
        requests = server.counts["ok"]
        assert server.counts["POST /v1/completions"] == requests == 24
        # the same requests with the other publish mode: samples reused, nothing sent again
        plain = mathforge.build(recipe(gold["tmp"], server.url, chat=False), version="1.1.0")
        assert server.counts["ok"] == requests and plain.passes[0].reused
    rows = check_build(built, script)
    for sample in samples_table(gold["tmp"]):
        sent = script.sent[(gold["rows"][sample["idx"]]["question"], sample["seed"])]
        assert sample["reasoning"] == sent["reasoning"]  # unclosed <think>: all of it is reasoning
        assert sample["text"] == (sent["solution"] or "") and "<think>" not in sample["text"]
    assert table(plain.out_dir / "data") == rows
    think_sft, think_cpt = table(built.out_dir / "sft"), table(built.out_dir / "cpt")
    plain_sft, plain_cpt = table(plain.out_dir / "sft"), table(plain.out_dir / "cpt")
    think_messages = table(built.out_dir / "messages")
    assert len(think_sft) == len(plain_sft) == len(rows)  # gold and rft are published by default, in corpus order
    for row, sft, cpt, plain_s, plain_c, chat in zip(rows, think_sft, think_cpt, plain_sft, plain_cpt,
                                                    think_messages):
        shown = row["solution"] if row["reasoning"] is None else \
            "<think>\n" + row["reasoning"] + "\n</think>\n\n" + row["solution"]
        assert sft["completion"] == " " + shown and cpt["text"] == row["question"] + "\n\n" + shown
        assert chat["messages"][-1] == {"role": "assistant", "content": shown}
        assert plain_s["completion"] == " " + row["solution"]
        assert plain_c["text"] == row["question"] + "\n\n" + row["solution"] and "<think>" not in plain_c["text"]
    assert any("<think>" in s["completion"] for s in think_sft)


def test_a_samples_table_without_a_reasoning_column_still_collects(gold):
    rows, tmp = gold["rows"], gold["tmp"]
    answer = int(rows[1]["answer"].rpartition("#### ")[2])
    trace = f"A guess:\n#### {answer + 5}"
    texts = [rows[0]["answer"], f"<think>\n{trace}\n</think>\n\n{rows[1]['answer']}",
             rows[2]["answer"].rpartition("#### ")[0] + "#### 1"]
    path = tmp / "old-samples.parquet"  # the columns the sample stage wrote before `reasoning` existed
    pq.write_table(pa.table({"idx": [0, 1, 2], "model": ["old"] * 3, "text": texts,
                             "seed": [1, 2, 3], "sample_index": [0, 0, 0]}), path)
    built = mathforge.build({"name": "old", "version": "1.0.0", "sources": [{"name": "synth",
                                                                             "path": str(tmp / "gold.jsonl")}],
                             "stages": [{"type": "collect", "samples": [str(path)]}],
                             "output": {"dir": str(tmp / "old-build")}})
    assert built.stats["samples"] == 3 and built.stats["rejected"] == {"wrong": 1}
    rft = sorted((r for r in table(built.out_dir / "data") if r["method"] == "rft"), key=lambda r: r["seed"])
    assert [(r["question"], r["solution"], r["reasoning"]) for r in rft] == [
        (rows[0]["question"], rows[0]["answer"], None), (rows[1]["question"], rows[1]["answer"], trace)]
    assert built.stats["reasoning"] == {"samples": 1, "chars": spread([len(trace)]),
                                        "tokens": spread([len(trace.split())])}


def test_reasoning_models_default_to_long_traces_and_explicit_max_tokens_win(gold, tmp_path):
    endpoint = {"backend": "endpoint", "model": "m", "base_url": "http://127.0.0.1:9"}

    def stage(**extra) -> dict:
        return {"name": "r", "version": "1.0.0", "sources": [{"path": str(gold["tmp"] / "gold.jsonl")}],
                "stages": [{"type": "sample", **extra}, {"type": "collect"}]}

    def max_tokens(models: list[dict], **extra) -> int:
        return mathforge.load_recipe(stage(models=models, **extra)).stages[0].max_tokens

    thinker, plain = {**endpoint, "name": "t", "reasoning": True}, {**endpoint, "name": "p"}
    assert max_tokens([plain]) == 512 and max_tokens([thinker]) == 32768 and max_tokens([plain, thinker]) == 32768
    assert max_tokens([thinker], max_tokens=100) == 100 and max_tokens([thinker], max_tokens=512) == 512
    synthesis = mathforge.load_recipe({**stage(models=[plain]), "stages": [
        {"type": "diversify", "model": thinker}, {"type": "diversify", "model": thinker, "max_tokens": 64},
        {"type": "tutor", "student": "p", "teacher": thinker}, {"type": "collect"}]})
    assert [s.max_tokens for s in synthesis.stages[:3]] == [32768, 64, 32768]

    path = tmp_path / "dry.yaml"
    path.write_text(json.dumps(stage(models=[thinker])))  # JSON is YAML
    result = run("build", path, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "max_tokens=32768" in result.stdout and "(reasoning model)" in result.stdout
    explicit = run("build", path, "--dry-run", "--set", "stages.0.max_tokens=2048")
    assert "max_tokens=2048" in explicit.stdout and "max_tokens=32768" not in explicit.stdout


def test_the_reasoning_flag_alone_does_not_change_the_pass_fingerprint(gold):
    from mathforge.builders.generation.runner import fingerprint, problem_docs, template_of
    from mathforge.builders.sources import load_sources_split

    def sample_stage(reasoning: bool):
        model = {"backend": "endpoint", "model": "m", "base_url": "http://127.0.0.1:9", "reasoning": reasoning}
        return mathforge.load_recipe({"name": "r", "version": "1.0.0", "sources": [
            {"path": str(gold["tmp"] / "gold.jsonl")}], "stages": [
            {"type": "sample", "max_tokens": 512, "models": [model]}]})

    plain, thinker = sample_stage(False), sample_stage(True)
    problems = [p for group in load_sources_split(plain.sources) for p in group]
    docs = problem_docs(problems, template_of(plain.stages[0]))
    assert fingerprint(plain.stages[0], plain.stages[0].models[0], docs) == \
        fingerprint(thinker.stages[0], thinker.stages[0].models[0], docs)
