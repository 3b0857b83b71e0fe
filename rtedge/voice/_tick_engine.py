"""The deterministic core of :mod:`rtedge.voice.tick`: server events in, one :class:`TickResult` per tick out.

Theory of operation
-------------------
This module does no I/O, starts no threads and reads no clock.  A
:class:`TickEngine` is told where a tick begins (:meth:`TickEngine.begin`),
is fed that tick's server events in arrival order (:meth:`TickEngine.feed`,
which returns the truncate/cancel actions a barge-in calls for), and
produces the tick's result (:meth:`TickEngine.end`).  Everything it returns
is a function of the events fed and of what it returned before, so the same
event sequence cut into the same ticks always gives the same results.

Time inside a tick is a sample cursor at the tick format's rate.  Agent
audio is a FIFO of segments (:class:`_Playout`); the tick's output is
filled from it as the cursor moves, and whatever does not fit is *carried*
to the next ticks.  Three things move the cursor or hold audio back:

* ``input_audio_buffer.speech_started`` (barge-in): audio plays up to the
  speech onset the server reports (``audio_start_ms + prefix_padding_ms`` on
  the input clock, mapped onto this tick and clamped to it; when a server
  clamped ``audio_start_ms`` to the start of its buffer, right after the
  previous turn, this is later than the real onset, at most by the prefix
  padding and never past the tick's end); then the queue
  is dropped, the item that was playing is truncated at what was played,
  and a cancel is asked for only when a response is active and the server
  will not cancel it itself (``interrupt_response``): the rules of
  :mod:`rtedge.protocol.interruption`, which :class:`rtedge.voice.agent.VoiceAgent`
  follows too.  Late deltas of the cut responses are dropped.
* ``input_audio_buffer.speech_stopped``: the first audio of an item that
  arrives afterwards does not start before ``audio_end_ms`` (the model
  cannot answer before the turn ended).
* the end of the tick: audio plays up to the tick length; silence pads.

Audio is converted once, on arrival, to the tick format: G.711 mu-law
passes through byte for byte when both sides are mu-law; otherwise it is
decoded and resampled per item with the group delay removed and the tail
flushed at the item's end, so an item of ``N`` wire samples becomes exactly
``N * tick_rate // wire_rate`` tick samples.

Transcripts: every transcript delta is anchored at the item's audio
received so far; the characters between two anchors are spread
proportionally over the audio between them.  A tick's text for an item is
the text up to its played position; once an item's audio and transcript
are both done and all of its audio has played, the rest is emitted, so the
text over all ticks is the full transcript.  An interrupted item stops at
its played position.

Owns: the deterministic tick core.  Must not: do I/O, start threads or read a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from ._tick_records import (
    VAD_KINDS,
    AudioSpan,
    CallerTick,
    ResponseUsage,
    ServerEventRecord,
    TickEvent,
    TickFormat,
    TickResult,
    ToolCall,
    event_record,
    response_usage,
    tick_format,
)
from ..audio import codec
from ..audio.convert import decode_pcm
from ..protocol import events as ev
from ..protocol.config import AudioFormat
from ..protocol import interruption
from ..protocol.interruption import Cancel, Truncate  # re-exported: the actions feed() returns

__all__ = ["AudioSpan", "Cancel", "TickEngine", "TickEvent", "TickFormat", "TickResult", "ToolCall", "Truncate",
           "tick_format"]



@attrs.define(eq=False)
class EngineStats:
    """Totals over the session, in tick-format samples."""

    received_samples: int = 0  #: agent audio converted and queued
    played_samples: int = 0  #: agent audio put into ticks
    dropped_samples: int = 0  #: queued audio dropped by interruptions
    late_samples: int = 0  #: audio of cut responses that arrived after the cut (never queued)
    interruptions: int = 0
    truncates: int = 0
    cancels: int = 0


# ------------------------------------------------------------------------------------------------ audio


class _Aligned:
    """A per-item streaming resampler without group delay: ``N`` inputs give exactly
    ``N * dst // src`` outputs once :meth:`finish` is called (never more before)."""

    __slots__ = ("_dst", "_n_in", "_n_out", "_pending", "_rs", "_skip", "_src")

    def __init__(self, src: int, dst: int) -> None:
        self._rs = codec.Resampler(src, dst)
        self._skip = round(self._rs.delay)
        self._pending = np.zeros(0, dtype=np.int16)
        self._n_in = self._n_out = 0
        self._src, self._dst = src, dst

    def _emit(self, y: np.ndarray, limit: int) -> np.ndarray:
        if self._skip:
            k = min(self._skip, len(y))
            y, self._skip = y[k:], self._skip - k
        if self._pending.size:
            y = np.concatenate([self._pending, y])
        allowed = max(0, limit - self._n_out)
        out, self._pending = y[:allowed], y[allowed:]
        self._n_out += len(out)
        return out

    def process(self, x: np.ndarray) -> np.ndarray:
        self._n_in += len(x)
        return self._emit(self._rs.process(np.ascontiguousarray(x)), self._n_in * self._dst // self._src)

    def finish(self) -> np.ndarray:
        target = self._n_in * self._dst // self._src
        out = self._emit(self._rs.flush(), target)
        short = target - self._n_out
        if short > 0:  # the filter tail ran out (cannot happen with the shipped designs): pad
            out = np.concatenate([out, np.zeros(short, dtype=np.int16)])
            self._n_out = target
        return out


class _Item:
    """One assistant content part: its audio and transcript bookkeeping (tick-format samples)."""

    __slots__ = (
        "anchors",
        "audio_done",
        "closed",
        "content_index",
        "emitted",
        "item_id",
        "played",
        "pushed",
        "resampler",
        "response_id",
        "text",
        "text_done",
    )

    def __init__(self, item_id: str, content_index: int, response_id: str) -> None:
        self.item_id, self.content_index, self.response_id = item_id, content_index, response_id
        self.pushed = self.played = self.emitted = 0
        self.audio_done = self.text_done = self.closed = False
        self.text = ""
        self.anchors: list[tuple[int, int]] = []  # (audio sample, first char), samples increasing
        self.resampler: _Aligned | None = None

    def add_text(self, piece: str) -> None:
        if not piece:
            return
        if not self.anchors or self.anchors[-1][0] < self.pushed:
            self.anchors.append((self.pushed, len(self.text)))
        self.text += piece

    def chars_at(self, played: int) -> int:
        """How much of the text the first ``played`` samples carry (piecewise proportional)."""
        anchors = self.anchors
        if not anchors or played < anchors[0][0] or (played == 0 and self.pushed > 0):
            return 0
        i = len(anchors) - 1
        while anchors[i][0] > played:
            i -= 1
        s0, c0 = anchors[i]
        s1, c1 = anchors[i + 1] if i + 1 < len(anchors) else (max(self.pushed, s0), len(self.text))
        if s1 <= s0:
            return c1 if played >= s1 and self.audio_done else c0
        return c0 + (c1 - c0) * min(played - s0, s1 - s0) // (s1 - s0)

    @property
    def finished(self) -> bool:
        return self.audio_done and self.text_done and self.played >= self.pushed


class _Playout:
    """The agent audio FIFO and the current tick's output buffer."""

    def __init__(self, fmt: TickFormat, n: int, silence: int) -> None:
        self.fmt, self.n, self.silence = fmt, n, silence
        self.queue: deque[tuple[_Item, np.ndarray, int]] = deque()  # item, samples, not_before (abs)
        self.head_offset = 0
        self.queued = 0
        self.current: _Item | None = None  # the item whose audio was played last
        self.start(0)

    def start(self, base: int) -> None:
        self.base, self.cursor = base, 0
        self.out = np.full(self.n, self.silence, dtype=self.fmt.dtype)
        self.spans: list[list[Any]] = []

    def push(self, item: _Item, samples: np.ndarray, not_before: int) -> None:
        if len(samples):
            self.queue.append((item, samples, not_before))
            self.queued += len(samples)

    def head_item(self) -> _Item | None:
        return self.queue[0][0] if self.queue else None

    def play_until(self, t: int) -> None:
        """Advance the cursor to ``t`` (tick samples), playing queued audio on the way."""
        while self.cursor < t and self.queue:
            item, data, not_before = self.queue[0]
            start = self.cursor if self.head_offset else max(self.cursor, not_before - self.base)
            if start >= t:
                break
            take = min(t - start, len(data) - self.head_offset)
            self.out[start:start + take] = data[self.head_offset:self.head_offset + take]
            self._span(item, start, take)
            item.played += take
            self.current = item
            self.cursor, self.head_offset = start + take, self.head_offset + take
            self.queued -= take
            if self.head_offset == len(data):
                self.queue.popleft()
                self.head_offset = 0
        self.cursor = max(self.cursor, t)

    def _span(self, item: _Item, start: int, take: int) -> None:
        last = self.spans[-1] if self.spans else None
        contiguous = last is not None and last[1] + last[2] == start and last[3] + last[2] == item.played
        if last is not None and last[0] is item and contiguous:
            last[2] += take
        else:
            self.spans.append([item, start, take, item.played])

    def flush(self) -> int:
        """Drop everything queued; returns the samples dropped."""
        dropped, self.queued, self.head_offset = self.queued, 0, 0
        self.queue.clear()
        return dropped


# ------------------------------------------------------------------------------------------------ engine


class TickEngine:
    """Server events -> tick results (see the module docstring).  Not thread-safe: one caller.

    Args:
        fmt: the tick format.
        tick_ms: the tick length in ms.
        wire_out: the session's output audio format (what deltas carry).
        input_base_ms: input audio (ms) appended before tick 0 (the server's input clock offset).
        session: the effective session config (turn detection is read from it).
        barge_in: act on ``speech_started`` (True), or only report it.
        formats: the dialect's ``session_formats`` (a session -> (input, output) formats), to follow an
            output format changed by ``session.updated``; None keeps ``wire_out``.
        silence: the padding sample of the agent audio (default: the format's, 0xFF for mu-law).
        keep_audio: keep the base64 audio in ``TickResult.server_events`` payloads.
    """

    def __init__(self, fmt: TickFormat, tick_ms: int, wire_out: AudioFormat, *, input_base_ms: float = 0.0,
                 session: Mapping[str, Any] | None = None, barge_in: bool = True,
                 formats: Callable[[Mapping[str, Any]], tuple[Any, Any]] | None = None,
                 silence: int | None = None, keep_audio: bool = False) -> None:
        self.fmt, self.tick_ms, self.wire_out, self.formats = fmt, tick_ms, wire_out, formats
        self.n = fmt.rate * tick_ms // 1000
        self.input_base_ms, self.barge_in, self.keep_audio = input_base_ms, barge_in, keep_audio
        self.turn_detection = interruption.turn_detection(session or {})
        self.stats = EngineStats()
        self.playout = _Playout(fmt, self.n, fmt.silence if silence is None else silence)
        self.seq = 0  # server events fed so far
        self.items: dict[tuple[str, int], _Item] = {}  # recent items, closed ones included (late deltas)
        self.open: dict[tuple[str, int], _Item] = {}  # items whose transcript is still being emitted
        self.active: str | None = None  # the response active at this point of the event sequence
        self.cut: deque[str] = deque(maxlen=64)  # responses whose audio is dropped
        self.call_names: dict[str, str] = {}
        self.calls_by_response: dict[str, list[ToolCall]] = {}
        self.done_status: dict[str, str] = {}
        self.gate = 0  # absolute tick sample before which a new item's audio may not start
        self.tick = -1
        self._reset_tick()

    def _reset_tick(self) -> None:
        self.events: list[TickEvent] = []
        self.records: list[ServerEventRecord] = []
        self.usage: list[ResponseUsage] = []
        self.tool_calls: list[ToolCall] = []
        self.user_text: list[str] = []
        self.text_out: list[str] = []
        self.interrupted = False
        self.dropped = 0

    # -------------------------------------------------------------------------------------------- ticks
    def begin(self, tick: int) -> None:
        """Start tick ``tick`` (ticks are consecutive)."""
        self.tick = tick
        self.playout.start(tick * self.n)
        self._reset_tick()

    def end(self, caller: CallerTick | None = None) -> TickResult:
        """Play to the end of the tick and return its result (``caller``: the caller audio sent)."""
        play, bps = self.playout, self.fmt.bytes_per_sample
        play.play_until(self.n)
        self._emit_text()
        text = "".join(self.text_out)
        spans = tuple(AudioSpan(i.item_id, i.content_index, s, n, off, s * bps, n * bps)
                      for i, s, n, off in play.spans)
        played = sum(s.length for s in spans)
        self.stats.played_samples += played
        return TickResult(
            tick=self.tick, start_ms=self.tick * self.tick_ms, format=self.fmt.name,
            agent_audio=play.out.tobytes() if self.fmt.kind == "ulaw" else play.out.astype("<i2").tobytes(),
            agent_transcript=text, user_transcript=" ".join(self.user_text), events=tuple(self.events),
            tool_calls=tuple(self.tool_calls), interrupted=self.interrupted, spans=spans,
            agent_samples=played, dropped_samples=self.dropped, carried_samples=play.queued,
            input_start_ms=self.input_base_ms + self.tick * self.tick_ms,
            input_samples=caller.samples if caller else 0, input_padded=caller.padded if caller else 0,
            input_carried=caller.carried if caller else 0,
            vad_events=tuple(e.kind for e in self.events if e.kind in VAD_KINDS),
            server_events=tuple(self.records), usage=tuple(self.usage), bytes_per_sample=bps)

    def _emit_text(self) -> None:
        """Append to this tick's text what every open item's played audio carries (in item order)."""
        for item in list(self.open.values()):
            if item.finished:
                target = len(item.text)
                self._close(item)
            else:
                target = item.chars_at(item.played)
            if target > item.emitted:
                self.text_out.append(item.text[item.emitted:target])
                item.emitted = target

    def _close(self, item: _Item) -> None:
        item.closed, item.resampler = True, None
        self.open.pop((item.item_id, item.content_index), None)

    # -------------------------------------------------------------------------------------------- events
    def feed(self, event: ev.ServerEvent, arrival_ms: float | None = None) -> list[Truncate | Cancel]:
        """Account for one server event; returns the actions a barge-in calls for.

        ``arrival_ms``: when it arrived, relative to the tick's start (wall mode), for its record."""
        self.records.append(event_record(event, self.seq, keep_audio=self.keep_audio, arrival_ms=arrival_ms))
        self.seq += 1
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return []
        result: list[Truncate | Cancel] | None = handler(self, event)
        return result or []

    def _now(self) -> int:
        """The current point of the tick (samples): the cursor, or the gate if later."""
        gate = min(self.n, max(0, self.gate - self.playout.base))
        return max(self.playout.cursor, gate)

    def _note(self, kind: str, item_id: str = "", response_id: str = "", detail: str = "",
              offset: int | None = None, input_ms: float | None = None) -> None:
        if offset is None:
            offset = self._now()
        ms = offset * 1000 // self.fmt.rate
        if input_ms is None:
            input_ms = self.input_base_ms + self.tick * self.tick_ms + 1000.0 * offset / self.fmt.rate
        self.events.append(TickEvent(kind, ms, item_id, response_id, detail, offset,
                                     offset * self.fmt.bytes_per_sample, input_ms))

    def _input_offset(self, audio_ms: float) -> int:
        """An input-clock time (ms) as a sample offset in this tick, clamped to the tick."""
        rel = audio_ms - self.input_base_ms - self.tick * self.tick_ms
        return min(self.n, max(0, round(rel * self.fmt.rate / 1000.0)))

    def _item(self, item_id: str, content_index: int, response_id: str) -> _Item:
        key = (item_id, content_index)
        item = self.items.get(key)
        if item is None:
            item = self.items[key] = _Item(item_id, content_index, response_id)
            if response_id in self.cut:
                item.closed = True
            else:
                self.open[key] = item
            if len(self.items) > 512:  # forget old settled items
                for old in [k for k, i in self.items.items() if i.closed][:256]:
                    del self.items[old]
        return item

    def _on_audio(self, e: ev.ResponseOutputAudioDelta) -> None:
        data = e.audio
        item = None if e.response_id in self.cut else self._item(e.item_id, e.content_index, e.response_id)
        if item is None or item.closed:
            self.stats.late_samples += len(data) // self.wire_out.bytes_per_sample
            return
        wire, fmt = self.wire_out, self.fmt
        if wire.kind == "pcmu" and fmt.kind == "ulaw":
            samples = np.frombuffer(data, dtype=np.uint8)
        else:
            pcm = decode_pcm(data, wire)
            if wire.rate != fmt.rate:
                if item.resampler is None:
                    item.resampler = _Aligned(wire.rate, fmt.rate)
                pcm = item.resampler.process(pcm)
            samples = codec.ulaw_encode(pcm) if fmt.kind == "ulaw" else pcm
        self._enqueue(item, samples)

    def _enqueue(self, item: _Item, samples: np.ndarray) -> None:
        not_before = self.gate if item.pushed == 0 else 0
        self.playout.push(item, samples, not_before)
        item.pushed += len(samples)
        self.stats.received_samples += len(samples)

    def _finish_audio(self, item: _Item) -> None:
        if item.audio_done:
            return
        item.audio_done = True
        if item.resampler is not None and not item.closed:
            self._enqueue(item, self._tick_samples(item.resampler.finish()))
        item.resampler = None

    def _tick_samples(self, pcm: np.ndarray) -> np.ndarray:
        return codec.ulaw_encode(pcm) if self.fmt.kind == "ulaw" else pcm

    def _on_audio_done(self, e: ev.ResponseOutputAudioDone) -> None:
        self._finish_audio(self._item(e.item_id, e.content_index, e.response_id))

    def _on_transcript(self, e: ev.ResponseOutputAudioTranscriptDelta) -> None:
        self._item(e.item_id, e.content_index, e.response_id).add_text(e.delta)

    def _on_transcript_done(self, e: ev.ResponseOutputAudioTranscriptDone) -> None:
        item = self._item(e.item_id, e.content_index, e.response_id)
        if e.transcript.startswith(item.text):
            item.add_text(e.transcript[len(item.text):])
        elif e.transcript:  # a rewritten transcript: spread it over the whole item
            item.text, item.anchors = e.transcript, [(0, 0)]
            item.emitted = min(item.emitted, len(item.text))
        item.text_done = True

    def _on_text(self, e: ev.ResponseOutputTextDelta) -> None:
        """Text-only output (no audio): heard at once."""
        item = self._item(e.item_id, e.content_index, e.response_id)
        item.add_text(e.delta)
        item.audio_done = True

    def _on_response_created(self, e: ev.ResponseCreated) -> None:
        self.active = e.response_id
        self._note("response_created", response_id=e.response_id)

    def _on_response_done(self, e: ev.ResponseDone) -> None:
        rid = e.response_id
        if self.active == rid:
            self.active = None
        for item in list(self.open.values()):
            if item.response_id == rid:
                self._finish_audio(item)
                item.text_done = True
        self.done_status[rid] = e.status
        self.usage.append(response_usage(e))
        self._note("response_done", response_id=rid, detail=e.status)

    def _on_output_item(self, e: ev.ResponseOutputItemAdded | ev.ResponseOutputItemDone) -> None:
        if e.item.get("type") == "function_call" and isinstance(e.item.get("call_id"), str):
            self.call_names[e.item["call_id"]] = str(e.item.get("name") or "")
        if isinstance(e, ev.ResponseOutputItemDone):
            for (item_id, _), item in list(self.open.items()):
                if item_id == e.item_id:
                    self._finish_audio(item)

    def _on_call(self, e: ev.ResponseFunctionCallArgumentsDone) -> None:
        call = ToolCall(e.call_id, e.name or self.call_names.get(e.call_id, ""), e.arguments, e.item_id,
                        e.response_id)
        self.tool_calls.append(call)
        self.calls_by_response.setdefault(e.response_id, []).append(call)
        self._note("tool_call", e.item_id, e.response_id, call.name)

    def _on_session(self, e: ev.SessionUpdated) -> None:
        td = interruption.turn_detection(e.session)
        if td is not None or "audio" in e.session or "turn_detection" in e.session:
            self.turn_detection = td
        out = self.formats(e.session)[1] if self.formats is not None else None
        if out is not None and out != self.wire_out:
            for item in list(self.open.values()):  # flush the old rate's resampler tails first
                if item.resampler is not None:
                    self._enqueue(item, self._tick_samples(item.resampler.finish()))
                    item.resampler = None
            self.wire_out = out

    def _on_user_transcript(self, e: ev.InputAudioTranscriptionCompleted) -> None:
        self.user_text.append(e.transcript)
        self._note("user_transcript", e.item_id, detail=e.transcript)

    def _on_error(self, e: ev.Error) -> None:
        self._note("error", detail=f"{e.error.code or e.error.type or 'error'}: {e.error.message}")

    def _on_lost(self, e: ev.ConnectionLost) -> None:
        self._note("connection_lost", detail=str(e.reason or ""))

    def _on_speech_stopped(self, e: ev.InputAudioBufferSpeechStopped) -> None:
        offset = self._input_offset(e.audio_end_ms)
        self.gate = max(self.gate, self.playout.base + offset)
        self._note("speech_stopped", e.item_id, offset=offset, input_ms=e.audio_end_ms)

    # -------------------------------------------------------------------------------------------- barge-in
    def _on_speech_started(self, e: ev.InputAudioBufferSpeechStarted) -> list[Truncate | Cancel]:
        td = self.turn_detection or {}
        prefix = td.get("prefix_padding_ms", 300 if td.get("type", "server_vad") == "server_vad" else 0)
        offset = self._input_offset(e.audio_start_ms + (prefix if isinstance(prefix, int | float) else 0))
        self._note("speech_started", e.item_id, offset=offset, input_ms=e.audio_start_ms)
        if not self.barge_in:
            return []
        self.playout.play_until(offset)
        return self._interrupt()

    def _playing_item(self) -> _Item | None:
        """The item that was playing (or about to play): :func:`rtedge.protocol.interruption.cut_item`."""
        current = self.playout.current
        streaming = (current is not None and not current.audio_done and current.response_id == self.active
                     and not current.closed)
        return interruption.cut_item(current, self.playout.head_item(), sounding=streaming)

    def _interrupt(self) -> list[Truncate | Cancel]:
        item = self._playing_item()
        self._emit_text()  # what was heard up to the cut; the cut items say no more
        dropped = self.playout.flush()
        for rid in (self.active, item.response_id if item else None):
            if rid is not None and rid not in self.cut:
                self.cut.append(rid)
        for other in list(self.open.values()):
            if other.pushed > other.played or other.response_id in self.cut:
                self._close(other)
        heard = None if item is None else interruption.Heard(
            item.item_id, item.content_index, interruption.heard_ms(item.played, self.fmt.rate),
            interruption.heard_ms(item.pushed, self.fmt.rate))
        plan = interruption.decide(heard, response_active=self.active is not None, source="server",
                                   server_cancels=interruption.cancels_on_speech(self.turn_detection))
        actions = plan.actions
        if item is not None or actions:
            self.interrupted = True
            self.dropped += dropped
            self.stats.dropped_samples += dropped
            self.stats.interruptions += 1
            self.stats.truncates += int(plan.truncate is not None)
            self.stats.cancels += int(plan.cancel)
            self._note("interrupted", item.item_id if item else "", item.response_id if item else "",
                       detail=f"{0.0 if heard is None else heard.heard_ms:.0f}")
        return actions

    # -------------------------------------------------------------------------------------------- tools
    def take_finished_calls(self) -> list[tuple[str, str, list[ToolCall]]]:
        """``(response_id, status, calls)`` for every done response with calls, oldest first (once)."""
        out = []
        for rid in [r for r in self.calls_by_response if r in self.done_status]:
            out.append((rid, self.done_status[rid], self.calls_by_response.pop(rid)))
        for rid in [r for r in self.done_status if r not in self.calls_by_response]:
            del self.done_status[rid]
        return out


_HANDLERS: dict[type[ev.ServerEvent], Any] = {
    ev.ResponseOutputAudioDelta: TickEngine._on_audio,
    ev.ResponseOutputAudioDone: TickEngine._on_audio_done,
    ev.ResponseOutputAudioTranscriptDelta: TickEngine._on_transcript,
    ev.ResponseOutputAudioTranscriptDone: TickEngine._on_transcript_done,
    ev.ResponseOutputTextDelta: TickEngine._on_text,
    ev.ResponseCreated: TickEngine._on_response_created,
    ev.ResponseDone: TickEngine._on_response_done,
    ev.ResponseOutputItemAdded: TickEngine._on_output_item,
    ev.ResponseOutputItemDone: TickEngine._on_output_item,
    ev.ResponseFunctionCallArgumentsDone: TickEngine._on_call,
    ev.SessionUpdated: TickEngine._on_session,
    ev.InputAudioTranscriptionCompleted: TickEngine._on_user_transcript,
    ev.Error: TickEngine._on_error,
    ev.ConnectionLost: TickEngine._on_lost,
    ev.InputAudioBufferSpeechStarted: TickEngine._on_speech_started,
    ev.InputAudioBufferSpeechStopped: TickEngine._on_speech_stopped,
}
