"""vLLM realtime transcription: the dialect's wire shape, the local vLLM-protocol server, ``rtedge.Transcriber``
and ``rtedge transcribe``."""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import logging
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

import rtedge
from rtedge.audio.devices import NullSource, WavSource
from rtedge.audio.vad import VadSettings
from rtedge.errors import (ConfigError, ConnectionClosed, DeadlineExceeded, HandshakeError, LocalProtocolError,
                           ServerError)
from rtedge.protocol import events as ev
from rtedge.protocol.config import SessionConfig, Transcription
from rtedge.protocol.dialects import get_dialect
from rtedge.protocol.session import Session
from rtedge.testing import VLLMServer, make_self_signed_cert
from rtedge.testing._tls import client_ssl_context, server_ssl_context
from rtedge.testing.vllm_server import DEFAULT_MODEL
from rtedge.transport.backoff import Backoff
from rtedge.app.transcribe import add_transcribe_parser, cmd_transcribe
from rtedge.voice.transcriber import Transcriber, Utterance
from rtedge.audio.wavio import WavWriter, read_wav

from ..conftest import wait_until

pytestmark = pytest.mark.usefixtures("no_thread_leak")

MODEL = DEFAULT_MODEL
PHRASES = ("turn_on_the_kitchen_lights", "whats_the_weather_tomorrow")
ALL_PHRASES = ("set_a_timer_for_ten_minutes", "stop", *PHRASES)


def _wire(event: ev.ClientEvent, provider: str = "vllm") -> dict:
    session = Session(provider)
    return json.loads(session.send(event))


def _server_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("rtedge-testserver-vllm", "rtedge-mic"))]


@pytest.fixture(autouse=True)
def no_server_or_device_threads():
    before = set(_server_threads())
    yield
    assert wait_until(lambda: set(_server_threads()) <= before, timeout=5.0), _server_threads()


# ------------------------------------------------------------------------------------------------ wire


def test_session_update_puts_the_model_at_the_top_level_without_event_id():
    session = get_dialect("vllm").initial_session(MODEL, None)
    assert _wire(ev.SessionUpdate(session=session)) == {"type": "session.update", "model": MODEL}
    # the model may also come from transcription.model; extra fields (fork extensions) go top-level too
    config = SessionConfig(transcription=Transcription(model="m2"), extra={"language": "en"})
    assert _wire(ev.SessionUpdate(session=config)) == {"type": "session.update", "model": "m2", "language": "en"}


def test_commit_append_and_final_commit_golden():
    assert _wire(ev.InputAudioBufferCommit()) == {"type": "input_audio_buffer.commit"}
    assert _wire(ev.InputAudioBufferCommit(final=True)) == {"type": "input_audio_buffer.commit", "final": True}
    pcm = np.arange(-4, 4, dtype="<i2").tobytes()
    assert _wire(ev.InputAudioBufferAppend(audio=pcm)) == {
        "type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}


def test_ga_commit_encoding_is_unchanged_and_refuses_final():
    assert set(_wire(ev.InputAudioBufferCommit(), "openai")) == {"type", "event_id"}
    with pytest.raises(LocalProtocolError, match="final"):
        Session("openai").send(ev.InputAudioBufferCommit(final=True))


def test_string_error_keeps_its_code_and_session_created_is_normalised():
    session = Session("vllm")
    created = session.receive_message('{"type":"session.created","id":"sess-abc","created":1760000000}')
    assert isinstance(created, ev.SessionCreated) and created.event_id is None
    assert session.state.session_id == "sess-abc"
    assert session.state.input_format == rtedge.AudioFormat.pcm(16000)
    error = session.receive_message('{"type":"error","error":"The model `x` does not exist.",'
                                    '"code":"model_not_found"}')
    assert isinstance(error, ev.Error)
    assert error.error.code == "model_not_found"
    assert error.error.message == "The model `x` does not exist."


def test_transcription_done_usage_counts_in_the_session_state():
    session = Session("vllm")
    session.receive_message('{"type":"session.created","id":"sess-1","created":1}')
    delta = session.receive_message('{"type":"transcription.delta","delta":"turn"}')
    assert isinstance(delta, ev.TranscriptionDelta) and delta.delta == "turn"
    for n in (1, 2):
        session.receive_message(json.dumps({"type": "transcription.done", "text": "turn on", "usage": {
            "prompt_tokens": 30, "completion_tokens": 2 * n, "total_tokens": 30 + 2 * n}}))
    usage = session.state.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.responses) == (60, 6, 66, 2)


@pytest.mark.parametrize("event", [
    ev.ResponseCreate(),
    ev.ResponseCancel(response_id="resp_1"),
    ev.ConversationItemCreate(item={"type": "message", "role": "user", "content": []}),
    ev.ConversationItemTruncate(item_id="item_1", audio_end_ms=100),
    ev.ConversationItemRetrieve(item_id="item_1"),
    ev.ConversationItemDelete(item_id="item_1"),
    ev.InputAudioBufferClear(),
    ev.SessionFinish(),
], ids=lambda e: e.TYPE)
def test_conversation_events_are_refused_locally(event):
    session = Session("vllm")
    with pytest.raises(LocalProtocolError, match="vllm"):
        session.send(event)
    assert session.state.sent_types == {}  # nothing was accounted


def test_url_and_model_checks():
    d = get_dialect("vllm")
    assert d.url(MODEL, "ws://gpu:8000") == "ws://gpu:8000/v1/realtime"
    assert d.url(MODEL, "wss://gpu/v1/realtime") == "wss://gpu/v1/realtime"  # no ?model= query
    with pytest.raises(ConfigError, match="needs url"):
        d.url(MODEL, None)
    with pytest.raises(ConfigError, match="needs model"):
        d.initial_session(None, None)
    with pytest.raises(ConfigError, match="disagrees"):
        d.initial_session("a", SessionConfig(extra={"model": "b"}))
    with pytest.raises(ConfigError, match="voice"):
        Session("vllm").send(ev.SessionUpdate(session=SessionConfig(voice="marin", extra={"model": "m"})))
    with pytest.raises(ConfigError, match="16000"):
        Session("vllm").send(ev.SessionUpdate(session=SessionConfig(
            input_format=rtedge.AudioFormat.pcm(24000), extra={"model": "m"})))


# ------------------------------------------------------------------------------------------------ server + client


@pytest.fixture
def server():
    with VLLMServer(transcript="turn on the kitchen lights") as srv:
        yield srv


def test_connect_sends_the_model_and_does_not_wait_for_an_ack(server):
    with rtedge.connect("vllm", url=server.url, model=MODEL, connect_timeout=5) as client:
        update = server.wait_for_received("session.update")
        assert update == {"type": "session.update", "model": MODEL}
        assert client.state.session_id and client.state.session_id.startswith("sess-")
        client.send(ev.InputAudioBufferCommit())
        client.append_audio(np.full(16000, 1000, dtype=np.int16), rate=16000)
        client.send(ev.InputAudioBufferCommit(final=True))
        done = client.wait_for("transcription.done", timeout=5)
        assert isinstance(done, ev.TranscriptionDone) and done.text == "turn on the kitchen lights"
        assert client.usage.input_tokens == 13 and client.usage.output_tokens == 5  # 1 s = 12.5 -> 13 tokens
        with pytest.raises(LocalProtocolError):
            client.send_text("hello")
    assert [e["type"] for e in server.received if e["type"] != "input_audio_buffer.append"] == [
        "session.update", "input_audio_buffer.commit", "input_audio_buffer.commit"]


def test_server_errors_and_unknown_events(server):
    with rtedge.connect("vllm", url=server.url, model="nope", connect_timeout=5) as client:
        error = client.wait_for("error", timeout=5)
        assert error.error.code == "model_not_found" and "`nope`" in error.error.message
        client.send(ev.InputAudioBufferCommit())
        assert client.wait_for("error", timeout=5).error.code == "model_not_validated"
        client.send({"type": "input_audio_buffer.clear"})  # raw: the server's own answer
        assert client.wait_for("error", timeout=5).error.code == "unknown_event"
        client.send({"type": "session.update"})
        assert client.wait_for("error", timeout=5).error.code == "invalid_event"
        client.send({"type": "input_audio_buffer.append", "audio": "not base64!"})
        assert client.wait_for("error", timeout=5).error.code == "invalid_audio"


def _fixture_transcript(speech_dir):
    """A transcript callable that names the fixture whose loudest 100 ms it finds, byte for byte, in the
    utterance: proof that the audio reached the server unchanged."""
    probes = {}
    for name in ALL_PHRASES:
        samples, rate = read_wav(speech_dir / f"{name}.wav")
        assert rate == 16000
        energy = np.convolve(samples.astype(np.float64) ** 2, np.ones(1600), "valid")
        k = int(np.argmax(energy))
        probes[name.replace("_", " ").replace("whats", "what's")] = samples[k:k + 1600].tobytes()

    def transcript(audio: np.ndarray) -> str:
        data = audio.tobytes()
        found = [text for text, probe in probes.items() if probe in data]
        return " / ".join(found) or "(unknown audio)"

    return transcript


def _join(speech_dir, path, gap_s: float):
    """The two fixture phrases with ``gap_s`` of silence between them; returns where the second begins."""
    parts = [read_wav(speech_dir / f"{name}.wav")[0] for name in PHRASES]
    gap = int(gap_s * 16000)
    writer = WavWriter(path, 16000)
    writer.write(np.concatenate([parts[0], np.zeros(gap, dtype=np.int16), parts[1]]))
    writer.close()
    return (len(parts[0]) + gap) / 16000


@pytest.fixture
def two_phrases(speech_dir, tmp_path):
    """The two fixture phrases with 1.5 s of silence between them, and where the second begins."""
    path = tmp_path / "two.wav"
    return path, _join(speech_dir, path, 1.5)


def test_transcribes_two_utterances_split_by_the_vad(speech_dir, two_phrases):
    path, offset = two_phrases
    deltas: list[str] = []
    results: list[Utterance] = []
    # done_delay: the model's latency; audio of the next utterance must wait for done, not be dropped
    with VLLMServer(transcript=_fixture_transcript(speech_dir), done_delay=0.3) as srv:
        tr = Transcriber(url=srv.url, model=MODEL, on_delta=deltas.append, on_utterance=results.append)
        utterances = tr.transcribe_file(path)
        assert tr.client is None  # the connection was its own: closed
        assert srv.dropped_appends == 0 and srv.ignored_commits == 0
        received = [e["type"] + (" final" if e.get("final") else "") for e in srv.received]
    assert [u.text for u in utterances] == ["turn on the kitchen lights", "what's the weather tomorrow"]
    assert results == utterances and deltas[-1] == "what's the weather tomorrow"
    first, second = utterances
    assert first.start_s == pytest.approx(0.3, abs=0.1) and second.start_s == pytest.approx(offset + 0.3, abs=0.1)
    assert first.start_s < first.end_s < second.start_s < second.end_s
    assert second.start_s - first.end_s > 1.5  # the silence between them
    assert not first.truncated and not second.truncated
    assert first.usage.output_tokens == 5 and first.usage.input_tokens > 20
    assert tr.usage == first.usage + second.usage
    assert tr.stats.utterances == 2 and tr.stats.audio_not_sent_s > 0.5  # the silence stayed home
    # the wire: model, then per utterance: start commit, appends, final commit
    assert received[0] == "session.update"
    collapsed = [t for i, t in enumerate(received[1:], 1) if t != received[i - 1]]
    assert collapsed == ["input_audio_buffer.commit", "input_audio_buffer.append", "input_audio_buffer.commit final",
                         "input_audio_buffer.commit", "input_audio_buffer.append", "input_audio_buffer.commit final"]
    assert str(first).startswith("[0.") and str(first).endswith("] turn on the kitchen lights")


def test_close_utterances_never_overlap_on_the_wire(speech_dir, tmp_path):
    # 0.2 s between the files and 1 s source frames: the gate closes and reopens within one source
    # frame; the second utterance must still wait for the first one's done (else vLLM ignores its commit)
    path = tmp_path / "close.wav"
    _join(speech_dir, path, 0.2)
    with VLLMServer(transcript=_fixture_transcript(speech_dir), done_delay=0.2) as srv:
        source = WavSource(path, frame_ms=1000, realtime=False)
        utts = list(Transcriber(url=srv.url, model=MODEL).transcribe(source))
        assert srv.ignored_commits == 0 and srv.dropped_appends == 0
    assert [u.text for u in utts] == ["turn on the kitchen lights", "what's the weather tomorrow"]


def test_reconnect_sends_the_utterance_in_flight_again(speech_dir, two_phrases, caplog):
    path, _ = two_phrases
    with VLLMServer(transcript=_fixture_transcript(speech_dir), done_delay=30) as srv:
        def cut() -> None:  # the first final commit arrives; the server dies before its done
            srv.wait_for_received("input_audio_buffer.commit", timeout=10, where=lambda e: e.get("final"))
            srv.close_connections(1011, "restart")  # before the delay goes: the first connection's
            srv.done_delay = 0.0  # transcript, if the server only now got to it, is never sent

        closer = threading.Thread(target=cut, name="test-closer", daemon=True)
        closer.start()
        tr = Transcriber(url=srv.url, model=MODEL, reconnect=Backoff(initial=0.05, jitter=0.0, max_attempts=3))
        utts = tr.transcribe_file(path)
        closer.join(5)
        assert srv.connection_count == 2
    assert [u.text for u in utts] == ["turn on the kitchen lights", "what's the weather tomorrow"]
    assert tr.stats.reconnects == 1 and tr.stats.retried_utterances == 1 and tr.stats.lost_utterances == 0
    assert utts[0].start_s == pytest.approx(0.3, abs=0.1)
    # the transcriber reconnects itself: its connection's end is no error (it was logged as one)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_paced_source_and_stop(speech_dir):
    with VLLMServer(transcript="stop") as srv, Transcriber(url=srv.url, model=MODEL) as tr:
        utts = list(tr.transcribe(WavSource(speech_dir / "stop.wav", realtime=True)))  # paced like a mic
        assert [u.text for u in utts] == ["stop"]
        # a source that never ends (a microphone) runs until stop()
        stopper = threading.Timer(0.3, tr.stop)
        stopper.start()
        assert list(tr.transcribe(NullSource())) == []
        stopper.join()
        assert tr.stats.frames_dropped == 0


def test_one_connection_for_several_sources(speech_dir):
    with VLLMServer(transcript=_fixture_transcript(speech_dir)) as srv:
        with Transcriber(url=srv.url, model=MODEL) as tr:
            a = tr.transcribe_file(speech_dir / "turn_on_the_kitchen_lights.wav")
            b = list(tr.transcribe(WavSource(speech_dir / "stop.wav", rate=16000, realtime=False)))
            assert tr.client is not None and not tr.client.closed
        assert srv.connection_count == 1
    assert [u.text for u in a] == ["turn on the kitchen lights"] and len(b) == 1


def test_a_48khz_source_is_resampled_to_16khz(speech_dir):
    with VLLMServer(transcript="stop") as srv:
        source = WavSource(speech_dir / "stop.wav", rate=48000, realtime=False)
        utts = list(Transcriber(url=srv.url, model=MODEL).transcribe(source))
        heard = srv.utterances[0]
    assert [u.text for u in utts] == ["stop"] and utts[0].start_s == pytest.approx(0.3, abs=0.1)
    assert 1.6 < len(heard) / 16000 < 1.75  # all of it (pre-roll + speech + trailing), at 16 kHz
    assert np.abs(heard.astype(np.int32)).max() > 3000


def test_vad_none_sends_the_whole_file_as_one_utterance(speech_dir):
    with VLLMServer() as srv:
        utts = Transcriber(url=srv.url, model=MODEL, vad=None).transcribe_file(speech_dir / "stop.wav")
        sent, file = len(srv.utterances[0]), len(read_wav(speech_dir / "stop.wav")[0])
        assert file <= sent < file + 320  # all of it (the source pads its last 20 ms frame)
    assert len(utts) == 1 and utts[0].text == f"{sent / 16000:.2f} seconds of audio" and utts[0].start_s == 0.0


def test_a_long_utterance_cut_by_the_token_limit_continues(speech_dir):
    # the server ends each generation after 2 words (200 ms of audio) while the speech goes on;
    # a paced source, so that the speech really is still going on when that happens
    with VLLMServer(transcript="one two three", max_tokens=2, word_ms=100) as srv:
        utts = list(Transcriber(url=srv.url, model=MODEL).transcribe(
            WavSource(speech_dir / "stop.wav", realtime=True)))
        # audio already queued when a generation stops is dropped by the server (as vLLM does);
        # what matters here is that the next generation starts cleanly
        assert srv.ignored_commits == 0
    assert len(utts) >= 2 and utts[0].truncated
    assert all(u.text == "one two" for u in utts)
    assert all(a.end_s <= b.start_s + 1e-9 for a, b in itertools.pairwise(utts))


def test_model_not_found_is_a_server_error(speech_dir):
    with VLLMServer() as srv:
        tr = Transcriber(url=srv.url, model="not-served")
        with pytest.raises(ServerError) as info:
            tr.transcribe_file(speech_dir / "stop.wav")
    assert info.value.code == "model_not_found" and "not-served" in str(info.value)


class _ForgetfulServer(VLLMServer):
    """A server that drops session.update (as a proxy in front of vLLM might)."""

    def _on_session_update(self, conn, event):
        pass


def test_model_not_validated_is_a_server_error(speech_dir):
    with _ForgetfulServer() as srv, pytest.raises(ServerError) as info:
        Transcriber(url=srv.url, model=MODEL).transcribe_file(speech_dir / "stop.wav")
    assert info.value.code == "model_not_validated"


def test_api_key_401_and_bearer(speech_dir):
    with VLLMServer(api_key="sekret") as srv:
        with pytest.raises(HandshakeError) as info:
            Transcriber(url=srv.url, model=MODEL, api_key="wrong").transcribe_file(speech_dir / "stop.wav")
        assert info.value.status_code == 401 and "wrong" not in str(info.value)
        assert len(Transcriber(url=srv.url, model=MODEL, api_key="sekret").transcribe_file(
            speech_dir / "stop.wav")) == 1
        assert srv.handshakes[-1]["headers"]["authorization"] == "Bearer sekret"


def test_tls(speech_dir, tmp_path):
    cert, key = make_self_signed_cert(tmp_path)
    with VLLMServer(ssl_context=server_ssl_context(cert, key)) as srv:
        assert srv.url.startswith("wss://")
        utts = Transcriber(url=srv.url, model=MODEL, ssl_context=client_ssl_context(cert)).transcribe_file(
            speech_dir / "stop.wav")
    assert len(utts) == 1


def test_no_done_in_time_is_a_deadline(speech_dir):
    with VLLMServer(done_delay=30) as srv:
        tr = Transcriber(url=srv.url, model=MODEL, done_timeout=0.3)
        with pytest.raises(DeadlineExceeded, match="transcription.done"):
            tr.transcribe_file(speech_dir / "stop.wav")


def test_connection_lost_mid_utterance(speech_dir):
    with VLLMServer(done_delay=30) as srv:
        threading.Thread(target=lambda: (srv.wait_for_received("input_audio_buffer.commit", timeout=10,
                                                                where=lambda e: e.get("final")),
                                          srv.close_connections(1011, "boom")),
                         name="test-closer", daemon=True).start()
        with pytest.raises(ConnectionClosed):
            Transcriber(url=srv.url, model=MODEL).transcribe_file(speech_dir / "stop.wav")


def test_transcriber_argument_checks():
    with pytest.raises(ConfigError, match="vllm"):
        Transcriber("qwen", url="ws://127.0.0.1:1/v1/realtime", model=MODEL)
    with pytest.raises(ConfigError, match="url"):
        Transcriber(model=MODEL)
    # no model: allowed, the server is asked at each connection (GET /v1/models, as vLLM answers it)
    assert Transcriber(url="ws://127.0.0.1:1/v1/realtime").model is None
    assert rtedge.Transcriber is Transcriber
    assert Transcriber(url="ws://127.0.0.1:1", model=MODEL, vad=VadSettings(hangover_ms=200)).vad.hangover_ms == 200


# ------------------------------------------------------------------------------------------------ command line


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="rtedge")
    add_transcribe_parser(parser.add_subparsers(dest="command"))
    return cmd_transcribe(parser.parse_args(["transcribe", *argv]))


def test_cli_prints_one_line_per_utterance_and_usage(speech_dir, two_phrases, capsys):
    path, _ = two_phrases
    with VLLMServer(transcript=_fixture_transcript(speech_dir)) as srv:
        assert _cli("--provider", "vllm", "--url", srv.url, "--model", MODEL, "--input", str(path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\[0\.\d\d-\d\.\d\d\] turn on the kitchen lights", lines[0]), lines
    assert re.fullmatch(r"\[\d\.\d\d-\d\.\d\d\] what's the weather tomorrow", lines[1]), lines
    assert re.fullmatch(r"summary: 2 utterance\(s\), .* tokens in \d+ / out 9 / total \d+", lines[2]), lines


def test_cli_errors_are_one_line_with_exit_codes(speech_dir, tmp_path, capsys):
    stop = str(speech_dir / "stop.wav")
    key = tmp_path / "key"
    key.write_text("wrong\n")
    with VLLMServer(api_key="sekret") as srv:
        assert _cli("--url", srv.url, "--model", MODEL, "--input", stop, "--api-key-file", str(key)) == 3
        err = capsys.readouterr().err
        assert err.startswith("rtedge: error: ") and "401" in err and err.count("\n") == 1
    with VLLMServer() as srv:
        assert _cli("--url", srv.url, "--model", "nope", "--input", stop) == 2
        assert "model_not_found" in capsys.readouterr().err
        # the command as run (its own logging set up): said once, as the error line, not also as the
        # client's warning, nor the errors that follow it
        run = subprocess.run([sys.executable, "-m", "rtedge", "transcribe", "--url", srv.url, "--model", "nope",
                              "--input", stop], capture_output=True, text=True, timeout=60)
        assert run.returncode == 2
        assert run.stderr.count("model_not_found") == 1 and "model_not_validated" not in run.stderr, run.stderr
        assert _cli("--url", srv.url, "--model", MODEL, "--input", str(tmp_path / "missing.wav")) == 2
        assert _cli("--url", srv.url, "--model", MODEL) == 2  # neither --input nor --mic
    assert _cli("--url", "ws://127.0.0.1:9/v1/realtime", "--model", MODEL, "--input", stop) == 4


def test_a_failed_model_run_exits_4_which_systemd_restarts(speech_dir, capsys):
    """vLLM reports a failed generation (a GPU out of memory...) as processing_error: the server failed,
    not the command's configuration, so the exit code is one systemd retries (it was 2, never retried)."""
    def broken(audio):
        raise RuntimeError("CUDA out of memory")

    with VLLMServer(transcript=broken) as srv:
        assert _cli("--url", srv.url, "--model", MODEL, "--input", str(speech_dir / "stop.wav")) == 4
    err = capsys.readouterr().err
    assert "processing_error" in err and "CUDA out of memory" in err


def test_rtedge_transcribe_prints_the_servers_transcript_of_every_phrase(speech_dir, tmp_path, capsys):
    from rtedge.app.cli import main

    parts = [read_wav(speech_dir / f"{name}.wav")[0] for name in ALL_PHRASES]
    gap = np.zeros(24000, dtype=np.int16)
    path = tmp_path / "phrases.wav"
    writer = WavWriter(path, 16000)
    writer.write(np.concatenate([x for part in parts for x in (part, gap)]))
    writer.close()
    with VLLMServer(transcript=_fixture_transcript(speech_dir)) as srv:
        assert main(["transcribe", "--provider", "vllm", "--url", srv.url, "--model", MODEL,
                     "--input", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("] ", 1)[1] for line in lines[:-1]] == [
        "set a timer for ten minutes", "stop", "turn on the kitchen lights", "what's the weather tomorrow"]
    assert lines[-1].startswith("summary: 4 utterance(s)") and "/ out 16 /" in lines[-1]  # one token per word


def test_rtedge_transcribe_exit_codes_follow_the_table(tmp_path, capsys, speech_dir):
    """A missing sound card exited 2 ("configuration error", never restarted) where run exits 7; a key the
    server refuses at /v1/models exited 2 with "name the model", where it is an authentication failure."""
    from rtedge.app.cli import EXIT_AUDIO, EXIT_AUTH, main

    with VLLMServer() as srv:
        assert main(["transcribe", "--url", srv.url, "--mic", "NoSuchCard"]) == EXIT_AUDIO
    assert "no audio input device named 'NoSuchCard'" in capsys.readouterr().err
    wrong = tmp_path / "key"
    wrong.write_text("sk-wrong\n")
    with VLLMServer(api_key="sk-right") as srv:
        code = main(["transcribe", "--url", srv.url, "--api-key-file", str(wrong),
                     "--input", str(speech_dir / "stop.wav")])
    err = capsys.readouterr().err
    assert code == EXIT_AUTH, err
    assert "refused: HTTP 401 (the API key was refused" in err


def test_a_stop_while_connecting_ends_the_transcription_once_it_starts(monkeypatch, speech_dir):
    """Ctrl-C during the connection was lost: stop() did nothing before the run existed, so a microphone
    transcription went on for ever.  It ends as soon as the run starts."""
    from rtedge.voice import transcriber as module

    real_connect = module.connect
    with VLLMServer() as srv:
        tr = Transcriber(url=srv.url, model=MODEL)

        def connect_then_stop(*args, **kwargs):  # the stop arrives while connecting
            client = real_connect(*args, **kwargs)
            tr.stop()
            return client

        monkeypatch.setattr(module, "connect", connect_then_stop)
        done = threading.Event()
        result: list[list[Utterance]] = []
        runner = threading.Thread(target=lambda: (result.append(list(tr.transcribe(NullSource()))), done.set()),
                                  name="test-transcribe", daemon=True)
        runner.start()
        assert done.wait(10), "the transcription ran on after a stop that came while connecting"
        runner.join(5)
    assert result == [[]]
    monkeypatch.setattr(module, "connect", real_connect)
    with VLLMServer(transcript="stop") as srv2:
        tr.url = srv2.url
        tr.stop()  # with nothing under way: no effect on the next transcription
        assert [u.text for u in tr.transcribe_file(speech_dir / "stop.wav")] == ["stop"]


def test_a_connection_lost_after_the_file_ended_still_transcribes_its_last_utterance(speech_dir):
    """The reconnect wait stopped at the file's end as if the caller had stopped: the last utterance of a
    file was lost ('stopped while reconnecting') when the connection dropped after the file was read."""
    with VLLMServer(transcript="stop", done_delay=30) as srv:
        tr = Transcriber(url=srv.url, model=MODEL, reconnect=Backoff(initial=0.05, jitter=0.0, max_attempts=3))
        file_ended: list[bool] = []

        def cut() -> None:  # the file has been read and its only utterance's final commit arrived: the server dies
            srv.wait_for_received("input_audio_buffer.commit", timeout=10, where=lambda e: e.get("final"))
            file_ended.append(wait_until(lambda: tr._backlog is not None and tr._backlog.ended, timeout=5))
            srv.close_connections(1011, "restart")  # before the delay goes: the first connection's
            srv.done_delay = 0.0  # transcript, if the server only now got to it, is never sent

        closer = threading.Thread(target=cut, name="test-closer", daemon=True)
        closer.start()
        utts = tr.transcribe_file(speech_dir / "stop.wav")
        closer.join(5)
        assert file_ended == [True] and srv.connection_count == 2
    assert [u.text for u in utts] == ["stop"]
    assert tr.stats.reconnects == 1 and tr.stats.retried_utterances == 1 and tr.stats.lost_utterances == 0


def test_a_second_transcription_at_once_is_refused_before_it_connects(speech_dir):
    """Two threads transcribing with one Transcriber: the second was refused only after it had connected
    (over the first one's client), and a connection's three threads outlived both."""
    with VLLMServer(transcript="stop", done_delay=0.5) as srv:
        tr = Transcriber(url=srv.url, model=MODEL)
        outcome: dict[str, object] = {}

        def first() -> None:
            for utt in tr.transcribe(WavSource(speech_dir / "stop.wav", rate=16000, realtime=True)):
                outcome["first"] = utt.text

        runner = threading.Thread(target=first, name="test-first", daemon=True)
        runner.start()
        assert wait_until(lambda: tr._starting, timeout=5)
        with pytest.raises(ConfigError, match="already transcribing a source"):
            list(tr.transcribe(speech_dir / "stop.wav"))
        runner.join(15)
        assert not runner.is_alive() and outcome == {"first": "stop"}
        assert srv.connection_count == 1
    left = lambda: [t.name for t in threading.enumerate() if t.name.startswith("rtedge-")]  # noqa: E731
    assert wait_until(lambda: not left(), timeout=5), left()


def test_speech_cut_off_by_the_end_of_the_source_ends_where_the_audio_does(tmp_path):
    """An utterance still voiced when the source ended came out ``hangover_ms`` early: the end took off the
    hangover that follows the last voiced frame, but none had followed."""
    rng = np.random.default_rng(7)
    quiet = np.round(rng.normal(0, 30, 8000)).astype(np.int16)  # 0.5 s of room noise
    loud = (6000 * np.sin(np.arange(16000) * 2 * np.pi * 300 / 16000)).astype(np.int16)  # 1 s, to the end
    path = tmp_path / "cut.wav"
    writer = WavWriter(path, 16000)
    writer.write(np.concatenate([quiet, loud]))
    writer.close()
    settings = VadSettings(hangover_ms=400)
    with VLLMServer(transcript="tone") as srv:
        (utt,) = Transcriber(url=srv.url, model=MODEL, vad=settings).transcribe_file(path)
    assert utt.start_s == pytest.approx(0.5, abs=0.1)
    assert utt.end_s == pytest.approx(1.5, abs=0.03)  # was 1.1: the hangover taken off


def test_an_utterance_prints_on_one_line():
    """rtedge transcribe promises one line per utterance: a transcript with line breaks broke it."""
    utt = Utterance(text="one\ntwo\r\nthree\x1bfour", start_s=0.0, end_s=1.5)
    assert str(utt) == "[0.00-1.50] one two  three four"
    failed = Utterance(text="", start_s=1.0, end_s=2.0, error="bad\naudio")
    assert "\n" not in str(failed) and str(failed).endswith("(transcription failed: bad audio)")
