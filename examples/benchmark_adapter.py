"""A tick-based benchmark harness's adapter over rtedge.TickSession, using only rtedge's public API.

    python examples/benchmark_adapter.py                  # a scripted call against the local server
    python examples/benchmark_adapter.py --realtime       # the server streams at real time (wall mode)

Full-duplex voice benchmarks drive the agent in discrete ticks: every tick they hand over the
caller's audio (8 kHz mu-law bytes) and record what came back, in their own units: 1-based tick
numbers, bytes, milliseconds of caller audio since the call started.  :class:`TickAdapter` is the
whole adapter such a harness needs: ``connect``, ``run_tick``, ``send_tool_result``, ``disconnect``,
``is_connected`` and the usage ledger.  Copy it and rename the fields to your harness's.

What the adapter relies on (all of it is ``TickSession``'s contract, see ``rtedge/voice/tick.py``):

* every tick is exactly ``bytes_per_tick`` bytes both ways; the caller's audio may come in any
  length (the rest is carried to the next ticks, a short tick is padded with ``silence_byte``)
  and reaches the server byte for byte;
* agent audio that does not fit a tick is carried, never lost: over the call the agent audio
  equals what the server sent, unless a barge-in cut it; then the item is truncated at the audio
  the caller heard;
* usage comes per tick, for the responses completed in it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import numpy as np

import rtedge
from rtedge import TickResult, TickSession, TickSettings
from rtedge.audio import codec
from rtedge.audio.wavio import read_wav
from rtedge.testing import RealtimeServer

ULAW_SILENCE = 0x7F  # the silence byte this harness pads with (0xFF is the other mu-law zero)


@dataclass
class HarnessToolCall:
    call_id: str
    name: str
    arguments: dict[str, Any]  # parsed; the raw JSON string is in raw_arguments
    raw_arguments: str


@dataclass
class HarnessTick:
    """One tick in the harness's units."""

    tick_number: int  # 1-based
    user_audio_sent_bytes: int  # the caller's bytes sent this tick (the rest of the tick was padding)
    user_audio_carried_bytes: int  # caller bytes given but not sent yet
    user_audio_at_tick_start_ms: float  # caller audio sent before this tick, on the server's clock
    played_agent_audio: bytes  # exactly bytes_per_tick: what the caller hears this tick
    agent_audio_bytes: int  # how much of it is the agent (the rest is padding)
    transcript: str  # the agent's words heard this tick
    vad_events: list[str]  # "speech_started", "speech_stopped", "interrupted"
    was_truncated: bool
    truncated_audio_bytes: int  # agent audio dropped by the barge-in
    interruption_audio_start_ms: float | None  # where the caller's speech started (input clock)
    tool_calls: list[HarnessToolCall]
    events: list[dict[str, Any]]  # every server event: type, seq, arrival_ms (wall mode), payload
    usage_records: list[dict[str, Any]]  # one per response completed this tick

    @property
    def has_provider_activity(self) -> bool:
        return bool(self.events)


@dataclass
class TickAdapter:
    """The discrete-time adapter: one :class:`TickSession` per call."""

    tick_ms: int = 200
    provider: str = "openai"
    url: str | None = None
    model: str | None = None
    api_key: str | None = None
    sync: str = "auto"  # "barrier" for rtedge's local server, "wall" for real providers
    pace: bool | None = None  # hold ticks to wall-clock time (default: in wall mode)
    usage: list[dict[str, Any]] = field(default_factory=list)  # the ledger, kept after disconnect
    _session: TickSession | None = None

    @property
    def bytes_per_tick(self) -> int:
        return 8 * self.tick_ms  # 8 kHz mu-law: one byte per sample

    def connect(self, system_prompt: str, tools: Sequence[rtedge.FunctionTool] = (),
                vad: rtedge.ServerVad | None = None, modality: str = "audio") -> None:
        """Open the call.  ``modality``: ``"audio"`` (spoken answers) or ``"text"``."""
        if modality not in ("audio", "text"):
            raise ValueError(f"modality must be 'audio' or 'text', got {modality!r}")
        mods: tuple[str, ...] = (modality,)
        formats = {"input_format": rtedge.AudioFormat.pcmu(), "output_format": rtedge.AudioFormat.pcmu()}
        if self.provider == "qwen":  # DashScope speaks with its transcript, and takes PCM only (converted)
            mods, formats = (("text", "audio") if modality == "audio" else ("text",)), {}
        config = rtedge.SessionConfig(
            instructions=system_prompt, output_modalities=mods, tools=tuple(tools), **formats,
            turn_detection=vad or rtedge.ServerVad(silence_duration_ms=500))
        settings = TickSettings(provider=self.provider, url=self.url, model=self.model, api_key=self.api_key,
                                session=config)
        self._session = TickSession(settings, tick_ms=self.tick_ms, audio_format="ulaw8k", sync=self.sync,
                                    pace=self.pace, silence_byte=ULAW_SILENCE)

    @property
    def is_connected(self) -> bool:
        return self._session is not None and self._session.connected

    @property
    def close_reason(self) -> str | None:
        return None if self._session is None else self._session.close_reason

    def run_tick(self, user_audio: bytes) -> HarnessTick:
        """One tick: the caller's mu-law bytes (any length) in, the tick in the harness's units out."""
        if self._session is None:
            raise RuntimeError("connect() first")
        return self._convert(self._session.run_tick(user_audio))

    def send_tool_result(self, call_id: str, result: str, request_response: bool = True,
                         is_error: bool = False) -> None:
        if self._session is None:
            raise RuntimeError("connect() first")
        self._session.send_tool_result(call_id, result, respond=request_response, is_error=is_error)

    def disconnect(self) -> None:
        if self._session is not None:
            self._session.close()

    def _convert(self, r: TickResult) -> HarnessTick:
        records = [{"response_id": u.response_id, "status": u.status, "tick_number": r.tick_number,
                    "input_tokens": u.usage.input_tokens, "output_tokens": u.usage.output_tokens,
                    "input_audio_tokens": u.usage.input_audio_tokens,
                    "output_audio_tokens": u.usage.output_audio_tokens,
                    "cached_tokens": u.usage.cached_tokens,
                    "billable": not u.synthetic, "raw": u.raw} for u in r.usage]
        self.usage.extend(records)
        started = next((e for e in r.events if e.kind == "speech_started"), None)
        return HarnessTick(
            tick_number=r.tick_number, user_audio_sent_bytes=r.input_bytes,
            user_audio_carried_bytes=r.input_carried * r.bytes_per_sample,
            user_audio_at_tick_start_ms=r.input_start_ms, played_agent_audio=r.agent_audio,
            agent_audio_bytes=r.agent_bytes, transcript=r.agent_transcript, vad_events=list(r.vad_events),
            was_truncated=r.interrupted, truncated_audio_bytes=r.dropped_bytes,
            interruption_audio_start_ms=started.input_ms if started and r.interrupted else None,
            tool_calls=[HarnessToolCall(c.call_id, c.name, dict(c.parsed_arguments), c.arguments)
                        for c in r.tool_calls],
            events=[{"type": e.type, "seq": e.seq, "arrival_ms": e.arrival_ms, "payload": e.payload}
                    for e in r.server_events],
            usage_records=records)


# ------------------------------------------------------------------------------------------ demo


def caller_phrase() -> bytes:
    """The bundled recording as 8 kHz mu-law bytes."""
    pcm, rate = read_wav(files("rtedge") / "data" / "demo_phrase.wav")
    return codec.ulaw_encode(codec.Resampler(rate, 8000).process(pcm)).tobytes()


def summary(t: HarnessTick) -> str:
    parts = [f"tick {t.tick_number:3d}", f"sent {t.user_audio_sent_bytes:4d} B"]
    if t.user_audio_carried_bytes:
        parts.append(f"carried {t.user_audio_carried_bytes} B")
    if t.agent_audio_bytes:
        parts.append(f"agent {t.agent_audio_bytes:4d} B")
    parts += [f"{k}" for k in t.vad_events]
    parts += [f"tool {c.name}({json.dumps(c.arguments)})" for c in t.tool_calls]
    if t.was_truncated:
        parts.append(f"cut: {t.truncated_audio_bytes} B dropped")
    if t.transcript:
        parts.append(repr(t.transcript))
    parts += [f"usage {u['output_tokens']} out" for u in t.usage_records]
    return "  ".join(parts)


def main(args: argparse.Namespace) -> None:
    order_tool = rtedge.FunctionTool(name="get_order_status", description="Look an order up.", parameters={
        "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]})
    server = RealtimeServer(realtime=args.realtime, seed=3, reply_text="Your order ships tomorrow.",
                            tool_arguments='{"order_id": "W42"}')
    with server:
        adapter = TickAdapter(tick_ms=200, url=server.url, sync="wall" if args.realtime else "barrier")
        adapter.connect("You are a customer service agent.", tools=[order_tool])
        phrase = caller_phrase()
        ticks = [adapter.run_tick(phrase[:2000]), adapter.run_tick(phrase[2000:])]  # any lengths
        for _ in range(args.ticks):
            ticks.append(adapter.run_tick(b""))
            call = next(iter(ticks[-1].tool_calls), None)
            if call is not None:
                adapter.send_tool_result(call.call_id, json.dumps({"status": "shipped"}))
        adapter.disconnect()
    for t in ticks:
        if t.has_provider_activity or t.user_audio_sent_bytes or t.agent_audio_bytes:
            print(summary(t))
    total = sum(u["output_tokens"] for u in adapter.usage)
    print(f"{len(ticks)} ticks, {len(adapter.usage)} responses, {total} output tokens; "
          f"closed: {adapter.close_reason}")
    assert all(len(t.played_agent_audio) == adapter.bytes_per_tick for t in ticks)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realtime", action="store_true", help="the server streams at real time (wall mode)")
    parser.add_argument("--ticks", type=int, default=40, help="ticks after the caller's phrase (default 40)")
    try:
        main(parser.parse_args())
    except rtedge.RtEdgeError as exc:  # one line, as the rtedge command says it
        raise SystemExit(f"error: {exc}") from None
