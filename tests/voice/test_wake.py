"""Wake word: the detector on synthesized speech, custom models, the missing extra, and
``rtedge run --wake-word`` against the local server (one session per wake phrase, complete commands).

Smaller sets than ``benchmarks/wake.py`` (288 utterances, 1 h of non-wake speech).  Needs the ``wake``
extra (pymicro-wakeword) and espeak-ng/sox; skipped without them.
"""

from __future__ import annotations

import importlib
import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from rtedge.voice import wake
from rtedge.app.exit_codes import EXIT_CONFIG, EXIT_OK
from rtedge.audio.codec import Resampler
from rtedge.app.cli import main
from rtedge.errors import ConfigError
from rtedge.testing import RealtimeServer, room, speech
from rtedge.audio.wavio import read_wav

pytestmark = pytest.mark.usefixtures("no_thread_leak")
needs_wake = pytest.mark.skipif(not wake.available(), reason="the wake extra (pymicro-wakeword) is not installed")
needs_tts = pytest.mark.skipif(not speech.available(), reason="espeak-ng and sox are not installed")
RATE = 16000
VOICES = ("en-us", "en-us+m3", "en-gb-x-rp", "en-029")


def _write_wav(path: Path, x: np.ndarray) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(RATE)
        f.writeframes(x.astype("<i2").tobytes())


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[1:] /= np.sqrt(np.arange(1, len(spec)))
    return np.fft.irfft(spec, n)


def _noisy(x: np.ndarray, rng: np.random.Generator, snr: float) -> np.ndarray:
    level = room.level_dbfs(x[np.abs(x) > 300])
    pad = np.concatenate([np.zeros(RATE // 2), x, np.zeros(RATE)])
    return room.to_int16(pad + room.scale_to(_pink(len(pad), rng), level - snr))


def _detections(det: wake.WakeWordDetector, x: np.ndarray) -> list[int]:
    det.reset()
    return [at for i in range(0, len(x), 320) for at in det.process(x[i:i + 320])]


def test_without_the_extra_the_error_is_one_line(monkeypatch):
    real = importlib.import_module

    def fake(name, *args):
        if name == "pymicro_wakeword":
            raise ImportError("No module named 'pymicro_wakeword'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    assert not wake.available()
    with pytest.raises(ConfigError) as err:
        wake.WakeWordDetector("okay_nabu")
    assert "\n" not in str(err.value) and "rtedge[wake]" in str(err.value)


def test_cli_without_the_extra_exits_2_with_one_line(monkeypatch, tmp_path, capsys):
    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", lambda name, *a: (_ for _ in ()).throw(
        ImportError(name)) if name == "pymicro_wakeword" else real(name, *a))
    wav = tmp_path / "x.wav"
    _write_wav(wav, np.zeros(RATE, np.int16))
    with RealtimeServer() as srv:
        code = main(["run", "--url", srv.url, "--wake-word", "okay_nabu", "--input", str(wav),
                     "--speaker", "null"])
        assert srv.connection_count == 0
    err = capsys.readouterr().err
    assert code == EXIT_CONFIG
    assert len([line for line in err.splitlines() if "rtedge[wake]" in line]) == 1


@needs_wake
def test_unknown_names_and_missing_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="one of"):
        wake.WakeWordDetector("hey_computer")
    with pytest.raises(ConfigError, match="no such file"):
        wake.WakeWordDetector(str(tmp_path / "mine.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": "missing.tflite", "wake_word": "x"}')
    with pytest.raises(ConfigError, match="cannot be loaded"):
        wake.WakeWordDetector(str(bad))
    bad.write_text('{"wake_word": "x"}')  # not a model's JSON: it said "cannot be loaded: 'micro'"
    with pytest.raises(ConfigError, match="is it a microWakeWord model's JSON"):
        wake.WakeWordDetector(str(bad))
    with pytest.raises(ConfigError):
        wake.WakeWordDetector("okay_nabu", cutoff=1.5)


@needs_wake
@needs_tts
def test_a_custom_model_by_path_detects_its_phrase(tmp_path):
    builtin = Path(importlib.import_module("pymicro_wakeword").__file__).parent / "models"
    shutil.copy(builtin / "okay_nabu.tflite", tmp_path / "kiosk.tflite")
    config = (builtin / "okay_nabu.json").read_text().replace("okay_nabu.tflite", "kiosk.tflite")
    (tmp_path / "kiosk.json").write_text(config.replace('"Okay Nabu"', '"Okay Kiosk"'))
    det = wake.WakeWordDetector(str(tmp_path / "kiosk.json"))
    assert det.phrase == "Okay Kiosk"
    x = np.concatenate([np.zeros(RATE // 2, np.int16), speech.synthesize("okay nabu"), np.zeros(RATE, np.int16)])
    assert len(_detections(det, x)) == 1


@needs_wake
@needs_tts
@pytest.mark.parametrize("model, phrase", [("okay_nabu", "okay nabu"), ("alexa", "alexa")])
def test_detection_on_noisy_synthesized_utterances_and_none_on_other_speech(model, phrase):
    det, rng = wake.WakeWordDetector(model), np.random.default_rng(5)
    utterances = [(v, s, p) for v in VOICES for s in (140, 180) for p in (40, 60)]
    hits = sum(bool(_detections(det, _noisy(speech.synthesize(phrase, voice=v, speed=s, pitch=p), rng,
                                                  10 + 10 * rng.random())))
               for v, s, p in utterances)
    assert hits >= len(utterances) - 1, f"{hits}/{len(utterances)}"
    other = speech.answer(90.0, seed=8)
    other = _noisy(other, rng, 15.0)
    assert _detections(det, other) == []


@needs_wake
@needs_tts
def test_detector_at_another_mic_rate_reports_positions_at_that_rate():
    x16 = np.concatenate([np.zeros(RATE, np.int16), speech.synthesize("okay nabu"), np.zeros(RATE, np.int16)])
    rs = Resampler(RATE, 48000)
    x48 = np.concatenate([rs.process(x16), rs.flush()])
    at16 = _detections(wake.WakeWordDetector("okay_nabu"), x16)
    at48 = _detections(wake.WakeWordDetector("okay_nabu", rate=48000), x48)
    assert len(at16) == len(at48) == 1
    assert abs(at48[0] / 48000 - at16[0] / RATE) < 0.05


class _Commands:
    """The local server's transcript of a committed user turn: the command's text when the whole
    command waveform (its first and its last 250 ms) is in the audio, else ``[incomplete]``."""

    def __init__(self, commands: dict[str, np.ndarray]) -> None:
        self.commands, self.heard = commands, []

    def __call__(self, audio: np.ndarray, rate: int) -> str:
        for text, cmd in self.commands.items():
            rs = Resampler(RATE, rate)
            ref = np.concatenate([rs.process(cmd), rs.flush()])[round(rs.delay):].astype(np.float64)
            voiced = np.nonzero(np.abs(ref) > 1000)[0]
            n = rate // 4
            parts = (ref[voiced[0]:voiced[0] + n], ref[voiced[-1] - n:voiced[-1]])
            if all(_found(part, audio.astype(np.float64)) for part in parts):
                self.heard.append(text)
                return text
        self.heard.append("[incomplete]")
        return "[incomplete]"


def _found(part: np.ndarray, audio: np.ndarray) -> bool:
    if len(audio) < len(part):
        return False
    corr = np.correlate(audio, part, mode="valid")
    energy = np.sqrt(np.convolve(audio ** 2, np.ones(len(part)), mode="valid") * np.sum(part ** 2))
    return bool(np.max(corr / np.maximum(energy, 1e-9)) > 0.8)


@needs_wake
@needs_tts
@pytest.mark.parametrize("keep_warm", [False, True])
def test_cli_opens_one_session_per_wake_phrase_with_complete_commands(tmp_path, speech_dir, capsys,
                                                                      keep_warm):
    cmd1, _ = read_wav(speech_dir / "turn_on_the_kitchen_lights.wav")
    cmd2, _ = read_wav(speech_dir / "whats_the_weather_tomorrow.wav")
    phrase = speech.synthesize("okay nabu")
    quiet = np.zeros(RATE * 6, np.int16)
    # the second command follows the wake phrase with no pause at all (the fixture's lead silence cut)
    cmd2 = cmd2[max(0, int(np.nonzero(np.abs(cmd2) > 300)[0][0]) - RATE // 100):]
    end = int(np.nonzero(np.abs(phrase) > 300)[0][-1]) + 1
    x = np.concatenate([quiet[:RATE], phrase, quiet[:RATE // 4], cmd1, quiet, phrase[:end], cmd2, quiet])
    wav = tmp_path / "two.wav"
    _write_wav(wav, x)
    commands = _Commands({"turn on the kitchen lights": cmd1, "what's the weather tomorrow": cmd2})
    with RealtimeServer(input_transcript=commands, reply_text="Okay.") as srv:
        code = main(["run", "--url", srv.url, "--wake-word", "okay_nabu", "--input", str(wav), "--speaker", "null",
                     "--set", "wake.idle_close_s=2", "--set", "session.transcription_model=whisper-1",
                     "--set", "service.stats_interval=1",
                     "--set", f"wake.keep_warm={str(keep_warm).lower()}"])
        assert code == EXIT_OK
        assert srv.connection_count == 2 or keep_warm and srv.connection_count == 3  # (the next one, warm)
    assert commands.heard == ["turn on the kitchen lights", "what's the weather tomorrow"]
    out = capsys.readouterr().out
    assert out.count("wake: session 1 opened") == 1 and "wake: session 2 closed" in out
    # each reported as it was used, not as it was connected (ahead of the wake phrase, with keep_warm)
    said = [line for line in out.splitlines() if line.startswith("wake: ")]
    assert [line for line in said if "opened" in line or "closed" in line or "heard" in line] == [
        "wake: heard the wake word", "wake: session 1 opened", "wake: session 1 closed",
        "wake: heard the wake word", "wake: session 2 opened", "wake: session 2 closed"], said
    # the statistics line every service.stats_interval (a wake run printed none)
    stats = [line for line in out.splitlines() if line.startswith("stats: ")]
    assert len(stats) >= 5, out
    assert re.match(r"stats: 0 wakes, 0 sessions \(0 connects failed\), 0 turns", stats[0]), stats[0]
    last = r"stats: 2 wakes, 2 sessions \(0 connects failed\), [12] turns, [\d.]+ s listened"
    assert re.match(last, stats[-1]), stats[-1]


@needs_wake
@needs_tts
def test_audio_held_while_connecting_is_bounded_by_max_buffer_s(tmp_path, speech_dir, caplog):
    """A connect that outlasts ``max_buffer_s``: the oldest held audio goes (counted and logged), the held
    audio never exceeds the bound, and the session still opens."""
    import logging
    import threading

    import rtedge
    from rtedge.audio.devices import NullSink, WavSource
    from ..conftest import wait_until

    cmd, _ = read_wav(speech_dir / "turn_on_the_kitchen_lights.wav")
    quiet = np.zeros(RATE, np.int16)
    wav = tmp_path / "mic.wav"
    phrase = speech.synthesize("okay nabu")
    _write_wav(wav, np.concatenate([quiet, phrase, quiet[:RATE // 4], cmd, quiet, quiet]))
    mic = WavSource(wav, rate=RATE, realtime=False)  # the whole file at once, then paced silence
    held: list[int] = []
    with RealtimeServer(reply_text="Okay.") as srv:
        def slow_connect() -> rtedge.Client:  # the link is slow: the whole file arrives meanwhile
            assert wait_until(lambda: mic.finished.is_set(), timeout=10)
            with agent._lock:
                held.append(agent._buffer_samples)
            return rtedge.connect(url=srv.url)

        agent = wake.WakeAgent(slow_connect, mic, NullSink(rate=24000), wake="okay_nabu", max_buffer_s=1.0,
                               idle_close_s=1.0)
        runner = threading.Thread(target=agent.run, kwargs={"max_seconds": 20, "until_input_ends": True},
                                  name="test-wake-run", daemon=True)
        with caplog.at_level(logging.WARNING, logger="rtedge"):
            runner.start()
            runner.join(30)
        assert not runner.is_alive()
        assert srv.connection_count == 1
    assert held and 0 < held[0] <= RATE  # never more than max_buffer_s held
    # about 2.7 s after the phrase (the command, 2 s of quiet) could not be held: the oldest went
    assert agent.stats.dropped_seconds > 1.0
    assert agent.stats.buffered_seconds - agent.stats.dropped_seconds <= 1.0 + 0.02
    assert any("dropped" in r.getMessage() and "max_buffer_s" in r.getMessage() for r in caplog.records)


@needs_wake
def test_cli_with_a_wav_microphone_ends_when_the_file_does(tmp_path, speech_dir, capsys):
    """--mic wav:PATH ends the run as --input does (with a wake word it listened until stopped)."""
    cmd, _ = read_wav(speech_dir / "turn_on_the_kitchen_lights.wav")
    wav = tmp_path / "mic.wav"
    _write_wav(wav, np.concatenate([np.zeros(RATE, np.int16), cmd, np.zeros(RATE, np.int16)]))
    with RealtimeServer() as srv:
        code = main(["run", "--url", srv.url, "--wake-word", "okay_nabu", "--mic", f"wav:{wav}",
                     "--speaker", "null", "--max-seconds", "60"])
        assert code == EXIT_OK
    out = capsys.readouterr().out
    listened = re.search(r"over ([\d.]+) s listened", out)
    assert listened and float(listened[1]) < 10, out  # the file's length, not the 60 s bound


@needs_wake
def test_cli_without_the_phrase_opens_no_session(tmp_path, speech_dir, capsys):
    cmd, _ = read_wav(speech_dir / "turn_on_the_kitchen_lights.wav")
    wav = tmp_path / "none.wav"
    _write_wav(wav, np.concatenate([np.zeros(RATE, np.int16), cmd, np.zeros(RATE * 2, np.int16)]))
    with RealtimeServer() as srv:
        code = main(["run", "--url", srv.url, "--wake-word", "okay_nabu", "--input", str(wav), "--speaker", "null"])
        assert code == EXIT_OK
        assert srv.connection_count == 0
    out = capsys.readouterr().out
    assert "0 session(s)" in out
    # with no session, the detector heard the whole file; under 30 s the figure is flagged as warm-up
    listened = re.search(r"detector [\d.]+ % of a core over ([\d.]+) s listened \(a short run", out)
    assert listened and abs(float(listened[1]) - (3 * RATE + len(cmd)) / RATE) <= 0.05, out


def _phrase_then_command(tmp_path: Path, speech_dir: Path) -> Path:
    cmd, _ = read_wav(speech_dir / "turn_on_the_kitchen_lights.wav")
    quiet = np.zeros(RATE * 3, np.int16)
    wav = tmp_path / "wake.wav"
    phrase = speech.synthesize("okay nabu")
    _write_wav(wav, np.concatenate([quiet[:RATE], phrase, quiet[:RATE // 4], cmd, quiet]))
    return wav


@needs_wake
@needs_tts
def test_cli_wake_run_keeps_the_plain_runs_provider_service_and_settings(tmp_path, speech_dir, capsys,
                                                                         monkeypatch):
    """The wake-word run skipped what the plain run does: it spoke the OpenAI dialect to any provider (a
    DashScope key went to api.openai.com), sent systemd nothing (a Type=notify unit timed out), died on
    SIGHUP (systemctl reload), printed transcripts with logging.transcripts off and wrote no usage log."""
    import json
    import os
    import signal
    import threading

    from ..conftest import wait_until
    from ..notify_listener import NotifyListener

    wav = _phrase_then_command(tmp_path, speech_dir)
    listener = NotifyListener(tmp_path, abstract=False)
    monkeypatch.setenv("NOTIFY_SOCKET", listener.env_value)
    usage = tmp_path / "usage.jsonl"
    try:
        with RealtimeServer(dialect="qwen", reply_text="Okay.") as srv:
            before = signal.getsignal(signal.SIGHUP)  # (SIG_IGN under nohup)

            def hang_up() -> None:  # once the run's handler is in (the default action ends the process)
                if wait_until(lambda: signal.getsignal(signal.SIGHUP) is not before, timeout=10):
                    os.kill(os.getpid(), signal.SIGHUP)

            hangup = threading.Thread(target=hang_up, name="test-sighup", daemon=True)
            hangup.start()
            code = main(["run", "--provider", "qwen", "--url", srv.url, "--wake-word", "okay_nabu", "--input",
                         str(wav), "--speaker", "null", "--set", "wake.idle_close_s=2", "--set",
                         "logging.transcripts=false", "--set", f"service.usage_log={usage}"])
            hangup.join()
            assert code == EXIT_OK
            assert srv.connection_count == 1
            assert not [e for e in srv.sent if e["type"] == "error"]  # the session.update was DashScope's
        listener.wait_for("READY=1", timeout=1)
        listener.wait_for("STOPPING=1", timeout=1)
    finally:
        listener.close()
    out, err = capsys.readouterr()
    assert "wake: session 1 opened" in out and "turn 1:" in out
    assert "you: " not in out + err and "assistant: " not in out + err
    assert "SIGHUP: settings cannot be re-read" in out + err
    lines = [json.loads(line) for line in usage.read_text().splitlines()]
    assert [(line["kind"], line["provider"]) for line in lines] == [("response", "qwen"), ("session", "qwen")]
    assert lines[1]["responses"] == 1 and lines[1]["usage"] == lines[0]["usage"]


@needs_wake
@needs_tts
def test_cli_wake_run_ends_with_exit_3_when_the_key_is_refused(tmp_path, speech_dir, capsys):
    """A refused key refuses every later wake phrase too: the run ends with the plain run's exit code (it
    logged "could not connect" and went on listening, then exited 0)."""
    from rtedge.app.exit_codes import EXIT_AUTH

    wav = _phrase_then_command(tmp_path, speech_dir)
    key = tmp_path / "key"
    key.write_text("sk-wrong\n")
    with RealtimeServer(api_key="sk-right") as srv:
        code = main(["run", "--url", srv.url, "--wake-word", "okay_nabu", "--mic", f"wav:{wav}", "--loop",
                     "--speaker", "null", "--set", f"provider.api_key_file={key}", "--max-seconds", "60"])
    assert code == EXIT_AUTH
    out = capsys.readouterr().out
    listened = re.search(r"over ([\d.]+) s listened", out)
    assert listened and float(listened[1]) < 10, out  # ended at the first refusal, not at --max-seconds
    assert "wake: heard the wake word" in out and "opened" not in out  # it said "session 1 opened"
    assert "closed" not in out  # WakeAgent: a connect that fails calls neither on_open nor on_close
