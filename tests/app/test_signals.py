"""The commands' signal handlers: inside ``stop_interrupts()`` a stop signal also interrupts the main
thread's blocking call, once its handler has recorded the stop; outside it, and for SIGHUP, it never does."""

from __future__ import annotations

import signal
import threading

import pytest

from rtedge.app.signals import StopInterrupt, on_signals, stop_interrupts


def _handled(calls: list[int], sig: int) -> None:
    """Send ``sig`` to this process and wait until its handler ran (on this thread, between bytecodes)."""
    before = len(calls)
    signal.raise_signal(sig)
    for _ in range(1000):
        if len(calls) > before:
            return
        threading.Event().wait(0.005)
    raise AssertionError(f"the {signal.Signals(sig).name} handler did not run")


def test_a_stop_signal_interrupts_only_inside_the_block():
    calls: list[int] = []
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    restore = on_signals({s: lambda s=s: calls.append(s) for s in signals})
    try:
        _handled(calls, signal.SIGTERM)  # outside: recorded, nothing raised
        with pytest.raises(StopInterrupt, match="SIGINT"):
            with stop_interrupts():
                _handled(calls, signal.SIGHUP)  # a reload never interrupts
                with stop_interrupts():
                    pass  # a nested block leaves the outer one interruptible
                _handled(calls, signal.SIGINT)
        assert calls == [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]  # the handler ran before the raise
        _handled(calls, signal.SIGTERM)  # the block has ended: nothing raised
    finally:
        restore()
    assert calls[-1] == signal.SIGTERM


def test_a_block_on_another_thread_does_not_make_the_main_thread_interruptible():
    inside, leave = threading.Event(), threading.Event()

    def body() -> None:
        with stop_interrupts():
            inside.set()
            leave.wait(10)

    calls: list[int] = []
    restore = on_signals({signal.SIGTERM: lambda: calls.append(signal.SIGTERM)})
    worker = threading.Thread(target=body, name="test-stop-interrupts")
    worker.start()
    try:
        assert inside.wait(5)
        try:
            _handled(calls, signal.SIGTERM)
        except StopInterrupt:  # (a KeyboardInterrupt: pytest would stop the whole run)
            pytest.fail("the worker's block made the main thread interruptible")
    finally:
        leave.set()
        worker.join(5)
        restore()


def test_only_the_first_stop_in_a_block_interrupts():
    """The clean-up that the first one sets off (connect() aborting its upgrade) is not interrupted."""
    calls: list[int] = []
    restore = on_signals({signal.SIGTERM: lambda: calls.append(signal.SIGTERM)})
    try:
        with stop_interrupts():
            with pytest.raises(StopInterrupt):
                _handled(calls, signal.SIGTERM)
            _handled(calls, signal.SIGTERM)  # the clean-up's time: recorded, nothing raised
    finally:
        restore()
    assert calls == [signal.SIGTERM, signal.SIGTERM]


def test_a_stop_while_rtedge_transcribe_connects_ends_it_as_a_stop(speech_dir):
    """A server that takes the TCP connection and never answers the upgrade: SIGTERM used to let the
    connect run out its timeout and then exit 4, "cannot connect ... timed out", for a stop the user asked
    for.  It ends now, exit 0, saying it stopped."""
    import os
    import subprocess
    import sys

    from ..conftest import REPO
    from ..unanswered import SilentServer

    with SilentServer() as silent:
        command = [sys.executable, "-m", "rtedge", "transcribe", "--url", silent.url(), "--model", "m",
                   "--input", str(speech_dir / "stop.wav")]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            silent.accept(30)  # connecting: the upgrade request is on its way
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
            out, err = child.communicate()
    assert child.returncode == 0, (child.returncode, out, err)
    assert err == "rtedge: stopped before the session started\n" and out == ""


def test_a_stop_while_rtedge_transcribe_closes_is_still_a_stop(speech_dir, monkeypatch, capsys):
    """The command's handlers were restored before the client was closed: a stop during the close (up to
    5 s) fell to the default handler (SIGTERM killed it, Ctrl-C exited 130) and the summary was lost."""
    from rtedge.app.cli import main
    from rtedge.testing.vllm_server import DEFAULT_MODEL, VLLMServer
    from rtedge.voice.transcriber import Transcriber

    close = Transcriber.close

    def stopped_while_closing(self, timeout: float = 5.0) -> None:
        signal.raise_signal(signal.SIGINT)  # runs the handler in place when this returns to Python code
        close(self, timeout)

    monkeypatch.setattr(Transcriber, "close", stopped_while_closing)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal (not SIG_IGN)
    try:
        with VLLMServer(transcript="stop") as srv:
            code = main(["transcribe", "--url", srv.url, "--model", DEFAULT_MODEL,
                         "--input", str(speech_dir / "stop.wav")])
    finally:
        signal.signal(signal.SIGINT, old)
    out = capsys.readouterr().out
    assert code == 0 and "summary: 1 utterance(s)" in out, (code, out)


def test_a_stop_just_after_the_transcriber_connected_leaves_no_thread(monkeypatch):
    """A KeyboardInterrupt between rtedge.connect() returning and the Transcriber holding the client left
    a client nobody could close, its three threads running."""
    import rtedge
    from rtedge.testing.vllm_server import DEFAULT_MODEL, VLLMServer
    from rtedge.voice.transcriber import Transcriber

    from ..conftest import client_threads, wait_until

    def interrupted(self, *_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(rtedge.Client, "on", interrupted)
    with VLLMServer() as srv:
        tr = Transcriber(url=srv.url, model=DEFAULT_MODEL)
        with pytest.raises(KeyboardInterrupt):
            tr.connect()
        assert tr.client is None
        # while the server still runs (its stop would end a client left behind: 1001, the end)
        assert wait_until(lambda: client_threads() == [], timeout=5), client_threads()


def test_rtedge_transcribe_repeats_a_stop_until_its_block_ends():
    """A stop that comes before the transcription began (Transcriber.stop() does nothing then) is not lost:
    the watcher calls stop() again until the block ends, and its thread ends with the block."""
    import threading

    from rtedge.app.transcribe import _stops_end

    class NotYetStarted:
        def __init__(self) -> None:
            self.calls = 0
            self.again = threading.Event()

        def stop(self) -> None:  # a Transcriber that is not yet transcribing: each call does nothing
            self.calls += 1
            if self.calls >= 2:
                self.again.set()

    tr = NotYetStarted()
    with _stops_end(tr):
        signal.raise_signal(signal.SIGTERM)  # recorded by the block's handler, on this thread
        assert tr.again.wait(5), tr.calls
    assert not [t for t in threading.enumerate() if t.name == "rtedge-transcribe-signal"]
