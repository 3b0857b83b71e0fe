"""The server-side conversation: ordered items, client item validation, token estimates.

Theory of operation
-------------------
A :class:`Conversation` is an ordered list of :class:`Entry` objects.  Each
entry holds the item dict exactly as the server shows it in events (``id``,
``type``, ``status``, ``role``, ``content`` ...), plus the raw audio behind its
audio content part, which is never put in ``added``/``done`` events but is
returned by ``conversation.item.retrieve`` and is what ``truncate`` cuts.

:func:`item_from_client` validates a ``conversation.item.create`` item and
builds its entry, raising :class:`ClientError` with the real server's codes.
:func:`estimate_tokens` gives deterministic, plausible token counts (about 4
characters per text token, 100 ms per input audio token, 50 ms per output
audio token) so ``usage`` has stable numbers.

Owns: the server-side conversation.  Must not: do I/O.
"""

from __future__ import annotations

import base64
import binascii
import copy
import math
from typing import Any, Callable, Iterable

import numpy as np

from rtedge.testing._audio import WireFormat
from rtedge.testing._config import ClientError, invalid_value

__all__ = ["Conversation", "Entry", "estimate_tokens", "item_from_client", "item_text", "text_tokens"]


class Entry:
    """One conversation item and the audio behind it.

    Args:
        item: The item as the server shows it.
        audio: int16 samples of its audio part, or ``None``.
        fmt: The wire format the audio is in (for retrieve and ms arithmetic).
    """

    __slots__ = ("item", "audio", "fmt")

    def __init__(self, item: dict[str, Any], audio: np.ndarray | None = None, fmt: WireFormat | None = None):
        self.item = item
        self.audio = audio
        self.fmt = fmt

    @property
    def id(self) -> str:
        return str(self.item["id"])

    def audio_ms(self) -> int:
        """Milliseconds of audio held (for assistant items: sent so far)."""
        if self.audio is None or self.fmt is None:
            return 0
        return self.fmt.samples_to_ms(int(self.audio.size))

    def public(self, with_audio: bool = False) -> dict[str, Any]:
        """A copy of the item for an event; ``with_audio`` adds base64 audio (retrieve)."""
        item = copy.deepcopy(self.item)
        if with_audio and self.audio is not None and self.fmt is not None:
            for part in item.get("content", []):
                if part.get("type") in ("input_audio", "output_audio"):
                    part["audio"] = base64.b64encode(self.fmt.encode(self.audio)).decode("ascii")
        return item


class Conversation:
    """Ordered conversation items (the default conversation of a session)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def find(self, item_id: Any) -> Entry | None:
        for entry in self.entries:
            if entry.id == item_id:
                return entry
        return None

    def last_id(self) -> str | None:
        return self.entries[-1].id if self.entries else None

    def insert(self, entry: Entry, previous_item_id: Any = None) -> str | None:
        """Insert ``entry``; returns the id of the item now before it (or ``None``).

        Args:
            entry: The new entry.
            previous_item_id: ``None`` appends, ``"root"`` inserts first,
                an existing id inserts right after that item.

        Raises:
            ClientError: ``previous_item_id`` names no item.
        """
        if previous_item_id is None:
            previous = self.last_id()
            self.entries.append(entry)
            return previous
        if previous_item_id == "root":
            self.entries.insert(0, entry)
            return None
        for index, existing in enumerate(self.entries):
            if existing.id == previous_item_id:
                self.entries.insert(index + 1, entry)
                return existing.id
        raise ClientError(
            "item_create_invalid_previous_item_id",
            f"Error adding item: the previous item with id '{previous_item_id}' does not exist.",
            "previous_item_id",
        )

    def delete(self, item_id: Any) -> bool:
        for index, entry in enumerate(self.entries):
            if entry.id == item_id:
                del self.entries[index]
                return True
        return False


# ---------------------------------------------------------------------------
# client items


def _need(value: dict[str, Any], key: str, path: str) -> Any:
    if key not in value:
        raise ClientError(
            "missing_required_parameter", f"Missing required parameter: '{path}.{key}'.", f"{path}.{key}"
        )
    return value[key]


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise ClientError(
            "invalid_type", f"Invalid type for '{path}': expected a string, but got {kind} instead.", path
        )
    return value


def _decode_b64(value: Any, path: str) -> bytes:
    try:
        return base64.b64decode(_str(value, path), validate=True)
    except (binascii.Error, ValueError):
        message = f"Invalid '{path}': expected base64-encoded audio."
        raise ClientError("invalid_value", message, path) from None


_CONTENT_TYPES = {
    "user": ("input_text", "input_audio", "input_image"),
    "system": ("input_text",),
    "assistant": ("output_text", "output_audio"),
}


def _content_part(
    part: Any, role: str, path: str, fmt: WireFormat
) -> tuple[dict[str, Any], np.ndarray | None]:
    if not isinstance(part, dict):
        raise ClientError("invalid_type", f"Invalid type for '{path}': expected an object.", path)
    kind = _str(_need(part, "type", path), f"{path}.type")
    if kind not in _CONTENT_TYPES[role]:
        raise invalid_value(f"{path}.type", kind, _CONTENT_TYPES[role])
    if kind in ("input_text", "output_text"):
        return {"type": kind, "text": _str(_need(part, "text", path), f"{path}.text")}, None
    if kind == "input_image":
        return {"type": kind, "image_url": _str(_need(part, "image_url", path), f"{path}.image_url"),
                "detail": part.get("detail", "auto")}, None
    audio = None
    if "audio" in part:
        audio = fmt.decode(_decode_b64(part["audio"], f"{path}.audio"))
    transcript = part.get("transcript")
    return {"type": kind, "transcript": transcript}, audio


def _message(raw: dict[str, Any], item_id: str, fmt: WireFormat) -> Entry:
    role = _str(_need(raw, "role", "item"), "item.role")
    if role not in _CONTENT_TYPES:
        raise invalid_value("item.role", role, ("user", "assistant", "system"))
    parts = _need(raw, "content", "item")
    if not isinstance(parts, list):
        message = "Invalid type for 'item.content': expected an array."
        raise ClientError("invalid_type", message, "item.content")
    content, audio = [], None
    for index, part in enumerate(parts):
        public, samples = _content_part(part, role, f"item.content[{index}]", fmt)
        content.append(public)
        audio = samples if samples is not None else audio
    item = {"id": item_id, "type": "message", "status": "completed", "role": role, "content": content}
    return Entry(item, audio, fmt if audio is not None else None)


def item_from_client(
    raw: Any, new_id: Callable[[], str], input_fmt: WireFormat, output_fmt: WireFormat
) -> Entry:
    """Validate a ``conversation.item.create`` item and build its entry.

    Args:
        raw: The ``item`` value the client sent.
        new_id: Makes a fresh ``item_...`` id when the client gave none.
        input_fmt: Session input format (for user ``input_audio``).
        output_fmt: Session output format (for assistant ``output_audio``).

    Returns:
        The entry, status ``completed``.

    Raises:
        ClientError: The item is malformed.
    """
    if not isinstance(raw, dict):
        raise ClientError("missing_required_parameter", "Missing required parameter: 'item'.", "item")
    item_id = _str(raw["id"], "item.id") if raw.get("id") is not None else new_id()
    kind = _str(_need(raw, "type", "item"), "item.type")
    if kind == "message":
        fmt = output_fmt if raw.get("role") == "assistant" else input_fmt
        return _message(raw, item_id, fmt)
    if kind == "function_call":
        return Entry({
            "id": item_id, "type": kind, "status": "completed",
            "name": _str(_need(raw, "name", "item"), "item.name"),
            "call_id": _str(_need(raw, "call_id", "item"), "item.call_id"),
            "arguments": _str(raw.get("arguments", ""), "item.arguments"),
        })
    if kind == "function_call_output":
        return Entry({
            "id": item_id, "type": kind,
            "call_id": _str(_need(raw, "call_id", "item"), "item.call_id"),
            "output": _str(_need(raw, "output", "item"), "item.output"),
        })
    raise invalid_value("item.type", kind, ("message", "function_call", "function_call_output"))


# ---------------------------------------------------------------------------
# text and tokens


def item_text(item: dict[str, Any]) -> str:
    """The readable text of an item (text, transcripts, call arguments, outputs)."""
    if item.get("type") == "function_call":
        return f"{item.get('name', '')}({item.get('arguments', '')})"
    if item.get("type") == "function_call_output":
        return str(item.get("output", ""))
    pieces = []
    for part in item.get("content", []):
        text = part.get("text") if "text" in part else part.get("transcript")
        if text:
            pieces.append(str(text))
    return " ".join(pieces)


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def estimate_tokens(entries: Iterable[Entry], preamble: str) -> tuple[int, int]:
    """``(text_tokens, audio_tokens)`` a model would read for this context.

    Args:
        entries: The context items.
        preamble: Instructions and tool definitions as text.

    Returns:
        Deterministic token counts.
    """
    text, audio = text_tokens(preamble) + 4, 0
    for entry in entries:
        text += 4 + text_tokens(item_text(entry.item))
        if entry.audio is not None and entry.item.get("role") == "user":
            audio += math.ceil(entry.audio_ms() / 100)
        elif entry.audio is not None:
            audio += math.ceil(entry.audio_ms() / 50)
    return text, audio
