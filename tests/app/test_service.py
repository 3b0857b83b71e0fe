"""``rtedge run`` as a systemd service, tested without systemd: a real ``rtedge run`` subprocess against
the local server, its sd_notify datagrams received on a real AF_UNIX socket (path and abstract names),
signals, exit codes, and the journal/JSON output formats."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from rtedge.app.cli import EXIT_AUTH, EXIT_CONFIG, EXIT_CONNECT, EXIT_GAVE_UP, EXIT_OK
from rtedge.testing import RealtimeServer

from ..conftest import REPO, wait_until
from ..notify_listener import NotifyListener
from ..unanswered import SilentServer, SynDropper

pytestmark = [pytest.mark.usefixtures("no_thread_leak"), pytest.mark.timeout(60)]

KEY = "sk-test-NEVER-PRINT-0123456789"


@pytest.fixture(scope="module")
def phrase(tmp_path_factory) -> Path:
    """0.3 s of silence (the local VAD learns its floor), then 0.6 s of a loud tone: enough for both VADs
    to hear a turn, short enough for fast tests."""
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    t = np.arange(9600) / 16000
    tone = np.concatenate([np.zeros(4800), 8000 * np.sin(2 * np.pi * 440 * t)])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(tone.astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def endless(phrase, tmp_path_factory) -> Path:
    """The phrase, then 120 s of silence: a ``wav:`` input that does not end (which ends the run) while a
    test still watches the session."""
    path = tmp_path_factory.mktemp("audio") / "tone_then_silence.wav"
    with wave.open(str(phrase)) as src, wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(src.readframes(src.getnframes()) + bytes(2 * 120 * 16000))
    return path


@pytest.fixture(params=["path", "abstract"])
def notify(request, tmp_path):
    listener = NotifyListener(tmp_path, abstract=request.param == "abstract")
    yield listener
    listener.close()


class Child:
    """One ``rtedge`` subprocess with its output in files (never a full pipe)."""

    def __init__(self, tmp_path: Path, args: list[str], env: dict[str, str] | None = None,
                 code: str | None = None, stderr: int | None = None) -> None:
        self.out_path, self.err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("RTEDGE_", "NOTIFY_", "WATCHDOG_")) and k not in (
                    "JOURNAL_STREAM", "CREDENTIALS_DIRECTORY", "OPENAI_API_KEY")}
        full_env = {**base, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1", **(env or {})}
        cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "rtedge", *args]
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err if stderr is None else stderr,
                                         env=full_env, cwd=REPO)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """The exit code; past ``timeout`` a failure that shows where every thread of the child was (its
        faulthandler's dump on SIGABRT) and the end of its stderr."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(10)
            raise AssertionError(f"rtedge did not exit within {timeout} s; its stderr ends:\n"
                                 f"{self.stderr[-6000:]}") from None

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def children():
    made: list[Child] = []
    yield made
    for child in made:
        child.kill()


def run_args(url: str, phrase: Path, *extra: str) -> list[str]:
    return ["run", "--url", url, "--mic", f"wav:{phrase}", "--speaker", "null",
            "--set", "service.stall_seconds=1", *extra]


def notify_env(listener: NotifyListener, watchdog_usec: int = 200000) -> dict[str, str]:
    return {"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": str(watchdog_usec)}


def assert_clean(child: Child) -> None:
    both = child.stdout + child.stderr
    assert "Traceback" not in both, both
    assert KEY not in both


def test_ready_status_watchdog_stopping_sequence(tmp_path, notify, children, endless):
    with RealtimeServer(reply_text="Okay.") as srv:
        child = Child(tmp_path, run_args(srv.url, endless), notify_env(notify))
        children.append(child)
        ready = notify.wait_for("READY=1")
        notify.wait_for("STATUS=speaking", after=ready)
        notify.wait_for("STATUS=listening", after=notify.wait_for("STATUS=speaking"))
        t = time.monotonic()
        notify.wait_for("WATCHDOG=1", after=t)
        threading.Event().wait(0.6)  # the pings keep coming at WATCHDOG_USEC / 2 = 0.1 s while healthy
        assert len([p for p in notify.times("WATCHDOG=1") if p > t]) >= 3
        stop_sent = time.monotonic()
        child.signal(signal.SIGTERM)
        assert child.wait(5) == EXIT_OK
        assert time.monotonic() - stop_sent < 5
        notify.wait_for("STOPPING=1", timeout=1)
    texts = notify.texts()
    first = next(i for i, m in enumerate(texts) if "READY=1" in m.split("\n"))
    assert texts[0] == "STATUS=connecting"
    assert "STATUS=ready" in texts[first] and f"MAINPID={child.proc.pid}" in texts[first]
    assert "STOPPING=1" in texts[-1] and "STATUS=stopping" in texts[-1]
    assert "summary: 1 turn(s)" in child.stdout and "stats: 1 turns" in child.stdout
    assert_clean(child)


def test_sighup_resends_session_update_on_the_same_connection(tmp_path, children, endless):
    listener = NotifyListener(tmp_path, abstract=False)
    config = tmp_path / "rtedge.toml"
    config.write_text('[session]\ninstructions = "first"\ntranscription_model = "whisper-1"\n'
                      'max_output_tokens = 50\n')
    try:
        with RealtimeServer() as srv:
            child = Child(tmp_path, run_args(srv.url, endless, "--config", str(config)), notify_env(listener))
            children.append(child)
            ready = listener.wait_for("READY=1")
            srv.wait_for_received("session.update",
                                  where=lambda e: e["session"].get("instructions") == "first")
            config.write_text('[session]\ninstructions = "second"\nvoice = "marin"\n')
            child.signal(signal.SIGHUP)
            reloading = listener.wait_for("RELOADING=1", after=ready)
            listener.wait_for("READY=1", after=reloading)
            update = srv.wait_for_received("session.update", nth=2, timeout=5)
            assert update["session"]["instructions"] == "second"
            assert update["session"]["audio"]["output"]["voice"] == "marin"
            # emptied settings are reset, not left out (the server kept them): transcription off, no bound
            assert update["session"]["audio"]["input"]["transcription"] is None
            assert update["session"]["max_output_tokens"] == "inf"
            assert srv.connection_count == 1
            reload_msg = next(m for m in listener.texts() if "RELOADING=1" in m)
            assert re.search(r"^MONOTONIC_USEC=\d+$", reload_msg, re.M)
            child.signal(signal.SIGTERM)
            assert child.wait(15) == EXIT_OK  # (TimeoutStopSec: the agent and close 5 s each)
    finally:
        listener.close()
    assert "configuration reloaded" in child.stderr
    assert_clean(child)


def test_sighup_with_a_session_the_server_refuses_says_so(tmp_path, children, endless):
    """A reload whose session.update the server refuses (OpenAI: no voice change once the assistant has
    spoken) is reported as failed, not as "configuration reloaded"; the run goes on."""
    listener = NotifyListener(tmp_path, abstract=False)
    config = tmp_path / "rtedge.toml"
    config.write_text('[session]\nvoice = "alloy"\n')
    try:
        with RealtimeServer() as srv:
            child = Child(tmp_path, run_args(srv.url, endless, "--config", str(config)), notify_env(listener))
            children.append(child)
            listener.wait_for("READY=1")
            listener.wait_for("STATUS=listening", after=listener.wait_for("STATUS=speaking"))
            config.write_text('[session]\nvoice = "marin"\n')
            child.signal(signal.SIGHUP)
            reloading = listener.wait_for("RELOADING=1")
            listener.wait_for("STATUS=reload failed", after=reloading)
            assert srv.connection_count == 1
            child.signal(signal.SIGTERM)
            assert child.wait(15) == EXIT_OK  # (TimeoutStopSec: the agent and close 5 s each)
    finally:
        listener.close()
    assert "cannot_update_voice" in child.stderr and "keeps its previous settings" in child.stderr
    assert "configuration reloaded" not in child.stderr
    assert_clean(child)


BLOCK_DISPATCHER = """
import sys, threading
import rtedge.app.runner
handle = rtedge.app.runner.TurnTracker._handle
def stuck(self, event):  # a callback that never returns, on the dispatcher thread
    if event.type == "response.done":
        print("test: blocking the dispatcher", file=sys.stderr, flush=True)
        threading.Event().wait(600)
    return handle(self, event)
rtedge.app.runner.TurnTracker._handle = stuck
from rtedge.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _gap_after(listener: NotifyListener, start: float, length: float, timeout: float = 15.0) -> float:
    """Wait until no WATCHDOG=1 came for ``length`` seconds (after ``start``); returns the gap's start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pings = [t for t in listener.times("WATCHDOG=1") if t > start]
        last = pings[-1] if pings else start
        if time.monotonic() - last >= length:
            return last
        threading.Event().wait(0.05)
    raise AssertionError("the watchdog pings never stopped")


def test_no_watchdog_while_the_dispatcher_is_stuck_in_a_callback(tmp_path, children, endless):
    listener = NotifyListener(tmp_path, abstract=True)
    try:
        with RealtimeServer(reply_text="Okay.") as srv:
            child = Child(tmp_path, run_args(srv.url, endless), notify_env(listener), code=BLOCK_DISPATCHER)
            children.append(child)
            ready = listener.wait_for("READY=1")
            listener.wait_for("WATCHDOG=1", after=ready)  # healthy at first
            srv.wait_for_sent("response.done", timeout=15)
            gap_start = _gap_after(listener, ready, length=2.5)  # stall_seconds=1, pings every 0.1 s
            assert child.proc.poll() is None  # alive, just stuck: exactly what the watchdog is for
            assert gap_start - ready > 0.3  # it did ping while healthy
            child.kill()
    finally:
        listener.close()
    assert "rtedge-dispatch: stuck in a callback" in child.stderr


def test_no_watchdog_while_the_microphone_stalls_and_again_after(tmp_path, children):
    fifo = tmp_path / "mic.fifo"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)  # the child's open() does not block on a FIFO that has a writer
    listener = NotifyListener(tmp_path, abstract=False)
    second = np.zeros(16000, np.int16).tobytes()
    flowing = threading.Event()  # set: stop feeding

    def feed() -> None:  # 0.1 s of audio every 0.1 s: a capture pipe paced by its sound card
        while not flowing.wait(0.1):
            try:
                os.write(writer, second[:3200])
            except BlockingIOError:  # the child has stopped reading
                return

    feeder = threading.Thread(target=feed, name="test-mic-feeder", daemon=True)
    os.set_blocking(writer, False)
    try:
        with RealtimeServer() as srv:
            os.write(writer, second[:9600])  # 0.3 s of audio, then nothing: a hung capture pipe
            child = Child(tmp_path, ["run", "--url", srv.url, "--mic", f"raw:{fifo}", "--speaker", "null",
                                     "--set", "service.stall_seconds=1"], notify_env(listener))
            children.append(child)
            ready = listener.wait_for("READY=1")
            gap_start = _gap_after(listener, ready, length=2.0)
            # the status line says what is wrong (it said "listening" through the whole stall before)
            stalled_at = listener.wait_for("STATUS=stalled: mic", after=ready, timeout=5)
            resumed = time.monotonic()
            feeder.start()  # the pipe flows again, in real time, until the child has stopped
            listener.wait_for("WATCHDOG=1", after=resumed, timeout=5)  # flowing again: pings resume
            child.signal(signal.SIGTERM)
            assert child.wait(15) == EXIT_OK  # (TimeoutStopSec: the agent and close 5 s each)
    finally:
        flowing.set()
        if feeder.is_alive():
            feeder.join(5)
        listener.close()
        os.close(writer)
    assert gap_start > ready and stalled_at > ready
    stalled = [m for _, m in listener.messages if "STATUS=stalled: mic" in m]
    assert re.search(r"STATUS=stalled: mic \(RawSource.*\): no audio frames for \d+\.\d s", stalled[0])
    assert re.search(r"mic .*no audio frames", child.stderr), child.stderr
    # Logged when the set of stalled parts changes, never once per check: the stall lasted >= 2 s with a check
    # every 0.1 s (>= 20 checks).  Under load another part can join the stall for a moment, which is a change.
    warnings = child.stderr.count("stalled, not pinging the watchdog")
    assert 1 <= warnings <= 3, child.stderr
    assert "recovered" in child.stderr


def test_config_error_exits_2_and_names_the_line(tmp_path, children):
    listener = NotifyListener(tmp_path, abstract=False)
    config = tmp_path / "bad.toml"
    config.write_text('[audio]\nmic = "null"\nmic_rate = "fast"\n')
    try:
        child = Child(tmp_path, ["run", "--config", str(config)], {"NOTIFY_SOCKET": listener.env_value})
        children.append(child)
        assert child.wait(10) == EXIT_CONFIG
        listener.wait_for("STATUS=configuration error", timeout=2)
    finally:
        listener.close()
    assert f"rtedge: error: {config}:3: audio.mic_rate: must be an integer" in child.stderr


def test_refused_credential_exits_3_and_never_shows_the_key(tmp_path, children, endless):
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "api-key").write_text(KEY + "\n")
    (creds / "api-key").chmod(0o400)
    with RealtimeServer(api_key="sk-the-right-one") as srv:
        child = Child(tmp_path, run_args(srv.url, endless, "--debug"), {"CREDENTIALS_DIRECTORY": str(creds)})
        children.append(child)
        assert child.wait(15) == EXIT_AUTH
        sent = srv.handshakes[0]["headers"].get("authorization")
    assert sent == f"Bearer {KEY}"  # the credential was used...
    assert "401" in child.stderr
    assert_clean(child)  # ...and printed nowhere, not even at debug level


def test_gave_up_reconnecting_exits_6(tmp_path, children, endless):
    listener = NotifyListener(tmp_path, abstract=False)
    try:
        srv = RealtimeServer().start()
        try:
            child = Child(tmp_path, run_args(srv.url, endless, "--set", "reconnect.max_attempts=2",
                                             "--set", "reconnect.initial_delay=0.05",
                                             "--set", "reconnect.max_delay=0.1"), notify_env(listener))
            children.append(child)
            listener.wait_for("READY=1")
        finally:
            srv.stop()
        assert child.wait(15) == EXIT_GAVE_UP
        listener.wait_for("STATUS=reconnecting (attempt 1)", timeout=1)
    finally:
        listener.close()
    errors = [line for line in child.stderr.splitlines() if "error:" in line]
    # said once, by the client (the run repeated it as "gave up: ...")
    assert len(errors) == 1 and "giving up on the connection: 2 attempts failed" in errors[0], child.stderr
    assert_clean(child)


def test_stop_while_waiting_to_retry_the_first_connect(tmp_path, children, endless):
    """reconnect.retry_first_connect (the example config's kiosk value) with no server: SIGTERM during the
    wait before the next attempt ends the run at once, exit 0, STOPPING=1 and a line saying why."""
    listener = NotifyListener(tmp_path, abstract=False)
    with socket.socket() as closed:  # a port nobody listens on: every attempt is refused
        closed.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{closed.getsockname()[1]}/v1/realtime"
    try:
        child = Child(tmp_path, run_args(url, endless, "--set", "reconnect.retry_first_connect=true",
                                         "--set", "reconnect.initial_delay=60", "--set", "reconnect.max_delay=60",
                                         "--set", "reconnect.jitter=0"), notify_env(listener))
        children.append(child)
        listener.wait_for("STATUS=connecting (attempt 2)")
        child.signal(signal.SIGTERM)
        assert child.wait(30) == EXIT_OK  # well before the 60 s wait would have ended
        listener.wait_for("STOPPING=1", timeout=1)
    finally:
        listener.close()
    assert "stopping (signal) before the session started" in child.stderr
    assert_clean(child)


@pytest.mark.parametrize("stage", ["upgrade", "tcp handshake"])
@pytest.mark.parametrize("retry", ["true", "false"])
def test_stop_during_a_first_connect_attempt_does_not_schedule_another(tmp_path, children, endless, retry,
                                                                        stage):
    """A server that never answers, in the upgrade (it took the TCP connection) or in the TCP handshake
    (SYNs dropped, as for a host that is down): SIGTERM during that attempt ends the run at once, without
    announcing a next attempt; without retrying the first connect it is a stop too (it said "cannot
    connect", exit 4).  It used to wait out provider.connect_timeout (here 120 s, beyond this test's wait)."""
    with SilentServer() if stage == "upgrade" else SynDropper() as unanswered:
        child = Child(tmp_path, run_args(unanswered.url(), endless, "--set",
                                         f"reconnect.retry_first_connect={retry}",
                                         "--set", "provider.connect_timeout=120"))
        children.append(child)
        if isinstance(unanswered, SilentServer):
            unanswered.accept(30)
        else:
            assert wait_until(unanswered.connecting, timeout=30), child.stderr
        child.signal(signal.SIGTERM)
        assert child.wait(30) == EXIT_OK
    assert "stopping (signal) before the session started" in child.stderr
    assert "attempt 2" not in child.stderr
    assert_clean(child)


def test_journal_format_when_journal_stream_is_stderr(tmp_path, children, phrase):
    read_fd, write_fd = os.pipe()
    st = os.fstat(write_fd)
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    key_file.chmod(0o644)  # readable by others: a warning, at priority 4
    try:
        with RealtimeServer(reply_text="Okay.") as srv:
            child = Child(tmp_path, ["run", "--url", srv.url, "--input", str(phrase), "--speaker", "null",
                                     "--api-key-file", str(key_file)],
                          {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stderr=write_fd)
            children.append(child)
            os.close(write_fd)
            write_fd = -1
            code = child.wait(30)
        with os.fdopen(read_fd) as fh:
            read_fd = -1
            err = fh.read()
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
    assert code == EXIT_OK, err
    err_lines, out_lines = err.splitlines(), child.stdout.splitlines()
    assert err_lines and all(re.match(r"<[0-7]>", line) for line in err_lines), err
    assert all(re.match(r"<6>", line) for line in out_lines), out_lines
    assert any(line.startswith("<4>API key file") for line in err_lines)
    assert "<6>assistant: Okay." in out_lines and any(line.startswith("<6>summary:") for line in out_lines)
    assert not re.search(r"\d\d:\d\d:\d\d", err + child.stdout)  # the journal adds the time itself
    assert KEY not in err + child.stdout


def test_journal_stream_of_another_file_means_human_output(tmp_path, children, phrase):
    with RealtimeServer(reply_text="Okay.") as srv:
        child = Child(tmp_path, ["run", "--url", srv.url, "--input", str(phrase), "--speaker", "null"],
                      {"JOURNAL_STREAM": "1:2"})
        children.append(child)
        assert child.wait(30) == EXIT_OK
    assert "assistant: Okay." in child.stdout.splitlines()
    assert "rtedge: info: ready: session configured, audio open" in child.stderr


def test_json_format(tmp_path, children, phrase):
    with RealtimeServer(reply_text="Okay.") as srv:
        child = Child(tmp_path, ["run", "--url", srv.url, "--input", str(phrase), "--speaker", "null",
                                 "--log-format", "json"])
        children.append(child)
        assert child.wait(30) == EXIT_OK
    out = [json.loads(line) for line in child.stdout.splitlines()]
    err = [json.loads(line) for line in child.stderr.splitlines()]
    assert {"ts", "level", "msg"} <= set(out[0]) and {"ts", "level", "msg", "thread"} <= set(err[0])
    stats = next(o for o in out if o.get("event") == "stats")
    assert stats["turns"] == 1 and stats["tokens_total"] > 0 and stats["latency_p50_ms"] is not None
    assert any(o["msg"] == "assistant: Okay." for o in out)


def test_live_status_line_on_a_terminal(tmp_path, children, phrase):
    import pty

    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO once the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, name="test-pty-reader", daemon=True)
    reader.start()
    try:
        with RealtimeServer(reply_text="Okay.") as srv:
            child = Child(tmp_path, ["run", "--url", srv.url, "--input", str(phrase), "--speaker", "null"],
                          stderr=slave)
            children.append(child)
            os.close(slave)
            slave = -1
            assert child.wait(30) == EXIT_OK
        reader.join(5)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    tty = b"".join(chunks).decode()
    assert "\r\x1b[Kconnecting" in tty and "\r\x1b[Klistening" in tty and "\r\x1b[Kspeaking | 1 turns" in tty
    assert "assistant: Okay." in child.stdout  # stdout is a file here: plain lines, no control codes
    assert "\x1b" not in child.stdout


def test_a_lost_connection_with_reconnecting_off_is_not_reported_as_giving_up(tmp_path, children, endless):
    """reconnect.enabled = false and the server drops the connection: the run said "gave up" and exited 6
    ("gave up reconnecting") although it never tried.  It says reconnecting is off and exits 4."""
    listener = NotifyListener(tmp_path, abstract=False)
    try:
        with RealtimeServer() as srv:
            child = Child(tmp_path, run_args(srv.url, endless, "--set", "reconnect.enabled=false"),
                          notify_env(listener))
            children.append(child)
            listener.wait_for("READY=1")
            srv.drop_connections()
            assert child.wait(15) == EXIT_CONNECT, child.stderr
        assert srv.connection_count == 1  # no attempt to reconnect
    finally:
        listener.close()
    assert "(reconnecting is off)" in child.stderr, child.stderr
    assert "gave up" not in child.stderr
    assert_clean(child)


def test_a_reload_resets_emptied_session_settings_or_says_it_cannot():
    from rtedge.app.service import reload_update
    from rtedge.app.settings import SessionSettings
    from rtedge.protocol.config import UNSET
    from rtedge.protocol.dialects import get_dialect

    old = SessionSettings(instructions="be brief", voice="marin", transcription_model="whisper-1",
                          max_output_tokens=50, noise_reduction="near_field")
    openai = get_dialect("openai")
    update, stuck = reload_update(old, SessionSettings(), interrupt=True, dialect=openai, model=None)
    assert update.transcription is None and update.max_output_tokens == "inf"
    assert update.instructions is UNSET and update.voice is UNSET
    assert stuck == ["instructions", "voice", "noise_reduction"]
    same, none_stuck = reload_update(old, old, interrupt=True, dialect=openai, model=None)
    assert same == old.to_session_config(interrupt=True) and none_stuck == []
    # a transcription session without a model takes its default one, as a fresh session does (null broke it)
    asr = get_dialect("openai-transcription")
    update, _ = reload_update(SessionSettings(transcription_model="whisper-1"), SessionSettings(),
                              interrupt=True, dialect=asr, model=None)
    assert update.transcription.model == asr.default_model
    # DashScope cannot say "no bound": the emptied bound is reported, not claimed reset
    _, stuck = reload_update(SessionSettings(max_output_tokens=50), SessionSettings(), interrupt=True,
                             dialect=get_dialect("qwen"), model=None)
    assert stuck == ["max_output_tokens"]
