"""Debugging a session: ``--debug`` says what happened and when, ``--trace-wire`` / ``RTEDGE_TRACE_WIRE``
record the wire as JSON lines without audio or secrets."""

from __future__ import annotations

import base64
import json
import re

import pytest

import rtedge
from rtedge.transport import wiretrace
from rtedge.app.cli import EXIT_AUTH, EXIT_CONFIG, EXIT_OK, main
from rtedge.testing import RealtimeServer

pytestmark = pytest.mark.usefixtures("no_thread_leak")
KEY = "sk-test-9f8e7d6c5b4a39281706"


@pytest.fixture(autouse=True)
def _no_trace_left(monkeypatch):
    monkeypatch.delenv(wiretrace.ENV_VAR, raising=False)
    yield
    wiretrace.stop()


def _key_file(tmp_path, key: str = KEY):
    path = tmp_path / "key"
    path.write_text(key + "\n")
    path.chmod(0o600)
    return path


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_trace_wire_records_both_directions_with_audio_as_lengths_and_no_key(tmp_path, speech_dir, capsys):
    trace = tmp_path / "wire.jsonl"
    with RealtimeServer(realtime=False, api_key=KEY, reply_text="Stopping.") as srv:
        code = main(["run", "--url", srv.url, "--api-key-file", str(_key_file(tmp_path)), "--input",
                     str(speech_dir / "stop.wav"), "--fast", "--trace-wire", str(trace)])
        assert code == EXIT_OK, capsys.readouterr().err
        raw = trace.read_text()  # complete: main() has returned, the client is closed
        # the server's handler may still be recording the last frames the client sent before it closed
        count = sum(line["dir"] == "send" and line["type"] == "input_audio_buffer.append"
                    for line in _lines(trace))
        assert count > 0
        srv.wait_for_received("input_audio_buffer.append", timeout=10, nth=count)
        appended = [e for e in srv.received if e["type"] == "input_audio_buffer.append"]
    assert KEY not in raw and KEY[3:] not in raw  # the test the issue asks for: grep the trace for the key
    lines = _lines(trace)
    assert lines[0]["dir"] == "start" and lines[1]["dir"] == "open" and lines[1]["url"].startswith("ws://")
    times = [line["t"] for line in lines]
    assert times == sorted(times)  # one monotonic clock
    sent = [line for line in lines if line["dir"] == "send"]
    received = [line for line in lines if line["dir"] == "recv"]
    assert sent[0]["type"] == "session.update" and received[0]["type"] == "session.created"
    kinds = {r["type"] for r in received}
    assert {"response.created", "response.output_audio.delta", "response.done"} <= kinds
    # every append is there, its audio replaced by the decoded byte count
    traced = [line["event"] for line in sent if line["type"] == "input_audio_buffer.append"]
    assert len(traced) == len(appended)
    assert [t["audio"] for t in traced] == [f"<audio: {len(base64.b64decode(e['audio']))} bytes>"
                                            for e in appended]
    deltas = [r["event"]["delta"] for r in received if r["type"] == "response.output_audio.delta"]
    assert deltas and all(re.fullmatch(r"<audio: \d+ bytes>", d) for d in deltas)
    transcript = [r["event"]["delta"] for r in received
                  if r["type"] == "response.output_audio_transcript.delta"]
    assert "".join(transcript) == "Stopping."  # text deltas stay text
    assert not re.search(r'"[A-Za-z0-9+/]{200,}', raw)  # no base64 payload anywhere


def test_a_key_echoed_by_the_server_is_scrubbed_from_the_trace(tmp_path, capsys):
    wrong = "sk-wrong-a1b2c3d4e5f6a7b8c9"
    trace = tmp_path / "wire.jsonl"
    with RealtimeServer(api_key=KEY, auth_failure="event") as srv:
        srv_url = srv.url
        code = main(["run", "--url", srv_url, "--api-key-file", str(_key_file(tmp_path, wrong)), "--input",
                     str(tmp_path / "missing.wav"), "--fast", "--trace-wire", str(trace)])
    assert code == EXIT_CONFIG  # the missing input: nothing connected, so an empty trace
    with RealtimeServer(api_key=KEY, auth_failure="event") as srv:
        wiretrace.start(str(trace))
        with pytest.raises(rtedge.RtEdgeError):
            rtedge.connect(url=srv.url, api_key=wrong)
        wiretrace.stop()
    raw = trace.read_text()
    assert '"type":"error"' in raw and wrong not in raw
    assert "<redacted>" in raw or "invalid_api_key" in raw
    assert capsys.readouterr().err.count("rtedge: error:") == 1


def test_scrub_drops_credentials_and_measures_media():
    event = {"type": "session.created",
             "session": {"client_secret": {"value": "ek_live_123", "expires_at": 1}},
             "audio": base64.b64encode(bytes(3200)).decode()}
    scrubbed = wiretrace._scrub(event, "session.created")
    assert scrubbed["session"]["client_secret"] == "<redacted>" and scrubbed["audio"] == "<audio: 3200 bytes>"
    delta = {"type": "response.audio.delta", "delta": base64.b64encode(bytes(7)).decode()}  # DashScope's name
    assert wiretrace._scrub(delta, "response.audio.delta")["delta"] == "<audio: 7 bytes>"
    text = {"type": "response.audio_transcript.delta", "delta": "Hello"}
    assert wiretrace._scrub(text, "response.audio_transcript.delta")["delta"] == "Hello"


def test_the_environment_variable_traces_a_python_session(tmp_path, monkeypatch):
    trace = tmp_path / "env.jsonl"
    monkeypatch.setenv(wiretrace.ENV_VAR, str(trace))
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url, api_key=KEY) as client:
        client.send_text("Hello")
        client.wait_for("response.done", timeout=10)
    wiretrace.stop()
    lines = _lines(trace)
    kinds = [(line["dir"], line.get("type")) for line in lines]
    assert ("send", "conversation.item.create") in kinds and ("recv", "response.done") in kinds
    assert KEY not in trace.read_text()


def test_a_credential_in_the_url_query_is_never_written_to_the_trace(tmp_path, monkeypatch):
    """The URL was written redacted, but a server quoting it back (an error naming the request) wrote the
    query's credential into the trace."""
    trace = tmp_path / "q.jsonl"
    monkeypatch.setenv(wiretrace.ENV_VAR, str(trace))
    with RealtimeServer(realtime=False, reply_text="You asked with Q-SECRET-123.") as srv, \
            rtedge.connect(url=srv.url + "?authorization=Q-SECRET-123&model=gpt-realtime") as client:
        client.send_text("Hello")
        assert "Q-SECRET-123" in client.wait_for("response.done", timeout=10).raw["response"]["output"][0][
            "content"][0]["transcript"]
    wiretrace.stop()
    text = trace.read_text()
    assert "Q-SECRET-123" not in text and "authorization=***" in text and "model=gpt-realtime" in text


def test_an_unwritable_trace_file_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["run", "--url", "ws://127.0.0.1:9/v1/realtime", "--input", "x.wav", "--fast",
                 "--trace-wire", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_CONFIG and len(err) == 1 and "--trace-wire" in err[0]


def test_debug_shows_connection_session_and_each_turn_event_with_timing(tmp_path, speech_dir, capsys):
    with RealtimeServer(realtime=False, reply_text="Stopping.") as srv:
        args = ["run", "--url", srv.url, "--input", str(speech_dir / "stop.wav"), "--fast"]
        assert main([*args, "--debug"]) == EXIT_OK
        debug = capsys.readouterr().err
        assert main(args) == EXIT_OK
        quiet = capsys.readouterr().err
    assert "rtedge: debug:" not in quiet
    lines = [line for line in debug.splitlines() if line.startswith("rtedge: debug:")]
    text = "\n".join(lines)
    assert re.search(r"connecting to openai ws://127\.0\.0\.1:\d+/v1/realtime\?model=\S+ "
                     r"\(attempt 1, no API key", text)
    assert re.search(r"connected in \d+ ms; session confirmed: model \S+, voice \w+, in audio/pcm@24000, out "
                     r"audio/pcm@24000, turn detection server_vad", text), text
    order = [m.group(1) for m in re.finditer(r"event (\S+?)[ :]", text)]
    for a, b in (("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"),
                 ("input_audio_buffer.committed", "response.created"), ("response.created", "response.done")):
        assert a in order and b in order and order.index(a) < order.index(b), order
    assert re.search(r"event response\.done \(\+\d+ ms in the turn\): status completed, "
                     r"response_id resp_\w+; .*\b\d+ output_audio deltas", text), text
    assert order.count("response.output_audio.delta") == 1  # streamed deltas are counted, not listed


def test_debug_reports_failed_connection_attempts(capsys):
    code = main(["run", "--url", "ws://127.0.0.1:9/v1/realtime", "--mic", "null", "--speaker", "null",
                 "--debug", "--set", "reconnect.retry_first_connect=1", "--set", "reconnect.max_attempts=2",
                 "--set", "reconnect.initial_delay=0.01"])
    err = capsys.readouterr().err
    assert code != EXIT_OK
    assert "connecting to openai ws://127.0.0.1:9/v1/realtime" in err and "(attempt 2," in err
    assert re.search(r"connect attempt 1 failed after \d+ ms: cannot connect", err)


def test_auth_failure_exit_code_is_unchanged_by_tracing(tmp_path, capsys, speech_dir):
    trace = tmp_path / "w.jsonl"
    with RealtimeServer(api_key="sk-right-000000") as srv:
        code = main(["run", "--url", srv.url, "--api-key-file", str(_key_file(tmp_path)), "--input",
                     str(speech_dir / "stop.wav"), "--fast", "--trace-wire", str(trace)])
    assert code == EXIT_AUTH
    assert KEY not in trace.read_text()


def test_debug_shows_the_local_vad_gate_opening_and_closing(speech_dir, capsys):
    with RealtimeServer(realtime=False, reply_text="Okay.") as srv:
        code = main(["run", "--url", srv.url, "--input", str(speech_dir / "stop.wav"), "--speaker", "null",
                     "--vad-gate", "on", "--debug"])
    err = capsys.readouterr().err
    assert code == EXIT_OK, err
    opened = re.search(r"local VAD: speech started, gate opened \(noise floor -?\d+\.\d dBFS", err)
    closed = re.search(r"local VAD: speech ended, gate closed", err)
    assert opened and closed and opened.start() < closed.start(), err
