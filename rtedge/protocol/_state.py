"""The session's state: every field here changes only in this module.

Theory of operation
-------------------
A realtime session is a handful of small machines driven by events, in the
style of h11's ``_state.py``:

* **connection**: CONNECTING -> OPEN (``session.created``) -> CLOSED
  (``connection_lost``).  Nothing leaves CLOSED.
* **response**: IDLE -> ACTIVE (``response.created``) -> IDLE
  (``response.done``); a ``response.cancel`` we send moves ACTIVE to
  CANCELLING, which ``response.done`` (or the benign
  ``response_cancel_not_active`` error, or the next ``response.created``) ends.
* **input buffer**: EMPTY -> HAS_AUDIO (we append) -> SPEECH (server VAD
  heard speech) -> HAS_AUDIO (speech stopped) -> EMPTY (committed/cleared).

Transitions are the tables below, keyed by event type; a client event's key
is prefixed ``send:`` and an error's ``error:<code>``.  A key a table does
not list leaves that machine where it is: servers do send events out of the
textbook order (a late ``committed``, a ``response.done`` for a response we
never saw created), and a client must tolerate it rather than fail.

Beside the machines the state keeps the data that interruption, accounting
and reconnection need: the effective session config (``session.created``
merged with every ``session.updated``), assistant output items with the
audio received per content index (milliseconds, from the byte counts and
the output format), function-call argument assembly, the conversation
items, and token usage per response and in total.

Owns: the session state and its transitions on sent and received events.  Must not: do I/O or read a clock.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import attrs

from . import events as ev
from ._unset import UNSET
from .config import AudioFormat
from .usage import Usage


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"  #: socket open, no ``session.created`` yet
    OPEN = "open"  #: ``session.created`` received
    CLOSED = "closed"  #: the connection is gone; nothing more can be sent


class ResponseState(enum.Enum):
    IDLE = "idle"  #: no response is being generated
    ACTIVE = "active"  #: ``response.created`` seen, no ``response.done`` yet
    CANCELLING = "cancelling"  #: we sent ``response.cancel``; waiting for ``response.done``


class InputBufferState(enum.Enum):
    EMPTY = "empty"  #: nothing appended since the last commit/clear
    HAS_AUDIO = "has_audio"  #: audio appended, no speech detected (or speech ended)
    SPEECH = "speech"  #: the server's VAD reports speech in progress


_SEND_APPEND = "send:input_audio_buffer.append"

RESPONSE_TRANSITIONS: dict[ResponseState, dict[str, ResponseState]] = {
    ResponseState.IDLE: {"response.created": ResponseState.ACTIVE},
    ResponseState.ACTIVE: {
        "response.done": ResponseState.IDLE,
        "send:response.cancel": ResponseState.CANCELLING,
    },
    ResponseState.CANCELLING: {
        "response.done": ResponseState.IDLE,
        "error:response_cancel_not_active": ResponseState.IDLE,
        # a server runs one response at a time: a new one means the cancelled one is over
        # (DashScope's qwen3.5 models send no response.done after a cancel)
        "response.created": ResponseState.ACTIVE,
    },
}

INPUT_TRANSITIONS: dict[InputBufferState, dict[str, InputBufferState]] = {
    InputBufferState.EMPTY: {
        "send:input_audio_buffer.append": InputBufferState.HAS_AUDIO,
        "input_audio_buffer.speech_started": InputBufferState.SPEECH,
    },
    InputBufferState.HAS_AUDIO: {
        "input_audio_buffer.speech_started": InputBufferState.SPEECH,
        "input_audio_buffer.committed": InputBufferState.EMPTY,
        "transcription.done": InputBufferState.EMPTY,  # vLLM drops its queued audio after done
        "input_audio_buffer.cleared": InputBufferState.EMPTY,
        "send:input_audio_buffer.clear": InputBufferState.EMPTY,
    },
    InputBufferState.SPEECH: {
        "input_audio_buffer.speech_stopped": InputBufferState.HAS_AUDIO,
        "input_audio_buffer.committed": InputBufferState.EMPTY,
        "input_audio_buffer.cleared": InputBufferState.EMPTY,
        "send:input_audio_buffer.clear": InputBufferState.EMPTY,
    },
}

#: How many recent client event ids we remember to match ``error.event_id``.
_SENT_MEMORY = 256
#: Per-turn records kept (newest first out last): conversation items (what re-seeding replays),
#: assistant output items (what truncation and playback need), function calls, usage per response.
#: Older ones are released; ``SessionState.usage`` is a running sum and keeps counting them.
ITEM_WINDOW = 256
OUTPUT_ITEM_WINDOW = 64
CALL_WINDOW = 64
USAGE_WINDOW = 64


def _bound(records: OrderedDict[str, Any], limit: int) -> None:
    while len(records) > limit:
        records.popitem(last=False)


@attrs.define(eq=False)
class OutputItem:
    """An item the assistant produced in a response (message or function call)."""

    item_id: str
    response_id: str = ""
    type: str = "message"
    status: str = "in_progress"
    #: audio bytes received per content index
    audio_bytes: dict[int, int] = attrs.field(factory=dict)
    #: milliseconds of audio received per content index
    audio_ms: dict[int, float] = attrs.field(factory=dict)
    #: transcript (audio) or text received per content index
    text: dict[int, str] = attrs.field(factory=dict)
    #: ``audio_end_ms`` of a confirmed truncation, else None
    truncated_ms: int | None = None
    #: per content index, the smallest ``audio_end_ms`` truncated to (sent, confirmed or not): the server
    #: holds no more audio than that, and refuses a later truncate beyond it
    cut_ms: dict[int, int] = attrs.field(factory=dict)


@attrs.define(eq=False)
class FunctionCall:
    """A function call the model is making; ``arguments`` is assembled from the deltas."""

    call_id: str
    name: str = ""
    item_id: str = ""
    response_id: str = ""
    arguments: str = ""
    done: bool = False


@attrs.frozen
class SessionSnapshot:
    """What other threads may read of a :class:`SessionState`: an immutable value the thread that
    changed the state publishes (``Client.snapshot``) after each change, under the client's lock.

    ``session`` is the effective config as last reported; it is replaced, never changed in place."""

    connection: ConnectionState = ConnectionState.CONNECTING
    response: ResponseState = ResponseState.IDLE
    input_buffer: InputBufferState = InputBufferState.EMPTY
    response_id: str | None = None
    session_id: str | None = None
    session: Mapping[str, Any] = attrs.field(factory=dict)
    input_format: AudioFormat = AudioFormat.pcm(24000)
    output_format: AudioFormat = AudioFormat.pcm(24000)
    input_appended_ms: float = 0.0
    input_bytes_sent: int = 0
    #: the newest output item of the active (or cancelling) response; None when there is none
    streaming_item_id: str | None = None
    #: token totals of the whole client (earlier sessions of a reconnect included)
    usage: Usage = attrs.field(factory=Usage)
    #: (response id, usage) of the last response that reported usage
    last_response_usage: tuple[str, Usage] | None = None
    last_error: ev.ErrorInfo | None = None


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@attrs.define(eq=False)
class SessionState:
    """Everything the client knows about the session, updated only by :meth:`on_send`/:meth:`on_event`."""

    connection: ConnectionState = ConnectionState.CONNECTING
    response: ResponseState = ResponseState.IDLE
    input_buffer: InputBufferState = InputBufferState.EMPTY
    #: the active (or last) response id
    response_id: str | None = None
    session_id: str | None = None
    #: the effective session config as the server reports it (canonical GA shape)
    session: dict[str, Any] = attrs.field(factory=dict)
    input_format: AudioFormat = AudioFormat.pcm(24000)
    output_format: AudioFormat = AudioFormat.pcm(24000)
    #: ms of input audio appended since the last commit/clear
    input_appended_ms: float = 0.0
    #: total input audio bytes sent this session
    input_bytes_sent: int = 0
    #: an ``input_audio_buffer.append`` was sent in this session (DashScope wants one before any image)
    audio_appended: bool = False
    #: the last OUTPUT_ITEM_WINDOW assistant output items
    output_items: OrderedDict[str, OutputItem] = attrs.field(factory=OrderedDict)
    #: the last CALL_WINDOW function calls
    function_calls: OrderedDict[str, FunctionCall] = attrs.field(factory=OrderedDict)
    #: the last ITEM_WINDOW conversation items by id, in the order the server added them
    items: OrderedDict[str, dict[str, Any]] = attrs.field(factory=OrderedDict)
    #: transcripts of the last ITEM_WINDOW user audio items (``...input_audio_transcription.completed``;
    #: ``""`` when it failed or was empty)
    input_transcripts: OrderedDict[str, str] = attrs.field(factory=OrderedDict)
    #: usage of the last USAGE_WINDOW responses that reported it
    usage_by_response: OrderedDict[str, Usage] = attrs.field(factory=OrderedDict)
    #: running total over every response of this session (in a transcription session, every transcript's:
    #: see ``transcripts_count``)
    usage: Usage = attrs.field(factory=Usage)
    #: a transcription session (the provider answers no turn): a transcript's usage counts like a response's
    transcripts_count: bool = False
    last_error: ev.ErrorInfo | None = None
    #: type of recently sent client events by event_id
    sent_types: OrderedDict[str, str] = attrs.field(factory=OrderedDict)
    closed_code: int | None = None
    closed_reason: str = ""
    #: the newest output item and its response (what is streaming now, without scanning output_items)
    last_output_item_id: str | None = None
    last_output_response_id: str = ""

    def snapshot(self, usage_before: Usage | None = None) -> SessionSnapshot:
        """An immutable copy of the scalar state, for other threads (``usage_before``: earlier
        sessions' totals, added to :attr:`SessionSnapshot.usage`)."""
        streaming = (self.last_output_item_id if self.response is not ResponseState.IDLE
                     and self.last_output_response_id == self.response_id else None)
        last = next(reversed(self.usage_by_response.items()), None)
        return SessionSnapshot(
            connection=self.connection, response=self.response, input_buffer=self.input_buffer,
            response_id=self.response_id, session_id=self.session_id, session=self.session,
            input_format=self.input_format, output_format=self.output_format,
            input_appended_ms=self.input_appended_ms, input_bytes_sent=self.input_bytes_sent,
            streaming_item_id=streaming,
            usage=self.usage if usage_before is None else usage_before + self.usage,
            last_response_usage=last, last_error=self.last_error)

    # ------------------------------------------------------------------------------------------ transitions
    def _step(self, key: str) -> None:
        self.response = RESPONSE_TRANSITIONS[self.response].get(key, self.response)
        self.input_buffer = INPUT_TRANSITIONS[self.input_buffer].get(key, self.input_buffer)

    def set_formats(self, input_format: AudioFormat | None, output_format: AudioFormat | None) -> None:
        """Record the formats in force (from the dialect's reading of the session)."""
        if input_format is not None:
            self.input_format = input_format
        if output_format is not None:
            self.output_format = output_format

    def on_send(self, event: ev.ClientEvent) -> None:
        """Account for a client event we are about to send."""
        self._step("send:" + event.TYPE)
        if event.event_id is not UNSET and event.TYPE:
            self.sent_types[event.event_id] = event.TYPE
            while len(self.sent_types) > _SENT_MEMORY:
                self.sent_types.popitem(last=False)
        kind = event.TYPE  # before the class: event classes are made on first use
        if kind == "input_audio_buffer.append" and isinstance(event, ev.InputAudioBufferAppend):
            self._count_appended(len(event.audio))
        elif kind == "input_audio_buffer.clear" and isinstance(event, ev.InputAudioBufferClear):
            self.input_appended_ms = 0.0
        elif kind == "conversation.item.truncate" and isinstance(event, ev.ConversationItemTruncate):
            self._cut(event.item_id, event.content_index, event.audio_end_ms)

    def _cut(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        item = self.output_items.get(item_id)
        if item is not None:
            item.cut_ms[content_index] = min(item.cut_ms.get(content_index, audio_end_ms), audio_end_ms)

    def on_audio_sent(self, nbytes: int) -> None:
        """:meth:`on_send` of an ``input_audio_buffer.append`` of ``nbytes`` with no event_id, without the
        event (the hot path: 50 a second)."""
        self._step(_SEND_APPEND)
        self._count_appended(nbytes)

    def _count_appended(self, nbytes: int) -> None:
        self.audio_appended = True
        self.input_bytes_sent += nbytes
        self.input_appended_ms += nbytes / self.input_format.bytes_per_ms

    def on_connection_lost(self, code: int | None, reason: str) -> None:
        self.connection = ConnectionState.CLOSED
        self.closed_code = code
        self.closed_reason = reason
        self.response = ResponseState.IDLE

    def on_event(self, event: ev.ServerEvent) -> None:
        """Update from one server event (already normalised to GA names)."""
        if event.type == "error" and isinstance(event, ev.Error):
            self.last_error = event.error
            self._step(f"error:{event.error.code}")
            return
        self._step(event.type)
        handler = _HANDLERS.get(event.type) if type(event).TYPE == event.type else None
        if handler is not None:
            handler(self, event)

    # ------------------------------------------------------------------------------------------ handlers
    def _on_session(self, event: ev.SessionCreated | ev.SessionUpdated) -> None:
        if isinstance(event, ev.SessionCreated):
            self.connection = ConnectionState.OPEN
            self.session = dict(event.session)
        else:
            self.session = _deep_merge(self.session, event.session)
        sid = self.session.get("id")
        if isinstance(sid, str):
            self.session_id = sid

    def _on_response_created(self, event: ev.ResponseCreated) -> None:
        self.response_id = event.response_id or self.response_id

    def _on_response_done(self, event: ev.ResponseDone) -> None:
        rid = event.response_id
        self.response_id = rid or self.response_id
        usage = Usage.from_raw(event.response.get("usage")) if "usage" in event.response else Usage()
        if usage.responses == 0 and isinstance(event.raw.get("usage"), Mapping):
            usage = Usage.from_raw(event.raw["usage"])  # xAI puts usage at the top level
        if usage.responses:
            self.usage_by_response[rid] = usage
            _bound(self.usage_by_response, USAGE_WINDOW)
            self.usage = self.usage + usage
        output = event.response.get("output")
        for item in output if isinstance(output, list) else ():
            if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                self._output_item(item["id"], rid).status = str(item.get("status", "completed"))

    def _output_item(self, item_id: str, response_id: str = "") -> OutputItem:
        item = self.output_items.get(item_id)
        if item is None:
            item = self.output_items[item_id] = OutputItem(item_id=item_id, response_id=response_id)
            _bound(self.output_items, OUTPUT_ITEM_WINDOW)
        elif response_id and not item.response_id:
            item.response_id = response_id
        else:
            return item
        self.last_output_item_id, self.last_output_response_id = item_id, item.response_id
        return item

    def _on_output_item(self, event: ev.ResponseOutputItemAdded | ev.ResponseOutputItemDone) -> None:
        if not event.item_id:
            return
        item = self._output_item(event.item_id, event.response_id)
        item.type = str(event.item.get("type", item.type))
        item.status = str(event.item.get("status", item.status))
        if item.type == "function_call":
            call_id = event.item.get("call_id")
            if isinstance(call_id, str) and call_id:
                call = self._call(call_id, event.item_id, event.response_id)
                call.name = str(event.item.get("name") or call.name)

    def _call(self, call_id: str, item_id: str, response_id: str) -> FunctionCall:
        call = self.function_calls.get(call_id)
        if call is None:
            call = self.function_calls[call_id] = FunctionCall(call_id, item_id=item_id, response_id=response_id)
            _bound(self.function_calls, CALL_WINDOW)
        return call

    def _on_audio_delta(self, event: ev.ResponseOutputAudioDelta) -> None:
        item = self._output_item(event.item_id, event.response_id)
        n = event.audio_nbytes
        ci = event.content_index
        item.audio_bytes[ci] = item.audio_bytes.get(ci, 0) + n
        item.audio_ms[ci] = item.audio_ms.get(ci, 0.0) + n / self.output_format.bytes_per_ms

    def _on_text_delta(self, event: ev.ResponseOutputAudioTranscriptDelta | ev.ResponseOutputTextDelta) -> None:
        item = self._output_item(event.item_id, event.response_id)
        item.text[event.content_index] = item.text.get(event.content_index, "") + event.delta

    def _on_text_done(self, event: ev.ResponseOutputAudioTranscriptDone | ev.ResponseOutputTextDone) -> None:
        item = self._output_item(event.item_id, event.response_id)
        final = event.transcript if isinstance(event, ev.ResponseOutputAudioTranscriptDone) else event.text
        item.text[event.content_index] = final

    def _on_args_delta(self, event: ev.ResponseFunctionCallArgumentsDelta) -> None:
        if event.call_id:
            self._call(event.call_id, event.item_id, event.response_id).arguments += event.delta

    def _on_args_done(self, event: ev.ResponseFunctionCallArgumentsDone) -> None:
        if event.call_id:
            call = self._call(event.call_id, event.item_id, event.response_id)
            call.name = event.name or call.name
            call.arguments = event.arguments
            call.done = True

    def _on_item(self, event: ev.ConversationItemAdded | ev.ConversationItemDone | ev.ConversationItemCreated
                 | ev.ConversationItemRetrieved) -> None:
        if event.item_id:
            self.items[event.item_id] = _deep_merge(self.items.get(event.item_id, {}), event.item)
            _bound(self.items, ITEM_WINDOW)

    def _on_input_transcript(self, event: ev.InputAudioTranscriptionCompleted
                             | ev.InputAudioTranscriptionFailed) -> None:
        """A user audio item's transcript arrived (re-seeding a new session reads it); a failed or
        empty one is kept as ``""`` (known: nothing to wait for, nothing to replay).  In a transcription
        session its usage is the session's (OpenAI's transcription sessions report it here)."""
        if event.item_id:
            text = event.transcript if isinstance(event, ev.InputAudioTranscriptionCompleted) else ""
            self.input_transcripts[event.item_id] = text
            _bound(self.input_transcripts, ITEM_WINDOW)
        if self.transcripts_count and isinstance(event, ev.InputAudioTranscriptionCompleted):
            self._count_usage(event.usage)

    def _on_item_deleted(self, event: ev.ConversationItemDeleted) -> None:
        self.items.pop(event.item_id, None)
        self.input_transcripts.pop(event.item_id, None)
        self.output_items.pop(event.item_id, None)

    def _on_item_truncated(self, event: ev.ConversationItemTruncated) -> None:
        item = self.output_items.get(event.item_id)
        if item is not None:
            item.truncated_ms = event.audio_end_ms
        self._cut(event.item_id, event.content_index, event.audio_end_ms)

    def _on_committed(self, event: ev.InputAudioBufferCommitted) -> None:
        self.input_appended_ms = 0.0

    def _on_cleared(self, event: ev.InputAudioBufferCleared) -> None:
        self.input_appended_ms = 0.0

    def _on_transcription_done(self, event: ev.TranscriptionDone) -> None:
        """vLLM: one utterance transcribed; its usage counts like a response's."""
        self.input_appended_ms = 0.0
        self._count_usage(event.usage)

    def _count_usage(self, raw: object) -> None:
        """A transcript's usage object (when it has one) into the session's total, as a response's."""
        usage = Usage.from_raw(raw)
        if usage.responses:
            self.usage = self.usage + usage

    # ------------------------------------------------------------------------------------------ queries
    def audio_received_ms(self, item_id: str, content_index: int = 0) -> float:
        """Milliseconds of assistant audio received for an item's content part (0 when unknown)."""
        item = self.output_items.get(item_id)
        return 0.0 if item is None else item.audio_ms.get(content_index, 0.0)

    def audio_held_ms(self, item_id: str, content_index: int = 0) -> float:
        """Milliseconds of an item's audio the server holds: what was received, less what a truncate
        (sent, confirmed or not) cut off.  The most a truncate may keep."""
        item = self.output_items.get(item_id)
        if item is None:
            return 0.0
        received = item.audio_ms.get(content_index, 0.0)
        return min(received, item.cut_ms.get(content_index, received))

    def sent_type(self, event_id: str | None) -> str | None:
        """The type of the client event we sent with this id, if remembered."""
        return None if event_id is None else self.sent_types.get(event_id)


#: handlers by event type (strings, not classes: the classes are made on first use)
_HANDLERS: dict[str, Any] = {
    "session.created": SessionState._on_session,
    "session.updated": SessionState._on_session,
    "response.created": SessionState._on_response_created,
    "response.done": SessionState._on_response_done,
    "response.output_item.added": SessionState._on_output_item,
    "response.output_item.done": SessionState._on_output_item,
    "response.output_audio.delta": SessionState._on_audio_delta,
    "response.output_audio_transcript.delta": SessionState._on_text_delta,
    "response.output_text.delta": SessionState._on_text_delta,
    "response.output_audio_transcript.done": SessionState._on_text_done,
    "response.output_text.done": SessionState._on_text_done,
    "response.function_call_arguments.delta": SessionState._on_args_delta,
    "response.function_call_arguments.done": SessionState._on_args_done,
    "conversation.item.added": SessionState._on_item,
    "conversation.item.done": SessionState._on_item,
    "conversation.item.created": SessionState._on_item,
    "conversation.item.retrieved": SessionState._on_item,
    "conversation.item.deleted": SessionState._on_item_deleted,
    "conversation.item.truncated": SessionState._on_item_truncated,
    "input_audio_buffer.committed": SessionState._on_committed,
    "input_audio_buffer.cleared": SessionState._on_cleared,
    "transcription.done": SessionState._on_transcription_done,
    "conversation.item.input_audio_transcription.completed": SessionState._on_input_transcript,
    "conversation.item.input_audio_transcription.failed": SessionState._on_input_transcript,
}
