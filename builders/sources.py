"""Problem sources: local JSONL/Parquet and Hub datasets, column mapping, stable problem ids."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from mathforge.errors import InputError
from mathforge.tables import read_table

QUESTION_COLUMNS = ("question", "query", "problem")
SOURCE_MAX_BYTES = 4 * 2**30  # a local source file past this is refused before it is read (every row is in memory)
SOLUTION_COLUMNS = ("answer", "response", "solution")
DIFFICULTY_COLUMNS = ("difficulty", "level")  # read when present (MATH's `level`); never required


@dataclass(frozen=True)
class Problem:
    """One gold problem: position in its source, stable id, question and gold solution (or bare answer)."""

    index: int
    problem_id: str
    question: str
    solution: str
    answer_kind: str = "auto"  # how the gold answer is written: gsm8k (`#### n`), latex, or auto
    difficulty: str | None = None  # the source's difficulty column, as text (`Level 3`, `4`), when it has one


def problem_id(source_id: str, question: str) -> str:
    """Stable id: a hash of the source's identity and the question text."""
    return hashlib.sha256(f"{source_id}\x1f{question}".encode()).hexdigest()[:16]


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, file: str) -> str:
    if wanted:
        if wanted not in columns:
            raise InputError(f"column {wanted!r} not found (columns: {', '.join(columns)})", file, key=what)
        return wanted
    for name in candidates:
        if name in columns:
            return name
    raise InputError(f"no {what} column: expected one of {', '.join(candidates)} (columns: {', '.join(columns)})",
                     file, key=what)


def load_local(path: str | Path, source_id: str | None = None, question: str | None = None,
               solution: str | None = None, difficulty: str | None = None) -> list[Problem]:
    """Problems from a local JSONL/Parquet file (GSM8K `question`/`answer` or gsm8k-ScRel `query`/`response`):
    a regular file of at most SOURCE_MAX_BYTES."""
    size = Path(path).stat().st_size if Path(path).is_file() else 0  # not a regular file: read_table says so
    if size > SOURCE_MAX_BYTES:
        raise InputError(f"{size:,} bytes: a source file is at most {SOURCE_MAX_BYTES:,} bytes (every row is held "
                         "in memory); split it into several sources", str(path))
    rows, numbers = read_table(path)
    source_id = source_id or Path(path).stem
    return _problems(rows, numbers, str(path), source_id, question, solution, difficulty)


def load_hub(repo: str, config: str | None = None, split: str = "train", revision: str | None = None,
             question: str | None = None, solution: str | None = None, difficulty: str | None = None) -> list[Problem]:
    """Problems from a Hugging Face Hub dataset (e.g. `openai/gsm8k`, config `main`) at a pinned revision."""
    import datasets

    try:
        data = datasets.load_dataset(repo, config, split=split, revision=revision)
    except Exception as exc:
        raise InputError(f"cannot load Hub dataset: {exc}", f"hub:{repo}") from None
    rows = data.to_list()
    source_id = f"{repo}:{config or 'default'}:{split}"
    return _problems(rows, list(range(1, len(rows) + 1)), f"hub:{repo}", source_id, question, solution, difficulty)


def load_synthetic(n: int, seed: int = 0) -> list[Problem]:
    """Seeded synthetic GSM8K-style problems (mathforge.testing.synthetic): a recipe source that needs no file."""
    from mathforge.testing import synthetic

    rows = synthetic.problems(n, seed)
    return _problems(rows, list(range(1, n + 1)), f"synthetic:{seed}", f"synthetic:{seed}", "question", "answer")


def _problems(rows: list[dict], numbers: list[int], file: str, source_id: str,
              question: str | None, solution: str | None, difficulty: str | None = None) -> list[Problem]:
    if not rows:
        raise InputError("no rows", file)
    columns = list(rows[0].keys())
    q_col = _pick(columns, question, QUESTION_COLUMNS, "question", file)
    s_col = _pick(columns, solution, SOLUTION_COLUMNS, "answer", file)
    d_col = _pick(columns, difficulty, DIFFICULTY_COLUMNS, "difficulty", file) if difficulty or \
        any(name in columns for name in DIFFICULTY_COLUMNS) else None
    problems = []
    for index, (row, number) in enumerate(zip(rows, numbers)):
        q, s = row.get(q_col), row.get(s_col)
        if not isinstance(q, str) or not isinstance(s, str):
            missing = q_col if not isinstance(q, str) else s_col
            raise InputError("missing or not a string", file, number, missing)
        level = row.get(d_col) if d_col is not None else None
        if isinstance(level, bool) or (level is not None and not isinstance(level, (str, int, float))):
            raise InputError("a difficulty must be a string or a number", file, number, d_col)
        problems.append(Problem(index, problem_id(source_id, q), q, s,
                                difficulty=str(level).strip() if level is not None else None))
    return problems


def load_sources(sources: list) -> list[Problem]:
    """All problems of the recipe's sources, in order (indices renumbered across sources)."""
    return [p for part in load_sources_split(sources) for p in part]


def load_sources_split(sources: list) -> list[list[Problem]]:
    """The problems of each source (indices already renumbered across sources)."""
    parts: list[list[Problem]] = []
    problems: list[Problem] = []
    for source in sources:
        if source.path:
            part = load_local(source.path, source.name, source.columns.question, source.columns.answer,
                              source.columns.difficulty)
        elif source.synthetic:
            part = load_synthetic(source.synthetic.problems, source.synthetic.seed)
        else:
            part = load_hub(source.hub, source.config, source.split, source.revision,
                            source.columns.question, source.columns.answer, source.columns.difficulty)
        offset = len(problems)
        renumbered = [Problem(offset + i, p.problem_id, p.question, p.solution, source.answer_kind, p.difficulty)
                      for i, p in enumerate(part)]
        problems.extend(renumbered)
        parts.append(renumbered)
    return parts
