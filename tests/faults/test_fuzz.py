"""Fuzzing ``Session.receive_message`` with hypothesis: more than 10,000 arbitrary texts and JSON
values per run.  The only outcomes allowed are a typed event, an UnknownServerEvent passed through,
or RemoteProtocolError; after each message the state must still be consistent."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtedge.errors import RemoteProtocolError
from rtedge.protocol import events as ev
from rtedge.protocol._state import ConnectionState, InputBufferState, ResponseState
from rtedge.protocol.session import Session
from rtedge.protocol.usage import Usage

from .conftest import NOTES

#: examples per test; they add up to the total printed in the summary (and asserted >= 10,000)
#: the budgets are example counts, not times: on a loaded 2-core machine a run can take minutes, so the
#: suite-wide 120 s timeout (meant to catch hangs) is raised for this module only
pytestmark = pytest.mark.timeout(900)

BUDGET = {"text": 3000, "bytes": 1500, "json": 1500, "events": 2500, "sequences": 1500}
_RUN: dict[str, int] = {}

SERVER_TYPES = sorted(t for t in ev.SERVER_EVENT_REGISTRY if not t.startswith("rtedge."))
#: every field name a server event declares, plus the nested names the state looks into
FIELDS = sorted({f for cls in ev.SERVER_EVENT_TYPES for f in ev._field_names(cls)} | {
    "id", "usage", "output", "status", "status_details", "input_tokens", "output_tokens", "total_tokens",
    "input_token_details", "cached_tokens", "audio_tokens", "text_tokens", "code", "message", "param",
    "audio", "input", "output", "format", "rate", "type", "role", "content", "call_id", "name",
    "turn_detection", "interrupt_response"})

ids = st.sampled_from(["resp_1", "resp_2", "item_1", "item_2", "call_1", ""]) | st.text(max_size=6)
counts = st.integers(min_value=-(10 ** 6), max_value=10 ** 6)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                    st.sampled_from(["", "resp_1", "item_1", "call_1", "audio/pcm", "audio/pcmu", "message",
                                     "function_call", "assistant", "user", "completed", "cancelled", "AAAA",
                                     "UklGRg==", "=", "response_cancel_not_active", 24000, 8000, 0, -1]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def _event(type_: str, body: dict[str, Any], event_id: Any) -> dict[str, Any]:
    return {**body, "type": type_} if event_id is None else {**body, "type": type_, "event_id": event_id}


#: any type (known or not) with any of the declared fields holding any JSON value
loose_events = st.builds(_event, st.sampled_from(SERVER_TYPES) | st.text(max_size=30),
                         st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6), scalars)
#: the fields the state does arithmetic on, with hostile numbers: usage, audio, indexes, ms
usage = st.dictionaries(
    st.sampled_from(["input_tokens", "output_tokens", "total_tokens", "prompt_tokens", "completion_tokens"]),
    counts | scalars, max_size=5).flatmap(lambda top: st.dictionaries(
        st.sampled_from(["input_token_details", "output_token_details", "input_tokens_details"]),
        st.dictionaries(st.sampled_from(["cached_tokens", "audio_tokens", "text_tokens", "image_tokens"]),
                        counts | scalars, max_size=4), max_size=2).map(lambda details: {**top, **details}))
output_item = st.fixed_dictionaries({}, optional={"id": ids, "type": st.sampled_from(["message", "function_call"]),
                                                  "status": scalars, "call_id": ids, "name": scalars})
targeted_events = st.one_of(
    st.builds(lambda r: {"type": "response.done", "response": r}, st.fixed_dictionaries(
        {}, optional={"id": ids, "status": scalars, "usage": usage, "output": st.lists(output_item, max_size=3)})),
    st.builds(lambda t, b: {**b, "type": t}, st.sampled_from([
        "response.output_audio.delta", "response.output_audio_transcript.delta", "response.output_text.delta",
        "response.output_text.done", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.added", "conversation.item.truncated",
        "conversation.item.added", "conversation.item.deleted", "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped", "input_audio_buffer.committed", "response.created", "error"]),
        st.fixed_dictionaries({}, optional={
            "item_id": ids, "response_id": ids, "call_id": ids, "content_index": counts, "output_index": counts,
            "audio_end_ms": counts, "audio_start_ms": counts, "delta": st.sampled_from(["", "AAAA", "UklGRg==", "="])
            | st.text(max_size=12), "item": output_item, "response": st.fixed_dictionaries({}, optional={"id": ids}),
            "error": st.fixed_dictionaries({}, optional={"code": scalars, "message": scalars, "event_id": scalars})})),
    st.builds(lambda kind, fmt: {"type": kind, "session": {"audio": {"input": {"format": fmt},
                                                                     "output": {"format": fmt}}}},
              st.sampled_from(["session.created", "session.updated"]),
              st.fixed_dictionaries({}, optional={"type": st.sampled_from(["audio/pcm", "audio/pcmu", "audio/pcma"])
                                                  | scalars, "rate": counts | scalars})),
)
event_objects = loose_events | targeted_events


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


def check_state(session: Session) -> None:
    s = session.state
    assert isinstance(s.connection, ConnectionState)
    assert isinstance(s.response, ResponseState)
    assert isinstance(s.input_buffer, InputBufferState)
    assert s.response_id is None or isinstance(s.response_id, str)
    assert s.input_bytes_sent >= 0 and s.input_appended_ms >= 0
    for usage in [s.usage, *s.usage_by_response.values()]:
        assert isinstance(usage, Usage)
        for name in ("input_tokens", "output_tokens", "total_tokens", "cached_tokens", "input_text_tokens",
                     "input_audio_tokens", "output_text_tokens", "output_audio_tokens", "responses"):
            value = getattr(usage, name)
            assert isinstance(value, int) and value >= 0, (name, value)
    for item in s.output_items.values():
        assert isinstance(item.item_id, str)
        assert all(isinstance(n, int) and n >= 0 for n in item.audio_bytes.values())
        assert all(math.isfinite(ms) and ms >= 0 for ms in item.audio_ms.values())
        assert item.truncated_ms is None or isinstance(item.truncated_ms, int)
        assert all(isinstance(t, str) for t in item.text.values())
    for call in s.function_calls.values():
        assert isinstance(call.call_id, str) and isinstance(call.arguments, str)
    assert all(isinstance(k, str) and isinstance(v, dict) for k, v in s.items.items())
    assert isinstance(s.session, dict)
    assert s.input_format.bytes_per_ms > 0 and s.output_format.bytes_per_ms > 0


def feed(session: Session, message: str | bytes) -> str:
    """One message in; returns the outcome kind, failing on anything not allowed."""
    _RUN["messages"] = _RUN.get("messages", 0) + 1
    try:
        event = session.receive_message(message)
    except RemoteProtocolError:
        outcome = "rejected"
    else:
        assert isinstance(event, ev.ServerEvent)
        assert list(session.events()) == [event]
        if isinstance(event, ev.UnknownServerEvent):
            assert event.type not in ev.SERVER_EVENT_REGISTRY or event.type.startswith("rtedge.")
            outcome = "unknown"
        else:
            assert type(event) is ev.SERVER_EVENT_REGISTRY[event.type]
            outcome = "parsed"
    check_state(session)
    return outcome


def _opened() -> Session:
    session = Session("openai")
    session.receive_message('{"type":"session.created","session":{"id":"sess_1","type":"realtime"}}')
    list(session.events())
    return session


def _count(name: str) -> None:
    _RUN[name] = _RUN.get(name, 0) + 1


def fuzz(name: str) -> settings:
    return settings(max_examples=BUDGET[name], deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@fuzz("text")
@given(st.text(max_size=200))
def test_arbitrary_text(text):
    _count("text")
    feed(_opened(), text)


@fuzz("bytes")
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data):
    _count("bytes")
    feed(_opened(), data)


@fuzz("json")
@given(json_values)
def test_arbitrary_json_values(value):
    _count("json")
    feed(_opened(), _dumps(value))


@fuzz("events")
@given(event_objects)
def test_event_shaped_objects(obj):
    _count("events")
    assert feed(_opened(), _dumps(obj)) in ("parsed", "unknown")  # an object with a string type: never rejected


@fuzz("sequences")
@given(st.lists(event_objects | json_values, min_size=1, max_size=8))
def test_sequences_keep_the_state_consistent(messages):
    _count("sequences")
    session = Session("openai")
    for message in messages:
        feed(session, _dumps(message))
    session.connection_lost(None, "fuzz")
    assert session.state.connection is ConnectionState.CLOSED and session.state.response is ResponseState.IDLE
    assert [e.type for e in session.events()] == ["rtedge.connection_lost"]


@pytest.mark.parametrize("depth", [100, 990, 5_000, 100_000])
@pytest.mark.parametrize("shape", ["array", "object", "in_event", "session_merge"])
def test_deeply_nested_json_is_a_protocol_error_not_a_crash(shape, depth):
    """json.loads raises RecursionError (not ValueError) past the interpreter's depth limit."""
    session = _opened()
    nested: Any = {}
    for _ in range(depth):
        nested = {"a": nested} if shape != "array" else [nested]
    if shape == "in_event":
        nested = {"type": "conversation.item.added", "item": {"id": "item_1", "x": nested}}
    elif shape == "session_merge":
        session.receive_message(json.dumps({"type": "session.updated", "session": {"a": {}}}, allow_nan=True)
                                if depth > 900 else '{"type":"session.updated","session":{}}')
        list(session.events())
        nested = {"type": "session.updated", "session": nested}
    try:
        text = json.dumps(nested)
    except RecursionError:
        text = _deep_text(shape, depth)
    feed(session, text)


def _deep_text(shape: str, depth: int) -> str:
    if shape == "array":
        return "[" * depth + "]" * depth
    inner = '{"a":' * depth + "{}" + "}" * depth
    if shape == "in_event":
        return '{"type":"conversation.item.added","item":{"id":"item_1","x":' + inner + "}}"
    if shape == "session_merge":
        return '{"type":"session.updated","session":' + inner + "}"
    return inner


def test_fuzz_budget_is_at_least_10000():
    assert sum(BUDGET.values()) >= 10_000
    ran = sum(v for k, v in _RUN.items() if k != "messages")
    if ran:  # the fuzz tests ran before this one in this session: report what they did
        NOTES.append(f"fuzz: {ran} hypothesis examples, {_RUN['messages']} messages fed to "
                     f"Session.receive_message ({', '.join(f'{k} {v}' for k, v in _RUN.items() if k != 'messages')})")
