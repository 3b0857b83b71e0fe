"""``rtedge run`` with pipes and files: text never lands in PCM on stdout, finite inputs end the run,
outputs are checked before connecting, sound cards are opened before a session is."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from rtedge.app.cli import EXIT_AUDIO, EXIT_CONFIG, EXIT_OK, main
from rtedge.testing import RealtimeServer
from rtedge.audio.wavio import read_wav

pytestmark = pytest.mark.usefixtures("no_thread_leak")
REPO = Path(__file__).parents[2]


def _env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("RTEDGE_", "NOTIFY_", "WATCHDOG_")) and k not in ("JOURNAL_STREAM",)}
    return {**base, "PYTHONUNBUFFERED": "1"}


def _speech_pcm(speech_dir) -> bytes:
    samples, rate = read_wav(speech_dir / "stop.wav")
    assert rate == 16000
    return np.concatenate([samples, np.zeros(16000, np.int16)]).astype("<i2").tobytes()


@pytest.mark.parametrize("log_format", ["human", "json", "journal"])
def test_readme_pipe_recipe_keeps_stdout_pure_pcm_and_ends_at_eof(tmp_path, speech_dir, log_format):
    """``arecord ... | rtedge run --mic raw:- --speaker raw:- | aplay ...``: stdin is a file here."""
    stdin = tmp_path / "in.raw"
    stdin.write_bytes(_speech_pcm(speech_dir))
    out, err = tmp_path / "out.raw", tmp_path / "err.txt"
    with RealtimeServer(reply_text="Stopping now.") as srv:
        with open(stdin, "rb") as i, open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.run(
                [sys.executable, "-m", "rtedge", "run", "--url", srv.url, "--mic", "raw:-", "--speaker",
                 "raw:-", "--log-format", log_format, "--max-seconds", "60"],
                stdin=i, stdout=o, stderr=e, env=_env(), cwd=REPO, timeout=90)
    pcm, text = out.read_bytes(), err.read_text()
    assert proc.returncode == EXIT_OK, text
    # the PCM check: whole samples, no line of text anywhere in it, and the answer's audio is there
    assert len(pcm) % 2 == 0 and len(pcm) > 0
    for needle in (b"assistant", b"turn 1", b"summary", b"rtedge", b"stats", b'{"ts"'):
        assert needle not in pcm, (needle, pcm.find(needle))
    audio = np.frombuffer(pcm, dtype="<i2")
    assert np.abs(audio.astype(np.int32)).max() > 1000
    # every human line went to stderr, in this format
    assert "assistant: Stopping now." in text and "turn 1: completed" in text and "summary: 1 turn(s)" in text
    # the run ended because stdin ended, not at --max-seconds
    assert "the input ended" in text and "max_seconds" not in text


def test_wav_mic_ends_the_run_after_the_answer(tmp_path, speech_dir, capsys):
    out = tmp_path / "reply.wav"
    with RealtimeServer(reply_text="Stopping.", realtime=False) as srv:
        code = main(["run", "--url", srv.url, "--mic", f"wav:{speech_dir / 'stop.wav'}", "--speaker",
                     f"wav:{out}", "--max-seconds", "60", "--log-level", "info"])
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    assert "turn 1: completed" in captured.out
    assert "stopping (the input ended)" in captured.err
    seconds = len(read_wav(out)[0]) / 24000
    assert seconds < 50  # the file stopped growing when the run ended (it grew for 15 min before)


def test_loop_repeats_the_file_until_stopped(tmp_path, speech_dir, capsys):
    with RealtimeServer(reply_text="Again.", realtime=False) as srv:
        code = main(["run", "--url", srv.url, "--input", str(speech_dir / "stop.wav"), "--loop", "--speaker",
                     "null", "--max-seconds", "6", "--log-level", "info"])
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    assert "stopping (max_seconds)" in captured.err
    assert "turn 2: completed" in captured.out  # the phrase came round again


def test_loop_refuses_an_input_that_cannot_loop(capsys):
    assert main(["run", "--url", "ws://127.0.0.1:9/v1/realtime", "--mic", "raw:-", "--loop",
                 "--speaker", "null"]) == EXIT_CONFIG
    assert "--loop needs a WAV input" in capsys.readouterr().err


@pytest.mark.parametrize("paced", [False, True])
@pytest.mark.parametrize("where", ["directory", "missing_folder"])
def test_unwritable_output_fails_before_connecting_with_one_line(tmp_path, speech_dir, paced, where):
    target = {"directory": tmp_path, "missing_folder": tmp_path / "no" / "such" / "out.wav"}[where]
    with RealtimeServer(realtime=False) as srv:
        args = ["run", "--url", srv.url, "--input", str(speech_dir / "stop.wav"), "--output", str(target)]
        proc = subprocess.run([sys.executable, "-m", "rtedge", *args, *([] if paced else ["--fast"])],
                              capture_output=True, text=True, env=_env(), cwd=REPO, timeout=60)
        connections = srv.connection_count
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("rtedge: error: ") and "cannot write" in lines[0], lines
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr
    assert connections == 0
    assert not (tmp_path / "no").exists()


def test_a_missing_sound_card_fails_before_a_session_is_opened(capsys):
    with RealtimeServer() as srv:
        code = main(["run", "--url", srv.url, "--mic", "no-such-card-xyz", "--speaker", "null"])
        connections = srv.connection_count
    assert code == EXIT_AUDIO
    assert connections == 0  # no (billed) session for a kiosk whose microphone is missing
    assert "no audio input device named 'no-such-card-xyz'" in capsys.readouterr().err


def test_writability_check_leaves_no_file_behind(tmp_path):
    from rtedge.audio.wavio import check_writable

    target = tmp_path / "new.wav"
    check_writable(target)
    assert not target.exists()
    target.write_bytes(b"keep")
    check_writable(target)
    assert target.read_bytes() == b"keep"


def test_wav_sink_output_is_a_valid_wav_after_an_input_ended_run(tmp_path, speech_dir):
    out = tmp_path / "o.wav"
    with RealtimeServer(reply_text="Fine.", realtime=False) as srv:
        assert main(["run", "--url", srv.url, "--input", str(speech_dir / "stop.wav"), "--output", str(out),
                     "--max-seconds", "60"]) == EXIT_OK
    with wave.open(str(out)) as w:
        assert w.getframerate() == 24000 and w.getnframes() > 0


def test_a_second_stop_signal_ends_the_command_at_once():
    """A stop that waits on a server (an utterance's transcript, a connection being opened) could be ended
    only by SIGKILL: later signals set an event already set.  The second one raises KeyboardInterrupt on
    the main thread (main() exits 130)."""
    import os
    import signal
    import threading

    from rtedge.app.signals import on_stop_signals

    before = signal.getsignal(signal.SIGINT)  # (SIG_IGN under nohup, the default handler otherwise)
    stop = threading.Event()
    restore = on_stop_signals(stop)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
        with pytest.raises(KeyboardInterrupt, match="stopped twice"):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs on this thread, between bytecodes
                threading.Event().wait(0.005)
    finally:
        restore()
    assert signal.getsignal(signal.SIGINT) is before  # restored
