"""Faults the server causes: close codes (1001 after session_expired, 1011, 4000) and refused
handshakes on reconnect (401, 429 with Retry-After, 503)."""

from __future__ import annotations

import contextlib
import time

import pytest

import rtedge
from rtedge.errors import ConnectionClosed, HandshakeError, ServerError
from rtedge.protocol import events as ev
from rtedge.transport.backoff import Backoff

from ..conftest import client_threads, wait_until
from .conftest import close_bounded, connection_events, open_client, record, text_turn

SESSION_EXPIRED = {"type": "error", "error": {
    "type": "invalid_request_error", "code": "session_expired",
    "message": "Your session hit the maximum duration of 60 minutes."}}
BETA_DISABLED = {"type": "error", "error": {
    "type": "invalid_request_error", "code": "beta_api_shape_disabled",
    "message": "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."}}


def test_close_1001_after_session_expired_reconnects_and_reseeds(server):
    client, timeline = open_client(server.url)
    text_turn(client, "Hello there")
    t0 = time.monotonic()
    server.send_event(SESSION_EXPIRED)
    server.close_connections(1001, "Your session hit the maximum duration of 60 minutes.")
    _, err = timeline.wait("error", after=t0)
    assert err.error.code == "session_expired"
    _, lost = timeline.wait("rtedge.connection_lost", after=t0)
    assert lost.code == 1001
    t_back, back = timeline.wait("rtedge.reconnected", after=t0)
    assert back.replayed_items == 2
    assert timeline.types(after=t0).index("error") < timeline.types(after=t0).index("rtedge.reconnected")
    server.wait_for_connections(2)
    server.wait_for_received("conversation.item.create", nth=3)  # the 1st turn's + 2 replayed
    first, second = connection_events(server, 0), connection_events(server, 1)
    # the new session gets the same config first...
    assert second[0]["type"] == "session.update" and second[0]["session"] == first[0]["session"]
    # ...then the conversation so far, as text items, in order
    replay = second[1:3]
    assert [e["type"] for e in replay] == ["conversation.item.create"] * 2
    assert [(e["item"]["role"], e["item"]["content"][0]["text"]) for e in replay] == [
        ("user", "Hello there"), ("assistant", "I heard you.")]
    assert [e["item"]["content"][0]["type"] for e in replay] == ["input_text", "output_text"]
    assert server.sessions[1]["instructions"] == "Be brief."
    # the model has the context in the new session, and the conversation goes on
    text_turn(client, "And now?")
    assert [i.get("role") for i in server.conversation(1)] == ["user", "assistant", "user", "assistant"]
    assert client.fatal_error is None and client.stats.reconnects == 1
    close_bounded(client)
    record("server close 1001 after session_expired",
           "reconnected; session.update (same config) + 2 replayed text items, then rtedge.reconnected",
           t_back - t0)


def test_close_1011_reconnects(server):
    client, timeline = open_client(server.url)
    t0 = time.monotonic()
    server.close_connections(1011, "internal error")
    _, lost = timeline.wait("rtedge.connection_lost", after=t0)
    assert lost.code == 1011
    _, rec = timeline.wait("rtedge.reconnecting", after=t0)
    assert "1011" in rec.cause
    t_back, _ = timeline.wait("rtedge.reconnected", after=t0)
    text_turn(client)
    close_bounded(client)
    record("server close 1011", "reconnected", t_back - t0)


def test_close_4000_after_beta_error_gives_up(server):
    client, timeline = open_client(server.url)
    t0 = time.monotonic()
    server.send_event(BETA_DISABLED)
    server.close_connections(4000, "invalid_request_error.beta_api_shape_disabled")
    _, gave_up = timeline.wait("rtedge.gave_up", after=t0)
    assert "beta_api_shape_disabled" in gave_up.cause
    assert isinstance(client.fatal_error, ServerError) and client.fatal_error.code == "beta_api_shape_disabled"
    assert client.link_state == "gave_up" and client.closed
    assert timeline.of("rtedge.reconnecting") == []
    assert len(server.handshakes) == 1 and server.connection_count == 1  # no attempt at all
    assert timeline.types().count("rtedge.gave_up") == 1  # surfaced once
    with pytest.raises(ConnectionClosed):
        client.send_text("anyone?")
    close_bounded(client)
    record("server close 4000 after beta_api_shape_disabled",
           "gave_up at once (fatal_error = ServerError beta_api_shape_disabled), no reconnect attempt")


def test_close_4000_alone_gives_up(server):
    client, timeline = open_client(server.url)
    server.close_connections(4000, "unexpected")
    timeline.wait("rtedge.gave_up")
    assert timeline.of("rtedge.reconnecting") == [] and server.connection_count == 1
    assert isinstance(client.fatal_error, ConnectionClosed)
    close_bounded(client)


def test_handshake_401_on_reconnect_gives_up(server):
    server.api_key = "sk-test-right"
    client, timeline = open_client(server.url, api_key="sk-test-right")
    server.api_key = "sk-test-rotated"  # the key was revoked meanwhile
    t0 = time.monotonic()
    server.drop_connections()
    t_end, gave_up = timeline.wait("rtedge.gave_up", after=t0)
    assert isinstance(client.fatal_error, HandshakeError) and client.fatal_error.status_code == 401
    assert "401" in gave_up.cause and "sk-test" not in gave_up.cause
    assert len(timeline.of("rtedge.reconnecting")) == 1  # one attempt, no storm
    assert len(server.handshakes) == 2
    close_bounded(client)
    record("handshake 401 on reconnect",
           f"gave_up after 1 attempt ({(t_end - t0) * 1000:.0f} ms), fatal_error = HandshakeError 401")


def test_handshake_429_retry_after_is_honoured(server):
    client, timeline = open_client(server.url)
    server.handshake_status, server.handshake_headers = 429, {"Retry-After": "1"}
    t0 = time.monotonic()
    server.drop_connections()
    _, first = timeline.wait("rtedge.reconnecting", after=t0)
    assert first.delay == pytest.approx(0.05)  # our own backoff: no Retry-After seen yet
    t_second, second = timeline.wait("rtedge.reconnecting", after=t0, nth=2)
    assert "429" in second.cause
    assert second.delay == pytest.approx(1.0)  # the server's Retry-After wins over 0.1 s
    server.handshake_status = None
    t_back, back = timeline.wait("rtedge.reconnected", after=t0)
    assert back.attempt == 2
    assert t_back - t_second >= 1.0
    text_turn(client)
    close_bounded(client)
    record("handshake 429 with Retry-After: 1",
           f"retried after the server's 1 s (backoff alone: 0.1 s) -> reconnected on attempt {back.attempt}",
           t_back - t0)


def test_handshake_503_retried_with_backoff_until_cleared(server):
    client, timeline = open_client(server.url)
    server.handshake_status = 503
    t0 = time.monotonic()
    server.drop_connections()
    _, fourth = timeline.wait("rtedge.reconnecting", after=t0, nth=4)
    attempts = timeline.of("rtedge.reconnecting", after=t0)
    assert [a.delay for a in attempts[:4]] == pytest.approx([0.05, 0.1, 0.2, 0.4])  # backing off
    assert all("503" in a.cause for a in attempts[1:4])
    t_clear = time.monotonic()
    server.handshake_status = None
    t_back, back = timeline.wait("rtedge.reconnected", after=t0)
    assert back.attempt >= 4 and client.fatal_error is None
    text_turn(client)
    close_bounded(client)
    record("handshake 503 (until cleared)",
           f"retried with backoff 0.05/0.1/0.2/0.4 s; reconnected {(t_back - t_clear) * 1000:.0f} ms after "
           f"the server recovered (attempt {back.attempt})", t_back - t0)


def test_gives_up_after_max_attempts(server):
    client, timeline = open_client(server.url, reconnect=Backoff(initial=0.01, jitter=0, max_attempts=3))
    server.handshake_status = 503
    server.drop_connections()
    _, gave_up = timeline.wait("rtedge.gave_up")
    assert len(timeline.of("rtedge.reconnecting")) == 3 and "3 attempts failed" in gave_up.cause
    assert client.closed
    close_bounded(client)


@pytest.mark.parametrize("reconnect", [None, Backoff(initial=0.01, jitter=0)])
def test_link_state_is_final_when_connection_lost_is_delivered(server, reconnect):
    """Without a reconnect to come (reconnect=None, or a fatal close), a consumer that sees
    rtedge.connection_lost already sees a closed client, never a transient 'reconnecting'."""
    client, timeline = open_client(server.url, reconnect=reconnect)
    seen: list[tuple[bool, str]] = []
    client._add_event_hook(lambda e: seen.append((client.closed, client.link_state))
                           if e.type == "rtedge.connection_lost" else None)
    server.close_connections(4000 if reconnect else 1001, "bye")
    timeline.wait("rtedge.gave_up")
    assert seen == [(True, "gave_up")]
    assert timeline.of("rtedge.reconnecting") == []
    close_bounded(client)


def test_threads_exit_on_their_own_after_giving_up(server):
    """A kiosk that drops a dead client and makes a new one without calling close() must not
    pile up threads: after gave_up all three exit on their own (the gave_up callback still runs)."""
    client, timeline = open_client(server.url)
    seen = []
    client.on("rtedge.gave_up", seen.append)
    server.close_connections(4000, "bye")
    timeline.wait("rtedge.gave_up")
    assert wait_until(lambda: client_threads() == [], timeout=3.0), client_threads()
    assert len(seen) == 1
    close_bounded(client)


def test_an_update_rejected_before_the_caller_recorded_it_is_still_left_out(server):
    """The caller recorded its update as in flight after sending it: a rejection the receiver handled in
    between (fast loopback, a busy machine) was not matched, the next session.updated confirmed the
    rejected update, and after a reconnect it was sent again, rejected, and the link gave up.  Here the
    send waits (up to 1 s) for the receiver to handle the rejection before it returns."""
    client, timeline = open_client(server.url)
    send = client._send

    def slow_send(event, audio_ms=0.0):
        event_id = send(event, audio_ms)
        if isinstance(event, ev.SessionUpdate):
            with contextlib.suppress(TimeoutError):  # the fixed client holds the answer until recorded
                timeline.wait("error", timeout=1.0)
        return event_id

    client._send = slow_send
    with pytest.raises(ServerError) as info:
        client.update_session(input_format=rtedge.AudioFormat.pcm(16000), timeout=5)
    client._send = send
    assert info.value.code == "integer_below_min_value"
    client.update_session(instructions="Be very brief.", timeout=5)
    t0 = time.monotonic()
    server.drop_connections()
    timeline.wait("rtedge.reconnected", after=t0)
    assert client.fatal_error is None
    assert connection_events(server, 1)[0]["session"]["instructions"] == "Be very brief."
    close_bounded(client)


def test_rejected_session_update_is_not_resent_after_reconnect(server):
    """A session.update the server rejected mid-session (the session goes on) must not be part of
    the config a new session gets after a reconnect: it would be rejected again and end the link."""
    client, timeline = open_client(server.url)
    with pytest.raises(ServerError) as info:
        client.update_session(input_format=rtedge.AudioFormat.pcm(16000), timeout=5)  # GA wants 24 kHz
    assert info.value.code == "integer_below_min_value"
    client.update_session(instructions="Be very brief.", timeout=5)  # accepted
    text_turn(client)
    t0 = time.monotonic()
    server.drop_connections()
    t_back, _ = timeline.wait("rtedge.reconnected", after=t0)
    assert client.fatal_error is None
    reseed = connection_events(server, 1)[0]
    assert reseed["type"] == "session.update"
    assert reseed["session"]["instructions"] == "Be very brief."
    assert reseed["session"].get("audio", {}).get("input", {}).get("format", {}).get("rate") in (None, 24000)
    text_turn(client)
    close_bounded(client)
    record("session.update rejected mid-session, then a drop",
           "the rejected update is left out of the re-seeded config; reconnected", t_back - t0)
