"""Collect at scale: any number of tasks gives the same kept set and bytes, Ray, resume after kill -9, bounded memory."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import CLI, run
from mathforge.builders.build import run_collect
from mathforge.builders.recipe import Executor
from mathforge.builders.samples import seed_file_index
from mathforge.builders.sources import load_local
from mathforge.builders.stages.collect_inputs import read_range
from reference import reference_collect

from mathforge.testing import synthetic


def _rows(out: Path) -> list[dict]:
    return [row for shard in sorted((out / "data").glob("*.parquet")) for row in pq.read_table(shard).to_pylist()]


def _digests(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


def _kept(rows: list[dict]) -> dict[str, list[str]]:
    kept: dict[str, list[str]] = {}
    for row in rows:
        if row["method"] == "rft":
            kept.setdefault(row["problem_id"], []).append(row["solution"])
    return kept


@pytest.mark.parametrize("tasks", [1, 2, 5])
def test_any_number_of_tasks_keeps_the_reference_set_in_order(screl, tasks):
    """7 partitions over 30 problems, spread over 1, 2 or 5 tasks: the reference transcription's kept paths, in its
    order, for every problem."""
    problems = load_local(screl["gold"])
    out = screl["tmp"] / f"out{tasks}"
    result = run_collect(problems, screl["models"], out, "paper", tasks=tasks, partitions=7, include_gold=False)
    expected = reference_collect([json.loads(line) for line in open(screl["gold"])], screl["models"])
    kept = _kept(_rows(out))
    assert all(kept.get(p.problem_id, []) == expected[p.index] for p in problems)
    assert result.stats["distinct"] == sum(map(len, expected.values())) > 30
    assert len(result.tasks) == 7 and sum(t["samples"] for t in result.tasks) == result.stats["samples"] == 1080
    assert len(list((out / "data").glob("*.parquet"))) == 7
    assert not list(screl["tmp"].glob(".out*.work"))  # the work dir goes once the output is in place


def test_shards_and_stats_are_byte_identical_for_any_number_of_tasks(screl):
    problems = load_local(screl["gold"])
    table = screl["tmp"] / "table.jsonl"  # a samples table too: its rows meet their problems through buckets
    with open(table, "wb") as handle:
        for i, row in enumerate(screl["rows"]):
            for j in range(3):
                text = synthetic.paraphrase(row["answer"], __import__("random").Random(i * 10 + j))
                handle.write(orjson.dumps({"idx": i, "model": "tabular", "solution": text}) + b"\n")
    digests = []
    for tasks in (1, 2, 8):
        out = screl["tmp"] / f"o{tasks}"
        run_collect(problems, [*screl["models"], str(table)], out, "canonical", tasks=tasks, partitions=8,
                    shard_rows=5)
        digests.append(_digests(out))
    assert digests[0] == digests[1] == digests[2]
    assert sum(name.startswith("data/") for name in digests[0]) > 8  # partitions split at shard_rows


def test_a_large_table_indexed_in_runs_of_lines_gives_the_same_bytes(screl, monkeypatch):
    """A JSONL table cut into runs of a few lines (each an index unit, run in parallel) gives the bytes of the table
    read whole: every problem's rows in file order, and a bad row's line number the same."""
    from mathforge.builders.stages import collect_pipeline

    problems = load_local(screl["gold"])
    table = screl["tmp"] / "big.jsonl"
    rng = __import__("random").Random(5)
    with open(table, "wb") as handle:  # rows of one problem spread over the whole file, a bad row inside
        for j in range(4):
            for i, row in enumerate(screl["rows"]):
                text = synthetic.paraphrase(row["answer"], rng)
                handle.write(orjson.dumps({"idx": i, "model": f"m{j % 2}", "solution": text}) + b"\n")
            handle.write(b'{"idx": 123456, "solution": "x"}\n' if j == 1 else b"\n")
    whole = screl["tmp"] / "whole"
    run_collect(problems, [str(table)], whole, "canonical", tasks=2, partitions=3)
    monkeypatch.setattr(collect_pipeline, "TABLE_CHUNK", 700)
    runs = screl["tmp"] / "runs"
    run_collect(problems, [str(table)], runs, "canonical", tasks=2, partitions=3)
    plan = collect_pipeline.make_plan(problems, [str(table)], "canonical", True, screl["tmp"] / "w")
    assert len(plan.units()) == len(plan.chunks[0]) > 10  # the table was read in many units
    assert _digests(whole) == _digests(runs)
    bad = 2 * len(screl["rows"]) + 2  # by hand: two blocks of rows and a blank line before it
    examples = json.loads((runs / "stats.json").read_text())["rejected_examples"]
    assert [(e["line"], e["reason"]) for e in examples] == [(bad, "unknown problem")]


def test_the_largest_partition_is_handed_out_first(screl):
    """Local collect gives task r the r-th largest partition by bucketed bytes (the longest must not start last);
    every partition is collected once, the same rows as in number order (one task)."""
    from mathforge.builders.stages.collect_pipeline import make_plan, read_parts, run_collect_plan

    problems = load_local(screl["gold"])
    table = screl["tmp"] / "uneven.jsonl"
    with open(table, "wb") as handle:  # the last third of the problems has texts 20 times as long
        for i, row in enumerate(screl["rows"]):
            padding = "We check it once more. " * (40 if 3 * i >= 2 * len(screl["rows"]) else 2)
            handle.write(orjson.dumps({"idx": i, "model": "m", "solution": padding + row["answer"]}) + b"\n")
    outcomes = []
    for tasks in (2, 1):
        plan = make_plan(problems, [str(table)], "canonical", True, screl["tmp"] / f"uneven{tasks}", partitions=3)
        outcomes.append(run_collect_plan(plan, tasks=tasks))
    plan = outcomes[0].plan
    sizes = {p: sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(plan.path("buckets", f"p{p:05d}"))
                    for f in fs) for p in range(3)}
    assert sizes[2] > 3 * max(sizes[0], sizes[1])  # by construction
    assert plan.largest_first() == sorted(range(3), key=lambda p: -sizes[p]) and plan.largest_first()[0] == 2
    assert sorted(path.name for path in plan.path("parts").glob("*.json")) == [f"p{p:05d}.json" for p in range(3)]
    assert read_parts(plan, outcomes[0].files) == read_parts(outcomes[1].plan, outcomes[1].files)


RECIPE = """name: scale
version: 1.0.0
sources:
  - name: synthetic
    path: {gold}
stages:
  - type: collect
    samples: [{models}]
    dedup: paper
    partitions: 6
    tasks: {tasks}
output:
  dir: {out}
  work_dir: {work}
"""


def test_recipe_build_fingerprint_is_the_same_for_any_number_of_tasks(screl):
    prints, files = [], []
    for tasks in (1, 2, 8):
        out = screl["tmp"] / f"build{tasks}"
        recipe = screl["tmp"] / f"r{tasks}.yaml"
        recipe.write_text(RECIPE.format(gold=screl["gold"], models=", ".join(screl["models"]), tasks=tasks, out=out,
                                        work=screl["tmp"] / f"work{tasks}"))
        result = run("build", recipe)
        assert result.returncode == 0, result.stderr
        manifest = json.loads((out / "manifest.json").read_text())
        prints.append(manifest["fingerprint"])
        files.append({k: v for k, v in _digests(out).items() if k != "manifest.json"})
    assert prints[0] == prints[1] == prints[2]
    assert files[0] == files[1] == files[2]


def test_ray_executor_with_three_tasks_matches_local(screl):
    pytest.importorskip("ray")
    problems = load_local(screl["gold"])
    local = run_collect(problems, screl["models"], screl["tmp"] / "local", "paper", tasks=1, partitions=5)
    ray = run_collect(problems, screl["models"], screl["tmp"] / "ray", "paper", executor=Executor(type="ray"),
                      tasks=3, partitions=5)
    assert _digests(screl["tmp"] / "local") == _digests(screl["tmp"] / "ray")
    assert ray.stats == local.stats and len(ray.tasks) == 5


def _big_input(tmp: Path, problems: int, models: int = 2, seeds: int = 6) -> tuple[Path, list[Path]]:
    tmp.mkdir(parents=True, exist_ok=True)
    rows = synthetic.problems(problems, seed=3)
    gold = tmp / "gold.jsonl"
    synthetic.write_gold(rows, gold)
    dirs = []
    for m in range(models):
        synthetic.write_model_dir(rows, tmp / f"model{m}", m, seeds=seeds)
        dirs.append(tmp / f"model{m}")
    return gold, dirs


def test_kill_9_during_collect_then_rerun_loses_and_duplicates_nothing(tmp_path):
    gold, dirs = _big_input(tmp_path, 3000)
    args = ["collect", "--gold", gold, *[a for d in dirs for a in ("--samples", d)], "--dedup", "canonical",
            "--tasks", "1", "--partitions", "30"]
    clean = run(*args, "--out", tmp_path / "clean", timeout=600)
    assert clean.returncode == 0, clean.stderr
    out = tmp_path / "killed"
    work = tmp_path / ".killed.work"
    process = subprocess.Popen([*CLI, *map(str, args), "--out", str(out)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(work.glob("*/parts/p*.json"))) < 3:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list(work.glob("*/parts/p*.json")))
    assert 3 <= finished < 30, "the kill must land mid-collect"
    assert not out.exists()  # nothing half-written where the output goes
    rerun = run(*args, "--out", out, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert _digests(out) == _digests(tmp_path / "clean")
    rows = _rows(out)
    assert len(rows) == len({(r["problem_id"], r["method"], r["solution"]) for r in rows})


def test_an_input_edited_to_the_same_length_and_mtime_after_a_kill_gives_a_clean_runs_result(tmp_path):
    """kill -9 mid-collect; a seed file rewritten to the same length with its mtime restored (as `cp -p`, `rsync -t`
    and `tar` restore it); the rerun equals a fresh run on the edited input in another directory, and the killed
    run's work dir is gone."""
    gold, dirs = _big_input(tmp_path, 3000)
    args = ["collect", "--gold", gold, *[a for d in dirs for a in ("--samples", d)], "--dedup", "canonical",
            "--tasks", "1", "--partitions", "30"]
    out, work = tmp_path / "killed", tmp_path / ".killed.work"
    process = subprocess.Popen([*CLI, *map(str, args), "--out", str(out)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(work.glob("*/parts/p*.json"))) < 3:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    old = list(work.glob("collect-*"))
    assert len(old) == 1 and 3 <= len(list(old[0].glob("parts/p*.json"))) < 30, "the kill must land mid-collect"
    finished = {hashlib.sha256(p.read_bytes()).hexdigest() for p in old[0].glob("parts/*.parquet")}
    seed_file = dirs[0] / "raw_generation_0.7_0.json"
    before = seed_file.stat()
    data = seed_file.read_bytes()
    edited = data.translate(bytes.maketrans(b"0123456789", b"1234567890"))  # every digit +1: same length
    assert len(edited) == len(data) and edited != data
    seed_file.write_bytes(edited)
    os.utime(seed_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (seed_file.stat().st_size, seed_file.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    rerun = run(*args, "--out", out, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert not work.exists()  # the killed run's work dir went with the rerun's own
    clean = run(*args, "--out", tmp_path / "clean", timeout=600)
    assert clean.returncode == 0, clean.stderr
    assert _digests(out) == _digests(tmp_path / "clean")
    # one partition, one shard: the killed run's finished partitions (old bytes) are none of the clean run's
    assert len(finished) >= 3 and finished.isdisjoint(_digests(tmp_path / "clean").values())


def test_stale_work_dirs_go_only_when_they_are_ours_of_this_output_and_idle(tmp_path):
    """Beside a new work dir, only another `collect-<16 hex>` dir of the same owner, holding only work entries and
    held by no live process, is removed; a user's file inside, another owner, a symlink or a live holder keep it."""
    from mathforge.builders.stages.collect_pipeline import remove_stale

    root = tmp_path / ".out.work"

    def work_dir(name: str, owner: str | None = "me", extra: str | None = None) -> Path:
        folder = root / name
        (folder / "parts").mkdir(parents=True)
        (folder / "parts" / "p00000.json").write_text("{}")
        if owner is not None:
            (folder / "owner").write_text(owner)
        if extra:
            (folder / extra).write_text("keep me")
        return folder

    current = work_dir("collect-" + "0" * 16)
    stale = work_dir("collect-" + "1" * 16)
    with_notes = work_dir("collect-" + "2" * 16, extra="notes.txt")
    other_owner = work_dir("collect-" + "3" * 16, owner="someone else")
    no_owner = work_dir("collect-" + "4" * 16, owner=None)
    busy = work_dir("collect-" + "5" * 16)
    odd_name = work_dir("collect-" + "6" * 15)
    target = work_dir("elsewhere")
    (root / ("collect-" + "7" * 16)).symlink_to(target)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time\nf = open(sys.argv[1], 'a')\n"
                               "fcntl.flock(f, fcntl.LOCK_SH)\nprint('held', flush=True)\ntime.sleep(60)",
                               str(busy / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        remove_stale(current, "me")
    finally:
        holder.kill()
        holder.wait()
    assert not stale.exists()
    assert all(p.exists() for p in (current, with_notes, other_owner, no_owner, busy, odd_name, target))
    assert (root / ("collect-" + "7" * 16)).is_symlink() and (target / "parts" / "p00000.json").exists()
    remove_stale(current, "me")  # the holder is gone: now it is stale
    assert not busy.exists() and with_notes.exists()


PEAK = """
import os, sys
from mathforge.cli import main
sys.argv = ["mathforge"] + sys.argv[1:]
try:
    main()
finally:
    import resource
    print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def _peak_kb(tmp: Path, problems: int) -> tuple[int, dict]:
    gold, dirs = _big_input(tmp, problems, models=2, seeds=8)
    out = tmp / "out"
    # one task in this process, partitions of 250 problems: memory follows the partition, not the input
    result = subprocess.run([sys.executable, "-c", PEAK, "collect", "--gold", str(gold),
                             *[a for d in dirs for a in ("--samples", str(d))], "--out", str(out), "--tasks", "1",
                             "--partitions", str(problems // 250), "--dedup", "canonical"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    peak = int(result.stderr.rsplit("PEAK", 1)[1].split()[0])
    return peak, json.loads((out / "stats.json").read_text())


def test_peak_memory_does_not_grow_with_the_input(tmp_path):
    """An input 8x larger (8x the problems, same samples per problem) stays within 1.3x the peak RSS."""
    small, small_stats = _peak_kb(tmp_path / "small", 1500)
    large, large_stats = _peak_kb(tmp_path / "large", 12000)
    assert large_stats["samples"] == 8 * small_stats["samples"] == 8 * 1500 * 16
    assert large <= 1.3 * small, (small, large)


def test_seed_file_index_finds_line_offsets_at_any_block_size(tmp_path):
    """Offsets of partition bounds, checked against a plain split of the file, for blocks of 1 byte and up."""
    import random

    for trial in range(60):
        rng = random.Random(trial)
        lines = [bytes(rng.choice(b"ab\xc3") for _ in range(rng.randint(0, 5))) for _ in range(rng.randint(0, 25))]
        path = tmp_path / f"f{trial}"
        path.write_bytes(b"\n".join(lines) + (b"\n" if rng.random() < 0.7 else b""))
        data = path.read_bytes()  # lines as readlines() gives them: a trailing newline adds no line
        expected = data.split(b"\n")[:-1] if data.endswith(b"\n") else (data.split(b"\n") if data else [])
        bounds = sorted(rng.randint(0, 30) for _ in range(4))
        count, offsets = seed_file_index(str(path), bounds, rng.choice([1, 2, 3, 7, 1 << 20]))
        assert count == len(expected)
        for bound, offset in zip(bounds, offsets):
            assert read_range(str(path), offset, len(data))[:3] == expected[bound:bound + 3]


def test_blocks_inside_a_partition_read_the_same_samples(screl):
    """Partitions of 15 problems read 4 problems at a time (blocks that do not divide the partition): the same
    rows as one block per partition, the reference's kept sets."""
    from mathforge.builders.stages.collect_pipeline import make_plan, read_parts, run_collect_plan

    problems = load_local(screl["gold"])
    outcomes = []
    for block in (4, 256):
        plan = make_plan(problems, screl["models"], "paper", False, screl["tmp"] / "work", partitions=2, block=block)
        outcomes.append(run_collect_plan(plan, tasks=2))
    assert outcomes[0].plan.block_starts() == [0, 4, 8, 12, 15, 19, 23, 27, 30]
    rows = [read_parts(o.plan, o.files) for o in outcomes]
    assert rows[0] == rows[1] and outcomes[0].stats == outcomes[1].stats
    expected = reference_collect([json.loads(line) for line in open(screl["gold"])], screl["models"])
    kept = _kept([dict(zip(rows[0], values)) for values in zip(*rows[0].values())])
    assert all(kept.get(p.problem_id, []) == expected[p.index] for p in problems)


def test_an_over_long_sample_is_rejected_as_too_long(screl):
    """A 40 KB line (the audit's hostile shape) is counted as `too long`, with its file and line, and not judged."""
    problems = load_local(screl["gold"])
    seed_file = Path(screl["models"][0]) / "raw_generation_0.7_0.json"
    lines = seed_file.read_bytes().split(b"\n")
    lines[3] = orjson.dumps([["prompt", "####" + " " * 40_000 + "x"]])
    seed_file.write_bytes(b"\n".join(lines))
    stats = run_collect(problems, screl["models"], screl["tmp"] / "o", "paper", tasks=1).stats
    assert stats["rejected"]["too long"] == 1
    assert {"source": str(seed_file), "line": 4, "reason": "too long"} in stats["rejected_examples"]
    assert stats["samples"] == 1080
