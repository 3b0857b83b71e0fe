"""One model response: what it says, and the GA event ladder that streams it.

Theory of operation
-------------------
This module does no I/O and starts no threads.  A :class:`Response` is created
by the session (which has already checked that none is active), then:

* :meth:`Response.created_event` gives ``response.created``;
* :meth:`Response.run` is a generator over a :class:`Plan` that yields either
  an event dict (send it now) or a float (a ``time.monotonic()`` deadline to
  wait for before pulling the next item).  Audio deltas are due on absolute
  deadlines ``t0 + k * delta_ms``, so pacing does not drift; when pacing is
  off every deadline is 0 and the caller just keeps pulling;
* :meth:`Response.finish` closes whatever is open, in the order the real
  server uses (``output_audio.done``, ``output_audio_transcript.done``,
  ``content_part.done``, ``conversation.item.done``, ``output_item.done``,
  ``response.done``, ``rate_limits.updated``) and is used both for normal
  completion and for cancellation, so a cancelled response reports exactly
  the partial output that was streamed.

Items of a response in the default conversation are inserted into the
:class:`~rtedge.testing._conversation.Conversation` when
``response.output_item.added`` is produced, and their audio grows as audio
deltas are produced, which is what ``truncate`` later checks against.

Owns: one emulated response and its event ladder.  Must not: do I/O.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any, Callable, Iterator, Sequence

import attrs
import numpy as np

from rtedge.testing._audio import WireFormat, resample, synthesize
from rtedge.testing._conversation import Conversation, Entry, text_tokens

__all__ = ["Plan", "Reply", "Response", "Turn", "default_arguments", "split_text"]

RATE_LIMIT = 15_000_000
TEXT_DELTA_S = 0.008  # real text deltas arrive a few ms apart
ARG_CHUNK = 6


@attrs.frozen
class Reply:
    """What a scripted responder wants the model to say.

    Attributes:
        text: The reply text (also the audio transcript).
        audio: Optional int16 mono 24 kHz samples to send instead of the
            synthetic voice (resampled to 8 kHz for G.711 output formats).
    """

    text: str
    audio: np.ndarray | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Turn:
    """What a responder is told about the conversation when a response starts.

    Attributes:
        items: Copies of the context items, oldest first (no audio).
        last_user_item: The most recent user message in the context, or ``None``.
        last_user_text: Its text, or its audio transcript, or ``""``.
        last_user_audio: Its int16 audio at ``input_rate``, or ``None``.
        input_rate: Sample rate of ``last_user_audio``.
        instructions: Effective instructions for this response.
        session: A copy of the effective session config.
        response: The ``response`` overrides from ``response.create`` (may be empty).
    """

    items: list[dict[str, Any]]
    last_user_item: dict[str, Any] | None
    last_user_text: str
    last_user_audio: np.ndarray | None = attrs.field(eq=False)
    input_rate: int
    instructions: str
    session: dict[str, Any]
    response: dict[str, Any]


@attrs.frozen
class Plan:
    """The content of one response: a message (text + maybe audio) or a function call."""

    kind: str  # "message" | "function_call"
    text: str = ""
    audio: np.ndarray | None = attrs.field(default=None, eq=False)  # at the output rate
    offsets: tuple[int, ...] = ()  # audio start sample of every character of text
    name: str = ""
    arguments: str = ""


_PIECE = re.compile(r"\s*[\w'’-]+|\s*[^\w\s]+|\s+")


def split_text(text: str) -> list[str]:
    """Split text the way streamed deltas look: ``["Hi", " there", "!"]``."""
    return _PIECE.findall(text) or ([text] if text else [])


def _example_value(schema: Any) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(schema, dict) and schema.get("enum"):
        return schema["enum"][0]
    return {"string": "example", "integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}.get(
        str(kind), "example"
    )


def default_arguments(tool: dict[str, Any]) -> str:
    """Arguments JSON for a tool: an example value for every required property."""
    params = tool.get("parameters") or {}
    props = params.get("properties") or {}
    required = params.get("required") or list(props)
    return json.dumps({name: _example_value(props.get(name, {})) for name in required})


def message_plan(reply: Reply, modality: str, out_fmt: WireFormat) -> Plan:
    """Build a message plan, synthesizing or resampling the audio as needed."""
    if modality != "audio":
        return Plan("message", text=reply.text)
    if reply.audio is None:
        audio, offsets = synthesize(reply.text, out_fmt.rate)
        return Plan("message", text=reply.text, audio=audio, offsets=offsets)
    audio = resample(np.asarray(reply.audio, dtype=np.int16), 24000, out_fmt.rate)
    n = len(reply.text)
    offsets = tuple(int(audio.size * i / max(1, n)) for i in range(n + 1))
    return Plan("message", text=reply.text, audio=audio, offsets=offsets)


@attrs.define(eq=False)
class Response:
    """State of one response while it streams, and the events describing it."""

    id: str
    new_id: Callable[[str], str]
    conversation: Conversation | None  # None = out of band
    conversation_id: str | None
    modality: str
    out_fmt: WireFormat
    voice: Any
    metadata: Any
    max_output_tokens: Any
    input_tokens: tuple[int, int]  # (text, audio)
    cached_tokens: int
    delta_ms: int = 40
    realtime: bool = True
    start_delay: float = 0.0
    status: str = "in_progress"
    output: list[Entry] = attrs.Factory(list)
    entry: Entry | None = None
    part_open: bool = False
    sent_text: str = ""  # transcript, text or arguments streamed so far
    usage: dict[str, Any] | None = None
    details: dict[str, Any] | None = None  # status_details
    audio_started: float | None = None  # monotonic time of the first audio delta

    # -- events ---------------------------------------------------------------

    def _base(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "response_id": self.id, **fields}

    def resource(self) -> dict[str, Any]:
        """The ``response`` object as ``response.created``/``.done`` show it."""
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": self.status,
            "status_details": self.details,
            "output": [entry.public() for entry in self.output],
            "conversation_id": self.conversation_id,
            "output_modalities": [self.modality],
            "max_output_tokens": self.max_output_tokens,
            # openai-python's RealtimeResponse types audio.output.voice as a string; a custom voice set as
            # {"id": "voice_123"} in the session is reported by its id here (the recorded live sessions
            # only show built-in voice names, which are strings either way)
            "audio": {"output": {"format": self._format(), "voice": _voice_name(self.voice)}},
            "usage": self.usage,
            "metadata": self.metadata,
        }

    def _format(self) -> dict[str, Any]:
        if self.out_fmt.kind == "audio/pcm":
            return {"type": self.out_fmt.kind, "rate": self.out_fmt.rate}
        return {"type": self.out_fmt.kind}

    def created_event(self) -> dict[str, Any]:
        return {"type": "response.created", "response": self.resource()}

    def _item_event(self, kind: str) -> dict[str, Any]:
        assert self.entry is not None
        return self._base(kind, output_index=0, item=self.entry.public())

    def _part_fields(self) -> dict[str, Any]:
        assert self.entry is not None
        return {"item_id": self.entry.id, "output_index": 0, "content_index": 0}

    def _part(self) -> dict[str, Any]:
        if self.modality == "audio":
            return {"type": "audio", "transcript": self.sent_text}
        return {"type": "text", "text": self.sent_text}

    # -- streaming ------------------------------------------------------------

    def run(self, plan: Plan, obfuscate: Callable[[str], str]) -> Iterator[dict[str, Any] | float]:
        """Stream ``plan``: yields events to send and deadlines to wait for.

        Args:
            plan: What to say or call.
            obfuscate: Makes the ``obfuscation`` padding for a delta.
        """
        t0 = time.monotonic()
        if self.start_delay > 0:
            yield t0 + self.start_delay
            t0 = time.monotonic()
        yield from self._open_item(plan)
        if plan.kind == "function_call":
            yield from self._stream_arguments(plan, obfuscate)
        elif self.modality == "audio":
            yield from self._stream_audio(plan, obfuscate)
        else:
            yield from self._stream_text(plan, obfuscate)
        yield from self.finish("completed")

    def _open_item(self, plan: Plan) -> Iterator[dict[str, Any]]:
        item_id = self.new_id("item")
        item: dict[str, Any]
        if plan.kind == "function_call":
            item = {"id": item_id, "type": "function_call", "status": "in_progress", "name": plan.name,
                    "call_id": self.new_id("call"), "arguments": ""}
        else:
            item = {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant",
                    "content": []}
        self.entry = Entry(item)
        self.output.append(self.entry)
        yield self._item_event("response.output_item.added")
        if self.conversation is not None:
            previous = self.conversation.insert(self.entry)
            yield {"type": "conversation.item.added", "previous_item_id": previous,
                   "item": self.entry.public()}
        if plan.kind == "message":
            kind = "output_audio" if self.modality == "audio" else "output_text"
            item["content"].append({"type": kind, "transcript": ""} if kind == "output_audio" else
                                   {"type": kind, "text": ""})
            if kind == "output_audio":
                self.entry.audio, self.entry.fmt = np.zeros(0, dtype=np.int16), self.out_fmt
            self.part_open = True
            yield self._base("response.content_part.added", **self._part_fields(), part=self._part())

    def _add_text(self, piece: str) -> None:
        assert self.entry is not None
        self.sent_text += piece
        if self.entry.item["type"] == "function_call":
            self.entry.item["arguments"] = self.sent_text
        else:
            part = self.entry.item["content"][0]
            part["transcript" if part["type"] == "output_audio" else "text"] = self.sent_text

    def _delta(self, kind: str, piece: str, obfuscate: Callable[[str], str]) -> dict[str, Any]:
        self._add_text(piece)
        return self._base(kind, **self._part_fields(), delta=piece, obfuscation=obfuscate(piece))

    def _stream_text(self, plan: Plan, obfuscate: Callable[[str], str]) -> Iterator[dict[str, Any] | float]:
        t0 = time.monotonic()
        for index, piece in enumerate(split_text(plan.text)):
            if index:
                yield t0 + index * TEXT_DELTA_S if self.realtime else 0.0
            yield self._delta("response.output_text.delta", piece, obfuscate)

    def _stream_arguments(
        self, plan: Plan, obfuscate: Callable[[str], str]
    ) -> Iterator[dict[str, Any] | float]:
        assert self.entry is not None
        t0 = time.monotonic()
        pieces = [plan.arguments[i : i + ARG_CHUNK] for i in range(0, len(plan.arguments), ARG_CHUNK)]
        for index, piece in enumerate(pieces):
            if index:
                yield t0 + index * TEXT_DELTA_S if self.realtime else 0.0
            self._add_text(piece)
            yield self._base("response.function_call_arguments.delta", item_id=self.entry.id, output_index=0,
                             call_id=self.entry.item["call_id"], delta=piece, obfuscation=obfuscate(piece))

    def _stream_audio(self, plan: Plan, obfuscate: Callable[[str], str]) -> Iterator[dict[str, Any] | float]:
        assert self.entry is not None and plan.audio is not None
        pieces = split_text(plan.text)
        starts = _piece_starts(pieces, plan.offsets)
        step = self.out_fmt.ms_to_samples(self.delta_ms)
        t0, next_piece = time.monotonic(), 0
        self.audio_started = t0
        for k, begin in enumerate(range(0, int(plan.audio.size), step)):
            if k:
                yield t0 + k * self.delta_ms / 1000.0 if self.realtime else 0.0
            chunk = plan.audio[begin : begin + step]
            while next_piece < len(pieces) and starts[next_piece] < begin + step:
                yield self._delta("response.output_audio_transcript.delta", pieces[next_piece], obfuscate)
                next_piece += 1
            self.entry.audio = plan.audio[: begin + chunk.size]  # a view: what has been sent so far
            payload = base64.b64encode(self.out_fmt.encode(chunk)).decode("ascii")
            yield self._base("response.output_audio.delta", **self._part_fields(), delta=payload)
        for piece in pieces[next_piece:]:
            yield self._delta("response.output_audio_transcript.delta", piece, obfuscate)

    def playback_end(self) -> float:
        """When a client playing this response's audio in real time would finish (monotonic)."""
        if self.audio_started is None or self.entry is None:
            return time.monotonic()
        return max(time.monotonic(), self.audio_started + self.entry.audio_ms() / 1000.0)

    # -- closing --------------------------------------------------------------

    def finish(self, status: str, reason: str | None = None, error: dict[str, Any] | None = None,
               ) -> Iterator[dict[str, Any]]:
        """Close everything still open and yield the closing events.

        Args:
            status: ``completed``, ``cancelled``, ``incomplete`` or ``failed``.
            reason: ``status_details.reason`` (``turn_detected``, ``client_cancelled`` ...).
            error: ``status_details.error`` for ``failed``.
        """
        if self.part_open:
            yield from self._close_part()
        if self.entry is not None and self.entry.item["status"] == "in_progress":
            yield from self._close_item("completed" if status == "completed" else "incomplete")
        self.status = status
        if status != "completed":
            details: dict[str, Any] = {"type": status}
            if reason:
                details["reason"] = reason
            if error:
                details["error"] = error
            self.details = details
        self.usage = self._usage()
        yield {"type": "response.done", "response": self.resource()}

    def _close_part(self) -> Iterator[dict[str, Any]]:
        fields = self._part_fields()
        if self.modality == "audio":
            yield self._base("response.output_audio.done", **fields)
            yield self._base("response.output_audio_transcript.done", **fields, transcript=self.sent_text)
        else:
            yield self._base("response.output_text.done", **fields, text=self.sent_text)
        yield self._base("response.content_part.done", **fields, part=self._part())
        self.part_open = False

    def _close_item(self, status: str) -> Iterator[dict[str, Any]]:
        assert self.entry is not None
        item = self.entry.item
        if item["type"] == "function_call" and status == "completed":
            yield self._base("response.function_call_arguments.done", item_id=item["id"], output_index=0,
                             call_id=item["call_id"], name=item["name"], arguments=item["arguments"])
        item["status"] = status
        if self.conversation is not None and self.conversation.find(item["id"]) is not None:
            index = self.conversation.entries.index(self.entry)
            previous = self.conversation.entries[index - 1].id if index else None
            yield {"type": "conversation.item.done", "previous_item_id": previous,
                   "item": self.entry.public()}
        yield self._item_event("response.output_item.done")

    def _usage(self) -> dict[str, Any]:
        text_in, audio_in = self.input_tokens
        audio_out = 0
        if self.entry is not None and self.entry.audio is not None and self.modality == "audio":
            audio_out = -(-self.entry.audio_ms() // 50)
        text_out = text_tokens(self.sent_text)
        cached = min(self.cached_tokens, text_in + audio_in)
        cached_text = min(cached, text_in)
        return {
            "total_tokens": text_in + audio_in + text_out + audio_out,
            "input_tokens": text_in + audio_in,
            "output_tokens": text_out + audio_out,
            "input_token_details": {
                "text_tokens": text_in, "audio_tokens": audio_in, "image_tokens": 0, "cached_tokens": cached,
                "cached_tokens_details": {"text_tokens": cached_text, "audio_tokens": cached - cached_text,
                                          "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }


def rate_limits_event(remaining: int) -> dict[str, Any]:
    """``rate_limits.updated`` as the live server sends it (tokens only)."""
    return {"type": "rate_limits.updated", "rate_limits": [
        {"name": "tokens", "limit": RATE_LIMIT, "remaining": max(0, remaining), "reset_seconds": 0.001}]}


def _piece_starts(pieces: Sequence[str], offsets: Sequence[int]) -> list[int]:
    """Audio sample where each text piece starts (transcript deltas lead their audio)."""
    starts, pos = [], 0
    last = len(offsets) - 1
    for piece in pieces:
        starts.append(int(offsets[min(pos, last)]) if offsets else 0)
        pos += len(piece)
    return starts


def _voice_name(voice: Any) -> Any:
    """A session voice as a response reports it: a custom voice object by its ``id``."""
    return voice.get("id") if isinstance(voice, dict) else voice
