"""OpenAI realtime transcription sessions: the ``openai-transcription`` dialect, ``rtedge.Transcriber("openai")``
and ``rtedge transcribe --provider openai``, against the local GA server's transcription sessions.

Every client event rtedge sends validates (strictly: no unknown keys) as openai-python's ``RealtimeClientEvent``,
and every server event of the session as its ``RealtimeServerEvent``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import numpy as np
import pydantic
import pytest

import rtedge
from rtedge.errors import ConfigError, LocalProtocolError, ServerError
from rtedge.protocol import events as ev
from rtedge.protocol.config import SessionConfig, Transcription
from rtedge.protocol.dialects import get_dialect
from rtedge.protocol.session import Session
from rtedge.testing import RealtimeServer
from rtedge.app.transcribe import add_transcribe_parser, cmd_transcribe
from rtedge.voice.transcriber import Transcriber
from rtedge.audio.wavio import WavWriter, read_wav

pytestmark = pytest.mark.usefixtures("no_thread_leak")
realtime = pytest.importorskip("openai.types.realtime")
SERVER_EVENT = pydantic.TypeAdapter(realtime.RealtimeServerEvent)
PHRASES = ("turn_on_the_kitchen_lights", "whats_the_weather_tomorrow")


def _transcript_of(speech_dir):
    """Names the fixture phrase whose loudest 100 ms is found, resampled to 24 kHz, in the audio: the server
    received that speech (correlation, since the audio went through a resampler on the way)."""
    from rtedge.audio.codec import Resampler

    probes = {}
    for name in PHRASES:
        samples, rate = read_wav(speech_dir / f"{name}.wav")
        r = Resampler(rate, 24000)
        up = np.concatenate([r.process(samples), r.flush()]).astype(np.float64)
        energy = np.convolve(up ** 2, np.ones(2400), "valid")
        k = int(np.argmax(energy))
        probes[name.replace("_", " ").replace("whats", "what's")] = up[k:k + 2400]

    def transcript(audio: np.ndarray, rate: int) -> str:
        x = audio.astype(np.float64)
        found = []
        for text, probe in probes.items():
            if len(x) < len(probe):
                continue
            corr = np.correlate(x, probe, "valid") / (np.linalg.norm(probe) ** 2)
            if corr.max() > 0.9:
                found.append(text)
        return " / ".join(found) or "(unknown audio)"

    return transcript


def _two_phrases(speech_dir, path, gap_s=1.5):
    parts = [read_wav(speech_dir / f"{name}.wav")[0] for name in PHRASES]
    _write(path, np.concatenate([parts[0], np.zeros(int(gap_s * 16000), np.int16), parts[1]]))
    return path


def _write(path, samples):
    writer = WavWriter(path, 16000)
    writer.write(samples)
    writer.close()


def _check_all_events(srv: RealtimeServer, validate_client_event) -> None:
    assert srv.received, "nothing was sent"
    for event in srv.received:
        validate_client_event(event)
    for event in srv.sent:
        model = SERVER_EVENT.validate_python(event)
        if event["type"].startswith("session."):
            assert model.session.type == "transcription"


# ------------------------------------------------------------------------------------------------ wire


def test_dialect_url_and_session_shape(validate_client_event):
    dialect = get_dialect("openai-transcription")
    assert dialect.url(None) == "wss://api.openai.com/v1/realtime?intent=transcription"
    assert dialect.url("gpt-4o-transcribe", "ws://127.0.0.1:9/v1/realtime") == \
        "ws://127.0.0.1:9/v1/realtime?intent=transcription"  # the model is not in the URL
    config = dialect.initial_session("gpt-4o-transcribe", SessionConfig(turn_detection=None, noise_reduction="far_field"))
    text = Session(dialect).send(ev.SessionUpdate(session=config))
    validate_client_event(text)
    assert json.loads(text)["session"] == {"type": "transcription", "audio": {"input": {
        "transcription": {"model": "gpt-4o-transcribe"}, "noise_reduction": {"type": "far_field"},
        "turn_detection": None}}}
    assert dialect.initial_session(None, None).transcription.model == "gpt-4o-mini-transcribe"
    kept = dialect.initial_session(None, SessionConfig(transcription=Transcription(model="whisper-1", language="de")))
    assert kept.transcription == Transcription(model="whisper-1", language="de")
    with pytest.raises(ConfigError, match="disagrees"):
        dialect.initial_session("gpt-4o-transcribe", kept)


def test_dialect_refuses_what_a_transcription_session_has_not():
    session = Session("openai-transcription")
    with pytest.raises(ConfigError, match="instructions, voice"):
        session.send(ev.SessionUpdate(session=SessionConfig(instructions="hi", voice="marin")))
    for event in (ev.ResponseCreate(), ev.ConversationItemCreate(item={"type": "message"})):
        with pytest.raises(LocalProtocolError, match="does not support"):
            session.send(event)


# ------------------------------------------------------------------------------------------------ Transcriber


def test_transcriber_openai_two_utterances_every_event_valid(speech_dir, tmp_path, validate_client_event):
    path = _two_phrases(speech_dir, tmp_path / "two.wav")
    deltas: list[str] = []
    with RealtimeServer(realtime=False, input_transcript=_transcript_of(speech_dir)) as srv:
        tr = Transcriber("openai", url=srv.url, model="gpt-4o-transcribe", on_delta=deltas.append)
        utterances = tr.transcribe_file(path)
        assert srv.handshakes[0]["path"].endswith("?intent=transcription")
        _check_all_events(srv, validate_client_event)
        kinds = [e["type"] for e in srv.received]
        committed = [e for e in srv.sent if e["type"] == "input_audio_buffer.committed"]
    assert [u.text for u in utterances] == ["turn on the kitchen lights", "what's the weather tomorrow"]
    assert kinds[0] == "session.update" and kinds.count("input_audio_buffer.commit") == 2
    assert len(committed) == 2 and "response.create" not in kinds
    assert deltas[-1] == "what's the weather tomorrow"
    first, second = utterances
    assert first.end_s < second.start_s and second.start_s - first.end_s > 1.2
    assert tr.usage.total_tokens == sum(u.usage.total_tokens for u in utterances) > 0
    assert tr.stats.utterances == 2


def test_a_short_utterance_is_padded_to_the_servers_minimum(tmp_path, validate_client_event):
    path = tmp_path / "click.wav"
    _write(path, np.full(480, 3000, np.int16))  # 30 ms
    with RealtimeServer(realtime=False, input_transcript="click") as srv:
        utterances = Transcriber("openai", url=srv.url, vad=None).transcribe_file(path)
        _check_all_events(srv, validate_client_event)
        (record,) = srv.audio_records
    assert [u.text for u in utterances] == ["click"]
    assert record.samples == 2400  # 100 ms at 24 kHz: the click and silence after it


def _fails_on_the_first(speech_dir):
    """A transcript knob whose model fails on the first utterance (the server then sends ``.failed``)."""
    transcript, calls = _transcript_of(speech_dir), []

    def knob(audio, rate):
        calls.append(rate)
        if len(calls) == 1:
            raise RuntimeError("ASR failed")
        return transcript(audio, rate)
    return knob


def test_a_failed_transcription_is_one_utterance_and_the_rest_go_on(speech_dir, tmp_path, caplog):
    """One ``...transcription.failed`` ended the whole run with a ServerError, losing every later utterance
    of a file or a microphone; it is now that utterance, with ``error`` set, counted and logged."""
    path = _two_phrases(speech_dir, tmp_path / "two.wav")
    with RealtimeServer(realtime=False, input_transcript=_fails_on_the_first(speech_dir)) as srv:
        tr = Transcriber("openai", url=srv.url)
        first, second = tr.transcribe_file(path)
        assert [e["type"] for e in srv.sent].count("conversation.item.input_audio_transcription.failed") == 1
    assert first.error == "ASR failed" and first.text == "" and first.start_s < first.end_s < second.start_s
    assert str(first).endswith("] (transcription failed: ASR failed)")
    assert second.error is None and second.text == "what's the weather tomorrow"
    assert (tr.stats.utterances, tr.stats.failed_utterances) == (1, 1)
    assert any("could not transcribe" in r.getMessage() and "ASR failed" in r.getMessage() for r in caplog.records)


def test_cli_prints_a_failed_utterance_on_stderr_and_exits_8(speech_dir, tmp_path, capsys):
    path = _two_phrases(speech_dir, tmp_path / "two.wav")
    with RealtimeServer(realtime=False, input_transcript=_fails_on_the_first(speech_dir)) as srv:
        assert _cli("--provider", "openai", "--url", srv.url, "--input", str(path)) == 8
    captured = capsys.readouterr()
    out, err = captured.out.splitlines(), captured.err
    assert re.fullmatch(r"\[\d\.\d\d-\d\.\d\d\] what's the weather tomorrow", out[0]), out
    assert re.fullmatch(r"summary: 1 utterance\(s\) \(1 more failed\), .*", out[1]), out
    assert re.search(r"rtedge: warning: \[\d\.\d\d-\d\.\d\d\] \(transcription failed: ASR failed\)", err), err
    # the command as run (its own logging set up): said once, not also as the transcriber's log line
    with RealtimeServer(realtime=False, input_transcript=_fails_on_the_first(speech_dir)) as srv:
        run = subprocess.run([sys.executable, "-m", "rtedge", "transcribe", "--provider", "openai", "--url", srv.url,
                              "--input", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 8 and run.stderr.count("ASR failed") == 1, run.stderr


def test_unknown_provider_is_refused():
    with pytest.raises(ConfigError, match="'vllm' or 'openai'"):
        Transcriber("qwen")
    assert rtedge.Transcriber is Transcriber


# ------------------------------------------------------------------------------------------------ command line


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="rtedge")
    add_transcribe_parser(parser.add_subparsers(dest="command"))
    return cmd_transcribe(parser.parse_args(["transcribe", *argv]))


def test_cli_without_a_key_says_what_to_give_in_its_own_terms(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = tmp_path / "silence.wav"
    out = WavWriter(str(path), 16000)
    out.write(np.zeros(1600, np.int16))
    out.close()
    assert _cli("--provider", "openai", "--input", str(path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rtedge: error: no API key for openai (wss://api.openai.com/v1/realtime?intent=transcription): "
                   "give --api-key-file FILE or set $OPENAI_API_KEY"]


@pytest.mark.parametrize("option, value", [("done_timeout", 0), ("chunk_ms", -20), ("max_backlog_s", float("nan"))])
def test_a_bad_bound_names_itself(option, value):
    with pytest.raises(ConfigError, match=f"^{option} must be positive, got {value!r}"):
        Transcriber(url="ws://127.0.0.1:9/v1/realtime", model="m", **{option: value})


def test_cli_provider_openai_prints_the_transcripts(speech_dir, tmp_path, capsys, validate_client_event):
    path = _two_phrases(speech_dir, tmp_path / "two.wav")
    with RealtimeServer(realtime=False, input_transcript=_transcript_of(speech_dir)) as srv:
        assert _cli("--provider", "openai", "--url", srv.url, "--input", str(path)) == 0
        _check_all_events(srv, validate_client_event)
        model = srv.sessions[0]["audio"]["input"]["transcription"]["model"]
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\[0\.\d\d-\d\.\d\d\] turn on the kitchen lights", lines[0]), lines
    assert re.fullmatch(r"\[\d\.\d\d-\d\.\d\d\] what's the weather tomorrow", lines[1]), lines
    assert re.fullmatch(r"summary: 2 utterance\(s\), .* total \d+", lines[2]), lines
    assert model == "gpt-4o-mini-transcribe"


def test_cli_openai_needs_no_url_but_a_key(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    wav = tmp_path / "a.wav"
    _write(wav, np.zeros(1600, np.int16))
    assert _cli("--provider", "openai", "--input", str(wav)) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err


@pytest.mark.parametrize("model, warned", [("gpt-realtime", True), ("gpt-4o-realtime-preview", True),
                                           ("gpt-4o-mini-transcribe", False), ("whisper-1", False),
                                           ("gpt-realtime-whisper", False)])
def test_a_conversation_model_named_for_transcription_is_warned(model, warned):
    from rtedge.protocol.dialects import get_dialect

    dialect = get_dialect("openai-transcription")
    warnings = dialect.check(dialect.initial_session(model, None))
    assert bool([w for w in warnings if "not a transcription model" in w]) == warned


def test_rtedge_run_on_a_transcription_session_counts_its_tokens(speech_dir, tmp_path, capsys):
    """OpenAI's transcription sessions report usage on each transcript, not on a response.done (there is
    none): rtedge run said "tokens in 0 / out 0" and "total 0", and the usage log's session line held
    zeros."""
    from rtedge.app.cli import main

    path = _two_phrases(speech_dir, tmp_path / "two.wav")
    usage = tmp_path / "usage.jsonl"
    with RealtimeServer(realtime=False, input_transcript=_transcript_of(speech_dir)) as srv:
        code = main(["run", "--provider", "openai-transcription", "--url", srv.url, "--input", str(path),
                     "--fast", "--set", f"service.usage_log={usage}"])
        sent = [e["usage"] for e in srv.sent
                if e["type"] == "conversation.item.input_audio_transcription.completed"]
    out = capsys.readouterr().out
    assert code == 0 and len(sent) == 2 and all(u["total_tokens"] > 0 for u in sent), out
    total = sum(u["total_tokens"] for u in sent)
    turns = re.findall(r"turn \d: completed.* tokens in (\d+) / out (\d+)", out)
    assert [int(i) + int(o) for i, o in turns] == [u["total_tokens"] for u in sent], out
    assert re.search(rf"total {total}\b", out), out
    lines = [json.loads(line) for line in usage.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["transcription", "transcription", "session"]
    assert [line["raw_usage"] for line in lines[:2]] == sent
    assert lines[2]["usage"]["total_tokens"] == total and lines[2]["responses"] == 2
