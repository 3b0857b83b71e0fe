"""Golden wire cases, both ways, for the OpenAI GA dialect.

Expected JSON is written from the GA protocol (session nested under ``audio.input`` /
``audio.output``, formats as ``{"type": "audio/pcm", "rate": 24000}`` objects, unset fields
absent, ``null`` only where it has a meaning), not from running the code.  Server payloads are
trimmed copies of events recorded from the real GA and xAI servers where such events exist, and
follow the protocol reference where they do not.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from rtedge.errors import ConfigError, LocalProtocolError, RemoteProtocolError
from rtedge.protocol import (
    AudioFormat,
    FunctionTool,
    ResponseState,
    SemanticVad,
    ServerVad,
    Session,
    SessionConfig,
    Transcription,
    from_wire,
    get_dialect,
    items,
    to_wire,
)
from rtedge.protocol import events as ev

OPENAI = get_dialect("openai")

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}

# ============================================================================================ client -> wire

CLIENT_CASES: list[tuple[str, ev.ClientEvent, dict[str, Any]]] = [
    (
        "session.update-empty",
        ev.SessionUpdate(session=SessionConfig()),
        {"type": "session.update", "session": {"type": "realtime"}},
    ),
    (
        "session.update-turn-detection-null",
        ev.SessionUpdate(session=SessionConfig(turn_detection=None), event_id="evt_1"),
        {"type": "session.update", "event_id": "evt_1",
         "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}},
    ),
    (
        "session.update-full",
        ev.SessionUpdate(session=SessionConfig(
            instructions="Be brief.",
            output_modalities=("text",),
            voice="marin",
            speed=1.25,
            input_format=AudioFormat.pcm(24000),
            output_format=AudioFormat.pcmu(),
            turn_detection=ServerVad(threshold=0.6, prefix_padding_ms=300, silence_duration_ms=500,
                                     create_response=False, interrupt_response=True),
            transcription=Transcription(model="gpt-4o-mini-transcribe", language="en"),
            noise_reduction="far_field",
            tools=[FunctionTool(name="get_weather", description="Look up the weather.",
                                parameters=WEATHER_PARAMS)],
            tool_choice="required",
            max_output_tokens=512,
        )),
        {"type": "session.update", "session": {
            "type": "realtime",
            "instructions": "Be brief.",
            "output_modalities": ["text"],
            "max_output_tokens": 512,
            "tool_choice": "required",
            "tools": [{"type": "function", "name": "get_weather", "description": "Look up the weather.",
                       "parameters": WEATHER_PARAMS}],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
                    "noise_reduction": {"type": "far_field"},
                    "turn_detection": {"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 300,
                                       "silence_duration_ms": 500, "create_response": False,
                                       "interrupt_response": True},
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.25},
            },
        }},
    ),
    (
        "session.update-pcma-in-pcmu-out",
        ev.SessionUpdate(session=SessionConfig(input_format=AudioFormat.pcma(),
                                               output_format=AudioFormat.pcmu())),
        {"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"format": {"type": "audio/pcma"}}, "output": {"format": {"type": "audio/pcmu"}}}}},
    ),
    (
        "session.update-voice-only-goes-under-audio-output",
        ev.SessionUpdate(session=SessionConfig(voice="cedar")),
        {"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "cedar"}}}},
    ),
    (
        "session.update-nulls-turn-off",
        ev.SessionUpdate(session=SessionConfig(transcription=None, noise_reduction=None)),
        {"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"transcription": None, "noise_reduction": None}}}},
    ),
    (
        "session.update-server-vad-idle-timeout-null",
        ev.SessionUpdate(session=SessionConfig(turn_detection=ServerVad(idle_timeout_ms=None))),
        {"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": None}}}}},
    ),
    (
        "session.update-semantic-vad",
        ev.SessionUpdate(session=SessionConfig(turn_detection=SemanticVad(eagerness="low",
                                                                          interrupt_response=False))),
        {"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"turn_detection": {"type": "semantic_vad", "eagerness": "low",
                                         "interrupt_response": False}}}}},
    ),
    (
        "session.update-clears",  # "" clears instructions, [] clears tools (session.update docstring)
        ev.SessionUpdate(session=SessionConfig(instructions="", tools=())),
        {"type": "session.update", "session": {"type": "realtime", "instructions": "", "tools": []}},
    ),
    (
        "session.update-raw-dicts-and-inf",
        ev.SessionUpdate(session=SessionConfig(
            output_modalities="audio",
            turn_detection={"type": "server_vad", "threshold": 0.4},
            transcription={"model": "whisper-1"},
            tools=[{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}],
            tool_choice={"type": "function", "name": "f"},
            max_output_tokens="inf",
        )),
        {"type": "session.update", "session": {
            "type": "realtime",
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "tool_choice": {"type": "function", "name": "f"},
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}],
            "audio": {"input": {"transcription": {"model": "whisper-1"},
                                "turn_detection": {"type": "server_vad", "threshold": 0.4}}},
        }},
    ),
    (
        "session.update-extra-deep-merged",
        ev.SessionUpdate(session=SessionConfig(
            noise_reduction="near_field",
            extra={"truncation": "auto", "audio": {"input": {"noise_reduction": {"strength": 0.5}}}},
        )),
        {"type": "session.update", "session": {
            "type": "realtime", "truncation": "auto",
            "audio": {"input": {"noise_reduction": {"type": "near_field", "strength": 0.5}}}}},
    ),
    (
        "input_audio_buffer.append",
        ev.InputAudioBufferAppend(audio=bytes([0, 1, 2, 253, 254, 255])),
        {"type": "input_audio_buffer.append", "audio": "AAEC/f7/"},
    ),
    ("input_audio_buffer.commit", ev.InputAudioBufferCommit(event_id="c1"),
     {"type": "input_audio_buffer.commit", "event_id": "c1"}),
    ("input_audio_buffer.clear", ev.InputAudioBufferClear(), {"type": "input_audio_buffer.clear"}),
    (
        "conversation.item.create",
        ev.ConversationItemCreate(item=items.user_text("Hello"), previous_item_id="root"),
        {"type": "conversation.item.create", "previous_item_id": "root", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]}},
    ),
    (
        "conversation.item.create-function-output-appended",
        ev.ConversationItemCreate(item=items.function_call_output("call_1", '{"ok":true}')),
        {"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": "call_1", "output": '{"ok":true}'}},
    ),
    ("conversation.item.retrieve", ev.ConversationItemRetrieve(item_id="item_1"),
     {"type": "conversation.item.retrieve", "item_id": "item_1"}),
    ("conversation.item.truncate", ev.ConversationItemTruncate(item_id="item_2", audio_end_ms=1500),
     {"type": "conversation.item.truncate", "item_id": "item_2", "content_index": 0, "audio_end_ms": 1500}),
    ("conversation.item.delete", ev.ConversationItemDelete(item_id="item_3", event_id="d1"),
     {"type": "conversation.item.delete", "event_id": "d1", "item_id": "item_3"}),
    ("response.create", ev.ResponseCreate(), {"type": "response.create"}),
    (
        "response.create-overrides",
        ev.ResponseCreate(response={"instructions": "Shout.", "output_modalities": ["text"],
                                    "conversation": "none", "metadata": {"k": "v"}}),
        {"type": "response.create", "response": {"instructions": "Shout.", "output_modalities": ["text"],
                                                 "conversation": "none", "metadata": {"k": "v"}}},
    ),
    ("response.cancel", ev.ResponseCancel(), {"type": "response.cancel"}),
    ("response.cancel-by-id", ev.ResponseCancel(response_id="resp_1"),
     {"type": "response.cancel", "response_id": "resp_1"}),
    ("session.finish", ev.SessionFinish(), {"type": "session.finish"}),
    ("input_image_buffer.append", ev.InputImageBufferAppend(image=b"\xff\xd8\xff\xe0jpeg", event_id="i1"),
     {"type": "input_image_buffer.append", "event_id": "i1", "image": "/9j/4GpwZWc="}),
]


@pytest.mark.parametrize(("event", "expected"), [c[1:] for c in CLIENT_CASES],
                         ids=[c[0] for c in CLIENT_CASES])
def test_client_event_golden(event: ev.ClientEvent, expected: dict[str, Any]) -> None:
    text = to_wire(event, OPENAI)
    assert json.loads(text) == expected


def test_golden_table_covers_every_client_event_type() -> None:
    covered = {type(case[1]) for case in CLIENT_CASES}
    assert set(ev.CLIENT_EVENT_TYPES) <= covered


def test_wire_text_is_compact_utf8() -> None:
    text = to_wire(ev.SessionUpdate(session=SessionConfig(instructions="Grüß dich, 你好")), OPENAI)
    assert "Grüß dich, 你好" in text  # not \u-escaped
    assert ", " not in text.replace("Grüß dich, 你好", "") and ": " not in text


def test_append_audio_base64_round_trips() -> None:
    audio = bytes(range(256)) * 3
    wire = json.loads(to_wire(ev.InputAudioBufferAppend(audio=audio), OPENAI))
    assert base64.b64decode(wire["audio"]) == audio


def test_raw_client_event_is_sent_verbatim() -> None:
    data = {"type": "output_audio_buffer.clear", "event_id": "x", "extra": [1, None]}
    assert json.loads(to_wire(ev.RawClientEvent(data=data), OPENAI)) == data


def test_session_stamps_ids_only_on_control_events() -> None:
    session = Session("openai")
    first = json.loads(session.send(ev.SessionUpdate(session=SessionConfig())))
    append = json.loads(session.send(ev.InputAudioBufferAppend(audio=b"\0\0")))
    second = json.loads(session.send(ev.InputAudioBufferCommit()))
    assert "event_id" not in append
    assert isinstance(first["event_id"], str) and isinstance(second["event_id"], str)
    assert first["event_id"] != second["event_id"]


def test_openai_session_refuses_session_finish() -> None:
    # session.finish is DashScope's; the GA server would answer with an error.
    with pytest.raises(LocalProtocolError):
        Session("openai").send(ev.SessionFinish())


# ------------------------------------------------------------------------ config errors at construction


@pytest.mark.parametrize("build", [
    pytest.param(lambda: ServerVad(create_response=None), id='ServerVad(create_response=None)'),
    pytest.param(lambda: ServerVad(interrupt_response=None), id='ServerVad(interrupt_response=None)'),
    pytest.param(lambda: ServerVad(threshold=None), id='ServerVad(threshold=None)'),
    pytest.param(lambda: ServerVad(silence_duration_ms=None), id='ServerVad(silence_duration_ms=None)'),
    pytest.param(lambda: ServerVad(prefix_padding_ms=-1), id='ServerVad(prefix_padding_ms=-1)'),
    pytest.param(lambda: ServerVad(create_response="yes"), id='ServerVad(create_response="yes")'),
    pytest.param(lambda: SemanticVad(create_response=None), id='SemanticVad(create_response=None)'),
    pytest.param(lambda: SessionConfig(voice=None), id='SessionConfig(voice=None)'),
    pytest.param(lambda: SessionConfig(voice=""), id='SessionConfig(voice="")'),
    pytest.param(lambda: SessionConfig(speed=None), id='SessionConfig(speed=None)'),
    pytest.param(lambda: SessionConfig(speed=2.0), id='SessionConfig(speed=2.0)'),
    pytest.param(lambda: SessionConfig(speed=0.1), id='SessionConfig(speed=0.1)'),
    pytest.param(lambda: SessionConfig(instructions=None), id='SessionConfig(instructions=None)'),
    # a wrong type failed only at the server
    pytest.param(lambda: SessionConfig(instructions=3), id='SessionConfig(instructions=3)'),
    pytest.param(lambda: SessionConfig(voice=3), id='SessionConfig(voice=3)'),
    pytest.param(lambda: SessionConfig(input_format="pcm16"), id='SessionConfig(input_format="pcm16")'),
    pytest.param(lambda: SessionConfig(extra=5), id='SessionConfig(extra=5)'),  # (AttributeError at connect)
    pytest.param(lambda: SessionConfig(tools=None), id='SessionConfig(tools=None)'),
    pytest.param(lambda: SessionConfig(tools="get_weather"), id='SessionConfig(tools="get_weather")'),
    pytest.param(lambda: SessionConfig(tool_choice=None), id='SessionConfig(tool_choice=None)'),
    pytest.param(lambda: SessionConfig(max_output_tokens=None), id='SessionConfig(max_output_tokens=None)'),
    pytest.param(lambda: SessionConfig(max_output_tokens=0), id='SessionConfig(max_output_tokens=0)'),
    pytest.param(lambda: SessionConfig(input_format=None), id='SessionConfig(input_format=None)'),
    pytest.param(lambda: SessionConfig(output_format=None), id='SessionConfig(output_format=None)'),
    pytest.param(lambda: SessionConfig(output_modalities=()), id='SessionConfig(output_modalities=())'),
    pytest.param(lambda: SessionConfig(output_modalities=("video",)),
                 id='SessionConfig(output_modalities=("video",))'),
    pytest.param(lambda: AudioFormat("pcmu", 16000), id='AudioFormat("pcmu", 16000)'),
    pytest.param(lambda: AudioFormat("opus", 48000), id='AudioFormat("opus", 48000)'),
    pytest.param(lambda: SessionConfig.from_kwargs(temperature=0.8),
                 id='SessionConfig.from_kwargs(temperature=0.8)'),
])
def test_invalid_config_raises_config_error_at_construction(build: Any) -> None:
    with pytest.raises(ConfigError):
        build()


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="create_response"):
        ServerVad(create_response=None)


# ============================================================================================ wire -> server

# ids from the recorded GA sessions
RESP_AUDIO = "resp_E6U0xfWhN878XBMhc0LKn"
ITEM_ASSISTANT = "item_E6U0xWSFIFri2uw2kTLLq"
ITEM_USER = "item_E6U0xpLmn5e80rVGpEeKv"
RESP_TEXT = "resp_E6U14YFe7U2EU95eQndMH"
ITEM_TEXT = "item_E6U14tdNtskbeBmYROQjH"
RESP_TOOL = "resp_E6U11oof93olA0JOwdA0H"
ITEM_TOOL = "item_E6U11H8XY7uk9uRetnwLK"
SESSION_ID = "sess_E6U0wu9FmdwQ0Lgv9ESYH"

# (payload, expected class, expected typed attributes).  Payloads marked "recorded" are trimmed copies of
# real server events (GA gpt-realtime or xAI); the others follow the protocol reference (GA types, vLLM,
# DashScope).
SERVER_CASES: list[tuple[dict[str, Any], type[ev.ServerEvent], dict[str, Any]]] = [
    (  # recorded
        {"type": "error", "event_id": "event_9",
         "error": {"type": "invalid_request_error", "code": "response_cancel_not_active",
                   "message": "Cancellation failed: no active response found", "param": None,
                   "event_id": "evt_rtedge_4"}},
        ev.Error,
        {"error": ev.ErrorInfo(message="Cancellation failed: no active response found",
                               type="invalid_request_error", code="response_cancel_not_active",
                               param=None, event_id="evt_rtedge_4")},
    ),
    (  # recorded (trimmed)
        {"type": "session.created", "event_id": "event_E6U0wB3eiENYwSnJIBpFN",
         "session": {"type": "realtime", "object": "realtime.session", "id": SESSION_ID,
                     "model": "gpt-realtime", "output_modalities": ["audio"],
                     "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                         "turn_detection": {"type": "server_vad", "threshold": 0.5}},
                               "output": {"voice": "alloy", "speed": 1.0}}}},
        ev.SessionCreated,
        {"event_id": "event_E6U0wB3eiENYwSnJIBpFN"},
    ),
    (  # recorded (trimmed)
        {"type": "session.updated", "event_id": "event_E6U0xPKs3yvsEC0vkrect",
         "session": {"type": "realtime", "id": SESSION_ID, "instructions": "Reply in a few words.",
                     "audio": {"input": {"transcription": {"model": "gpt-realtime-whisper",
                                                           "language": None}}}}},
        ev.SessionUpdated,
        {},
    ),
    ({"type": "session.finished", "event_id": "e1"}, ev.SessionFinished, {}),
    (  # recorded (xAI)
        {"type": "conversation.created", "event_id": "de7a0c79-30d3-4e06-b72f-9f2544ea6ec5",
         "conversation": {"id": "4a313578-606b-4235-90a3-8e9bdae5f5d4", "object": "realtime.conversation"},
         "previous_item_id": None},
        ev.ConversationCreated,
        {"conversation": {"id": "4a313578-606b-4235-90a3-8e9bdae5f5d4", "object": "realtime.conversation"}},
    ),
    (  # recorded
        {"type": "conversation.item.added", "event_id": "event_E6U0x6ewwhja4NJms0BK9",
         "previous_item_id": None,
         "item": {"id": ITEM_USER, "type": "message", "status": "completed", "role": "user",
                  "content": [{"type": "input_audio", "transcript": None}]}},
        ev.ConversationItemAdded,
        {"item_id": ITEM_USER, "previous_item_id": None},
    ),
    (  # recorded
        {"type": "conversation.item.done", "event_id": "event_E6U0xItUrm6p3zuKMWLAm",
         "previous_item_id": "item_prev",
         "item": {"id": ITEM_USER, "type": "message", "status": "completed", "role": "user",
                  "content": [{"type": "input_audio", "transcript": None}]}},
        ev.ConversationItemDone,
        {"item_id": ITEM_USER, "previous_item_id": "item_prev"},
    ),
    (
        {"type": "conversation.item.created", "event_id": "e2", "previous_item_id": "item_0",
         "item": {"id": "item_1", "type": "message", "role": "user",
                  "content": [{"type": "input_text", "text": "hi"}]}},
        ev.ConversationItemCreated,
        {"item_id": "item_1", "previous_item_id": "item_0"},
    ),
    (
        {"type": "conversation.item.retrieved", "event_id": "e3",
         "item": {"id": "item_1", "type": "message", "role": "user", "content": []}},
        ev.ConversationItemRetrieved,
        {"item_id": "item_1", "previous_item_id": None},
    ),
    ({"type": "conversation.item.deleted", "event_id": "e4", "item_id": "item_1"},
     ev.ConversationItemDeleted, {"item_id": "item_1"}),
    ({"type": "conversation.item.truncated", "event_id": "e5", "item_id": "item_2", "content_index": 0,
      "audio_end_ms": 1500},
     ev.ConversationItemTruncated, {"item_id": "item_2", "content_index": 0, "audio_end_ms": 1500}),
    (  # recorded
        {"type": "conversation.item.input_audio_transcription.delta",
         "event_id": "event_E6U0xFfUwkVBtivCMNlgo",
         "item_id": ITEM_USER, "content_index": 0, "delta": " Hello",
         "obfuscation": "sOu3zwViFH"},
        ev.InputAudioTranscriptionDelta,
        {"item_id": ITEM_USER, "content_index": 0, "delta": " Hello"},
    ),
    (  # recorded
        {"type": "conversation.item.input_audio_transcription.completed",
         "event_id": "event_E6U0yPHRaSGaFrbW4UkbV", "item_id": ITEM_USER, "content_index": 0,
         "transcript": "Hello, my name is Marcelo.", "usage": {"type": "duration", "seconds": 3}},
        ev.InputAudioTranscriptionCompleted,
        {"transcript": "Hello, my name is Marcelo.", "usage": {"type": "duration", "seconds": 3}},
    ),
    (
        {"type": "conversation.item.input_audio_transcription.failed", "event_id": "e6", "item_id": "item_1",
         "content_index": 0, "error": {"type": "transcription_error", "code": "audio_unintelligible",
                                       "message": "could not transcribe", "param": None}},
        ev.InputAudioTranscriptionFailed,
        {"item_id": "item_1", "error": {"type": "transcription_error", "code": "audio_unintelligible",
                                        "message": "could not transcribe", "param": None}},
    ),
    (  # recorded
        {"type": "input_audio_buffer.committed", "event_id": "event_E6U0x8fqo2wYVuT4FuuTt",
         "previous_item_id": None, "item_id": ITEM_USER},
        ev.InputAudioBufferCommitted,
        {"item_id": ITEM_USER, "previous_item_id": None},
    ),
    ({"type": "input_audio_buffer.cleared", "event_id": "e7"}, ev.InputAudioBufferCleared, {}),
    (  # recorded
        {"type": "input_audio_buffer.speech_started", "event_id": "event_E6U0xtb4IYeT9FSp0z1Dm",
         "audio_start_ms": 1460, "item_id": ITEM_USER},
        ev.InputAudioBufferSpeechStarted,
        {"audio_start_ms": 1460, "item_id": ITEM_USER},
    ),
    (  # recorded
        {"type": "input_audio_buffer.speech_stopped", "event_id": "event_E6U0xmIzKD3XGdehniexF",
         "audio_end_ms": 4256, "item_id": ITEM_USER},
        ev.InputAudioBufferSpeechStopped,
        {"audio_end_ms": 4256, "item_id": ITEM_USER},
    ),
    ({"type": "input_audio_buffer.timeout_triggered", "event_id": "e8", "audio_start_ms": 5000,
      "audio_end_ms": 11000, "item_id": "item_9"},
     ev.InputAudioBufferTimeoutTriggered,
     {"audio_start_ms": 5000, "audio_end_ms": 11000, "item_id": "item_9"}),
    (  # recorded
        {"type": "response.created", "event_id": "event_E6U0xqU33ZWMW0z5TtF7M",
         "response": {"object": "realtime.response", "id": RESP_AUDIO, "status": "in_progress",
                      "status_details": None, "output": [], "conversation_id": "conv_E6U0wZ7az3EZovEnFLqH4",
                      "output_modalities": ["audio"], "max_output_tokens": "inf", "usage": None,
                      "metadata": None}},
        ev.ResponseCreated,
        {"response_id": RESP_AUDIO, "status": "in_progress"},
    ),
    (  # recorded (trimmed)
        {"type": "response.done", "event_id": "event_E6U0yAVEcd97wmd3MgWAH",
         "response": {"object": "realtime.response", "id": RESP_AUDIO, "status": "completed",
                      "status_details": None, "output": [],
                      "usage": {"total_tokens": 205, "input_tokens": 41, "output_tokens": 164,
                                "input_token_details": {"text_tokens": 14, "audio_tokens": 27,
                                                        "image_tokens": 0, "cached_tokens": 0},
                                "output_token_details": {"text_tokens": 28, "audio_tokens": 136}}}},
        ev.ResponseDone,
        {"response_id": RESP_AUDIO, "status": "completed"},
    ),
    (  # recorded
        {"type": "response.output_item.added", "event_id": "event_E6U0xxVBhC3KCTCrIG4g8",
         "response_id": RESP_AUDIO, "output_index": 0,
         "item": {"id": ITEM_ASSISTANT, "type": "message", "status": "in_progress",
                  "role": "assistant", "content": []}},
        ev.ResponseOutputItemAdded,
        {"response_id": RESP_AUDIO, "output_index": 0, "item_id": ITEM_ASSISTANT},
    ),
    (  # recorded (xAI function call, second output)
        {"type": "response.output_item.done", "event_id": "493d1d5d-7651-4d94-b3a3-f49802256420",
         "item": {"id": "6c1c59eb", "object": "realtime.item", "type": "function_call", "status": "completed",
                  "call_id": "call-aafc8abe-0", "name": "get_weather", "arguments": "{\"city\":\"London\"}"},
         "response_id": "cbddfb09", "output_index": 1, "previous_item_id": None},
        ev.ResponseOutputItemDone,
        {"response_id": "cbddfb09", "output_index": 1, "item_id": "6c1c59eb"},
    ),
    (  # recorded
        {"type": "response.content_part.added", "event_id": "event_E6U0xSOMTv6xBpY7C0bR8",
         "response_id": RESP_AUDIO, "item_id": ITEM_ASSISTANT, "output_index": 0,
         "content_index": 0, "part": {"type": "audio", "transcript": ""}},
        ev.ResponseContentPartAdded,
        {"item_id": ITEM_ASSISTANT, "content_index": 0, "part": {"type": "audio", "transcript": ""}},
    ),
    (  # recorded
        {"type": "response.content_part.done", "event_id": "event_E6U0yqTmBC83uW5DNo7Wj",
         "response_id": RESP_AUDIO, "item_id": ITEM_ASSISTANT, "output_index": 0,
         "content_index": 1, "part": {"type": "audio", "transcript": "Hello, Marcelo!"}},
        ev.ResponseContentPartDone,
        {"content_index": 1, "part": {"type": "audio", "transcript": "Hello, Marcelo!"}},
    ),
    (  # recorded
        {"type": "response.output_text.delta", "event_id": "event_E6U15MRPskSLwnIDT7jHM",
         "response_id": RESP_TEXT, "item_id": ITEM_TEXT, "output_index": 0,
         "content_index": 0, "delta": "Your", "obfuscation": "7zleWRBBoD2B"},
        ev.ResponseOutputTextDelta,
        {"response_id": RESP_TEXT, "item_id": ITEM_TEXT, "delta": "Your"},
    ),
    (  # recorded
        {"type": "response.output_text.done", "event_id": "event_E6U15QMSHWDM1KUDSjU9B",
         "response_id": RESP_TEXT, "item_id": ITEM_TEXT, "output_index": 0,
         "content_index": 0, "text": "Your name is Alice, and your favorite color is teal!"},
        ev.ResponseOutputTextDone,
        {"text": "Your name is Alice, and your favorite color is teal!"},
    ),
    (  # recorded
        {"type": "response.output_audio.delta", "event_id": "event_E6U0x5zQRGJVzr6MR41ud",
         "response_id": RESP_AUDIO, "item_id": ITEM_ASSISTANT, "output_index": 0,
         "content_index": 0, "delta": "//8AAAYAAAD8/wMAAAAAAP7/AgAFAAAAAQD9/wUAAAAA"},
        ev.ResponseOutputAudioDelta,
        # 44 base64 characters, no padding -> 33 bytes
        {"delta": "//8AAAYAAAD8/wMAAAAAAP7/AgAFAAAAAQD9/wUAAAAA", "audio_nbytes": 33},
    ),
    (  # recorded
        {"type": "response.output_audio.done", "event_id": "event_E6U0yllcMma7BGWVjmfuH",
         "response_id": RESP_AUDIO, "item_id": ITEM_ASSISTANT, "output_index": 0,
         "content_index": 0},
        ev.ResponseOutputAudioDone,
        {"response_id": RESP_AUDIO, "item_id": ITEM_ASSISTANT},
    ),
    (  # recorded
        {"type": "response.output_audio_transcript.delta", "event_id": "event_E6U0x4CPpGXckBREkhDss",
         "response_id": RESP_AUDIO, "item_id": ITEM_ASSISTANT, "output_index": 0,
         "content_index": 0, "delta": "Hello", "obfuscation": "kX1yigxefJb"},
        ev.ResponseOutputAudioTranscriptDelta,
        {"delta": "Hello"},
    ),
    (  # recorded
        {"type": "response.output_audio_transcript.done", "event_id": "event_E6U0yUTLiyu5P8q1fsrhQ",
         "response_id": RESP_AUDIO, "item_id": ITEM_ASSISTANT, "output_index": 0,
         "content_index": 0, "transcript": "Hello, Marcelo! Great to meet you. How can I help you today?"},
        ev.ResponseOutputAudioTranscriptDone,
        {"transcript": "Hello, Marcelo! Great to meet you. How can I help you today?"},
    ),
    (  # recorded
        {"type": "response.function_call_arguments.delta", "event_id": "event_E6U11jGO7A5J0mN4JeHbr",
         "response_id": RESP_TOOL, "item_id": ITEM_TOOL, "output_index": 0,
         "call_id": "call_uMNE0Myi2tDTPu0w", "delta": "{", "obfuscation": "aBSplHqbmMbpmCf"},
        ev.ResponseFunctionCallArgumentsDelta,
        {"call_id": "call_uMNE0Myi2tDTPu0w", "item_id": ITEM_TOOL, "delta": "{"},
    ),
    (  # recorded
        {"type": "response.function_call_arguments.done", "event_id": "event_E6U11JalTa2AXhyGOruaq",
         "response_id": RESP_TOOL, "item_id": ITEM_TOOL, "output_index": 0,
         "call_id": "call_uMNE0Myi2tDTPu0w", "name": "get_weather",
         "arguments": "{  \n  \"city\": \"London\" \n} \n"},
        ev.ResponseFunctionCallArgumentsDone,
        {"call_id": "call_uMNE0Myi2tDTPu0w", "name": "get_weather",
         "arguments": "{  \n  \"city\": \"London\" \n} \n"},
    ),
    (  # recorded
        {"type": "rate_limits.updated", "event_id": "event_E8qoq6Q4WQTdjZw5YOdIp",
         "rate_limits": [{"name": "tokens", "limit": 15000000, "remaining": 14999371,
                          "reset_seconds": 0.002}]},
        ev.RateLimitsUpdated,
        {"rate_limits": [{"name": "tokens", "limit": 15000000, "remaining": 14999371,
                          "reset_seconds": 0.002}]},
    ),
    ({"type": "output_audio_buffer.started", "event_id": "e9", "response_id": "resp_1"},
     ev.OutputAudioBufferStarted, {"response_id": "resp_1"}),
    ({"type": "output_audio_buffer.stopped", "event_id": "e10", "response_id": "resp_1"},
     ev.OutputAudioBufferStopped, {"response_id": "resp_1"}),
    ({"type": "output_audio_buffer.cleared", "event_id": "e11", "response_id": "resp_1"},
     ev.OutputAudioBufferCleared, {"response_id": "resp_1"}),
    ({"type": "transcription.delta", "delta": "hel"},  # vLLM: no event_id
     ev.TranscriptionDelta, {"delta": "hel", "event_id": None}),
    ({"type": "transcription.done", "text": "hello there",
      "usage": {"prompt_tokens": 52, "completion_tokens": 4, "total_tokens": 56}},
     ev.TranscriptionDone,
     {"text": "hello there", "usage": {"prompt_tokens": 52, "completion_tokens": 4, "total_tokens": 56}}),
]


@pytest.mark.parametrize(("payload", "cls", "expected"), SERVER_CASES,
                         ids=[c[0]["type"] for c in SERVER_CASES])
def test_server_event_golden(payload: dict[str, Any], cls: type[ev.ServerEvent],
                             expected: dict[str, Any]) -> None:
    event = from_wire(json.dumps(payload), OPENAI)
    assert type(event) is cls
    assert event.type == payload["type"]
    assert event.event_id == payload.get("event_id")
    assert event.raw == payload  # the whole message is kept, unknown fields (obfuscation, rid...) included
    for name, value in expected.items():
        assert getattr(event, name) == value, name
    # every payload field that the event class declares is carried over as is (error is parsed apart)
    for name in (f for f in payload if f not in ("type", "event_id", "raw")):
        if hasattr(event, name) and not (cls is ev.Error and name == "error") and payload[name] is not None:
            assert getattr(event, name) == payload[name], name


def test_golden_table_covers_every_wire_server_event_type() -> None:
    wire_types = {cls for cls in ev.SERVER_EVENT_TYPES if not cls.TYPE.startswith("rtedge.")}
    assert wire_types == {case[1] for case in SERVER_CASES}
    assert ev.ConnectionLost not in wire_types


def test_audio_delta_decodes_with_padding() -> None:
    for audio in (b"", b"\x01", b"\x01\x02", b"\x01\x02\x03", bytes(4801)):
        delta = base64.b64encode(audio).decode()
        event = from_wire(json.dumps({"type": "response.output_audio.delta", "delta": delta}), OPENAI)
        assert isinstance(event, ev.ResponseOutputAudioDelta)
        assert event.audio == audio
        assert event.audio_nbytes == len(audio)


def test_unknown_type_passes_through_with_raw() -> None:
    payload = {"type": "ping", "event_id": "b914184c", "timestamp": 1785457249653, "previous_item_id": None}
    event = from_wire(json.dumps(payload), OPENAI)
    assert type(event) is ev.UnknownServerEvent
    assert event.type == "ping" and event.event_id == "b914184c"
    assert event.raw == payload


def test_future_ga_event_is_unknown_not_an_error() -> None:
    payload = {"type": "input_audio_buffer.dtmf_event_received", "event": "5", "received_at": 1}
    event = from_wire(json.dumps(payload), OPENAI)
    assert type(event) is ev.UnknownServerEvent and event.raw["event"] == "5" and event.event_id is None


def test_rtedge_internal_type_from_the_wire_is_unknown() -> None:
    # ConnectionLost is produced by rtedge, never parsed: a server cannot fake the end of the connection.
    event = from_wire('{"type":"rtedge.connection_lost","code":1000}', OPENAI)
    assert type(event) is ev.UnknownServerEvent
    assert event.type == "wire:rtedge.connection_lost"  # renamed, so no handler of ours matches it


def test_unknown_fields_kept_in_raw_of_known_event() -> None:
    payload = {"type": "response.output_audio.delta", "event_id": "x", "item_id": "i", "delta": "AAAA",
               "rid": "r-1", "ts": 12.5, "audio_duration_ms": 20}
    event = from_wire(json.dumps(payload), OPENAI)
    assert isinstance(event, ev.ResponseOutputAudioDelta)
    assert event.raw["rid"] == "r-1" and event.raw["ts"] == 12.5 and event.raw["audio_duration_ms"] == 20
    assert not hasattr(event, "rid")


def test_missing_fields_take_defaults() -> None:
    event = from_wire('{"type":"conversation.item.truncated"}', OPENAI)
    assert isinstance(event, ev.ConversationItemTruncated)
    assert (event.item_id, event.content_index, event.audio_end_ms, event.event_id) == ("", 0, 0, None)


def test_malformed_int_field_keeps_default_and_raw() -> None:
    event = from_wire('{"type":"input_audio_buffer.speech_started","audio_start_ms":"soon"}', OPENAI)
    assert isinstance(event, ev.InputAudioBufferSpeechStarted)
    assert event.audio_start_ms == 0 and event.raw["audio_start_ms"] == "soon"


def test_null_for_non_nullable_field_keeps_default() -> None:
    event = from_wire('{"type":"response.output_text.delta","delta":null,"item_id":null}', OPENAI)
    assert isinstance(event, ev.ResponseOutputTextDelta)
    assert event.delta == "" and event.item_id == ""


def test_vllm_string_error_becomes_error_info_message() -> None:
    payload = {"type": "error", "error": "Model not validated: send session.update first",
               "code": "model_not_validated"}
    event = from_wire(json.dumps(payload), OPENAI)
    assert isinstance(event, ev.Error)
    assert event.error.message == "Model not validated: send session.update first"
    assert event.error.code == "model_not_validated" and event.event_id is None  # vLLM's code is top-level
    assert event.raw["code"] == "model_not_validated"


def test_error_without_error_object_still_parses() -> None:
    event = from_wire('{"type":"error"}', OPENAI)
    assert isinstance(event, ev.Error) and event.error == ev.ErrorInfo()


def test_error_info_stringifies_codes() -> None:
    event = from_wire('{"type":"error","error":{"message":"m","code":400}}', OPENAI)
    assert isinstance(event, ev.Error) and event.error.code == "400"


@pytest.mark.parametrize("text", [
    "not json",
    "{",
    b"\xff\xfe\x00",
    "[1, 2]",
    '"session.created"',
    "null",
    "{}",
    '{"event_id": "x"}',
    '{"type": 5}',
    '{"type": null}',
], ids=repr)
def test_malformed_message_raises_remote_protocol_error(text: str | bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        from_wire(text, OPENAI)
    assert isinstance(info.value.raw, str) and len(info.value.raw) <= 200


def test_malformed_message_changes_no_session_state() -> None:
    session = Session("openai")
    session.receive_message('{"type":"response.created","response":{"id":"resp_1"}}')
    list(session.events())
    with pytest.raises(RemoteProtocolError):
        session.receive_message('{"type":')
    assert session.state.response is ResponseState.ACTIVE
    assert list(session.events()) == []


def test_bytes_message_accepted() -> None:
    event = from_wire('{"type":"input_audio_buffer.cleared","event_id":"é"}'.encode(), OPENAI)
    assert isinstance(event, ev.InputAudioBufferCleared) and event.event_id == "é"


def test_remote_protocol_error_raw_is_truncated() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        from_wire("x" * 5000, OPENAI)
    assert info.value.raw == "x" * 200
