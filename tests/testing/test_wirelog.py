"""``rtedge --debug serve``: the local servers log each event they receive and send at DEBUG, audio
appends and deltas counted rather than listed, and never an audio payload."""

from __future__ import annotations

import base64
import logging
import re

import numpy as np
import pytest

import rtedge
from rtedge.protocol import events as ev
from rtedge.testing import RealtimeServer
from rtedge.testing import _wirelog
from rtedge.testing._wirelog import MAX_LINE, describe
from rtedge.testing.vllm_server import DEFAULT_MODEL, VLLMServer

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("no_thread_leak")]
CHUNK = np.full(480, 1234, dtype=np.int16)  # 20 ms at 24 kHz, not silence: its base64 is distinctive
CHUNK_B64 = base64.b64encode(CHUNK.astype("<i2").tobytes()).decode()


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "rtedge.testing" and r.levelno == logging.DEBUG]


def _index(lines: list[str], pattern: str) -> int:
    found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    assert len(found) == 1, (pattern, lines)
    return found[0]


def test_a_turn_is_logged_event_by_event_with_streams_counted(caplog):
    caplog.set_level(logging.DEBUG, logger="rtedge.testing")
    with RealtimeServer(realtime=False, seed=3) as srv:
        with rtedge.connect("openai", url=srv.url, api_key="k") as client:
            for _ in range(5):
                client.append_audio(CHUNK)
            client.commit()
            client.create_response()
            client.wait_for("response.done", timeout=10)
        deltas = sum(e["type"] == "response.output_audio.delta" for e in srv.sent)
    lines = _lines(caplog)
    assert all(line.startswith("rtedge-testserver-conn0: ") for line in lines), lines
    first = _index(lines, r"received input_audio_buffer\.append \{.*\"<audio: 960 bytes>\"")
    more = _index(lines, r"received 4 more input_audio_buffer\.append$")
    commit = _index(lines, r"received input_audio_buffer\.commit ")
    assert first < more < commit < _index(lines, r"received response\.create ")
    assert deltas > 1
    assert _index(lines, r"sent response\.output_audio\.delta ") \
        < _index(lines, rf"sent .*\b{deltas - 1} more response\.output_audio\.delta\b") \
        < _index(lines, r"sent response\.output_audio\.done ")
    _index(lines, r"sent response\.done ")
    assert not any(CHUNK_B64[:40] in line for line in lines)  # no payload
    assert all(len(line) <= len("rtedge-testserver-conn0: received ") + MAX_LINE for line in lines)


def test_nothing_is_described_unless_debug_is_on(caplog, monkeypatch):
    described: list[object] = []
    monkeypatch.setattr(_wirelog, "describe", lambda event: described.append(event) or "")
    caplog.set_level(logging.INFO, logger="rtedge.testing")
    with RealtimeServer(realtime=False) as srv:
        with rtedge.connect("openai", url=srv.url, api_key="k") as client:
            client.append_audio(CHUNK)
            client.send_text("hello")
            client.wait_for("response.done", timeout=10)
    assert not [r for r in caplog.records if r.name == "rtedge.testing" and r.levelno < logging.INFO]
    assert described == []  # no work either: the events were not even formatted


def test_the_vllm_server_logs_too_and_counts_an_unfinished_run_when_the_connection_ends(caplog):
    caplog.set_level(logging.DEBUG, logger="rtedge.testing")
    with VLLMServer(transcript="lights on") as srv:
        with rtedge.connect("vllm", url=srv.url, model=DEFAULT_MODEL, connect_timeout=5) as client:
            client.send(ev.InputAudioBufferCommit())
            for _ in range(3):
                client.append_audio(np.full(320, 1000, dtype=np.int16), rate=16000)
            client.wait_sent(5)
            srv.wait_for_received("input_audio_buffer.append", nth=3)
    # the server's stop joined the connection's handler, which logged the run's count as it ended
    lines = _lines(caplog)
    _index(lines, rf": received session\.update \{{\"model\": \"{DEFAULT_MODEL}\"\}}")
    _index(lines, r": sent session\.created ")
    assert _index(lines, r": received input_audio_buffer\.append \{\"audio\": \"<audio: 640 bytes>\"\}") \
        < _index(lines, r": received 2 more input_audio_buffer\.append$")


def test_describe_cuts_long_events_and_keeps_text_deltas():
    long = describe({"type": "session.update", "session": {"instructions": "x" * 1000}})
    assert len(long) == MAX_LINE and long.endswith("...")
    text = describe({"type": "response.output_audio_transcript.delta", "delta": "Hello"})
    assert text == 'response.output_audio_transcript.delta {"delta": "Hello"}'
    one = base64.b64encode(b"x").decode()  # padded: 'eA=='
    assert describe({"type": "input_audio_buffer.append", "audio": one}).endswith('"<audio: 1 bytes>"}')


@pytest.mark.parametrize("event, hidden", [
    ({"type": "input_image_buffer.append", "image": CHUNK_B64}, CHUNK_B64[:40]),
    ({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_audio", "audio": CHUNK_B64}]}}, CHUNK_B64[:40]),
    ({"type": "session.update", "session": {"client_secret": {"value": "ek_SECRET"}}}, "ek_SECRET"),
    ({"<invalid json>": '{"type": "input_audio_buffer.append", "audio": "' + CHUNK_B64[:150]},
     CHUNK_B64[:40]),
])
def test_describe_shows_no_media_or_credential_at_any_depth(event, hidden):
    assert hidden not in describe(event)
