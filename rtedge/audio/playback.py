"""The playback buffer and the clock of what has really been played.

Theory of operation
-------------------
Assistant audio arrives on the receiver thread (:meth:`PlaybackBuffer.push`)
and leaves on the speaker's thread (:meth:`PlaybackBuffer.pull`), which asks
for exactly one device period each time.  The buffer counts, per output item
and content index, the samples *handed to the device*.  What the listener
has really heard *so far* is that count minus the device's output latency
(samples handed over but still in the sound card's queue), never below zero:
:meth:`played_ms`.  Wall-clock or byte-count estimates overshoot, and the
model then "remembers" words the user never heard.

:meth:`flush` empties the queue at once (barge-in), so the very next
``pull`` returns silence: the speaker goes quiet once the device has played
what it already holds.  A flush cannot reach into the device, so everything
handed over is heard: the position it returns (what
``conversation.item.truncate`` needs) is the handed count, with no latency
subtracted (measured through PulseAudio: subtracting it truncated 30-40 ms
short).  It returns None when nothing was being played (nothing to truncate).
Which item counts as cut and how much of it as heard are the rules of
:mod:`rtedge.protocol.interruption` (:func:`~rtedge.protocol.interruption.cut_item`,
:func:`~rtedge.protocol.interruption.heard_ms`), shared with the tick engine.

One lock guards everything; both sides hold it only for array slicing.

Owns: the playback queue and the played clock (samples handed out per item).  Must not: decide what a barge-in
sends (:mod:`rtedge.protocol.interruption` does).
"""

from __future__ import annotations

import threading
import time
from collections import deque

import attrs
import numpy as np

from ..errors import AudioError
from ..protocol import interruption

#: after the last audio left the buffer, the speaker counts as playing for its latency plus this (s)
_PERIOD_SLACK = 0.05


@attrs.frozen
class PlaybackPosition:
    """Where an item stood when playback was flushed.

    Attributes:
        item_id: the assistant item that was playing.
        content_index: its content part.
        played_ms: audio that is heard in the end, in ms: everything handed to the device (the
            flush does not reach into the device, so what it holds still plays out).
        received_ms: audio of that item pushed into the buffer so far, in ms.
        dropped_ms: queued audio that was thrown away by the flush, in ms.
    """

    item_id: str
    content_index: int
    played_ms: float
    received_ms: float
    dropped_ms: float


@attrs.define(eq=False)
class PlaybackStats:
    pushed_samples: int = 0
    played_samples: int = 0  #: samples of audio (not padding) handed to the device
    silence_samples: int = 0  #: zero samples handed because the queue was empty
    underruns: int = 0  #: pulls that found the queue empty mid-item (audio arriving too slowly)
    flushes: int = 0
    dropped_samples: int = 0
    overflow_samples: int = 0  #: oldest audio dropped because the buffer exceeded max_seconds


class PlaybackBuffer:
    """FIFO of int16 mono audio at ``rate`` with a per-item played clock.  Thread-safe.

    Args:
        rate: the device sample rate (Hz) of everything pushed and pulled.
        output_latency: seconds between ``pull`` and the sound leaving the device
            (PortAudio's output latency; 0 for files).  May be updated later via the attribute.
        max_seconds: bound on queued audio; beyond it the oldest is dropped and counted.
    """

    def __init__(self, rate: int, *, output_latency: float = 0.0, max_seconds: float = 300.0) -> None:
        if rate <= 0:
            raise AudioError(f"playback rate must be positive, got {rate}")
        self.rate = rate
        self.output_latency = output_latency
        self.max_samples = int(max_seconds * rate)
        self.stats = PlaybackStats()
        self._lock = threading.Lock()  # guards every attribute below
        self._queue: deque[tuple[str, int, np.ndarray]] = deque()
        self._offset = 0  # samples of the head segment already handed out
        self._queued = 0
        self._handed: dict[tuple[str, int], int] = {}
        self._received: dict[tuple[str, int], int] = {}
        self._current: tuple[str, int] | None = None  # the item whose audio was handed out last
        self._last_audio_pull = 0.0  # monotonic time of the last pull that handed out audio

    # ---------------------------------------------------------------------------------------------- producer
    def push(self, item_id: str, content_index: int, samples: np.ndarray) -> None:
        """Queue audio of an item (int16 mono at ``rate``)."""
        if samples.dtype != np.int16 or samples.ndim != 1:
            raise AudioError(f"playback audio must be 1-D int16, got {samples.dtype} {samples.shape}")
        if not len(samples):
            return
        key = (item_id, content_index)
        with self._lock:
            self._queue.append((item_id, content_index, samples))
            self._queued += len(samples)
            if key not in self._received:
                _forget_oldest(self._received, ITEM_WINDOW - 1)
                _forget_oldest(self._handed, ITEM_WINDOW - 1)
            self._received[key] = self._received.get(key, 0) + len(samples)
            self.stats.pushed_samples += len(samples)
            while self._queued > self.max_samples and self._queue:
                self._drop_head_locked()

    def _drop_head_locked(self) -> None:
        _, _, seg = self._queue.popleft()
        lost = len(seg) - self._offset
        self._queued -= lost
        self.stats.overflow_samples += lost
        self._offset = 0

    # ---------------------------------------------------------------------------------------------- consumer
    def pull(self, n: int) -> np.ndarray:
        """Exactly ``n`` samples for the device: queued audio, then zeros."""
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        with self._lock:
            while filled < n and self._queue:
                item_id, ci, seg = self._queue[0]
                take = min(n - filled, len(seg) - self._offset)
                out[filled:filled + take] = seg[self._offset:self._offset + take]
                filled += take
                self._offset += take
                key = (item_id, ci)
                self._handed[key] = self._handed.get(key, 0) + take
                self._current = key
                if self._offset == len(seg):
                    self._queue.popleft()
                    self._offset = 0
            self._queued -= filled
            self.stats.played_samples += filled
            self.stats.silence_samples += n - filled
            if filled:
                self._last_audio_pull = time.monotonic()
                if filled < n:
                    self.stats.underruns += 1
        return out

    # ---------------------------------------------------------------------------------------------- clock
    def _latency_samples(self) -> int:
        return int(self.output_latency * self.rate)

    def played_ms(self, item_id: str, content_index: int = 0) -> float:
        """Milliseconds of this item really played: handed to the device minus what is still in it."""
        with self._lock:
            return self._played_ms_locked((item_id, content_index))

    def _played_ms_locked(self, key: tuple[str, int]) -> float:
        handed = self._handed.get(key, 0)
        in_device = 0
        if key == self._current:
            # right after a pull the device holds ``output_latency`` of audio; it drains in real time
            drained = int((time.monotonic() - self._last_audio_pull) * self.rate)
            in_device = max(0, self._latency_samples() - drained)
        return 1000.0 * max(0, handed - in_device) / self.rate

    def received_ms(self, item_id: str, content_index: int = 0) -> float:
        with self._lock:
            return 1000.0 * self._received.get((item_id, content_index), 0) / self.rate

    @property
    def queued_ms(self) -> float:
        """Audio waiting to be handed to the device, in ms."""
        return 1000.0 * self._queued / self.rate

    def is_playing(self) -> bool:
        """True while audio is queued or still sounding in the device."""
        with self._lock:
            if self._queue:
                return True
            return time.monotonic() - self._last_audio_pull < self.output_latency + _PERIOD_SLACK

    # ---------------------------------------------------------------------------------------------- barge-in
    def flush(self, *, streaming: str | None = None) -> PlaybackPosition | None:
        """Drop all queued audio now; the next ``pull`` returns silence.

        Args:
            streaming: the item id whose audio is still arriving (its response is active), if any.
                With just-in-time streaming the queue is often empty between deltas; that item
                still counts as playing.

        Returns:
            The position of the item that was playing (or about to play), or None when nothing was
            queued or still sounding (nothing was interrupted).
        """
        with self._lock:
            sounding = self._current is not None and (
                time.monotonic() - self._last_audio_pull < self.output_latency
                or (streaming is not None and self._current[0] == streaming))
            head = (self._queue[0][0], self._queue[0][1]) if self._queue else None
            key = interruption.cut_item(self._current, head, sounding=sounding)
            dropped = self._queued
            self._queue.clear()
            self._queued = 0
            self._offset = 0
            self.stats.flushes += 1
            self.stats.dropped_samples += dropped
            if key is None:
                return None
            # the device still plays what it holds (is_playing stays true until it has): all handed
            # audio is heard, and a second flush finds nothing playing
            self._current = None
            played = interruption.heard_ms(self._handed.get(key, 0), self.rate)
            return PlaybackPosition(item_id=key[0], content_index=key[1], played_ms=played,
                                    received_ms=1000.0 * self._received.get(key, 0) / self.rate,
                                    dropped_ms=1000.0 * dropped / self.rate)


#: items whose per-item counters (received, handed out) a PlaybackBuffer keeps; older ones are forgotten
ITEM_WINDOW = 64


def _forget_oldest(counts: dict[tuple[str, int], int], keep: int) -> None:
    while len(counts) > keep:
        del counts[next(iter(counts))]
