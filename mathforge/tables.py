"""Reading JSONL and Parquet tables row by row, with the line (or row) numbers that error messages name."""
from __future__ import annotations

from pathlib import Path

import orjson

from mathforge.errors import InputError


def read_table(path: str | Path) -> tuple[list[dict], list[int]]:
    """Rows of a JSONL or Parquet file with their line numbers (row numbers for Parquet)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", str(path))
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:
            raise InputError(f"unreadable Parquet: {exc}", str(path)) from None
        return rows, list(range(1, len(rows) + 1))
    rows, numbers = [], []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc}", str(path), number) from None
            if not isinstance(row, dict):
                raise InputError("expected a JSON object", str(path), number)
            rows.append(row)
            numbers.append(number)
    return rows, numbers
