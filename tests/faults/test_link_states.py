"""The link's state machine: the table itself, and every transition walked by a real client against the
local server (faults included), observed through the debug log each transition writes."""

from __future__ import annotations

import logging
import re
import pytest

import rtedge
from rtedge.errors import LocalProtocolError, TransportError
from rtedge.transport._lifecycle import TRANSITIONS, LinkEvent, LinkMachine, LinkState
from rtedge.transport.backoff import Backoff

from ..conftest import wait_until
from .conftest import close_bounded, open_client

_LINE = re.compile(r"^link: (\w+) --(\w+)--> (\w+)$")


def _walk(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    found = []
    for rec in caplog.records:
        m = _LINE.match(rec.getMessage())
        if m:
            found.append((m[1], m[2], m[3]))
    return found


def test_every_pair_of_state_and_event_is_legal_or_raises(caplog):
    caplog.set_level(logging.DEBUG, logger="rtedge")
    legal = 0
    for state in LinkState:
        for event in LinkEvent:
            machine = LinkMachine(state)
            target = TRANSITIONS[state].get(event)
            if target is None:
                with pytest.raises(LocalProtocolError, match=event.value):
                    machine.apply(event)
                assert machine.state is state and not machine.can(event)
            else:
                assert machine.can(event) and machine.apply(event) is target and machine.state is target
                assert _walk(caplog)[-1] == (state.value, event.value, target.value)
                legal += 1
    assert legal == sum(len(t) for t in TRANSITIONS.values()) == 22
    assert TRANSITIONS[LinkState.CLOSED] == {} and TRANSITIONS[LinkState.GAVE_UP] == {}
    assert LinkState.OPEN == "open"  # StrEnum: comparing with the old strings keeps working


def test_a_client_walks_the_table(server, proxy, caplog):
    """Real sessions through every transition a network can cause; the debug log is the witness."""
    caplog.set_level(logging.DEBUG, logger="rtedge")
    walked: set[tuple[str, str, str]] = set()

    # connect, close: established, close, ended
    client, _ = open_client(server.url)
    assert client.link_state is LinkState.OPEN and isinstance(client.link_state, LinkState)
    close_bounded(client)
    assert client.link_state is LinkState.CLOSED
    # a failed connect
    with pytest.raises(TransportError):
        rtedge.connect(url="ws://127.0.0.1:9/v1/realtime", connect_timeout=1.0)
    # a drop: lost, reconnected; then a close during the backoff
    client, timeline = open_client(server.url, reconnect=Backoff(initial=0.05, max=30.0, jitter=0.0))
    server.drop_connections()
    timeline.wait("rtedge.reconnected")
    assert client.link_state is LinkState.OPEN
    client._opts["reconnect"] = Backoff(initial=30.0, jitter=0.0)
    server.drop_connections()
    timeline.wait("rtedge.reconnecting", after=timeline.entries[-1][0])
    assert wait_until(lambda: client.link_state is LinkState.RECONNECTING)
    close_bounded(client)
    # a recycle at a turn boundary (recycle, lost after recycling)
    client, timeline = open_client(server.url, max_session_seconds=0.3, ping_interval=0.2, ping_timeout=0.2)
    timeline.wait("rtedge.reconnected")
    close_bounded(client)
    # a rollover that fails first (rollover, rollover_failed), then succeeds (rollover, switched)
    client, timeline = open_client(server.url, session_limit_s=1.0, ping_interval=0.1, ping_timeout=0.5)
    server.handshake_status = 503
    assert wait_until(lambda: client.stats.rollover_failures >= 1, timeout=5)
    server.handshake_status = None
    timeline.wait("rtedge.session_rollover", timeout=10)
    assert client.link_state is LinkState.OPEN
    close_bounded(client)
    # no reconnect wanted: lost_final
    client, timeline = open_client(server.url, reconnect=None)
    server.drop_connections()
    timeline.wait("rtedge.gave_up")
    assert client.link_state is LinkState.GAVE_UP and client.closed
    close_bounded(client)
    assert client.link_state is LinkState.GAVE_UP  # final
    # reconnects exhausted: give_up
    client, timeline = open_client(proxy.url, reconnect=Backoff(initial=0.05, jitter=0.0, max_attempts=2))
    proxy.refuse()
    proxy.reset()
    timeline.wait("rtedge.gave_up")
    close_bounded(client)
    walked.update(_walk(caplog))

    expected = {(s.value, e.value, t.value) for s, row in TRANSITIONS.items() for e, t in row.items()}
    # FINISHING (DashScope session.finish) is walked in tests/providers/test_qwen.py; closing while a
    # recycle's close handshake is in flight, or a fatal loss during it, last only microseconds
    timing_only = {("open", "finish", "finishing"), ("finishing", "close", "closing"),
                   ("finishing", "ended", "closed"), ("recycling", "close", "closing"),
                   ("recycling", "lost_final", "gave_up"),
                   # a loss or a close while a rollover prepares: walked in tests/faults/test_rollover.py
                   ("rolling_over", "lost", "reconnecting"), ("rolling_over", "lost_final", "gave_up"),
                   ("rolling_over", "close", "closing")}
    assert walked <= expected
    assert expected - timing_only <= walked, sorted(expected - timing_only - walked)



def test_a_clean_close_with_reconnecting_off_is_the_server_ending_the_session(server):
    """The server closing cleanly (1001, going away) with reconnecting off: fatal_error said "gave up"."""
    client = rtedge.connect(url=server.url, reconnect=None)
    server.stop()
    assert wait_until(lambda: client.link_state is LinkState.GAVE_UP, timeout=5)
    assert str(client.fatal_error) == "the server ended the session (close 1001)"
    client.close()


def test_whoever_sees_gave_up_sees_why(server):
    """With reconnecting off, a lost connection turns the link GAVE_UP before the loss events go out; the
    cause (``fatal_error``) was set only after them, so a service that saw the link end could read None
    and exit 0 for a lost connection.  Observed on the receiver thread itself, at the loss event."""
    with rtedge.connect(url=server.url, reconnect=None) as client:
        seen: list[tuple[LinkState, object]] = []
        client._add_event_hook(lambda e: seen.append((client.link_state, client.fatal_error))
                               if e.type == "rtedge.connection_lost" else None)
        server.drop_connections()
        assert wait_until(lambda: seen, timeout=5)
        state, error = seen[0]
        assert state is LinkState.GAVE_UP
        assert error is not None and "(reconnecting is off)" in str(error)
        assert client.fatal_error is error
