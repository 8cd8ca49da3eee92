"""Sampling progress: a live bar on a terminal, plain lines in logs; never `nan`, failures counted."""
from __future__ import annotations

import io
import time

import pytest
from mathforge.builders.generation import runner
from rich.console import Console


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_shows_requests_failures_and_an_eta_once_known(terminal):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminal, width=160)
    with runner.ProgressLine("tiny", 10, console, every=0.1) as line:
        time.sleep(0.3)
        assert line.figures().endswith("ETA —")  # no rate yet: no number, no nan
        runner.PROGRESS["done"] += 4
        runner.PROGRESS["failed"] += 1
        time.sleep(0.7)
    out = buffer.getvalue()
    assert "nan" not in out and "4/10 requests" in out and "1 failed" in out
    assert ("━" in out) == terminal  # the bar only on a terminal
