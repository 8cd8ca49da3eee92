"""Corpus rows (the row contract) and their atomic, deterministic Parquet output."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mathforge.builders.publish.overwrite import check_replace
from mathforge.verify.equations import ungrounded

SCHEMA = pa.schema([
    ("problem_id", pa.string()), ("question", pa.string()), ("reference_answer", pa.string()),
    ("solution", pa.string()), ("final_answer", pa.string()), ("method", pa.string()),
    ("model", pa.string()), ("teacher", pa.string()), ("sample_index", pa.int64()), ("seed", pa.int64()),
    ("generation", pa.string()), ("verdict", pa.string()), ("verifier", pa.string()),
    ("equations", pa.list_(pa.string())), ("equation_key", pa.string()), ("source", pa.string()),
    ("cpt_text", pa.string()),  # set when a method's CPT form is not the row's question + solution (tutor)
    ("contaminated", pa.bool_()),  # decontamination verdict (null when the recipe declares no eval sets)
    ("reasoning", pa.string()),  # the sampled reasoning trace before the solution (null: none, and gold rows)
    ("ungrounded", pa.int64()),  # operands of its checked equations from nowhere (`equations.ungrounded`)
])
SHARD_ROWS = 100_000


def corpus_rows(problems, per_problem, judge, include_gold: bool) -> dict[str, list]:
    """Columns of the corpus: per problem its gold row (unless turned off), then its kept RFT paths."""
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    for problem, result in zip(problems, per_problem):
        reference = judge.gold_answer(problem.index)
        if include_gold:
            equations = judge.equations(problem.solution)
            key = judge.judge(problem.index, problem.solution)[2]
            _append(columns, problem, reference, problem.solution, reference, "gold", None, None, None,
                    None, "correct", judge.verifier, equations, key, None, None,
                    len(ungrounded(problem.question, problem.solution, judge.name == "paper")))
        for kept in result.kept:
            generation = json.dumps({"temperature": kept.temperature, "seed": kept.seed}, sort_keys=True)
            # edge whitespace is the sampler's (e.g. the space after "Answer:"), not part of the solution
            _append(columns, problem, reference, kept.text.strip(), _answer_text(kept.answer), "rft", kept.model,
                    kept.sample_index, kept.seed, generation, "correct", judge.verifier,
                    judge.equations(kept.text), kept.key, kept.source, kept.reasoning, kept.ungrounded)
    return columns


def append_method_rows(columns: dict[str, list], rows: list[dict], method: str, judge, source: str) -> None:
    """Rows from a synthesis stage (e.g. tutor), already verified, after the collect rows."""
    for row in rows:
        problem = row["problem"]
        values = {"problem_id": problem.problem_id, "question": problem.question,
                  "reference_answer": row.get("reference_answer") or judge.gold_answer(problem.index),
                  "solution": row["solution"],
                  "final_answer": row["final_answer"], "method": method, "model": row["model"],
                  "teacher": row.get("teacher"), "sample_index": row.get("sample_index"), "seed": None,
                  "generation": json.dumps(row.get("generation") or {}, sort_keys=True), "verdict": "correct",
                  "verifier": judge.verifier, "equations": judge.equations(row["solution"]), "equation_key": None,
                  "source": source, "cpt_text": row.get("cpt_text"), "contaminated": None,
                  "reasoning": row.get("reasoning"),
                  "ungrounded": len(ungrounded(problem.question, row["solution"], judge.name == "paper"))}
        for name in SCHEMA.names:
            columns[name].append(values[name])


def _answer_text(answer) -> str:
    return repr(answer) if isinstance(answer, float) else str(answer)


def _append(columns, problem, reference, solution, final, method, model, index, seed, generation, verdict,
            verifier, equations, key, source, reasoning, from_nowhere) -> None:
    values = (problem.problem_id, problem.question, reference, solution, final, method, model, None, index,
              seed, generation, verdict, verifier, equations, key, source, None, None, reasoning, from_nowhere)
    for name, value in zip(SCHEMA.names, values):
        columns[name].append(value)


def write_shards(table: pa.Table, folder: Path, shard_rows: int = SHARD_ROWS) -> list[Path]:
    """`train-0000i-of-0000N.parquet` shards with deterministic bytes (fixed options, no statistics)."""
    folder.mkdir(parents=True, exist_ok=True)
    count = max(1, -(-table.num_rows // shard_rows))
    paths = []
    for shard in range(count):
        path = folder / f"train-{shard:05d}-of-{count:05d}.parquet"
        write_parquet(table.slice(shard * shard_rows, shard_rows), path)
        paths.append(path)
    return paths


class Corpus:
    """A build's candidate rows in corpus order, never all in memory: Parquet parts (collect's partitions, each at
    most `shard_rows` rows), then the rows of later stages held in memory (synthesized rows: few)."""

    def __init__(self, parts: list[Path] | None = None, tail: dict[str, list] | None = None):
        self.parts = list(parts or [])
        self.tail = tail if tail is not None else {name: [] for name in SCHEMA.names}

    def chunks(self):
        """The rows as column dicts, one part at a time."""
        for part in self.parts:
            yield pq.read_table(part, schema=SCHEMA).to_pydict()
        if self.tail["problem_id"]:
            yield self.tail

    def __len__(self) -> int:
        return sum(pq.ParquetFile(part).metadata.num_rows for part in self.parts) + len(self.tail["problem_id"])


class ShardWriter:
    """`train-0000i-of-0000N.parquet` shards of exactly `shard_rows` rows (the last: the rest) from tables written
    one after another; N is known at `close`, so shards are written under temporary names and renamed then. The
    bytes equal `write_shards` of the whole table."""

    def __init__(self, folder: Path, schema: pa.Schema, shard_rows: int = SHARD_ROWS):
        self.folder, self.schema, self.shard_rows = folder, schema, shard_rows
        self.buffer: list[pa.Table] = []
        self.held = self.rows = 0
        self.written: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, table: pa.Table) -> None:
        self.buffer.append(table)
        self.held += table.num_rows
        self.rows += table.num_rows
        while self.held >= self.shard_rows:
            self._emit(self.shard_rows)

    def _emit(self, rows: int) -> None:
        table = pa.concat_tables(self.buffer).combine_chunks() if self.buffer else self.schema.empty_table()
        path = self.folder / f".shard-{len(self.written):05d}.tmp"
        write_parquet(table.slice(0, rows), path)
        self.written.append(path)
        rest = table.slice(rows)
        self.buffer, self.held = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> list[Path]:
        if self.held or not self.written:
            self._emit(self.held)
        count, paths = len(self.written), []
        for shard, tmp in enumerate(self.written):
            path = self.folder / f"train-{shard:05d}-of-{count:05d}.parquet"
            os.replace(tmp, path)
            paths.append(path)
        return paths


def write_parquet(table: pa.Table, path: Path) -> None:
    """One Parquet file with deterministic bytes: fixed options, no statistics."""
    pq.write_table(table, path, compression="zstd", write_statistics=False, store_schema=True)


def write_output(out_dir: str | Path, columns: dict[str, list] | None, stats: dict, overwrite: bool = False,
                 shard_rows: int = SHARD_ROWS, extra=None) -> list[Path]:
    """Write shards + stats.json (+ whatever `extra(staging)` adds) into a temporary sibling, then move it into
    place: never a half-written OUT_DIR.

    The sibling is `.<name>.<host>-<pid>-<random>` (the owner in the name: a file inside would become part of the
    build). Staging and trash siblings of this output left by a killed run (same host, owner process dead) are
    removed first; anyone else's, or ones still in use, are left alone."""
    import re
    import socket

    out_dir = Path(out_dir)
    check_replace(out_dir, overwrite)  # checked before any work too; again here, where it is replaced
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
    owned = re.compile(rf"\.{re.escape(out_dir.name)}\.(?:old-)?{re.escape(host)}-(\d+)(?:-[a-z0-9_]+)?")
    for leftover in out_dir.parent.iterdir():
        found = owned.fullmatch(leftover.name)
        if not found or int(found[1]) == os.getpid() or not leftover.is_dir() or leftover.is_symlink():
            continue
        try:
            os.kill(int(found[1]), 0)
            continue  # its owner still runs: in use
        except ProcessLookupError:
            shutil.rmtree(leftover, ignore_errors=True)
        except (PermissionError, OverflowError, OSError):
            continue  # another user's live process, or not a pid we can ask about
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{host}-{os.getpid()}-", dir=out_dir.parent))
    os.chmod(staging, 0o755)
    try:
        if columns is not None:  # None: `extra` places the shards itself
            write_shards(pa.table(columns, schema=SCHEMA), staging / "data", shard_rows)
        (staging / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
        if extra is not None:
            extra(staging)
        _replace_dir(staging, out_dir, host)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted((out_dir / "data").glob("*.parquet"))


def _replace_dir(staging: Path, out_dir: Path, host: str = "host") -> None:
    if out_dir.exists():
        trash = out_dir.with_name(f".{out_dir.name}.old-{host}-{os.getpid()}")  # found by write_output if killed here
        shutil.rmtree(trash, ignore_errors=True)
        os.rename(out_dir, trash)
        os.rename(staging, out_dir)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(staging, out_dir)
