"""TickSession as a benchmark harness reads it: carried caller audio, raw events, usage, units, closing."""

from __future__ import annotations

import base64
import json
import logging

import numpy as np
import pytest

import rtedge
from rtedge.errors import ConnectionClosed
from rtedge.testing import RealtimeServer
from rtedge.voice.tick import TickResult, TickSession, ToolCall
from tests.conftest import wait_until
from tests.voice.test_tick import PCMU, REPLY, heard, run, sent_audio, settings, silence, ulaw_speech

pytestmark = pytest.mark.usefixtures("no_thread_leak")

N = 1600


def wire_input(srv: RealtimeServer) -> bytes:
    appends = [e for e in srv.received if e["type"] == "input_audio_buffer.append"]
    return b"".join(base64.b64decode(e["audio"]) for e in appends)


def tick_events(srv: RealtimeServer) -> list[dict]:
    """What the server sent after the tick session's first barrier, barrier answers left out."""
    sent = srv.sent
    first = next(i for i, e in enumerate(sent) if e["type"] == "rtedge.barrier.done")
    return [e for e in sent[first + 1:] if e["type"] != "rtedge.barrier.done"]


# ------------------------------------------------------------------------------------------ caller audio


def test_caller_audio_of_any_length_is_carried_and_sent_byte_for_byte():
    rng = np.random.default_rng(18)
    stream = np.concatenate([np.full(2400, 0x7F, np.uint8), ulaw_speech("Hello, I need help with my order."),
                             np.full(40000, 0x7F, np.uint8)])
    with RealtimeServer(realtime=False, seed=21, reply_text=REPLY) as srv, \
            TickSession(settings(srv, **PCMU), silence_byte=0x7F) as ts:
        results: list[TickResult] = []
        given: list[int] = []
        pos = 0
        while pos < len(stream):
            size = int(rng.integers(0, 3 * N + 1)) if rng.random() < 0.5 else 0  # 0 to 3 ticks, often none
            chunk = stream[pos:pos + size]
            pos += len(chunk)
            given.append(len(chunk))
            results.append(ts.run_tick(chunk.tobytes() if len(results) % 2 else chunk))
        while ts.caller_carried or "response_done" not in [k for r in results for k in r.kinds()] \
                or results[-1].carried_samples:
            given.append(0)
            results.append(ts.run_tick(None))
            assert len(results) < 400
    wire = wire_input(srv)
    assert len(wire) == N * len(results)  # every tick sent exactly one tick
    sent = 0
    for r, total_given in zip(results, np.cumsum(given), strict=True):
        assert r.input_samples + r.input_padded == N and r.input_start_ms == 200 * r.tick
        assert r.input_padded == 0 or r.input_carried == 0  # padding only when nothing is carried
        sent += r.input_samples
        assert r.input_carried == total_given - sent  # exact accounting of the carried audio
        start = r.tick * N
        assert wire[start + r.input_samples:start + N] == b"\x7f" * r.input_padded  # the chosen padding
    caller_part = b"".join(wire[r.tick * N:r.tick * N + r.input_samples] for r in results)
    assert caller_part == stream.tobytes()  # the caller's bytes in order, its 0x7F silence kept
    assert max(r.input_carried for r in results) > N  # carried over more than a tick at times
    assert any(r.input_padded for r in results[:len(given) // 2])  # and short at others
    assert ts.stats.received_samples > 0
    # the agent side: padded with the same byte, its audio conserved byte for byte
    assert heard(results) == sent_audio(srv) and len(sent_audio(srv)) > N
    for r in results:
        mask = np.ones(N, bool)
        for s in r.spans:
            mask[s.offset:s.offset + s.length] = False
        assert set(np.frombuffer(r.agent_audio, np.uint8)[mask].tolist()) <= {0x7F}


# ------------------------------------------------------------------------------------ what a tick reports


@pytest.mark.parametrize("fmt", ["ulaw8k", "pcm16k"])
def test_tick_reports_raw_events_usage_vad_and_positions(fmt):
    session = PCMU if fmt == "ulaw8k" else {}
    with RealtimeServer(realtime=False, seed=22, reply_text=REPLY) as srv, \
            TickSession(settings(srv, **session), audio_format=fmt) as ts:
        n, bps = ts.samples_per_tick, ts.format.bytes_per_sample
        speech = ulaw_speech("Hello, I need help with my order.")
        audio = speech if fmt == "ulaw8k" else rtedge.audio.codec.Resampler(8000, 16000).process(
            rtedge.audio.codec.ulaw_decode(speech))
        results = [ts.run_tick(audio)] + [ts.run_tick(None) for _ in range(40)]
        client_usage = ts.client.usage
    assert ts.bytes_per_tick == n * bps and all(len(r.agent_audio) == ts.bytes_per_tick for r in results)
    records = [e for r in results for e in r.server_events]
    assert [e.seq for e in records] == list(range(len(records)))  # one sequence across the ticks
    assert [e.type for e in records] == [e["type"] for e in tick_events(srv)]  # every event, in order
    assert all(e.arrival_ms is None for e in records)  # barrier mode: positions, not times
    deltas = [e for e in records if e.type == "response.output_audio.delta"]
    assert deltas and all(e.payload["delta"] == "" and e.audio_bytes > 0 for e in deltas)  # audio elided
    assert sum(e.audio_bytes for e in deltas) == len(sent_audio(srv))
    done = [e for e in records if e.type == "response.done"]
    wire_done = tick_events(srv)[records.index(done[0])]
    assert done[0].payload["response"]["usage"] == wire_done["response"]["usage"]
    # usage: per tick, of the responses completed in it; the ticks add up to the client's totals
    usage = [u for r in results for u in r.usage]
    assert [u.response_id for u in usage] == [e.payload["response"]["id"] for e in done]
    assert usage[0].usage.output_tokens > 0 and not usage[0].synthetic and usage[0].status == "completed"
    total = results[0].usage_total
    for r in results[1:]:
        total = total + r.usage_total
    assert total == client_usage and total.responses == len(done) == 1
    # units: 1-based tick numbers, absolute input ms, bytes next to samples
    assert [r.tick_number for r in results] == list(range(1, len(results) + 1))
    assert all(r.input_start_ms == 200 * r.tick and r.input_end_ms == 200 * (r.tick + 1) for r in results)
    assert all(r.agent_bytes == r.agent_samples * bps and r.carried_bytes == r.carried_samples * bps
               for r in results)
    spans = [s for r in results for s in r.spans]
    assert spans and all(s.byte_offset == s.offset * bps and s.byte_length == s.length * bps for s in spans)
    vad = [(r.tick, k) for r in results for k in r.vad_events]
    assert [k for _, k in vad] == ["speech_started", "speech_stopped"]
    started = next(e for r in results for e in r.events if e.kind == "speech_started")
    server_start = next(e for e in srv.sent if e["type"] == "input_audio_buffer.speech_started")
    assert started.input_ms == server_start["audio_start_ms"]  # the server's own input clock
    assert started.offset_bytes == started.offset * bps
    assert started.offset_ms == started.offset * 1000 // ts.format.rate


def test_raw_events_keep_audio_when_asked():
    with RealtimeServer(realtime=False, seed=22, reply_text="Okay.") as srv, \
            TickSession(settings(srv, **PCMU), keep_audio=True) as ts:
        ts.run_tick(None)
        ts.create_response()
        result = ts.run_tick(None)
    deltas = [e for e in result.server_events if e.type == "response.output_audio.delta"]
    assert deltas and b"".join(base64.b64decode(e.payload["delta"]) for e in deltas) == sent_audio(srv)


def test_wall_mode_events_carry_arrival_times_and_ticks_stay_exact():
    with RealtimeServer(realtime=True, delta_ms=20, seed=24, reply_text="Okay, done.") as srv, \
            TickSession(settings(srv, **PCMU), tick_ms=100, sync="wall", pace=True) as ts:
        assert ts.pace
        ts.client.send_text("Say something.")
        results = [ts.run_tick(None) for _ in range(3)]
        srv.wait_for_sent("response.done", timeout=5)
        while sum(r.agent_samples for r in results) < len(sent_audio(srv)):
            results.append(ts.run_tick(None))
            assert len(results) < 60
    assert all(len(r.agent_audio) == 800 and r.input_samples + r.input_padded == 800 for r in results)
    assert heard(results) == sent_audio(srv)
    records = [e for r in results for e in r.server_events]
    assert records and all(e.arrival_ms is not None for e in records)
    assert sum(r.usage_total.responses for r in results) == 1


def test_unpaced_wall_ticks_return_what_arrived_and_stay_exact():
    with RealtimeServer(realtime=True, delta_ms=20, seed=25, reply_text="Okay.") as srv, \
            TickSession(settings(srv, **PCMU), tick_ms=100, sync="wall", pace=False) as ts:
        ts.client.send_text("Say something.")
        srv.wait_for_sent("response.done", timeout=5)
        assert wait_until(lambda: ts.client.state.response.value == "idle")
        results = [ts.run_tick(None) for _ in range(200)]
    assert all(len(r.agent_audio) == 800 for r in results) and heard(results) == sent_audio(srv)


# ------------------------------------------------------------------------------------------ tools


def test_tool_calls_carry_parsed_arguments_and_errors_are_flagged():
    tools = [rtedge.FunctionTool(name="lookup_order")]
    args = '{"order_id": "W42", "rush": true}'
    with RealtimeServer(realtime=False, seed=26, reply_text=REPLY, tool_arguments=args) as srv, \
            TickSession(settings(srv, **PCMU, tools=tools), tick_ms=200) as ts:
        results = run(ts, ulaw_speech("Where is my order?"), silence(1000))
        call = next(c for r in results for c in r.tool_calls)
        assert call.arguments == args and call.parsed_arguments == {"order_id": "W42", "rush": True}
        assert call.arguments_error == ""
        ts.send_tool_result(call.call_id, "order W42 not found", is_error=True)
        results += run(ts, silence(3000))
    output = next(e for e in srv.received if e["type"] == "conversation.item.create")["item"]
    assert output["call_id"] == call.call_id
    assert json.loads(output["output"]) == {"error": "order W42 not found"}
    assert "".join(r.agent_transcript for r in results) == REPLY


@pytest.mark.parametrize(("raw", "parsed", "error"), [
    ("", {}, ""),
    ('{"a": 1}', {"a": 1}, ""),
    ("[1, 2]", {}, "JSON object, got list"),
    ('{"a": ', {}, "invalid JSON"),
])
def test_tool_call_arguments_parse_without_raising(raw, parsed, error):
    call = ToolCall("call_1", "f", raw)
    assert call.arguments == raw and call.parsed_arguments == parsed
    assert (error in call.arguments_error) and bool(call.arguments_error) == bool(error)


# ------------------------------------------------------------------------------------------ connection state


def test_a_server_close_at_the_end_is_the_end_not_an_error(caplog):
    with RealtimeServer(realtime=False, seed=27) as srv, TickSession(settings(srv, **PCMU)) as ts:
        assert ts.connected and not ts.closed and ts.close_reason is None
        ts.run_tick(None)
        with caplog.at_level(logging.INFO, logger="rtedge"):
            srv.close_connections(1001, "going away")
            assert wait_until(lambda: ts.closed)
            assert wait_until(lambda: any("ended the session" in r.getMessage() for r in caplog.records))
        assert not ts.connected and ts.close_reason == "the server closed the connection (1001 going away)"
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records
        with pytest.raises(ConnectionClosed, match="1001 going away"):
            ts.run_tick(None)
    assert ts.close_reason == "the server closed the connection (1001 going away)"  # the first reason stays
    with RealtimeServer(realtime=False, seed=27) as srv, TickSession(settings(srv, **PCMU)) as ts:
        ts.run_tick(None)
    assert ts.closed and not ts.connected and ts.close_reason == "closed by the caller"


def test_an_abnormal_close_is_still_an_error(caplog):
    with RealtimeServer(realtime=False, seed=28) as srv, TickSession(settings(srv, **PCMU)) as ts:
        with caplog.at_level(logging.INFO, logger="rtedge"):
            srv.close_connections(1011, "internal error")
            assert wait_until(lambda: ts.closed)
            assert wait_until(lambda: any(r.levelno == logging.ERROR for r in caplog.records))
        assert "1011" in (ts.close_reason or "")


def test_a_client_closed_under_the_tick_session_ends_it():
    with RealtimeServer(realtime=False, seed=29) as srv, rtedge.connect(url=srv.url) as client:
        ts = TickSession(client, audio_format="pcm24k")
        ts.run_tick(None)
        client.close()
        assert wait_until(lambda: ts.closed)
        assert not ts.connected and ts.close_reason == "the client was closed"
        with pytest.raises(ConnectionClosed, match="the client was closed"):
            ts.run_tick(None)
        ts.close()


def test_a_reconnecting_client_is_disconnected_then_connected_again():
    from rtedge.transport.backoff import Backoff

    with RealtimeServer(realtime=False, seed=30) as srv, \
            rtedge.connect(url=srv.url, reconnect=Backoff(initial=0.05)) as client:
        ts = TickSession(client, audio_format="pcm24k", sync="wall", pace=False)
        ts.run_tick(None)
        srv.drop_connections()
        assert wait_until(lambda: client.stats.reconnects == 1 and ts.connected)
        assert not ts.closed and ts.close_reason is None
        result = ts.run_tick(None)
        ts.close()
    types = [e.type for e in result.server_events]
    assert types.index("rtedge.connection_lost") < types.index("rtedge.reconnected")  # what the tick saw
    assert "connection_lost" in result.kinds() and len(result.agent_audio) == 2 * 4800


def test_paced_barrier_ticks_give_the_same_results():
    """pace=True holds barrier ticks to wall-clock time without changing what they hold."""
    def ticks(pace: bool) -> list[TickResult]:
        with RealtimeServer(realtime=False, seed=33, reply_text="Okay.") as srv, \
                TickSession(settings(srv, **PCMU), tick_ms=100, pace=pace) as ts:
            assert ts.sync == "barrier" and ts.pace is pace
            ts.create_response()
            return [ts.run_tick(ulaw_speech("Hi.")[:400]) for _ in range(6)]

    paced = ticks(True)
    assert paced == ticks(False) and sum(r.agent_samples for r in paced) > 0
