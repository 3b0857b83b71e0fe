"""What happens to sends while the link is down: audio is dropped and counted (never replayed
stale), control events wait and go out after re-seeding in order, an in-flight response is settled."""

from __future__ import annotations

import base64
import threading
import time

import numpy as np
import pytest

import rtedge
from rtedge.errors import BackpressureError
from rtedge.protocol import events as ev
from rtedge.protocol._state import ResponseState
from rtedge.transport._link import MAX_PENDING

from ..conftest import wait_until
from .conftest import close_bounded, connection_events, open_client, record, text_turn

RATE = 24000  # the session's input rate: appended samples reach the wire unchanged
NORMAL, MARK, LATE = 100, 0x2BAD, 0x1111  # MARK: audio produced while the link is down
FRAME = RATE // 50  # 20 ms


def _frame(value: int) -> np.ndarray:
    return np.full(FRAME, value, dtype=np.int16)


def _samples(append: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(append["audio"]), dtype="<i2")


def _appends(server, connection: int) -> list[dict]:
    return [e for e in connection_events(server, connection) if e["type"] == "input_audio_buffer.append"]


def _start_outage(server, timeline) -> float:
    """Drop the link and keep the server refusing handshakes (503) until ``_end_outage``."""
    server.handshake_status = 503
    t0 = time.monotonic()
    server.drop_connections()
    timeline.wait("rtedge.connection_lost", after=t0)
    return t0


def _end_outage(server, timeline, t0: float) -> float:
    server.handshake_status = None
    t_back, _ = timeline.wait("rtedge.reconnected", after=t0)
    return t_back


def test_audio_appended_during_outage_is_dropped_and_counted(server):
    client, timeline = open_client(server.url)
    for _ in range(10):
        client.append_audio(_frame(NORMAL), rate=RATE, overflow="drop_oldest")
    server.wait_for_received("input_audio_buffer.append", nth=10)
    t0 = _start_outage(server, timeline)
    before = client.stats.audio_dropped_outage_ms
    queued = [client.append_audio(_frame(MARK), rate=RATE, overflow="drop_oldest")
              for _ in range(25)]  # 500 ms produced while the link is down
    assert client.stats.audio_dropped_outage_ms - before == 500.0
    assert queued == [0] * 25  # each call says its audio was not queued
    assert client.append_encoded(b"\0\0" * 480, overflow="drop_oldest") == 0
    _end_outage(server, timeline, t0)
    assert [client.append_audio(_frame(NORMAL), rate=RATE, overflow="drop_oldest")
            for _ in range(10)] == [len(_frame(NORMAL).tobytes())] * 10
    server.wait_for_received("input_audio_buffer.append", nth=20)
    appends = [e for e in server.received if e["type"] == "input_audio_buffer.append"]
    assert len(appends) == 20  # 10 before, 10 after: nothing from the outage
    for append in appends:
        assert (_samples(append) == NORMAL).all()
    assert [e["type"] for e in connection_events(server, 1)].count("input_audio_buffer.append") == 10
    close_bounded(client)
    record("audio appended during an outage (500 ms)",
           f"dropped, counted (stats.audio_dropped_outage_ms = {client.stats.audio_dropped_outage_ms:.0f}), "
           "never sent on the new connection")


def test_live_stream_across_an_outage_never_replays_stale_audio(server):
    """A microphone thread keeps appending through the outage.  Frames made while the server
    refuses to come back carry MARK; none of them may reach the new session."""
    client, timeline = open_client(server.url)
    phase = {"value": NORMAL, "marked": 0}
    stop = threading.Event()

    def microphone() -> None:
        while not stop.is_set():
            value = phase["value"]
            phase["marked"] += value == MARK
            try:
                client.append_audio(_frame(value), rate=RATE, overflow="drop_oldest")
            except rtedge.ConnectionClosed:
                return
            stop.wait(0.005)

    mic = threading.Thread(target=microphone, name="test-microphone", daemon=True)
    mic.start()
    try:
        server.wait_for_received("input_audio_buffer.append", nth=5)
        server.handshake_status = 503
        phase["value"] = MARK  # from the drop until the server can take us back: stale by definition
        t0 = time.monotonic()
        server.drop_connections()
        timeline.wait("rtedge.reconnecting", after=t0, nth=3)
        phase["value"] = LATE  # around the reconnect: fresh enough either way
        server.handshake_status = None
        timeline.wait("rtedge.reconnected", after=t0)
        phase["value"] = NORMAL
        assert wait_until(lambda: len(_appends(server, 1)) >= 5)  # the stream resumed
    finally:
        stop.set()
        mic.join(5)
    assert phase["marked"] > 5 and client.stats.audio_dropped_outage_ms > 0
    assert not any((_samples(e) == MARK).any() for e in _appends(server, 1))
    close_bounded(client)


def test_control_events_during_outage_are_sent_after_reseeding_in_order(server):
    client, timeline = open_client(server.url)
    text_turn(client, "Hello there")
    t0 = _start_outage(server, timeline)
    assert client.send_text("first while down", respond=False) is None  # queued, no id yet
    client.send_text("second while down", respond=False)
    client.create_response()
    _end_outage(server, timeline, t0)
    done = client.wait_for("response.done", timeout=10)
    assert done.status == "completed"
    events = connection_events(server, 1)
    assert [e["type"] for e in events[:6]] == ["session.update"] + ["conversation.item.create"] * 4 + [
        "response.create"]
    texts = [e["item"]["content"][0]["text"] for e in events[1:5]]
    assert texts == ["Hello there", "I heard you.", "first while down", "second while down"]
    assert [i["content"][0].get("text") for i in server.conversation(1)[2:4]] == texts[2:]
    close_bounded(client)
    record("control events sent during an outage",
           "queued; sent after session.update and the replayed items, in order; the response completes")


def test_control_events_kept_during_an_outage_are_bounded(server):
    """At most MAX_PENDING control events wait for the link: the next one raises, and those kept are all
    sent after re-seeding, in order."""
    client, timeline = open_client(server.url)
    text_turn(client, "Hello there")
    t0 = _start_outage(server, timeline)
    for i in range(MAX_PENDING):
        client.send_text(f"kept {i}", respond=False)
    with pytest.raises(rtedge.ConnectionClosed, match=f"{MAX_PENDING} control events"):
        client.send_text("one too many", respond=False)
    _end_outage(server, timeline, t0)
    last = f"kept {MAX_PENDING - 1}"
    assert server.wait_for_received("conversation.item.create", timeout=20,
                                    where=lambda e: e["item"]["content"][0]["text"] == last)
    texts = [e["item"]["content"][0]["text"] for e in connection_events(server, 1)
             if e["type"] == "conversation.item.create"]
    assert texts[2:] == [f"kept {i}" for i in range(MAX_PENDING)]  # after the re-seeded turn
    close_bounded(client)


def test_response_in_flight_is_settled_as_cancelled(server):
    server.realtime = True
    server.reply_text = "This is a long answer that takes a few seconds to speak out loud. " * 3
    client, timeline = open_client(server.url, session=rtedge.SessionConfig(turn_detection=None))
    client.create_response()
    created = client.wait_for("response.created", timeout=5)
    client.wait_for("response.output_audio.delta", timeout=5)
    t0 = time.monotonic()
    server.drop_connections()
    done = client.wait_for("response.done", timeout=5)  # nobody waits forever
    assert isinstance(done, ev.ResponseDone)
    assert done.status == "cancelled" and done.response["status_details"] == {
        "type": "cancelled", "reason": "connection_lost"}
    assert done.response_id == created.response_id and done.raw.get("rtedge_synthetic") is True
    types = timeline.types(after=t0)
    assert types.index("response.done") < types.index("rtedge.connection_lost")
    t_back, _ = timeline.wait("rtedge.reconnected", after=t0)
    assert client.state.response is ResponseState.IDLE
    assert client.cancel_response() is False  # nothing to cancel in the new session
    server.realtime = False
    client.create_response()
    assert client.wait_for("response.done", timeout=10).status == "completed"
    close_bounded(client)
    record("response in flight at the drop",
           "settled by a synthetic response.done (cancelled, connection_lost) before connection_lost",
           t_back - t0)


def test_send_backpressure_drops_oldest_audio_never_control_events(proxy, server):
    """The link stalls (nothing is read: the socket buffers fill and the sender blocks) while the
    microphone keeps appending: the send queue keeps at most max_audio_queue_ms of audio, dropping
    the oldest and counting it; control events queued meanwhile are all sent once the link moves."""
    client, timeline = open_client(proxy.url, max_audio_queue_ms=500)
    text_turn(client)
    proxy.pause(stall=True)
    client.send_text("first while stalled", respond=False)
    frames = 0
    while client.wait_sent(0, timeout=0.2):  # the socket buffers still take it: fill them (fast)
        for _ in range(10):  # 200 ms of audio per round, well under the queue's limit
            client.append_audio(_frame(NORMAL), rate=RATE, overflow="drop_oldest")
        frames += 10
        assert frames < 100_000
    assert client.stats.audio_dropped == 0  # nothing was dropped while the link moved
    for _ in range(100):  # 2 s more with the sender blocked
        client.append_audio(_frame(NORMAL), rate=RATE, overflow="drop_oldest")
    assert client.stats.audio_dropped > 0
    assert client.wait_sent(max_queued_ms=500, timeout=0)  # at most 500 ms of audio waiting
    client.send_text("second while stalled", respond=False)
    proxy.resume()
    second = server.wait_for_received("conversation.item.create", timeout=30,
                                      where=lambda e: e["item"]["content"][0]["text"] == "second while stalled")
    texts = [e["item"]["content"][0]["text"] for e in server.received if e["type"] == "conversation.item.create"]
    assert texts == ["Hello there", "first while stalled", "second while stalled"] and second
    assert timeline.of("rtedge.connection_lost") == [] and client.stats.reconnects == 0
    dropped = client.stats.audio_dropped_ms
    close_bounded(client)
    record("send backpressure (stalled link, max_audio_queue_ms=500)",
           f"oldest audio dropped ({dropped / 1000:.1f} s, stats.audio_dropped), queue bounded at 500 ms; "
           f"control events all sent, in order, when the link moved ({frames * 20 / 1000:.0f} s of audio filled "
           "the socket buffers first)")


def _fill_until_the_sender_blocks(client: rtedge.Client) -> None:
    frames = 0
    while client.wait_sent(0, timeout=0.2):  # the socket buffers still take it
        for _ in range(10):
            client.append_audio(_frame(NORMAL), rate=RATE, overflow="drop_oldest")
        frames += 10
        assert frames < 100_000


def test_a_server_that_stops_reading_is_dropped_after_the_keepalive_and_reconnected(either_proxy):
    """A server that stops reading (a frozen process, a wedged proxy): once the socket buffers were
    full the sender blocked in its write for as long as the stall lasted, and the keepalive, which runs
    on the sender, never fired.  A write that moves no byte for ping_timeout now fails; the link drops
    and reconnects once the server reads again.  Over TLS too: there the timed-out write is OpenSSL's
    "want write", not a plain socket's EAGAIN."""
    proxy, url, tls = either_proxy
    client, timeline = open_client(url, ping_interval=1.0, ping_timeout=1.0, **tls)
    text_turn(client)
    t0 = time.monotonic()
    proxy.pause(stall=True)
    _fill_until_the_sender_blocks(client)
    lost_at, _ = timeline.wait("rtedge.connection_lost", timeout=15, after=t0)
    proxy.resume()
    timeline.wait("rtedge.reconnected", timeout=15, after=lost_at)
    text_turn(client)
    close_bounded(client)
    record(f"server stops reading (stalled {url.split(':')[0]}:// link, ping 1 s + 1 s)",
           "the blocked write fails, the link drops; reconnected", lost_at - t0)


def test_close_on_a_link_the_server_stopped_reading_is_bounded_and_joins_the_sender(either_proxy):
    """close() while the sender is blocked writing to a server that stopped reading: it took its whole
    timeout and left rtedge-sender running (woken by the abort, it put its batch back and retried on the
    dead socket for ever).  Plain and TLS.  The audio that never went out is counted as dropped."""
    proxy, url, tls = either_proxy
    client, _ = open_client(url, **tls)  # the default keepalive: 20 s + 10 s, far longer than the test
    text_turn(client)
    proxy.pause(stall=True)
    with pytest.raises(BackpressureError):  # a file streamed in: the queue fills once the sender blocks
        for _ in range(1000):
            client.append_audio(np.full(RATE, NORMAL, np.int16), rate=RATE, timeout=0.5)
    assert not client.wait_sent(max_queued_ms=1000, timeout=0)  # over 1 s of audio queued, none sendable
    assert client.stats.audio_dropped_outage_ms == 0
    close_bounded(client, timeout=2.0)
    # what could not go out is not lost silently: the queued audio and the batch the write held
    assert client.stats.audio_dropped_outage_ms > 1000, client.stats
    proxy.resume()
