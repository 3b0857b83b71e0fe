"""Typed client events -- what we send -- as frozen attrs values.

Each knows its canonical (OpenAI GA) ``TYPE`` and is turned into a provider's JSON by a dialect
(:mod:`rtedge.protocol.wire`).  :mod:`rtedge.protocol.events` offers them too, beside the server events.

Owns: the client event classes and their validation.  Must not: do I/O, or import the server events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from ..errors import ConfigError
from ._deferred import Deferred, EventMethods
from ._unset import UNSET, Unset
from .config import SessionConfig



# Each client event class but the base is made on first use (see ._deferred): first access as a module
# attribute (``from .client_events import X`` too).  Type checkers see attrs classes.
_LAZY = Deferred(globals())
if TYPE_CHECKING:
    from attrs import frozen as _deferred
else:
    _deferred = _LAZY.keep


@attrs.frozen(kw_only=True, eq=False, repr=False)  # eq, hash, repr: EventMethods
class ClientEvent(EventMethods):
    """Base of everything we send.  ``event_id`` is echoed by the server in ``error.event_id``."""

    TYPE: ClassVar[str] = ""
    event_id: str | Unset = UNSET


@_deferred(kw_only=True)
class SessionUpdate(ClientEvent):
    """Change the session's configuration; answered by ``session.updated`` or ``error``."""

    TYPE: ClassVar[str] = "session.update"
    session: SessionConfig


@_deferred(kw_only=True)
class InputAudioBufferAppend(ClientEvent):
    """Append audio, already in the session's input format (raw bytes; base64 is done on the wire)."""

    TYPE: ClassVar[str] = "input_audio_buffer.append"
    audio: bytes


#: DashScope's limit for one image: 256 KB of base64 text (about 192 KB of JPEG).
MAX_IMAGE_BASE64_BYTES = 256 * 1024
JPEG_MAGIC = b"\xff\xd8\xff"


def _jpeg_image(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bytes):
        raise ConfigError(f"image must be JPEG bytes, got {type(value).__name__}")
    if not value.startswith(JPEG_MAGIC):
        raise ConfigError("image must be a JPEG (it does not start with FF D8 FF); "
                          "DashScope's input_image_buffer.append takes JPEG only")
    encoded = 4 * -(-len(value) // 3)
    if encoded > MAX_IMAGE_BASE64_BYTES:
        limit = MAX_IMAGE_BASE64_BYTES
        raise ConfigError(f"image is {len(value)} bytes ({encoded} as base64); the limit is {limit} bytes "
                          f"of base64 (about {limit * 3 // 4} bytes of JPEG): scale it down (480p-720p is "
                          "recommended)")


@_deferred(kw_only=True)
class InputImageBufferAppend(ClientEvent):
    """Append one image, a video frame (DashScope): JPEG bytes, checked here (base64 is done on the wire).

    Only after the session's first audio append (the server rejects an image before any audio); the
    image is committed together with the audio buffer.  About one frame per second is the norm.
    """

    TYPE: ClassVar[str] = "input_image_buffer.append"
    image: bytes = attrs.field(validator=_jpeg_image)


@_deferred(kw_only=True)
class InputAudioBufferCommit(ClientEvent):
    """Commit the input buffer as a user item (needs >= 100 ms of audio since the last commit).

    vLLM's transcription endpoint gives commit two meanings: without ``final`` it starts a
    generation, and ``final=True`` ends the utterance's audio.  ``final`` is sent only by
    dialects with the ``commit_final`` capability (the session refuses it elsewhere).
    """

    TYPE: ClassVar[str] = "input_audio_buffer.commit"
    final: bool | Unset = UNSET


@_deferred(kw_only=True)
class InputAudioBufferClear(ClientEvent):
    """Drop the uncommitted input audio."""

    TYPE: ClassVar[str] = "input_audio_buffer.clear"


@_deferred(kw_only=True)
class ConversationItemCreate(ClientEvent):
    """Add an item (a message, a function call output...) to the conversation.

    ``item`` is the wire-shaped item dict; build it with :func:`rtedge.protocol.items.user_text` and friends.
    ``previous_item_id`` is ``"root"`` to insert at the start, an item id, or UNSET to append.
    """

    TYPE: ClassVar[str] = "conversation.item.create"
    item: Mapping[str, Any]
    previous_item_id: str | Unset = UNSET


@_deferred(kw_only=True)
class ConversationItemRetrieve(ClientEvent):
    TYPE: ClassVar[str] = "conversation.item.retrieve"
    item_id: str


@_deferred(kw_only=True)
class ConversationItemTruncate(ClientEvent):
    """Tell the server the user heard only the first ``audio_end_ms`` of an assistant item's audio."""

    TYPE: ClassVar[str] = "conversation.item.truncate"
    item_id: str
    content_index: int = 0
    audio_end_ms: int


@_deferred(kw_only=True)
class ConversationItemDelete(ClientEvent):
    TYPE: ClassVar[str] = "conversation.item.delete"
    item_id: str


@_deferred(kw_only=True)
class ResponseCreate(ClientEvent):
    """Ask for a response; ``response`` holds per-response overrides (instructions, output_modalities...)."""

    TYPE: ClassVar[str] = "response.create"
    response: Mapping[str, Any] | Unset = UNSET


@_deferred(kw_only=True)
class ResponseCancel(ClientEvent):
    """Cancel the active response (or the one named by ``response_id``)."""

    TYPE: ClassVar[str] = "response.cancel"
    response_id: str | Unset = UNSET


@_deferred(kw_only=True)
class SessionFinish(ClientEvent):
    """DashScope's graceful end (``session.finish``); OpenAI has no such event."""

    TYPE: ClassVar[str] = "session.finish"


@_deferred(kw_only=True)
class RawClientEvent(ClientEvent):
    """Any JSON object, sent as given (an escape hatch; the state machine does not look inside)."""

    data: Mapping[str, Any]


_CLIENT_EVENT_NAMES = (
    "SessionUpdate",
    "InputAudioBufferAppend",
    "InputImageBufferAppend",
    "InputAudioBufferCommit",
    "InputAudioBufferClear",
    "ConversationItemCreate",
    "ConversationItemRetrieve",
    "ConversationItemTruncate",
    "ConversationItemDelete",
    "ResponseCreate",
    "ResponseCancel",
    "SessionFinish",
)


if TYPE_CHECKING:
    CLIENT_EVENT_TYPES: tuple[type[ClientEvent], ...]
else:
    _LAZY.unbind()

    def __getattr__(name: str) -> Any:
        if name in _LAZY.templates:
            return _LAZY.make(name)
        if name == "CLIENT_EVENT_TYPES":
            value = globals()[name] = tuple(_LAZY.make(n) for n in _CLIENT_EVENT_NAMES)
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY.templates, "CLIENT_EVENT_TYPES"})
