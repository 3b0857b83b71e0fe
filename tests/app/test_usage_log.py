"""UsageLog: one JSON line per response and a session total, and ``service.usage_log`` in ``rtedge run``.

The scenario tests (tests/providers/test_scenarios.py) check the lines against every dialect's usage;
these cover the log itself: synthetic responses, closing, bad paths, and the command line.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

import rtedge
from rtedge.app.cli import EXIT_CONFIG, EXIT_OK, main
from rtedge.app.settings_load import load_config
from rtedge.protocol.usage import Usage
from rtedge.testing import RealtimeServer
from rtedge.transport.backoff import Backoff
from rtedge.app.usage_log import UsageLog, usage_fields

pytestmark = [pytest.mark.usefixtures("no_thread_leak"), pytest.mark.timeout(60)]

FIELDS = ["input_tokens", "output_tokens", "total_tokens", "input_text_tokens", "input_audio_tokens",
          "input_image_tokens", "cached_tokens", "output_text_tokens", "output_audio_tokens"]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lines_fields_and_append_mode(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    path.write_text('{"kind": "earlier"}\n')
    with RealtimeServer(realtime=False, seed=1) as srv, rtedge.connect(url=srv.url) as client:
        log = UsageLog(client, path, model="override")
        assert "0 line(s)" in repr(log) and log.model == "override"
        for text in ("One.", "Two."):
            client.send_text(text)
            client.wait_for("response.done", timeout=10)
        log.close()
        log.close()  # idempotent
        assert log.closed and "closed" in repr(log)
        client.send_text("Three.")  # after close: not logged
        client.wait_for("response.done", timeout=10)
    lines = _lines(path)
    assert [line["kind"] for line in lines] == ["earlier", "response", "response", "session"]
    first, second, total = lines[1:]
    assert list(first["usage"]) == FIELDS and first["model"] == "override" and first["provider"] == "openai"
    assert first["ts"].endswith("Z") and first["ts"] <= second["ts"] <= total["ts"]
    assert first["raw_usage"]["input_token_details"]["cached_tokens"] == first["usage"]["cached_tokens"]
    summed = {k: first["usage"][k] + second["usage"][k] for k in FIELDS}
    assert total["usage"] == summed and total["responses"] == 2 and log.lines == 3
    assert log.usage == Usage(**summed, responses=2)
    assert total["seconds"] >= 0 and total["started"] <= first["ts"]


def test_a_response_lost_with_the_connection_is_logged_as_synthetic(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    with RealtimeServer(reply_text="A long answer that is still streaming. " * 5, seed=2) as srv, \
            rtedge.connect(url=srv.url, reconnect=Backoff(initial=0.05, max=0.2, jitter=0)) as client, \
            UsageLog(client, path):
        client.send_text("Talk.")
        srv.wait_for_sent("response.output_audio.delta")
        srv.drop_connections()
        lost = client.wait_for("response.done", timeout=10)
        assert lost.raw.get("rtedge_synthetic")
        client.wait_for("rtedge.reconnected", timeout=10)
        client.close()
    response, total = _lines(path)
    assert response["synthetic"] is True and response["status"] == "cancelled"
    assert response["raw_usage"] is None and set(response["usage"].values()) == {0}
    assert total["responses"] == 0 and len(total["session_ids"]) == 2  # the provider counted nothing


def test_unwritable_path_and_usage_fields(tmp_path: Path) -> None:
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url) as client:
        with pytest.raises(OSError):
            UsageLog(client, tmp_path / "missing" / "usage.jsonl")
    assert usage_fields(Usage(input_tokens=3, cached_tokens=1, responses=1)) == {
        **dict.fromkeys(FIELDS, 0), "input_tokens": 3, "cached_tokens": 1}


def _tone_wav(path: Path) -> None:
    t = np.arange(16000) / 16000
    samples = np.concatenate([(np.sin(2 * np.pi * 220 * t) * 8000), np.zeros(8000)]).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "service"])
def test_rtedge_run_writes_the_usage_log(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         fast: bool) -> None:
    wav, path = tmp_path / "in.wav", tmp_path / "usage.jsonl"
    _tone_wav(wav)
    with RealtimeServer(realtime=False, reply_text="Done.") as srv:
        args = ["run", "--url", srv.url, "--input", str(wav), "--output", str(tmp_path / "out.wav"),
                "--set", f"service.usage_log={path}", "--set", "vad.gate=off"]
        code = main(args + (["--fast"] if fast else []))
    out = capsys.readouterr()
    assert code == EXIT_OK, out
    lines = _lines(path)
    assert [line["kind"] for line in lines] == ["response", "session"]
    assert lines[0]["status"] == "completed" and lines[1]["usage"] == lines[0]["usage"]
    assert f"tokens in {lines[1]['usage']['input_tokens']} " in out.out  # the same totals as the summary


def test_rtedge_run_with_an_unwritable_usage_log_is_a_config_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = tmp_path / "in.wav"
    _tone_wav(wav)
    with RealtimeServer(realtime=False) as srv:
        code = main(["run", "--url", srv.url, "--input", str(wav), "--fast",
                     "--set", f"service.usage_log={tmp_path / 'no' / 'usage.jsonl'}"])
        assert srv.connection_count == 0  # refused before a session was opened (and billed) for nothing
    assert code == EXIT_CONFIG
    assert "service.usage_log (--set service.usage_log): cannot open" in capsys.readouterr().err
    config = load_config(None, {"RTEDGE_SERVICE_USAGE_LOG": "/srv/u.jsonl"}, {})
    assert config.service.usage_log == "/srv/u.jsonl"


def test_input_transcription_is_logged_apart_from_the_session_total(tmp_path: Path, speech_dir: Path) -> None:
    """OpenAI bills the transcription of the user's audio apart and reports it on
    ``...input_audio_transcription.completed``; it was not logged, so the invoice had a line the log
    lacked."""
    from rtedge.audio.wavio import read_wav

    samples, rate = read_wav(speech_dir / "turn_on_the_kitchen_lights.wav")
    path = tmp_path / "usage.jsonl"
    session = rtedge.SessionConfig(transcription=rtedge.Transcription(model="gpt-4o-mini-transcribe"))
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url, session=session) as client:
        log = UsageLog(client, path)
        client.append_audio(np.concatenate([samples, np.zeros(rate, np.int16)]), rate=rate)
        done = client.wait_for("conversation.item.input_audio_transcription.completed", timeout=10)
        client.wait_for("response.done", timeout=10)
        log.close()
    lines = _lines(path)
    kinds = [line["kind"] for line in lines]
    assert sorted(kinds[:2]) == ["input_transcription", "response"] and kinds[2:] == ["session"], lines
    heard = next(line for line in lines if line["kind"] == "input_transcription")
    assert heard["item_id"] == done.item_id and heard["raw_usage"] == dict(done.usage)
    assert heard["usage"]["total_tokens"] == done.usage["total_tokens"] > 0
    response = next(line for line in lines if line["kind"] == "response")
    assert lines[-1]["usage"] == response["usage"] and lines[-1]["responses"] == 1  # the responses' total
