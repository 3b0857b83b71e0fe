"""Everything rtedge sends in the OpenAI dialect is a valid GA client event for openai-python's own types.

openai-python's ``RealtimeClientEvent`` (``openai.types.realtime``) is the GA wire schema as the
vendor publishes it.  Its models accept unknown keys, so besides validating we require that no
level of the parsed model holds an extra key (a field at the wrong nesting level would land there)
and that re-serializing the SDK model with ``exclude_unset`` (what its own ``send`` does since 3.25)
gives back exactly our JSON.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("openai.types.realtime")
pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from openai.types.realtime import audio_transcription, realtime_audio_config_output  # noqa: E402

from rtedge.protocol import (  # noqa: E402
    UNSET,
    AudioFormat,
    FunctionTool,
    SemanticVad,
    ServerVad,
    Session,
    SessionConfig,
    Transcription,
    items,
)
from rtedge.protocol import events as ev  # noqa: E402

Validate = Callable[[str | dict[str, Any]], Any]


def _literal_values(annotation: object) -> list[str]:
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Literal:
            return list(typing.get_args(arg))
    raise AssertionError(f"no Literal in {annotation!r}")


SDK_VOICES = _literal_values(realtime_audio_config_output.Voice)
SDK_TRANSCRIPTION_MODELS = _literal_values(
    audio_transcription.AudioTranscription.model_fields["model"].annotation)


def _sdk_round_trip(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude_unset=True)
    return dumped


def _check(validate: Validate, text: str) -> Any:
    model = validate(text)
    assert _sdk_round_trip(model) == json.loads(text)
    return model


# =========================================================================== one of each client event type


def _active_session() -> Session:
    session = Session("openai")
    session.receive_message(json.dumps({"type": "session.created", "event_id": "e0",
                                        "session": {"type": "realtime", "id": "sess_1"}}))
    session.receive_message(json.dumps({"type": "response.created", "event_id": "e1",
                                        "response": {"id": "resp_1", "status": "in_progress"}}))
    return session


CLIENT_EVENTS: list[tuple[str, ev.ClientEvent]] = [
    ("session.update", ev.SessionUpdate(session=SessionConfig(
        instructions="Be brief.", voice="marin", turn_detection=None,
        tools=[FunctionTool(name="get_time", description="Current time.")]))),
    ("input_audio_buffer.append", ev.InputAudioBufferAppend(audio=b"\x00\x01" * 480)),
    ("input_audio_buffer.commit", ev.InputAudioBufferCommit()),
    ("input_audio_buffer.clear", ev.InputAudioBufferClear()),
    ("conversation.item.create",
     ev.ConversationItemCreate(item=items.user_text("Hi"), previous_item_id="root")),
    ("conversation.item.retrieve", ev.ConversationItemRetrieve(item_id="item_1")),
    ("conversation.item.truncate", ev.ConversationItemTruncate(item_id="item_1", audio_end_ms=250)),
    ("conversation.item.delete", ev.ConversationItemDelete(item_id="item_1")),
    ("response.create", ev.ResponseCreate()),
    ("response.cancel", ev.ResponseCancel()),
]


def test_one_instance_of_every_sendable_type() -> None:
    sent = {type(e) for _, e in CLIENT_EVENTS}
    # RawClientEvent is sent verbatim, SessionFinish and InputImageBufferAppend are DashScope-only
    assert sent == set(ev.CLIENT_EVENT_TYPES) - {ev.SessionFinish, ev.InputImageBufferAppend}


@pytest.mark.parametrize("event", [e for _, e in CLIENT_EVENTS], ids=[n for n, _ in CLIENT_EVENTS])
def test_client_event_validates_against_openai_types(validate_client_event: Validate,
                                                     event: ev.ClientEvent) -> None:
    text = _active_session().send(event)
    model = _check(validate_client_event, text)
    assert model.type == event.TYPE
    assert (model.event_id is None) == isinstance(event, ev.InputAudioBufferAppend)  # appends carry no id


@pytest.mark.parametrize("item", [
    items.user_text("hello"),
    items.system_text("be nice"),
    items.assistant_text("Nice to meet you."),
    items.function_call("call_1", "get_weather", '{"city":"London"}'),
    items.function_call_output("call_1", "foggy, 12 degrees"),
], ids=lambda item: f"{item['type']}-{item.get('role', '')}")
def test_item_builders_validate(validate_client_event: Validate, item: dict[str, Any]) -> None:
    text = Session("openai").send(ev.ConversationItemCreate(item=item))
    _check(validate_client_event, text)


def test_response_create_with_overrides_validates(validate_client_event: Validate) -> None:
    response = {
        "instructions": "Answer in French.",
        "output_modalities": ["text"],
        "conversation": "none",
        "metadata": {"purpose": "summary"},
        "max_output_tokens": 200,
        "input": [items.user_text("Summarise.")],
        "tools": [{"type": "function", "name": "f", "description": "", "parameters": {"type": "object"}}],
        "tool_choice": "none",
    }
    _check(validate_client_event, Session("openai").send(ev.ResponseCreate(response=response)))


def test_cancel_by_id_validates_without_active_response(validate_client_event: Validate) -> None:
    _check(validate_client_event, Session("openai").send(ev.ResponseCancel(response_id="resp_9")))


def test_the_extras_check_catches_misplaced_fields(validate_client_event: Validate) -> None:
    # A beta-style top-level voice is accepted by plain validation (extra="allow") but must fail ours.
    with pytest.raises(AssertionError, match="voice"):
        validate_client_event({"type": "session.update", "session": {"type": "realtime", "voice": "alloy"}})


# ====================================================================== hypothesis sweep of SessionConfig


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(UNSET), strategy)


FORMATS = [AudioFormat.pcm(24000), AudioFormat.pcmu(), AudioFormat.pcma()]

server_vad = st.builds(
    ServerVad,
    threshold=_maybe(st.floats(0.0, 1.0)),
    prefix_padding_ms=_maybe(st.integers(0, 2000)),
    silence_duration_ms=_maybe(st.integers(0, 5000)),
    create_response=_maybe(st.booleans()),
    interrupt_response=_maybe(st.booleans()),
    idle_timeout_ms=_maybe(st.one_of(st.none(), st.integers(5000, 30000))),
)
semantic_vad = st.builds(
    SemanticVad,
    eagerness=_maybe(st.sampled_from(["low", "medium", "high", "auto"])),
    create_response=_maybe(st.booleans()),
    interrupt_response=_maybe(st.booleans()),
)
transcription = st.builds(
    Transcription,
    model=st.sampled_from(SDK_TRANSCRIPTION_MODELS),
    language=_maybe(st.sampled_from(["en", "de", "fr", "zh"])),
    prompt=_maybe(st.text(max_size=20)),
)
json_scalar = st.one_of(st.booleans(), st.integers(-5, 5), st.text(max_size=8))
function_tool = st.builds(
    FunctionTool,
    name=st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True),
    description=st.text(max_size=30),
    parameters=st.fixed_dictionaries(
        {"type": st.just("object"),
         "properties": st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True),
                                       st.fixed_dictionaries({"type": st.sampled_from(["string", "number"])}),
                                       max_size=3)},
        optional={"required": st.lists(st.text(max_size=5), max_size=2), "default": json_scalar},
    ),
)

session_configs = st.builds(
    SessionConfig,
    instructions=_maybe(st.text(max_size=40)),
    output_modalities=_maybe(st.sampled_from([("audio",), ("text",)])),
    voice=_maybe(st.sampled_from(SDK_VOICES)),
    speed=_maybe(st.floats(0.25, 1.5)),
    input_format=_maybe(st.sampled_from(FORMATS)),
    output_format=_maybe(st.sampled_from(FORMATS)),
    turn_detection=_maybe(st.one_of(st.none(), server_vad, semantic_vad)),
    transcription=_maybe(st.one_of(st.none(), transcription)),
    noise_reduction=_maybe(st.sampled_from(["near_field", "far_field", None])),
    tools=_maybe(st.lists(function_tool, max_size=3)),
    tool_choice=_maybe(st.sampled_from(["auto", "none", "required"])),
    max_output_tokens=_maybe(st.one_of(st.integers(1, 4096), st.just("inf"))),
)

#: where each SessionConfig field lives in the GA session object
GA_PATH: dict[str, tuple[str, ...]] = {
    "instructions": ("instructions",),
    "output_modalities": ("output_modalities",),
    "voice": ("audio", "output", "voice"),
    "speed": ("audio", "output", "speed"),
    "input_format": ("audio", "input", "format"),
    "output_format": ("audio", "output", "format"),
    "turn_detection": ("audio", "input", "turn_detection"),
    "transcription": ("audio", "input", "transcription"),
    "noise_reduction": ("audio", "input", "noise_reduction"),
    "tools": ("tools",),
    "tool_choice": ("tool_choice",),
    "max_output_tokens": ("max_output_tokens",),
}

#: the only places where the GA protocol gives ``null`` a meaning
NULLABLE_PATHS = {GA_PATH["turn_detection"], GA_PATH["transcription"], GA_PATH["noise_reduction"],
                  GA_PATH["turn_detection"] + ("idle_timeout_ms",)}


def _lookup(obj: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return False, None
        obj = obj[key]
    return True, obj


def _null_paths(obj: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if obj is None:
        return [path]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _null_paths(v, path + (k,))]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _null_paths(v, path + (str(i),))]
    return []


def _expected_format(fmt: AudioFormat) -> dict[str, Any]:
    return {"type": "audio/pcm", "rate": 24000} if fmt.kind == "pcm" else {"type": f"audio/{fmt.kind}"}


def _expected_value(name: str, value: Any) -> Any:
    """The GA wire value of one set field, written from the GA schema (independent of the dialect code)."""
    if value is None:
        return None
    if name in ("input_format", "output_format"):
        return _expected_format(value)
    if name == "output_modalities":
        return list(value)
    if name == "noise_reduction":
        return {"type": value}
    if name == "tools":
        return [{"type": "function", "name": t.name, "description": t.description,
                 "parameters": dict(t.parameters)} for t in value]
    if name == "turn_detection":
        keys = (["threshold", "prefix_padding_ms", "silence_duration_ms", "create_response",
                 "interrupt_response", "idle_timeout_ms"] if isinstance(value, ServerVad)
                else ["eagerness", "create_response", "interrupt_response"])
        wire_type = "server_vad" if isinstance(value, ServerVad) else "semantic_vad"
        return {"type": wire_type, **{k: getattr(value, k) for k in keys if getattr(value, k) is not UNSET}}
    if name == "transcription":
        return {k: getattr(value, k) for k in ("model", "language", "prompt")
                if getattr(value, k) is not UNSET}
    return value


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=session_configs)
def test_session_config_sweep(validate_client_event: Validate, config: SessionConfig) -> None:
    text = Session("openai").send(ev.SessionUpdate(session=config))
    model = _check(validate_client_event, text)
    wire = json.loads(text)
    session = wire["session"]
    assert session["type"] == "realtime"
    assert model.session.type == "realtime"

    for name, path in GA_PATH.items():
        value = getattr(config, name)
        present, got = _lookup(session, path)
        if value is UNSET:
            assert not present, f"{name} is unset but the wire has {'.'.join(path)}={got!r}"
        else:
            assert present, f"{name} is set but {'.'.join(path)} is absent"
            assert got == _expected_value(name, value), name
        if value is None:
            assert got is None  # explicit JSON null, not an absent key

    # nothing else is sent: no keys beyond the set fields' paths
    expected_top = {"type"} | {GA_PATH[n][0] for n in config.set_fields()}
    assert set(session) == expected_top
    for direction in ("input", "output"):
        present, sub = _lookup(session, ("audio", direction))
        wanted = {GA_PATH[n][2] for n in config.set_fields() if GA_PATH[n][:2] == ("audio", direction)}
        assert (set(sub) if present else set()) == wanted
        assert present == bool(wanted)  # no empty audio.input / audio.output objects

    # null only where GA gives null a meaning
    for path in _null_paths(session):
        assert path in NULLABLE_PATHS, f"null at {'.'.join(path)}"


@settings(max_examples=60, deadline=None)
@given(config=session_configs)
def test_sweep_configs_survive_merge_and_resend(validate_client_event: Validate,
                                                config: SessionConfig) -> None:
    # merged() lays set fields over a base: the result must serialize to a valid event with the base's
    # fields kept where the update left them unset.
    base = SessionConfig(instructions="base", voice="alloy", turn_detection=ServerVad(threshold=0.5))
    merged = base.merged(config)
    wire = json.loads(Session("openai").send(ev.SessionUpdate(session=merged)))
    _check(validate_client_event, json.dumps(wire))
    if config.instructions is UNSET:
        assert wire["session"]["instructions"] == "base"
    if config.voice is UNSET:
        assert wire["session"]["audio"]["output"]["voice"] == "alloy"
    if config.turn_detection is UNSET:
        assert wire["session"]["audio"]["input"]["turn_detection"] == {"type": "server_vad", "threshold": 0.5}
