"""DashScope Qwen-Omni realtime (``provider="qwen"``): the dialect's wire shapes, and the client against
the local server in its qwen dialect (flat session, beta event names, session.finish, images, idle cut).

Wire expectations follow the DashScope client/server event docs as summarised in the project's protocol
notes (section 2); the server side is ``rtedge.testing.RealtimeServer(dialect="qwen")``.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import numpy as np
import pytest

import rtedge
from rtedge.errors import ConfigError, LocalProtocolError
from rtedge.protocol import (AudioFormat, FunctionTool, SemanticVad, ServerVad, Session, SessionConfig,
                             Transcription, items)
from rtedge.protocol import events as ev
from rtedge.protocol._state import ResponseState
from rtedge.protocol.dialects import get_dialect
from rtedge.protocol.dialects.qwen import MODELS, QwenDialect, model_info
from rtedge.protocol.wire import to_wire
from rtedge.testing import RealtimeServer
from rtedge.transport.backoff import Backoff
from rtedge.audio.wavio import read_wav

from ..conftest import wait_until

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200)
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
PLUS = "qwen3.5-omni-plus-realtime"


def _wire(session: Session, event: ev.ClientEvent) -> dict[str, Any]:
    return dict(json.loads(session.send(event)))


def _session_wire(config: SessionConfig, model: str | None = None) -> dict[str, Any]:
    wire = _wire(Session(QwenDialect(model)), ev.SessionUpdate(session=config))
    assert wire["type"] == "session.update"
    return dict(wire["session"])


def _receive(session: Session, event: dict[str, Any]) -> ev.ServerEvent:
    return session.receive_message(json.dumps(event))


# ------------------------------------------------------------------------------------------------ endpoint


def test_endpoints_headers_and_model_binding() -> None:
    d = get_dialect("qwen")
    assert isinstance(d, QwenDialect) and d.api_key_env == "DASHSCOPE_API_KEY"
    assert d.url(None) == "wss://dashscope.aliyuncs.com/api-ws/v1/realtime?model=qwen3-omni-flash-realtime"
    assert d.headers("sk-1") == {"Authorization": "Bearer sk-1"}
    intl = QwenDialect(region="intl")
    assert intl.url(PLUS) == f"wss://dashscope-intl.aliyuncs.com/api-ws/v1/realtime?model={PLUS}"
    assert "tools" in intl.capabilities and "semantic_vad" in intl.capabilities  # bound to the 3.5 model
    ws = QwenDialect(region="intl", workspace="ws-a1", workspace_endpoint=True)
    assert ws.url(None).startswith("wss://ws-a1.ap-southeast-1.maas.aliyuncs.com/api-ws/v1/realtime?model=")
    assert QwenDialect(workspace="ws-a1", workspace_endpoint=True).url(None).startswith(
        "wss://ws-a1.cn-beijing.maas.aliyuncs.com/")
    assert ws.headers("k") == {"Authorization": "Bearer k", "X-DashScope-WorkSpace": "ws-a1"}
    # a url override that names the model binds the dialect to it
    d2 = QwenDialect()
    d2.url(None, f"ws://127.0.0.1:1/api-ws/v1/realtime?model={PLUS}")
    assert d2.model == PLUS and "tools" in d2.capabilities
    for bad in (dict(region="eu"), dict(workspace="a/b"), dict(workspace_endpoint=True),
                dict(cancel_done_timeout=0)):
        with pytest.raises(ConfigError):
            QwenDialect(**bad)  # type: ignore[arg-type]


def test_capability_table() -> None:
    assert not model_info("qwen3-omni-flash-realtime").tools
    assert not model_info("qwen-omni-turbo-realtime").semantic_vad
    assert model_info("qwen3.5-omni-flash-realtime").tools and model_info(PLUS).semantic_vad
    assert model_info("qwen3-omni-flash-realtime-2025-12-01") is MODELS["qwen3-omni-flash-realtime"]
    assert not any(info.truncate for info in MODELS.values())  # no omni model documents truncate
    caps = QwenDialect().capabilities
    assert {"session_finish", "input_image", "response_cancel"} <= caps
    assert not caps & {"truncate", "retrieve", "delete", "tools"}
    assert QwenDialect().cancel_done_timeout == 5.0
    unknown = model_info("qwen9-omni-realtime")
    assert not unknown.known and unknown.tools and unknown.session_finish


# ------------------------------------------------------------------------------------------------ session


def test_flat_session_golden() -> None:
    config = SessionConfig(
        output_modalities=("text", "audio"), voice="Tina", instructions="Be brief.",
        input_format=AudioFormat.pcm(16000), output_format=AudioFormat.pcm(24000),
        transcription=Transcription(model="gummy-realtime-v1"),
        turn_detection=ServerVad(threshold=-0.2, prefix_padding_ms=300, silence_duration_ms=800,
                                 create_response=True, interrupt_response=False),
        tools=(FunctionTool(name="get_weather", description="Weather.", parameters=WEATHER),),
        tool_choice="auto", max_output_tokens=1024, extra={"temperature": 0.7, "enable_search": False},
    )
    assert _session_wire(config, PLUS) == {
        "modalities": ["text", "audio"], "voice": "Tina", "instructions": "Be brief.",
        "input_audio_format": "pcm16", "output_audio_format": "pcm24",
        "input_audio_transcription": {"model": "gummy-realtime-v1"},
        "turn_detection": {"type": "server_vad", "threshold": -0.2, "prefix_padding_ms": 300,
                           "silence_duration_ms": 800, "create_response": True, "interrupt_response": False},
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                                                    "parameters": WEATHER}}],
        "tool_choice": "auto", "max_tokens": 1024, "temperature": 0.7, "enable_search": False,
    }


def test_session_nulls_text_only_and_per_model_format_names() -> None:
    nulls = SessionConfig(turn_detection=None, transcription=None, output_modalities=("text",))
    assert _session_wire(nulls) == {"modalities": ["text"], "input_audio_transcription": None,
                                    "turn_detection": None}
    fmts = SessionConfig(input_format=AudioFormat.pcm(16000), output_format=AudioFormat.pcm(24000))
    assert _session_wire(fmts, "qwen-omni-turbo-realtime") == {
        "input_audio_format": "pcm16", "output_audio_format": "pcm16"}  # turbo says pcm16 both ways
    assert _session_wire(SessionConfig(turn_detection=SemanticVad(), tools=()), PLUS) == {
        "turn_detection": {"type": "semantic_vad"}, "tools": []}
    # GA-shaped tool dicts and tool_choice are nested; a nested dict passes as is
    nested = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    flat = {"type": "function", "name": "f", "parameters": {"type": "object"}}
    choice = {"type": "function", "name": "f"}
    wire = _session_wire(SessionConfig(tools=(flat, nested), tool_choice=choice), PLUS)
    assert wire == {"tools": [nested, nested], "tool_choice": {"type": "function", "function": {"name": "f"}}}
    # modalities and sample rates are DashScope's, not OpenAI's
    assert not _session_wire(SessionConfig(noise_reduction=None))  # None is simply not sent


@pytest.mark.parametrize(("config", "model", "match"), [
    (SessionConfig(output_modalities=("audio",)), None, r"\['audio'\] alone"),
    (SessionConfig(turn_detection={"type": "server_vad", "threshold": 1.5}), None, r"threshold .*\[-1, 1\]"),
    (SessionConfig(turn_detection=ServerVad(silence_duration_ms=150)), None, r"silence_duration_ms .*200"),
    (SessionConfig(turn_detection=ServerVad(silence_duration_ms=6001)), None, r"\[200, 6000\]"),
    (SessionConfig(turn_detection=ServerVad(idle_timeout_ms=5000)), None, "idle_timeout_ms"),
    (SessionConfig(turn_detection=SemanticVad()), None, "semantic_vad"),
    (SessionConfig(turn_detection=SemanticVad()), "qwen-omni-turbo-realtime", "semantic_vad"),
    (SessionConfig(input_format=AudioFormat.pcm(24000)), None, "16000 Hz"),
    (SessionConfig(output_format=AudioFormat.pcmu()), None, "24000 Hz"),
    (SessionConfig(speed=1.2), None, "speed"),
    (SessionConfig(noise_reduction="near_field"), None, "noise_reduction"),
    (SessionConfig(tools=(FunctionTool(name="f"),)), "qwen3-omni-flash-realtime", "never calls"),
    (SessionConfig(tools=(FunctionTool(name="f"),)), "qwen-omni-turbo-realtime", "qwen3.5-omni-plus"),
], ids=["audio-alone", "threshold", "silence-low", "silence-high", "idle-timeout", "semantic-3-flash",
        "semantic-turbo", "input-24k", "output-g711", "speed", "noise", "tools-3-flash", "tools-turbo"])
def test_config_errors(config: SessionConfig, model: str | None, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        QwenDialect(model).check(config)
    with pytest.raises(ConfigError, match=match):  # and the session refuses to send it
        Session(QwenDialect(model)).send(ev.SessionUpdate(session=config))


def test_check_warns_as_data() -> None:
    assert QwenDialect(PLUS).check(SessionConfig(tools=(FunctionTool(name="f"),))) == []
    warnings = QwenDialect("qwen9-omni-realtime").check(SessionConfig())
    assert len(warnings) == 1 and "not in rtedge's Qwen capability table" in warnings[0]
    eager = SessionConfig(turn_detection=SemanticVad(eagerness="high"))
    assert "eagerness" in QwenDialect(PLUS).check(eager)[0]
    assert get_dialect("openai").check(SessionConfig()) == []


def test_connect_warns_of_an_unknown_model_with_or_without_a_session(caplog: pytest.LogCaptureFixture) -> None:
    """A mistyped model name is logged once at connect, also when no session config is passed."""
    with RealtimeServer(dialect="qwen", realtime=False) as srv, caplog.at_level(logging.WARNING, "rtedge"):
        for session in (None, SessionConfig(instructions="Be brief.")):
            caplog.clear()
            with rtedge.connect("qwen", model="qwen3-omni-flsh-realtime", url=srv.url, session=session):
                pass
            warned = [r.getMessage() for r in caplog.records if "capability table" in r.getMessage()]
            assert len(warned) == 1 and "'qwen3-omni-flsh-realtime'" in warned[0], session


def test_response_create_overrides() -> None:
    session = Session("qwen")
    overrides = {"instructions": "Shout.", "output_modalities": ["text"]}
    wire = _wire(session, ev.ResponseCreate(response=overrides))
    assert wire["response"] == {"instructions": "Shout.", "modalities": ["text"]}
    with pytest.raises(ConfigError):
        session.send(ev.ResponseCreate(response={"output_modalities": ["audio"]}))


# ------------------------------------------------------------------------------------------------ events


@pytest.mark.parametrize(("beta", "ga"), [
    ("response.audio.delta", "response.output_audio.delta"),
    ("response.audio.done", "response.output_audio.done"),
    ("response.audio_transcript.delta", "response.output_audio_transcript.delta"),
    ("response.audio_transcript.done", "response.output_audio_transcript.done"),
    ("response.text.delta", "response.output_text.delta"),
    ("response.text.done", "response.output_text.done"),
    ("conversation.item.created", "conversation.item.created"),
    ("response.function_call_arguments.done", "response.function_call_arguments.done"),
    ("some.future_event", "some.future_event"),
])
def test_event_names_are_normalised(beta: str, ga: str) -> None:
    session = Session("qwen")
    event = _receive(session, {"type": beta, "event_id": "event_1", "response_id": "resp_1",
                               "item_id": "item_1", "output_index": 0, "content_index": 0, "delta": "QUJD",
                               "rid": 7})
    assert event.type == ga and event.raw["rid"] == 7
    assert not isinstance(event, ev.UnknownServerEvent) or ga == "some.future_event"


def test_flat_session_is_read_as_ga() -> None:
    session = Session("qwen")
    assert session.state.input_format == AudioFormat.pcm(16000)
    assert session.state.output_format == AudioFormat.pcm(24000)
    flat = {"id": "sess_1", "object": "realtime.session", "model": "qwen3-omni-flash-realtime",
            "modalities": ["text", "audio"], "voice": "Cherry", "input_audio_format": "pcm16",
            "output_audio_format": "pcm24", "input_audio_transcription": {"model": "gummy-realtime-v1"},
            "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 800,
                               "interrupt_response": False},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}], "temperature": 0.9}
    created = _receive(session, {"type": "session.created", "event_id": "e1", "session": flat})
    assert isinstance(created, ev.SessionCreated)
    assert created.session["output_modalities"] == ["audio"] and created.session["temperature"] == 0.9
    assert created.session["audio"] == {
        "input": {"format": {"type": "audio/pcm", "rate": 16000},
                  "transcription": {"model": "gummy-realtime-v1"}, "turn_detection": flat["turn_detection"]},
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "Cherry"}}
    assert created.session["tools"] == [{"type": "function", "name": "f", "parameters": {}}]
    assert not session.interrupt_response_on_speech()
    assert session.state.session_id == "sess_1"
    # session.updated with turn_detection null: manual turns, read the same way
    _receive(session, {"type": "session.updated",
                       "session": {"turn_detection": None, "modalities": ["text"]}})
    assert session.state.session["audio"]["input"]["turn_detection"] is None
    assert session.state.session["output_modalities"] == ["text"]
    # the SDK's newer nested spelling (sample_rate, not rate) is read too
    _receive(session, {"type": "session.updated", "session": {
        "audio": {"output": {"format": {"type": "pcm", "sample_rate": 48000}}}}})
    assert session.state.output_format == AudioFormat.pcm(48000)


def test_plural_usage_keys_and_beta_content_types() -> None:
    session = Session("qwen")
    usage = {"total_tokens": 120, "input_tokens": 100, "output_tokens": 20,
             "input_tokens_details": {"text_tokens": 40, "audio_tokens": 60},
             "output_tokens_details": {"text_tokens": 5, "audio_tokens": 15}}
    for n in (1, 2):
        done = _receive(session, {"type": "response.done", "response": {
            "id": f"resp_{n}", "status": "completed", "modalities": ["text", "audio"], "usage": usage,
            "output": [{"id": f"item_{n}", "type": "message", "role": "assistant",
                        "content": [{"type": "audio", "transcript": "Hi."}]}]}})
        assert isinstance(done, ev.ResponseDone)
        assert done.response["usage"]["input_token_details"] == usage["input_tokens_details"]
        assert done.response["output"][0]["content"][0]["type"] == "output_audio"
        assert done.response["output_modalities"] == ["audio"]
    total = session.state.usage
    assert (total.responses, total.input_tokens, total.output_tokens, total.total_tokens) == (2, 200, 40, 240)
    assert (total.input_text_tokens, total.input_audio_tokens) == (80, 120)
    assert (total.output_text_tokens, total.output_audio_tokens) == (10, 30)
    item = _receive(session, {"type": "conversation.item.created", "item": {
        "id": "item_9", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "Yo"}]}})
    assert session.state.items["item_9"]["content"][0]["type"] == "output_text" and item.type == item.TYPE


# ------------------------------------------------------------------------------------------------ images


def test_a_new_response_ends_cancelling() -> None:
    # qwen3.5 sends no response.done after a cancel; the next response.created means it is over
    session = Session(QwenDialect(PLUS))
    _receive(session, {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}})
    session.send(ev.ResponseCancel())
    assert session.state.response is ResponseState.CANCELLING
    _receive(session, {"type": "response.created", "response": {"id": "resp_2", "status": "in_progress"}})
    assert session.state.response is ResponseState.ACTIVE and session.state.response_id == "resp_2"
    assert isinstance(session.cancel_event(), ev.ResponseCancel)


def test_image_rules_in_the_session() -> None:
    session = Session("qwen")
    with pytest.raises(LocalProtocolError, match="before any audio"):
        session.send(ev.InputImageBufferAppend(image=JPEG))
    session.send(ev.InputAudioBufferAppend(audio=b"\0\0" * 160))
    wire = _wire(session, ev.InputImageBufferAppend(image=JPEG))
    assert wire["type"] == "input_image_buffer.append" and base64.b64decode(wire["image"]) == JPEG
    with pytest.raises(ConfigError, match="JPEG"):
        ev.InputImageBufferAppend(image=b"\x89PNG\r\n\x1a\n" + bytes(10))
    limit = ev.MAX_IMAGE_BASE64_BYTES * 3 // 4
    ev.InputImageBufferAppend(image=JPEG[:4] + bytes(limit - 4))  # exactly at the limit
    with pytest.raises(ConfigError, match="limit"):
        ev.InputImageBufferAppend(image=JPEG[:4] + bytes(limit - 3))
    openai = Session("openai")
    openai.send(ev.InputAudioBufferAppend(audio=b"\0\0"))
    with pytest.raises(LocalProtocolError, match="does not support"):
        openai.send(ev.InputImageBufferAppend(image=JPEG))
    assert "input_image" not in get_dialect("openai").capabilities


def test_protocol_core_stays_pure() -> None:
    import ast
    import inspect

    from rtedge.protocol.dialects import qwen

    imported = {n.names[0].name.split(".")[0] for n in ast.walk(ast.parse(inspect.getsource(qwen)))
                if isinstance(n, ast.Import)}
    assert not imported & {"logging", "time", "socket", "threading"}
    assert to_wire(ev.SessionFinish(), QwenDialect()) == '{"type":"session.finish"}'


# ------------------------------------------------------------------------------------------------ live


@pytest.fixture
def server():
    with RealtimeServer(dialect="qwen", realtime=False, seed=3) as srv:
        yield srv


def _connect(server: RealtimeServer, provider: str | QwenDialect = "qwen", **kwargs: Any) -> rtedge.Client:
    kwargs.setdefault("reconnect", Backoff(initial=0.05, max=0.2, max_attempts=5))
    return rtedge.connect(provider, url=server.url, **kwargs)


def _close_code(server: RealtimeServer, index: int = 0) -> int | None:
    conn = server._snapshot_conns()[index]
    assert wait_until(lambda: not conn.alive, timeout=5)
    return conn.ws.close_code


@pytest.mark.usefixtures("no_thread_leak")
def test_text_turn_and_usage_with_plural_keys(server) -> None:
    with _connect(server, session=SessionConfig(output_modalities=("text",), instructions="Be brief.")) as c:
        assert server.handshakes[0]["path"].startswith("/api-ws/v1/realtime?model=qwen3-omni-flash-realtime")
        assert server.received[0]["session"] == {"modalities": ["text"], "instructions": "Be brief."}
        assert c.session["output_modalities"] == ["text"]
        assert c.session["audio"]["output"]["voice"] == "Cherry"
        assert c.state.input_format == AudioFormat.pcm(16000)
        for n in (1, 2):
            c.send_text("Hello there")
            done = c.wait_for("response.done", timeout=5)
            assert isinstance(done, ev.ResponseDone) and done.status == "completed"
            reply = c.state.output_items[done.response["output"][0]["id"]]
            assert reply.text[0] == "I heard you."
            assert c.usage.responses == n
        sent = server.sent
        kinds = {e["type"] for e in sent}
        assert {"response.text.delta", "response.text.done", "conversation.item.created"} <= kinds
        assert not kinds & {"response.output_text.delta", "conversation.item.added", "rate_limits.updated"}
        reported = [e["response"]["usage"] for e in sent if e["type"] == "response.done"]
        assert all("input_tokens_details" in u and "input_token_details" not in u for u in reported)
        assert c.usage.total_tokens == sum(u["total_tokens"] for u in reported) > 0
        assert c.usage.input_text_tokens == sum(u["input_tokens_details"]["text_tokens"] for u in reported)


@pytest.mark.usefixtures("no_thread_leak")
def test_server_picks_the_dialect_from_the_path() -> None:
    with RealtimeServer(realtime=False) as server:  # dialect=None: by path, per connection
        assert server.url.endswith("/v1/realtime") and "/api-ws/" not in server.url
        qwen_url = server.url.replace("/v1/realtime", "/api-ws/v1/realtime")
        with rtedge.connect("qwen", url=qwen_url, session=SessionConfig(output_modalities=("text",))) as c:
            assert server.sessions[0]["modalities"] == ["text"] and server.sessions[0]["voice"] == "Cherry"
            c.send_text("Hi")
            assert c.wait_for("response.done", timeout=5).status == "completed"
        with rtedge.connect("openai", url=server.url) as c:
            assert server.sessions[1]["type"] == "realtime"
        kinds = {e["type"] for e in server.sent}
        assert "response.text.delta" in kinds and "response.output_text.delta" not in kinds


@pytest.mark.usefixtures("no_thread_leak")
def test_audio_turn_with_real_speech(server, speech_dir) -> None:
    pcm, rate = read_wav(speech_dir / "turn_on_the_kitchen_lights.wav")
    assert rate == 16000
    server.input_transcript = "turn on the kitchen lights"
    config = SessionConfig(output_modalities=("text", "audio"),
                           transcription=Transcription(model="gummy-realtime-v1"))
    with _connect(server, session=config) as c:
        assert server.sessions[0]["turn_detection"]["silence_duration_ms"] == 800  # DashScope's default
        audio = np.concatenate([pcm, np.zeros(rate, dtype=np.int16)])  # trailing silence ends the turn
        for start in range(0, audio.size, 1600):
            c.append_audio(audio[start:start + 1600], rate)
            c.wait_sent(500, timeout=5)
        stopped = c.wait_for("input_audio_buffer.speech_stopped", timeout=5)
        heard = c.wait_for("conversation.item.input_audio_transcription.completed", timeout=5)
        assert isinstance(heard, ev.InputAudioTranscriptionCompleted)
        assert heard.transcript == "turn on the kitchen lights"
        done = c.wait_for("response.done", timeout=10)
        assert isinstance(done, ev.ResponseDone) and done.status == "completed"
        item = c.state.output_items[done.response["output"][0]["id"]]
        assert item.text[0] == "I heard you." and item.audio_ms[0] > 300
        # 24 kHz out: the ms the client counted match the bytes the server sent
        deltas = [e for e in server.sent if e["type"] == "response.audio.delta"]
        sent_bytes = sum(len(base64.b64decode(e["delta"])) for e in deltas)
        assert item.audio_bytes[0] == sent_bytes and item.audio_ms[0] == pytest.approx(sent_bytes / 48)
        # 16 kHz in: the server measured the utterance on the input's own clock
        assert isinstance(stopped, ev.InputAudioBufferSpeechStopped)
        speech_ms = pcm.size * 1000 // rate
        assert speech_ms - 400 < stopped.audio_end_ms < speech_ms + 1000


@pytest.mark.usefixtures("no_thread_leak")
def test_manual_turn_with_turn_detection_null(server, speech_dir) -> None:
    pcm, rate = read_wav(speech_dir / "stop.wav")
    with _connect(server, session=SessionConfig(turn_detection=None, output_modalities=("text",))) as c:
        assert server.received[0]["session"]["turn_detection"] is None
        assert server.sessions[0]["turn_detection"] is None
        assert c.session["audio"]["input"]["turn_detection"] is None
        c.append_audio(pcm, rate)
        c.commit()
        c.wait_for("input_audio_buffer.committed", timeout=5)
        c.create_response()
        assert c.wait_for("response.done", timeout=5).status == "completed"


@pytest.mark.usefixtures("no_thread_leak")
def test_tools_on_a_model_without_tools_is_a_config_error(server) -> None:
    tools = (FunctionTool(name="get_weather", parameters=WEATHER),)
    with pytest.raises(ConfigError, match="never calls"):
        _connect(server, session=SessionConfig(tools=tools))
    with pytest.raises(ConfigError, match="never calls"):
        _connect(server, model="qwen-omni-turbo-realtime", session=SessionConfig(tools=tools))
    assert server.connection_count == 0  # refused before any connection
    with _connect(server) as c:  # and later, on update_session
        with pytest.raises(ConfigError, match="never calls"):
            c.update_session(tools=tools)


@pytest.mark.usefixtures("no_thread_leak")
def test_tool_round_on_qwen35(server) -> None:
    tools = (FunctionTool(name="get_weather", description="Weather.", parameters=WEATHER),)
    with _connect(server, model=PLUS, session=SessionConfig(tools=tools, output_modalities=("text",))) as c:
        assert server.received[0]["session"]["tools"][0]["function"]["name"] == "get_weather"
        c.send_text("Weather in Hangzhou?")
        args = c.wait_for("response.function_call_arguments.done", timeout=5)
        assert isinstance(args, ev.ResponseFunctionCallArgumentsDone) and args.name == "get_weather"
        c.wait_for("response.done", timeout=5)
        c.send(ev.ConversationItemCreate(item=items.function_call_output(args.call_id, "sunny")))
        c.create_response()
        done = c.wait_for("response.done", timeout=5)
        assert c.state.output_items[done.response["output"][0]["id"]].text[0] == "I heard you."


@pytest.mark.usefixtures("no_thread_leak")
def test_image_rules_against_the_server(server) -> None:
    with _connect(server) as c:
        with pytest.raises(LocalProtocolError, match="before any audio"):
            c.append_image(JPEG)
        # the server's own rule, for a client that sends it anyway
        c.send({"type": "input_image_buffer.append", "image": base64.b64encode(JPEG).decode()})
        err = c.wait_for("error", timeout=5)
        assert isinstance(err, ev.Error) and err.error.message == "Error append image before append audio."
        c.append_audio(np.zeros(1600, dtype=np.int16), 16000)
        c.append_image(JPEG)
        server.wait_for_received("input_image_buffer.append", nth=2)
        with pytest.raises(ConfigError):
            c.append_image(b"GIF89a" + bytes(20))
        c.commit()
        c.wait_for("input_audio_buffer.committed", timeout=5)
        assert not [e for e in server.sent if e["type"] == "error"][1:]  # only the first one failed


@pytest.mark.usefixtures("no_thread_leak")
def test_cancel_without_response_done_settles_within_the_timeout() -> None:
    with RealtimeServer(dialect="qwen", realtime=True, done_after_cancel=False,
                        reply_text="This is a long answer that keeps talking for quite a while.") as server:
        with _connect(server, QwenDialect(cancel_done_timeout=0.5)) as c:
            c.create_response()
            c.wait_for("response.output_audio.delta", timeout=5)
            assert c.cancel_response()
            cancelled_at = time.monotonic()
            server.wait_for_sent("response.output_item.done", timeout=5)
            done = c.wait_for("response.done", timeout=3)
            elapsed = time.monotonic() - cancelled_at
            assert isinstance(done, ev.ResponseDone) and done.raw.get("rtedge_synthetic") is True
            assert done.status == "cancelled"
            assert done.response["status_details"]["reason"] == "client_cancelled"
            assert 0.45 <= elapsed < 2.5  # the timeout, plus at most one sender tick
            assert c.state.response is ResponseState.IDLE
            assert not [e for e in server.sent if e["type"] == "response.done"]
            # the session goes on: the next turn completes normally
            server.realtime = False
            c.send_text("Again?")
            assert c.wait_for("response.done", timeout=5).status == "completed"


@pytest.mark.usefixtures("no_thread_leak")
def test_a_new_response_during_the_wait_is_not_the_one_settled() -> None:
    reply = "A long answer, long enough to outlast the settling timeout twice."
    with RealtimeServer(dialect="qwen", realtime=True, done_after_cancel=False, reply_text=reply) as server:
        with _connect(server, QwenDialect(cancel_done_timeout=0.4)) as c:
            c.create_response()
            first = c.wait_for("response.created", timeout=5)
            c.wait_for("response.output_audio.delta", timeout=5)
            c.cancel_response()
            server.wait_for_sent("response.output_item.done", timeout=5)
            c.create_response()  # the server ended the first at output_item.done: a second one starts
            second = c.wait_for("response.created", timeout=5)
            assert c.state.response is ResponseState.ACTIVE and c.state.response_id == second.response_id
            settled = c.wait_for("response.done", timeout=3)
            assert settled.raw.get("rtedge_synthetic") and settled.response_id == first.response_id
            assert c.state.response is ResponseState.ACTIVE  # the second response is still running
            assert c.cancel_response()  # and can itself be cancelled
            again = c.wait_for("response.done", timeout=3)
            assert again.response_id == second.response_id and again.status == "cancelled"


@pytest.mark.usefixtures("no_thread_leak")
def test_cancel_with_response_done_is_not_settled_twice() -> None:
    with RealtimeServer(dialect="qwen", realtime=True, reply_text="A long enough reply to cancel.") as server:
        with _connect(server, QwenDialect(cancel_done_timeout=0.3)) as c:
            c.create_response()
            c.wait_for("response.output_audio.delta", timeout=5)
            c.cancel_response()
            done = c.wait_for("response.done", timeout=5)
            assert done.status == "cancelled" and not done.raw.get("rtedge_synthetic")
            server.realtime = False
            c.send_text("Next")
            assert c.wait_for("response.done", timeout=5).status == "completed"  # no stray synthetic one


@pytest.mark.usefixtures("no_thread_leak")
def test_close_sends_session_finish_and_gets_session_finished(server, caplog) -> None:
    caplog.set_level(logging.INFO, logger="rtedge")
    c = _connect(server)
    seen: list[str] = []
    c.on("*", lambda e: seen.append(e.type))
    started = time.monotonic()
    c.close()
    assert time.monotonic() - started < 1.5
    assert server.wait_for_received("session.finish")["type"] == "session.finish"
    assert server.sent[-1]["type"] == "session.finished"
    assert _close_code(server) == 1000
    assert c.fatal_error is None and c.link_state == "closed"
    assert "rtedge.gave_up" not in seen and "rtedge.reconnecting" not in seen
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert server.connection_count == 1


@pytest.mark.usefixtures("no_thread_leak")
@pytest.mark.parametrize("reply", ["error", "none"])
def test_close_is_clean_and_quick_when_finish_is_refused_or_unanswered(reply: str) -> None:
    with RealtimeServer(dialect="qwen", realtime=False, finish_reply=reply) as server:
        c = _connect(server, finish_timeout=2.0)
        started = time.monotonic()
        c.close()
        elapsed = time.monotonic() - started
        server.wait_for_received("session.finish")
        if reply == "error":  # qwen3.5-omni-flash: "invalid event type"; closed at once
            assert server.wait_for_sent("error")["error"]["param"] == "type"
            assert elapsed < 1.5  # not the 2 s finish_timeout
        else:
            assert 2.0 <= elapsed < 4.0  # waited finish_timeout, then closed anyway
        assert _close_code(server) == 1000
        assert c.fatal_error is None and c.link_state == "closed"
        assert "session.finished" not in {e["type"] for e in server.sent}


@pytest.mark.usefixtures("no_thread_leak")
def test_idle_cut_is_recovered_by_reconnecting() -> None:
    with RealtimeServer(dialect="qwen", realtime=False, idle_cut_s=0.4) as server:
        with _connect(server, session=SessionConfig(instructions="Stay.")) as c:
            c.send_text("Remember me", respond=False)
            event = c.wait_for("rtedge.reconnecting", timeout=5)
            assert isinstance(event, ev.Reconnecting) and "1011" in event.cause
            c.wait_for("rtedge.reconnected", timeout=5)
            assert server.connection_count == 2
            # the new session got the config and the conversation again
            assert [e["session"] for e in server.received if e["type"] == "session.update"] == [
                {"instructions": "Stay."}] * 2
            assert wait_until(lambda: len(server.conversation(1)) == 1)
            assert server.conversation(1)[0]["content"][0]["text"] == "Remember me"


@pytest.mark.usefixtures("no_thread_leak")
def test_keepalive_audio_prevents_the_idle_cut() -> None:
    with RealtimeServer(dialect="qwen", realtime=False, idle_cut_s=2.0) as server:
        with _connect(server, keepalive_audio_s=0.3) as c:
            # four keepalive appends span more than the 2 s cut (one per sender tick, about 1 s)
            started = time.monotonic()
            last = server.wait_for_received("input_audio_buffer.append", nth=4, timeout=10)
            assert time.monotonic() - started > 2.0
            assert base64.b64decode(last["audio"]) == bytes(3200)  # 100 ms of 16 kHz PCM16 silence
            assert server.connection_count == 1 and server.active_connections == 1
            assert c.stats.reconnects == 0 and c.link_state == "open"
        with pytest.raises(ConfigError, match="keepalive_audio_s"):
            _connect(server, keepalive_audio_s=0)
