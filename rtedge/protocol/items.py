"""Builders for conversation items in the wire shape (plain dicts, GA spelling).

Owns: conversation item builders.  Must not: validate against a provider (the server does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def user_text(text: str) -> dict[str, Any]:
    """A user message with one ``input_text`` part.

    Raises:
        TypeError: ``text`` is not a str (None went out as JSON null).
    """
    if not isinstance(text, str):
        raise TypeError(f"the text must be a str, got {type(text).__name__}")
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def system_text(text: str) -> dict[str, Any]:
    """A system message with one ``input_text`` part."""
    return {"type": "message", "role": "system", "content": [{"type": "input_text", "text": text}]}


def assistant_text(text: str) -> dict[str, Any]:
    """An assistant message with one ``output_text`` part (for seeding history)."""
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def function_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A function call item (for seeding history after a reconnect)."""
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def function_call_output(call_id: str, output: str) -> dict[str, Any]:
    """The result of a function call, sent back to the model before ``response.create``."""
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def item_text(item: Any) -> str:
    """The text of a message item: its text parts and audio transcripts, stripped and joined by spaces;
    '' when it has none."""
    if not isinstance(item, Mapping):
        return ""
    parts = item.get("content")
    if not isinstance(parts, list):
        return ""
    texts = []
    for part in parts:
        if isinstance(part, Mapping):
            text = part.get("text") if part.get("text") is not None else part.get("transcript")
            if isinstance(text, str) and text.strip():
                texts.append(text.strip())
    return " ".join(texts)
