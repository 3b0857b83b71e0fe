"""Fixtures for the fault-injection suite: a server, a fault proxy in front of it, a leak check,
an event timeline per client, and the fault matrix printed at the end of the run."""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

import pytest

import rtedge
from rtedge.protocol import events as ev
from rtedge.testing import RealtimeServer, make_self_signed_cert
from rtedge.testing._tls import client_ssl_context, server_ssl_context
from rtedge.transport.backoff import Backoff

from ..conftest import client_threads, wait_until
from .proxy import FaultProxy

#: fault -> (outcome, recovery seconds or None); printed in the terminal summary
MATRIX: dict[str, tuple[str, float | None]] = {}
_OPENED: list[rtedge.Client] = []
#: free-form lines (soak and fuzz numbers) printed after the matrix
NOTES: list[str] = []

#: reconnect fast in tests: 50 ms, 100 ms, 200 ms ... capped at 0.5 s, forever
FAST = Backoff(initial=0.05, max=0.5, multiplier=2.0, jitter=0.0, max_attempts=None)
TEXT = rtedge.SessionConfig(output_modalities=("text",), turn_detection=None, instructions="Be brief.")


def record(fault: str, outcome: str, recovery: float | None = None) -> None:
    MATRIX[fault] = (outcome, recovery)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _pollers() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventpoll]"
        except OSError:
            pass
    return count


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MATRIX and not NOTES:
        return
    tr = terminalreporter
    tr.section("fault matrix")
    width = max((len(k) for k in MATRIX), default=10)
    for fault, (outcome, recovery) in MATRIX.items():
        rec = f"{recovery * 1000:8.0f} ms" if recovery is not None else "         -"
        tr.write_line(f"{fault:<{width}}  {rec}  {outcome}")
    for line in NOTES:
        tr.write_line(line)


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def no_leaks(request):
    """No rtedge client thread and no file descriptor outlives a test's client.

    The server and proxy are set up first and torn down after the check, so the count covers
    the client (and the connections it made), not the harness.  (The websockets server's own
    accept poller is only released by garbage collection, another reason to keep it out.)
    """
    for name in ("server", "proxy", "tls_proxy", "either_proxy"):
        if name in request.fixturenames:
            request.getfixturevalue(name)
    fds = fd_count()
    yield
    for client in _OPENED:  # a failed test may not have closed its client: keep the next tests clean
        client.close(timeout=1.0)
    _OPENED.clear()
    assert wait_until(lambda: client_threads() == [], timeout=5.0), client_threads()
    assert wait_until(lambda: fd_count() <= fds, timeout=5.0), (fd_count(), fds, os.listdir("/proc/self/fd"))


@pytest.fixture
def server():
    gc.collect()  # servers of earlier tests leave pollers for the collector: not during the count below
    pollers = _pollers()
    with RealtimeServer(realtime=False, seed=5) as srv:
        # the accept thread opens its poller asynchronously: wait for it, so fd counts are stable
        assert wait_until(lambda: _pollers() > pollers, timeout=5.0)
        yield srv


@pytest.fixture
def proxy(server):
    p = FaultProxy(server.port).start()
    yield p
    p.stop()
    assert wait_until(lambda: p.threads_alive == 0, timeout=5.0)


@pytest.fixture
def tls_proxy(tmp_path):
    """A fault proxy in front of a ``wss://`` server (TLS end to end: the proxy moves the encrypted
    bytes).  ``tls_proxy.url`` is the ``wss://`` URL; ``tls_proxy.client_context`` trusts the server."""
    gc.collect()
    pollers = _pollers()
    cert, key = make_self_signed_cert(tmp_path)
    with RealtimeServer(realtime=False, seed=5, ssl_context=server_ssl_context(cert, key)) as srv:
        assert wait_until(lambda: _pollers() > pollers, timeout=5.0)
        p = FaultProxy(srv.port).start()
        p.wss_url = p.url.replace("ws://", "wss://", 1)
        p.client_context = client_ssl_context(cert)
        yield p
        p.stop()
        assert wait_until(lambda: p.threads_alive == 0, timeout=5.0)


@pytest.fixture(params=["ws", "wss"])
def either_proxy(request):
    """The test runs twice: through ``proxy`` (``ws://``), then ``tls_proxy`` (``wss://``).  Gives
    ``(proxy, url, connect options)``."""
    if request.param == "ws":
        p = request.getfixturevalue("proxy")
        return p, p.url, {}
    p = request.getfixturevalue("tls_proxy")
    return p, p.wss_url, {"ssl_context": p.client_context}


class Timeline:
    """Every event a client delivers, stamped on the receiver thread as it happens."""

    def __init__(self, client: rtedge.Client) -> None:
        self.entries: list[tuple[float, ev.ServerEvent]] = []
        self._cond = threading.Condition()
        client._add_event_hook(self._hook)

    def _hook(self, event: ev.ServerEvent) -> None:
        with self._cond:
            self.entries.append((time.monotonic(), event))
            self._cond.notify_all()

    def wait(self, kind: str, timeout: float = 10.0, after: float = 0.0, nth: int = 1) -> tuple[float, Any]:
        """The ``nth`` event of type ``kind`` stamped after ``after``: ``(time, event)``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [(t, e) for t, e in self.entries if e.type == kind and t >= after]
                if len(found) >= nth:
                    return found[nth - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {kind} #{nth} within {timeout} s; "
                                       f"saw {[e.type for _, e in self.entries][-15:]}")
                self._cond.wait(remaining)

    def of(self, kind: str, after: float = 0.0) -> list[Any]:
        with self._cond:
            return [e for t, e in self.entries if e.type == kind and t >= after]

    def types(self, after: float = 0.0) -> list[str]:
        with self._cond:
            return [e.type for t, e in self.entries if t >= after]


def open_client(url: str, **options: Any) -> tuple[rtedge.Client, Timeline]:
    """Connect with test-friendly defaults; the timeline starts before any reconnect can happen."""
    opts: dict[str, Any] = {"reconnect": FAST, "connect_timeout": 2.0, "session": TEXT}
    opts.update(options)
    client = rtedge.connect(url=url, **opts)
    _OPENED.append(client)
    return client, Timeline(client)


def close_bounded(client: rtedge.Client, timeout: float = 2.0) -> float:
    """close() returns within its timeout (+1 s slack) and leaves no client thread behind."""
    t0 = time.monotonic()
    client.close(timeout=timeout)
    elapsed = time.monotonic() - t0
    assert elapsed < timeout + 1.0, elapsed
    assert wait_until(lambda: client_threads() == [], timeout=2.0), client_threads()
    return elapsed


def text_turn(client: rtedge.Client, text: str = "Hello there", timeout: float = 10.0) -> ev.ResponseDone:
    client.send_text(text)
    done = client.wait_for("response.done", timeout=timeout)
    assert isinstance(done, ev.ResponseDone) and done.status == "completed", done
    return done


def connection_events(server: RealtimeServer, connection: int) -> list[dict[str, Any]]:
    """What the server received on its ``connection``-th session (0-based), split at each
    connection's first event (rtedge opens every session with ``session.update``)."""
    received = server.received
    starts = [i for i, e in enumerate(received)
              if e["type"] == "session.update" and e.get("event_id") == "evt_rtedge_1"]
    start = starts[connection]
    end = starts[connection + 1] if connection + 1 < len(starts) else len(received)
    return received[start:end]
