"""The device contract every rtedge audio device keeps: a source pushes frames, a sink pulls them.

:class:`AudioSource` and :class:`AudioSink` hold what every device shares -- the rate and period, the
single-use ``start``, the bounded, idempotent ``stop`` and the thread it joins, the stats, and how a failing
callback is logged and counted (the guarantees are listed in :mod:`rtedge.audio.devices`).  The devices
build on them: the file, pipe and null devices in :mod:`rtedge.audio.devices`, the PortAudio ones in
:mod:`rtedge.audio._pyaudio`.

Owns: the base classes, :class:`DeviceStats` and :data:`STOP_TIMEOUT`.  Must not: import a device
implementation (both device modules import this one) or PyAudio.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from ..errors import AudioError

log = logging.getLogger("rtedge.audio")

#: seconds ``stop()`` waits for a device thread to end
STOP_TIMEOUT = 2.0

OnFrame = Callable[[np.ndarray], None]
Pull = Callable[[int], np.ndarray]


@attrs.define(eq=False)
class DeviceStats:
    """Counters a device keeps (its threads write them; read them any time)."""

    #: frames delivered to ``on_frame`` (silence included) or pulled with ``pull``
    frames: int = 0
    #: capture buffers PortAudio flagged as overflowed (audio was lost)
    overflows: int = 0
    #: playback periods PortAudio flagged as underflowed (a gap was heard)
    underruns: int = 0
    #: callback exceptions, bad ``pull`` results, stream failures, read/write errors
    errors: int = 0
    #: attempts to reopen a failed PortAudio stream, and how many succeeded
    reopen_attempts: int = 0
    reopens: int = 0


def _check_rate(rate: Any, frame_ms: Any, what: str) -> None:
    for name, value in (("rate", rate), ("frame_ms", frame_ms)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise AudioError(f"{what}: {name} must be a positive int, got {value!r}")
    if rate * frame_ms % 1000:
        raise AudioError(f"{what}: {frame_ms} ms at {rate} Hz is not a whole number of samples")


class _Device:
    """What sources and sinks share: rate, period, stats, failure state, single-use start."""

    def __init__(self, rate: int, frame_ms: int) -> None:
        _check_rate(rate, frame_ms, type(self).__name__)
        self.rate = rate
        self.frame_ms = frame_ms
        self.stats = DeviceStats()
        #: set when the device gave up (``error`` says why); it delivers nothing useful after that
        self.failed = threading.Event()
        self.error: AudioError | None = None
        self._started = False
        self._start_lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._callback_errors = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rate={self.rate})"

    @property
    def frame_samples(self) -> int:
        """Samples per frame: ``rate * frame_ms / 1000``."""
        return self.rate * self.frame_ms // 1000

    def _claim_start(self) -> None:
        with self._start_lock:
            if self._started or self._stop_event.is_set():
                raise AudioError(f"{self!r} was already started or stopped; devices are single-use")
            self._started = True

    def _release_start(self) -> None:
        with self._start_lock:
            self._started = False

    def _callback_failed(self, what: str) -> None:
        """Count and log a failed user callback (inside ``except``: with the traceback)."""
        self.stats.errors += 1
        self._callback_errors += 1
        level = logging.ERROR if self._callback_errors == 1 else logging.DEBUG
        log.log(level, "%r: %s; counted in stats.errors (repeats are logged at debug level)", self, what,
                exc_info=sys.exc_info()[0] is not None)

    def _fail(self, error: AudioError) -> None:
        self.stats.errors += 1
        if self.error is None:
            self.error = error
            text = str(error)
            log.error("%s", text if text.startswith(repr(self)) else f"{self!r}: {text}")  # named once
        self.failed.set()

    def _open(self) -> None:
        """Acquire resources before the thread starts (errors reach ``start()``)."""

    def _close(self) -> None:
        """Release resources; runs on the device thread as it ends."""

    def _run(self) -> None:
        raise NotImplementedError

    def _start_thread(self, name: str) -> None:
        """``_open()``, then run ``_run`` on a daemon thread (after ``_claim_start()``)."""
        try:
            self._open()
        except BaseException:
            self._release_start()
            raise
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the device and join its thread (idempotent, bounded by :data:`STOP_TIMEOUT`)."""
        self._stop_event.set()
        t = self._thread
        if t is None:
            self._close()  # never started: release what the constructor took (a RawSource's file)
        if t is None or t is threading.current_thread():
            return
        t.join(STOP_TIMEOUT)
        if t.is_alive():
            log.warning("%r: thread %s did not end within %.1f s (blocked in I/O?)",
                        self, t.name, STOP_TIMEOUT)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AudioSource(_Device):
    """Base of microphone-like devices.

    Attributes:
        rate: Hz of the frames delivered.
        frame_ms: the period; each frame holds ``frame_samples`` samples.
        finished: set when a finite source (file, pipe) reached its end; it then
            delivers silence frames, paced in real time, until stopped (so a
            server VAD can end the turn).  Never set for a microphone.
        stats: :class:`DeviceStats`.
    """

    def __init__(self, rate: int, frame_ms: int) -> None:
        super().__init__(rate, frame_ms)
        self.finished = threading.Event()
        self._on_frame: OnFrame | None = None

    def start(self, on_frame: OnFrame) -> None:
        """Begin calling ``on_frame(frame)`` once per period from the device's thread.

        Raises:
            AudioError: the device cannot be opened, or it was already started.
        """
        raise NotImplementedError

    def _deliver(self, frame: np.ndarray) -> None:
        self.stats.frames += 1
        try:
            self._on_frame(frame)  # type: ignore[misc]
        except BaseException:  # noqa: BLE001, B036 - the consumer's bug (sys.exit() too) must not stop the device
            self._callback_failed("on_frame() raised")


class AudioSink(_Device):
    """Base of speaker-like devices (pull model).

    Attributes:
        rate: Hz of the samples ``pull`` returns.
        frame_ms: the period; ``pull(n)`` is asked for ``n = frame_samples``
            samples (a Speaker converting rates asks for that many per call too).
        output_latency: seconds between a ``pull()`` and its sound leaving the
            device (PortAudio's output latency; 0 for files and pipes).
        stats: :class:`DeviceStats`.
    """

    def __init__(self, rate: int, frame_ms: int) -> None:
        super().__init__(rate, frame_ms)
        self._pull: Pull | None = None

    @property
    def output_latency(self) -> float:
        """Seconds between a ``pull()`` and its sound leaving the device (0 here)."""
        return 0.0

    def start(self, pull: Pull) -> None:
        """Begin calling ``pull(n)`` once per period; it must return exactly ``n`` int16 mono samples.

        Raises:
            AudioError: the device cannot be opened, or it was already started.
        """
        raise NotImplementedError

    def _pull_exact(self, n: int) -> np.ndarray:
        """``pull(n)``, checked: a failure or a wrong result counts an error and yields silence/padding."""
        self.stats.frames += 1
        try:
            out = self._pull(n)  # type: ignore[misc]
        except BaseException:  # noqa: BLE001, B036 - the consumer's bug (sys.exit() too) must not stop it
            self._callback_failed("pull() raised")
            return np.zeros(n, dtype=np.int16)
        if type(out) is np.ndarray and out.dtype == np.int16 and out.shape == (n,):
            return out
        got = f"{out.dtype} shape {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        self._callback_failed(f"pull({n}) must return {n} int16 mono samples, got {got}")
        if isinstance(out, np.ndarray) and out.dtype == np.int16 and out.ndim == 1:
            fixed = np.zeros(n, dtype=np.int16)
            fixed[: min(n, len(out))] = out[:n]
            return fixed
        return np.zeros(n, dtype=np.int16)
