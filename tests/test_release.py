"""Versioned builds on disk: configs, card, plots, manifest, fingerprint, determinism, verify, diff, list."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from conftest import run
from markdown_it import MarkdownIt


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_build_layout_configs_and_rebuild_is_byte_identical(corpus):
    result, build = corpus["build"]()
    assert result.returncode == 0, result.stderr
    first = files_of(build)
    manifest = json.loads(first["manifest.json"])
    for name in ("README.md", "stats.json", "data/train-00000-of-00001.parquet", "cpt/train-00000-of-00001.parquet",
                 "sft/train-00000-of-00001.parquet", "messages/train-00000-of-00001.parquet",
                 "plots/distinct_paths.png", "plots/pass_at_k.png", "plots/pass_rate.png"):
        assert name in first and manifest["files"][name]["size"] == len(first[name])
    assert manifest["name"] == "synth-rft" and manifest["version"] == "1.0.0" and len(manifest["fingerprint"]) == 64
    assert manifest["lineage"]["models"][0]["name"] == "solver" and manifest["verifier"].startswith("mathforge-paper")
    assert manifest["recipe"]["stages"][0]["k"] == 4 and "output" not in manifest["recipe"]
    default = pq.read_table(build / "data").to_pylist()
    sft = pq.read_table(build / "sft").to_pylist()
    assert manifest["rows"] == {"default": len(default), "cpt": len(default), "sft": len(default),
                                "messages": len(default)}
    assert {r["method"] for r in default} == {"gold", "rft"}
    gold = next(r for r in default if r["method"] == "gold")
    twin = next(r for r in sft if r["problem_id"] == gold["problem_id"] and r["method"] == "gold")
    assert twin["prompt"].endswith(f"### Instruction:\n{gold['question']}\n\n### Response:")
    assert twin["completion"] == " " + gold["solution"]
    messages = pq.read_table(build / "messages").to_pylist()[0]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]

    again, _ = corpus["build"](extra=("--overwrite",))
    assert again.returncode == 0, again.stderr
    assert files_of(build) == first  # byte-identical: shards, plots, card, manifest


def test_card_renders_with_tables_and_images_that_exist(corpus):
    result, build = corpus["build"]()
    assert result.returncode == 0, result.stderr
    text = (build / "README.md").read_text()
    assert text.startswith("---\n")
    front, body = text[4:].split("\n---\n", 1)
    import yaml

    meta = yaml.safe_load(front)
    assert meta["license"] == "mit" and "gsm8k-style" in meta["tags"] and meta["size_categories"] == ["n<1K"]
    assert [c["config_name"] for c in meta["configs"]] == ["default", "cpt", "sft", "messages"]
    html = MarkdownIt("commonmark").enable("table").render(body)
    assert html.count("<table>") >= 5
    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    images = [child.attrs["src"] for token in tokens if token.children for child in token.children
              if child.type == "image"]
    assert len(images) == 3 and all((build / src).is_file() for src in images)
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["fingerprint"] in body and "k: 4" in body  # fingerprint and the recipe are in the card
    for glob in (c["data_files"][0]["path"] for c in meta["configs"]):
        assert list(build.glob(glob))


def test_verify_catches_tampering_and_names_the_file(corpus):
    result, build = corpus["build"]()
    assert result.returncode == 0, result.stderr
    assert run("pull", build).returncode == 0
    shard = build / "sft" / "train-00000-of-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    bad = run("pull", build)
    assert bad.returncode == 2 and "sft/train-00000-of-00001.parquet: sha256 mismatch" in bad.stderr


def test_diff_and_list(corpus):
    first, a = corpus["build"](version="1.0.0", k=2)
    second, b = corpus["build"](version="1.1.0", k=6)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    result = run("diff", a, b, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["problems_added"] == report["problems_removed"] == 0 and report["problems_common"] == 10
    rft = next(r for r in report["solutions"] if r["method"] == "rft")
    rows_a = sum(1 for r in pq.read_table(a / "data").to_pylist() if r["method"] == "rft")
    rows_b = sum(1 for r in pq.read_table(b / "data").to_pylist() if r["method"] == "rft")
    assert rows_b - rows_a == rft["added"] - rft["removed"] and rft["added"] > 0
    assert report["stats"]["samples"] == {"a": 20, "b": 60, "delta": 40}
    listing = run("list", "--root", corpus["tmp"] / "builds")
    assert listing.returncode == 0 and "1.0.0" in listing.stdout and "1.1.0" in listing.stdout


def test_publish_template_with_unknown_field_fails_before_sampling(corpus):
    publish = "  templates:\n    completion: '{{ solution }} ({{ difficulty }})'\n"
    result, build = corpus["build"](publish=publish)
    assert result.returncode == 2 and "difficulty" in result.stderr and "publish.templates.completion" in result.stderr
    assert corpus["server"].counts["POST /v1/completions"] == 0 and not build.exists()
