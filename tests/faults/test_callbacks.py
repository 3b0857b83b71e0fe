"""User callbacks that misbehave: one that blocks for 10 s, one that raises, one that calls close()."""

from __future__ import annotations

import threading
import time

import pytest

from rtedge.errors import ConnectionClosed
from rtedge.transport.backoff import Backoff

from ..conftest import client_threads, wait_until
from .conftest import close_bounded, open_client, record, text_turn


def test_callback_blocking_10s(server, caplog):
    """The receiver and the keepalive go on while the dispatcher is stuck for 10 s; close() is
    still bounded.

    Documented behaviour: close() cannot interrupt a running callback, so ``rtedge-dispatch``
    outlives close() (with a warning); once the callback returns it delivers the events that were
    already queued (they arrived before close()) and exits.
    """
    interval, timeout, block_s = 0.3, 0.3, 10.0
    client, timeline = open_client(server.url, ping_interval=interval, ping_timeout=timeout)
    entered, returned, release = threading.Event(), threading.Event(), threading.Event()
    delivered: list[str] = []

    def block(event):
        if not entered.is_set():
            entered.set()
            release.wait(block_s)  # a user callback stuck for 10 s (released early only on failure)
            returned.set()

    client.on("response.created", block)
    client.on("*", lambda e: delivered.append(e.type))
    turns = pings = 0
    try:
        text_turn(client)  # wait_for reads the inbox, which the receiver fills: not blocked
        assert entered.wait(5)
        t_block = time.monotonic()
        pings = client.stats.pings_sent
        # for the first half of the 10 s: turns (later events reach wait_for), with quiet spells in between
        # that the keepalive has to bridge (pings answered, the link never declared dead); the other half
        # is margin, so that on a loaded machine close() still meets a callback that is stuck
        while time.monotonic() - t_block < block_s / 2:
            text_turn(client, f"Turn {turns} while the callback blocks")
            turns += 1
            sent = client.stats.pings_sent
            assert wait_until(lambda: client.stats.pings_sent >= sent + 2, timeout=5)
        assert not returned.is_set() and "response.done" not in delivered  # still stuck
        assert timeline.of("rtedge.connection_lost") == [] and client.link_state == "open"
        pings = client.stats.pings_sent - pings
        elapsed = close_bounded_with_stuck_dispatcher(client, 1.0)
        assert any("threads still running" in r.getMessage() for r in caplog.records)
        assert returned.wait(block_s)  # the callback returns on its own at 10 s
        stuck_for = time.monotonic() - t_block
    finally:
        release.set()
    assert wait_until(lambda: client_threads() == [], timeout=2.0), client_threads()
    # the events queued behind the blocked callback were delivered after all, in order, then it exited
    assert delivered.count("response.done") == turns + 1 and delivered[-1] == "rtedge.connection_lost"
    record("user callback blocks for 10 s", f"{turns} more turns reached wait_for, {pings} keepalive pings "
           f"answered, link never dropped; close() returned in {elapsed:.2f} s (dispatcher left running by "
           f"design); after {stuck_for:.1f} s the callback returned, queued events were delivered, thread exited")


def close_bounded_with_stuck_dispatcher(client, timeout: float) -> float:
    t0 = time.monotonic()
    client.close(timeout=timeout)
    elapsed = time.monotonic() - t0
    assert elapsed < timeout + 1.0
    assert client_threads() == ["rtedge-dispatch"]  # sender and receiver are gone already
    return elapsed


def test_callback_that_raises(server):
    failures: list[tuple[type, str]] = []

    def on_error(exc, event):
        failures.append((type(exc), event.type))
        raise RuntimeError("and on_error is buggy too")

    client, timeline = open_client(server.url, on_error=on_error)
    later: list[str] = []

    def boom(event):
        raise ValueError(f"bug on {event.type}")

    client.on("*", boom)
    client.on("response.done", lambda e: later.append(e.type))  # registered after the raising one
    text_turn(client)
    text_turn(client)
    assert wait_until(lambda: later == ["response.done", "response.done"])
    assert failures and all(kind is ValueError for kind, _ in failures)
    assert client.link_state == "open"
    close_bounded(client)
    # compared once the dispatcher is joined: while it runs, the counter can be one callback ahead of the list
    assert client.stats.callback_errors == len(failures)
    record("user callback raises (and on_error raises)",
           f"on_error called {len(failures)} times, logged, counted; later callbacks and turns go on")


def test_callback_that_calls_close(server):
    client, timeline = open_client(server.url)
    result: dict[str, float] = {}

    def on_done(event):
        t0 = time.monotonic()
        client.close(timeout=2.0)
        result["elapsed"] = time.monotonic() - t0

    client.on("response.done", on_done)
    client.send_text("hi")
    assert wait_until(lambda: "elapsed" in result, timeout=5)
    assert result["elapsed"] < 3.0
    assert wait_until(lambda: client_threads() == [], timeout=2.0), client_threads()
    assert wait_until(lambda: server.close_codes == [1000])
    with pytest.raises(ConnectionClosed):
        client.send_text("too late")
    close_bounded(client)  # idempotent
    record("user callback calls close()",
           f"close() returned in {result['elapsed'] * 1000:.0f} ms inside the callback; closed with 1000, "
           "every thread gone")


def test_close_from_reconnecting_callback_interrupts_the_backoff(server):
    client, timeline = open_client(server.url, reconnect=Backoff(initial=30.0, jitter=0))
    result: dict[str, float] = {}

    def on_reconnecting(event):
        t0 = time.monotonic()
        client.close(timeout=2.0)
        result["elapsed"] = time.monotonic() - t0

    client.on("rtedge.reconnecting", on_reconnecting)
    t0 = time.monotonic()
    server.drop_connections()
    assert wait_until(lambda: client_threads() == [], timeout=3.0), client_threads()  # not 30 s
    assert time.monotonic() - t0 < 3.0 and result["elapsed"] < 3.0
    assert timeline.of("rtedge.reconnected") == [] and server.connection_count == 1
    close_bounded(client)
