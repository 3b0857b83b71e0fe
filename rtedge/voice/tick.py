"""Discrete-time adapter: drive a realtime session one fixed tick at a time, with telephony audio.

Simulation harnesses (full-duplex voice benchmarks) and telephony gateways do
not have a microphone and a speaker: every ``tick_ms`` they hand over the
caller's audio for the tick and want back what the agent said during it::

    from rtedge.voice.tick import TickSession, TickSettings

    settings = TickSettings(url=server.url, session=SessionConfig(
        input_format=AudioFormat.pcmu(), output_format=AudioFormat.pcmu()))
    with TickSession(settings, tick_ms=200, audio_format="ulaw8k") as ticks:
        for chunk in caller_audio_chunks:          # any lengths: the rest is carried
            result = ticks.run_tick(chunk)
            play(result.agent_audio); log(result.agent_transcript, result.events)

``examples/benchmark_adapter.py`` is a complete adapter for a tick-based
benchmark harness on top of this.

Guarantees
----------
* **Exact length.** ``run_tick`` returns exactly ``tick_ms`` of agent audio in
  the tick format (``"ulaw8k"``: G.711 mu-law bytes; ``"pcm16k"``/``"pcm24k"``:
  PCM16 little-endian), silence-padded, and sends exactly ``tick_ms`` of caller
  audio.
* **Caller audio of any length.** ``run_tick`` takes whatever the caller has:
  it joins the audio carried from earlier calls, one tick of it is sent, the
  rest waits for the next ticks (``TickResult.input_carried``; more than
  ``max_carry_ms`` raises ``AudioError``, nothing is dropped); a tick short of
  audio is padded with ``silence_byte`` (``input_padded``).  Over any run the
  caller's samples reach the server in order, exactly once, and mu-law on a
  mu-law session passes byte for byte (its ``0x7F`` silence is not rewritten).
* **Conservation.** Agent audio that does not fit in a tick is carried to the
  next ones, never lost or duplicated: over the ticks, the agent audio equals
  the audio the server sent, sample for sample (byte for byte when both the
  wire and the tick are mu-law; ``N * tick_rate // wire_rate`` samples per
  item otherwise), unless a barge-in drops it.  The transcript is spread over
  the ticks in proportion to the audio played, and the text over all ticks is
  the full transcript.
* **Barge-in.** On the server's ``speech_started`` the carried audio is
  dropped from the speech onset on, the item that was playing is truncated at
  the audio played so far (clamped, never at 0 ms), and ``response.cancel`` is
  sent only when a response is active and the server will not cancel it itself:
  the rules of :class:`rtedge.voice.agent.VoiceAgent`.  ``TickResult.interrupted``
  says it happened.
* **Determinism** (``sync="barrier"``).  After sending the tick's audio,
  ``run_tick`` sends ``rtedge.barrier`` and waits for its answer, which the
  local server (:class:`rtedge.testing.RealtimeServer`) gives once it has
  processed everything sent before it and no response is streaming.  The
  tick's events are exactly those before that answer, so tick boundaries are
  positions in the server's event sequence, never wall-clock arrival times.
  The results are a pure function of that sequence: the same sequence gives
  identical ``TickResult`` objects.  The local server produces the same
  sequence for the same seed and caller audio when (1) ``send_audio_instant``
  is True (one append per tick: the server cannot stream between two appends
  of a tick), (2) the connection is the only one on that server (ids come
  from one generator per server), and (3) no wall-clock knob is on
  (``idle_timeout_ms``).  Server pacing does not matter: with
  ``realtime=True`` a tick just waits longer for the barrier.  The model of
  time this gives: the server answers infinitely fast, an answer is complete
  within the tick where the turn ended, and it plays from there on.
* **Wall clock** (``sync="wall"``, for real providers, which know no barrier).
  Ticks follow an absolute schedule (tick ``k`` starts ``k * tick_ms`` after
  the first); a tick holds the events that arrived before its end.  The
  results then depend on network and server timing (not deterministic), but
  the conservation and barge-in guarantees hold.  ``sync="auto"`` picks
  ``"barrier"`` for a loopback URL and ``"wall"`` otherwise.
* **Tools.** Function calls are reported per tick (``TickResult.tool_calls``).
  With ``tools=`` handlers they are answered inside the tick (outputs, then one
  ``response.create``; in barrier mode the answer's audio starts in the same
  tick); otherwise answer them with :meth:`TickSession.send_tool_result`.  A
  provider whose dialect lacks the ``tools`` capability raises ``ConfigError``
  as soon as tools are configured.
* **What a tick reports**, in the harness's units as well as rtedge's: every
  server event of the tick (``server_events``: type, payload with the audio
  elided unless ``keep_audio``, position in the event sequence, arrival time
  in wall mode), the usage of each response completed in it (``usage``),
  ``vad_events``, 1-based ``tick_number``, positions on the input-audio clock
  in ms (``input_start_ms``, ``TickEvent.input_ms``) and byte offsets next to
  sample offsets.  Tool calls carry their arguments parsed and verbatim.
* **Pacing** (``pace``).  Wall mode holds each tick to its wall-clock length on
  an absolute schedule (tick ``k`` ends ``(k + 1) * tick_ms`` after the first
  began) unless ``pace=False``; barrier mode runs lock-step unless
  ``pace=True``, which holds each tick to at least its length on the same
  schedule.  Measured by ``benchmarks/tick_pacing.py``.
* **Connection state.**  ``connected``, ``closed`` and ``close_reason``: a
  server that closes the session at the end is the end (logged at INFO), and
  ``run_tick`` then raises ``ConnectionClosed`` saying why.
* ``run_tick`` runs on the caller's thread; the only work on the client's
  receiver thread is appending each event (with its arrival time) to a list,
  and noting when the connection went down or came back.

Owns: ``TickSession``: pacing, barriers, caller audio, tools at tick boundaries.  Must not: keep a copy of the
barge-in rules (the engine asks :mod:`rtedge.protocol.interruption`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
import numpy as np

from ._tick_engine import (
    AudioSpan,
    EngineStats,
    TickEngine,
    TickEvent,
    TickFormat,
    TickResult,
    ToolCall,
    tick_format,
)
from ._tick_records import CallerAudio, CallerTick, ResponseUsage, ServerEventRecord
from .tool_schema import error_output, output_text
from .tools import Tool
from ..audio import codec
from ..errors import (
    AudioError,
    ConfigError,
    ConnectionClosed,
    DeadlineExceeded,
    LocalProtocolError,
)
from ..protocol import events as ev
from ..protocol import items
from ..protocol._unset import UNSET
from ..protocol.config import SessionConfig
from ..protocol.dialects import get_dialect
from ..protocol.dialects.base import redact_url
from ..protocol.interruption import Cancel, Truncate
from ..transport.client import connect

log = logging.getLogger("rtedge")

__all__ = ["AudioSpan", "ResponseUsage", "ServerEventRecord", "TickEvent", "TickResult", "TickSession",
           "TickSettings", "ToolCall"]

Sync = Literal["auto", "barrier", "wall"]
BARRIER = "rtedge.barrier"
BARRIER_DONE = "rtedge.barrier.done"
#: tool rounds answered inside one tick at most (a model that keeps calling tools)
MAX_TOOL_ROUNDS = 8
#: the two G.711 mu-law codes of silence (+0 and -0)
ULAW_SILENCE = (0xFF, 0x7F)


@attrs.frozen(kw_only=True)
class TickSettings:
    """How a :class:`TickSession` connects by itself (it then owns and closes the client).

    Attributes:
        provider: the provider name (``"openai"``...).
        url: the endpoint (e.g. the local server's ``server.url``).
        model: the model.
        api_key: the key (default: the provider's environment variable).
        session: the session config; set ``input_format``/``output_format`` (e.g.
            ``AudioFormat.pcmu()``) to carry telephony audio on the wire unconverted; unset, the
            provider's formats are used and the codec converts.
        options: further :func:`rtedge.connect` options; ``reconnect`` defaults to None (a
            simulation must not continue silently on a new, empty session).
    """

    provider: str = "openai"
    url: str | None = attrs.field(default=None, repr=lambda url: repr(url if url is None else redact_url(url)))
    model: str | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    session: SessionConfig = attrs.field(factory=SessionConfig)
    options: Mapping[str, Any] = attrs.field(factory=dict, repr=lambda options: repr(
        {k: "***" if k == "headers" and v else v for k, v in options.items()}))  # headers may carry a key


def _tools_of(tools: Sequence[Any]) -> dict[str, Any]:
    if not tools:
        return {}

    out = {}
    for t in tools:
        tool = t if isinstance(t, Tool) else Tool.from_function(t)
        out[tool.name] = tool
    return out


def _check_tool_support(dialect: Any, declared: bool) -> None:
    if declared and "tools" not in dialect.capabilities:
        raise ConfigError(
            f"the {dialect.name} provider does not support tool calls in realtime sessions (its dialect "
            "lacks the 'tools' capability: the model would never call them); remove tools= and "
            "SessionConfig(tools=...), or use a provider that supports function calling")


class TickSession:
    """A realtime session driven in fixed ticks (see the module docstring for the guarantees).

    Args:
        client_or_settings: a connected :class:`rtedge.Client` (left open by :meth:`close`), or
            :class:`TickSettings` to connect with (closed by :meth:`close`).
        tick_ms: the tick length (ms); the tick holds a whole number of samples.
        audio_format: ``"ulaw8k"``, ``"pcm16k"`` or ``"pcm24k"``: the format of the caller audio
            given to :meth:`run_tick` and of the agent audio it returns.
        send_audio_instant: send a tick's audio in one append (True) or paced at real time in
            ``chunk_ms`` chunks over the tick (False; ``run_tick`` then takes ``tick_ms``).
        sync: ``"barrier"``, ``"wall"`` or ``"auto"`` (see the module docstring).
        chunk_ms: the paced chunk length (divides ``tick_ms``).
        barge_in: act on the server's ``speech_started`` (True) or only report it.
        tools: tool handlers (:class:`rtedge.voice.tools.Tool` or plain functions) to answer calls inside
            the tick; they are declared in the session.
        barrier_timeout: seconds to wait for a barrier answer before ``DeadlineExceeded``.
        pace: hold each tick to its wall-clock length on an absolute schedule (tick ``k`` ends
            ``(k + 1) * tick_ms`` after the first began).  Default: True in wall mode, False in
            barrier mode (lock-step, as fast as the server answers).  ``pace=False`` in wall mode
            returns at once with the events that arrived so far (the harness keeps time).
        silence_byte: the mu-law padding byte of both directions (``0xFF`` or ``0x7F``, the two
            mu-law zeros; default ``0xFF``).  PCM formats pad with 0.
        keep_audio: keep the base64 audio in ``TickResult.server_events`` payloads (default: elided,
            with its size in ``audio_bytes``).
        max_carry_ms: the most caller audio carried to later ticks; giving more raises ``AudioError``.

    Raises:
        ConfigError: an unknown format or sync mode, a tick or chunk that does not fit, tools on a
            provider without tool calls, a bad silence byte, or a barrier the server does not answer.
    """

    def __init__(self, client_or_settings: Any, *, tick_ms: int = 200, audio_format: str = "ulaw8k",
                 send_audio_instant: bool = True, sync: Sync = "auto", chunk_ms: int = 20,
                 barge_in: bool = True, tools: Sequence[Any] = (), barrier_timeout: float = 30.0,
                 pace: bool | None = None, silence_byte: int | bytes | None = None, keep_audio: bool = False,
                 max_carry_ms: int = 60_000) -> None:
        self.format: TickFormat = tick_format(audio_format)
        _check_timing(tick_ms, chunk_ms, self.format)
        if sync not in ("auto", "barrier", "wall"):
            raise ConfigError(f"sync must be 'auto', 'barrier' or 'wall', got {sync!r}")
        self.tick_ms, self.chunk_ms, self.instant = int(tick_ms), int(chunk_ms), bool(send_audio_instant)
        self.samples_per_tick = self.format.rate * self.tick_ms // 1000
        self.bytes_per_tick = self.samples_per_tick * self.format.bytes_per_sample
        self.silence_byte = _silence_of(self.format, silence_byte)
        self.barrier_timeout, self._pace, self._keep_audio = barrier_timeout, pace, bool(keep_audio)
        self._caller = CallerAudio(self.samples_per_tick, self.format.dtype, self.silence_byte,
                                   self.format.rate * int(max_carry_ms) // 1000)
        self._close_reason: str | None = None
        self._lost = self._ended = False  # the connection is down / down for good
        self._tools = _tools_of(tools)
        self._owns = not hasattr(client_or_settings, "append_audio")
        self.client: Any = self._connect(client_or_settings) if self._owns else client_or_settings
        self._lock = threading.RLock()  # one tick (or tool answer) at a time
        self._cond = threading.Condition()  # guards _inbox
        self._inbox: deque[tuple[ev.ServerEvent, float]] = deque()  # (event, monotonic arrival)
        self._stop = threading.Event()
        self._closed = False
        self._tick = 0
        self._t0: float | None = None
        self._barriers = 0
        try:
            self._setup(sync, barge_in)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------ setup
    def _connect(self, settings: TickSettings) -> Any:
        if not isinstance(settings, TickSettings):
            raise ConfigError(f"TickSession needs a Client or TickSettings, got {type(settings).__name__}")
        config = settings.session
        if self._tools:
            config = attrs.evolve(config, tools=tuple(t.function_tool for t in self._tools.values()))
        _check_tool_support(get_dialect(settings.provider), not _unset(config.tools) and bool(config.tools))
        options = {"reconnect": None, **settings.options}
        return connect(settings.provider, model=settings.model, api_key=settings.api_key, url=settings.url,
                       session=config, **options)

    def _setup(self, sync: Sync, barge_in: bool) -> None:
        client = self.client
        session = client.session
        declared = bool(session.get("tools")) or bool(self._tools)
        _check_tool_support(client.dialect, declared)
        if self._tools and not self._owns:
            client.update_session(tools=[t.function_tool for t in self._tools.values()], timeout=10.0)
            session = client.session
        if sync == "auto":
            sync = "barrier" if client.is_loopback else "wall"
        self.sync: Sync = sync
        self.pace = self.sync == "wall" if self._pace is None else bool(self._pace)
        state = client.snapshot
        self.engine = TickEngine(self.format, self.tick_ms, state.output_format,
                                 input_base_ms=state.input_bytes_sent / state.input_format.bytes_per_ms,
                                 session=session, barge_in=barge_in, formats=client.dialect.session_formats,
                                 silence=self.silence_byte, keep_audio=self._keep_audio)
        client._add_event_hook(self._on_event)
        if self.sync == "barrier":
            self._barrier()  # proves the server answers barriers; its events start tick 0

    # ------------------------------------------------------------------------------------------ receiver side
    def _on_event(self, event: ev.ServerEvent) -> None:
        """Receiver thread: queue the event; wake a barrier wait when it may be the answer."""
        if self._closed:
            return
        if isinstance(event, ev.ConnectionLost | ev.GaveUp):
            self._note_end(event)
        elif isinstance(event, ev.Reconnected):
            self._lost, self._close_reason = False, None
        with self._cond:
            self._inbox.append((event, time.monotonic()))
            if event.type == BARRIER_DONE or isinstance(event, ev.Error | ev.ConnectionLost):
                self._cond.notify_all()

    def _note_end(self, event: ev.ConnectionLost | ev.GaveUp) -> None:
        """Receiver thread: the connection went down; for good when the client will not reconnect."""
        reason = _reason_of(event)
        if self._close_reason is None:
            self._close_reason = reason
        elif isinstance(event, ev.GaveUp) and not event.cause.startswith("close "):
            self._close_reason += f"; {reason}"
        self._lost = True
        if isinstance(event, ev.GaveUp) or self.client.closed:  # the client set its state before the event
            self._ended = True
        if isinstance(event, ev.GaveUp) and isinstance(self.client.fatal_error, ConnectionClosed) \
                and not event.cause.startswith(("close 1000", "close 1001")):  # the client logged it at info
            log.error("tick session: %s", reason)  # (a server error it logged itself, as an error)

    # ------------------------------------------------------------------------------------------ ticks
    def run_tick(self, user_audio: Any = None) -> TickResult:
        """Send one tick of caller audio and return what the agent did during the tick.

        Args:
            user_audio: the caller's audio in the tick format (mu-law bytes or uint8 array; PCM16
                bytes or int16 array), any length: it joins the audio carried from earlier calls,
                one tick of it is sent, the rest waits for the next ticks; a tick short of audio is
                padded with silence; None (or empty) gives no audio.

        Raises:
            AudioError: the wrong type, or more than ``max_carry_ms`` of audio carried.
            ConnectionClosed: the session or the connection is closed (see :attr:`close_reason`).
            DeadlineExceeded: the barrier was not answered within ``barrier_timeout``.
        """
        with self._lock:
            if not self.connected:
                state = "closed" if self.closed else "disconnected"
                raise ConnectionClosed(f"the tick session is {state} ({self.close_reason})")
            self._caller.push(self._caller_samples(user_audio))
            caller = self._caller.take()
            k = self._tick
            start = self._tick_start(k)
            try:
                self._send_audio(caller.audio, start)
            except ConnectionClosed as exc:
                raise ConnectionClosed(f"{exc} ({self.close_reason or 'connection closed'})") from None
            if self.sync == "barrier":
                events = self._barrier()
                if self.pace:
                    self._sleep_until(start + self.tick_ms / 1000.0)
            else:
                if self.pace:
                    self._sleep_until(start + self.tick_ms / 1000.0)
                events = self._take(None)
            self.engine.begin(k)
            self._feed(events, start)
            self._answer_tools()
            self._tick = k + 1
            return self.engine.end(caller)

    def _tick_start(self, k: int) -> float:
        now = time.monotonic()
        if not self.pace:
            return now  # lock-step, or the harness keeps time: no schedule
        if self._t0 is None:
            self._t0 = now - k * self.tick_ms / 1000.0
        return self._t0 + k * self.tick_ms / 1000.0

    def _caller_samples(self, audio: Any) -> np.ndarray:
        """The caller's audio as samples of the tick format (uint8 mu-law or int16), any length."""
        fmt = self.format
        if audio is None:
            return np.zeros(0, dtype=fmt.dtype)
        if isinstance(audio, bytes | bytearray | memoryview):
            data = bytes(audio)
            if len(data) % fmt.bytes_per_sample:
                raise AudioError(f"{fmt.name} tick audio must be whole PCM16 samples, got {len(data)} bytes")
            return np.frombuffer(data, dtype=np.uint8 if fmt.kind == "ulaw" else "<i2").astype(fmt.dtype)
        if isinstance(audio, np.ndarray) and audio.dtype == fmt.dtype and audio.ndim == 1:
            return audio
        want = "a 1-D uint8 array (mu-law)" if fmt.kind == "ulaw" else "a 1-D int16 array"
        got = f"{audio.dtype} {audio.shape}" if isinstance(audio, np.ndarray) else type(audio).__name__
        raise AudioError(f"{fmt.name} tick audio must be bytes or {want}, got {got}")

    def _send_audio(self, samples: np.ndarray, start: float) -> None:
        """Send one tick of caller samples: mu-law to a mu-law session byte for byte, else converted."""
        step = len(samples) if self.instant else self.format.rate * self.chunk_ms // 1000
        passthrough = self.format.kind == "ulaw" and self.client.snapshot.input_format.kind == "pcmu"
        for i in range(0, len(samples), step):
            self._sleep_until(start + i / self.format.rate)
            part = samples[i:i + step]
            if passthrough:
                self.client.append_encoded(part.tobytes())
            else:
                pcm = codec.ulaw_decode(np.ascontiguousarray(part)) if self.format.kind == "ulaw" else part
                self.client.append_audio(pcm, rate=self.format.rate)

    def _sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0 and self._stop.wait(delay):
            raise ConnectionClosed("the tick session was closed")

    def _feed(self, events: list[tuple[ev.ServerEvent, float]], start: float | None = None) -> None:
        """Feed the tick's events; ``start`` (wall mode): the tick's start, for arrival times."""
        wall = self.sync == "wall" and start is not None
        for event, arrived in events:
            arrival_ms = round((arrived - start) * 1000.0, 3) if wall and start is not None else None
            for action in self.engine.feed(event, arrival_ms):
                self._act(action)

    def _act(self, action: Truncate | Cancel) -> None:
        try:
            if isinstance(action, Truncate):
                self.client.truncate(action.item_id, action.audio_end_ms, action.content_index)
            else:
                self.client.cancel_response()
        except (ConnectionClosed, LocalProtocolError) as exc:  # the result still reports the barge-in
            self.engine.events.append(TickEvent("error", 0, detail=f"barge-in not sent: {exc}"))

    # ------------------------------------------------------------------------------------------ barriers
    def _barrier(self) -> list[tuple[ev.ServerEvent, float]]:
        """Send a barrier, wait for its answer, and return the events before it (answers removed)."""
        self._barriers += 1
        event_id = f"rtedge_tick_barrier_{self._barriers}"
        self.client.send({"type": BARRIER, "event_id": event_id})
        deadline = time.monotonic() + self.barrier_timeout
        with self._cond:
            while True:
                for i, (event, _) in enumerate(self._inbox):
                    if event.type == BARRIER_DONE and event.raw.get("client_event_id") == event_id:
                        return self._take_locked(i + 1)
                    if isinstance(event, ev.Error) and event.error.event_id == event_id:
                        raise ConfigError(
                            f"the server does not answer {BARRIER} ({event.error.message}); lock-step ticks "
                            "need rtedge's local server: use TickSession(..., sync='wall') with this one")
                    if isinstance(event, ev.ConnectionLost):
                        raise ConnectionClosed(f"the connection ended during a barrier wait: {event.reason}")
                remaining = deadline - time.monotonic()
                if self._closed:
                    raise ConnectionClosed("the tick session was closed while waiting for a barrier")
                if remaining <= 0:
                    raise DeadlineExceeded(f"no {BARRIER_DONE} within {self.barrier_timeout:g} s")
                self._cond.wait(remaining)

    def _take(self, count: int | None) -> list[tuple[ev.ServerEvent, float]]:
        with self._cond:
            return self._take_locked(len(self._inbox) if count is None else count)

    def _take_locked(self, count: int) -> list[tuple[ev.ServerEvent, float]]:
        out = [self._inbox.popleft() for _ in range(count)]
        return [e for e in out if e[0].type != BARRIER_DONE]

    def sync_point(self) -> list[ev.ServerEvent]:
        """In barrier mode, wait until the server is quiescent (events stay for the next tick).

        Use it after sending something to the client directly between ticks; a no-op in wall mode.
        """
        if self.sync != "barrier":
            return []
        with self._lock:
            events = self._barrier()
            with self._cond:
                self._inbox.extendleft(reversed(events))
        return [e for e, _ in events]

    # ------------------------------------------------------------------------------------------ tools
    def send_tool_result(self, call_id: str, output: Any, *, respond: bool = True,
                         is_error: bool = False) -> None:
        """Answer a function call (``output``: a string, or anything JSON-able) and, with ``respond``,
        ask for the next response.  In barrier mode it returns once that response is complete (its
        audio plays from the next tick on).

        With ``is_error``, the call failed and ``output`` says why: the model gets
        ``{"error": output}`` (the shape rtedge's own tool handlers answer failures with; a string
        output is used as the message, anything else as its JSON).

        Raises:
            ConfigError: the provider has no tool calls.
        """
        _check_tool_support(self.client.dialect, True)

        text = error_output(output_text(output)) if is_error else output_text(output)
        with self._lock:
            item = items.function_call_output(call_id, text)
            self.client.send(ev.ConversationItemCreate(item=item))
            if respond:
                self.client.create_response()
            self.sync_point()

    def create_response(self, **overrides: Any) -> None:
        """Ask for a response now (e.g. the agent speaks first); in barrier mode, wait until it is
        complete (its audio plays from the next tick on)."""
        with self._lock:
            self.client.create_response(**overrides)
            self.sync_point()

    def _answer_tools(self) -> None:
        """Answer this tick's finished calls with the ``tools=`` handlers (barrier mode: repeatedly,
        so the answer's audio lands in this tick)."""
        for _ in range(MAX_TOOL_ROUNDS):
            finished = self.engine.take_finished_calls()
            if not self._tools or not finished:
                return
            for _rid, status, calls in finished:
                for call in calls:
                    output = self._invoke(call)
                    item = items.function_call_output(call.call_id, output)
                    self.client.send(ev.ConversationItemCreate(item=item))
                if status == "completed":
                    self.client.create_response()
            if self.sync != "barrier":
                return
            self._feed(self._barrier())

    def _invoke(self, call: ToolCall) -> str:
        tool = self._tools.get(call.name)
        if tool is None:
            return error_output(f"unknown tool {call.name!r}")
        try:
            args = call.args()
            if not isinstance(args, dict):
                return error_output("arguments must be a JSON object")
            return str(tool.invoke(args))
        except Exception as exc:  # noqa: BLE001 - a failing handler answers the model; the tick goes on
            return error_output(f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------------------------------ state
    @property
    def tick(self) -> int:
        """The index of the next tick."""
        return self._tick

    @property
    def stats(self) -> EngineStats:
        """Audio and barge-in totals (tick-format samples)."""
        return self.engine.stats

    @property
    def connected(self) -> bool:
        """True while ticks can run: not closed, and the connection is up (False while a client
        given with ``reconnect`` is reconnecting)."""
        return not (self._closed or self._lost)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called or the connection ended for good (the server closed
        it, it broke and the client will not reconnect, or the client was closed)."""
        return self._closed or self._ended

    @property
    def close_reason(self) -> str | None:
        """Why ticks cannot run (None while connected): ``"closed by the caller"``, or how the
        connection ended (e.g. ``"the server closed the connection (1001 going away)"``)."""
        return self._close_reason

    @property
    def caller_carried(self) -> int:
        """Caller samples given to :meth:`run_tick` and not sent yet."""
        return self._caller.queued

    def close(self) -> None:
        """Stop (a paced tick in progress ends with ConnectionClosed); close the client if it was ours."""
        if self._close_reason is None:
            self._close_reason = "closed by the caller"
        self._closed = True
        self._stop.set()
        with self._cond:
            self._inbox.clear()
            self._cond.notify_all()
        if self._owns and getattr(self, "client", None) is not None:
            self.client.close()

    def __enter__(self) -> TickSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _silence_of(fmt: TickFormat, byte: int | bytes | None) -> int:
    if fmt.kind != "ulaw":
        if byte not in (None, 0):
            raise ConfigError(f"silence_byte applies to mu-law ticks; {fmt.name} pads with 0, got {byte!r}")
        return 0
    if byte is None:
        return fmt.silence
    if isinstance(byte, bytes) and len(byte) == 1:
        byte = byte[0]
    if byte not in ULAW_SILENCE or isinstance(byte, bool):
        raise ConfigError(f"silence_byte must be 0xFF or 0x7F (the mu-law codes of silence), got {byte!r}")
    return int(byte)


def _reason_of(event: ev.ConnectionLost | ev.GaveUp) -> str:
    if isinstance(event, ev.GaveUp):
        return f"the client gave up on the connection: {event.cause}"
    if event.code is None and event.reason == "closed":
        return "the client was closed"
    if event.code is None:
        return f"the connection broke ({event.reason or 'no close frame'})"
    return f"the server closed the connection ({event.code} {event.reason})".replace(" )", ")")


def _unset(value: object) -> bool:
    return value is UNSET


def _check_timing(tick_ms: int, chunk_ms: int, fmt: TickFormat) -> None:
    if isinstance(tick_ms, bool) or not isinstance(tick_ms, int) or tick_ms <= 0:
        raise ConfigError(f"tick_ms must be a positive int, got {tick_ms!r}")
    if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, int) or chunk_ms <= 0 or tick_ms % chunk_ms:
        raise ConfigError(f"chunk_ms must be a positive int dividing tick_ms={tick_ms}, got {chunk_ms!r}")
    if fmt.rate * chunk_ms % 1000:
        raise ConfigError(f"{chunk_ms} ms is not a whole number of samples at {fmt.rate} Hz")

