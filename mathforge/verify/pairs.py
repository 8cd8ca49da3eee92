"""Grading a file of (gold, pred) pairs: JSONL split across processes, verdicts in order, an atomic JSONL write."""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import tempfile
from collections import Counter
from pathlib import Path

import orjson

import mathforge.lifeline as lifeline
from mathforge.errors import InputError
from mathforge.outputs import check_place
from mathforge.tables import line_runs, read_table
from mathforge.verify.grader import PATHS, grade_batch


def _pair(row: dict, path: str, number: int) -> tuple[str, str]:
    gold, pred = row.get("gold"), row.get("pred")
    for key, value in (("gold", gold), ("pred", pred)):
        if type(value) is not str and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise InputError("missing or not a string", path, number, key)
    return str(gold), str(pred)


def _line(raw: bytes | dict, verdict) -> bytes:
    """The input row with verdict, pred_answer and reason added (spliced into the raw line: no re-encoding)."""
    added = {"verdict": verdict.verdict, "pred_answer": verdict.pred, "reason": verdict.reason}
    if isinstance(raw, dict):
        return orjson.dumps({**raw, **added}) + b"\n"
    head = raw.rstrip()[:-1].rstrip()
    return head + (b"," if not head.endswith(b"{") else b"") + orjson.dumps(added)[1:] + b"\n"


RUN_BYTES = 1 << 23  # JSONL bytes per job (whole lines): the parent holds a few runs' output, never the whole file


def _grade_lines(job: tuple[str, int, int, int, str]) -> tuple[bytes, Counter, Counter]:
    """Grade one run of JSONL lines (`length` bytes at `offset`, starting at line `first`), read here; returns the
    output lines, verdict counts and the verdicts' paths (grader.PATHS)."""
    path, offset, length, first, mode = job
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(length)
    paths = PATHS.copy()
    raws, pairs = [], []
    for number, raw in enumerate(data.split(b"\n"), first):
        if not raw.strip():
            continue
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc}", path, number) from None
        if not isinstance(row, dict):
            raise InputError("expected a JSON object", path, number)
        pairs.append(_pair(row, path, number))
        raws.append(row if "verdict" in row or "pred_answer" in row or "reason" in row else raw)
    verdicts = grade_batch(pairs, mode, workers=1)
    return (b"".join(_line(raw, v) for raw, v in zip(raws, verdicts)), Counter(v.verdict for v in verdicts),
            PATHS - paths)


def grade_file(path: Path, out: Path, mode: str = "auto", workers: int | None = None,
               paths: Counter | None = None) -> Counter:
    """Grade every pair of a JSONL (or Parquet) file into `out`, in order, on `workers` processes (default: all
    cores): JSONL, or Parquet when `out` ends in .parquet (the input's columns, then verdict, pred_answer and
    reason). `out` is never the input; it is written to a temporary sibling and moved into place. Errors name the
    line. `paths` (JSONL input) receives how many comparisons each path of the grader decided (grader.PATHS)."""
    path, out = Path(path), Path(out)
    if out.suffix not in (".jsonl", ".parquet"):
        raise InputError("the output's name says its format: .jsonl or .parquet", str(out), key="--out")
    if not path.exists():
        raise InputError("file not found", str(path))
    check_place(out, [("the graded file", path)], key="--out")
    if path.suffix == ".parquet":
        rows, numbers = read_table(path)
        verdicts = grade_batch([_pair(r, str(path), n) for r, n in zip(rows, numbers)], mode, workers=workers)
        body = b"".join(_line(r, v) for r, v in zip(rows, verdicts))
        with _atomic(out) as handle:
            if out.suffix == ".parquet":
                _write_parquet(body, handle, str(path))
            else:
                handle.write(body)
        return Counter(v.verdict for v in verdicts)
    size = path.stat().st_size
    workers = max(1, min(workers or os.cpu_count() or 1, size // (1 << 16) + 1))  # small files: one process
    jobs = [(str(path), offset, length, first, mode)
            for offset, length, first in line_runs(path, min(RUN_BYTES, size // (workers * 8) + 1))]
    return _write_runs(jobs, workers, out, str(path), paths)


@contextlib.contextmanager
def _atomic(out: Path):
    """A handle on a temporary sibling of `out`, moved into place when the block ends well and removed otherwise."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_runs(jobs: list, workers: int, out: Path, source: str, paths: Counter | None) -> Counter:
    """Grade the runs on `workers` processes and write their output in order to a temporary sibling of `out`, each
    run as it comes (JSONL: memory holds a few runs, not the file), then move it into place."""
    counts, parts = Counter(), []
    with _atomic(out) as handle, lifeline.bound_children(), \
            (mp.get_context("fork").Pool(workers) if workers > 1 else _InProcess()) as pool:
        for part, verdicts, by_path in pool.imap(_grade_lines, jobs, chunksize=1):
            counts += verdicts
            if paths is not None:
                paths.update(by_path)
            if out.suffix == ".parquet":
                parts.append(part)
            else:
                handle.write(part)
        if out.suffix == ".parquet":
            _write_parquet(b"".join(parts), handle, source)
    return counts


class _InProcess:
    """A pool of one: `imap` runs the jobs here, in order."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def imap(self, work, jobs, chunksize: int = 1):
        return map(work, jobs)


def _write_parquet(body: bytes, handle, source: str) -> None:
    """The graded JSONL rows as one Parquet table (column types inferred from the rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [orjson.loads(line) for line in body.splitlines()]
    try:  # a struct array takes every row's keys (from_pylist would take the first row's only)
        table = pa.Table.from_struct_array(pa.array(rows)) if rows else pa.table({})
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InputError(f"the rows do not fit one Parquet table ({exc}); write JSONL instead", source) from None
    pq.write_table(table, handle, compression="zstd")
