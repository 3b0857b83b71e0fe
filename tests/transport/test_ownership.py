"""The ownership table of rtedge.transport, row by row (the socket rows: test_sole_writer.py and the
suite-wide audit; the link state: faults/test_link_states.py; the inbox: test_inbox.py)."""

from __future__ import annotations

import threading

import attrs
import numpy as np
import pytest

import rtedge
from rtedge.protocol._state import ResponseState, SessionSnapshot
from rtedge.testing import RealtimeServer
from rtedge.transport.backoff import Backoff
from rtedge.transport._workers import TransportStats

from ..conftest import audit, wait_until

TEXT = rtedge.SessionConfig(output_modalities=("text",), turn_detection=None)


def test_reads_happen_on_the_receiver_once_connected():
    with RealtimeServer(realtime=False) as srv:
        before = dict(audit.counts)
        client = rtedge.connect(url=srv.url, session=TEXT)
        connect_reads = {t: n - before.get(("read", t), 0) for (op, t), n in audit.counts.items() if op == "read"}
        assert connect_reads.get(threading.current_thread().name, 0) > 0  # connect() reads on the caller
        mark = dict(audit.counts)
        client.send_text("hello")
        client.wait_for("response.done", timeout=10)
        client.close()
    reads = {t: n - mark.get(("read", t), 0) for (op, t), n in audit.counts.items() if op == "read"}
    assert {t for t, n in reads.items() if n} == {"rtedge-receiver"}


def test_the_snapshot_is_immutable_and_republished_by_the_owner():
    with RealtimeServer(realtime=True, reply_text="One two three four five six.") as srv, \
            rtedge.connect(url=srv.url, session=TEXT) as client:
        first = client.snapshot
        assert isinstance(first, SessionSnapshot)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            first.response = ResponseState.ACTIVE  # type: ignore[misc]
        seen = []  # what the receiver has published by the time it hands out each text delta
        client._add_event_hook(lambda e: seen.append(client.snapshot) if e.type.endswith("text.delta") else None)
        client.send_text("count")
        client.wait_for("response.done", timeout=10)
        assert wait_until(lambda: client.snapshot.response is ResponseState.IDLE)
        assert seen and all(s.response is ResponseState.ACTIVE and s.response_id for s in seen)
        assert first.response is ResponseState.IDLE and first is not client.snapshot  # a new value each time
        assert client.snapshot.usage == client.usage and client.usage.responses == 1
        assert client.state is client._session.state  # the live object stays with its owner


def test_callbacks_run_on_the_dispatcher_and_on_off_are_safe_while_events_flow():
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url, session=TEXT) as client:
        threads: set[str] = set()
        client.on("*", lambda e: threads.add(threading.current_thread().name))
        stop = threading.Event()

        def churn() -> None:  # register and unregister from another thread as fast as possible
            fn = lambda e: None  # noqa: E731
            while not stop.is_set():
                client.on("response.output_text.delta", fn)
                client.off("response.output_text.delta", fn)

        t = threading.Thread(target=churn, name="test-churn", daemon=True)
        t.start()
        for _ in range(5):
            client.send_text("hello")
            client.wait_for("response.done", timeout=10)
        stop.set()
        t.join(5)
        assert wait_until(lambda: client.stats.dispatch_busy_since == 0.0)
    assert threads == {"rtedge-dispatch"} and client.stats.callback_errors == 0


def test_counters_written_by_several_threads_lose_no_increment():
    stats = TransportStats()
    workers = [threading.Thread(target=lambda: [stats.count_internal_error() for _ in range(20000)])
               for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert stats.internal_errors == 80000


def test_outage_drops_counted_exactly_from_many_microphones():
    """Four microphone threads append while the link is down: every dropped millisecond is counted."""
    with RealtimeServer(realtime=False) as srv:
        client = rtedge.connect(url=srv.url, session=TEXT, reconnect=Backoff(initial=30.0, jitter=0.0))
        srv.drop_connections()
        assert wait_until(lambda: client.link_state == "reconnecting")
        frame = np.zeros(240, np.int16)  # 10 ms at 24 kHz

        def mic() -> None:
            for _ in range(500):
                client.append_audio(frame, rate=24000, overflow="drop_oldest")

        mics = [threading.Thread(target=mic, name=f"test-mic{i}") for i in range(4)]
        for m in mics:
            m.start()
        for m in mics:
            m.join()
        assert client.stats.audio_dropped_outage_ms == pytest.approx(4 * 500 * 10.0)
        client.close()
