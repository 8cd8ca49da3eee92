"""Training data: a config of a mathforge build (local or from the Hub), and the CPT mixture with a general corpus."""
from __future__ import annotations

import random
from pathlib import Path

from mathforge.errors import InputError


def resolve_config(ref: str, config: str) -> tuple[Path, dict, list[str]]:
    """(build dir, manifest, parquet files of `config`); errors before any model is loaded."""
    from mathforge.builders.publish.hub import resolve
    from mathforge.builders.publish.manifest import read_manifest

    root = resolve(ref)  # verified: the manifest is the closed list of the build's files
    manifest = read_manifest(root)
    files = [str(root / rel) for rel in config_files(manifest, config)]
    if config not in manifest.get("rows", {}) or not files:
        available = ", ".join(sorted(manifest.get("rows", {}))) or "none"
        raise InputError(f"dataset has no config {config!r} (available: {available})", ref, key="dataset_config")
    return root, manifest, files


def config_files(manifest: dict, config: str) -> list[str]:
    """The Parquet shards of a config as the manifest lists them (never a glob: an extra file is not read)."""
    folder = "data" if config == "default" else config
    return sorted(rel for rel in manifest["files"] if rel.startswith(f"{folder}/") and rel.endswith(".parquet")
                  and "/" not in rel[len(folder) + 1:])


def load_config(files: list[str]):
    from datasets import load_dataset

    return load_dataset("parquet", data_files=files, split="train")


def load_general(ref: str, config: str):
    """A general-math corpus with a `text` column: a mathforge build (its config) or a .jsonl/.parquet file."""
    from datasets import load_dataset

    path = Path(ref)
    if path.is_file():
        kind = "json" if path.suffix in (".jsonl", ".json") else "parquet"
        data = load_dataset(kind, data_files=str(path), split="train")
    else:
        _, _, files = resolve_config(ref, config)
        data = load_config(files)
    if "text" not in data.column_names:
        raise InputError("the mix dataset has no `text` column", ref, key="mix_dataset")
    return data.select_columns(["text"])


def mix_by_tokens(main, general, ratio: float, count_tokens, seed: int = 0):
    """Documents from both corpora so that `ratio` of the tokens come from `main` (all of the smaller side)."""
    from datasets import concatenate_datasets

    main_tokens = [count_tokens(t) for t in main["text"]]
    general_tokens = [count_tokens(t) for t in general["text"]]
    total_main, total_general = sum(main_tokens), sum(general_tokens)
    # use all of the limiting corpus; take the other up to its share
    if total_main / ratio <= total_general / (1 - ratio):
        target_main, target_general = total_main, total_main / ratio * (1 - ratio)
    else:
        target_main, target_general = total_general / (1 - ratio) * ratio, total_general
    picks_main = _take(main_tokens, target_main, seed)
    picks_general = _take(general_tokens, target_general, seed + 1)
    mixed = concatenate_datasets([main.select_columns(["text"]).select(picks_main), general.select(picks_general)])
    mixed = mixed.shuffle(seed=seed)
    got_main = sum(main_tokens[i] for i in picks_main)
    got_general = sum(general_tokens[i] for i in picks_general)
    report = {"main_documents": len(picks_main), "general_documents": len(picks_general), "main_tokens": got_main,
              "general_tokens": got_general, "target_ratio": ratio,
              "achieved_ratio": round(got_main / max(got_main + got_general, 1), 4)}
    return mixed, report


def _take(tokens: list[int], target: float, seed: int) -> list[int]:
    order = list(range(len(tokens)))
    random.Random(seed).shuffle(order)
    picked, total = [], 0
    for i in order:
        if total >= target:
            break
        picked.append(i)
        total += tokens[i]
    return sorted(picked)
