"""Sample inputs for collect: gsm8k-ScRel model directories and JSONL/Parquet sample tables."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from mathforge.builders.sources import Problem

from mathforge.errors import InputError
from mathforge.tables import iter_table

SCREL_FILE_RE = re.compile(r"^raw_generation_(?P<temp>[^_/]+)_(?P<seed>\d+)\.json$")
TEXT_COLUMNS = ("solution", "completion", "response", "output", "text")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1  # the corpus's seed column is int64


@dataclass(frozen=True)
class SeedFile:
    """One `raw_generation_<T>_<seed>.json`: line i holds `[[prompt, completion]]` for gold problem i."""

    path: str
    temperature: float | None
    seed: int


@dataclass
class SampleSource:
    """One input PATH: a model directory (ScRel layout) or a table of samples; `shown`: the name rows and stats
    give it when it is not PATH (an input in the build's work directory: see `work_name`)."""

    path: str
    model: str
    seed_files: list[SeedFile] = field(default_factory=list)
    shown: str | None = None

    @property
    def is_table(self) -> bool:
        return not self.seed_files

    def name(self, path: str | None = None) -> str:
        """How this input (or one of its seed files) is named in rows and statistics."""
        path = self.path if path is None else path
        return path if self.shown is None else self.shown + path[len(self.path):]


def work_name(path: str | Path, work_dir: str | Path) -> str:
    """A path as provenance: relative to the work directory when inside it (the build then does not depend on
    where the work directory was), else as given."""
    resolved, root = Path(path).resolve(), Path(work_dir).resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(path)


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
                seed = int(match["seed"])
                if seed > INT64_MAX:
                    raise InputError("the seed in this file name does not fit in a signed 64-bit integer", str(child))
                files.append(SeedFile(str(child), temp, seed))
        if not files:
            raise InputError("no raw_generation_<T>_<seed>.json files in this directory", str(path))
        files.sort(key=lambda f: (f.seed, f.temperature or 0.0, f.path))
        return SampleSource(str(path), path.name, files)
    if path.suffix in (".jsonl", ".parquet") and path.exists():
        return SampleSource(str(path), path.stem)
    if not path.exists():
        raise InputError("not found", str(path))
    raise InputError("expected a model directory in the gsm8k-ScRel layout, a .jsonl or a .parquet file", str(path))


def seed_file_index(path: str, bounds: list[int], block_size: int = 1 << 24) -> tuple[int, list[int]]:
    """(line count, byte offset of line `b` for every b in `bounds`) of a seed file, read in 16 MiB blocks; lines
    as `readlines()` gives them (a trailing newline adds no line); a bound past the last line maps to the size."""
    wanted, found = sorted(set(bounds)), {}
    line = position = i = 0
    last = b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            count = block.count(b"\n")
            index, seen = -1, 0
            while i < len(wanted) and wanted[i] <= line + count:
                while seen < wanted[i] - line:
                    index = block.index(b"\n", index + 1)
                    seen += 1
                found[wanted[i]] = position + index + 1
                i += 1
            line += count
            position += len(block)
            last = block[-1:]
    if last != b"\n":
        line += 1  # a last line without its newline
    return line, [found.get(b, position) for b in bounds]


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


def check_table(source: SampleSource) -> str:
    """The solution column of a samples table, from its first 100 rows; a table without one, or without a problem
    reference, is an InputError naming the file and the missing key (raised before any work starts)."""
    columns: set = set()
    for count, (row, _) in enumerate(iter_table(source.path)):
        columns |= row.keys()
        if count == 99:
            break
    text_col = next((c for c in TEXT_COLUMNS if c in columns), None)
    if columns and text_col is None:
        raise InputError(f"no solution column: expected one of {', '.join(TEXT_COLUMNS)}", source.path, key="solution")
    if columns and not columns & {"problem_id", "idx", "question", "query"}:
        raise InputError("no problem reference: expected problem_id, idx, question or query", source.path,
                         key="problem_id")
    return text_col or TEXT_COLUMNS[0]


def iter_table_samples(source: SampleSource, problems: list[Problem], text_col: str | None = None,
                       span: tuple[int, int, int] | None = None):
    """The rows of a samples table (or of its run of lines `span`, `tables.iter_table`) resolved to gold problems,
    streamed in file order: a TableSample, or (line, reason) for a row that cannot be resolved."""
    text_col = text_col or check_table(source)
    by_id = {p.problem_id: p.index for p in problems}
    by_question = {p.question: p.index for p in problems}
    for row, number in iter_table(source.path, span=span):
        problem = _resolve(row, by_id, by_question, len(problems))
        text = row.get(text_col)
        seed, index, temp, model = row.get("seed"), row.get("sample_index"), row.get("temperature"), row.get("model")
        if isinstance(row.get("problem_id"), (list, dict)):
            yield number, f"problem_id is not a string (a {type(row['problem_id']).__name__})"
        elif problem is None:
            yield number, "unknown problem"
        elif not isinstance(text, str):
            yield number, f"{text_col} is not a string"
        elif _integer(seed) and not INT64_MIN <= seed <= INT64_MAX:
            # the corpus stores seeds as int64: a seed past it (e.g. a 20-digit one) is rejected, never wrapped
            yield number, "seed does not fit in a signed 64-bit integer"
        elif not (model is None or isinstance(model, str) or _integer(model)):
            yield number, "model is not a string"
        else:
            reasoning = row.get("reasoning")
            yield TableSample(problem, str(model or source.model), text,
                              seed if _integer(seed) else None,
                              index if _integer(index) and INT64_MIN <= index <= INT64_MAX else None, number,
                              float(temp) if isinstance(temp, (int, float)) and abs(temp) < 1e300 else None,
                              reasoning if isinstance(reasoning, str) and reasoning else None)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _resolve(row: dict, by_id: dict, by_question: dict, n: int) -> int | None:
    """The gold problem a row names (by problem_id, idx or question text); None when it names none, or names it
    with a value of the wrong type (a list, a mapping: never looked up)."""
    problem_id = row.get("problem_id")
    if isinstance(problem_id, str) and problem_id in by_id:
        return by_id[problem_id]
    idx = row.get("idx")
    if _integer(idx) and 0 <= idx < n:
        return idx
    question = row.get("question", row.get("query"))
    return by_question.get(question) if isinstance(question, str) else None
