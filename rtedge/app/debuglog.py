"""What ``--debug`` adds to a run: every server event of a turn in order with its timing, session config
confirmed, link transitions with their cause, and the numbers behind each event (a compact summary, never
audio or secrets).

:class:`EventLog` is an event hook (it runs on the receiver thread, so it only formats and logs); it does
nothing unless the ``rtedge`` logger is enabled for DEBUG.  ``--trace-wire`` (the wire trace of
:mod:`rtedge.transport.wiretrace`) is set up here too: :func:`add_trace_arg`, :func:`start_trace`.

Owns: the ``--debug`` event log and the ``--trace-wire`` switches.  Must not: block or do I/O beyond logging
on the receiver thread.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from ..errors import ConfigError
from ..protocol import events as ev
from ..protocol.dialects import get_dialect
from ..protocol.dialects.base import redact_url

log = logging.getLogger("rtedge.events")

#: events too frequent to log one by one: counted per response, and the first one logged
_STREAMED = ("response.output_audio.delta", "response.output_audio_transcript.delta",
             "response.output_text.delta", "response.function_call_arguments.delta",
             "conversation.item.input_audio_transcription.delta")
#: the turn's clock starts at these events
_TURN_START = ("input_audio_buffer.speech_started", "input_audio_buffer.committed", "response.created")


class EventLog:
    """Logs each server event at DEBUG as ``event TYPE (+MS ms in the turn): summary``.

    Args:
        client: the connected :class:`~rtedge.transport.client.Client` (its hook is added here).
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._turn_t0: float | None = None
        self._streamed: dict[str, int] = {}
        client._add_event_hook(self.on_event)

    def on_event(self, event: Any) -> None:
        """Receiver thread: format and log one event; never raises."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        try:
            self._log(event)
        except Exception:  # noqa: BLE001 - debug output must not break the session
            log.debug("could not describe %s", getattr(event, "type", event), exc_info=True)

    def _log(self, event: Any) -> None:
        now = time.monotonic()
        kind = str(getattr(event, "type", type(event).__name__))
        if kind in _TURN_START and (self._turn_t0 is None or kind == "input_audio_buffer.speech_started"):
            self._turn_t0 = now
        if kind in _STREAMED:
            n = self._streamed.get(kind, 0)
            self._streamed[kind] = n + 1
            if n:
                return  # the first one is logged (it carries the latency); the count comes with .done
        at = "" if self._turn_t0 is None else f" (+{(now - self._turn_t0) * 1000:.0f} ms in the turn)"
        log.debug("event %s%s%s", kind, at, _summary(event, self._counts(kind)))
        if kind == "response.done":
            self._turn_t0 = None

    def _counts(self, kind: str) -> str:
        if not kind.endswith(".done"):
            return ""
        counted = {k: n for k, n in self._streamed.items() if n}
        if kind == "response.done":
            self._streamed.clear()
            return "; " + ", ".join(f"{n} {k.rsplit('.', 2)[-2]} deltas" for k, n in counted.items()) \
                if counted else ""
        return ""


def _summary(event: Any, extra: str) -> str:
    """The few fields that explain an event (never payloads)."""
    parts: list[str] = []
    if isinstance(event, ev.SessionCreated | ev.SessionUpdated):
        parts.append(session_summary(getattr(event, "session", {}) or {}))
    elif isinstance(event, ev.ResponseDone):
        parts.append(f"status {event.status}")
    elif isinstance(event, ev.Error):
        parts.append(f"{event.error.code or event.error.type}: {event.error.message}")
    elif isinstance(event, ev.Reconnecting):
        parts.append(f"attempt {event.attempt} in {event.delay:.2f} s; cause: {event.cause}")
    elif isinstance(event, ev.Reconnected):
        parts.append(f"attempt {event.attempt}, down {event.downtime:.2f} s, {event.replayed_items} items "
                     "re-seeded")
    elif isinstance(event, ev.ConnectionLost):
        parts.append(f"close code {event.code} {event.reason!r}")
    elif isinstance(event, ev.GaveUp):
        parts.append(f"cause: {event.cause}")
    for name in ("response_id", "item_id", "audio_start_ms", "audio_end_ms"):
        value = getattr(event, name, None)
        if value not in (None, ""):
            parts.append(f"{name} {value}")
    text = ", ".join(p for p in parts if p)
    return (": " + text if text else "") + extra


def session_summary(session: Any) -> str:
    """``voice, formats, turn detection, transcription`` of a GA-shaped session dict."""
    if not isinstance(session, dict):
        return ""
    audio = session.get("audio") or {}
    a_in, a_out = audio.get("input") or {}, audio.get("output") or {}
    td = a_in.get("turn_detection")
    fmt_in, fmt_out = a_in.get("format") or {}, a_out.get("format") or {}
    return (f"model {session.get('model')}, voice {a_out.get('voice')}, in {fmt_in.get('type')}@"
            f"{fmt_in.get('rate')}, out {fmt_out.get('type')}@{fmt_out.get('rate')}, turn detection "
            f"{td.get('type') if isinstance(td, dict) else td}, transcription "
            f"{(a_in.get('transcription') or {}).get('model')}")


def describe_connect(config: Any) -> str:
    """``provider URL model`` of a :class:`~rtedge.app.settings.Config`, redacted, for the connect log line."""
    p = config.provider
    try:
        url = redact_url(get_dialect(p.name).url(p.model or None, p.url or None))
    except Exception:  # noqa: BLE001 - a bad URL is reported by connect() itself
        url = redact_url(p.url or "?")
    return f"{p.name} {url}"


def add_trace_arg(p: argparse.ArgumentParser) -> None:
    """``--trace-wire FILE`` (see :mod:`rtedge.transport.wiretrace`)."""
    p.add_argument("--trace-wire", metavar="FILE", help="append every WebSocket message, both ways, to FILE "
                   "as JSON lines (audio replaced by its length, no secrets); also $RTEDGE_TRACE_WIRE")


def start_trace(path: str) -> None:
    """Start the wire trace of ``--trace-wire``.

    Raises:
        ConfigError: the file cannot be opened (exit 2, before anything connects).
    """
    # lazy: start-up cost of the CLI (rtedge.transport loads websocket-client)
    from ..transport import wiretrace

    try:
        wiretrace.start(path)
    except OSError as exc:
        raise ConfigError(f"--trace-wire {path}: cannot write ({exc.strerror or exc})") from None


def stop_trace() -> None:
    """Close the wire trace if one was started (without importing the transport when none was)."""
    wiretrace = sys.modules.get("rtedge.transport.wiretrace")
    if wiretrace is not None:
        wiretrace.stop()
