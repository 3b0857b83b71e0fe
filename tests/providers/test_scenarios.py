"""The same scenarios against the local server in every dialect it speaks.

Each test connects with ``rtedge.connect(<dialect>, url=server.url, ...)`` to a
``RealtimeServer(dialect=<dialect>)`` (vLLM: ``VLLMServer``) and runs one scenario:

* text turn, audio turn (real speech from ``../shared/fixtures/speech``; skipped when absent),
  barge-in (``VoiceAgent`` with a scripted microphone), tool round (``ToolRunner``), graceful end,
  usage across a reconnect -- for openai, azure, xai and qwen;
* transcription and graceful end by the final commit -- for vllm.

Where a dialect lacks a feature the scenario checks its own behaviour instead: xAI and DashScope have
no ``conversation.item.truncate``, so their barge-in sends none and playback still stops at once;
DashScope ends with ``session.finish``/``session.finished`` before the close 1000.

Usage accounting is checked in every scenario: the client's normalized :class:`rtedge.Usage` per
response (``client.state.usage_by_response``) must equal what the server sent, read here from each
dialect's own place and spelling (GA ``response.usage.input_token_details``; DashScope's
``input_tokens_details``; xAI's top-level ``usage`` next to an empty ``response.usage``; vLLM's
``prompt_tokens``/``completion_tokens``), and the session's total (``client.usage``, across
reconnects) their sum.  The JSONL usage log is checked against the same numbers.
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

import rtedge
from rtedge.voice.agent import VoiceAgent
from rtedge.audio.devices import NullSink
from rtedge.protocol import AudioFormat, ServerVad, SessionConfig, Transcription
from rtedge.protocol import events as ev
from rtedge.protocol.usage import Usage
from rtedge.testing import RealtimeServer
from rtedge.testing.vllm_server import VLLMServer
from rtedge.voice.tools import ToolRunner
from rtedge.voice.transcriber import Transcriber
from rtedge.transport.backoff import Backoff
from rtedge.app.usage_log import UsageLog, usage_fields
from rtedge.audio.wavio import read_wav

from ..conftest import wait_until
from ..voice.test_agent import FRAME_MS, LONG_ANSWER, ScriptedMic

pytestmark = [pytest.mark.usefixtures("no_thread_leak"), pytest.mark.timeout(60)]

KEY = "scenario-key-0123456789"
VLLM_MODEL = "mistralai/Voxtral-Mini-4B-Realtime-2602"


@attrs.frozen
class Case:
    """What differs per dialect in these scenarios."""

    dialect: str
    model: str | None  # connect's model (Azure: the deployment)
    tool_model: str | None  # a model that calls tools
    text_only: tuple[str, ...] | None  # output_modalities of a text-only answer (None: always speaks)
    transcription: str
    input_format: AudioFormat | None  # asked for in the audio turn (None: the dialect's default)
    wire_rate: int  # the input audio rate on the wire
    truncates: bool


CASES = {
    "openai": Case("openai", None, None, ("text",), "gpt-4o-mini-transcribe", None, 24000, True),
    "azure": Case("azure", "my-deployment", None, ("text",), "gpt-4o-mini-transcribe", None, 24000, True),
    "xai": Case("xai", None, None, None, "grok-transcribe", AudioFormat.pcm(16000), 16000, False),
    "qwen": Case("qwen", None, "qwen3.5-omni-flash-realtime", ("text",), "gummy-realtime-v1", None, 16000,
                 False),
}
DIALECTS = list(CASES)


def _server(case: Case, **options: Any) -> RealtimeServer:
    auth = {"api_key": KEY} if case.dialect == "azure" else {}
    return RealtimeServer(dialect=case.dialect, xai_ping_s=0.5, **auth, **options)


def _connect(case: Case, srv: RealtimeServer, model: str | None = None, **options: Any) -> rtedge.Client:
    return rtedge.connect(case.dialect, url=srv.url, model=model or case.model, api_key=KEY, **options)


@pytest.fixture(params=DIALECTS)
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


@pytest.fixture
def phrase(speech_dir: Path) -> np.ndarray:
    samples, rate = read_wav(speech_dir / "stop.wav")
    assert rate == 16000
    return samples


# ------------------------------------------------------------------------------------------------ usage


def _sent_usage(dialect: str, done: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
    """The usage object of a ``response.done`` the server sent, where and how its dialect spells it,
    and the normalized counts it means (written out per dialect, not with ``Usage.from_raw``)."""
    if dialect == "xai":
        assert done["response"]["usage"] == {}
        raw, inp, out = done["usage"], "input_token_details", "output_token_details"
    elif dialect == "qwen":
        raw, inp, out = done["response"]["usage"], "input_tokens_details", "output_tokens_details"
        assert "input_token_details" not in raw and "cached_tokens" not in raw[inp]
    else:
        raw, inp, out = done["response"]["usage"], "input_token_details", "output_token_details"
    usage = Usage(input_tokens=raw["input_tokens"], output_tokens=raw["output_tokens"],
                  total_tokens=raw["total_tokens"], input_text_tokens=raw[inp]["text_tokens"],
                  input_audio_tokens=raw[inp]["audio_tokens"],
                  input_image_tokens=raw[inp].get("image_tokens", 0),
                  cached_tokens=raw[inp].get("cached_tokens", 0), output_text_tokens=raw[out]["text_tokens"],
                  output_audio_tokens=raw[out]["audio_tokens"], responses=1)
    return raw, usage


def _check_usage(case: Case, srv: RealtimeServer, client: rtedge.Client, connection: int = 0) -> list[Usage]:
    """Per response and per session: the client's normalized usage equals what the server sent."""
    dones = [e for e in srv.sent if e["type"] == "response.done"]
    assert dones, "the server sent no response.done"
    expected = [_sent_usage(case.dialect, done)[1] for done in dones]
    current = [d["response"]["id"] for d in dones][-len(client.state.usage_by_response):]
    by_id = {d["response"]["id"]: u for d, u in zip(dones, expected)}
    assert list(client.state.usage_by_response) == current
    for rid, usage in client.state.usage_by_response.items():
        assert usage == by_id[rid], (case.dialect, rid)
        assert usage.total_tokens == usage.input_tokens + usage.output_tokens
        parts = usage.input_text_tokens + usage.input_audio_tokens + usage.input_image_tokens
        assert usage.input_tokens == parts
        assert usage.output_tokens == usage.output_text_tokens + usage.output_audio_tokens
    total = sum(expected, Usage())
    assert client.usage == total and client.usage.responses == len(dones)
    return expected


def _item_text(client: rtedge.Client, done: ev.ServerEvent) -> str:
    assert isinstance(done, ev.ResponseDone)
    item = client.state.output_items[done.response["output"][0]["id"]]
    return str(item.text[0])


# ------------------------------------------------------------------------------------------------ scenarios


def test_text_turn(case: Case) -> None:
    session = SessionConfig(instructions="Be brief.", output_modalities=case.text_only) if case.text_only \
        else SessionConfig(instructions="Be brief.")
    with _server(case, realtime=False, reply_text="Hello there.", seed=1) as srv, \
            _connect(case, srv, session=session) as client:
        assert client.dialect.name == case.dialect
        for question in ("Hi!", "Again?"):
            client.send_text(question)
            done = client.wait_for("response.done", timeout=10)
            assert done.status == "completed" and _item_text(client, done) == "Hello there."
        usages = _check_usage(case, srv, client)
    assert all(u.input_text_tokens > 0 and u.output_text_tokens > 0 for u in usages)
    spoke = [u.output_audio_tokens > 0 for u in usages]
    assert spoke == [case.text_only is None] * 2  # xAI always speaks
    assert not [e for e in srv.sent if e["type"] == "error"]
    if case.dialect == "azure":
        handshake = srv.handshakes[0]
        assert handshake["headers"]["api-key"] == KEY and "model=my-deployment" in handshake["path"]


def test_audio_turn_with_real_speech(case: Case, speech_dir: Path) -> None:
    pcm, rate = read_wav(speech_dir / "turn_on_the_kitchen_lights.wav")
    session = SessionConfig(turn_detection=ServerVad(silence_duration_ms=500),
                            transcription=Transcription(model=case.transcription),
                            **({"input_format": case.input_format} if case.input_format else {}))
    with _server(case, realtime=False, reply_text="The lights are on.", seed=2,
                 input_transcript="Turn on the kitchen lights.") as srv, \
            _connect(case, srv, session=session) as client:
        assert client.state.input_format.rate == case.wire_rate
        audio = np.concatenate([pcm, np.zeros(rate, dtype=np.int16)])  # trailing silence ends the turn
        chunks = range(0, audio.size, 3200)
        for start in chunks:
            client.append_audio(audio[start:start + 3200], rate)
            assert client.wait_sent(500, timeout=5)  # never more than the send queue's 2 s bound
        heard = client.wait_for("conversation.item.input_audio_transcription.completed", timeout=10)
        assert isinstance(heard, ev.InputAudioTranscriptionCompleted)
        assert heard.transcript == "Turn on the kitchen lights."
        done = client.wait_for("response.done", timeout=10)
        assert done.status == "completed" and _item_text(client, done) == "The lights are on."
        (usage,) = _check_usage(case, srv, client)
        srv.wait_for_received("input_audio_buffer.append", nth=len(chunks))
        started = srv.wait_for_sent("input_audio_buffer.speech_started")
        stopped = srv.wait_for_sent("input_audio_buffer.speech_stopped")
    assert usage.input_audio_tokens > 0 and usage.output_audio_tokens > 0
    # every sample arrived at the dialect's wire rate (the client resampled 16 kHz where needed)
    appends = [e for e in srv.received if e["type"] == "input_audio_buffer.append"]
    wire_s = sum(len(base64.b64decode(e["audio"])) for e in appends) / 2 / case.wire_rate
    assert wire_s == pytest.approx(audio.size / rate, abs=0.02)
    # one utterance, measured on the wire's clock (a wrong rate would stretch or squeeze it)
    assert len([e for e in srv.sent if e["type"] == "input_audio_buffer.committed"]) == 1
    speech_ms = pcm.size * 1000 // rate
    assert 0 <= started["audio_start_ms"] < 1000
    assert speech_ms // 2 < stopped["audio_end_ms"] < speech_ms + 1000


def test_barge_in(case: Case, phrase: np.ndarray) -> None:
    session = SessionConfig(turn_detection=ServerVad(silence_duration_ms=300))
    with _server(case, reply_text=LONG_ANSWER, seed=3) as srv, _connect(case, srv, session=session) as client:
        mic = ScriptedMic()
        agent = VoiceAgent(client, mic, NullSink(rate=24000))
        runner = threading.Thread(target=agent.run, kwargs={"max_seconds": 30}, name="test-agent-run",
                                  daemon=True)
        runner.start()
        try:
            client.send_text("Tell me a long story.")
            assert wait_until(lambda: agent.playback.stats.played_samples > 12000, timeout=10)  # 0.5 s heard
            srv.reply_text = "Okay."
            mic.speak(phrase)
            assert wait_until(lambda: agent.stats.interruptions >= 1, timeout=10)
            first = srv.wait_for_sent("response.output_item.added")["item"]["id"]
            cancelled = srv.wait_for_sent("response.done", timeout=5)
            srv.wait_for_sent("response.done", nth=2, timeout=15)  # the phrase's own answer
            assert wait_until(lambda: not agent.playing(), timeout=10)
        finally:
            agent.stop()
            runner.join(5)
        interruption = agent.interruptions[0]
        assert interruption.source == "server" and not interruption.cancelled
        assert interruption.position is not None and interruption.position.item_id == first
        # playback stopped at the interruption: not one more sample of the cut item was played
        assert agent.playback.played_ms(first) == interruption.position.played_ms
        assert 500 - FRAME_MS <= interruption.position.played_ms < 10000
        assert cancelled["response"]["status"] == "cancelled"  # the server's VAD cancelled it by itself
        _check_usage(case, srv, client)
    truncates = [e for e in srv.received if e["type"] == "conversation.item.truncate"]
    if case.truncates:
        (truncate,) = truncates
        assert interruption.truncated and truncate["item_id"] == first
        assert abs(truncate["audio_end_ms"] - interruption.position.played_ms) <= FRAME_MS
    else:
        assert not truncates and not interruption.truncated  # the dialect has none: nothing is sent
    assert not [e for e in srv.received if e["type"] == "response.cancel"]
    assert not [e for e in srv.sent if e["type"] == "error"]


def test_tool_round(case: Case) -> None:
    calls: list[tuple[str, str]] = []

    @rtedge.tool
    def get_weather(city: str) -> dict[str, Any]:
        """Current weather for a city.

        Args:
            city: the city name.
        """
        calls.append((city, threading.current_thread().name))
        return {"city": city, "sky": "foggy", "celsius": 12}

    session = SessionConfig(output_modalities=case.text_only) if case.text_only else None
    with _server(case, realtime=False, tool_arguments='{"city": "London"}', reply_text="Foggy, 12 degrees.",
                 seed=4) as srv, \
            _connect(case, srv, model=case.tool_model, session=session) as client, \
            ToolRunner(client, [get_weather]) as runner:
        client.send_text("Weather in London?")
        call = client.wait_for("response.function_call_arguments.done", timeout=10)
        first = client.wait_for("response.done", timeout=10)
        final = client.wait_for("response.done", timeout=10)
        assert runner.wait_idle(timeout=10)
        assert first.response["output"][0]["type"] == "function_call"
        assert final.status == "completed" and _item_text(client, final) == "Foggy, 12 degrees."
        usages = _check_usage(case, srv, client)
    assert calls == [("London", "rtedge-tools")] and len(usages) == 2
    outputs = [e["item"] for e in srv.received
               if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"]
    assert outputs == [{"type": "function_call_output", "call_id": call.call_id,
                        "output": json.dumps({"city": "London", "sky": "foggy", "celsius": 12})}]
    kinds = [e["type"] for e in srv.received if e["type"] != "session.finish"]
    assert kinds[-2:] == ["conversation.item.create", "response.create"]  # the output, then ONE create
    assert not [e for e in srv.sent if e["type"] == "error"]


def test_graceful_end_and_the_usage_log(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    with _server(case, realtime=False, seed=5) as srv:
        client = _connect(case, srv, model=case.tool_model)
        with UsageLog(client, path, extra={"device": "kiosk-7"}) as usage_log:
            client.send_text("Hello?")
            client.wait_for("response.done", timeout=10)
            (usage,) = _check_usage(case, srv, client)
            client.close()
            assert client.closed
        assert wait_until(lambda: srv.close_codes == [1000], timeout=5), srv.close_codes
        finish = [e["type"] for e in srv.received if e["type"] == "session.finish"]
        finished = [e["type"] for e in srv.sent if e["type"] == "session.finished"]
        assert (finish, finished) == ((["session.finish"], ["session.finished"]) if case.dialect == "qwen"
                                      else ([], []))
        if case.dialect == "qwen":
            assert srv.received[-1]["type"] == "session.finish"
        done = next(e for e in srv.sent if e["type"] == "response.done")
        session_id = srv.sent[0]["session"]["id"]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["response", "session"] and usage_log.lines == 2
    response, total = lines
    assert response["provider"] == total["provider"] == case.dialect
    assert response["session_id"] == session_id and total["session_ids"] == [session_id]
    assert response["response_id"] == done["response"]["id"] and response["status"] == "completed"
    assert response["usage"] == usage_fields(usage) and response["device"] == total["device"] == "kiosk-7"
    raw = _sent_usage(case.dialect, done)[0]
    if case.dialect == "qwen":  # the same object: the dialect spells DashScope's plural keys as GA's
        raw = {{"input_tokens_details": "input_token_details",
                "output_tokens_details": "output_token_details"}.get(k, k): v for k, v in raw.items()}
    assert response["raw_usage"] == raw  # the provider's own object, every field it sent
    assert total["usage"] == usage_fields(usage) and total["responses"] == 1
    model = {"azure": "my-deployment", "qwen": case.tool_model}.get(case.dialect) or srv.sessions[0]["model"]
    assert response["model"] == total["model"] == model


def test_usage_across_a_reconnect(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    with _server(case, realtime=False, seed=6) as srv, \
            _connect(case, srv, reconnect=Backoff(initial=0.05, max=0.2, jitter=0)) as client, \
            UsageLog(client, path) as usage_log:
        client.send_text("Before.")
        client.wait_for("response.done", timeout=10)
        srv.drop_connections()
        client.wait_for("rtedge.reconnected", timeout=10)
        client.send_text("After.")
        second = client.wait_for("response.done", timeout=10)
        before, after = [_sent_usage(case.dialect, e)[1] for e in srv.sent if e["type"] == "response.done"]
        assert list(client.state.usage_by_response) == [second.response_id]  # this session's responses
        assert client.state.usage_by_response[second.response_id] == after
        assert client.state.usage == after and client.usage == before + after  # the session: both
        client.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["response", "response", "session"] and usage_log.closed
    sessions = [e["session"]["id"] for e in srv.sent if e["type"] == "session.created"]
    assert [line["session_id"] for line in lines[:2]] == sessions and len(set(sessions)) == 2
    assert lines[2]["session_ids"] == sessions and lines[2]["usage"] == usage_fields(before + after)
    assert [line["usage"] for line in lines[:2]] == [usage_fields(before), usage_fields(after)]


# ------------------------------------------------------------------------------------------------ vLLM


def test_vllm_transcription_and_its_usage(speech_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    with VLLMServer(transcript="turn on the kitchen lights") as srv:
        with Transcriber(url=srv.url, model=VLLM_MODEL) as tr:
            assert tr.client is not None
            with UsageLog(tr.client, path) as usage_log:
                (utterance,) = tr.transcribe_file(speech_dir / "turn_on_the_kitchen_lights.wav")
                raw = srv.wait_for_sent("transcription.done")["usage"]
                assert tr.client.usage == tr.usage == utterance.usage
        assert utterance.text == "turn on the kitchen lights"
    assert utterance.usage == Usage(input_tokens=raw["prompt_tokens"], output_tokens=raw["completion_tokens"],
                                    total_tokens=raw["total_tokens"], responses=1)
    assert utterance.usage.input_tokens > 20 and utterance.usage.output_tokens == 5
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["transcription", "session"] and usage_log.lines == 2
    assert lines[0]["raw_usage"] == raw and lines[0]["usage"] == usage_fields(utterance.usage)
    assert lines[0]["model"] == VLLM_MODEL and lines[0]["provider"] == "vllm"
    assert lines[0]["session_id"].startswith("sess-") and lines[1]["usage"] == usage_fields(utterance.usage)


def test_vllm_graceful_end_by_the_final_commit(speech_dir: Path) -> None:
    pcm, rate = read_wav(speech_dir / "stop.wav")
    with VLLMServer(transcript="stop", done_delay=0.2) as srv:
        with rtedge.connect("vllm", url=srv.url, model=VLLM_MODEL) as client:
            client.send(ev.InputAudioBufferCommit())
            client.append_audio(pcm, rate)
            client.send(ev.InputAudioBufferCommit(final=True))
            done = client.wait_for("transcription.done", timeout=10)
            assert isinstance(done, ev.TranscriptionDone) and done.text == "stop"
        assert wait_until(lambda: srv.close_codes == [1000], timeout=5), srv.close_codes
        assert srv.dropped_appends == 0 and srv.ignored_commits == 0
        assert not [e for e in srv.sent if e["type"] == "error"]
        kinds = [e["type"] + (" final" if e.get("final") else "") for e in srv.received]
    assert kinds[0] == "session.update" and kinds[1] == "input_audio_buffer.commit"
    assert kinds[-1] == "input_audio_buffer.commit final"  # nothing after the final commit: then the close
    assert client.usage.responses == 1 and client.usage.input_tokens == done.usage["prompt_tokens"]
