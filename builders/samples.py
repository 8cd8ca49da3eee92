"""Sample inputs for collect: gsm8k-ScRel model directories and JSONL/Parquet sample tables."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from mathforge.builders.sources import Problem

from mathforge.errors import InputError
from mathforge.tables import read_table

SCREL_FILE_RE = re.compile(r"^raw_generation_(?P<temp>[^_/]+)_(?P<seed>\d+)\.json$")
TEXT_COLUMNS = ("solution", "completion", "response", "output", "text")


@dataclass(frozen=True)
class SeedFile:
    """One `raw_generation_<T>_<seed>.json`: line i holds `[[prompt, completion]]` for gold problem i."""

    path: str
    temperature: float | None
    seed: int


@dataclass
class SampleSource:
    """One input PATH: a model directory (ScRel layout) or a table of samples."""

    path: str
    model: str
    seed_files: list[SeedFile] = field(default_factory=list)

    @property
    def is_table(self) -> bool:
        return not self.seed_files


def discover(path: str | Path) -> SampleSource:
    """Recognise a PATH: a directory of seed files (seeds in numeric order) or a .jsonl/.parquet file."""
    path = Path(path)
    if path.is_dir():
        files = []
        for child in path.iterdir():
            match = SCREL_FILE_RE.match(child.name)
            if match:
                try:
                    temp = float(match["temp"])
                except ValueError:
                    temp = None
                files.append(SeedFile(str(child), temp, int(match["seed"])))
        if not files:
            raise InputError("no raw_generation_<T>_<seed>.json files in this directory", str(path))
        files.sort(key=lambda f: (f.seed, f.temperature or 0.0, f.path))
        return SampleSource(str(path), path.name, files)
    if path.suffix in (".jsonl", ".parquet") and path.exists():
        return SampleSource(str(path), path.stem)
    if not path.exists():
        raise InputError("not found", str(path))
    raise InputError("expected a model directory in the gsm8k-ScRel layout, a .jsonl or a .parquet file", str(path))


def read_seed_lines(path: str) -> list[bytes]:
    """The lines of a seed file as `readlines()` would give them (a trailing newline adds no line)."""
    with open(path, "rb") as handle:
        data = handle.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def completion_of(line: bytes) -> str:
    """The completion of one seed-file line (`[[prompt, completion]]`, or `{"gen": [completion]}`)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = json.loads(line)  # stdlib accepts lone surrogates that orjson refuses
    text = obj[0][1] if isinstance(obj, list) else obj["gen"][0]
    if not isinstance(text, str):
        raise TypeError("completion is not a string")
    return text


@dataclass(frozen=True)
class TableSample:
    """One row of a samples table, resolved to its gold problem."""

    problem: int
    model: str
    text: str
    seed: int | None
    sample_index: int | None
    line: int
    temperature: float | None = None
    reasoning: str | None = None  # a reasoning model's trace (the `reasoning` column; tables without it: none)


def read_table_samples(source: SampleSource, problems: list[Problem]) -> tuple[list[TableSample], list[tuple[int, str]]]:
    """Resolve a samples table against the gold problems; rows that cannot be resolved come back as rejects."""
    rows, numbers = read_table(source.path)
    if not rows:
        return [], []
    columns = set().union(*(row.keys() for row in rows[:100]))
    text_col = next((c for c in TEXT_COLUMNS if c in columns), None)
    if text_col is None:
        raise InputError(f"no solution column: expected one of {', '.join(TEXT_COLUMNS)}", source.path, key="solution")
    if not columns & {"problem_id", "idx", "question", "query"}:
        raise InputError("no problem reference: expected problem_id, idx, question or query", source.path,
                         key="problem_id")
    by_id = {p.problem_id: p.index for p in problems}
    by_question = {p.question: p.index for p in problems}
    samples, rejects = [], []
    for row, number in zip(rows, numbers):
        problem = _resolve(row, by_id, by_question, len(problems))
        text = row.get(text_col)
        if problem is None:
            rejects.append((number, "unknown problem"))
        elif not isinstance(text, str):
            rejects.append((number, f"{text_col} is not a string"))
        else:
            seed, index, temp = row.get("seed"), row.get("sample_index"), row.get("temperature")
            reasoning = row.get("reasoning")
            samples.append(TableSample(problem, str(row.get("model") or source.model), text,
                                       seed if isinstance(seed, int) else None,
                                       index if isinstance(index, int) else None, number,
                                       float(temp) if isinstance(temp, (int, float)) else None,
                                       reasoning if isinstance(reasoning, str) and reasoning else None))
    return samples, rejects


def _resolve(row: dict, by_id: dict, by_question: dict, n: int) -> int | None:
    if row.get("problem_id") in by_id:
        return by_id[row["problem_id"]]
    idx = row.get("idx")
    if isinstance(idx, int) and not isinstance(idx, bool) and 0 <= idx < n:
        return idx
    question = row.get("question", row.get("query"))
    return by_question.get(question) if isinstance(question, str) else None
