"""The session's input audio buffer, with server VAD attached.

Theory of operation
-------------------
Appended audio is decoded to int16 at the input format's rate and kept as a
list of chunks.  Every sample has an absolute position counted from the start
of the session's input audio (``total`` is the position of the next sample),
which is what ``audio_start_ms`` / ``audio_end_ms`` report.  ``start`` is the
position of the oldest sample still held.

* With server VAD, every append is also fed to the detector, and the boundary
  events are returned to the session.  Outside speech, old audio that can no
  longer become part of an utterance (older than the prefix padding plus a
  margin) is dropped, so a session streaming silence for an hour stays small.
* ``take(begin, end)`` hands out ``[begin, end)`` for a user item and drops
  everything before ``end``; the rest stays for the next turn.
* ``since_commit`` counts samples appended since the last commit or clear; it
  drives the "buffer too small" (< 100 ms) check.

Owns: the server-side input audio buffer.  Must not: do I/O.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from rtedge.testing._audio import WireFormat
from rtedge.testing._vad import EnergyVad, VadEvent

__all__ = ["InputBuffer"]

KEEP_MARGIN_MS = 200
TRIM_SLACK_S = 5


class InputBuffer:
    """Input audio since the last commit, with optional VAD.

    Args:
        fmt: The session's input wire format.
        turn_detection: The session's ``turn_detection`` object or ``None``.
    """

    def __init__(self, fmt: WireFormat, turn_detection: Mapping[str, Any] | None) -> None:
        self.fmt = fmt
        self.chunks: list[np.ndarray] = []
        self.start = 0
        self.total = 0
        self.since_commit = 0
        self.vad: EnergyVad | None = None
        self.configure(fmt, turn_detection)

    def configure(self, fmt: WireFormat, turn_detection: Mapping[str, Any] | None) -> None:
        """Apply a new format or turn detection; a format change empties the buffer."""
        if (fmt.kind, fmt.rate) != (self.fmt.kind, self.fmt.rate):
            self.fmt = fmt
            self.clear()
        self.vad = EnergyVad(turn_detection, fmt.rate) if turn_detection else None
        if self.vad is not None:
            self.vad.reset(self.total)
            self.vad.floor = self.start

    @property
    def in_speech(self) -> bool:
        return self.vad is not None and self.vad.in_speech

    def ms(self, position: int) -> int:
        """Milliseconds since the start of the session's input audio."""
        return position * 1000 // self.fmt.rate

    def append(self, samples: np.ndarray) -> list[VadEvent]:
        """Add samples; returns VAD boundaries found (empty without VAD)."""
        if samples.size:
            self.chunks.append(samples)
            self.total += int(samples.size)
            self.since_commit += int(samples.size)
        if self.vad is None:
            return []
        events = self.vad.feed(samples)
        if not self.vad.in_speech:
            self._trim()
        return events

    def _trim(self) -> None:
        assert self.vad is not None
        keep = self.vad.prefix + self.fmt.ms_to_samples(KEEP_MARGIN_MS) + self.vad.frame * 4
        if self.total - self.start > keep + TRIM_SLACK_S * self.fmt.rate:
            self._drop_before(self.total - keep)
            self.vad.floor = self.start

    def _joined(self) -> np.ndarray:
        if len(self.chunks) != 1:
            self.chunks = [np.concatenate(self.chunks)] if self.chunks else [np.zeros(0, dtype=np.int16)]
        return self.chunks[0]

    def _drop_before(self, position: int) -> None:
        position = min(max(position, self.start), self.total)
        data = self._joined()
        self.chunks = [data[position - self.start :]]
        self.start = position

    def take(self, begin: int, end: int) -> np.ndarray:
        """Samples ``[begin, end)`` (clamped to what is held); drops all before ``end``."""
        data = self._joined()
        lo = min(max(begin, self.start), self.total) - self.start
        hi = min(max(end, self.start), self.total) - self.start
        out = data[lo:hi].copy()
        self._drop_before(end)
        self.since_commit = self.total - self.start
        if self.vad is not None:
            self.vad.floor = self.start
        return out

    def take_all(self) -> np.ndarray:
        """Everything held (a manual commit); resets VAD and the commit counter."""
        out = self.take(self.start, self.total)
        self.since_commit = 0
        if self.vad is not None:
            self.vad.reset(self.total)
            self.vad.floor = self.start
        return out

    def clear(self) -> None:
        """Drop all held audio and any speech in progress."""
        self.chunks = []
        self.start = self.total
        self.since_commit = 0
        if self.vad is not None:
            self.vad.reset(self.total)

