"""The sole-writer guarantee: the suite-wide audit (tests/conftest.py) sees every socket write and close
of an rtedge socket, on rtedge-sender, through connects, reconnects, recycles and closes."""

from __future__ import annotations

import rtedge
from rtedge.testing import RealtimeServer
from rtedge.transport.backoff import Backoff

from ..conftest import audit, wait_until


def test_upgrade_frames_pongs_reconnect_recycle_and_close_all_on_the_sender(sole_socket_writer):
    before = {op: audit.total(op, "rtedge-sender") for op in ("upgrade", "write", "close")}
    with RealtimeServer(realtime=False, ping_interval=0.05) as srv:
        client = rtedge.connect(url=srv.url, reconnect=Backoff(initial=0.05, jitter=0.0),
                                max_session_seconds=0.3, ping_interval=0.2, ping_timeout=0.5)
        seen = []
        client._add_event_hook(lambda e: seen.append(e.type))
        client.send_text("hello")
        client.wait_for("response.done", timeout=10)
        assert wait_until(lambda: seen.count("rtedge.reconnected") >= 1, timeout=10)  # a recycle
        srv.drop_connections()
        assert wait_until(lambda: seen.count("rtedge.reconnected") >= 2, timeout=10)  # a loss
        client.close()
    after = {op: audit.total(op, "rtedge-sender") for op in ("upgrade", "write", "close")}
    assert after["upgrade"] - before["upgrade"] >= 3  # connect, recycle, reconnect: the sender opened all
    assert after["close"] - before["close"] >= 3
    assert after["write"] - before["write"] >= 10


def test_the_audit_catches_a_write_off_the_sender(sole_socket_writer):
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url) as client:
        with audit.lock:
            start = len(audit.violations)
        client._conn.send_text('{"type":"input_audio_buffer.clear"}')  # from the test's own thread
        with audit.lock:
            caught, audit.violations[start:] = audit.violations[start:], []
    assert [op for op, _ in caught] == ["write on MainThread"]

