"""What ``rtedge --debug serve`` logs: each event a local test server receives and sends, one DEBUG line
per event on the ``rtedge.testing`` logger, so a user can watch what their own client puts on the wire.

Streamed types (audio appends, audio and text deltas) are logged by their first event and then counted:
``rtedge-testserver-conn0: received 149 more input_audio_buffer.append`` when the run ends (an event of
another type in the same direction, or the connection's end).  Events are scrubbed as the wire trace
scrubs them (:func:`rtedge.transport.wiretrace.scrub`: base64 audio and images read ``<audio: N bytes>``,
credential fields ``<redacted>``); a message that is no JSON object shows its length only; a line is cut
at :data:`MAX_LINE` characters.

Owns: the servers' per-event debug lines.  Must not: log media payloads or credentials, or do any work
when the logger is not enabled for DEBUG.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

#: event types sent many times a second: the first of a run is logged, the rest counted
STREAMED = frozenset({
    "input_audio_buffer.append", "response.output_audio.delta", "response.audio.delta",
    "response.output_audio_transcript.delta", "response.audio_transcript.delta",
    "response.output_text.delta", "response.text.delta", "response.function_call_arguments.delta",
    "conversation.item.input_audio_transcription.delta", "transcription.delta",
})
#: a logged event is cut to this many characters
MAX_LINE = 300


class WireLog:
    """Per-connection, per-direction debug lines for a test server's events (thread-safe).

    Args:
        log: the logger written to (at DEBUG).
    """

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._lock = threading.Lock()
        #: (connection, direction) -> {streamed type: events since the last other event}
        self._runs: dict[tuple[str, str], dict[str, int]] = {}

    def event(self, conn: str, direction: str, event: dict[str, Any]) -> None:
        """Log one event ``direction`` (``"received"`` or ``"sent"``) on connection ``conn``."""
        if not self._log.isEnabledFor(logging.DEBUG):
            return
        kind = event.get("type")
        key = (conn, direction)
        with self._lock:  # held while logging: a run's count is never logged after the next event
            if isinstance(kind, str) and kind in STREAMED:
                runs = self._runs.setdefault(key, {})
                runs[kind] = runs.get(kind, 0) + 1
                if runs[kind] > 1:
                    return
            else:
                self._end_runs(key)
            self._log.debug("%s: %s %s", conn, direction, describe(event))

    def flush(self, conn: str) -> None:
        """The connection ended: log the counts of its unfinished runs."""
        if not self._log.isEnabledFor(logging.DEBUG):
            return
        with self._lock:
            for key in [k for k in self._runs if k[0] == conn]:
                self._end_runs(key)

    def _end_runs(self, key: tuple[str, str]) -> None:
        more = [f"{n - 1} more {kind}" for kind, n in self._runs.pop(key, {}).items() if n > 1]
        if more:
            self._log.debug("%s: %s %s", key[0], key[1], ", ".join(more))


def describe(event: dict[str, Any]) -> str:
    """``type {fields as JSON}``, scrubbed as the wire trace scrubs events, cut to :data:`MAX_LINE`; a
    record without a type (a server's note of a message that was no JSON object) shows its length only."""
    kind = event.get("type")
    if not isinstance(kind, str):
        return f"(no event: {len(json.dumps(event, default=repr))} characters)"
    # importing rtedge.transport loads the whole client (70 ms of CPU) into a server's start-up
    from rtedge.transport.wiretrace import scrub  # lazy: start-up cost; only --debug lines need it

    rest = {k: v for k, v in scrub(event).items() if k != "type"}
    text = f"{kind} {json.dumps(rest, default=repr, ensure_ascii=False)}"
    return text if len(text) <= MAX_LINE else text[:MAX_LINE - 3] + "..."
