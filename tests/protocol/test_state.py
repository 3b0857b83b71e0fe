"""The session state machines and the data kept beside them, driven through Session (sans-IO)."""

from __future__ import annotations

import base64
import json
from contextlib import nullcontext
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtedge.errors import LocalProtocolError
from rtedge.protocol import (
    AudioFormat,
    ConnectionState,
    InputBufferState,
    ResponseState,
    Session,
    SessionConfig,
    Usage,
)
from rtedge.protocol import _state
from rtedge.protocol import events as ev


def feed(session: Session, /, **payload: Any) -> ev.ServerEvent:
    return session.receive_message(json.dumps(payload))


def created(session: Session, rid: str = "resp_1") -> None:
    feed(session, type="response.created", event_id="e", response={"id": rid, "status": "in_progress"})


def done(session: Session, rid: str = "resp_1", usage: dict[str, Any] | None = None,
         status: str = "completed", top_level_usage: dict[str, Any] | None = None) -> None:
    response: dict[str, Any] = {"id": rid, "status": status, "output": []}
    if usage is not None:
        response["usage"] = usage
    extra = {} if top_level_usage is None else {"usage": top_level_usage}
    feed(session, type="response.done", event_id="e", response=response, **extra)


def error(session: Session, code: str | None, event_id: str | None = None) -> None:
    feed(session, type="error", event_id="e",
         error={"type": "invalid_request_error", "code": code, "message": "x", "event_id": event_id})


# ===================================================================================== response machine


def test_response_idle_active_idle() -> None:
    s = Session("openai")
    assert s.state.response is ResponseState.IDLE
    created(s)
    assert s.state.response is ResponseState.ACTIVE and s.state.response_id == "resp_1"
    done(s)
    assert s.state.response is ResponseState.IDLE and s.state.response_id == "resp_1"


def test_cancel_moves_active_to_cancelling_then_done_to_idle() -> None:
    s = Session("openai")
    created(s)
    s.send(ev.ResponseCancel())
    assert s.state.response is ResponseState.CANCELLING
    done(s, status="cancelled")
    assert s.state.response is ResponseState.IDLE


def test_cancel_not_active_error_ends_cancelling() -> None:
    # The server had already finished: it answers the cancel with the benign response_cancel_not_active.
    s = Session("openai")
    created(s)
    cancel_id = json.loads(s.send(ev.ResponseCancel()))["event_id"]
    assert s.state.response is ResponseState.CANCELLING
    error(s, "response_cancel_not_active", event_id=cancel_id)
    assert s.state.response is ResponseState.IDLE
    assert s.state.last_error is not None and s.state.last_error.code == "response_cancel_not_active"
    assert s.state.sent_type(s.state.last_error.event_id) == "response.cancel"


def test_other_errors_do_not_end_cancelling() -> None:
    s = Session("openai")
    created(s)
    s.send(ev.ResponseCancel())
    error(s, "invalid_value")
    error(s, None)
    assert s.state.response is ResponseState.CANCELLING


def test_cancel_with_nothing_active_raises_and_changes_nothing() -> None:
    s = Session("openai")
    with pytest.raises(LocalProtocolError):
        s.send(ev.ResponseCancel())
    assert s.state.response is ResponseState.IDLE and not s.state.sent_types
    assert s.cancel_event() is None
    # after a finished response too
    created(s)
    done(s)
    with pytest.raises(LocalProtocolError):
        s.send(ev.ResponseCancel())
    assert s.cancel_event() is None


def test_cancel_event_only_when_active_and_not_already_cancelling() -> None:
    s = Session("openai")
    created(s)
    cancel = s.cancel_event()
    assert isinstance(cancel, ev.ResponseCancel)
    s.send(cancel)
    assert s.cancel_event() is None  # a cancel is already under way
    # a second explicit cancel while cancelling is still legal to send (the server may answer not_active)
    s.send(ev.ResponseCancel())
    assert s.state.response is ResponseState.CANCELLING


def test_second_response_after_first_done() -> None:
    s = Session("openai")
    for rid in ("resp_a", "resp_b", "resp_c"):
        created(s, rid)
        assert s.state.response is ResponseState.ACTIVE and s.state.response_id == rid
        done(s, rid)
        assert s.state.response is ResponseState.IDLE


# ============================================================================================ input buffer


def test_input_buffer_transitions() -> None:
    s = Session("openai")
    st_ = s.state
    assert st_.input_buffer is InputBufferState.EMPTY
    s.send(ev.InputAudioBufferAppend(audio=b"\0" * 4800))
    assert st_.input_buffer is InputBufferState.HAS_AUDIO
    feed(s, type="input_audio_buffer.speech_started", audio_start_ms=20, item_id="item_1")
    assert st_.input_buffer is InputBufferState.SPEECH
    s.send(ev.InputAudioBufferAppend(audio=b"\0" * 4800))
    assert st_.input_buffer is InputBufferState.SPEECH  # appending during speech keeps SPEECH
    feed(s, type="input_audio_buffer.speech_stopped", audio_end_ms=90, item_id="item_1")
    assert st_.input_buffer is InputBufferState.HAS_AUDIO
    feed(s, type="input_audio_buffer.committed", item_id="item_1", previous_item_id=None)
    assert st_.input_buffer is InputBufferState.EMPTY


@pytest.mark.parametrize("how", ["send-clear", "cleared", "committed"])
def test_input_buffer_emptied(how: str) -> None:
    for speech in (False, True):
        s = Session("openai")
        s.send(ev.InputAudioBufferAppend(audio=b"\0" * 480))
        if speech:
            feed(s, type="input_audio_buffer.speech_started", audio_start_ms=0, item_id="i")
        assert s.state.input_appended_ms == pytest.approx(10.0)
        if how == "send-clear":
            s.send(ev.InputAudioBufferClear())
        else:
            feed(s, type=f"input_audio_buffer.{how}", item_id="i")
        assert s.state.input_buffer is InputBufferState.EMPTY
        assert s.state.input_appended_ms == 0.0


def test_server_vad_speech_from_empty() -> None:
    s = Session("openai")
    feed(s, type="input_audio_buffer.speech_started", audio_start_ms=0, item_id="i")
    assert s.state.input_buffer is InputBufferState.SPEECH


def test_commit_send_waits_for_committed() -> None:
    s = Session("openai")
    s.send(ev.InputAudioBufferAppend(audio=b"\0" * 4800))
    s.send(ev.InputAudioBufferCommit())
    # a commit can fail (under 100 ms): the buffer empties on the server's reply, not on our send
    assert s.state.input_buffer is InputBufferState.HAS_AUDIO
    feed(s, type="input_audio_buffer.committed", item_id="i")
    assert s.state.input_buffer is InputBufferState.EMPTY


def test_input_ms_follows_the_input_format() -> None:
    s = Session("openai")
    s.send(ev.InputAudioBufferAppend(audio=b"\0" * 4800))  # PCM16 @ 24 kHz: 48 bytes/ms
    assert s.state.input_appended_ms == pytest.approx(100.0)
    feed(s, type="session.updated", session={"audio": {"input": {"format": {"type": "audio/pcmu"}}}})
    assert s.state.input_format == AudioFormat.pcmu()
    s.send(ev.InputAudioBufferAppend(audio=b"\xff" * 800))  # G.711: 8 bytes/ms
    assert s.state.input_appended_ms == pytest.approx(200.0)
    assert s.state.input_bytes_sent == 5600


# ============================================================================================ tables


def test_transition_tables_are_total_and_well_formed() -> None:
    assert set(_state.RESPONSE_TRANSITIONS) == set(ResponseState)
    assert set(_state.INPUT_TRANSITIONS) == set(InputBufferState)
    client_types = {cls.TYPE for cls in ev.CLIENT_EVENT_TYPES}
    tables: list[tuple[dict[Any, dict[str, Any]], type]] = [
        (_state.RESPONSE_TRANSITIONS, ResponseState), (_state.INPUT_TRANSITIONS, InputBufferState)]
    for table, states in tables:
        for row in table.values():
            for key, target in row.items():
                assert isinstance(target, states)
                if key.startswith("send:"):
                    assert key[5:] in client_types, key
                elif not key.startswith("error:"):
                    assert key in ev.SERVER_EVENT_REGISTRY, key


RANDOM_SERVER_EVENTS = [
    {"type": "session.created", "session": {"id": "s"}},
    {"type": "session.updated", "session": {"audio": {"output": {"format": {"type": "audio/pcmu"}}}}},
    {"type": "response.created", "response": {"id": "r1"}},
    {"type": "response.created", "response": {"id": "r2"}},
    {"type": "response.done", "response": {"id": "r1", "usage": {"total_tokens": 3, "input_tokens": 1,
                                                                  "output_tokens": 2}}},
    {"type": "response.done", "response": {"id": "r9"}},
    {"type": "response.output_audio.delta", "response_id": "r1", "item_id": "i1", "delta": "AAAA"},
    {"type": "response.output_audio_transcript.delta", "item_id": "i1", "delta": "hi"},
    {"type": "response.function_call_arguments.delta", "call_id": "c1", "delta": "{"},
    {"type": "response.function_call_arguments.done", "call_id": "c1", "arguments": "{}", "name": "f"},
    {"type": "response.output_item.added", "item": {"id": "i2", "type": "function_call", "call_id": "c2"}},
    {"type": "conversation.item.added", "item": {"id": "i1", "type": "message"}},
    {"type": "conversation.item.deleted", "item_id": "i1"},
    {"type": "conversation.item.truncated", "item_id": "i1", "audio_end_ms": 1},
    {"type": "input_audio_buffer.speech_started", "item_id": "u"},
    {"type": "input_audio_buffer.speech_stopped", "item_id": "u"},
    {"type": "input_audio_buffer.committed", "item_id": "u"},
    {"type": "input_audio_buffer.cleared"},
    {"type": "error", "error": {"code": "response_cancel_not_active"}},
    {"type": "error", "error": "plain string"},
    {"type": "ping"},
    {"type": "response.output_audio.delta", "delta": None, "content_index": "x"},
]

CLIENT_ACTIONS = ["append", "clear", "commit", "cancel", "truncate"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(range(len(RANDOM_SERVER_EVENTS))), st.sampled_from(CLIENT_ACTIONS)),
                max_size=40))
def test_any_event_order_is_tolerated(steps: list[int | str]) -> None:
    """Servers send events out of textbook order; the machines never fail and stay consistent."""
    s = Session("openai")
    dones_with_usage = 0
    for step in steps:
        before = s.state.response
        if isinstance(step, int):
            payload = RANDOM_SERVER_EVENTS[step]
            s.receive_message(json.dumps(payload))
            if payload["type"] == "response.done" and "usage" in payload["response"]:
                dones_with_usage += 1
            if payload["type"] == "response.created" and before is ResponseState.IDLE:
                assert s.state.response is ResponseState.ACTIVE
            if payload["type"] == "response.done":
                assert s.state.response is ResponseState.IDLE
        elif step == "cancel":
            cancel = s.cancel_event()
            assert (cancel is not None) == (before is ResponseState.ACTIVE)
            if cancel is not None:
                s.send(cancel)
                assert s.state.response is ResponseState.CANCELLING
            else:
                with pytest.raises(LocalProtocolError) if before is ResponseState.IDLE else nullcontext():
                    s.send(ev.ResponseCancel())
        elif step == "truncate":
            event = s.truncate_event("i1", 10_000)
            if event is not None:
                assert 0 < event.audio_end_ms <= s.state.audio_received_ms("i1")
                s.send(event)
        else:
            cls = {"append": ev.InputAudioBufferAppend, "clear": ev.InputAudioBufferClear,
                   "commit": ev.InputAudioBufferCommit}[step]
            s.send(cls(audio=b"\0\0") if step == "append" else cls())
        assert s.state.response in ResponseState and s.state.input_buffer in InputBufferState
    assert s.state.usage.responses == dones_with_usage
    assert s.state.usage.total_tokens == 3 * dones_with_usage
    assert len(list(s.events())) == sum(isinstance(step, int) for step in steps)


# ============================================================================================ session config


def test_session_created_then_updated_merge() -> None:
    s = Session("openai")
    feed(s, type="session.created", session={
        "id": "sess_1", "instructions": "default", "tools": [{"type": "function", "name": "a"}],
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                            "turn_detection": {"type": "server_vad", "threshold": 0.5}},
                  "output": {"voice": "alloy", "speed": 1.0}}})
    assert s.state.connection is ConnectionState.OPEN and s.state.session_id == "sess_1"
    feed(s, type="session.updated", session={
        "instructions": "new", "tools": [],
        "audio": {"input": {"turn_detection": None}, "output": {"voice": "marin"}}})
    session = s.state.session
    assert session["id"] == "sess_1"
    assert session["instructions"] == "new"
    assert session["tools"] == []  # lists are replaced, not merged
    assert session["audio"]["input"]["turn_detection"] is None  # null replaces the object
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}  # untouched, kept
    assert session["audio"]["output"] == {"voice": "marin", "speed": 1.0}
    assert s.interrupt_response_on_speech() is False  # manual turns: the client must cancel itself


def test_session_created_replaces_previous_session() -> None:
    s = Session("openai")
    feed(s, type="session.created", session={"id": "a", "voice": "x"})
    feed(s, type="session.created", session={"id": "b"})
    assert s.state.session == {"id": "b"} and s.state.session_id == "b"


def test_output_format_from_session_updated() -> None:
    s = Session("openai")
    assert s.state.output_format == AudioFormat.pcm(24000)
    feed(s, type="session.updated", session={"audio": {"output": {"format": {"type": "audio/pcma"}}}})
    assert s.state.output_format == AudioFormat.pcma()
    assert s.state.input_format == AudioFormat.pcm(24000)  # not mentioned, unchanged
    feed(s, type="session.updated", session={"audio": {"output": {"format": {"type": "audio/opus"}}}})
    assert s.state.output_format == AudioFormat.pcma()  # an unknown format keeps the last known one


def test_interrupt_response_read_from_turn_detection() -> None:
    s = Session("openai")
    assert s.interrupt_response_on_speech() is False  # nothing known
    feed(s, type="session.created", session={"audio": {"input": {"turn_detection": {"type": "server_vad"}}}})
    assert s.interrupt_response_on_speech() is True  # GA default is true
    feed(s, type="session.updated",
         session={"audio": {"input": {"turn_detection": {"interrupt_response": False}}}})
    assert s.interrupt_response_on_speech() is False


def test_config_merged_lays_set_fields_over() -> None:
    base = SessionConfig(instructions="a", voice="alloy", extra={"x": 1})
    merged = base.merged(SessionConfig(voice="marin", turn_detection=None, extra={"y": 2}))
    assert merged.instructions == "a" and merged.voice == "marin" and merged.turn_detection is None
    assert merged.extra == {"x": 1, "y": 2}


# =================================================================================== output items, items


def _audio_delta(s: Session, item_id: str, nbytes: int, content_index: int = 0, rid: str = "resp_1") -> None:
    feed(s, type="response.output_audio.delta", response_id=rid, item_id=item_id, output_index=0,
         content_index=content_index, delta=base64.b64encode(b"\x01" * nbytes).decode())


def test_output_items_audio_and_text() -> None:
    s = Session("openai")
    created(s)
    feed(s, type="response.output_item.added", response_id="resp_1", output_index=0,
         item={"id": "item_a", "type": "message", "status": "in_progress", "role": "assistant"})
    _audio_delta(s, "item_a", 4800)
    _audio_delta(s, "item_a", 2401)
    _audio_delta(s, "item_a", 480, content_index=1)
    feed(s, type="response.output_audio_transcript.delta", item_id="item_a", content_index=0, delta="Hel")
    feed(s, type="response.output_audio_transcript.delta", item_id="item_a", content_index=0, delta="lo")
    item = s.state.output_items["item_a"]
    assert item.response_id == "resp_1" and item.type == "message"
    assert item.audio_bytes == {0: 7201, 1: 480}
    assert s.state.audio_received_ms("item_a") == pytest.approx(7201 / 48)
    assert s.state.audio_received_ms("item_a", 1) == pytest.approx(10.0)
    assert item.text[0] == "Hello"
    feed(s, type="response.output_audio_transcript.done", item_id="item_a", content_index=0,
         transcript="Hello!")
    assert item.text[0] == "Hello!"
    done(s, usage=None)
    assert s.state.output_items["item_a"].status == "in_progress"  # done's output list was empty
    feed(s, type="response.done", response={"id": "resp_1", "output": [
        {"id": "item_a", "type": "message", "status": "incomplete"}]})
    assert s.state.output_items["item_a"].status == "incomplete"


def test_text_output_deltas() -> None:
    s = Session("openai")
    for d in ("Your", " name", " is"):
        feed(s, type="response.output_text.delta", item_id="t", content_index=0, delta=d)
    assert s.state.output_items["t"].text[0] == "Your name is"
    feed(s, type="response.output_text.done", item_id="t", content_index=0, text="Your name is Alice.")
    assert s.state.output_items["t"].text[0] == "Your name is Alice."


def test_function_call_tracked_from_output_item_and_deltas() -> None:
    s = Session("openai")
    created(s, "resp_f")
    feed(s, type="response.output_item.added", response_id="resp_f", output_index=0,
         item={"id": "item_f", "type": "function_call", "status": "in_progress", "name": "get_weather",
               "call_id": "call_1", "arguments": ""})
    for d in ('{"ci', 'ty": ', '"London"}'):
        feed(s, type="response.function_call_arguments.delta", response_id="resp_f", item_id="item_f",
             call_id="call_1", delta=d)
    call = s.state.function_calls["call_1"]
    assert call.name == "get_weather" and call.item_id == "item_f" and call.response_id == "resp_f"
    assert call.arguments == '{"city": "London"}' and not call.done
    feed(s, type="response.function_call_arguments.done", call_id="call_1", item_id="item_f",
         name="get_weather", arguments='{"city": "London"}')
    assert call.done and json.loads(call.arguments) == {"city": "London"}


def test_conversation_items_merge_delete_truncate() -> None:
    s = Session("openai")
    feed(s, type="conversation.item.added", item={"id": "a", "type": "message", "status": "in_progress",
                                                  "content": []})
    feed(s, type="conversation.item.done", item={"id": "a", "status": "completed",
                                                 "content": [{"type": "output_audio", "transcript": "hi"}]})
    feed(s, type="conversation.item.created", item={"id": "b", "type": "message"})
    assert list(s.state.items) == ["a", "b"]
    assert s.state.items["a"]["status"] == "completed" and s.state.items["a"]["type"] == "message"
    _audio_delta(s, "a", 960)
    feed(s, type="conversation.item.truncated", item_id="a", content_index=0, audio_end_ms=15)
    assert s.state.output_items["a"].truncated_ms == 15
    feed(s, type="conversation.item.deleted", item_id="a")
    assert "a" not in s.state.items and "a" not in s.state.output_items


def test_out_of_order_events_tolerated() -> None:
    s = Session("openai")
    # a response.done for a response never seen created, with usage: counted, state stays IDLE
    done(s, "resp_ghost", usage={"total_tokens": 7, "input_tokens": 4, "output_tokens": 3})
    assert s.state.response is ResponseState.IDLE
    assert s.state.usage.total_tokens == 7 and "resp_ghost" in s.state.usage_by_response
    # events about unknown items and calls create what they need or do nothing
    _audio_delta(s, "item_unseen", 48)
    assert s.state.audio_received_ms("item_unseen") == pytest.approx(1.0)
    feed(s, type="response.function_call_arguments.done", call_id="call_x", name="f", arguments="{}")
    assert s.state.function_calls["call_x"].done
    feed(s, type="conversation.item.deleted", item_id="nope")
    feed(s, type="conversation.item.truncated", item_id="nope", audio_end_ms=5)
    feed(s, type="input_audio_buffer.committed", item_id="late")
    feed(s, type="input_audio_buffer.speech_stopped", item_id="late")
    assert s.state.input_buffer is InputBufferState.EMPTY
    # a late response.done after we already went idle
    created(s, "r1")
    done(s, "r1")
    done(s, "r1")
    assert s.state.response is ResponseState.IDLE
    # a response.created before session.created
    s2 = Session("openai")
    created(s2, "early")
    assert s2.state.response is ResponseState.ACTIVE and s2.state.connection is ConnectionState.CONNECTING


# ============================================================================================ usage


GA_USAGE = {"total_tokens": 205, "input_tokens": 41, "output_tokens": 164,
            "input_token_details": {"text_tokens": 14, "audio_tokens": 27, "image_tokens": 0,
                                    "cached_tokens": 8,
                                    "cached_tokens_details": {"text_tokens": 8, "audio_tokens": 0}},
            "output_token_details": {"text_tokens": 28, "audio_tokens": 136}}
DASHSCOPE_USAGE = {"total_tokens": 150, "input_tokens": 100, "output_tokens": 50,
                   "input_tokens_details": {"text_tokens": 20, "audio_tokens": 80, "cached_tokens": 10},
                   "output_tokens_details": {"text_tokens": 10, "audio_tokens": 40}}
CHAT_USAGE = {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35,
              "prompt_tokens_details": {"audio_tokens": 25, "text_tokens": 5},
              "completion_tokens_details": {"text_tokens": 5}}


def test_usage_parsed_from_each_spelling() -> None:
    ga = Usage.from_raw(GA_USAGE)
    assert (ga.input_tokens, ga.output_tokens, ga.total_tokens) == (41, 164, 205)
    assert (ga.input_text_tokens, ga.input_audio_tokens, ga.cached_tokens) == (14, 27, 8)
    assert (ga.output_text_tokens, ga.output_audio_tokens, ga.responses) == (28, 136, 1)
    ds = Usage.from_raw(DASHSCOPE_USAGE)
    assert (ds.input_tokens, ds.output_tokens, ds.total_tokens) == (100, 50, 150)
    assert (ds.input_text_tokens, ds.input_audio_tokens, ds.cached_tokens) == (20, 80, 10)
    assert (ds.output_text_tokens, ds.output_audio_tokens) == (10, 40)
    chat = Usage.from_raw(CHAT_USAGE)
    assert (chat.input_tokens, chat.output_tokens, chat.total_tokens) == (30, 5, 35)
    assert (chat.input_audio_tokens, chat.input_text_tokens, chat.output_text_tokens) == (25, 5, 5)


@pytest.mark.parametrize("raw", [None, {}, "tokens", [1, 2]])
def test_empty_usage_is_not_a_response(raw: object) -> None:
    assert Usage.from_raw(raw) == Usage() and Usage.from_raw(raw).responses == 0


def test_usage_total_defaults_to_input_plus_output_and_ignores_junk() -> None:
    u = Usage.from_raw({"input_tokens": 3, "output_tokens": 4, "input_token_details": {"text_tokens": "x"},
                        "cached_tokens": True})
    assert u.total_tokens == 7 and u.input_text_tokens == 0 and u.cached_tokens == 0


def test_usage_summed_over_responses_of_every_spelling() -> None:
    s = Session("openai")
    for rid, usage in (("r_ga", GA_USAGE), ("r_ds", DASHSCOPE_USAGE), ("r_chat", CHAT_USAGE)):
        created(s, rid)
        done(s, rid, usage=usage)
    created(s, "r_xai")  # xAI: response.usage is {} and the usage sits at the top level of response.done
    done(s, "r_xai", usage={}, top_level_usage={
        "input_tokens": 7, "output_tokens": 83, "total_tokens": 90,
        "input_token_details": {"text_tokens": 7, "audio_tokens": 0},
        "output_token_details": {"text_tokens": 7, "audio_tokens": 76}})
    created(s, "r_none")
    done(s, "r_none", usage=None)  # no usage at all: not counted
    total = s.state.usage
    assert total.responses == 4
    assert total.input_tokens == 41 + 100 + 30 + 7
    assert total.output_tokens == 164 + 50 + 5 + 83
    assert total.total_tokens == 205 + 150 + 35 + 90
    assert total.input_audio_tokens == 27 + 80 + 25 + 0
    assert total.cached_tokens == 8 + 10
    assert total.output_audio_tokens == 136 + 40 + 0 + 76
    assert list(s.state.usage_by_response) == ["r_ga", "r_ds", "r_chat", "r_xai"]
    assert s.state.usage_by_response["r_ds"].total_tokens == 150


def test_usage_add() -> None:
    a = Usage(input_tokens=1, output_tokens=2, total_tokens=3, responses=1)
    b = Usage(input_tokens=10, output_tokens=20, total_tokens=30, cached_tokens=5, responses=1)
    assert a + b == Usage(input_tokens=11, output_tokens=22, total_tokens=33, cached_tokens=5, responses=2)
    with pytest.raises(TypeError):
        a + 1  # type: ignore[operator]


# ============================================================================================ errors and ids


def test_sent_ids_remembered_for_error_matching() -> None:
    s = Session("openai")
    commit_id = json.loads(s.send(ev.InputAudioBufferCommit()))["event_id"]
    error(s, "input_audio_buffer_commit_empty", event_id=commit_id)
    assert s.state.last_error is not None
    assert s.state.sent_type(s.state.last_error.event_id) == "input_audio_buffer.commit"
    assert s.state.sent_type(None) is None and s.state.sent_type("unknown") is None


def test_sent_id_memory_is_bounded() -> None:
    s = Session("openai")
    ids = [json.loads(s.send(ev.InputAudioBufferClear()))["event_id"]
           for _ in range(_state._SENT_MEMORY + 10)]
    assert len(s.state.sent_types) == _state._SENT_MEMORY
    assert s.state.sent_type(ids[0]) is None and s.state.sent_type(ids[-1]) == "input_audio_buffer.clear"


# ============================================================================================ hostile input

_WRONG_TYPES: list[object] = ["text", 5, 1.5, True, None, [1, "x"], {"id": 5}, [{"id": 3}],
                              {"id": "r", "output": 5, "usage": "x"}, {"audio": {"input": "x", "output": 5}},
                              {"id": "i", "type": "function_call", "call_id": 5, "name": 7}]
_DECLARED = {str: str, int: int, dict: dict, list: list}


def _wire_fields(cls: type[ev.ServerEvent]) -> list[str]:
    return [f.name for f in attrs.fields(cls) if f.init and f.name not in ("type", "event_id", "raw", "audio_dropped")]


@pytest.mark.parametrize("cls", [c for c in ev.SERVER_EVENT_TYPES if not c.TYPE.startswith("rtedge.")],
                         ids=lambda c: c.TYPE)
def test_wrong_json_types_never_break_receive(cls: type[ev.ServerEvent]) -> None:
    """A field of the wrong JSON type is kept in raw but not trusted: no handler or query may fail on it."""
    for name in _wire_fields(cls):
        default = attrs.fields_dict(cls)[name].default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        for value in _WRONG_TYPES:
            s = Session("openai")
            created(s, "r")
            event = feed(s, type=cls.TYPE, **{name: value})
            assert event.raw[name] == value
            got = getattr(event, name)
            if cls is ev.Error and name == "error":
                assert isinstance(got, ev.ErrorInfo)
            elif type(default) in _DECLARED and got is not None:
                # the typed field has its declared JSON type, or is the default
                assert isinstance(got, _DECLARED[type(default)]) and not isinstance(got, bool) \
                    or got == default, (name, value, got)
            s.interrupt_response_on_speech()
            s.truncate_event("r", 100)
            s.cancel_event()
            repr(s)
