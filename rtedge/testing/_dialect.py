"""What the provider dialects of the test server share: the GA session behind a translator.

A provider's session (``_qwen``, ``_xai``) is the GA :class:`ServerSession` with a translator on both
sides, so the emulation (VAD, responses, audio pacing, cancels, tools) is shared and only the wire differs.
:class:`DialectSession` is that translator's common part:

* **In**: the client event types the provider accepts (``client_events``, a subset of the GA ones plus the
  provider's own, checked by the GA dispatcher with the same messages); an unknown type is refused with
  the provider's list.  Each provider validates its own ``session.update`` shape, folds it into the
  GA-shaped config and hands it to :meth:`ServerSession._apply_session`.
* **Out**: every GA event goes through :meth:`DialectSession._translate`: dropped when the provider
  does not send it (``dropped``), renamed (``renames``), without ``obfuscation``; a provider then
  rewrites what differs (session objects, items, responses, usage).  :meth:`DialectSession.inject`
  sends a test's event as given, in the provider's spelling.

Owns: what the dialect sessions share.  Must not: hold a provider's protocol difference (those stay in
the provider's module, where a reader compares them with the provider's documentation).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rtedge.testing._config import ClientError, string
from rtedge.testing._session import CLIENT_EVENTS, ServerSession

if TYPE_CHECKING:
    from rtedge.testing.server import RealtimeServer

__all__ = ["DialectSession", "accepted_events", "beta_content", "nested_tools", "voice_name"]

_EventSpec = tuple[tuple[str, ...], tuple[str, ...]]


def accepted_events(kinds: Sequence[str],
                    own: Mapping[str, _EventSpec] | None = None) -> dict[str, _EventSpec]:
    """The ``client_events`` table of a provider: ``kinds`` in that order, each with the GA fields unless
    ``own`` (the provider's own events) gives them."""
    own = own or {}
    return {kind: own[kind] if kind in own else CLIENT_EVENTS[kind] for kind in kinds}


def voice_name(value: Any, path: str) -> str:
    """A voice as DashScope and xAI take it: any non-empty string."""
    name = string(value, path)
    if not name:
        raise ClientError("invalid_value", "Invalid value: ''. The voice cannot be empty.", path)
    return name


def nested_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GA function tools in the Chat-Completions shape ``{"type": "function", "function": {...}}``;
    other tools (xAI's ``web_search``...) as they are."""
    return [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}
            if t.get("type") == "function" else copy.deepcopy(t) for t in tools]


def beta_content(parts: list[Any]) -> list[Any]:
    """An assistant item's GA content types -> the beta names (``output_audio`` -> ``audio``,
    ``output_text`` -> ``text``)."""
    return [{**p, "type": p["type"][len("output_"):]}
            if isinstance(p, dict) and p.get("type") in ("output_audio", "output_text") else p
            for p in parts]


class DialectSession(ServerSession):
    """One connection speaking a provider's dialect over the GA emulation (see the module docstring)."""

    #: the model of a connection that names none, while the server's default is the GA one
    default_model: ClassVar[str] = ""
    #: GA server event type -> the provider's
    renames: ClassVar[Mapping[str, str]] = {}
    #: GA server event types the provider never sends
    dropped: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, server: RealtimeServer, model: str, send: Callable[[str], None],
                 close: Callable[[int, str], None], name: str) -> None:
        if model == "gpt-realtime" and server.default_model == "gpt-realtime":  # the GA default is not ours
            model = self.default_model
        super().__init__(server, model, send, close, name)
        self.model = model

    def emit(self, event: dict[str, Any]) -> None:
        out = self._translate(event)
        if out is not None:
            super().emit(out)

    def inject(self, event: dict[str, Any]) -> None:
        """Send a test's event as given (already in the provider's spelling)."""
        with self.cond:
            super().emit(copy.deepcopy(event))

    def _translate(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """A GA event in the provider's names, or ``None`` when the provider does not send it; a
        provider extends this with what else differs."""
        kind = event["type"]
        if kind in self.dropped:
            return None
        out = {k: v for k, v in event.items() if k != "obfuscation"}
        out["type"] = self.renames.get(kind, kind)
        return out
