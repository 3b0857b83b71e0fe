"""Ending and renewing sessions on purpose: graceful close, close during an outage, proactive recycle."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

import rtedge
from rtedge.errors import ConnectionClosed
from rtedge.transport.backoff import Backoff

from ..conftest import REPO, client_threads, wait_until
from ..unanswered import SilentServer, SynDropper
from .conftest import close_bounded, connection_events, open_client, record, text_turn


def test_close_drains_queued_control_events_then_closes_with_1000(server):
    client, timeline = open_client(server.url)
    for i in range(50):
        client.send_text(f"note {i}", respond=False)
    client.create_response()
    elapsed = close_bounded(client)  # right away: most of it is still queued
    server.wait_for_received("response.create")  # the server reads what was sent before the close
    creates = [e for e in server.received if e["type"] == "conversation.item.create"]
    assert [e["item"]["content"][0]["text"] for e in creates] == [f"note {i}" for i in range(50)]
    assert server.received[-1]["type"] == "response.create"
    assert wait_until(lambda: server.close_codes == [1000])
    with pytest.raises(ConnectionClosed):
        client.send_text("after close")
    record("graceful end (close() with 51 control events queued)",
           f"all 51 sent in order, then close 1000; close() took {elapsed * 1000:.0f} ms")


def test_close_during_backoff_is_bounded(server):
    client, timeline = open_client(server.url, reconnect=Backoff(initial=30.0, jitter=0))
    server.drop_connections()
    timeline.wait("rtedge.reconnecting")
    elapsed = close_bounded(client, timeout=2.0)
    assert elapsed < 1.0  # the backoff sleep is interrupted, not waited out
    record("close() while waiting to reconnect (30 s backoff)", f"returned in {elapsed * 1000:.0f} ms")


def test_close_while_a_reconnect_attempt_hangs_is_bounded(proxy, server):
    """The reconnect attempt is stuck in the WebSocket handshake (black hole); close() must not
    wait for the connect timeout."""
    client, timeline = open_client(proxy.url, connect_timeout=10.0)
    proxy.pause()
    t0 = time.monotonic()
    proxy.reset()  # the link drops; the next attempt reaches the proxy and hears nothing back
    timeline.wait("rtedge.reconnecting", after=t0)
    assert wait_until(lambda: proxy.live_links == 1)  # the attempt is connected, waiting for the upgrade
    t1 = time.monotonic()
    client.close(timeout=1.0)
    elapsed = time.monotonic() - t1
    assert elapsed < 2.0
    gone = wait_until(lambda: client_threads() == [], timeout=2.0)
    proxy.resume()
    assert gone, f"{client_threads()} still running {time.monotonic() - t1:.1f} s after close(timeout=1)"
    record("close() while a reconnect attempt hangs in the handshake",
           f"returned in {elapsed * 1000:.0f} ms, every thread gone")


def test_close_while_a_reconnect_attempt_waits_in_the_tcp_handshake_is_bounded(proxy, server):
    """The reconnect attempt waits in the TCP handshake itself (the proxy's port drops SYNs, as a host that
    went down does): close() returned in time, but the sender stayed blocked in connect() for up to
    connect_timeout after it, a thread left running."""
    client, timeline = open_client(proxy.url, connect_timeout=60.0)
    port = proxy.port
    proxy.refuse()
    with SynDropper(port) as dropper:
        t0 = time.monotonic()
        proxy.reset()  # the link drops; the next attempt's SYNs go unanswered
        timeline.wait("rtedge.reconnecting", after=t0)
        assert wait_until(dropper.connecting, timeout=10)
        t1 = time.monotonic()
        client.close(timeout=1.0)
        elapsed = time.monotonic() - t1
        gone = wait_until(lambda: client_threads() == [], timeout=2.0)
    assert elapsed < 2.0
    assert gone, f"{client_threads()} still running {time.monotonic() - t1:.1f} s after close(timeout=1)"
    record("close() while a reconnect attempt waits in the TCP handshake",
           f"returned in {elapsed * 1000:.0f} ms, every thread gone")


def test_proactive_recycle_at_a_turn_boundary(server, caplog):
    caplog.set_level("INFO", logger="rtedge")
    server.realtime = True
    server.reply_text = "One two three four."  # about 1.2 s of paced audio
    # without recycling the server would expire the session; 4 s leaves a loaded machine room for a turn
    # (1.2 s of paced audio) in a session the client recycles after 0.5 s
    server.session_duration_s = 4.0
    session = rtedge.SessionConfig(turn_detection=None, instructions="Be brief.")
    # the recycle check runs on the sender's tick, min(ping_interval, ping_timeout, 1 s): make it 0.3 s
    client, timeline = open_client(server.url, session=session, max_session_seconds=0.5,
                                   ping_interval=0.3, ping_timeout=0.3)
    t0 = time.monotonic()
    client.send_text("Count to four")
    done = client.wait_for("response.done", timeout=10)
    assert done.status == "completed"  # the session was past its age limit mid-response: not recycled
    t_done = next(t for t, e in timeline.entries if e is done)
    t_recycle, recycle = timeline.wait("rtedge.reconnecting", after=t0)
    assert recycle.cause == "session recycle" and recycle.delay == 0
    assert t_recycle >= t_done and t_done - t0 > 0.5
    t_back, back = timeline.wait("rtedge.reconnected", after=t0)
    assert back.replayed_items == 2
    server.wait_for_received("conversation.item.create", nth=3)  # the turn's one + two replayed
    first, second = connection_events(server, 0), connection_events(server, 1)
    assert second[0]["session"] == first[0]["session"]
    assert [e["item"]["content"][0]["text"] for e in second[1:3]] == ["Count to four", server.reply_text]
    # a second turn in the recycled session; usage adds up over the sessions
    client.send_text("Again")
    assert client.wait_for("response.done", timeout=10).status == "completed"
    reported = [e["response"]["usage"]["total_tokens"] for e in server.sent if e["type"] == "response.done"]
    assert len(reported) == 2 and client.usage.total_tokens == sum(reported) and client.usage.responses == 2
    # keep going past the server's limit: the client recycles first, the server never expires it (7
    # reconnects: the first after the 1.2 s answer, then sessions of at least 0.5 s each, so > 4 s in all)
    timeline.wait("rtedge.reconnected", after=t0, nth=7, timeout=30)
    assert time.monotonic() - t0 > server.session_duration_s
    assert not any(e["type"] == "error" and e["error"]["code"] == "session_expired" for e in server.sent)
    assert client.link_state in ("open", "reconnecting") and client.fatal_error is None
    recycles = sum(1 for e in timeline.of("rtedge.reconnecting") if e.cause == "session recycle")
    # counted as recycles, not reconnects (nothing was lost: a "reconnects" alarm fired on every recycle)
    assert recycles >= 3 and recycles - 1 <= client.stats.recycles <= recycles  # (the last may be under way)
    assert client.stats.reconnects == 0
    assert set(server.close_codes[:recycles]) == {1000}  # we ended each old session cleanly
    # a planned recycle is no trouble: said at info level, not as a warning (it read as one in the journal)
    said = [r for r in caplog.records if "reconnecting (attempt 1" in r.getMessage()
            or "reconnected after" in r.getMessage()]
    assert said and {r.levelname for r in said} == {"INFO"}
    close_bounded(client)
    record("proactive recycle (max_session_seconds=0.5, server limit 4 s)",
           f"waited for response.done ({t_done - t0:.1f} s), recycled with close 1000 and re-seeded; "
           f"{recycles} recycles in {time.monotonic() - t0:.1f} s, no session_expired, usage summed "
           "across sessions", t_back - t_recycle)


@pytest.mark.parametrize("stage", ["upgrade", "tcp handshake"])
def test_ctrl_c_while_connect_waits_for_a_server_that_never_answers(stage):
    """Ctrl-C while connect() waits for a server that never answers: the upgrade (the server took the TCP
    connection) or the TCP handshake itself (SYNs dropped, as for a host that is down).  KeyboardInterrupt
    came only when connect_timeout ran out, as connect() joined the sender still blocked in the attempt.
    The attempt is now aborted, and again until the sender stops: the signal can come before the
    connection has a socket to abort."""
    with SilentServer() if stage == "upgrade" else SynDropper() as unanswered:
        # a terminal's Ctrl-C: a child of a background job (a CI runner's) starts with SIGINT ignored, and
        # Python then installs no KeyboardInterrupt handler
        script = ("import rtedge, signal, sys, threading\n"
                  "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
                  "print('connecting', flush=True)\ntry:\n"
                  f"    rtedge.connect('openai', url='{unanswered.url()}', connect_timeout=300)\n"
                  "except KeyboardInterrupt:\n"
                  "    alive = [t.name for t in threading.enumerate() if t.name.startswith('rtedge')]\n"
                  "    print('interrupted', alive)\n"
                  "    sys.exit(130)\n")
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, cwd=REPO)
        try:
            assert child.stdout is not None and child.stdout.readline() == "connecting\n"
            if isinstance(unanswered, SilentServer):
                unanswered.accept(20)  # the upgrade request is on its way: connect() waits for the answer
            else:
                assert wait_until(unanswered.connecting, timeout=20), "the child never reached the handshake"
            child.send_signal(signal.SIGINT)
            child.wait(timeout=60)  # long before the 300 s connect timeout
        finally:
            if child.poll() is None:
                child.kill()
            out, err = child.communicate()  # reaps it and closes its pipes
    # it ended at once, and no rtedge thread was left running
    assert child.returncode == 130 and out == "interrupted []\n", (child.returncode, out, err)


def test_ctrl_c_just_after_the_handshake_leaves_no_thread(server, monkeypatch):
    """A KeyboardInterrupt between the session's confirmation and connect() returning (the receiver and
    dispatcher being started) left a client nobody holds, its three threads running on a live session."""
    import rtedge.transport.client as client_module

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(client_module, "_warn_mismatch", interrupted)  # its last step: both threads started
    with pytest.raises(KeyboardInterrupt):
        rtedge.connect("openai", url=server.url, session=rtedge.SessionConfig(instructions="hi"))
    assert wait_until(lambda: client_threads() == [], timeout=5), client_threads()
    assert wait_until(lambda: server.close_codes == [1000])  # and the session was ended, not dropped
