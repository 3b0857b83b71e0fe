"""The local servers as other projects' official SDKs see them: openai-python and DashScope's own client
each complete a turn, and every server event validates under strict types.

Strict means: openai-python's ``RealtimeServerEvent`` validates the event *and* no level of the parsed model
holds keys the SDK does not know, except the few the live service sends anyway (``object``/``id``/
``expires_at`` on sessions, ``obfuscation`` on deltas), which are read from the recorded live sessions
in ``../shared/fixtures/recorded/`` (that test skips when they are absent).
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rtedge.testing import RealtimeServer
from rtedge.audio.wavio import read_wav

pydantic = pytest.importorskip("pydantic")
realtime_types = pytest.importorskip("openai.types.realtime")
VALIDATOR = pydantic.TypeAdapter(realtime_types.RealtimeServerEvent)
RECORDED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "recorded" / "openai"
SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "speech"
#: keys the live GA service sends that openai-python's types do not list (checked against the recordings)
LIVE_EXTRAS = {
    ("session.created", "$.session.object"), ("session.created", "$.session.id"),
    ("session.created", "$.session.expires_at"),
    ("session.updated", "$.session.object"), ("session.updated", "$.session.id"),
    ("session.updated", "$.session.expires_at"),
    ("response.output_audio_transcript.delta", "$.obfuscation"),
    ("response.output_text.delta", "$.obfuscation"),
    ("response.function_call_arguments.delta", "$.obfuscation"),
    ("conversation.item.input_audio_transcription.delta", "$.obfuscation"),
}

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_thread_leak")]


def _extras(value: object, path: str = "$") -> list[str]:
    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        found.extend(f"{path}.{key}" for key in (value.model_extra or {}))
        for name in type(value).model_fields:
            found.extend(_extras(getattr(value, name), f"{path}.{name}"))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found.extend(_extras(item, f"{path}[{i}]"))
    return found


def strict_problems(event: dict[str, Any]) -> list[str]:
    """Why openai-python's types would not take ``event`` as it is (empty when they do)."""
    try:
        model = VALIDATOR.validate_python(event)
    except pydantic.ValidationError as exc:
        return [f"{event.get('type')}: {exc}"]
    kind = event.get("type")
    return [f"{kind}: unknown key {p}" for p in _extras(model) if (kind, p) not in LIVE_EXTRAS]


def test_the_allowed_extras_are_what_the_live_service_sends():
    yaml = pytest.importorskip("yaml")
    if not RECORDED.is_dir():
        pytest.skip("../shared/fixtures/recorded is not present")
    live: set[tuple[str, str]] = set()
    for path in sorted(RECORDED.glob("*.yaml")):
        for it in yaml.safe_load(path.read_text())["interactions"]:
            if it.get("direction") != "received":
                continue
            event = it["data"] if isinstance(it["data"], dict) else json.loads(it["data"])
            try:
                model = VALIDATOR.validate_python(event)
            except pydantic.ValidationError:
                continue
            live.update((event["type"], p) for p in _extras(model))
    assert LIVE_EXTRAS <= live | {(k, p) for k, p in LIVE_EXTRAS if k.endswith(".delta")}
    assert {e for e in LIVE_EXTRAS if e[0].startswith("session.")} <= live


def _speech() -> np.ndarray:
    if not SPEECH.is_dir():
        pytest.skip("../shared/fixtures/speech is not present")
    samples, rate = read_wav(SPEECH / "stop.wav")
    assert rate == 16000
    return samples


def test_openai_python_completes_a_turn_with_strictly_valid_events():
    from openai import OpenAI

    received: list[dict[str, Any]] = []
    with RealtimeServer(realtime=False, reply_text="Done.", input_transcript="Stop.") as srv:
        base = srv.url.rsplit("/realtime", 1)[0]
        client = OpenAI(api_key="sk-local", websocket_base_url=base)
        with client.realtime.connect(model="gpt-realtime") as conn:
            conn.session.update(session={
                "type": "realtime", "instructions": "Be brief.",
                "audio": {"output": {"voice": {"id": "voice_123"}},
                          "input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}}})
            conn.conversation.item.create(item={"type": "message", "role": "user",
                                                "content": [{"type": "input_text", "text": "Hello"}]})
            conn.response.create()
            while True:
                event = json.loads(conn.recv_bytes())
                received.append(event)
                if event["type"] == "response.done":
                    break
            audio = base64.b64encode(np.zeros(4800, "<i2").tobytes()).decode()  # a spoken turn as well
            conn.input_audio_buffer.append(audio=audio)
            conn.input_audio_buffer.commit()
            conn.response.create()
            while True:
                event = json.loads(conn.recv_bytes())
                received.append(event)
                if event["type"] == "response.done":
                    break
    kinds = [e["type"] for e in received]
    assert kinds[0] == "session.created" and "session.updated" in kinds and kinds.count("response.done") == 2
    assert "response.output_audio.delta" in kinds
    problems = [p for e in received for p in strict_problems(e)]
    assert problems == []
    done = [e for e in received if e["type"] == "response.done"][0]
    assert done["response"]["status"] == "completed"
    assert done["response"]["audio"]["output"]["voice"] == "voice_123"  # the custom voice, as the types want


def test_openai_python_sees_404_for_a_wrong_path():
    import websocket

    with RealtimeServer() as srv:
        wrong = srv.url.replace("/v1/realtime", "/wrong")
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(wrong, timeout=5)
        assert info.value.status_code == 404
        assert srv.connection_count == 0
        ok = websocket.create_connection(srv.url + "?model=gpt-realtime", timeout=5)
        ok.close()


#: fields each DashScope server event carries (Alibaba's server-events reference, as summarised in the
#: protocol notes, section 2.3), and the only ones allowed besides ``type``/``event_id``
QWEN_EVENT_KEYS: dict[str, tuple[set[str], set[str]]] = {
    "session.created": ({"session"}, set()),
    "session.updated": ({"session"}, set()),
    "session.finished": (set(), set()),
    "input_audio_buffer.speech_started": ({"audio_start_ms", "item_id"}, set()),
    "input_audio_buffer.speech_stopped": ({"audio_end_ms", "item_id"}, set()),
    "input_audio_buffer.committed": ({"item_id"}, {"previous_item_id"}),
    "conversation.item.created": ({"item"}, {"previous_item_id"}),
    "conversation.item.input_audio_transcription.completed": ({"item_id", "content_index", "transcript"},
                                                              set()),
    "response.created": ({"response"}, set()),
    "response.done": ({"response"}, set()),
    "response.output_item.added": ({"response_id", "output_index", "item"}, set()),
    "response.output_item.done": ({"response_id", "output_index", "item"}, set()),
    "response.content_part.added": ({"response_id", "item_id", "output_index", "content_index", "part"},
                                    set()),
    "response.content_part.done": ({"response_id", "item_id", "output_index", "content_index", "part"},
                                   set()),
    "response.audio_transcript.delta": ({"response_id", "item_id", "output_index", "content_index", "delta"},
                                        set()),
    "response.audio_transcript.done": ({"response_id", "item_id", "output_index", "content_index",
                                        "transcript"}, set()),
    "response.audio.delta": ({"response_id", "item_id", "output_index", "content_index", "delta"}, set()),
    "response.audio.done": ({"response_id", "item_id", "output_index", "content_index"}, set()),
    "response.text.delta": ({"response_id", "item_id", "output_index", "content_index", "delta"}, set()),
    "response.text.done": ({"response_id", "item_id", "output_index", "content_index", "text"}, set()),
}


def qwen_problems(event: dict[str, Any]) -> list[str]:
    kind = event.get("type")
    if kind not in QWEN_EVENT_KEYS:
        return [f"unexpected event type {kind!r}"]
    required, optional = QWEN_EVENT_KEYS[kind]
    keys = set(event) - {"type", "event_id"}
    problems = [f"{kind}: missing {k}" for k in sorted(required - keys)]
    problems += [f"{kind}: unknown key {k}" for k in sorted(keys - required - optional)]
    if kind == "response.done":
        usage = event["response"].get("usage") or {}
        problems += [f"response.done: usage lacks {k}"  # DashScope's plural spelling
                     for k in ("input_tokens_details", "output_tokens_details") if k not in usage]
    if kind.endswith(".delta") and "obfuscation" in event:
        problems.append(f"{kind}: obfuscation is OpenAI's, not DashScope's")
    return problems


def test_dashscope_sdk_completes_a_turn_and_ends_the_session():
    """DashScope 2.0.2's ``OmniRealtimeConversation`` with its defaults: ``update_session()`` sends
    ``voice: null`` and ``input_audio_transcription: {"model": null}``, ``create_response()`` sends
    ``response.instructions: null``; then ``end_session()`` (session.finish -> session.finished)."""
    omni = pytest.importorskip("dashscope.audio.qwen_omni")
    samples = _speech()
    events: list[dict[str, Any]] = []
    cond = threading.Condition()

    class Callback(omni.OmniRealtimeCallback):
        def on_event(self, message: Any) -> None:
            with cond:
                events.append(message)
                cond.notify_all()

    def wait_for(kind: str, count: int = 1) -> None:
        with cond:
            assert cond.wait_for(lambda: sum(e.get("type") == kind for e in events) >= count, timeout=20), \
                [e.get("type") for e in events]

    options = {"dialect": "qwen", "realtime": False, "reply_text": "Ni hao.", "input_transcript": "Stop."}
    with RealtimeServer(**options) as srv:
        conv = omni.OmniRealtimeConversation(model="qwen3-omni-flash-realtime", callback=Callback(),
                                             url=srv.url, api_key="sk-local")
        conv.connect()
        try:
            wait_for("session.created")
            conv.update_session(output_modalities=[omni.MultiModality.AUDIO, omni.MultiModality.TEXT],
                                enable_turn_detection=False)
            wait_for("session.updated")
            for k in range(0, len(samples), 1600):
                conv.append_audio(base64.b64encode(samples[k:k + 1600].astype("<i2").tobytes()).decode())
            conv.commit()
            conv.create_response()
            wait_for("response.done")
            # the newer audio config (session.audio.{input,output}.format with sample_rate)
            conv.update_session(output_modalities=[omni.MultiModality.AUDIO, omni.MultiModality.TEXT],
                                enable_turn_detection=False,
                                input_audio_config=omni.AudioFormatConfig("pcm", 16000),
                                output_audio_config=omni.AudioFormatConfig("pcm", 24000))
            wait_for("session.updated", 2)
            conv.end_session(timeout=10)
        finally:
            conv.close()
            conv.thread.join(10)
        sent = [e["type"] for e in srv.received]
    kinds = [e.get("type") for e in events]
    assert "error" not in kinds, [e for e in events if e.get("type") == "error"]
    assert kinds[-1] == "session.finished" and "response.audio.delta" in kinds
    assert sent[-1] == "session.finish"
    done = next(e for e in events if e["type"] == "response.done")
    assert done["response"]["status"] == "completed"
    assert [p for e in events for p in qwen_problems(e)] == []
