"""Replay real recorded sessions (OpenAI GA and xAI) through the sans-IO Session.

The recordings live in ``../shared/fixtures/recorded`` relative to the repository; every test here is
skipped when that folder is absent.  Expectations are computed from the recordings themselves
(token sums, argument deltas, audio byte counts), independently of rtedge's code.
"""

from __future__ import annotations

import base64
import copy
import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from rtedge.protocol import (
    AudioFormat,
    ConnectionState,
    FunctionTool,
    InputBufferState,
    ResponseState,
    SemanticVad,
    ServerVad,
    Session,
    SessionConfig,
    Transcription,
)
from rtedge.protocol import events as ev

Validate = Callable[[str | dict[str, Any]], Any]

# Every event type in the OpenAI GA recordings is a documented GA server event (protocol reference §1.3).
GA_TYPES_IN_RECORDINGS = {
    "session.created", "session.updated", "conversation.item.added", "conversation.item.done",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "input_audio_buffer.committed", "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
    "rate_limits.updated", "response.created", "response.done", "response.output_item.added",
    "response.output_item.done", "response.content_part.added", "response.content_part.done",
    "response.output_text.delta", "response.output_text.done", "response.output_audio.delta",
    "response.output_audio.done", "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "conversation.created",
}


def _replay_received(recording: Any) -> tuple[Session, list[tuple[dict[str, Any], ev.ServerEvent]]]:
    session = Session("openai")
    out = []
    for data in recording.received():
        out.append((data, session.receive_message(json.dumps(data))))
    return session, out


def _recorded_usage(done: dict[str, Any]) -> dict[str, Any]:
    """The usage object of a recorded response.done: ``response.usage`` (GA), or top-level (xAI)."""
    usage = done.get("response", {}).get("usage")
    if not usage:
        usage = done.get("usage")
    return usage or {}


# ============================================================================================ received side


def test_every_received_event_parses_and_drives_state(recording: Any) -> None:
    session = Session("openai")
    seen_created = False
    for data in recording.received():
        event = session.receive_message(json.dumps(data))
        assert event.type == data["type"]
        assert event.raw == data
        assert event.event_id == data.get("event_id")
        known = ev.SERVER_EVENT_REGISTRY.get(data["type"])
        assert type(event) is (known or ev.UnknownServerEvent)
        if recording.provider == "openai":
            assert data["type"] in GA_TYPES_IN_RECORDINGS
            assert not isinstance(event, ev.UnknownServerEvent)
        # declared fields carry the wire values (ints, strings, objects) unchanged
        for field in attrs.fields(type(event)):
            if field.name in data and field.name not in ("type", "event_id", "raw", "error") \
                    and data[field.name] is not None:
                assert getattr(event, field.name) == data[field.name], (data["type"], field.name)
        # the machines follow the textbook order in these recordings
        if isinstance(event, ev.SessionCreated):
            seen_created = True
        if seen_created:
            assert session.state.connection is ConnectionState.OPEN
        if isinstance(event, ev.ResponseCreated):
            assert session.state.response is ResponseState.ACTIVE
            assert session.state.response_id == data["response"]["id"]
        if isinstance(event, ev.ResponseDone):
            assert session.state.response is ResponseState.IDLE
        if isinstance(event, ev.InputAudioBufferSpeechStarted):
            assert session.state.input_buffer is InputBufferState.SPEECH
        if isinstance(event, ev.InputAudioBufferCommitted):
            assert session.state.input_buffer is InputBufferState.EMPTY
    # every event was queued, in order
    queued = list(session.events())
    assert [e.raw for e in queued] == list(recording.received())
    assert session.state.last_error is None
    assert session.state.response is ResponseState.IDLE


def test_unknown_types_come_out_unknown(recording: Any) -> None:
    _, events = _replay_received(recording)
    unknown = {data["type"] for data, event in events if isinstance(event, ev.UnknownServerEvent)}
    if recording.provider == "xai":
        assert "ping" in unknown  # xAI's keep-alive is not a GA event
    assert unknown == {data["type"] for data, _ in events if data["type"] not in ev.SERVER_EVENT_REGISTRY}


def test_usage_totals_equal_recorded_sums(recording: Any) -> None:
    session, _ = _replay_received(recording)
    dones = recording.received_of("response.done")
    assert dones, "every recording here ends a response"
    totals: dict[str, int] = defaultdict(int)
    counted = 0
    for done in dones:
        usage = _recorded_usage(done)
        if not usage:
            continue
        counted += 1
        inp = usage.get("input_token_details") or {}
        out = usage.get("output_token_details") or {}
        totals["input_tokens"] += usage.get("input_tokens", 0)
        totals["output_tokens"] += usage.get("output_tokens", 0)
        totals["total_tokens"] += usage.get("total_tokens", 0)
        totals["input_text_tokens"] += inp.get("text_tokens", 0)
        totals["input_audio_tokens"] += inp.get("audio_tokens", 0)
        totals["cached_tokens"] += inp.get("cached_tokens", 0)
        totals["output_text_tokens"] += out.get("text_tokens", 0)
        totals["output_audio_tokens"] += out.get("audio_tokens", 0)
    assert counted == len(dones)  # GA and xAI both report usage on every response.done
    summed = session.state.usage
    assert summed.responses == counted
    for name, value in totals.items():
        assert getattr(summed, name) == value, name
    assert summed.total_tokens > 0
    # and per response
    for done in dones:
        rid = done["response"]["id"]
        assert session.state.usage_by_response[rid].total_tokens == _recorded_usage(done)["total_tokens"]


def test_function_call_arguments_assembled_from_deltas(recording: Any) -> None:
    session = Session("openai")
    deltas: dict[str, str] = defaultdict(str)
    checked = 0
    for data in recording.received():
        if data["type"] == "response.function_call_arguments.delta":
            deltas[data["call_id"]] += data["delta"]
        if data["type"] == "response.function_call_arguments.done":
            call_id = data["call_id"]
            # before the .done arrives, the state holds what the deltas assembled
            assert session.state.function_calls[call_id].arguments == deltas[call_id]
            assert deltas[call_id] == data["arguments"]
            assert not session.state.function_calls[call_id].done
            session.receive_message(json.dumps(data))
            call = session.state.function_calls[call_id]
            assert call.done and call.arguments == data["arguments"] and call.name == data["name"]
            assert call.item_id == data["item_id"]
            json.loads(call.arguments)  # the assembled arguments are the JSON the model meant
            checked += 1
            continue
        session.receive_message(json.dumps(data))
    if "tool" in recording.name:
        assert checked >= 1
    else:
        assert checked == 0 and not session.state.function_calls


def _assert_holds(state: Any, update: Any, path: str = "session") -> None:
    if isinstance(update, dict) and update:
        assert isinstance(state, dict), path
        for key, value in update.items():
            assert key in state, f"{path}.{key} missing"
            _assert_holds(state[key], value, f"{path}.{key}")
    else:
        assert state == update, path


def test_session_reflects_created_merged_with_last_updated(recording: Any) -> None:
    session, _ = _replay_received(recording)
    created = recording.received_of("session.created")[-1]["session"]
    updated = recording.received_of("session.updated")[-1]["session"]
    state = session.state.session
    _assert_holds(state, updated)  # every leaf of the last update is in force
    for key in created.keys() - updated.keys():
        assert state[key] == created[key], key  # what the update did not mention is kept
    assert session.state.session_id == created["id"]
    audio = updated.get("audio", {})
    out_fmt = audio.get("output", {}).get("format")
    if out_fmt:
        assert session.state.output_format == AudioFormat.pcm(out_fmt["rate"])


def test_response_state_ends_idle_after_last_done(recording: Any) -> None:
    session = Session("openai")
    received = list(recording.received())
    last_done = max(i for i, data in enumerate(received) if data["type"] == "response.done")
    for i, data in enumerate(received):
        session.receive_message(json.dumps(data))
        if i == last_done:
            assert session.state.response is ResponseState.IDLE
            assert session.cancel_event() is None
            assert session.state.response_id == data["response"]["id"]


def test_output_audio_and_text_accounted(recording: Any) -> None:
    session, _ = _replay_received(recording)
    nbytes: dict[str, int] = defaultdict(int)
    for data in recording.received_of("response.output_audio.delta"):
        nbytes[data["item_id"]] += len(base64.b64decode(data["delta"]))
    for item_id, n in nbytes.items():
        # PCM16 at 24 kHz is 48 bytes per ms (all these sessions use the default output format)
        assert session.state.audio_received_ms(item_id) == pytest.approx(n / 48)
        truncate = session.truncate_event(item_id, 10**9)
        assert truncate is not None and truncate.audio_end_ms == n // 48
    for data in recording.received_of("response.output_audio_transcript.done"):
        assert session.state.output_items[data["item_id"]].text[data["content_index"]] == data["transcript"]
    for data in recording.received_of("response.output_text.done"):
        assert session.state.output_items[data["item_id"]].text[data["content_index"]] == data["text"]
    for data in recording.received_of("conversation.item.added"):
        assert data["item"]["id"] in session.state.items


def test_interrupt_policy_read_from_the_session(recording: Any) -> None:
    session, _ = _replay_received(recording)
    updated = recording.received_of("session.updated")[-1]["session"]
    td = updated.get("audio", {}).get("input", {}).get("turn_detection", updated.get("turn_detection"))
    expected = isinstance(td, dict) and td.get("interrupt_response", True) is not False
    assert session.interrupt_response_on_speech() is expected


# ============================================================================================ sent side


def test_sent_events_validate_against_openai_types(recording: Any, validate_client_event: Validate) -> None:
    checked = 0
    for data in recording.sent():
        if recording.provider == "xai" and data["type"] == "session.update":
            # xAI's session is beta-like (top-level turn_detection, no session.type): not a GA event.
            assert "turn_detection" in data["session"] and "type" not in data["session"]
            continue
        validate_client_event(data)
        checked += 1
    assert checked > 0


def _format(fmt: dict[str, Any]) -> AudioFormat:
    kind = fmt["type"]
    if kind == "audio/pcm":
        return AudioFormat.pcm(fmt.get("rate", 24000))
    return {"audio/pcmu": AudioFormat.pcmu(), "audio/pcma": AudioFormat.pcma()}[kind]


def config_from_ga(session: dict[str, Any]) -> SessionConfig:
    """A SessionConfig for a GA session object (written from the GA schema); unknown keys fail the test."""
    rest = copy.deepcopy(session)
    assert rest.pop("type") == "realtime"
    kw: dict[str, Any] = {}
    for key in ("instructions", "tool_choice", "max_output_tokens"):
        if key in rest:
            kw[key] = rest.pop(key)
    if "output_modalities" in rest:
        kw["output_modalities"] = tuple(rest.pop("output_modalities"))
    if "tools" in rest:
        tools = rest.pop("tools")
        assert all(t["type"] == "function" for t in tools)
        kw["tools"] = [FunctionTool(name=t["name"], description=t.get("description", ""),
                                    parameters=t["parameters"]) for t in tools]
    audio = rest.pop("audio", {})
    inp, out = audio.pop("input", {}), audio.pop("output", {})
    assert not audio
    if "format" in inp:
        kw["input_format"] = _format(inp.pop("format"))
    if "turn_detection" in inp:
        td = inp.pop("turn_detection")
        if td is None:
            kw["turn_detection"] = None
        else:
            cls = {"server_vad": ServerVad, "semantic_vad": SemanticVad}[td.pop("type")]
            kw["turn_detection"] = cls(**td)
    if "transcription" in inp:
        tr = inp.pop("transcription")
        kw["transcription"] = None if tr is None else Transcription(**tr)
    if "noise_reduction" in inp:
        nr = inp.pop("noise_reduction")
        kw["noise_reduction"] = None if nr is None else nr["type"]
    if "format" in out:
        kw["output_format"] = _format(out.pop("format"))
    for key in ("voice", "speed"):
        if key in out:
            kw[key] = out.pop(key)
    assert not inp and not out and not rest, f"GA keys this helper does not map: {inp} {out} {rest}"
    return SessionConfig(**kw)


def test_rtedge_reproduces_recorded_session_update(openai_recording: Any) -> None:
    updates = openai_recording.sent_of("session.update")
    assert updates
    for recorded in updates:
        config = config_from_ga(recorded["session"])
        ours = json.loads(Session("openai").send(ev.SessionUpdate(session=config)))
        assert ours["type"] == "session.update"
        assert ours["session"] == recorded["session"]


def _client_event_for(data: dict[str, Any]) -> ev.ClientEvent:
    """The typed client event equivalent to a recorded OpenAI sent message."""
    kind = data["type"]
    if kind == "session.update":
        return ev.SessionUpdate(session=config_from_ga(data["session"]))
    if kind == "input_audio_buffer.append":
        return ev.InputAudioBufferAppend(audio=base64.b64decode(data["audio"]))
    if kind == "conversation.item.create":
        return ev.ConversationItemCreate(item=data["item"])
    if kind == "response.create":
        return ev.ResponseCreate(response=data["response"]) if "response" in data else ev.ResponseCreate()
    raise AssertionError(f"no mapping for recorded client event {kind}")


def test_full_duplex_replay_reproduces_every_sent_message(openai_recording: Any) -> None:
    session = Session("openai")
    appended = 0
    for direction, data in openai_recording.messages:
        if direction == "received":
            session.receive_message(json.dumps(data))
            continue
        event = _client_event_for(data)
        ours = json.loads(session.send(event))
        if isinstance(event, ev.InputAudioBufferAppend):
            assert "event_id" not in ours
            appended += len(event.audio)
        else:
            assert ours.pop("event_id").startswith("evt_")
        assert ours == data
    assert session.state.input_bytes_sent == appended
    assert session.state.response is ResponseState.IDLE
    assert session.state.connection is ConnectionState.OPEN
