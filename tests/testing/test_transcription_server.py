"""The local server's GA transcription sessions (``?intent=transcription``), and its per-session audio
record and session-limit knobs, driven by a plain websocket-client.

Every event either side sends validates under openai-python's own GA types (``RealtimeServerEvent``
and ``RealtimeClientEvent``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any, Iterator

import numpy as np
import pydantic
import pytest
import websocket
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

from rtedge.testing import RealtimeServer

SERVER_EVENT = pydantic.TypeAdapter(RealtimeServerEvent)
CLIENT_EVENT = pydantic.TypeAdapter(RealtimeClientEvent)

pytestmark = pytest.mark.timeout(30)


OPEN: list[Peer] = []


class Peer:
    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=5)
        OPEN.append(self)

    def send(self, event: dict[str, Any]) -> None:
        CLIENT_EVENT.validate_python(event)
        self.ws.send(json.dumps(event))

    def recv(self) -> dict[str, Any]:
        event = json.loads(self.ws.recv())
        SERVER_EVENT.validate_python(event)
        return event

    def until(self, kind: str) -> list[dict[str, Any]]:
        seen = []
        for _ in range(500):
            seen.append(self.recv())
            if seen[-1]["type"] == kind:
                return seen
        raise AssertionError(f"no {kind}")

    def append(self, pcm: np.ndarray) -> None:
        self.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm.astype("<i2").tobytes()).decode()})


@pytest.fixture
def server() -> Iterator[RealtimeServer]:
    with RealtimeServer(realtime=False, seed=3, input_transcript="turn on the lights") as srv:
        yield srv
        while OPEN:
            OPEN.pop().ws.close()
    for event in srv.sent:
        SERVER_EVENT.validate_python(event)


def _tone(ms: int, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(24 * ms) / 24000
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def test_transcription_session_created_and_updated(server: RealtimeServer) -> None:
    peer = Peer(server.url + "?intent=transcription")
    created = peer.recv()
    assert created["type"] == "session.created"
    session = created["session"]
    assert session["type"] == "transcription" and session["expires_at"] > time.time()
    assert "output" not in session["audio"] and "instructions" not in session
    peer.send({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "transcription": {"model": "gpt-4o-transcribe", "language": "en"}, "turn_detection": None}}}})
    updated = peer.recv()
    assert updated["type"] == "session.updated"
    assert updated["session"]["audio"]["input"]["transcription"]["model"] == "gpt-4o-transcribe"
    assert updated["session"]["audio"]["input"]["turn_detection"] is None


@pytest.mark.parametrize("event, code", [
    ({"type": "session.update", "session": {"type": "realtime"}}, "invalid_value"),
    ({"type": "session.update", "session": {"type": "transcription", "instructions": "hi"}}, "unknown_parameter"),
    ({"type": "response.create"}, "invalid_value"),
    ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty"),
])
def test_transcription_session_refuses_realtime_things(server: RealtimeServer, event: dict[str, Any],
                                                       code: str) -> None:
    peer = Peer(server.url + "?intent=transcription")
    peer.recv()
    peer.ws.send(json.dumps(event))
    error = peer.until("error")[-1]
    assert error["error"]["code"] == code


def test_manual_commit_is_transcribed(server: RealtimeServer) -> None:
    peer = Peer(server.url + "?intent=transcription")
    peer.recv()
    peer.send({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "turn_detection": None}}}})
    peer.until("session.updated")
    peer.append(_tone(400))
    peer.send({"type": "input_audio_buffer.commit"})
    events = peer.until("conversation.item.input_audio_transcription.completed")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "input_audio_buffer.committed"
    item_id = events[0]["item_id"]
    deltas = [e for e in events if e["type"] == "conversation.item.input_audio_transcription.delta"]
    assert deltas and all(d["item_id"] == item_id for d in deltas)
    done = events[-1]
    assert done["item_id"] == item_id and done["transcript"] == "turn on the lights"
    assert "".join(d["delta"] for d in deltas) == done["transcript"]
    assert done["usage"]["type"] == "tokens"
    assert not [e for e in server.sent if e["type"].startswith("response.")]


def test_server_vad_commits_by_itself(server: RealtimeServer) -> None:
    peer = Peer(server.url + "?intent=transcription")
    peer.recv()
    peer.append(np.concatenate([np.zeros(24 * 300, np.int16), _tone(800), np.zeros(24 * 1000, np.int16)]))
    events = peer.until("conversation.item.input_audio_transcription.completed")
    kinds = [e["type"] for e in events]
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("input_audio_buffer.speech_stopped") \
        < kinds.index("input_audio_buffer.committed")
    assert "response.created" not in [e["type"] for e in server.sent]


def test_audio_record_counts_and_checksums_each_session(server: RealtimeServer) -> None:
    chunks = [_tone(100, 1000 + i) for i in range(5)]
    peers = [Peer(server.url + "?model=gpt-realtime"), Peer(server.url + "?intent=transcription")]
    for peer in peers:
        peer.recv()
    for chunk in chunks[:2]:
        peers[0].append(chunk)
    for chunk in chunks[2:]:
        peers[1].append(chunk)
    for i, peer in enumerate(peers):  # a commit round trip: everything before it was processed
        peer.send({"type": "input_audio_buffer.clear"})
        peer.until("input_audio_buffer.cleared")
    first, second = server.audio_records
    assert (first.samples, second.samples) == (2 * 2400, 3 * 2400)
    assert first.sha256 == hashlib.sha256(np.concatenate(chunks[:2]).astype("<i2").tobytes()).hexdigest()
    assert np.array_equal(np.concatenate([first.audio(), second.audio()]), np.concatenate(chunks))
    assert [n for _, n in second.arrivals] == [2400] * 3 and first.rate == 24000
    assert first.first_at is not None and first.last_at is not None and first.first_at <= first.last_at


def test_expiry_knobs() -> None:
    with RealtimeServer(realtime=False, session_duration_s=0.5, announce_expiry=False) as server:
        peer = Peer(server.url + "?intent=transcription")
        created = peer.recv()["session"]
        assert "expires_at" not in created
        error = peer.until("error")[-1]["error"]
        assert error["code"] == "session_expired" and "0.5 seconds" in error["message"]
        while True:
            opcode, frame = peer.ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
        assert int.from_bytes(frame.data[:2], "big") == 1001
        assert frame.data[2:].decode() == error["message"]
