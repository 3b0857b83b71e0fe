"""What a test server session received as input audio: counts, a checksum, arrival times.

One :class:`AudioRecord` per connection (``RealtimeServer.audio_records``) lets a test check that a
client's microphone audio arrived exactly once across several sessions (sample counts and a
SHA-256 of the decoded PCM, per session and concatenated) and how long the audio stream paused
when the client moved from one session to the next (:attr:`AudioRecord.arrivals`).

Owns: what a test session received.  Must not: do I/O.
"""

from __future__ import annotations

import hashlib
import threading
import time

import numpy as np

__all__ = ["AudioRecord"]


class AudioRecord:
    """Input audio one session accepted, decoded to int16 at the session's input rate.

    Attributes:
        rate: the input rate in Hz when the first audio arrived.
        samples: samples accepted.
        sha256: hex SHA-256 of the accepted samples (little-endian int16), in arrival order.
        arrivals: ``(monotonic time, samples)`` per ``input_audio_buffer.append``.
        first_at / last_at: monotonic times of the first and last append (None before any).
    """

    def __init__(self, keep_audio: bool = True) -> None:
        self._lock = threading.Lock()
        self._hash = hashlib.sha256()
        self._keep = keep_audio
        self._chunks: list[np.ndarray] = []
        self.rate = 0
        self.samples = 0
        self.arrivals: list[tuple[float, int]] = []
        self.first_at: float | None = None
        self.last_at: float | None = None

    def add(self, pcm: np.ndarray, rate: int) -> None:
        """Record one append's decoded samples (the session's handler thread)."""
        data = np.ascontiguousarray(pcm, dtype="<i2")
        now = time.monotonic()
        with self._lock:
            self.rate = self.rate or rate
            self._hash.update(data.tobytes())
            self.samples += int(data.size)
            self.arrivals.append((now, int(data.size)))
            self.first_at = self.first_at if self.first_at is not None else now
            self.last_at = now
            if self._keep:
                self._chunks.append(data.copy())

    @property
    def sha256(self) -> str:
        with self._lock:
            return self._hash.copy().hexdigest()

    def audio(self) -> np.ndarray:
        """The accepted samples (empty when the server runs with ``keep_audio=False``)."""
        with self._lock:
            return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)

    def __repr__(self) -> str:
        return f"<AudioRecord {self.samples} samples at {self.rate} Hz sha256={self.sha256[:12]}>"
