"""The values a tick reports (TickResult and its parts), and the caller's audio carried between ticks.

Pure values and bookkeeping for :mod:`rtedge.voice._tick_engine` and :mod:`rtedge.voice.tick`: no I/O, no
threads, no clock.

* :class:`TickResult` and its parts (:class:`TickEvent`, :class:`ToolCall`, :class:`AudioSpan`),
  and the tick audio formats (:class:`TickFormat`).
* :class:`ServerEventRecord`: one server event of a tick as the harness sees it (type, payload with
  the audio elided unless asked for, position in the session's event sequence, arrival time).
* :class:`ResponseUsage`: the token usage of one response completed in a tick.
* :class:`CallerAudio`: the caller's audio, given in chunks of any length, cut into exact ticks.
  What does not fit is carried to the next ticks; a tick short of audio is padded with the
  silence byte.  Conservation: over any run, the caller samples given equal the caller samples
  sent plus the samples still carried, and every tick sends exactly one tick of samples.

Owns: the values a tick reports.  Must not: do I/O.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from ..audio import codec
from ..errors import AudioError, ConfigError
from ..protocol import events as ev
from ..protocol.usage import Usage

__all__ = ["AudioSpan", "CallerAudio", "CallerTick", "ResponseUsage", "ServerEventRecord", "TickEvent",
           "TickFormat", "TickResult", "ToolCall", "event_record", "tick_format"]

#: the harness's VAD event kinds (``TickResult.vad_events``)
VAD_KINDS = frozenset({"speech_started", "speech_stopped", "interrupted"})

#: payload fields that carry base64 audio, per event type (elided unless audio is kept)
_AUDIO_FIELDS = {"response.output_audio.delta": "delta", "input_audio_buffer.append": "audio"}


@attrs.frozen
class ServerEventRecord:
    """One server event of a tick.

    Attributes:
        seq: its position in the session's event sequence (0 = the first event after the
            tick session started; consecutive across ticks).
        type: the event type (canonical GA spelling; rtedge's own events are ``rtedge.*``).
        payload: the event as received (after dialect normalisation).  Audio is elided by
            default: the base64 field is ``""`` and :attr:`audio_bytes` says how much there was.
        audio_bytes: the decoded size of the audio the event carried (0 for events without audio).
        arrival_ms: wall mode: when it arrived, in ms after the tick started (negative when it
            arrived before, while the caller was between ticks); barrier mode: None (the tick is a
            position in the event sequence, not a time).
    """

    seq: int
    type: str
    payload: Mapping[str, Any]
    audio_bytes: int = 0
    arrival_ms: float | None = None


def event_record(event: ev.ServerEvent, seq: int, *, keep_audio: bool = False,
                 arrival_ms: float | None = None) -> ServerEventRecord:
    """The record of ``event``: its raw payload (rtedge's own events: their fields), audio elided."""
    payload: dict[str, Any] = dict(event.raw) if event.raw else _fields_of(event)
    nbytes = event.audio_nbytes if isinstance(event, ev.ResponseOutputAudioDelta) else 0
    field = _AUDIO_FIELDS.get(event.type)
    if field is not None and not keep_audio and field in payload:
        payload[field] = ""
    return ServerEventRecord(seq, event.type, payload, nbytes, arrival_ms)


def _fields_of(event: ev.ServerEvent) -> dict[str, Any]:
    fields = attrs.asdict(event, recurse=True, filter=lambda a, _v: a.name != "raw")
    return {k: v for k, v in fields.items() if not isinstance(v, bytes | bytearray)}


@attrs.frozen
class ResponseUsage:
    """The usage of one response completed (``response.done``) in a tick.

    Attributes:
        response_id: the response.
        status: its status (``completed``, ``cancelled``, ``incomplete``, ``failed``).
        usage: the normalized token counts (:class:`rtedge.Usage`; ``responses`` is 1 when the
            provider reported usage, 0 when it did not).
        raw: the usage object as the provider sent it (None when there was none).
        synthetic: rtedge settled the response itself (the connection was lost, or a cancel was
            never answered); such responses carry no usage.
    """

    response_id: str
    status: str
    usage: Usage
    raw: Mapping[str, Any] | None = None
    synthetic: bool = False


def response_usage(event: ev.ResponseDone) -> ResponseUsage:
    """The usage of a ``response.done``, read where the session state reads it (xAI: top level)."""
    raw = event.response.get("usage")
    if not isinstance(raw, Mapping) and isinstance(event.raw.get("usage"), Mapping):
        raw = event.raw["usage"]
    raw = dict(raw) if isinstance(raw, Mapping) else None
    return ResponseUsage(event.response_id, event.status, Usage.from_raw(raw), raw,
                         bool(event.raw.get("rtedge_synthetic")))


@attrs.frozen
class TickFormat:
    """A tick audio format: ``kind`` ``"ulaw"`` (G.711 mu-law bytes) or ``"pcm"`` (PCM16 LE)."""

    name: str
    kind: str
    rate: int

    @property
    def silence(self) -> int:
        """The sample value of silence (0xFF for mu-law, 0 for PCM)."""
        return 0xFF if self.kind == "ulaw" else 0

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(np.uint8) if self.kind == "ulaw" else np.dtype(np.int16)

    @property
    def bytes_per_sample(self) -> int:
        return 1 if self.kind == "ulaw" else 2


FORMATS = {
    "ulaw8k": TickFormat("ulaw8k", "ulaw", 8000),
    "pcm16k": TickFormat("pcm16k", "pcm", 16000),
    "pcm24k": TickFormat("pcm24k", "pcm", 24000),
}
_RATES = {name: f.rate for name, f in FORMATS.items()}


def tick_format(name: str) -> TickFormat:
    """The :class:`TickFormat` called ``name``; ConfigError lists the known ones."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown tick audio_format {name!r}; use one of {sorted(FORMATS)}") from None


@attrs.frozen
class TickEvent:
    """Something that happened in a tick.

    Attributes:
        kind: ``speech_started``, ``speech_stopped``, ``response_created``, ``response_done``,
            ``tool_call``, ``interrupted``, ``user_transcript``, ``error`` or ``connection_lost``.
        offset_ms: where in the tick it takes effect (speech events: from the server's audio
            timestamps; others: the latest such point before them in the tick; 0 if none).
        item_id: the item concerned, if any.
        response_id: the response concerned, if any.
        detail: the response status, the tool name, the played ms of an interruption, the
            transcript, or the error text.
        offset: ``offset_ms`` in tick samples; ``offset_bytes``: in bytes of the tick audio.
        input_ms: the same point on the session's input-audio clock (ms of caller audio the
            server had received, 0 = the start of the session's input audio); speech events carry
            the server's own ``audio_start_ms``/``audio_end_ms`` here, unclamped.
    """

    kind: str
    offset_ms: int
    item_id: str = ""
    response_id: str = ""
    detail: str = ""
    offset: int = 0
    offset_bytes: int = 0
    input_ms: float = 0.0


@attrs.frozen
class ToolCall:
    """A function call the model made (its ``response.function_call_arguments.done``).

    Attributes:
        call_id: the id to answer with (``TickSession.send_tool_result``).
        name: the function name.
        arguments: the arguments as the model sent them (a JSON string, kept verbatim).
        parsed_arguments: the arguments parsed (``{}`` when empty or not a JSON object).
        arguments_error: why ``arguments`` did not parse into an object ("" when they did).
    """

    call_id: str
    name: str
    arguments: str
    item_id: str = ""
    response_id: str = ""
    parsed_arguments: Mapping[str, Any] = attrs.field(init=False, eq=False)
    arguments_error: str = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        parsed, error = _parse_arguments(self.arguments)
        object.__setattr__(self, "parsed_arguments", parsed)
        object.__setattr__(self, "arguments_error", error)

    def args(self) -> Any:
        """The arguments parsed from JSON (``{}`` when empty); raises ValueError on invalid JSON."""
        return json.loads(self.arguments) if self.arguments.strip() else {}


def _parse_arguments(text: str) -> tuple[dict[str, Any], str]:
    if not text.strip():
        return {}, ""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return {}, f"invalid JSON: {exc}"
    if not isinstance(value, dict):
        return {}, f"arguments must be a JSON object, got {type(value).__name__}"
    return value, ""


@attrs.frozen
class AudioSpan:
    """Where agent audio sits in a tick: ``length`` samples at tick ``offset`` are samples
    ``item_offset...`` of the item's audio (in the tick format); ``byte_offset`` and
    ``byte_length`` are the same in bytes of ``TickResult.agent_audio``."""

    item_id: str
    content_index: int
    offset: int
    length: int
    item_offset: int
    byte_offset: int = 0
    byte_length: int = 0


def _same_events(a: tuple[ServerEventRecord, ...], b: tuple[ServerEventRecord, ...]) -> bool:
    """Server events compared without their wall-clock arrival times."""
    return len(a) == len(b) and all(attrs.evolve(x, arrival_ms=None) == attrs.evolve(y, arrival_ms=None)
                                    for x, y in zip(a, b, strict=True))


@attrs.frozen
class TickResult:
    """One tick.  Frozen and comparable: equal event sequences give equal results (``arrival_ms``
    of the server events, set in wall mode only, is left out of the comparison).

    Attributes:
        tick: the tick index (0-based; :attr:`tick_number` is 1-based).
        start_ms: ``tick * tick_ms``.
        format: the tick audio format name (``"ulaw8k"``, ``"pcm16k"``, ``"pcm24k"``).
        agent_audio: exactly one tick of agent audio in the tick format (mu-law bytes or
            PCM16 little-endian), silence where the agent was not heard.
        agent_transcript: the agent's words heard in this tick (see the module docstring).
        user_transcript: input transcriptions completed in this tick (when the session has
            transcription on), joined by spaces.
        events: what happened, in order.
        tool_calls: function calls completed in this tick, in order.
        interrupted: a barge-in cut agent audio (or an active response) short in this tick.
        spans: where the agent audio sits in ``agent_audio``.
        agent_samples: samples of ``agent_audio`` that are agent audio (the rest is padding).
        dropped_samples: carried agent audio dropped by an interruption in this tick.
        carried_samples: agent audio waiting for the next ticks.
        input_start_ms: where the tick starts on the session's input-audio clock (ms of caller
            audio sent before it, audio appended before the tick session included).
        input_samples: caller samples sent in this tick (the rest of the tick was padding).
        input_padded: silence samples sent to fill the tick (the caller gave too little).
        input_carried: caller samples given but not sent yet (they go out in the next ticks).
        vad_events: ``speech_started``, ``speech_stopped`` and ``interrupted``, in order (their
            positions are in :attr:`events`).
        server_events: every server event of the tick, in arrival order.
        usage: the usage of each response completed in the tick, in order.
        bytes_per_sample: 1 (mu-law) or 2 (PCM16).
    """

    tick: int
    start_ms: int
    format: str
    agent_audio: bytes
    agent_transcript: str
    user_transcript: str
    events: tuple[TickEvent, ...]
    tool_calls: tuple[ToolCall, ...]
    interrupted: bool
    spans: tuple[AudioSpan, ...]
    agent_samples: int
    dropped_samples: int
    carried_samples: int
    input_start_ms: float = 0.0
    input_samples: int = 0
    input_padded: int = 0
    input_carried: int = 0
    vad_events: tuple[str, ...] = ()
    server_events: tuple[ServerEventRecord, ...] = attrs.field(default=(),
                                                               eq=attrs.cmp_using(eq=_same_events))
    usage: tuple[ResponseUsage, ...] = ()
    bytes_per_sample: int = 1

    @property
    def tick_number(self) -> int:
        """The 1-based tick number."""
        return self.tick + 1

    @property
    def tick_ms(self) -> int:
        """The tick length in ms."""
        return self.end_ms - self.start_ms

    @property
    def end_ms(self) -> int:
        """Where the tick ends (ms from the first tick's start)."""
        n = len(self.agent_audio) // self.bytes_per_sample
        return self.start_ms + n * 1000 // _RATES[self.format]

    @property
    def agent_bytes(self) -> int:
        """Bytes of :attr:`agent_audio` that are agent audio."""
        return self.agent_samples * self.bytes_per_sample

    @property
    def carried_bytes(self) -> int:
        return self.carried_samples * self.bytes_per_sample

    @property
    def dropped_bytes(self) -> int:
        return self.dropped_samples * self.bytes_per_sample

    @property
    def input_bytes(self) -> int:
        """Bytes of caller audio sent in this tick (padding excluded)."""
        return self.input_samples * self.bytes_per_sample

    @property
    def input_end_ms(self) -> float:
        """Where the tick ends on the input-audio clock."""
        return self.input_start_ms + self.tick_ms

    @property
    def usage_total(self) -> Usage:
        """The usage of the responses completed in this tick, summed."""
        total = Usage()
        for u in self.usage:
            total = total + u.usage
        return total

    def samples(self) -> np.ndarray:
        """``agent_audio`` as int16 samples at the tick rate."""
        if self.format.startswith("ulaw"):
            return codec.ulaw_decode(np.frombuffer(self.agent_audio, dtype=np.uint8))
        return np.frombuffer(self.agent_audio, dtype="<i2").astype(np.int16)

    def kinds(self) -> tuple[str, ...]:
        """The kinds of :attr:`events`, in order."""
        return tuple(e.kind for e in self.events)


@attrs.frozen
class CallerTick:
    """The caller's audio sent in one tick (tick-format samples).

    Attributes:
        audio: exactly one tick of audio, as sent (the caller's samples, then the silence padding).
        samples: how many of them are the caller's.
        padded: how many are silence padding (the caller gave too little).
        carried: caller samples left for the next ticks.
    """

    audio: np.ndarray = attrs.field(eq=False, repr=False)
    samples: int
    padded: int
    carried: int


class CallerAudio:
    """The caller's audio queue: chunks of any length in, exact ticks out.

    Args:
        n: samples per tick.
        dtype: ``uint8`` (mu-law) or ``int16`` (PCM).
        silence: the padding sample (a mu-law byte, or 0 for PCM).
        max_samples: the most carried audio held; more raises ``AudioError`` (nothing is dropped).
    """

    def __init__(self, n: int, dtype: np.dtype[Any], silence: int, max_samples: int) -> None:
        self.n, self.dtype, self.silence, self.max_samples = n, dtype, silence, max_samples
        self._chunks: deque[np.ndarray] = deque()
        self._head = 0  # samples of _chunks[0] already taken
        self.queued = 0
        self.given = self.sent = 0  # totals over the session (conservation: given == sent + queued)

    def push(self, samples: np.ndarray) -> None:
        """Queue the caller's samples (already validated as ``dtype``)."""
        if not len(samples):
            return
        if self.queued + len(samples) > self.max_samples:
            raise AudioError(
                f"{len(samples)} more caller samples would carry {self.queued + len(samples)} samples "
                f"(more than max_carry_ms, {self.max_samples} samples): give the audio as time goes on, "
                "or raise max_carry_ms")
        self._chunks.append(np.array(samples, dtype=self.dtype, copy=True))
        self.queued += len(samples)
        self.given += len(samples)

    def take(self) -> CallerTick:
        """The next tick: up to one tick of queued samples, padded with silence to exactly one tick."""
        out = np.full(self.n, self.silence, dtype=self.dtype)
        filled = 0
        while filled < self.n and self._chunks:
            chunk = self._chunks[0]
            k = min(self.n - filled, len(chunk) - self._head)
            out[filled:filled + k] = chunk[self._head:self._head + k]
            filled, self._head = filled + k, self._head + k
            if self._head == len(chunk):
                self._chunks.popleft()
                self._head = 0
        self.queued -= filled
        self.sent += filled
        return CallerTick(out, filled, self.n - filled, self.queued)
