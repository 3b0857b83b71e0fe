"""Network faults injected by the TCP proxy: reset, FIN, black hole, cut mid-frame, delay, refusal."""

from __future__ import annotations

import threading
import time

import pytest

import rtedge
from rtedge.protocol import events as ev

from ..conftest import client_threads, wait_until
from .conftest import close_bounded, open_client, record, text_turn


def _recovers(proxy, server, fault: str, inject, **options) -> None:
    """Inject a fault that breaks the link at once; the client reconnects and the session goes on."""
    client, timeline = open_client(proxy.url, **options)
    text_turn(client)
    t0 = time.monotonic()
    inject()
    t_lost, lost = timeline.wait("rtedge.connection_lost", timeout=5, after=t0)
    assert lost.code is None  # no close frame reached us
    t_back, back = timeline.wait("rtedge.reconnected", timeout=5, after=t0)
    assert back.attempt == 1 and back.replayed_items == 2  # the turn: user text + assistant text
    assert client.link_state == "open" and client.stats.reconnects == 1
    text_turn(client, "Still there?")  # the new session works
    assert timeline.of("rtedge.gave_up") == []
    close_bounded(client)
    record(fault, f"connection_lost after {(t_lost - t0) * 1000:.0f} ms -> reconnected, re-seeded 2 items",
           t_back - t0)


def test_tcp_reset(proxy, server):
    _recovers(proxy, server, "TCP reset (RST)", proxy.reset)


def test_fin_without_close_frame(proxy, server):
    _recovers(proxy, server, "FIN without close frame", proxy.fin)


def test_cut_mid_frame(proxy, server):
    client, timeline = open_client(proxy.url)
    text_turn(client)
    proxy.cut_after(1000)  # forward 1000 bytes of the next server frame, then reset
    t0 = time.monotonic()
    server.send_event({"type": "test.big", "pad": "x" * 200_000})
    t_lost, lost = timeline.wait("rtedge.connection_lost", timeout=5, after=t0)
    assert lost.code is None
    t_back, _ = timeline.wait("rtedge.reconnected", timeout=5, after=t0)
    # the half frame was never delivered, nor counted as a malformed message
    assert not any(getattr(e, "type", "") == "test.big" for _, e in timeline.entries)
    assert client.stats.malformed_messages == 0
    text_turn(client)
    close_bounded(client)
    record("cut mid-frame (1000 B of a 200 kB frame, then RST)",
           f"connection_lost after {(t_lost - t0) * 1000:.0f} ms, partial frame discarded -> reconnected",
           t_back - t0)


def test_black_hole_detected_by_keepalive(proxy, server, caplog):
    interval, timeout = 0.3, 0.3
    client, timeline = open_client(proxy.url, ping_interval=interval, ping_timeout=timeout, connect_timeout=1.0)
    text_turn(client)
    pings = client.stats.pings_sent
    assert timeline.wait("response.done")  # quiet from here on
    proxy.pause()
    t0 = time.monotonic()
    t_lost, lost = timeline.wait("rtedge.connection_lost", timeout=5, after=t0)
    detected = t_lost - t0  # reported in the fault matrix (at most interval + timeout on a quiet machine)
    assert client.stats.pings_sent > pings
    assert lost.code is None
    assert any("ping timeout" in r.getMessage() for r in caplog.records)  # the keepalive, not TCP, saw it
    timeline.wait("rtedge.reconnecting", timeout=2, after=t0)
    assert timeline.of("rtedge.reconnected", after=t0) == []  # attempts cannot pass a black hole
    t_resume = time.monotonic()
    proxy.resume()
    t_back, _ = timeline.wait("rtedge.reconnected", timeout=5, after=t0)
    text_turn(client)
    close_bounded(client)
    record("black hole (paused link), ping 0.3 s / timeout 0.3 s",
           f"keepalive declared it dead after {detected * 1000:.0f} ms -> reconnected "
           f"{(t_back - t_resume) * 1000:.0f} ms after the link came back", t_back - t0)


def test_delay_500ms_each_way(proxy, server):
    proxy.delay = 0.5
    t0 = time.monotonic()
    client, timeline = open_client(proxy.url, ping_interval=2.0, ping_timeout=3.0, connect_timeout=6.0)
    connect_s = time.monotonic() - t0
    assert connect_s >= 1.0  # at least the upgrade and the session.update round trips
    t1 = time.monotonic()
    text_turn(client)
    turn_s = time.monotonic() - t1
    assert turn_s >= 1.0  # one round trip of 2 x 500 ms
    text_turn(client, "Again")
    assert timeline.of("rtedge.connection_lost") == [] and client.stats.reconnects == 0
    close_bounded(client, timeout=3.0)  # the closing handshake is a round trip too
    record("delay 500 ms each way",
           f"session works, slower: connect {connect_s:.1f} s, text turn {turn_s:.1f} s; no reconnect")


def test_connection_refused(proxy, server):
    proxy.refuse()
    t0 = time.monotonic()
    with pytest.raises(rtedge.TransportError, match="refused"):
        rtedge.connect(url=proxy.url, connect_timeout=5.0)
    refused_s = time.monotonic() - t0
    assert refused_s < 2.5  # refused at once, not after the 5 s connect timeout
    proxy.accept()
    client, timeline = open_client(proxy.url)
    text_turn(client)
    proxy.refuse()  # the server is down...
    t_drop = time.monotonic()
    proxy.reset()  # ...and the link drops
    _, third = timeline.wait("rtedge.reconnecting", timeout=5, after=t_drop, nth=3)
    assert third.attempt == 3 and "refused" in third.cause  # attempts go on while refused
    assert timeline.of("rtedge.reconnected", after=t_drop) == []
    t_up = time.monotonic()
    proxy.accept()  # the server is back
    t_back, back = timeline.wait("rtedge.reconnected", timeout=5, after=t_drop)
    assert back.attempt >= 3
    text_turn(client)
    close_bounded(client)
    record("connection refused", f"initial connect: TransportError in {refused_s * 1000:.0f} ms; after a drop "
           f"{back.attempt} attempts, reconnected {(t_back - t_up) * 1000:.0f} ms after the port reopened",
           t_back - t_drop)


def test_events_during_outage_are_typed(proxy, server):
    """The reconnect events carry what a UI needs (attempt, delay, cause; downtime)."""
    client, timeline = open_client(proxy.url)
    proxy.reset()
    _, rec = timeline.wait("rtedge.reconnecting")
    _, back = timeline.wait("rtedge.reconnected")
    assert isinstance(rec, ev.Reconnecting) and rec.attempt == 1 and rec.delay == pytest.approx(0.05)
    assert rec.cause
    assert isinstance(back, ev.Reconnected) and 0 < back.downtime < 5
    close_bounded(client)


def test_keepalive_pings_while_streaming_to_a_silent_server(server):
    """A kiosk streams microphone audio all the time; with manual turns (or silence under server VAD)
    the server answers nothing.  Sending is no proof the link is alive: the keepalive must ping and
    get pongs, not declare a healthy link dead after interval + timeout."""
    import numpy as np

    interval, timeout = 0.3, 0.3
    client, timeline = open_client(server.url, ping_interval=interval, ping_timeout=timeout)
    t0 = time.monotonic()
    frames = 0
    while time.monotonic() - t0 < 4 * (interval + timeout):
        client.append_audio(np.zeros(480, dtype=np.int16), rate=24000)
        frames += 1
        client.wait_sent(0, timeout=1)
        threading.Event().wait(0.02)  # a 20 ms microphone frame
    server.wait_for_received("input_audio_buffer.append", nth=frames)
    assert timeline.of("rtedge.connection_lost") == [] and client.stats.reconnects == 0
    assert client.stats.pings_sent >= 3
    close_bounded(client)


def test_gave_up_is_the_last_event(proxy, server):
    """When the last reconnect attempt fails while establishing the new session (the link is cut
    after the upgrade), rtedge.gave_up is the last event: no stray connection_lost after it."""
    from rtedge.transport.backoff import Backoff

    client, timeline = open_client(proxy.url, reconnect=Backoff(initial=0.2, jitter=0, max_attempts=1))
    t0 = time.monotonic()
    proxy.reset()
    proxy.cut_after(400)  # the next link: the 101 upgrade passes, session.created is cut short
    timeline.wait("rtedge.gave_up", after=t0)
    assert wait_until(lambda: client_threads() == [], timeout=3.0)
    types = timeline.types(after=t0)
    assert types.count("rtedge.connection_lost") == 1 and types[-1] == "rtedge.gave_up", types
    close_bounded(client)
