"""Typed client and server events, as frozen attrs values.

Client events are what we send (:mod:`.client_events`, re-exported here).  Server events are what we
receive, after the dialect has normalised the wire JSON to GA names.  Every
server event keeps the message it came from in ``raw`` (unknown fields
included) and unknown event types decode to :class:`UnknownServerEvent`:
realtime APIs add events often, and a client must never fail on one.

Decoding is lenient by design: a field of the wrong JSON type is kept as is
(the raw data is the truth), and the state machine checks types before use.

Owns: the server event classes and decoding them from wire dicts.  Must not: do I/O, or import numpy at import
time (``pcm()`` loads the codec on first use).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

from ._deferred import Deferred, EventMethods


# ---------------------------------------------------------------------------------------------- server events
# Each server event class but the bases below is made on first use (see ._deferred): first access as a
# module attribute, or first decode of its type (server_event_class).  Type checkers see attrs classes.
_LAZY = Deferred(globals())
if TYPE_CHECKING:
    from attrs import frozen as _deferred

    from .client_events import (  # re-exported: ev.ResponseCancel and the like
        CLIENT_EVENT_TYPES as CLIENT_EVENT_TYPES,
        ClientEvent as ClientEvent,
        ConversationItemCreate as ConversationItemCreate,
        ConversationItemDelete as ConversationItemDelete,
        ConversationItemRetrieve as ConversationItemRetrieve,
        ConversationItemTruncate as ConversationItemTruncate,
        InputAudioBufferAppend as InputAudioBufferAppend,
        InputAudioBufferClear as InputAudioBufferClear,
        InputAudioBufferCommit as InputAudioBufferCommit,
        InputImageBufferAppend as InputImageBufferAppend,
        JPEG_MAGIC as JPEG_MAGIC,
        MAX_IMAGE_BASE64_BYTES as MAX_IMAGE_BASE64_BYTES,
        RawClientEvent as RawClientEvent,
        ResponseCancel as ResponseCancel,
        ResponseCreate as ResponseCreate,
        SessionFinish as SessionFinish,
        SessionUpdate as SessionUpdate,
    )
else:
    _deferred = _LAZY.keep
    from . import client_events as _client_events  # its names are offered here too (module __getattr__)
    from .client_events import JPEG_MAGIC, MAX_IMAGE_BASE64_BYTES, ClientEvent  # noqa: F401 - re-exported


@attrs.frozen(kw_only=True, eq=False, repr=False)
class ServerEvent(EventMethods):
    """Base of everything we receive.

    Attributes:
        type: the canonical (GA) event type.
        event_id: the server's event id, or None (vLLM sends none).
        raw: the message as received (after dialect normalisation), unknown fields included.
    """

    TYPE: ClassVar[str] = ""
    type: str
    event_id: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen(kw_only=True, eq=False, repr=False)
class UnknownServerEvent(ServerEvent):
    """An event type rtedge does not know: everything is in ``raw``."""


@attrs.frozen(kw_only=True)
class ErrorInfo:
    """The ``error`` object of an ``error`` event."""

    message: str = ""
    type: str | None = None
    code: str | None = None
    param: str | None = None
    event_id: str | None = None

    @classmethod
    def from_raw(cls, raw: object) -> ErrorInfo:
        if isinstance(raw, str):  # vLLM sends the message as a plain string
            return cls(message=raw)
        if not isinstance(raw, Mapping):
            return cls(message=repr(raw))

        def text(key: str) -> str | None:
            value = raw.get(key)
            return None if value is None else str(value)

        return cls(
            message=text("message") or "",
            type=text("type"),
            code=text("code"),
            param=text("param"),
            event_id=text("event_id"),
        )


@_deferred(kw_only=True)
class Error(ServerEvent):
    TYPE: ClassVar[str] = "error"
    error: ErrorInfo = attrs.field(factory=ErrorInfo)


@_deferred(kw_only=True)
class SessionCreated(ServerEvent):
    TYPE: ClassVar[str] = "session.created"
    session: Mapping[str, Any] = attrs.field(factory=dict)


@_deferred(kw_only=True)
class SessionUpdated(ServerEvent):
    TYPE: ClassVar[str] = "session.updated"
    session: Mapping[str, Any] = attrs.field(factory=dict)


@_deferred(kw_only=True)
class SessionFinished(ServerEvent):
    TYPE: ClassVar[str] = "session.finished"


@_deferred(kw_only=True)
class ConversationCreated(ServerEvent):
    TYPE: ClassVar[str] = "conversation.created"
    conversation: Mapping[str, Any] = attrs.field(factory=dict)


@_deferred(kw_only=True)
class _ItemEvent(ServerEvent):
    item: Mapping[str, Any] = attrs.field(factory=dict)
    previous_item_id: str | None = None

    @property
    def item_id(self) -> str:
        return str(self.item.get("id", ""))


@_deferred(kw_only=True)
class ConversationItemAdded(_ItemEvent):
    TYPE: ClassVar[str] = "conversation.item.added"


@_deferred(kw_only=True)
class ConversationItemDone(_ItemEvent):
    TYPE: ClassVar[str] = "conversation.item.done"


@_deferred(kw_only=True)
class ConversationItemCreated(_ItemEvent):
    TYPE: ClassVar[str] = "conversation.item.created"


@_deferred(kw_only=True)
class ConversationItemRetrieved(_ItemEvent):
    TYPE: ClassVar[str] = "conversation.item.retrieved"


@_deferred(kw_only=True)
class ConversationItemDeleted(ServerEvent):
    TYPE: ClassVar[str] = "conversation.item.deleted"
    item_id: str = ""


@_deferred(kw_only=True)
class ConversationItemTruncated(ServerEvent):
    TYPE: ClassVar[str] = "conversation.item.truncated"
    item_id: str = ""
    content_index: int = 0
    audio_end_ms: int = 0


@_deferred(kw_only=True)
class InputAudioTranscriptionDelta(ServerEvent):
    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.delta"
    item_id: str = ""
    content_index: int = 0
    delta: str = ""


@_deferred(kw_only=True)
class InputAudioTranscriptionCompleted(ServerEvent):
    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.completed"
    item_id: str = ""
    content_index: int = 0
    transcript: str = ""
    usage: Mapping[str, Any] | None = None


@_deferred(kw_only=True)
class InputAudioTranscriptionFailed(ServerEvent):
    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.failed"
    item_id: str = ""
    content_index: int = 0
    error: Mapping[str, Any] = attrs.field(factory=dict)


@_deferred(kw_only=True)
class InputAudioBufferCommitted(ServerEvent):
    TYPE: ClassVar[str] = "input_audio_buffer.committed"
    item_id: str = ""
    previous_item_id: str | None = None


@_deferred(kw_only=True)
class InputAudioBufferCleared(ServerEvent):
    TYPE: ClassVar[str] = "input_audio_buffer.cleared"


@_deferred(kw_only=True)
class InputAudioBufferSpeechStarted(ServerEvent):
    TYPE: ClassVar[str] = "input_audio_buffer.speech_started"
    audio_start_ms: int = 0
    item_id: str = ""


@_deferred(kw_only=True)
class InputAudioBufferSpeechStopped(ServerEvent):
    TYPE: ClassVar[str] = "input_audio_buffer.speech_stopped"
    audio_end_ms: int = 0
    item_id: str = ""


@_deferred(kw_only=True)
class InputAudioBufferTimeoutTriggered(ServerEvent):
    TYPE: ClassVar[str] = "input_audio_buffer.timeout_triggered"
    audio_start_ms: int = 0
    audio_end_ms: int = 0
    item_id: str = ""


@_deferred(kw_only=True)
class _ResponseEvent(ServerEvent):
    response: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def response_id(self) -> str:
        return str(self.response.get("id", ""))

    @property
    def status(self) -> str:
        return str(self.response.get("status", ""))


@_deferred(kw_only=True)
class ResponseCreated(_ResponseEvent):
    TYPE: ClassVar[str] = "response.created"


@_deferred(kw_only=True)
class ResponseDone(_ResponseEvent):
    TYPE: ClassVar[str] = "response.done"


@_deferred(kw_only=True)
class _OutputItemEvent(ServerEvent):
    response_id: str = ""
    output_index: int = 0
    item: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def item_id(self) -> str:
        return str(self.item.get("id", ""))


@_deferred(kw_only=True)
class ResponseOutputItemAdded(_OutputItemEvent):
    TYPE: ClassVar[str] = "response.output_item.added"


@_deferred(kw_only=True)
class ResponseOutputItemDone(_OutputItemEvent):
    TYPE: ClassVar[str] = "response.output_item.done"


@_deferred(kw_only=True)
class _ContentEvent(ServerEvent):
    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    content_index: int = 0


@_deferred(kw_only=True)
class ResponseContentPartAdded(_ContentEvent):
    TYPE: ClassVar[str] = "response.content_part.added"
    part: Mapping[str, Any] = attrs.field(factory=dict)


@_deferred(kw_only=True)
class ResponseContentPartDone(_ContentEvent):
    TYPE: ClassVar[str] = "response.content_part.done"
    part: Mapping[str, Any] = attrs.field(factory=dict)


@_deferred(kw_only=True)
class ResponseOutputTextDelta(_ContentEvent):
    TYPE: ClassVar[str] = "response.output_text.delta"
    delta: str = ""


@_deferred(kw_only=True)
class ResponseOutputTextDone(_ContentEvent):
    TYPE: ClassVar[str] = "response.output_text.done"
    text: str = ""


@_deferred(kw_only=True)
class ResponseOutputAudioDelta(_ContentEvent):
    """A chunk of assistant audio; ``delta`` is base64 in the session's output format."""

    TYPE: ClassVar[str] = "response.output_audio.delta"
    delta: str = ""
    #: the inbox kept this event without its audio, after a consumer got it (``connect(inbox_audio=True)``
    #: keeps it)
    audio_dropped: bool = False
    #: (format key, samples) once :meth:`pcm` decoded the audio (set once, on a frozen event)
    _decoded: tuple[Any, Any] | None = attrs.field(default=None, init=False, eq=False, repr=False)

    @property
    def audio(self) -> bytes:
        """The decoded audio bytes (in the session's output format)."""
        if self.audio_dropped:
            raise LookupError("this event's audio was dropped from the inbox once a callback had it; "
                              "connect(inbox_audio=True) keeps audio in the inbox")
        return base64.b64decode(self.delta)

    def pcm(self, fmt: Any = None) -> Any:
        """The audio as int16 samples (a numpy array), decoded once and cached: every consumer of this
        event shares the same read-only array.  ``fmt``: the session's output
        :class:`~rtedge.AudioFormat` (``client.snapshot.output_format``) when it is not PCM16; G.711 is
        expanded to PCM16.

        Raises:
            LookupError: the audio was dropped from the inbox (see :attr:`audio_dropped`).
        """
        cache = self._decoded
        key = None if fmt is None else (fmt.kind, fmt.rate)
        if cache is not None and cache[0] == key:
            return cache[1]
        # lazy: numpy and the codec stay out of the sans-IO core's import; only pcm() callers load them
        from ..audio import codec

        samples = codec.decode_wire(self.audio, "pcm" if fmt is None else fmt.kind)
        samples.flags.writeable = False
        object.__setattr__(self, "_decoded", (key, samples))  # a cache, not a field anyone compares
        return samples

    @property
    def audio_nbytes(self) -> int:
        """Decoded size in bytes, computed from the base64 length without decoding."""
        return base64_decoded_size(self.delta)


@_deferred(kw_only=True)
class ResponseOutputAudioDone(_ContentEvent):
    TYPE: ClassVar[str] = "response.output_audio.done"


@_deferred(kw_only=True)
class ResponseOutputAudioTranscriptDelta(_ContentEvent):
    TYPE: ClassVar[str] = "response.output_audio_transcript.delta"
    delta: str = ""


@_deferred(kw_only=True)
class ResponseOutputAudioTranscriptDone(_ContentEvent):
    TYPE: ClassVar[str] = "response.output_audio_transcript.done"
    transcript: str = ""


@_deferred(kw_only=True)
class ResponseFunctionCallArgumentsDelta(ServerEvent):
    TYPE: ClassVar[str] = "response.function_call_arguments.delta"
    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    call_id: str = ""
    delta: str = ""


@_deferred(kw_only=True)
class ResponseFunctionCallArgumentsDone(ServerEvent):
    TYPE: ClassVar[str] = "response.function_call_arguments.done"
    response_id: str = ""
    item_id: str = ""
    output_index: int = 0
    call_id: str = ""
    name: str = ""
    arguments: str = ""


@_deferred(kw_only=True)
class RateLimitsUpdated(ServerEvent):
    TYPE: ClassVar[str] = "rate_limits.updated"
    rate_limits: list[Any] = attrs.field(factory=list)


@_deferred(kw_only=True)
class _OutputAudioBufferEvent(ServerEvent):
    response_id: str = ""


@_deferred(kw_only=True)
class OutputAudioBufferStarted(_OutputAudioBufferEvent):
    TYPE: ClassVar[str] = "output_audio_buffer.started"


@_deferred(kw_only=True)
class OutputAudioBufferStopped(_OutputAudioBufferEvent):
    TYPE: ClassVar[str] = "output_audio_buffer.stopped"


@_deferred(kw_only=True)
class OutputAudioBufferCleared(_OutputAudioBufferEvent):
    TYPE: ClassVar[str] = "output_audio_buffer.cleared"


@_deferred(kw_only=True)
class TranscriptionDelta(ServerEvent):
    """vLLM's streaming transcription text."""

    TYPE: ClassVar[str] = "transcription.delta"
    delta: str = ""


@_deferred(kw_only=True)
class TranscriptionDone(ServerEvent):
    """vLLM's final transcription of an utterance, with usage."""

    TYPE: ClassVar[str] = "transcription.done"
    text: str = ""
    usage: Mapping[str, Any] | None = None


# --- events rtedge itself produces (never on the wire); their types start with "rtedge." ---------------------


@_deferred(kw_only=True)
class ConnectionLost(ServerEvent):
    """The connection ended (close code and reason, or None when the socket broke).  ``by_client``: it
    ended because this side closed it (``Client.close()``), the last event of every session; not a loss."""

    TYPE: ClassVar[str] = "rtedge.connection_lost"
    code: int | None = None
    reason: str = ""
    by_client: bool = False


@_deferred(kw_only=True)
class Reconnecting(ServerEvent):
    """The link is down and attempt ``attempt`` starts after ``delay`` seconds (``cause`` says why)."""

    TYPE: ClassVar[str] = "rtedge.reconnecting"
    attempt: int = 0
    delay: float = 0.0
    cause: str = ""


@_deferred(kw_only=True)
class Reconnected(ServerEvent):
    """A new server session is up, configured and re-seeded with the conversation so far."""

    TYPE: ClassVar[str] = "rtedge.reconnected"
    attempt: int = 0
    replayed_items: int = 0
    downtime: float = 0.0


@_deferred(kw_only=True)
class SessionRollover(ServerEvent):
    """The session was replaced before the provider's limit, make-before-break: sends now go to
    ``new_session_id``, which was given the session config and ``seeded_items`` conversation items
    (``summarized`` older ones folded into a summary item, ``dropped`` left out by the seeding budget);
    ``forced``: no quiet moment came before the forced point, so a response may still be finishing
    on the old session (it ends once that is done)."""

    TYPE: ClassVar[str] = "rtedge.session_rollover"
    old_session_id: str = ""
    new_session_id: str = ""
    seeded_items: int = 0
    summarized: int = 0
    dropped: int = 0
    forced: bool = False


@_deferred(kw_only=True)
class GaveUp(ServerEvent):
    """Reconnecting stopped for good: a fatal error or too many attempts (``cause``)."""

    TYPE: ClassVar[str] = "rtedge.gave_up"
    cause: str = ""


_SERVER_EVENT_NAMES = (
    "Error",
    "SessionCreated",
    "SessionUpdated",
    "SessionFinished",
    "ConversationCreated",
    "ConversationItemAdded",
    "ConversationItemDone",
    "ConversationItemCreated",
    "ConversationItemRetrieved",
    "ConversationItemDeleted",
    "ConversationItemTruncated",
    "InputAudioTranscriptionDelta",
    "InputAudioTranscriptionCompleted",
    "InputAudioTranscriptionFailed",
    "InputAudioBufferCommitted",
    "InputAudioBufferCleared",
    "InputAudioBufferSpeechStarted",
    "InputAudioBufferSpeechStopped",
    "InputAudioBufferTimeoutTriggered",
    "ResponseCreated",
    "ResponseDone",
    "ResponseOutputItemAdded",
    "ResponseOutputItemDone",
    "ResponseContentPartAdded",
    "ResponseContentPartDone",
    "ResponseOutputTextDelta",
    "ResponseOutputTextDone",
    "ResponseOutputAudioDelta",
    "ResponseOutputAudioDone",
    "ResponseOutputAudioTranscriptDelta",
    "ResponseOutputAudioTranscriptDone",
    "ResponseFunctionCallArgumentsDelta",
    "ResponseFunctionCallArgumentsDone",
    "RateLimitsUpdated",
    "OutputAudioBufferStarted",
    "OutputAudioBufferStopped",
    "OutputAudioBufferCleared",
    "TranscriptionDelta",
    "TranscriptionDone",
    "ConnectionLost",
    "Reconnecting",
    "Reconnected",
    "SessionRollover",
    "GaveUp",
)

#: server event type -> the name of its class (the class: :func:`server_event_class`)
_CLASS_NAMES: dict[str, str] = {_LAZY.templates[n].TYPE: n for n in _SERVER_EVENT_NAMES}  # type: ignore[attr-defined]
#: server event type -> its class and the fields a wire object fills, once the class is made
_DECODERS: dict[str, tuple[type[ServerEvent], tuple[str, ...]]] = {}

_INT_FIELDS = frozenset({"output_index", "content_index", "audio_start_ms", "audio_end_ms", "code"})
_STR_FIELDS = frozenset({"item_id", "previous_item_id", "response_id", "call_id", "name", "arguments",
                         "delta", "text", "transcript", "reason"})
_OBJECT_FIELDS = frozenset({"session", "conversation", "item", "response", "part", "usage", "error"})
_LIST_FIELDS = frozenset({"rate_limits"})


def _has_wire_type(name: str, value: object) -> bool:
    """Whether a field's wire value has the JSON type the typed field declares."""
    if name in _INT_FIELDS:  # indexes, milliseconds and close codes are never negative
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if name in _STR_FIELDS:
        return isinstance(value, str)
    if name in _OBJECT_FIELDS:
        return isinstance(value, Mapping)
    if name in _LIST_FIELDS:
        return isinstance(value, list)
    return True


def _field_names(cls: type[ServerEvent]) -> tuple[str, ...]:
    """The fields a wire object fills (rtedge's own bookkeeping, such as ``audio_dropped``, never)."""
    skip = {"type", "event_id", "raw", "audio_dropped"}
    return tuple(f.name for f in attrs.fields(cls) if f.name not in skip and f.init)




def server_event_class(type_: str) -> type[ServerEvent] | None:
    """The class of server events of (canonical) type ``type_``, or None for a type rtedge does not know."""
    decoder = _DECODERS.get(type_)
    if decoder is None:
        name = _CLASS_NAMES.get(type_)
        if name is None:
            return None
        cls: type[ServerEvent] = _LAZY.make(name)
        decoder = _DECODERS[type_] = (cls, _field_names(cls))
    return decoder[0]


def server_event_from_raw(raw: Mapping[str, Any]) -> ServerEvent:
    """Build the typed event for a (normalised) wire object; unknown types give UnknownServerEvent.

    Fields absent from ``raw`` keep their defaults; ``null`` values are treated as absent
    except where the field allows None, and so are values of the wrong JSON type (a string
    where an object is declared...), so typed fields can be trusted.  Never raises for a
    mapping with a string ``type``.
    """
    type_ = str(raw.get("type", ""))
    event_id = raw.get("event_id")
    event_id = None if event_id is None else str(event_id)
    if type_.startswith("rtedge.") and type_ in _CLASS_NAMES:
        # rtedge's own events (connection_lost, reconnecting, gave_up...) never come from the wire: a
        # server that sends one gets it renamed, so that on("rtedge.gave_up")/wait_for(...) cannot be
        # spoofed (the raw type stays in raw); other rtedge.* extensions (the test server's barrier) pass
        return UnknownServerEvent(type="wire:" + type_, event_id=event_id, raw=raw)
    cls = _DECODERS[type_][0] if type_ in _DECODERS else server_event_class(type_)
    if cls is None:
        return UnknownServerEvent(type=type_, event_id=event_id, raw=raw)
    kwargs: dict[str, Any] = {}
    for name in _DECODERS[type_][1]:
        if name not in raw:
            continue
        value = raw[name]
        if name == "error" and type_ == "error":  # transcription.failed keeps its error as the raw mapping
            value = ErrorInfo.from_raw(value)
            if value.code is None and isinstance(raw.get("code"), str):  # vLLM: {"error": "...", "code": ...}
                value = attrs.evolve(value, code=raw["code"])
        elif value is None:
            if name not in ("previous_item_id", "usage"):
                continue
        elif not _has_wire_type(name, value):
            continue  # malformed: keep the default, the raw data still has it
        kwargs[name] = value
    return cls(type=type_, event_id=event_id, raw=raw, **kwargs)


def base64_decoded_size(text: str) -> int:
    """Bytes that a base64 string decodes to, without decoding it."""
    n = len(text)
    if n == 0:
        return 0
    pad = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
    return max(0, n * 3 // 4 - pad)  # never negative, even for junk such as "="


Role = Literal["user", "assistant", "system"]


if TYPE_CHECKING:
    SERVER_EVENT_TYPES: tuple[type[ServerEvent], ...]
    SERVER_EVENT_REGISTRY: dict[str, type[ServerEvent]]
else:
    _LAZY.unbind()

    def __getattr__(name: str) -> Any:
        if name in _LAZY.templates:
            return _LAZY.make(name)
        if name in _client_events._LAZY.templates or name == "CLIENT_EVENT_TYPES":
            value = globals()[name] = getattr(_client_events, name)  # a client event: made there
            return value
        if name == "SERVER_EVENT_TYPES":
            value: Any = tuple(_LAZY.make(n) for n in _SERVER_EVENT_NAMES)
        elif name == "SERVER_EVENT_REGISTRY":
            value = {type_: server_event_class(type_) for type_ in _CLASS_NAMES}
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value  # made once
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY.templates, *_client_events._LAZY.templates, "CLIENT_EVENT_TYPES",
                       "SERVER_EVENT_TYPES", "SERVER_EVENT_REGISTRY"})
