"""Every benchmark script starts (``--help``) on the current layout, without a deprecated import path: the
layout change left two of them on ``rtedge.wake`` / ``rtedge.wavio``, which only a run would have shown."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_starts_without_deprecated_imports(script):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", f"benchmarks/{script}", "--help"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage" in proc.stdout.lower(), proc.stdout[:500]


def test_the_latency_benchmark_times_every_row():
    """latency.py timed the mic-to-socket row by wrapping a send method the sender no longer calls, and
    crashed on the empty list after its barge-in cycles."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "benchmarks/latency.py", "--interruptions", "2", "--frames", "20"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| mic frame -> WebSocket send")]
    assert len(rows) == 2, proc.stdout  # send_batch_ms 40 and 0
    for row in rows:
        assert int(row.split("|")[2]) >= 15, row  # frames timed (the last may still be in flight)


def test_the_receive_path_benchmark_measures_every_stage_and_loses_no_event():
    """receive_path.py drives the receiver's own entry point: each stage gets a positive figure, and every
    event it handed on reached the callback (a dropped or undelivered one fails the run)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["--messages", "200", "--reps", "2", "--cold-messages", "5"]
    proc = subprocess.run([sys.executable, "benchmarks/receive_path.py", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = {cells[1].strip(): (float(cells[2]), float(cells[4])) for line in proc.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| stage") and (cells := line.split("|"))}
    assert set(rows) == {"json.loads", "parse_message", "_on_text"}, proc.stdout
    assert all(hot > 0 and cold > 0 for hot, cold in rows.values()), rows  # hot and cold, each stage
    assert "callback events dropped: 0 " in proc.stdout, proc.stdout
