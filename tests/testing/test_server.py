"""RealtimeServer driven by a plain websocket-client, the way a third-party client would.

Every server event these tests receive is validated against openai-python's
``RealtimeServerEvent`` union, which checks that the emulation produces the
real GA shapes.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
import time
import wave
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pydantic
import pytest
import websocket
from openai.types.realtime import RealtimeServerEvent

from rtedge.audio import codec
from rtedge.testing import (
    RealtimeServer,
    Reply,
    Turn,
    client_ssl_context,
    make_self_signed_cert,
    server_ssl_context,
)

SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "speech"
VALIDATOR = pydantic.TypeAdapter(RealtimeServerEvent)
TEXT_TURN = [
    "conversation.item.added", "conversation.item.done", "response.created", "response.output_item.added",
    "conversation.item.added", "response.content_part.added", "response.output_text.delta",
    "response.output_text.done", "response.content_part.done", "conversation.item.done",
    "response.output_item.done", "response.done", "rate_limits.updated",
]

pytestmark = pytest.mark.timeout(30)


class Peer:
    """A minimal test client: JSON in/out, every received event schema-checked."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.ws = websocket.create_connection(url, timeout=5, **kwargs)
        self.log: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any]) -> None:
        self.ws.send(json.dumps(event))

    def recv(self) -> dict[str, Any]:
        event = json.loads(self.ws.recv())
        VALIDATOR.validate_python(event)
        assert event["event_id"].startswith("event_")
        self.log.append(event)
        return event

    def until(self, kind: str, limit: int = 2000) -> list[dict[str, Any]]:
        """Receive until an event of ``kind`` arrives; returns everything received, it included."""
        seen = []
        for _ in range(limit):
            seen.append(self.recv())
            if seen[-1]["type"] == kind:
                return seen
        raise AssertionError(f"no {kind} in {limit} events")

    def update(self, **session: Any) -> dict[str, Any]:
        self.send({"type": "session.update", "session": {"type": "realtime", **session}})
        return self.until("session.updated")[-1]

    def say(self, text: str) -> None:
        self.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})

    def closed(self) -> tuple[int | None, str]:
        """Read until the server's close frame; returns its code and reason."""
        while True:
            opcode, frame = self.ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                data = frame.data
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                self.ws.shutdown()  # the close handshake is done (the library replied); drop TCP
                return code, data[2:].decode()
            if opcode == websocket.ABNF.OPCODE_TEXT:
                VALIDATOR.validate_python(json.loads(frame.data))

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def server() -> Iterator[RealtimeServer]:
    with RealtimeServer(realtime=False, seed=7) as srv:
        yield srv
    assert_no_server_threads()
    ids = [event["event_id"] for event in srv.sent]
    assert len(set(ids)) == len(ids)  # every server event has its own id
    for event in srv.sent:  # including the ones a test did not read
        VALIDATOR.validate_python(event)


@pytest.fixture
def peer(server: RealtimeServer) -> Iterator[Peer]:
    client = Peer(server.url + "?model=gpt-realtime")
    assert client.recv()["type"] == "session.created"
    yield client
    client.close()


def assert_no_server_threads() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith("rtedge-testserver"):
            thread.join(5)
            assert not thread.is_alive(), thread.name


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def audio_bytes(events: list[dict[str, Any]]) -> bytes:
    """The decoded audio of all ``response.output_audio.delta`` events."""
    deltas = [e["delta"] for e in events if e["type"] == "response.output_audio.delta"]
    return b"".join(base64.b64decode(delta) for delta in deltas)


def joined(events: list[dict[str, Any]], kind: str) -> str:
    """The concatenated ``delta`` text of all events of ``kind``."""
    return "".join(e["delta"] for e in events if e["type"] == kind)


def speech(name: str) -> np.ndarray:
    """A spoken fixture phrase, resampled to 24 kHz int16."""
    if not SPEECH.is_dir():
        pytest.skip("../shared/fixtures/speech is not present")
    with wave.open(str(SPEECH / name)) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
        rate = wav.getframerate()
    resampler = codec.Resampler(rate, 24000)
    return np.concatenate([resampler.process(pcm), resampler.flush()])


def append(peer: Peer, pcm: np.ndarray, chunk_ms: int = 100) -> None:
    step = 24 * chunk_ms
    for start in range(0, pcm.size, step):
        peer.send({"type": "input_audio_buffer.append",
                   "audio": base64.b64encode(pcm[start : start + step].astype("<i2").tobytes()).decode()})


def silence(ms: int) -> np.ndarray:
    return np.zeros(24 * ms, dtype=np.int16)


# ---------------------------------------------------------------------------- session config


def test_session_created_has_ga_defaults(server: RealtimeServer) -> None:
    before = time.time()
    client = Peer(server.url + "?model=gpt-realtime-mini")
    created = client.recv()
    client.close()
    session = created["session"]
    assert created["type"] == "session.created"
    assert session["id"].startswith("sess_") and session["object"] == "realtime.session"
    assert session["model"] == "gpt-realtime-mini" and session["type"] == "realtime"
    assert session["audio"]["input"]["turn_detection"] == {
        "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 200,
        "idle_timeout_ms": None, "create_response": True, "interrupt_response": True}
    assert session["audio"]["input"]["transcription"] is None
    assert session["audio"]["input"]["noise_reduction"] is None
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy",
                                          "speed": 1.0}
    assert session["output_modalities"] == ["audio"] and session["truncation"] == "auto"
    assert session["tools"] == [] and session["max_output_tokens"] == "inf"
    assert before + 3590 <= session["expires_at"] <= time.time() + 3610


def test_session_update_merges_and_null_clears(server: RealtimeServer, peer: Peer) -> None:
    first = peer.update(instructions="Be brief.", audio={"output": {"voice": "marin"}},
                        tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}])
    assert first["session"]["instructions"] == "Be brief."
    assert first["session"]["audio"]["output"]["voice"] == "marin"
    second = peer.update(audio={"input": {"turn_detection": None, "transcription": {"model": "whisper-1"}}},
                         tools=[])
    session = second["session"]
    assert session["audio"]["input"]["turn_detection"] is None  # explicit null is echoed
    transcription = session["audio"]["input"]["transcription"]
    assert transcription == {"model": "whisper-1", "language": None, "prompt": None}
    assert session["instructions"] == "Be brief." and session["audio"]["output"]["voice"] == "marin"
    assert session["tools"] == []
    assert peer.update(instructions="")["session"]["instructions"] == ""
    assert server.sessions[-1] == peer.log[-1]["session"]


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"instructions": "x"}, "missing_required_parameter", "session.type"),
        ({"type": "realtime", "voice": "alloy"}, "unknown_parameter", "session.voice"),
        ({"type": "realtime", "turn_detection": {"type": "server_vad"}}, "unknown_parameter",
         "session.turn_detection"),
        ({"type": "realtime", "input_audio_format": "pcm16"}, "unknown_parameter",
         "session.input_audio_format"),
        ({"type": "realtime",
          "audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": None}}}},
         "invalid_type", "session.audio.input.turn_detection.create_response"),
        ({"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
         "integer_below_min_value", "session.audio.input.format.rate"),
        ({"type": "realtime", "output_modalities": ["audio", "text"]}, "invalid_value",
         "session.output_modalities"),
    ],
)
def test_session_update_validation(server: RealtimeServer, peer: Peer, session: dict[str, Any], code: str,
                                   param: str) -> None:
    peer.send({"type": "session.update", "event_id": "evt_client_1", "session": session})
    error = peer.until("error")[-1]["error"]
    assert (error["type"], error["code"], error["param"], error["event_id"]) == (
        "invalid_request_error", code, param, "evt_client_1")
    if code == "integer_below_min_value":
        assert "Expected a value >= 24000" in error["message"]
    # the rejected update changed nothing
    assert server.sessions[-1]["audio"]["input"]["turn_detection"]["type"] == "server_vad"


def test_unknown_event_and_bad_frames(peer: Peer) -> None:
    peer.send({"type": "nope", "event_id": "evt_9"})
    error = peer.until("error")[-1]["error"]
    assert error["code"] == "invalid_value" and error["param"] == "type" and error["event_id"] == "evt_9"
    assert error["message"].startswith("Invalid value: 'nope'. Supported values are: 'session.update',")
    peer.ws.send("not json")
    assert peer.until("error")[-1]["error"]["code"] == "invalid_json"
    peer.ws.send_binary(b"\x00\x01")
    assert peer.until("error")[-1]["error"]["code"] == "invalid_event"
    peer.ws.send("[" * 100_000 + "]" * 100_000)  # deeper than the JSON parser recurses
    assert peer.until("error")[-1]["error"]["code"] == "invalid_json"
    peer.send({"type": "input_audio_buffer.clear"})  # the connection goes on
    assert peer.until("input_audio_buffer.cleared")


# ---------------------------------------------------------------------------- responses


def test_text_turn_full_sequence(server: RealtimeServer, peer: Peer) -> None:
    server.reply_text = "Hi there, friend!"
    peer.update(output_modalities=["text"])
    peer.say("Say hi in three words")
    peer.send({"type": "response.create"})
    events = peer.until("rate_limits.updated")
    collapsed = [t for i, t in enumerate(types(events)) if i == 0 or t != types(events)[i - 1]]
    assert collapsed == TEXT_TURN
    done = events[-2]["response"]
    assert done["status"] == "completed" and done["status_details"] is None
    assert done["output"][0]["content"] == [{"type": "output_text", "text": "Hi there, friend!"}]
    assert joined(events, "response.output_text.delta") == "Hi there, friend!"
    usage = done["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    assert set(usage["input_token_details"]) >= {"text_tokens", "audio_tokens", "cached_tokens",
                                                 "cached_tokens_details"}
    assert events[4]["previous_item_id"] == events[0]["item"]["id"]  # assistant item follows the user item


def test_audio_reply_in_output_format_and_transcript(server: RealtimeServer, peer: Peer) -> None:
    peer.say("hello")
    peer.send({"type": "response.create"})
    events = peer.until("response.done")
    audio = audio_bytes(events)
    transcript = joined(events, "response.output_audio_transcript.delta")
    assert transcript == "I heard you."
    assert 0.6 < len(audio) / 48000 < 1.6  # int16 at 24 kHz, roughly 60-110 ms per character
    assert np.abs(np.frombuffer(audio, dtype="<i2")).max() > 3000
    kinds = types(events)
    assert kinds.index("response.output_audio.done") < kinds.index("response.content_part.done")
    part = events[-1]["response"]["output"][0]["content"][0]
    assert part == {"type": "output_audio", "transcript": "I heard you."}
    # G.711 output: 8 kHz, one byte per sample, per-response text override
    peer.update(audio={"output": {"format": {"type": "audio/pcmu"}}})
    peer.send({"type": "response.create"})
    events = peer.until("response.done")
    ulaw = audio_bytes(events)
    assert 0.6 < len(ulaw) / 8000 < 1.6
    assert events[-1]["response"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    peer.send({"type": "response.create", "response": {"output_modalities": ["text"], "metadata": {"k": "v"},
                                                       "conversation": "none"}})
    events = peer.until("response.done")
    assert "response.output_audio.delta" not in types(events)
    assert "conversation.item.added" not in types(events)  # out of band: not added to the conversation
    assert events[-1]["response"]["metadata"] == {"k": "v"}
    assert events[-1]["response"]["conversation_id"] is None
    assert len(server.conversation()) == 3


def test_audio_turn_with_server_vad(server: RealtimeServer, peer: Peer) -> None:
    phrase = speech("turn_on_the_kitchen_lights.wav")
    append(peer, np.concatenate([silence(1000), phrase, silence(800)]))
    events = peer.until("response.done")
    kinds = types(events)
    order = ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
             "input_audio_buffer.committed", "conversation.item.added", "conversation.item.done",
             "response.created", "response.output_item.added"]
    assert [k for k in kinds if k in order][: len(order)] == order
    started, stopped, committed = events[0], events[1], events[2]
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert 900 <= started["audio_start_ms"] <= 1400  # onset at ~1.3 s minus 300 ms prefix padding
    speech_end_ms = 1000 + int(np.flatnonzero(np.abs(phrase) > 300)[-1]) // 24
    assert speech_end_ms + 100 <= stopped["audio_end_ms"] <= speech_end_ms + 300  # + silence_duration_ms
    user = events[3]["item"]
    assert user["role"] == "user" and user["content"] == [{"type": "input_audio", "transcript": None}]
    assert events[-1]["response"]["status"] == "completed"
    peer.send({"type": "conversation.item.retrieve", "item_id": user["id"]})
    retrieved = peer.until("conversation.item.retrieved")[-1]["item"]
    held_ms = len(base64.b64decode(retrieved["content"][0]["audio"])) // 48
    assert abs(held_ms - (stopped["audio_end_ms"] - started["audio_start_ms"])) <= 25


def test_g711_input_with_server_vad_and_transcription(server: RealtimeServer, peer: Peer) -> None:
    phrase = speech("stop.wav")
    pcm8k = np.concatenate([np.zeros(4000, np.int16), codec.Resampler(24000, 8000).process(phrase),
                            np.zeros(4000, np.int16)])
    peer.update(audio={"input": {"format": {"type": "audio/pcmu"}, "transcription": {"model": "whisper-1"}}})
    server.input_transcript = "Stop."
    peer.send({"type": "input_audio_buffer.append",
               "audio": base64.b64encode(codec.ulaw_encode(pcm8k).tobytes()).decode()})
    events = peer.until("conversation.item.input_audio_transcription.completed")
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    assert 400 <= started["audio_start_ms"] <= 700  # 0.8 s to the onset, less 300 ms padding, in ms
    completed = events[-1]
    assert completed["transcript"] == "Stop." and completed["usage"]["type"] == "duration"
    deltas = [e["delta"] for e in events if e["type"] == "conversation.item.input_audio_transcription.delta"]
    assert "".join(deltas) == "Stop."
    assert types(events).index("response.created") < len(events) - 1
    peer.until("response.done")


def test_realtime_pacing_uses_absolute_deadlines(server: RealtimeServer, peer: Peer) -> None:
    server.realtime, server.delta_ms = True, 20
    peer.say("hi")
    peer.send({"type": "response.create"})
    arrivals = []
    for event in peer.until("response.done"):
        if event["type"] == "response.output_audio.delta":
            assert len(base64.b64decode(event["delta"])) <= 960  # 20 ms at 24 kHz
    # measure on a second response, timing each delta as it arrives
    peer.send({"type": "response.create"})
    while True:
        event = peer.recv()
        if event["type"] == "response.output_audio.delta":
            arrivals.append(time.monotonic())
        if event["type"] == "response.done":
            break
    expected = (len(arrivals) - 1) * 0.020
    assert expected * 0.9 <= arrivals[-1] - arrivals[0] <= expected + 0.5


def test_idle_timeout_prompts_once(server: RealtimeServer, peer: Peer) -> None:
    peer.update(output_modalities=["text"], audio={"input": {"turn_detection": {
        "type": "server_vad", "idle_timeout_ms": 300}}})
    peer.say("hello")
    peer.send({"type": "response.create"})
    first_done = time.monotonic()
    peer.until("response.done")
    events = peer.until("response.done")
    assert time.monotonic() - first_done >= 0.3
    kinds = types(events)
    assert kinds[:4] == ["rate_limits.updated", "input_audio_buffer.timeout_triggered",
                         "input_audio_buffer.committed", "conversation.item.added"]
    triggered = events[1]
    assert triggered["item_id"] == events[2]["item_id"]
    assert triggered["audio_end_ms"] >= triggered["audio_start_ms"] >= 0
    with pytest.raises(TimeoutError):  # a nudge is not followed by another nudge
        server.wait_for_sent("input_audio_buffer.timeout_triggered", timeout=0.6, nth=2)


def test_manual_commit_and_clear(server: RealtimeServer, peer: Peer) -> None:
    peer.update(audio={"input": {"turn_detection": None}})
    peer.send({"type": "input_audio_buffer.commit", "event_id": "evt_commit"})
    error = peer.until("error")[-1]["error"]
    assert error["code"] == "input_audio_buffer_commit_empty" and error["event_id"] == "evt_commit"
    assert error["message"].endswith("but buffer only has 0.00ms of audio.")
    append(peer, silence(60))
    peer.send({"type": "input_audio_buffer.commit"})
    assert "only has 60.00ms" in peer.until("error")[-1]["error"]["message"]
    append(peer, silence(60))
    peer.send({"type": "input_audio_buffer.commit"})
    committed = peer.until("conversation.item.done")
    assert types(committed) == [
        "input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
    append(peer, silence(200))
    peer.send({"type": "input_audio_buffer.clear"})
    peer.until("input_audio_buffer.cleared")
    peer.send({"type": "input_audio_buffer.commit"})
    assert peer.until("error")[-1]["error"]["code"] == "input_audio_buffer_commit_empty"
    assert "response.created" not in types(peer.log)  # manual commits never start a response


def test_function_call_round(server: RealtimeServer, peer: Peer) -> None:
    weather = {"type": "function", "name": "get_weather", "description": "Weather for a city",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                              "required": ["city"]}}
    server.tool_arguments = '{"city": "London"}'
    server.reply_text = "It is foggy in London."
    peer.update(output_modalities=["text"], tools=[weather])
    peer.say("What is the weather in London?")
    peer.send({"type": "response.create"})
    events = peer.until("response.done")
    added = next(e for e in events if e["type"] == "response.output_item.added")["item"]
    assert (added["type"], added["name"], added["arguments"], added["status"]) == (
        "function_call", "get_weather", "", "in_progress")
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert "".join(d["delta"] for d in deltas) == done["arguments"] == '{"city": "London"}'
    assert done["call_id"] == added["call_id"] and done["name"] == "get_weather"
    tail = types(events)[types(events).index("response.function_call_arguments.done"):]
    assert tail == ["response.function_call_arguments.done", "conversation.item.done",
                    "response.output_item.done", "response.done"]
    assert events[-1]["response"]["output"][0]["type"] == "function_call"
    peer.send({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": done["call_id"], "output": "foggy, 12 C"}})
    output_item = peer.until("conversation.item.done")[-1]
    assert output_item["previous_item_id"] == added["id"]
    peer.send({"type": "response.create"})
    events = peer.until("response.done")
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "It is foggy in London."


def test_responder_sees_the_conversation(server: RealtimeServer, peer: Peer) -> None:
    seen: list[Turn] = []

    def responder(turn: Turn) -> Reply:
        seen.append(turn)
        return Reply(f"You said: {turn.last_user_text}", np.full(2400, 1000, dtype=np.int16))

    server.responder = responder
    peer.say("lights on")
    peer.send({"type": "response.create", "response": {"instructions": "Be terse."}})
    events = peer.until("response.done")
    assert seen[0].last_user_text == "lights on" and seen[0].instructions == "Be terse."
    audio = audio_bytes(events)
    assert len(audio) == 4800  # the scripted 100 ms, in 40 ms deltas
    assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "You said: lights on"


# ---------------------------------------------------------------------------- cancel and truncate


def test_cancel_active_and_not_active(peer: Peer) -> None:
    peer.send({"type": "response.cancel", "event_id": "evt_c1"})
    error = peer.until("error")[-1]["error"]
    assert (error["code"], error["message"], error["event_id"]) == (
        "response_cancel_not_active", "Cancellation failed: no active response found", "evt_c1")
    with RealtimeServer(reply_text="This is a long answer that takes a few seconds to say.") as slow:
        client = Peer(slow.url + "?model=gpt-realtime")
        client.say("talk")
        client.send({"type": "response.create"})
        client.until("response.output_audio.delta")
        client.send({"type": "response.create"})
        error = client.until("error")[-1]["error"]
        active = next(e for e in client.log if e["type"] == "response.created")["response"]["id"]
        assert error["code"] == "conversation_already_has_active_response" and active in error["message"]
        client.send({"type": "response.cancel"})
        events = client.until("rate_limits.updated")
        done = events[-2]["response"]
        assert done["status"] == "cancelled"
        assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        item = done["output"][0]
        assert item["status"] == "incomplete"
        said = item["content"][0]["transcript"]
        assert said and "This is a long answer that takes a few seconds to say.".startswith(said)
        client.close()


def test_speech_interrupts_response(server: RealtimeServer) -> None:
    server.realtime = True
    server.reply_text = "This is a long answer that takes a few seconds to say."
    client = Peer(server.url + "?model=gpt-realtime")
    client.say("talk")
    client.send({"type": "response.create"})
    client.until("response.output_audio.delta")
    append(client, np.concatenate([speech("stop.wav"), silence(600)]))
    events = client.until("response.done")
    assert types(events).index("input_audio_buffer.speech_started") < len(events) - 1
    done = events[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    events = client.until("response.created")  # the new turn is answered
    assert "input_audio_buffer.committed" in types(events)
    client.close()


def test_truncate(server: RealtimeServer, peer: Peer) -> None:
    server.reply_text = "One two three four five six seven eight."
    peer.say("count")
    peer.send({"type": "response.create"})
    events = peer.until("response.done")
    item = events[-1]["response"]["output"][0]
    sent_ms = sum(len(base64.b64decode(e["delta"])) for e in events
                  if e["type"] == "response.output_audio.delta") // 48
    peer.send({"type": "conversation.item.truncate", "item_id": item["id"], "content_index": 0,
               "audio_end_ms": sent_ms + 500, "event_id": "evt_t"})
    error = peer.until("error")[-1]["error"]
    assert error["message"] == f"Audio content of {sent_ms}ms is already shorter than {sent_ms + 500}ms"
    assert error["event_id"] == "evt_t"
    peer.send({"type": "conversation.item.truncate", "item_id": item["id"], "content_index": 0,
               "audio_end_ms": sent_ms // 2})
    truncated = peer.until("conversation.item.truncated")[-1]
    assert (truncated["item_id"], truncated["audio_end_ms"]) == (item["id"], sent_ms // 2)
    peer.send({"type": "conversation.item.retrieve", "item_id": item["id"]})
    part = peer.until("conversation.item.retrieved")[-1]["item"]["content"][0]
    assert 0 < len(part["transcript"]) < len("One two three four five six seven eight.")
    assert len(base64.b64decode(part["audio"])) // 48 == sent_ms // 2
    user = events[0]["item"]["id"]
    peer.send({"type": "conversation.item.truncate", "item_id": user, "content_index": 0, "audio_end_ms": 0})
    assert peer.until("error")[-1]["error"]["message"] == "Only model output audio messages can be truncated"
    peer.send({"type": "conversation.item.delete", "item_id": user})
    assert peer.until("conversation.item.deleted")[-1]["item_id"] == user
    peer.send({"type": "conversation.item.delete", "item_id": user})
    assert peer.until("error")[-1]["error"]["code"] == "item_delete_invalid_item_id"


def test_item_create_positions(peer: Peer) -> None:
    peer.say("first")
    first = peer.until("conversation.item.done")[-1]["item"]["id"]
    peer.send({"type": "conversation.item.create", "previous_item_id": "root", "item": {
        "type": "message", "role": "system", "content": [{"type": "input_text", "text": "be nice"}]}})
    assert peer.until("conversation.item.done")[-1]["previous_item_id"] is None
    peer.send({"type": "conversation.item.create", "previous_item_id": "item_missing", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]}})
    assert peer.until("error")[-1]["error"]["param"] == "previous_item_id"
    peer.send({"type": "conversation.item.create", "previous_item_id": first, "item": {
        "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hi"}]}})
    assert peer.until("conversation.item.added")[-1]["previous_item_id"] == first


# ---------------------------------------------------------------------------- transport, faults, records


def test_tls_connection(tmp_path: Path) -> None:
    certfile, keyfile = make_self_signed_cert(tmp_path)
    with RealtimeServer(ssl_context=server_ssl_context(certfile, keyfile), realtime=False) as secure:
        assert secure.url.startswith("wss://127.0.0.1:")
        client = Peer(secure.url + "?model=gpt-realtime", sslopt={"ca_certs": certfile})
        assert client.recv()["type"] == "session.created"
        client.close()
        raw = socket.create_connection(("localhost", secure.port), timeout=5)
        with client_ssl_context(certfile).wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            websocket.create_connection(secure.url, timeout=5)
    assert_no_server_threads()


def test_api_key_and_handshake_status() -> None:
    with RealtimeServer(api_key="sk-test") as guarded:
        url = guarded.url + "?model=gpt-realtime"
        for header in ([], ["Authorization: Bearer sk-wrong"]):
            with pytest.raises(websocket.WebSocketBadStatusException) as info:
                websocket.create_connection(url, header=header, timeout=5)
            assert info.value.status_code == 401
        client = Peer(url, header=["Authorization: Bearer sk-test"])
        assert client.recv()["type"] == "session.created"
        client.close()
        guarded.handshake_status = 503
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(url, header=["Authorization: Bearer sk-test"], timeout=5)
        assert info.value.status_code == 503
        assert guarded.connection_count == 1 and len(guarded.handshakes) == 4
        assert guarded.handshakes[2]["headers"]["authorization"] == "Bearer sk-test"
    assert_no_server_threads()


def test_records_injection_and_faults(server: RealtimeServer, peer: Peer) -> None:
    peer.send({"type": "response.cancel", "event_id": "evt_r"})
    assert server.wait_for_received("response.cancel", timeout=5)["event_id"] == "evt_r"
    assert server.wait_for_sent("error", timeout=5)["error"]["event_id"] == "evt_r"
    with pytest.raises(TimeoutError):
        server.wait_for_received("response.create", timeout=0.05)
    assert server.send_event({"type": "rate_limits.updated", "rate_limits": []}) == 1
    assert peer.until("rate_limits.updated")[-1]["rate_limits"] == []
    assert server.active_connections == 1
    assert server.close_connections(4001, "bye") == 1
    assert peer.closed() == (4001, "bye")
    assert server.active_connections == 0
    second = Peer(server.url + "?model=gpt-realtime")
    second.recv()
    server.wait_for_connections(2)
    assert server.drop_connections() == 1
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        second.recv()
    assert len(server.sessions) == 2


def test_abrupt_client_and_stop_are_bounded() -> None:
    srv = RealtimeServer(reply_text="A long reply " * 20).start()
    quiet = Peer(srv.url + "?model=gpt-realtime")
    quiet.say("go")
    quiet.send({"type": "response.create"})
    srv.wait_for_sent("response.output_audio.delta")
    quiet.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    quiet.ws.sock.close()  # vanish mid-response, no close frame
    stalled = Peer(srv.url + "?model=gpt-realtime")  # connected, never reads
    stalled.say("go")
    stalled.send({"type": "response.create"})
    srv.wait_for_connections(2)
    started = time.monotonic()
    srv.stop(timeout=3)
    assert time.monotonic() - started < 8
    assert_no_server_threads()
    stalled.ws.sock.close()


def test_stop_closes_with_1001_and_restart_reuses_the_port() -> None:
    srv = RealtimeServer(realtime=False).start()
    try:
        port = srv.port
        client = Peer(srv.url + "?model=gpt-realtime")
        client.recv()
        stopper = threading.Thread(target=srv.stop)
        stopper.start()
        assert client.closed()[0] == 1001
        stopper.join(10)
        srv.start()
        assert srv.port == port
        again = Peer(srv.url + "?model=gpt-realtime")
        assert again.recv()["type"] == "session.created"
        again.close()
        assert srv.connection_count == 2 and len(srv.sessions) == 2
    finally:
        srv.stop()
    assert_no_server_threads()


def test_session_expiry() -> None:
    with RealtimeServer(session_duration_s=0.3) as short:
        client = Peer(short.url + "?model=gpt-realtime")
        assert client.recv()["session"]["expires_at"] <= time.time() + 1
        error = client.until("error")[-1]["error"]
        assert error["code"] == "session_expired"
        assert error["message"] == "Your session hit the maximum duration of 0.3 seconds."
        assert client.closed() == (1001, error["message"])
    assert_no_server_threads()


def test_repr_names_the_url_to_connect_to_and_the_state() -> None:
    """A test that prints a server (or a failed assertion showing one) tells where it listens."""
    srv = RealtimeServer(dialect="qwen")
    assert repr(srv) == "<RealtimeServer qwen ws://127.0.0.1:0/api-ws/v1/realtime not started>"
    with srv:
        assert repr(srv) == f"<RealtimeServer qwen {srv.url} serving>" and f":{srv.port}/" in srv.url
    assert repr(srv).endswith(" stopped>")


def test_the_servers_connection_log_follows_the_applications_level():
    """An application logging at WARNING saw the server's INFO lines ('server listening', 'connection
    open'): the server set its websockets logger to INFO, which passes them whatever the root's level."""
    import logging

    import rtedge

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        with RealtimeServer() as srv, rtedge.connect(url=srv.url):
            pass
        assert not [r for r in records if r.name.startswith("rtedge.testing") and r.levelno < logging.WARNING]
        root.setLevel(logging.DEBUG)  # under --debug: INFO lines yes, websockets' frame-by-frame lines no
        with RealtimeServer() as srv, rtedge.connect(url=srv.url):
            pass
        server_lines = [r for r in records if r.name == "rtedge.testing.websockets"]
        assert server_lines and all(r.levelno == logging.INFO for r in server_lines)
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
