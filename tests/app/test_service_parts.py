"""The parts of service mode on their own: sd_notify datagrams, the watchdog's probes on a real client's
threads, output formats and the statistics."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import threading

import pytest

import rtedge
from rtedge.app.logs import Console, ConsoleHandler, journal_stream_is_stderr, pick_format
from rtedge.app.service import (Health, Notifier, Watchdog, client_probes, device_probe, percentile, stats_line,
                            status_text)
from rtedge.testing import RealtimeServer

from ..conftest import wait_until

pytestmark = pytest.mark.usefixtures("no_thread_leak")


@pytest.fixture(params=["path", "abstract"])
def receiver(request, tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        sock.bind(str(tmp_path / "n.sock"))
        address = str(tmp_path / "n.sock")
    else:
        sock.bind(f"\0rtedge-parts-{os.getpid()}")
        address = f"@rtedge-parts-{os.getpid()}"
    sock.settimeout(5)
    yield sock, address
    sock.close()


def test_notifier_sends_one_datagram_per_call(receiver):
    sock, address = receiver
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "3000000"})
    assert notifier.enabled and notifier.watchdog_interval == 1.5
    assert notifier.notify("READY=1", "STATUS=two\nlines")
    assert sock.recv(4096) == b"READY=1\nSTATUS=two lines"
    notifier.close()


def test_notifier_without_systemd_is_a_no_op(caplog):
    assert not Notifier.from_env({}).notify("READY=1")
    assert Notifier.from_env({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
                             ).watchdog_interval is None  # another process's watchdog
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        assert not Notifier("relative/path").enabled
        broken = Notifier("/nonexistent/notify.sock")
        assert not broken.notify("READY=1") and not broken.notify("READY=1")
    assert caplog.text.count("sd_notify to /nonexistent/notify.sock failed") == 1
    assert "not an absolute path" in caplog.text


def test_watchdog_pings_only_while_healthy(receiver, caplog):
    sock, address = receiver
    sick = threading.Event()
    health = Health()
    health.add("part", lambda now: "part: stuck" if sick.is_set() else None)
    dog = Watchdog(Notifier(address, watchdog_usec=10_000_000), health)
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        assert dog.check() and sock.recv(100) == b"WATCHDOG=1"
        sick.set()
        assert not dog.check() and not dog.check()
        sick.clear()
        assert dog.check() and sock.recv(100) == b"WATCHDOG=1"
    assert dog.pings == 2
    assert [r.getMessage() for r in caplog.records] == [
        "stalled, not pinging the watchdog: part: stuck", "recovered: all threads make progress again"]
    health.add("bug", lambda now: 1 / 0)
    assert health.problems() == ["bug: probe failed (ZeroDivisionError('division by zero'))"]


def test_client_probes_see_a_callback_blocking_the_dispatcher():
    release = threading.Event()
    with RealtimeServer() as srv, rtedge.connect(url=srv.url) as client:
        probes = client_probes(client, stall=0.2)
        health = Health()
        for name, probe in probes.items():
            health.add(name, probe)
        assert health.problems() == []
        client.on("response.done", lambda event: release.wait(10))
        client.send_text("hi")
        assert wait_until(lambda: any("rtedge-dispatch: stuck in a callback" in p for p in health.problems()),
                          timeout=10)
        assert all(p.startswith("rtedge-dispatch") for p in health.problems())  # the others still progress
        release.set()
        assert wait_until(lambda: health.problems() == [], timeout=5)


def test_client_probes_see_a_receiver_stuck_on_a_message():
    release = threading.Event()
    with RealtimeServer() as srv, rtedge.connect(url=srv.url) as client:
        health = Health()
        for name, probe in client_probes(client, stall=0.2).items():
            health.add(name, probe)
        # an internal hook runs on rtedge-receiver; one that blocks stops the receiver's progress
        client._add_event_hook(lambda event: event.type == "response.done" and release.wait(10))
        client.send_text("hi")
        assert wait_until(lambda: any("rtedge-receiver: stuck handling a message" in p
                                      for p in health.problems()), timeout=10)
        release.set()
        assert wait_until(lambda: health.problems() == [], timeout=5)


def test_client_probes_see_a_stuck_sender_and_a_silent_server():
    """The sender stuck in one call: its probe names it, and with no keepalive going out nothing comes
    back either, so the receiver-quiet probe names the silent link while the link still looks open."""
    release = threading.Event()
    with RealtimeServer() as srv, rtedge.connect(url=srv.url, ping_interval=0.2, ping_timeout=0.2) as client:
        health = Health()
        for name, probe in client_probes(client, stall=0.3).items():
            health.add(name, probe)
        assert health.problems() == []
        client._sendq.submit(lambda: release.wait(10))  # the sender's own thread now hangs
        try:
            assert wait_until(lambda: {"sender", "receiver-quiet"} <= set(health.check()), timeout=10)
            found = health.check()
            assert found["sender"].startswith("rtedge-sender: no progress for ")
            assert found["receiver-quiet"].startswith("rtedge-receiver: nothing from the server for ")
            assert "dispatcher" not in found and "threads" not in found
        finally:
            release.set()
        assert wait_until(lambda: health.problems() == [], timeout=5)


def test_client_probes_name_a_thread_that_ended():
    with RealtimeServer() as srv, rtedge.connect(url=srv.url) as client:
        health = Health()
        for name, probe in client_probes(client, stall=5).items():
            health.add(name, probe)
        assert health.problems() == []
        dead = threading.Thread(target=lambda: None, name="rtedge-dispatch")  # as if it had crashed
        dead.start()
        dead.join()
        threads = client._threads
        client._threads = [*threads, dead]
        assert health.problems() == ["thread(s) ended unexpectedly: rtedge-dispatch"]
        client._threads = threads
    assert health.problems() == []  # a closed client's threads ended on purpose


def test_device_probe_needs_moving_frames():
    class Stats:
        frames = 0

    class Device:
        stats, failed, error = Stats(), threading.Event(), None

    device = Device()
    probe = device_probe("mic", device, stall=1.0)
    start = 1e9  # probe clocks are passed in: no sleeping
    device.stats.frames = 5
    assert probe(start) is None
    assert probe(start + 0.9) is None
    assert probe(start + 1.5) == "mic: no audio frames for 1.5 s"
    device.stats.frames = 6
    assert probe(start + 1.6) is None
    device.failed.set()
    assert probe(start + 1.7).startswith("mic: failed")


def test_journal_stream_must_name_stderr(tmp_path):
    with open(tmp_path / "err", "w") as err:
        st = os.fstat(err.fileno())
        assert journal_stream_is_stderr({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, err)
        assert not journal_stream_is_stderr({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, err)
        assert not journal_stream_is_stderr({"JOURNAL_STREAM": "garbage"}, err)
        assert not journal_stream_is_stderr({}, err)
    assert not journal_stream_is_stderr({"JOURNAL_STREAM": "1:2"}, io.StringIO())
    assert pick_format("json", {}) == "json" and pick_format("auto", {}) == "human"


@pytest.mark.parametrize("fmt", ["human", "journal", "json"])
def test_console_formats_and_redaction(fmt, capsys):
    console = Console(fmt)
    console.redact.secrets.append("sk-SECRET")
    handler = ConsoleHandler(console)
    logger = logging.getLogger("rtedge.test-console")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("bad key %s", "sk-SECRET")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    console.line("turn 1: sk-SECRET", event="turn", turns=1)
    out, err = capsys.readouterr()
    assert "sk-SECRET" not in out + err and "<redacted>" in err
    if fmt == "human":
        assert err.startswith("rtedge: warning: bad key <redacted>\nrtedge: error: failed\nTraceback")
        assert out == "turn 1: <redacted>\n"
    elif fmt == "journal":
        assert all(line.startswith(("<4>", "<3>")) for line in err.splitlines())
        assert err.startswith("<4>bad key <redacted>\n<3>failed\n<3>Traceback")
        assert out == "<6>turn 1: <redacted>\n"
    else:
        records = [json.loads(line) for line in err.splitlines()]
        assert [r["level"] for r in records] == ["warning", "error"]
        assert "ValueError: boom" in records[1]["exc"]
        line = json.loads(out)
        assert line["msg"] == "turn 1: <redacted>" and line["event"] == "turn" and line["turns"] == 1


def test_statistics_and_status_text():
    assert percentile([], 0.5) is None
    assert percentile([5.0, 1.0, 3.0], 0.5) == 3.0 and percentile(list(range(1, 101)), 0.95) == 95
    numbers = {"turns": 3, "latency_p50_ms": 410.0, "latency_p95_ms": 820.4, "last_latency_ms": 400.0,
               "reconnects": 1, "recycles": 4, "underruns": 2, "overflows": 0, "audio_dropped_ms": 120,
               "vad_seconds_not_sent": 95.0, "vad_bytes_saved": 6080000, "interruptions": 1, "tokens_in": 100,
               "tokens_out": 50, "tokens_total": 150}
    assert stats_line(numbers) == (
        "stats: 3 turns, latency p50 410 ms / p95 820 ms, 1 reconnects, 4 recycles, 2 underruns, "
        "0 overflows, "
        "120 ms audio dropped, 95.0 s mic audio not sent (6.08 MB), 1 interruptions, "
        "tokens in 100 / out 50 / total 150")
    assert status_text("listening", numbers) == "listening | 3 turns, last 400 ms | 150 tokens | 1 reconnects"
    assert status_text("connecting", {**numbers, "turns": 0, "reconnects": 0}) == "connecting"
