"""What a fresh server session needs to continue a conversation: its history as creatable items.

After a reconnect (or a proactive recycle before the provider's session
limit) the new server session knows nothing.  :func:`history_items` turns
the conversation items the old session reported into items a client may
create: user and assistant messages as text (audio cannot be re-sent, so
their transcripts stand in), function calls and their outputs as they were.
Items with nothing to say (audio without a transcript) are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import items as mk
from ._state import SessionState


def replay_item(item: Mapping[str, Any], state: SessionState | None = None) -> dict[str, Any] | None:
    """The creatable form of one reported item, or None when it cannot or need not be replayed."""
    kind = item.get("type")
    if kind == "message":
        text = mk.item_text(item)
        if not text and state is not None and isinstance(item.get("id"), str):
            out = state.output_items.get(item["id"])
            text = "".join(out.text.values()).strip() if out is not None else ""
        role = item.get("role")
        if not text or role not in ("user", "assistant", "system"):
            return None
        return {"user": mk.user_text, "assistant": mk.assistant_text, "system": mk.system_text}[role](text)
    if kind == "function_call":
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            return None
        arguments = item.get("arguments")
        if state is not None and call_id in state.function_calls:
            arguments = state.function_calls[call_id].arguments
        return mk.function_call(call_id, name, arguments if isinstance(arguments, str) else "{}")
    if kind == "function_call_output":
        call_id, output = item.get("call_id"), item.get("output")
        if isinstance(call_id, str) and isinstance(output, str):
            return mk.function_call_output(call_id, output)
    return None


def history_items(state: SessionState) -> list[dict[str, Any]]:
    """The conversation so far, oldest first, as items to create in a new session."""
    out = []
    for item in state.items.values():
        replay = replay_item(item, state)
        if replay is not None:
            out.append(replay)
    return out
