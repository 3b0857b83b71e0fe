"""The event type names a caller gives :meth:`Client.on`, :meth:`Client.off` and :meth:`Client.wait_for`.

Owns: the beta names of GA event types, the types rtedge knows but does not type, and the check of a name a
caller gives (:func:`named_event_type`).  Must not: do I/O or log (the dispatcher logs its warning).
"""

from __future__ import annotations

from collections.abc import Mapping

from .events import _CLASS_NAMES

#: the beta API's names of GA event types, which DashScope (and partly xAI) still send: those dialects rename
#: them on arrival, so :meth:`Client.on` and :meth:`Client.wait_for` match the GA name for them too
LEGACY_EVENT_TYPES: Mapping[str, str] = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
}
#: server event types rtedge has no class for but knows to exist (they arrive as UnknownServerEvent)
UNTYPED_EVENT_TYPES = frozenset({
    "conversation.item.input_audio_transcription.segment", "input_audio_buffer.dtmf_event_received",
    "mcp_list_tools.completed", "mcp_list_tools.failed", "mcp_list_tools.in_progress",
    "response.mcp_call.completed", "response.mcp_call.failed", "response.mcp_call.in_progress",
    "response.mcp_call_arguments.delta", "response.mcp_call_arguments.done",
})


def named_event_type(name: str) -> tuple[str, str | None]:
    """The type a caller of ``on``/``off``/``wait_for`` means by ``name``, and a warning when it looks like a
    mistake (``"respons.done"`` would otherwise wait for ever in silence).

    Returns ``(type, warning)``.  A beta name gives its GA name; any other name gives itself, so types newer
    than rtedge and a server's own extensions still work.  ``warning`` is None for ``"*"``, a known type and
    a name in a namespace of its own (``"bench.marker"``); it is a message for a name rtedge does not know
    that resembles a known type, has no dot, or is in a known namespace (``response.``, ``session.``...).
    """
    if name == "*" or name in _CLASS_NAMES or name in UNTYPED_EVENT_TYPES:
        return name, None
    if name in LEGACY_EVENT_TYPES:
        return LEGACY_EVENT_TYPES[name], None
    import difflib  # lazy: only an unknown name needs it, and import stays cheap

    known = [*_CLASS_NAMES, *UNTYPED_EVENT_TYPES]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
    namespace, dot, _ = name.partition(".")
    if not close and dot and not any(k.startswith(namespace + ".") for k in known):
        return name, None  # a server's own extension
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return name, (f"{name!r} is not an event type rtedge knows{hint}; it is matched only if a server "
                  "sends that exact type")
