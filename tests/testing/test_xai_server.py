"""RealtimeServer(dialect="xai") and (dialect="azure"), driven by a plain websocket-client.

The xAI expectations come from the protocol notes (xAI section) and from the recorded xAI sessions in
``../shared/fixtures/recorded/xai`` (the comparisons with them are skipped when they are absent): the
shapes of the session objects, the top-level usage, the event types of a turn, and the recorded client
events replayed against the server without a single error.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import websocket

import rtedge
from rtedge.testing import RealtimeServer

RECORDED_XAI = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "recorded" / "xai"
MODEL = "grok-voice-think-fast-1.0"

pytestmark = pytest.mark.timeout(30)


class Peer:
    """JSON in and out over a plain websocket; every received event is kept in ``log``."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=5)
        self.log: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any]) -> None:
        self.ws.send(json.dumps(event))

    def recv(self) -> dict[str, Any]:
        event = json.loads(self.ws.recv())
        self.log.append(event)
        return event

    def until(self, kind: str, limit: int = 2000) -> list[dict[str, Any]]:
        """Events up to and including the next one of type ``kind``."""
        got = []
        for _ in range(limit):
            got.append(self.recv())
            if got[-1]["type"] == kind:
                return got
        raise AssertionError(f"no {kind} in {limit} events")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def server():
    with RealtimeServer(dialect="xai", realtime=False, seed=11, xai_ping_s=None) as srv:
        yield srv


@pytest.fixture
def peer(server):
    p = Peer(server.url + f"?model={MODEL}")
    yield p
    p.close()


def _recordings() -> list[Any]:
    if not RECORDED_XAI.is_dir() or not sorted(RECORDED_XAI.glob("*.yaml")):
        reason = f"no recorded xAI sessions at {RECORDED_XAI}"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(p, id=p.stem) for p in sorted(RECORDED_XAI.glob("*.yaml"))]


def _load(path: Path) -> list[tuple[str, dict[str, Any]]]:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(path.read_text())
    return [(i["direction"], i["data"]) for i in data["interactions"] if isinstance(i.get("data"), dict)]


def _recorded(kind: str, where: Callable[[dict[str, Any]], bool] = lambda e: True) -> dict[str, Any] | None:
    """The first recorded server event of type ``kind`` (None when the recordings are absent)."""
    for path in sorted(RECORDED_XAI.glob("*.yaml")) if RECORDED_XAI.is_dir() else ():
        for direction, data in _load(path):
            if direction == "received" and data.get("type") == kind and where(data):
                return data
    return None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _speech_like(seconds: float, rate: int, silence_s: float = 1.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    tone = (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2")
    return np.concatenate([tone, np.zeros(int(silence_s * rate), "<i2")]).tobytes()


def _append(peer: Peer, pcm: bytes, chunk: int = 9600) -> None:
    for i in range(0, len(pcm), chunk):
        peer.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[i:i + chunk]).decode()})


# ---------------------------------------------------------------------------------------------- opening


def test_opening_events_and_ids(server: RealtimeServer, peer: Peer) -> None:
    created, conversation, ping = peer.recv(), peer.recv(), peer.recv()
    kinds = [created["type"], conversation["type"], ping["type"]]
    assert kinds == ["session.created", "conversation.created", "ping"]
    session = created["session"]
    assert session["model"] == MODEL and session["voice"] == "ara" and session["modalities"] == ["audio"]
    assert session["turn_detection"] == {"type": None} and session["tools"] == [] and "type" not in session
    assert len(session["id"]) == 32 and _is_uuid(session["id"])
    assert conversation["conversation"]["object"] == "realtime.conversation"
    assert isinstance(ping["timestamp"], int) and ping["previous_item_id"] is None
    assert all(_is_uuid(e["event_id"]) for e in (created, conversation, ping))
    recorded = _recorded("session.created")
    if recorded is not None:
        assert set(session) == set(recorded["session"])
        assert set(created) == set(recorded)


def test_ping_events_repeat() -> None:
    with RealtimeServer(dialect="xai", realtime=False, xai_ping_s=0.1) as srv:
        peer = Peer(srv.url)
        try:
            events = peer.until("ping") + peer.until("ping") + peer.until("ping")
            pings = [e for e in events if e["type"] == "ping"]
            assert len(pings) == 3 and pings[0]["timestamp"] <= pings[1]["timestamp"] <= pings[2]["timestamp"]
        finally:
            peer.close()
    with pytest.raises(ValueError):
        RealtimeServer(dialect="xai", xai_ping_s=0)
    with pytest.raises(ValueError):
        RealtimeServer(dialect="gemini")


# ------------------------------------------------------------------------------------------- session.update


def test_session_update_shape_and_formats(server: RealtimeServer, peer: Peer) -> None:
    peer.until("ping")
    peer.send({"type": "session.update", "session": {
        "instructions": "Be brief.", "voice": "rex",
        "turn_detection": {"type": "server_vad", "threshold": 0.6, "create_response": True},
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000},
                            "transcription": {"model": "grok-transcribe"}},
                  "output": {"format": {"type": "audio/pcm", "rate": 48000}}},
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}})
    updated = peer.until("session.updated")[-1]["session"]
    assert updated["turn_detection"]["type"] == "server_vad" and updated["turn_detection"]["threshold"] == 0.6
    assert updated["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 16000}
    assert updated["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 48000}
    assert updated["tools"] == [{"type": "function", "function": {"name": "get_weather",
                                                                  "parameters": {"type": "object"}}}]
    assert updated["input_audio_transcription"] == {"model": "grok-transcribe"}
    assert server.sessions[-1]["voice"] == "rex" and "voice" not in updated
    recorded = _recorded("session.updated", lambda e: "tools" in e["session"])
    if recorded is not None:
        assert set(updated) == set(recorded["session"])
        assert set(updated["audio"]["input"]) == set(recorded["session"]["audio"]["input"])
    # {"type": null} means manual turns, like null
    peer.send({"type": "session.update", "session": {"turn_detection": {"type": None}}})
    assert peer.until("session.updated")[-1]["session"]["turn_detection"] == {"type": None}
    assert server.sessions[-1]["turn_detection"] == {"type": None}
    peer.send({"type": "session.update", "session": {"tools": []}})
    assert "tools" not in peer.until("session.updated")[-1]["session"]  # as recorded without tools


@pytest.mark.parametrize(("session", "code", "param"), [
    ({"type": "realtime"}, "unknown_parameter", "session.type"),
    ({"output_modalities": ["audio"]}, "unknown_parameter", "session.output_modalities"),
    ({"audio": {"output": {"voice": "ara"}}}, "unknown_parameter", "session.audio.output.voice"),
    ({"turn_detection": {"type": "semantic_vad"}}, "invalid_value", "session.turn_detection.type"),
    ({"turn_detection": {"type": "server_vad", "threshold": 0.95}}, "decimal_above_max_value",
     "session.turn_detection.threshold"),
    ({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 11025}}}}, "invalid_value",
     "session.audio.input.format.rate"),
    ({"audio": {"input": {"format": {"type": "audio/pcmu", "rate": 16000}}}}, "invalid_value",
     "session.audio.input.format.rate"),
    ({"voice": ""}, "invalid_value", "session.voice"),
])
def test_session_update_refusals(peer: Peer, session: dict[str, Any], code: str, param: str) -> None:
    peer.until("ping")
    peer.send({"type": "session.update", "event_id": "evt_1", "session": session})
    error = peer.until("error")[-1]["error"]
    assert (error["code"], error["param"], error["event_id"]) == (code, param, "evt_1")


@pytest.mark.parametrize("kind", ["conversation.item.truncate", "conversation.item.retrieve"])
def test_truncate_and_retrieve_are_refused(peer: Peer, kind: str) -> None:
    peer.until("ping")
    peer.send({"type": kind, "event_id": "evt_t", "item_id": "x", "content_index": 0, "audio_end_ms": 10})
    error = peer.until("error")[-1]["error"]
    assert error["code"] == "invalid_value" and error["param"] == "type" and error["event_id"] == "evt_t"
    assert kind in error["message"]


# ---------------------------------------------------------------------------------------------- responses


def test_text_turn_usage_at_the_top_level(server: RealtimeServer, peer: Peer) -> None:
    peer.until("ping")
    turns = []
    for text in ("Hello?", "And again?"):
        peer.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
        peer.send({"type": "response.create"})
        turns.append(peer.until("response.done"))
    kinds = {e["type"] for turn in turns for e in turn}
    assert not kinds & {"conversation.item.done", "rate_limits.updated", "response.output_text.delta"}
    assert not any("obfuscation" in e for turn in turns for e in turn)
    assert all("previous_item_id" in e and _is_uuid(e["event_id"]) for turn in turns for e in turn)
    done = turns[0][-1]
    assert done["response"]["usage"] == {} and done["response"]["status_details"] == "unimplemented"
    assert done["response_id"] == done["response"]["id"] and _is_uuid(done["response_id"])
    usage = done["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_token_details"] == {"text_tokens": usage["input_tokens"], "audio_tokens": 0,
                                            "grok_tokens": 0}
    assert usage["output_token_details"]["grok_tokens"] == 0
    assert usage["output_audio_seconds"] > 0.3
    second = turns[1][-1]["usage"]
    running = usage["output_audio_seconds"] + second["output_audio_seconds"]
    assert second["billable_audio_seconds"] == int(running)  # a running session total
    assert done["response"]["output"][0]["content"][0]["type"] == "audio"
    deltas = [e for e in turns[0] if e["type"] == "response.output_audio.delta"]
    assert deltas and all(e["audio_duration_ms"] == 40 for e in deltas[:-1])
    assert all("ts" in e for e in deltas)
    recorded = _recorded("response.done")
    if recorded is not None:
        assert set(done) == set(recorded)
        assert set(usage) == set(recorded["usage"])
        assert set(usage["input_token_details"]) == set(recorded["usage"]["input_token_details"])
        assert set(done["response"]) == set(recorded["response"])


def test_text_output_events_take_xai_names(server: RealtimeServer, peer: Peer) -> None:
    peer.until("ping")
    session = server._session(0)
    with session.cond:
        out = session._translate({"type": "response.output_text.delta", "response_id": "r", "item_id": "i",
                                  "output_index": 0, "content_index": 0, "delta": "Hi", "obfuscation": "xx"})
        done = session._translate({"type": "response.output_text.done", "response_id": "r", "item_id": "i",
                                   "output_index": 0, "content_index": 0, "text": "Hi"})
    assert out is not None and done is not None
    assert out["type"] == "response.text.delta" and "obfuscation" not in out
    assert done["type"] == "response.text.done"


def test_text_only_output_is_refused(peer: Peer) -> None:
    peer.until("ping")
    peer.send({"type": "response.create", "event_id": "evt_r", "response": {"output_modalities": ["text"]}})
    error = peer.until("error")[-1]["error"]
    assert error["code"] == "invalid_value" and error["event_id"] == "evt_r"


def test_manual_commit_is_answered_and_a_create_after_it_is_dropped(server: RealtimeServer,
                                                                    peer: Peer) -> None:
    server.response_delay = 0.5  # the answer to the commit is still running when the create arrives
    peer.until("ping")
    _append(peer, _speech_like(0.5, 24000, silence_s=0.1))
    peer.send({"type": "input_audio_buffer.commit"})
    peer.send({"type": "response.create", "event_id": "evt_late"})
    events = peer.until("response.done")
    assert [e["type"] for e in events].count("response.created") == 1
    assert not [e for e in events if e["type"] == "error"]
    server.wait_for_received("response.create")
    assert len([e for e in server.sent if e["type"] == "response.created"]) == 1


def test_server_vad_turn_with_cumulative_transcripts(server: RealtimeServer, peer: Peer) -> None:
    server.input_transcript = "Turn on the lights."
    peer.until("ping")
    peer.send({"type": "session.update", "session": {
        "turn_detection": {"type": "server_vad"},
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000},
                            "transcription": {"model": "grok-transcribe"}}}}})
    peer.until("session.updated")
    _append(peer, _speech_like(0.8, 16000))
    events = peer.until("conversation.item.input_audio_transcription.completed")
    kinds = [e["type"] for e in events]
    assert "input_audio_buffer.speech_started" in kinds and "input_audio_buffer.committed" in kinds
    updates = [e["transcript"] for e in events if e["type"].endswith("transcription.updated")]
    assert len(updates) > 1 and updates[-1] == "Turn on the lights."
    assert all(b.startswith(a) for a, b in zip(updates, updates[1:]))  # cumulative
    assert events[-1]["transcript"] == "Turn on the lights." and "usage" not in events[-1]
    assert peer.until("response.done")[-1]["response"]["status"] == "completed"
    # the user's audio arrived at 16 kHz: 0.8 s of speech and 1 s of silence, all in the committed item
    item = server.conversation()[0]
    assert item["role"] == "user" and item["content"][0]["transcript"] == "Turn on the lights."


@pytest.mark.parametrize("path", _recordings())
def test_recorded_client_events_replay_without_errors(path: Path) -> None:
    interactions = _load(path)
    weather = "It is foggy and 12 degrees in London."
    with RealtimeServer(dialect="xai", realtime=False, seed=12, reply_text=weather,
                        tool_arguments='{"city":"London"}') as srv:
        peer = Peer(srv.url + f"?model={MODEL}")
        try:
            peer.until("ping")
            responses = 0
            for direction, data in interactions:
                if direction != "sent":
                    continue
                peer.send(data)
                if data["type"] == "session.update":
                    peer.until("session.updated")
                elif data["type"] == "response.create":
                    responses += 1
                    peer.until("response.done")
        finally:
            peer.close()
        srv.wait_for_sent("response.done", nth=responses)
        ours = {e["type"] for e in srv.sent}
    assert "error" not in ours
    recorded = {data["type"] for direction, data in interactions if direction == "received"}
    assert recorded <= ours | {"response.function_call_arguments.delta"}, recorded - ours
    assert ours - recorded <= {"response.function_call_arguments.delta",
                               "response.function_call_arguments.done", "response.output_item.added",
                               "response.output_item.done"}


# ---------------------------------------------------------------------------------------------- azure


def test_azure_mode_serves_the_azure_path_with_an_api_key() -> None:
    with RealtimeServer(dialect="azure", realtime=False, api_key="azkey") as srv:
        assert srv.url.endswith("/openai/v1/realtime")
        with rtedge.connect("azure", url=srv.url, model="my-deployment", api_key="azkey") as client:
            client.send_text("Hi")
            assert client.wait_for("response.done", timeout=10).status == "completed"
        assert srv.handshakes[-1]["headers"]["api-key"] == "azkey"
        with pytest.raises(rtedge.HandshakeError) as info:  # the OpenAI path is not Azure's
            rtedge.connect("openai", url=srv.url.replace("/openai/v1/realtime", "/v1/realtime"),
                           api_key="azkey")
        assert info.value.status_code == 404
