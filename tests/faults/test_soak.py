"""Soak: 500 reconnect cycles (the server drops the link each time) leak no thread, no file
descriptor and no memory, and take well under two minutes.

The server runs in its own process, so the threads, descriptors and resident memory measured here
are the client's alone (the in-process server keeps every connection it ever served).
"""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import rtedge
from rtedge.protocol import events as ev
from rtedge.transport.backoff import Backoff

from .conftest import NOTES, TEXT, fd_count, text_turn

CYCLES = 500
WARMUP = 50
REPO = Path(__file__).resolve().parents[2]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Reconnects:
    """Counts rtedge.reconnected on the receiver thread (no event is kept: this must not grow)."""

    def __init__(self, client: rtedge.Client) -> None:
        self.count = 0
        self._cond = threading.Condition()
        client._add_event_hook(self._hook)

    def _hook(self, event: ev.ServerEvent) -> None:
        if event.type == ev.Reconnected.TYPE:
            with self._cond:
                self.count += 1
                self._cond.notify_all()

    def wait(self, count: int, timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.count >= count, timeout):
                raise TimeoutError(f"{self.count} reconnects, expected {count}")


def test_soak_500_reconnect_cycles():
    proc = subprocess.Popen([sys.executable, "-m", "tests.faults.soak_server"], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    rtedge_log = logging.getLogger("rtedge")
    level = rtedge_log.level
    client = None
    try:
        assert proc.stdout is not None and proc.stdin is not None
        port = int(proc.stdout.readline())
        url = f"ws://127.0.0.1:{port}/v1/realtime"

        def drop() -> None:
            proc.stdin.write("drop\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "1"

        client = rtedge.connect(url=url, session=TEXT, connect_timeout=5.0, inbox_size=64,
                                reconnect=Backoff(initial=0, jitter=0, max_attempts=None))
        reconnects = Reconnects(client)
        text_turn(client)  # two items to re-seed on every reconnect
        # two log lines per reconnect would pile up in the test's log capture: keep them out
        rtedge_log.setLevel(logging.ERROR)
        for i in range(1, WARMUP + 1):
            drop()
            reconnects.wait(i)
        gc.collect()
        threads, fds, rss = threading.active_count(), fd_count(), rss_bytes()
        t0 = time.monotonic()
        cpu0 = time.process_time()
        for i in range(WARMUP + 1, WARMUP + CYCLES + 1):
            drop()
            reconnects.wait(i)
        elapsed = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        gc.collect()
        d_threads, d_fds, d_rss = threading.active_count() - threads, fd_count() - fds, rss_bytes() - rss
        assert client.stats.reconnects == WARMUP + CYCLES and client.fatal_error is None
        text_turn(client, "Still with me?")  # the last session works
        t_close = time.monotonic()
        client.close(timeout=2.0)
        assert time.monotonic() - t_close < 3.0
        assert (d_threads, d_fds) == (0, 0)
        assert d_rss < 1_000_000, f"RSS grew by {d_rss} bytes over {CYCLES} cycles"
        assert elapsed < 120
        NOTES.append(f"soak: {CYCLES} reconnect cycles (after {WARMUP} warm-up) in {elapsed:.1f} s "
                     f"({elapsed / CYCLES * 1000:.1f} ms per cycle, client CPU {cpu:.1f} s); "
                     f"threads {d_threads:+d}, fds {d_fds:+d}, RSS {d_rss / 1024:+.0f} KiB")
    finally:
        rtedge_log.setLevel(level)
        if client is not None:
            client.close(timeout=2.0)  # idempotent; closes it when an assertion failed midway
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
