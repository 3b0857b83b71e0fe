"""The command line: demo, run, serve, and one-line errors with distinct exit codes."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
import wave

import numpy as np
import pytest

from rtedge.app.cli import EXIT_AUTH, EXIT_CONFIG, EXIT_CONNECT, EXIT_OK, main
from rtedge.testing import RealtimeServer
from rtedge.testing._base import time_scale
from rtedge.audio.wavio import read_wav

pytestmark = pytest.mark.usefixtures("no_thread_leak")


def _write_wav(path, samples: np.ndarray, rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def test_demo_completes_a_spoken_turn(tmp_path, capsys):
    out = tmp_path / "reply.wav"
    assert main(["demo", "--fast", "--output", str(out)]) == EXIT_OK
    text = capsys.readouterr().out
    assert "you: Turn on the kitchen lights, please." in text
    assert "assistant: Okay. The kitchen lights are on." in text
    assert "turn 1: completed, latency" in text
    assert "summary: 1 turn(s)" in text
    reply, rate = read_wav(out)
    assert rate == 24000 and len(reply) / rate > 2.0  # the bundled reply, about 2.9 s
    assert np.abs(reply.astype(np.int32)).max() > 1000


def test_run_streams_a_wav_at_any_rate(tmp_path, capsys, speech_dir):
    samples, rate = read_wav(speech_dir / "stop.wav")
    # resample to 44.1 kHz stereo to prove any input rate and channel count work
    n = int(len(samples) * 44100 / rate)
    x = np.interp(np.arange(n) * rate / 44100, np.arange(len(samples)), samples).astype(np.int16)
    src = tmp_path / "in.wav"
    _write_wav(src, np.repeat(x, 2), 44100, channels=2)
    out = tmp_path / "out.wav"
    with RealtimeServer(realtime=False, reply_text="Stopping.") as srv:
        code = main(["run", "--url", srv.url, "--input", str(src), "--output", str(out), "--fast"])
    text = capsys.readouterr().out
    assert code == EXIT_OK, text
    assert "assistant: Stopping." in text and "summary: 1 turn(s)" in text
    assert read_wav(out)[1] == 24000


def test_what_the_server_says_stays_on_its_own_line(tmp_path, capsys, speech_dir):
    """A reply or transcript holding line breaks printed lines that looked like rtedge's own."""
    with RealtimeServer(realtime=False, reply_text="Okay.\nrtedge: error: FAKE\r<0>x\u2028y") as srv:
        code = main(["run", "--url", srv.url, "--input", str(speech_dir / "stop.wav"), "--fast"])
    text = capsys.readouterr().out
    assert code == EXIT_OK, text
    assert "assistant: Okay. rtedge: error: FAKE <0>x y" in text.splitlines(), text
    assert not any(line.startswith(("rtedge:", "<0>", "y")) for line in text.splitlines()), text


@pytest.mark.parametrize("how", ["flag", "config"])
def test_run_manual_turn_without_server_vad(tmp_path, capsys, how):
    """--fast commits the file's turn and asks for the answer when the session has no turn detection,
    whether --manual or the settings file (turn_detection = "none") said so: the file's setting alone
    used to commit nothing and wait for --max-seconds."""
    src = tmp_path / "tone.wav"
    t = np.arange(8000) / 16000
    _write_wav(src, (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16), 16000)
    conf = tmp_path / "rtedge.toml"
    conf.write_text('[session]\nturn_detection = "none"\n[service]\nmax_seconds = 20\n')
    manual = ["--manual"] if how == "flag" else ["--config", str(conf)]
    with RealtimeServer(realtime=False) as srv:
        code = main(["run", "--url", srv.url, "--input", str(src), "--fast", *manual])
        kinds = [e["type"] for e in srv.received]
    assert code == EXIT_OK
    assert kinds[0] == "session.update" and kinds[-2:] == ["input_audio_buffer.commit", "response.create"]
    assert "turn 1: completed" in capsys.readouterr().out


@pytest.mark.parametrize("mode", [["--fast"], [], ["--fast", "--manual"], ["--manual"]])
def test_run_with_a_transcription_provider_ends_with_the_transcript(tmp_path, capsys, speech_dir, mode):
    """A transcription session sends no answer: each turn ends with its transcript.  run --fast waited for
    an answer until --max-seconds (exit 5), a paced run ignored the end of its input until then, and with
    --manual the agent asked for a response the dialect cannot create and stopped after the first turn."""
    samples, rate = read_wav(speech_dir / "stop.wav")
    src = tmp_path / "two.wav"  # two utterances, a second of silence apart
    _write_wav(src, np.concatenate([samples, np.zeros(rate, np.int16), samples]), rate)
    with RealtimeServer(realtime=False) as srv:
        code = main(["run", "--provider", "openai-transcription", "--url", srv.url, "--input", str(src),
                     "--output", str(tmp_path / "o.wav"), "--max-seconds", "30", *mode])
        kinds = [e["type"] for e in srv.received]
    text, err = capsys.readouterr()
    assert code == EXIT_OK, text + err
    turns = 1 if mode == ["--fast", "--manual"] else 2  # one commit at the end of the file
    assert text.count("you: ") == turns and f"turn {turns}: completed" in text, text
    assert f"summary: {turns} turn(s)" in text, text
    if "--fast" not in mode:
        assert "stopping (the input ended)" in err and "max_seconds" not in err, err
    assert "response.create" not in kinds


def test_transcripts_that_arrive_after_the_next_turn_began_are_matched_by_item(tmp_path, capsys, speech_dir):
    """Both utterances are committed before the first transcript arrives (the transcriber lags by 3 s,
    times RTEDGE_TEST_TIME_SCALE; the input is sent as fast as the link takes it):
    each transcript ends its own turn, matched by item id.  The tracker used to merge the second turn into
    the first still waiting for its transcript and reported 1 turn for 2 transcripts."""
    samples, rate = read_wav(speech_dir / "stop.wav")
    src = tmp_path / "two.wav"
    _write_wav(src, np.concatenate([samples, np.zeros(rate, np.int16), samples]), rate)
    with RealtimeServer(realtime=False, transcript_delay=3.0 * time_scale()) as srv:
        code = main(["run", "--provider", "openai-transcription", "--url", srv.url, "--input", str(src),
                     "--max-seconds", "30", "--fast"])
        committed = [e for e in srv.sent if e["type"] == "input_audio_buffer.committed"]
        transcribed = [e for e in srv.sent if e["type"].endswith("input_audio_transcription.completed")]
    text, err = capsys.readouterr()
    assert code == EXIT_OK, text + err
    assert len(committed) == len(transcribed) == 2
    assert srv.sent.index(committed[1]) < srv.sent.index(transcribed[0])  # the lag this test is about
    assert "turn 1: completed" in text and "turn 2: completed" in text, text
    assert "summary: 2 turn(s)" in text, text


def test_run_manual_turns_on_a_paced_input_are_ended_by_the_local_vad(tmp_path, capsys, speech_dir):
    """--manual (turn_detection none) without --fast: the run used to send the speech, commit nothing and
    report 0 turns, exit 0; the agent now ends the turn on the local VAD and the answer comes."""
    samples, rate = read_wav(speech_dir / "stop.wav")
    src = tmp_path / "in.wav"
    _write_wav(src, samples, rate)  # the file ends soon after the speech: one turn all the same
    with RealtimeServer(reply_text="Stopping.") as srv:
        code = main(["run", "--url", srv.url, "--input", str(src), "--output", str(tmp_path / "o.wav"),
                     "--manual"])
        kinds = [e["type"] for e in srv.received]
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert kinds.count("input_audio_buffer.commit") == 1 and kinds.count("response.create") == 1
    assert "assistant: Stopping." in out and "summary: 1 turn(s)" in out


@pytest.mark.parametrize("case", ["missing", "not_wav", "bad_url", "refused", "8bit", "fast_loop"])
def test_bad_input_gives_one_line_error(tmp_path, capsys, case):
    wav = tmp_path / "x.wav"
    _write_wav(wav, np.zeros(1600, np.int16), 16000)
    args = {"missing": ["--input", str(tmp_path / "nope.wav"), "--url", "ws://127.0.0.1:9/v1/realtime"],
            "not_wav": ["--input", __file__, "--url", "ws://127.0.0.1:9/v1/realtime"],
            "bad_url": ["--input", str(wav), "--url", "http://example.com/realtime"],
            "refused": ["--input", str(wav), "--speaker", "null", "--url", "ws://127.0.0.1:9/v1/realtime"],
            "8bit": ["--input", str(tmp_path / "8.wav"), "--url", "ws://127.0.0.1:9/v1/realtime"],
            # --loop was ignored with --fast (one turn, then exit 0)
            "fast_loop": ["--input", str(wav), "--fast", "--loop", "--url", "ws://127.0.0.1:9/v1/realtime"]}[case]
    if case == "8bit":  # an ADPCM file (8-bit PCM is read): the stdlib writes PCM only, so by hand
        fmt = struct.pack("<HHIIHH", 2, 1, 8000, 4000, 256, 4)
        body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 256) + b"\0" * 256
        (tmp_path / "8.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    code = main(["run", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == (EXIT_CONNECT if case == "refused" else EXIT_CONFIG)
    assert len(err) == 1 and err[0].startswith("rtedge: error: ") and "Traceback" not in err[0]


@pytest.mark.parametrize("mode", [["--fast"], [], ["demo"]])
def test_a_wav_at_a_rate_rtedge_does_not_convert_is_refused_before_connecting(tmp_path, capsys, mode):
    """Named with its file and what to do, exit 2, before a (billed) session is opened: --fast used to
    connect first and fail on the first append, without the file's name."""
    wav = tmp_path / "hifi.wav"
    _write_wav(wav, np.zeros(9600, np.int16), 96000)
    if mode == ["demo"]:
        code = main(["demo", "--input", str(wav)])
    else:
        code = main(["run", "--input", str(wav), "--output", str(tmp_path / "out.wav"), "--url",
                     "ws://127.0.0.1:9/v1/realtime", *mode])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_CONFIG
    assert len(err) == 1 and err[0].startswith(f"rtedge: error: {wav}: ") and "96000 Hz" in err[0], err


@pytest.mark.parametrize("command", ["run", "check-config"])
def test_credentials_in_the_url_are_not_shown(tmp_path, capsys, command):
    """A URL may carry a secret before the host (``user:password@``) or in its query: neither is printed,
    by the connect error of ``run`` nor by ``check-config``."""
    wav = tmp_path / "x.wav"
    _write_wav(wav, np.zeros(1600, np.int16), 16000)
    url = "ws://kiosk:pw-SEKRIT-1@127.0.0.1:9/v1/realtime?api-key=sk-SEKRIT-2"
    args = ["--input", str(wav), "--speaker", "null"] if command == "run" else []
    code = main([command, "--url", url, *args])
    out, err = capsys.readouterr()
    assert code == (EXIT_CONNECT if command == "run" else EXIT_OK)
    assert "SEKRIT" not in out + err
    assert "ws://***@127.0.0.1:9/v1/realtime?api-key=***" in out + err


def test_bad_key_exits_3_without_leaking_it(tmp_path, capsys):
    key = tmp_path / "key"
    key.write_text("sk-wrong-1234\n")
    key.chmod(0o600)
    wav = tmp_path / "x.wav"
    _write_wav(wav, np.zeros(1600, np.int16), 16000)
    with RealtimeServer(api_key="sk-right") as srv:
        code = main(["run", "--url", srv.url, "--api-key-file", str(key), "--input", str(wav),
                     "--speaker", "null"])
    captured = capsys.readouterr()
    assert code == EXIT_AUTH
    assert "401" in captured.err and "sk-wrong" not in captured.err + captured.out


def test_serve_prints_its_url_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "rtedge", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert line.startswith("rtedge serve: listening on ws://127.0.0.1:")
        url = line.split()[-1]
        import rtedge

        with rtedge.connect(url=url) as c:
            c.send_text("hi")
            assert c.wait_for("response.done", timeout=10).status == "completed"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_version_and_help(capsys):
    assert main(["version"]) == EXIT_OK
    assert "codec backend" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    assert "examples:" in capsys.readouterr().out


@pytest.mark.parametrize("barge_in, sent", [("off", False), ("server", None), ("local", None)])
def test_barge_in_off_tells_the_servers_vad_not_to_cancel_answers_either(tmp_path, barge_in, sent):
    """``--barge-in off`` said "never", but the server's VAD still cut answers short (interrupt_response
    defaults to true), and nothing in the settings could change that."""
    src = tmp_path / "tone.wav"
    _write_wav(src, (8000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.int16), 16000)
    with RealtimeServer(realtime=False) as srv:
        assert main(["run", "--url", srv.url, "--input", str(src), "--fast", "--barge-in", barge_in]) == EXIT_OK
        update = next(e for e in srv.received if e["type"] == "session.update")
    assert update["session"]["audio"]["input"]["turn_detection"].get("interrupt_response") is sent


def test_a_stop_while_the_server_hears_speech_ends_the_wait_for_the_answer(speech_dir):
    """Ctrl-C during `rtedge demo` (or `run --fast`) while the phrase was being spoken: the audio stopped
    mid-speech, the server never heard the speech end, and the run waited out max_seconds (120 s) before
    reporting the whole file as sent.  The stop now ends the wait too, and the report counts what was sent."""
    from rtedge.app.runner import stream_wav
    import rtedge

    samples, rate = read_wav(speech_dir / "turn_on_the_kitchen_lights.wav")
    stop = threading.Event()
    with RealtimeServer() as srv, rtedge.connect(url=srv.url) as client:
        def stop_once_speech_started() -> None:
            srv.wait_for_sent("input_audio_buffer.speech_started", timeout=10)
            stop.set()

        stopper = threading.Thread(target=stop_once_speech_started, name="test-stopper", daemon=True)
        stopper.start()
        t0 = time.monotonic()
        report = stream_wav(client, samples, rate, max_seconds=60, echo=lambda line: None, stop=stop)
        took = time.monotonic() - t0
        stopper.join(5)
    assert took < 20, took  # far from the 60 s bound
    assert 0 < report.input_seconds < len(samples) / rate
