"""JSON text <-> events.  The only place where JSON is produced or parsed.

``to_wire`` never emits a field the caller did not set: UNSET fields are
absent, and None becomes ``null`` only where the dialect put it (see
:mod:`rtedge.protocol.config`).  ``from_wire`` accepts any JSON object with a
string ``type``; anything else is a :class:`RemoteProtocolError`.

Owns: JSON text <-> events.  Must not: hold state.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..errors import RemoteProtocolError
from .dialects.base import Dialect
from ._unset import UNSET
from . import events
from .events import ClientEvent, ServerEvent, server_event_from_raw

#: NaN and infinity are not JSON (RFC 8259): refused, not written as the bare words a server rejects
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def to_wire(event: ClientEvent, dialect: Dialect) -> str:
    """Serialize a client event to the dialect's JSON text.

    Raises:
        ValueError: a value JSON cannot carry (NaN, infinity), naming the event.
        TypeError: a value that is not JSON data (an object, bytes...), naming the event.
    """
    if (event.TYPE == "input_audio_buffer.append" and type(event) is events.InputAudioBufferAppend
            and event.event_id is UNSET):
        return append_text(event.audio)
    obj = dialect.encode(event)  # (its own checks raise as they are)
    try:
        return _dumps(obj)
    except ValueError as exc:
        raise ValueError(f"{_kind(event)}: {exc} (NaN and infinity cannot be sent)") from None
    except TypeError as exc:
        raise TypeError(f"{_kind(event)}: {exc}") from None


def _kind(event: ClientEvent) -> str:
    if isinstance(event, events.RawClientEvent):
        return f"send({event.data.get('type', '?')!r} event)"
    return event.TYPE


def append_text(audio: bytes) -> str:
    """The text of an ``input_audio_buffer.append`` of ``audio`` with no event_id (every dialect's).

    The hot path (50 a second): base64 never needs JSON escaping, so the encoder is skipped; the text is
    byte-identical to what it produces."""
    return '{"type":"input_audio_buffer.append","audio":"' + base64.b64encode(audio).decode("ascii") + '"}'


def parse_object(text: str | bytes) -> dict[str, Any]:
    """Parse one message into a JSON object with a string ``type``.

    Raises:
        RemoteProtocolError: not JSON, not an object, or no string ``type``.
    """
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"server sent a message that is not JSON: {exc}", _as_text(text)) from exc
    if not isinstance(obj, dict):
        raise RemoteProtocolError("server sent JSON that is not an object", _as_text(text))
    if not isinstance(obj.get("type"), str):
        raise RemoteProtocolError("server sent an event without a string 'type'", _as_text(text))
    return obj


def from_wire(text: str | bytes, dialect: Dialect) -> ServerEvent:
    """Parse one server message into a typed (canonical) event; unknown types pass through."""
    return server_event_from_raw(dialect.normalize(parse_object(text)))


def _as_text(text: str | bytes) -> str:
    return text if isinstance(text, str) else text[:200].decode("utf-8", "replace")
