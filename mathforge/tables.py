"""Reading JSONL and Parquet tables row by row, with the line (or row) numbers that error messages name."""
from __future__ import annotations

import io
from pathlib import Path

import orjson

from mathforge.errors import InputError


def read_table(path: str | Path) -> tuple[list[dict], list[int]]:
    """Rows of a JSONL or Parquet file with their line numbers (row numbers for Parquet)."""
    rows, numbers = [], []
    for row, number in iter_table(path):
        rows.append(row)
        numbers.append(number)
    return rows, numbers


def line_runs(path: str | Path, size: int) -> list[tuple[int, int, int]]:
    """(offset, length, first line number) of consecutive runs of whole lines of a file, about `size` bytes each,
    covering it: one pass into one reused buffer of at most 8 MiB (a line longer than `size` makes its run longer)."""
    out, start, first, lines, position = [], 0, 1, 0, 0
    block = max(1, min(size, 1 << 23))
    buffer = bytearray(block)
    with open(path, "rb") as handle:
        while n := handle.readinto(buffer):
            last = buffer.rfind(b"\n", 0, n)
            if last >= 0:
                lines += buffer.count(b"\n", 0, n)
                end = position + last + 1  # just after the last newline read
                if end - start >= size - block:
                    out.append((start, end - start, first))
                    start, first = end, lines + 1
            position += n
    if position > start:
        out.append((start, position - start, first))
    return out


def iter_table(path: str | Path, batch_rows: int = 16_384, span: tuple[int, int, int] | None = None):
    """(row, line number) of a JSONL or Parquet file, streamed: memory holds one Parquet batch at most. `span`
    (JSONL only): the run of whole lines (offset, length, first line number) of `line_runs` to read instead."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", str(path))
    if path.is_dir():
        raise InputError("is a directory, not a JSONL or Parquet file", str(path))
    if not path.is_file():  # a device (/dev/zero), a FIFO or a socket: reading may never end
        raise InputError("is not a regular file (a device, pipe or socket), not a JSONL or Parquet file", str(path))
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        number = 0
        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
            for batch in batches:
                for row in batch.to_pylist():
                    number += 1
                    yield row, number
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"unreadable Parquet: {exc}", str(path)) from None
        return
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", str(path)) from None
    with handle:
        lines, first = handle, 1
        if span is not None:
            handle.seek(span[0])
            lines, first = io.BytesIO(handle.read(span[1])), span[2]  # lines end at b"\n" only, as the file's do
        for number, raw in enumerate(lines, first):
            if not raw.strip():
                continue
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc}", str(path), number) from None
            if not isinstance(row, dict):
                raise InputError("expected a JSON object", str(path), number)
            yield row, number


def is_empty(path: str | Path) -> bool:
    """Whether a JSONL or Parquet table has no rows (blank lines are not rows)."""
    path = Path(path)
    if path.suffix == ".parquet" and path.is_file():
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows == 0
        except Exception:
            pass  # unreadable: iter_table says why
    rows = iter_table(path, batch_rows=1)
    try:
        return next(rows, None) is None
    finally:
        rows.close()
