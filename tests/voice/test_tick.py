"""TickSession against the local server: exact ticks, conservation, barge-in, determinism, codecs, tools."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest

import rtedge
from rtedge.audio import codec
from rtedge.errors import AudioError, ConfigError
from rtedge.protocol.dialects import register_dialect
from rtedge.protocol.dialects.openai import OpenAIDialect
from rtedge.testing import RealtimeServer, Reply
from rtedge.testing._audio import synthesize
from rtedge.testing._base import time_scale
from rtedge.voice.tick import TickResult, TickSession, TickSettings

pytestmark = pytest.mark.usefixtures("no_thread_leak")

N = 1600  # one 200 ms tick at 8 kHz
REPLY = "Sure, I can help you with that order today."
LONG = "Let me read you the whole policy, section by section, so nothing is missed along the way. " * 2
PCMU = {"input_format": rtedge.AudioFormat.pcmu(), "output_format": rtedge.AudioFormat.pcmu()}


def ulaw_speech(text: str) -> np.ndarray:
    pcm, _ = synthesize(text, 8000)
    return codec.ulaw_encode(np.ascontiguousarray(pcm))


def ulaw_tone(ms: int, freq: float = 300.0, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(8 * ms) / 8000.0
    return codec.ulaw_encode(np.round(amp * np.sin(2 * np.pi * freq * t)).astype(np.int16))


def silence(ms: int) -> np.ndarray:
    return np.full(8 * ms, 0xFF, dtype=np.uint8)


def run(ts: TickSession, *parts: np.ndarray) -> list[TickResult]:
    audio = np.concatenate(parts)
    audio = np.concatenate([audio, silence(0)[:0], np.full(-len(audio) % N, 0xFF, np.uint8)])
    return [ts.run_tick(audio[i:i + N]) for i in range(0, len(audio), N)]


def settings(srv: RealtimeServer, **session) -> TickSettings:
    return TickSettings(url=srv.url, session=rtedge.SessionConfig(**session))


def sent_audio(srv: RealtimeServer, item_id: str | None = None) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in srv.sent
                    if e["type"] == "response.output_audio.delta" and item_id in (None, e["item_id"]))


def transcripts(srv: RealtimeServer) -> str:
    return "".join(e["transcript"] for e in srv.sent if e["type"] == "response.output_audio_transcript.done")


def heard(results: list[TickResult]) -> bytes:
    """The agent audio of the ticks, padding left out (bytes in the tick format)."""
    b = 1 if results[0].format == "ulaw8k" else 2
    return b"".join(r.agent_audio[b * s.offset:b * (s.offset + s.length)] for r in results for s in r.spans)


# ---------------------------------------------------------------------------------------------- conservation


def test_ticks_are_exact_and_audio_is_conserved_to_the_byte():
    with RealtimeServer(realtime=False, seed=1, reply_text=REPLY) as srv, \
            TickSession(settings(srv, **PCMU), tick_ms=200) as ts:
        results = run(ts, silence(400), ulaw_speech("Hello, I need help with my order."), silence(6000))
        results += run(ts, ulaw_speech("And one more thing."), silence(6000))
    assert all(len(r.agent_audio) == N and r.format == "ulaw8k" for r in results)
    assert [r.tick for r in results] == list(range(len(results)))
    assert [r.start_ms for r in results] == [200 * k for k in range(len(results))]
    sent = sent_audio(srv)
    assert len(sent) > 2 * N and heard(results) == sent  # mu-law both ways: byte for byte, in order
    assert sum(r.agent_samples for r in results) == len(sent) and results[-1].carried_samples == 0
    assert not any(r.interrupted for r in results)
    assert "".join(r.agent_transcript for r in results) == transcripts(srv) == REPLY * 2
    kinds = [k for r in results for k in r.kinds()]
    assert kinds.count("speech_started") == kinds.count("response_done") == 2


@pytest.mark.parametrize("fmt,rate", [("ulaw8k", 8000), ("pcm16k", 16000), ("pcm24k", 24000)])
def test_conservation_through_the_resampler_is_exact_per_item(fmt, rate):
    """24 kHz PCM on the wire: each item of N samples becomes exactly N * rate // 24000 tick samples."""
    with RealtimeServer(realtime=False, seed=2, reply_text=REPLY) as srv, \
            TickSession(settings(srv), tick_ms=100, audio_format=fmt) as ts:
        n = ts.samples_per_tick
        caller = codec.ulaw_decode(ulaw_speech("Hello there, anyone home?"))
        speech = codec.Resampler(8000, rate).process(caller)
        if fmt == "ulaw8k":
            speech = codec.ulaw_encode(speech)
        audio = np.concatenate([speech, np.full(rate * 5, 0xFF if fmt == "ulaw8k" else 0, speech.dtype)])
        audio = np.concatenate([audio, np.full(-len(audio) % n, audio[-1], audio.dtype)])
        results = [ts.run_tick(audio[i:i + n]) for i in range(0, len(audio), n)]
    assert all(len(r.agent_audio) == n * (1 if fmt == "ulaw8k" else 2) for r in results)
    per_item: dict[str, int] = {}
    for e in srv.sent:
        if e["type"] == "response.output_audio.delta":
            per_item[e["item_id"]] = per_item.get(e["item_id"], 0) + len(base64.b64decode(e["delta"])) // 2
    expected = sum(v * rate // 24000 for v in per_item.values())
    assert per_item and sum(r.agent_samples for r in results) == expected
    if fmt == "pcm24k":  # same rate: the samples themselves are the server's
        assert heard(results) == sent_audio(srv)
    assert "".join(r.agent_transcript for r in results) == REPLY


def test_transcript_follows_the_audio_played():
    with RealtimeServer(realtime=False, seed=3, reply_text=LONG) as srv, \
            TickSession(settings(srv, **PCMU), tick_ms=200) as ts:
        results = run(ts, ulaw_speech("Read me the policy."), silence(16000))
    total_chars, total_audio = len(LONG), sum(r.agent_samples for r in results)
    chars = audio = 0
    for r in results:
        chars, audio = chars + len(r.agent_transcript), audio + r.agent_samples
        assert abs(chars - total_chars * audio / total_audio) <= 6, r.tick  # proportional, word-aligned
    assert chars == total_chars and sum(bool(r.agent_transcript) for r in results) > 40


# ------------------------------------------------------------------------------------------------ barge-in


def test_interruption_mid_tick_truncates_at_the_audio_played():
    with RealtimeServer(realtime=False, seed=4, reply_text=LONG) as srv, \
            TickSession(settings(srv, **PCMU), tick_ms=200) as ts:
        before = run(ts, ulaw_speech("Read me the policy."), silence(3000))
        assert before[-1].carried_samples > 10 * N  # the answer is still playing
        cut = run(ts, silence(100), ulaw_tone(400))  # the caller talks over it, 100 ms into a tick
        after = run(ts, silence(1000))
        srv.wait_for_received("conversation.item.truncate")
    hit = next(r for r in cut if r.interrupted)
    assert hit is cut[0] and hit.kinds()[:2] == ("speech_started", "interrupted")
    assert hit.events[0].offset_ms == 100 and hit.spans[-1].offset + hit.spans[-1].length == 800
    assert hit.samples()[800:].tolist() == [0] * (N - 800)  # silence from the onset on
    assert hit.dropped_samples > 0 and hit.carried_samples == 0
    results = before + cut + after
    item = hit.spans[-1].item_id
    played = sum(s.length for r in results for s in r.spans if s.item_id == item)
    assert hit.dropped_samples + played == len(sent_audio(srv, item))
    truncate = srv.wait_for_received("conversation.item.truncate")
    assert truncate["item_id"] == item and truncate["audio_end_ms"] == played // 8
    assert not any(e["type"] == "response.cancel" for e in srv.received)  # the server's answer was done
    assert not any(s.item_id == item for r in cut[1:] + after for s in r.spans)
    text = "".join(r.agent_transcript for r in results if r.tick <= hit.tick)
    assert LONG.startswith(text) and 0 < len(text) < len(LONG)
    assert abs(len(text) - len(LONG) * played / len(sent_audio(srv, item))) <= 6
    answer = heard(after)  # the answer to the barge-in plays from its start
    assert answer and answer == sent_audio(srv, after[-1].spans[0].item_id)[:len(answer)]
    assert ts.stats.interruptions == 1 and ts.stats.truncates == 1


def test_interruption_cancels_only_when_the_server_will_not():
    vad = {"type": "server_vad", "interrupt_response": False, "create_response": True}
    with RealtimeServer(realtime=True, delta_ms=20, seed=5, reply_text=LONG) as srv, \
            TickSession(settings(srv, **PCMU, turn_detection=vad), tick_ms=100, sync="wall") as ts:
        ts.run_tick(None)
        ts.client.send_text("Read me the policy.")
        srv.wait_for_sent("response.output_audio.delta", timeout=5, nth=10)
        results = [ts.run_tick(ulaw_tone(100)) for _ in range(4)]
        # the barge-in acts on the server's speech_started in the tick that reads it: on a loaded (emulated)
        # machine it may come after the tone's last tick, so more ticks follow until one has read it
        deadline = time.monotonic() + 5 * time_scale()
        while not any(r.interrupted for r in results) and time.monotonic() < deadline:
            results.append(ts.run_tick(None))
        srv.wait_for_received("response.cancel", timeout=5)
    assert sum(r.interrupted for r in results) == 1 and ts.stats.cancels == 1


# ------------------------------------------------------------------------------------------------ determinism


def scripted_run(tools: bool = False, realtime: bool = False, reply: str = LONG) -> list[TickResult]:
    tool = rtedge.tool(lambda order_id: {"order_id": order_id, "status": "shipped"}, name="order_status")
    kwargs = {"tools": [tool]} if tools else {}
    with RealtimeServer(realtime=realtime, seed=11, reply_text=reply) as srv, \
            TickSession(settings(srv, **PCMU), tick_ms=200, **kwargs) as ts:
        if reply != LONG:
            return run(ts, ulaw_speech("Hi!"), silence(600), ulaw_tone(300), silence(1400))
        return run(ts, ulaw_speech("Hi, where is my order?"), silence(2500), ulaw_tone(600), silence(3000),
                   ulaw_speech("Thanks."), silence(1500))


def test_same_scripted_server_twice_gives_identical_results():
    first, second = scripted_run(), scripted_run()
    assert first == second
    assert any(r.interrupted for r in first) and sum(r.agent_samples for r in first) > 0
    with_tools = scripted_run(tools=True)
    assert with_tools == scripted_run(tools=True) and any(r.tool_calls for r in with_tools)


def test_results_do_not_depend_on_server_pacing():
    """Barriers make a server streaming at real time give the same ticks as one streaming at once."""
    fast = scripted_run(reply="Okay, noted.")
    assert any(r.interrupted for r in fast)
    assert scripted_run(reply="Okay, noted.", realtime=True) == fast


# ------------------------------------------------------------------------------------------------ codec


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref, got = ref.astype(np.float64), got.astype(np.float64)
    return float(10 * np.log10(np.sum(ref ** 2) / max(1e-9, np.sum((ref - got) ** 2))))


def best_alignment(got: np.ndarray, rate: int, freq: float, amp: float,
                   lags: np.ndarray) -> tuple[float, float]:
    """(lag in samples, SNR dB) of the best-matching delayed tone."""
    t = np.arange(len(got)) / rate
    tone = [amp * np.sin(2 * np.pi * freq * (t - lag / rate)) for lag in lags]
    scores = [snr_db(ref[200:-200], got[200:-200]) for ref in tone]
    i = int(np.argmax(scores))
    return float(lags[i]), scores[i]


def test_mulaw_round_trip_through_the_codec():
    t24 = np.arange(24000) / 24000.0
    tone24 = np.round(6000 * np.sin(2 * np.pi * 440 * t24)).astype(np.int16)
    with RealtimeServer(realtime=False, seed=6, responder=lambda turn: Reply("A tone.", tone24)) as srv, \
            TickSession(settings(srv), tick_ms=200) as ts:  # the provider's 24 kHz PCM on the wire
        caller = ulaw_tone(1000, freq=440, amp=6000)
        results = run(ts, caller, silence(2000))
    # agent: 24 kHz PCM -> 8 kHz mu-law, aligned (no group delay) and within G.711 + resampling error
    agent = np.concatenate([r.samples()[s.offset:s.offset + s.length] for r in results for s in r.spans])
    assert len(agent) == 8000
    lag, snr = best_alignment(agent, 8000, 440, 6000, np.linspace(-2, 2, 81))
    assert abs(lag) <= 0.5 and snr > 30  # the group delay is removed to within half a sample
    # caller: 8 kHz mu-law -> 24 kHz PCM at the server (the streaming resampler delays it a little)
    wire = np.frombuffer(b"".join(base64.b64decode(e["audio"]) for e in srv.received
                                  if e["type"] == "input_audio_buffer.append"), dtype="<i2")
    lag, snr = best_alignment(wire[:20000], 24000, 440, 6000, np.arange(0, 100, 0.25))
    assert snr > 30
    # and with mu-law on the wire the caller's bytes reach the server unchanged, its 0x7F silence included
    chunk = np.concatenate([np.full(100, 0x7F, np.uint8), caller[:N - 200], np.full(100, 0x7F, np.uint8)])
    with RealtimeServer(realtime=False, seed=6) as srv, TickSession(settings(srv, **PCMU)) as ts:
        ts.run_tick(chunk)
    wire_bytes = base64.b64decode(srv.wait_for_received("input_audio_buffer.append")["audio"])
    assert wire_bytes == chunk.tobytes() and wire_bytes.count(0x7F) >= 200


# ------------------------------------------------------------------------------------------------ tools


def lookup_order(order_id: str) -> dict:
    """Look an order up.

    Args:
        order_id: the order number.
    """
    return {"order_id": order_id, "status": "shipped"}


def test_tool_call_is_answered_inside_the_tick():
    args = '{"order_id": "W42"}'
    with RealtimeServer(realtime=False, seed=7, reply_text=REPLY, tool_arguments=args) as srv, \
            TickSession(settings(srv, **PCMU), tick_ms=200, tools=[lookup_order]) as ts:
        results = run(ts, ulaw_speech("Where is my order?"), silence(4000))
    hit = next(r for r in results if r.tool_calls)
    call = hit.tool_calls[0]
    assert call.name == "lookup_order" and call.args() == {"order_id": "W42"}
    assert hit.kinds().count("response_done") == 2 and hit.agent_samples > 0  # the answer starts in the tick
    output = next(e for e in srv.received if e["type"] == "conversation.item.create")["item"]
    assert output["call_id"] == call.call_id and json.loads(output["output"])["status"] == "shipped"
    assert srv.sessions[0]["tools"][0]["name"] == "lookup_order"
    assert "".join(r.agent_transcript for r in results) == REPLY


def test_tool_call_without_handler_is_reported_and_answered_later():
    tools = [rtedge.FunctionTool(name="lookup_order")]
    with RealtimeServer(realtime=False, seed=8, reply_text=REPLY) as srv, \
            TickSession(settings(srv, **PCMU, tools=tools), tick_ms=200) as ts:
        results = run(ts, ulaw_speech("Where is my order?"), silence(1000))
        calls = [c for r in results for c in r.tool_calls]
        assert len(calls) == 1 and sum(r.agent_samples for r in results) == 0
        ts.send_tool_result(calls[0].call_id, {"status": "shipped"})
        results += run(ts, silence(4000))
    assert "".join(r.agent_transcript for r in results) == REPLY


class NoToolsDialect(OpenAIDialect):
    name = "notools-test"
    capabilities = OpenAIDialect.capabilities - {"tools"}


def test_provider_without_tools_gives_a_clear_error():
    register_dialect("notools-test", NoToolsDialect)
    tools = [rtedge.FunctionTool(name="lookup_order")]
    with RealtimeServer(realtime=False, seed=9) as srv:
        with pytest.raises(ConfigError, match="does not support tool calls"):
            TickSession(TickSettings(provider="notools-test", url=srv.url,
                                     session=rtedge.SessionConfig(tools=tools)))
        assert srv.connection_count == 0  # refused before connecting
        with rtedge.connect("notools-test", url=srv.url) as client:
            with pytest.raises(ConfigError, match="does not support tool calls"):
                TickSession(client, tools=[lookup_order])
            with TickSession(client) as ts, pytest.raises(ConfigError, match="does not support tool calls"):
                ts.send_tool_result("call_1", "{}")


# ------------------------------------------------------------------------------------------ modes and errors


def test_wall_clock_ticks_paced_at_real_time_conserve_audio():
    with RealtimeServer(realtime=True, delta_ms=20, seed=10, reply_text="Okay, done.") as srv, \
            TickSession(settings(srv, **PCMU), tick_ms=100, sync="wall", send_audio_instant=False) as ts:
        assert ts.sync == "wall"
        t0 = time.monotonic()
        results = [ts.run_tick(None) for _ in range(3)]
        assert time.monotonic() - t0 >= 0.29  # paced: three ticks take three tick lengths
        ts.client.send_text("Say something.")
        srv.wait_for_sent("response.done", timeout=5)
        total = len(sent_audio(srv))
        for _ in range(40):  # a tick per 100 ms until all of it was heard
            results.append(ts.run_tick(None))
            if sum(r.agent_samples for r in results) >= total:
                break
    assert total > 0 and heard(results) == sent_audio(srv)
    assert srv.wait_for_received("input_audio_buffer.append", nth=15)  # 20 ms chunks


def test_barrier_needs_a_server_that_answers_it():
    with RealtimeServer(realtime=False, seed=12, barriers=False) as srv, \
            pytest.raises(ConfigError, match="sync='wall'"):
        TickSession(settings(srv))


def test_bad_arguments():
    with RealtimeServer(realtime=False, seed=13) as srv, TickSession(settings(srv, **PCMU)) as ts:
        with pytest.raises(AudioError, match="max_carry_ms"):
            ts.run_tick(silence(60_001))  # more than the carry limit: refused whole, nothing queued
        assert ts.caller_carried == 0
        with pytest.raises(AudioError, match="mu-law"):
            ts.run_tick(np.zeros(N, dtype=np.int16))
        assert len(ts.run_tick(silence(50)).agent_audio) == N  # short: padded
        with pytest.raises(ConfigError, match="silence_byte"):
            TickSession(ts.client, silence_byte=0x00)
        with pytest.raises(ConfigError, match="silence_byte"):
            TickSession(ts.client, audio_format="pcm16k", silence_byte=0xFF)
        with pytest.raises(ConfigError, match="audio_format"):
            TickSession(ts.client, audio_format="alaw8k")
        with pytest.raises(ConfigError, match="chunk_ms"):
            TickSession(ts.client, tick_ms=200, chunk_ms=30)
    with pytest.raises(rtedge.ConnectionClosed):
        ts.run_tick(None)


def test_tick_settings_repr_shows_no_secret():
    """The key is never in the repr; neither are credentials in the URL or extra headers (a harness logs
    its settings)."""
    settings = TickSettings(url="wss://kiosk:pw-SEKRIT-1@example.com/v1/realtime?api-key=SEKRIT-2",
                            api_key="sk-SEKRIT-3", options={"headers": {"X-Token": "SEKRIT-4"}, "connect_timeout": 5})
    shown = repr(settings)
    assert "SEKRIT" not in shown
    assert "wss://***@example.com/v1/realtime?api-key=***" in shown and "'connect_timeout': 5" in shown

