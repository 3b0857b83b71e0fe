"""Session: the sans-IO API (send, receive_message, events, connection_lost) and its reply helpers."""

from __future__ import annotations

import base64
import json
from typing import Any

import attrs
import pytest

from rtedge.errors import ConfigError, LocalProtocolError, RemoteProtocolError
from rtedge.protocol import (
    AudioFormat,
    ConnectionState,
    Dialect,
    ResponseState,
    Session,
    SessionConfig,
    get_dialect,
    items,
)
from rtedge.protocol import events as ev
from rtedge.protocol.config import SemanticVad
from rtedge.protocol.dialects import OpenAIDialect


def feed(session: Session, /, **payload: Any) -> ev.ServerEvent:
    return session.receive_message(json.dumps(payload))


def audio_delta(session: Session, item_id: str, nbytes: int, content_index: int = 0) -> None:
    feed(session, type="response.output_audio.delta", event_id="e", response_id="resp_1", item_id=item_id,
         output_index=0, content_index=content_index, delta=base64.b64encode(b"\x10" * nbytes).decode())


# ============================================================================================ construction


def test_dialect_by_name_or_instance() -> None:
    assert Session("openai").dialect.name == "openai"
    dialect = OpenAIDialect()
    assert Session(dialect).dialect is dialect
    assert isinstance(Session().dialect, Dialect)
    with pytest.raises(ConfigError, match="openai"):
        Session("no-such-provider")
    with pytest.raises(ConfigError):
        get_dialect("dashscopee")


@pytest.mark.parametrize(("provider", "url", "needed"), [
    ("openai", "wss://api.openai.com/v1/realtime", True),
    ("openai", "ws://127.0.0.1:8765/v1/realtime", False),
    ("openai", "ws://[::1]:8765/v1/realtime", False),
    ("openai", "ws://localhost:8765/v1/realtime", False),
    ("qwen", "wss://dashscope.aliyuncs.com/api-ws/v1/realtime", True),
    ("vllm", "ws://gpu-box.lan:8000/v1/realtime", False),  # `vllm serve` takes no key unless told to
])
def test_a_key_is_needed_for_remote_endpoints_of_providers_that_take_one(provider: str, url: str,
                                                                        needed: bool) -> None:
    assert get_dialect(provider).needs_key(url) is needed


def test_initial_state_and_repr() -> None:
    s = Session("openai")
    assert s.state.connection is ConnectionState.CONNECTING
    assert s.state.response is ResponseState.IDLE
    assert s.state.input_format == AudioFormat.pcm(24000) == s.state.output_format
    assert list(s.events()) == []
    text = repr(s)
    assert "openai" in text and "connecting" in text and "idle" in text and "empty" in text


# ============================================================================================ event ids


def test_event_ids_stamped_on_control_events_not_appends() -> None:
    s = Session("openai")
    s.receive_message('{"type":"response.created","response":{"id":"r"}}')
    control = [
        ev.SessionUpdate(session=SessionConfig()),
        ev.InputAudioBufferCommit(),
        ev.InputAudioBufferClear(),
        ev.ConversationItemCreate(item=items.user_text("x")),
        ev.ConversationItemRetrieve(item_id="i"),
        ev.ConversationItemDelete(item_id="i"),
        ev.ConversationItemTruncate(item_id="i", audio_end_ms=0),
        ev.ResponseCreate(),
        ev.ResponseCancel(),
    ]
    ids = []
    for event in control:
        wire = json.loads(s.send(event))
        assert isinstance(wire.get("event_id"), str) and wire["event_id"], event.TYPE
        assert s.state.sent_type(wire["event_id"]) == event.TYPE
        ids.append(wire["event_id"])
    assert len(set(ids)) == len(ids)
    for _ in range(3):
        assert "event_id" not in json.loads(s.send(ev.InputAudioBufferAppend(audio=b"\0\0")))
    assert "event_id" not in json.loads(s.send(ev.RawClientEvent(data={"type": "x"})))


def test_caller_event_id_is_kept() -> None:
    s = Session("openai")
    wire = json.loads(s.send(ev.InputAudioBufferCommit(event_id="mine")))
    assert wire["event_id"] == "mine" and s.state.sent_type("mine") == "input_audio_buffer.commit"
    appended = json.loads(s.send(ev.InputAudioBufferAppend(audio=b"\0\0", event_id="a1")))
    assert appended["event_id"] == "a1"


def test_refused_send_consumes_no_id_and_changes_nothing() -> None:
    s = Session("openai")
    first = json.loads(s.send(ev.InputAudioBufferClear()))["event_id"]
    with pytest.raises(LocalProtocolError):
        s.send(ev.ResponseCancel())
    with pytest.raises(LocalProtocolError):
        s.send(ev.ConversationItemTruncate(item_id="i", audio_end_ms=-1))
    second = json.loads(s.send(ev.InputAudioBufferClear()))["event_id"]
    assert len(s.state.sent_types) == 2 and [first, second] == list(s.state.sent_types)


# ============================================================================================ receiving


def test_receive_queues_events_in_order_and_drains() -> None:
    s = Session("openai")
    a = feed(s, type="session.created", event_id="e1", session={"id": "s"})
    b = feed(s, type="ping", event_id="e2")
    c = feed(s, type="input_audio_buffer.cleared", event_id="e3")
    assert isinstance(a, ev.SessionCreated) and isinstance(b, ev.UnknownServerEvent)
    drained = list(s.events())
    assert drained == [a, b, c] and [e.event_id for e in drained] == ["e1", "e2", "e3"]
    assert list(s.events()) == []


def test_malformed_message_is_not_queued() -> None:
    s = Session("openai")
    with pytest.raises(RemoteProtocolError):
        s.receive_message("[]")
    assert list(s.events()) == [] and s.state.connection is ConnectionState.CONNECTING


# ============================================================================================ connection lost


def test_connection_lost_queues_event_and_closes() -> None:
    s = Session("openai")
    feed(s, type="session.created", session={"id": "s"})
    feed(s, type="response.created", response={"id": "r"})
    list(s.events())
    s.connection_lost(1001, "Your session hit the maximum duration of 60 minutes.")
    events = list(s.events())
    assert len(events) == 1 and isinstance(events[0], ev.ConnectionLost)
    assert events[0].type == "rtedge.connection_lost"
    assert events[0].code == 1001 and events[0].reason.startswith("Your session")
    assert s.state.connection is ConnectionState.CLOSED
    assert s.state.closed_code == 1001
    assert s.state.closed_reason == "Your session hit the maximum duration of 60 minutes."
    assert s.state.response is ResponseState.IDLE
    assert s.cancel_event() is None


def test_send_after_connection_lost_raises() -> None:
    s = Session("openai")
    s.connection_lost()
    for event in (ev.InputAudioBufferAppend(audio=b"\0\0"), ev.ResponseCreate(),
                  ev.ResponseCancel(response_id="r"), ev.SessionUpdate(session=SessionConfig()),
                  ev.RawClientEvent(data={"type": "x"})):
        with pytest.raises(LocalProtocolError, match="closed"):
            s.send(event)
    assert s.state.input_bytes_sent == 0


@pytest.mark.parametrize("provider", ["openai", "qwen", "vllm"])
def test_send_audio_is_send_of_an_append(provider: str) -> None:
    """The append fast path: the same text and the same state as ``send(InputAudioBufferAppend)``."""
    via_event, fast = Session(provider), Session(provider)
    for chunk in (b"\x01\x02" * 480, b"\xff\xfe" * 7):
        assert fast.send_audio(chunk) == via_event.send(ev.InputAudioBufferAppend(audio=chunk))
        assert json.loads(fast.send_audio(chunk)) == {"type": "input_audio_buffer.append",
                                                      "audio": base64.b64encode(chunk).decode()}
        via_event.send(ev.InputAudioBufferAppend(audio=chunk))
    assert attrs.asdict(fast.state, recurse=False) == attrs.asdict(via_event.state, recurse=False)
    assert fast.state.input_bytes_sent == 2 * (960 + 14) and fast.state.audio_appended
    fast.connection_lost()
    with pytest.raises(LocalProtocolError, match="closed"):
        fast.send_audio(b"\0\0")
    assert fast.state.input_bytes_sent == 2 * (960 + 14)


def test_connection_lost_is_idempotent() -> None:
    s = Session("openai")
    s.connection_lost(None, "")
    s.connection_lost(1000, "again")
    events = list(s.events())
    assert len(events) == 1 and isinstance(events[0], ev.ConnectionLost) and events[0].code is None
    assert s.state.closed_code is None


def test_connection_lost_comes_after_earlier_events() -> None:
    s = Session("openai")
    feed(s, type="response.created", response={"id": "r"})
    s.connection_lost(1006)
    assert [type(e) for e in s.events()] == [ev.ResponseCreated, ev.ConnectionLost]


# ============================================================================================ truncate_event


def test_truncate_clamps_to_received_pcm24k() -> None:
    s = Session("openai")
    audio_delta(s, "item_a", 4800)  # 100 ms at 48 bytes/ms
    audio_delta(s, "item_a", 4800)
    audio_delta(s, "item_a", 2400)  # 250 ms in all
    t = s.truncate_event("item_a", 10_000)
    assert t == ev.ConversationItemTruncate(item_id="item_a", content_index=0, audio_end_ms=250)
    t = s.truncate_event("item_a", 120.9)
    assert t is not None and t.audio_end_ms == 120  # whole ms, never more than heard
    wire = json.loads(s.send(t))
    assert wire["type"] == "conversation.item.truncate" and wire["audio_end_ms"] == 120
    assert wire["item_id"] == "item_a" and wire["content_index"] == 0


def test_truncate_counts_base64_sizes_exactly() -> None:
    s = Session("openai")
    for n in (1, 2, 47, 4801):  # padded and unpadded base64
        audio_delta(s, "item_b", n)
    total = 1 + 2 + 47 + 4801
    assert s.state.audio_received_ms("item_b") == pytest.approx(total / 48)
    t = s.truncate_event("item_b", 1e9)
    assert t is not None and t.audio_end_ms == total // 48


def test_truncate_pcmu_after_session_updated() -> None:
    s = Session("openai")
    feed(s, type="session.updated", session={"type": "realtime", "audio": {
        "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}}})
    assert s.state.output_format == AudioFormat.pcmu()
    audio_delta(s, "item_u", 800)  # G.711: 8 bytes/ms -> 100 ms
    audio_delta(s, "item_u", 1600)  # 200 ms
    t = s.truncate_event("item_u", 5000)
    assert t is not None and t.audio_end_ms == 300
    t = s.truncate_event("item_u", 299.99)
    assert t is not None and t.audio_end_ms == 299


def test_truncate_never_beyond_an_earlier_truncate() -> None:
    """The server keeps no more than a truncate kept, and refuses a later one beyond it ("Audio content of
    500ms is already shorter than 1000ms"): the clamp was to the audio received only."""
    s = Session("openai")
    audio_delta(s, "item_t", 48_000)  # 1000 ms
    s.send(s.truncate_event("item_t", 800))
    t = s.truncate_event("item_t", 900)  # sent, not yet confirmed: it counts already
    assert t is not None and t.audio_end_ms == 800
    s.send(s.truncate_event("item_t", 500))
    t = s.truncate_event("item_t", 1000)
    assert t is not None and t.audio_end_ms == 500
    assert s.truncate_event("item_t", 300).audio_end_ms == 300  # shorter still: as asked
    assert s.truncate_event("item_t", 500, content_index=1) is None  # per content part
    assert s.state.audio_received_ms("item_t") == 1000  # what came is unchanged
    confirmed = Session("openai")  # a truncate confirmed (the server's word) counts too
    audio_delta(confirmed, "item_t", 48_000)
    feed(confirmed, type="conversation.item.truncated", item_id="item_t", content_index=0, audio_end_ms=250)
    assert confirmed.state.output_items["item_t"].truncated_ms == 250
    assert confirmed.truncate_event("item_t", 1000).audio_end_ms == 250


def test_truncate_none_when_nothing_heard() -> None:
    s = Session("openai")
    assert s.truncate_event("unknown", 500) is None
    audio_delta(s, "item_c", 4800)
    assert s.truncate_event("item_c", 0) is None
    assert s.truncate_event("item_c", -5) is None
    assert s.truncate_event("item_c", 0.9) is None  # under a millisecond rounds to 0
    assert s.truncate_event("item_c", 500, content_index=1) is None  # nothing on that content part
    audio_delta(s, "item_d", 20)  # 0.4 ms received
    assert s.truncate_event("item_d", 500) is None


def test_truncate_none_when_dialect_cannot_truncate() -> None:
    class NoTruncate(OpenAIDialect):
        capabilities = OpenAIDialect.capabilities - {"truncate"}

    s = Session(NoTruncate())
    audio_delta(s, "item_e", 4800)
    assert s.truncate_event("item_e", 50) is None
    with pytest.raises(LocalProtocolError, match="truncate"):
        s.send(ev.ConversationItemTruncate(item_id="item_e", audio_end_ms=50))


# ============================================================================================ cancel


def test_cancel_event_lifecycle() -> None:
    s = Session("openai")
    assert s.cancel_event() is None
    with pytest.raises(LocalProtocolError, match="no response is active"):
        s.send(ev.ResponseCancel())
    feed(s, type="response.created", response={"id": "resp_7"})
    cancel = s.cancel_event()
    assert cancel == ev.ResponseCancel()
    wire = json.loads(s.send(cancel))
    assert wire["type"] == "response.cancel" and "response_id" not in wire
    assert s.state.response is ResponseState.CANCELLING and s.cancel_event() is None
    feed(s, type="response.done", response={"id": "resp_7", "status": "cancelled"})
    assert s.state.response is ResponseState.IDLE and s.cancel_event() is None


def test_cancel_by_response_id_is_always_legal() -> None:
    s = Session("openai")
    wire = json.loads(s.send(ev.ResponseCancel(response_id="resp_out_of_band")))
    assert wire["response_id"] == "resp_out_of_band"
    assert s.state.response is ResponseState.IDLE


# ==================================================================================== purity of Session


def test_session_never_sends_by_itself() -> None:
    # receiving anything (even an error asking for action) produces events, never client messages:
    # send() is the only way out and it returns text.
    s = Session("openai")
    feed(s, type="input_audio_buffer.speech_started", audio_start_ms=0, item_id="i")
    feed(s, type="error", error={"code": "session_expired", "message": "bye"})
    assert s.state.sent_types == {} and s.state.input_bytes_sent == 0
    assert s.state.last_error is not None and s.state.last_error.code == "session_expired"


# ============================================================================================ modalities


@pytest.mark.parametrize(("provider", "mods", "match"), [
    ("openai", ("text", "audio"), r"openai takes output_modalities \('audio',\) .* or \('text',\), one of them"),
    ("openai", ("audio", "text"), "one of them"),
    ("azure", ("text", "audio"), "azure takes output_modalities"),
    ("xai", ("text", "audio"), r"xai takes output_modalities \('audio',\) only"),
    ("xai", ("text",), r"xai takes output_modalities \('audio',\) only"),
    ("qwen", ("audio",), r"\['audio'\] alone"),
    ("openai", ("audio", "audio"), "once each"),
    ("openai", ("video",), "'audio' and/or 'text'"),
])
def test_output_modalities_are_checked_by_dialect(provider, mods, match) -> None:
    with pytest.raises(ConfigError, match=match):
        config = SessionConfig(output_modalities=mods)
        get_dialect(provider).check(config)
    if "once each" not in match and "and/or" not in match:
        session = Session(get_dialect(provider))
        with pytest.raises(ConfigError, match=match):
            session.send(ev.SessionUpdate(session=SessionConfig(output_modalities=mods)))
        assert session.state.sent_types == {}


@pytest.mark.parametrize(("field", "value", "match"), [
    ("turn_detection", "server_vad", r"turn_detection must be ServerVad\(...\), SemanticVad\(...\), a dict or None"),
    ("turn_detection", True, "turn_detection must be"),
    ("transcription", "whisper-1", r"transcription must be Transcription\(model=...\), a dict or None"),
])
def test_a_wrongly_typed_nested_field_is_refused_when_built(field, value, match) -> None:
    """A string where an object belongs was a ValueError ('dictionary update sequence element #0...') from
    the OpenAI dialect's encoder when connecting; it is refused by the config itself, for every dialect."""
    with pytest.raises(ConfigError, match=match):
        SessionConfig(**{field: value})
    for ok in (None, {"type": "server_vad"}):
        SessionConfig(**{field: ok})


@pytest.mark.parametrize(("provider", "mods"), [
    ("openai", ("audio",)), ("openai", ("text",)), ("azure", ("text",)), ("xai", ("audio",)),
    ("qwen", ("text", "audio")), ("qwen", ("audio", "text")), ("qwen", ("text",)),
])
def test_output_modalities_each_dialect_accepts(provider, mods) -> None:
    dialect = get_dialect(provider)
    config = SessionConfig(output_modalities=mods)
    assert isinstance(dialect.check(config), list)
    wire = dialect.encode_session(config)
    if provider in ("openai", "azure"):
        assert wire["output_modalities"] == list(mods)


def test_parse_message_reads_and_changes_no_state_and_receive_event_accounts_in_order():
    """A threaded transport parses off its lock, then accounts: the same result as receive_message."""
    from rtedge.protocol.dialects import get_dialect
    from rtedge.protocol.session import Session

    created = '{"type":"session.created","event_id":"e1","session":{"id":"sess_1","model":"gpt-realtime"}}'
    split, whole = Session(get_dialect("openai")), Session(get_dialect("openai"))
    before = split.state.connection
    event = split.parse_message(created)
    assert event.type == "session.created" and split.state.connection is before and list(split.events()) == []
    assert split.receive_event(event) is event and list(split.events()) == [event]
    whole.receive_message(created)
    assert split.state.connection is whole.state.connection is not before
    assert split.state.session == whole.state.session


@pytest.mark.parametrize(("make", "match"), [
    (lambda: SemanticVad(eagerness="x"), r"eagerness must be one of 'low', 'medium', 'high', 'auto'"),
    (lambda: SessionConfig(noise_reduction="loud"),
     r"noise_reduction must be one of 'near_field', 'far_field'"),
])
def test_a_misspelt_choice_is_refused_where_it_is_written(make, match) -> None:
    """They were accepted, and failed at the server (or not at all) long after."""
    with pytest.raises(ConfigError, match=match):
        make()


def test_the_choices_still_build() -> None:
    assert [SemanticVad(eagerness=e).eagerness for e in ("low", "medium", "high", "auto")][-1] == "auto"
    assert SessionConfig(noise_reduction=None).noise_reduction is None
    assert SessionConfig(noise_reduction="far_field").noise_reduction == "far_field"

