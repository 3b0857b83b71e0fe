"""Audio sources (microphone-like) and sinks (speaker-like).

A **source** pushes: ``start(on_frame)`` makes the device call
``on_frame(frame)`` once per period (``frame_ms``, 20 ms by default) with a
1-D int16 mono array of exactly ``frame_samples = rate * frame_ms / 1000``
samples.  A **sink** pulls: ``start(pull)`` makes the device call ``pull(n)``
once per period and it must get exactly ``n`` int16 mono samples back (the
playback buffer fills silence itself).

=================  =====================================================
``Microphone``     PortAudio capture (callback mode), any device rate/channels
``Speaker``        PortAudio playback (callback mode)
``WavSource``      a WAV file, paced like a microphone, then silence
``WavSink``        appends what it pulls to a WAV file
``RawSource``      raw s16le mono from a pipe (``arecord ... | rtedge``)
``RawSink``        raw s16le mono to a pipe (``rtedge ... | aplay ...``)
``NullSource``     silence forever
``NullSink``       pulls and discards
=================  =====================================================

Guarantees
----------
* Each device starts at most one thread of its own: a daemon named
  ``rtedge-mic`` (sources) or ``rtedge-speaker`` (sinks).  For the file, pipe
  and null devices that thread calls ``on_frame``/``pull``; for
  ``Microphone``/``Speaker`` PortAudio's own thread calls them, and the
  ``rtedge-*`` thread watches the stream and reopens it after a failure.
* Callbacks come from one thread at a time, in order, and must return quickly
  (a slow one delays file devices and glitches PortAudio ones).  An exception
  from ``on_frame`` or ``pull`` is logged (the first one with its traceback),
  counted in ``stats.errors``, and the device goes on; a failed ``pull`` plays
  silence.
* ``stop()`` is idempotent and bounded: it sets the stop event, which cuts
  every pacing wait short, then joins the thread for at most
  :data:`STOP_TIMEOUT` seconds (a thread still blocked after that, say in a
  write to a stalled pipe, is logged).  Once it returns no callback runs any
  more.  Called from the device's own callback it does not wait: the thread
  ends as soon as the callback returns.
* Devices are single-use: ``start()`` again after ``start()`` raises
  :class:`~rtedge.errors.AudioError` (a ``start()`` that raised may be retried).
* Paced devices keep absolute deadlines (``t0 + k * frame_ms``), so their
  pace does not drift with the time the callbacks take.
* ``import rtedge.audio.devices`` never imports PyAudio; only ``Microphone``,
  ``Speaker`` and ``list_devices`` load it when used.

Owns: the file, pipe and null devices and the CLI's device specs (:func:`open_source`, :func:`open_sink`);
the base classes are :mod:`rtedge.audio._device`'s, the PortAudio devices :mod:`rtedge.audio._pyaudio`'s
(re-exported here).  Must not: import PyAudio at import time, or call back into a client.
"""

from __future__ import annotations

import fcntl
import io
import logging
import math
import os
import select
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np

from ..errors import AudioError
from .wavio import WavWriter, check_writable, read_wav
from .clock import ClockCheck
from . import codec, file_rate_problem
from ._device import STOP_TIMEOUT, AudioSink, AudioSource, DeviceStats, OnFrame, Pull
from ._pyaudio import DeviceInfo, Microphone, Speaker, list_devices  # PyAudio itself loads on first use

__all__ = [
    "STOP_TIMEOUT", "AudioSink", "AudioSource", "DeviceInfo", "DeviceStats", "Microphone", "NullSink",
    "NullSource", "RawSink", "RawSource", "Speaker", "WavSink", "WavSource", "list_devices", "open_sink",
    "open_source",
]

log = logging.getLogger("rtedge.audio")

# --------------------------------------------------------------------------- paced devices


#: a pipe found ahead of real time is read this many times faster than real time while its lead could be a
#: recorder's backlog (see ``_ThreadedSource._deliver_content``) ...
DRAIN_SPEED = 1.5
#: ... that is, up to what the pipe holds plus this (the recorder's own buffer)
BACKLOG_MARGIN_S = 0.25


class _Pacer:
    """Absolute deadlines ``t0 + k * period``; every wait ends early when ``stop`` is set."""

    #: more than this many periods behind (the process was suspended...): start a new schedule
    MAX_LAG_PERIODS = 10

    def __init__(self, period: float, stop: threading.Event, realtime: bool) -> None:
        self.period = period
        self.realtime = realtime
        self._stop = stop
        self._t0 = time.monotonic()
        self._k = 0

    def restart(self) -> None:
        """Count deadlines from now."""
        self._t0 = time.monotonic()
        self._k = 0

    def wait(self) -> bool:
        """Wait for the next deadline (not at all unless realtime); False once stopped."""
        self._k += 1
        if not self.realtime:
            return not self._stop.is_set()
        delay = self._t0 + self._k * self.period - time.monotonic()
        if delay < -self.MAX_LAG_PERIODS * self.period:
            self.restart()
            delay = 0.0
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()


class _ThreadedSource(AudioSource):
    """A source whose thread delivers ``_content()`` frame by frame, then paced silence."""

    #: unpaced, the pace is set by whoever writes the stream (a pipe): its clock is checked.  A source
    #: whose content is all there (a WAV file) and that was asked not to pace is read as fast as it goes.
    _writer_paced = False

    def __init__(self, rate: int, frame_ms: int, realtime: bool) -> None:
        super().__init__(rate, frame_ms)
        self.realtime = realtime

    def _content(self) -> Iterator[np.ndarray]:
        """Frames of exactly ``frame_samples``; return at the end (or once stopped)."""
        raise NotImplementedError

    def start(self, on_frame: OnFrame) -> None:
        self._claim_start()
        self._on_frame = on_frame
        self._start_thread("rtedge-mic")

    def _run(self) -> None:
        pacer = _Pacer(self.frame_ms / 1000, self._stop_event, self.realtime)
        try:
            if not self._deliver_content(pacer) or self._stop_event.is_set():
                return
            self.finished.set()
            pacer.realtime = True  # silence is always paced, or it would flood the consumer
            pacer.period = self.frame_ms / 1000
            pacer.restart()
            while pacer.wait():
                self._deliver(np.zeros(self.frame_samples, dtype=np.int16))
        finally:
            self._close()

    def _deliver_content(self, pacer: _Pacer) -> bool:
        """Deliver ``_content()``; False if stopped meanwhile.  A read error ends it like its end does.

        An unpaced source (a pipe) ahead of real time is detected by a
        :class:`~rtedge.audio.clock.ClockCheck`, reported once and paced from then on.  While its lead
        (audio delivered minus time since the first frame) could still be a live recorder's backlog (what
        ``arecord`` wrote into the pipe before rtedge read it: at most what the pipe holds,
        :meth:`_backlog_limit_s`), it is read at :data:`DRAIN_SPEED` times real time, so the backlog
        drains and the recorder then sets the pace (paced to real time, it stayed as latency); a lead
        beyond that is a file's, paced to real time from then on.
        """
        clock = ClockCheck(repr(self), self.rate, pacing_text="pacing it (faster than real time while that "
                           "could be a recorder's backlog draining)") \
            if self._writer_paced and not pacer.realtime else None
        drain: ClockCheck | None = None  # the check, kept while the lead could be a recorder's backlog
        limit = 0.0
        try:
            for frame in self._content():
                if not pacer.wait():
                    return False
                self._deliver(frame)
                if clock is not None and clock.tick(len(frame)) >= 0 and clock.pacing:
                    limit = self._backlog_limit_s()
                    drain = clock if limit > 0 else None
                    clock, pacer.realtime = None, True
                    pacer.period /= DRAIN_SPEED if drain is not None else 1.0
                    pacer.restart()
                elif drain is not None and drain.tick(len(frame)) >= 0 \
                        and drain.lead_s(time.monotonic()) > limit + BACKLOG_MARGIN_S:
                    log.debug("%r: ahead by more than a pipe holds: a file, paced to real time", self)
                    drain, pacer.period = None, self.frame_ms / 1000
                    pacer.restart()
        except AudioError as exc:
            self._fail(exc)
        return True

    def _backlog_limit_s(self) -> float:
        """Seconds of audio a live writer's backlog can hold (0: no live writer, e.g. a regular file)."""
        return 0.0


class _ThreadedSink(AudioSink):
    """A sink whose thread pulls a frame per period and hands it to ``_consume()``."""

    def __init__(self, rate: int, frame_ms: int, realtime: bool) -> None:
        super().__init__(rate, frame_ms)
        self.realtime = realtime

    def _consume(self, frame: np.ndarray) -> None:
        """Do something with one pulled frame; raise AudioError to fail the sink."""

    def start(self, pull: Pull) -> None:
        self._claim_start()
        self._pull = pull
        self._start_thread("rtedge-speaker")

    def _run(self) -> None:
        pacer = _Pacer(self.frame_ms / 1000, self._stop_event, self.realtime)
        n = self.frame_samples
        try:
            while not self._stop_event.is_set():
                frame = self._pull_exact(n)
                if not self.failed.is_set():
                    try:
                        self._consume(frame)
                    except AudioError as exc:
                        # keep pulling (and discarding) so the caller's played-audio clock still runs
                        self._fail(exc)
                if not pacer.wait():
                    break
        finally:
            self._close()


def _frames(samples: np.ndarray, n: int) -> Iterator[np.ndarray]:
    """Consecutive frames of ``n`` samples; the last one padded with silence."""
    for k in range(0, len(samples), n):
        frame = samples[k : k + n]
        if len(frame) < n:
            frame = np.concatenate([frame, np.zeros(n - len(frame), dtype=np.int16)])
        yield frame.copy()


class WavSource(_ThreadedSource):
    """Plays a WAV file as if it were a microphone (any format :func:`~rtedge.audio.wavio.read_wav`
    reads: integer or float PCM, A-law/mu-law, any channel count, mixed to mono).

    Frames are delivered by the ``rtedge-mic`` thread on absolute deadlines, one
    per ``frame_ms`` (``realtime=True``), or as fast as ``on_frame`` returns
    (``realtime=False``).  After the last frame (padded with silence) it sets
    ``finished`` and delivers silence frames, paced in real time either way,
    until stopped.

    Args:
        path: the WAV file (read whole at construction).
        rate: rate of the frames; None = the file's rate.  Another rate is
            converted with :class:`~rtedge.audio.codec.Resampler`, with the filter
            delay removed to the nearest sample.
        loop: start the file over at its end, again and again (``finished`` is
            then never set).

    Raises:
        AudioError: the file cannot be read, or the rate conversion is not supported.
    """

    def __init__(
        self, path: str | Path, *, rate: int | None = None, frame_ms: int = 20, realtime: bool = True,
        loop: bool = False,
    ) -> None:
        samples, file_rate = read_wav(path)
        rate = file_rate if rate is None else rate
        super().__init__(rate, frame_ms, realtime)
        self.path = Path(path)
        self.loop = loop
        self.file_rate = file_rate
        try:
            self.samples = samples if rate == file_rate else _resample_whole(samples, file_rate, rate)
        except AudioError:  # a rate the resampler does not take: say which file has it, and what to do
            raise AudioError(file_rate_problem(path, file_rate)) from None

    def __repr__(self) -> str:
        return f"WavSource({str(self.path)!r}, rate={self.rate})"

    def _content(self) -> Iterator[np.ndarray]:
        yield from _frames(self.samples, self.frame_samples)
        while self.loop and len(self.samples) and not self._stop_event.is_set():
            yield from _frames(self.samples, self.frame_samples)


def _resample_whole(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    """A whole signal at another rate, without the filter's delay: ``ceil(N * dst / src)`` samples."""
    rs = codec.Resampler(src, dst)
    out = np.concatenate([rs.process(samples), rs.flush()])
    skip = round(rs.delay)
    return np.ascontiguousarray(out[skip : skip + math.ceil(len(samples) * dst / src)])


class NullSource(_ThreadedSource):
    """Silence frames, paced in real time, forever (``finished`` is never set)."""

    def __init__(self, rate: int = 16000, frame_ms: int = 20) -> None:
        super().__init__(rate, frame_ms, realtime=True)

    def _content(self) -> Iterator[np.ndarray]:
        while True:
            yield np.zeros(self.frame_samples, dtype=np.int16)


class WavSink(_ThreadedSink):
    """Appends the audio it pulls to a 16-bit mono WAV file.

    The ``rtedge-speaker`` thread pulls one frame per period on absolute
    deadlines (``realtime=True``).  ``realtime=False`` pulls as fast as the
    CPU allows: use it only in tests or offline rendering, and stop promptly.
    The file then grows with silence at CPU speed, and a consumer that counts
    pulled audio as "played" (the agent's played clock, used to truncate on
    barge-in) sees time run far ahead of the wall clock.

    Construction checks that the file can be written (AudioError otherwise, before anything is
    connected); ``start()`` creates it and ``stop()`` finalises it.
    """

    def __init__(
        self, path: str | Path, *, rate: int = 24000, frame_ms: int = 20, realtime: bool = True
    ) -> None:
        check_writable(path)
        super().__init__(rate, frame_ms, realtime)
        self.path = Path(path)
        self._writer: WavWriter | None = None

    def __repr__(self) -> str:
        return f"WavSink({str(self.path)!r}, rate={self.rate})"

    def _open(self) -> None:
        self._writer = WavWriter(self.path, self.rate)

    def _consume(self, frame: np.ndarray) -> None:
        try:
            self._writer.write(frame)  # type: ignore[union-attr]
        except OSError as exc:
            raise AudioError(f"{self.path}: write failed ({exc})") from None

    def _close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError as exc:
                self._fail(AudioError(f"{self.path}: cannot finish the WAV file ({exc})"))


class NullSink(_ThreadedSink):
    """Pulls a frame per period (real time by default) and discards it."""

    def __init__(self, rate: int = 24000, frame_ms: int = 20, realtime: bool = True) -> None:
        super().__init__(rate, frame_ms, realtime)



# --------------------------------------------------------------------------- raw pipes


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


class RawSource(_ThreadedSource):
    """Raw s16le mono samples from a byte stream: ``arecord -t raw -f S16_LE -r 16000 | rtedge ...``.

    With a file descriptor (pipes, files, stdin) the descriptor is read
    directly with ``select`` timeouts, so ``stop()`` is not held up by a silent
    pipe; do not read the same stream elsewhere meanwhile.  Other objects
    (``io.BytesIO``) are read with ``read()``.

    Args:
        stream: binary stream (default: standard input).
        realtime: False (the default) lets the writer set the pace, right for
            ``arecord``, which is paced by its sound card; True paces frames
            in real time, right for reading a file.  After the end of the
            stream (``finished``) silence is paced in real time either way.
        close: close ``stream`` when the device stops.
    """

    _writer_paced = True

    def __init__(self, stream: BinaryIO | None = None, rate: int = 16000, frame_ms: int = 20,
                 realtime: bool = False, *, close: bool = False) -> None:
        super().__init__(rate, frame_ms, realtime)
        self.stream = stream if stream is not None else sys.stdin.buffer
        self._close_stream = close
        self._fd = _fileno(self.stream)

    def __repr__(self) -> str:
        return f"RawSource({getattr(self.stream, 'name', type(self.stream).__name__)!r}, rate={self.rate})"

    def _read(self, n: int) -> bytes:
        """Up to ``n`` bytes, b"" at the end of the stream or once stopped."""
        if self._fd is None:
            return bytes(self.stream.read(n) or b"")
        while not self._stop_event.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.1)
            if ready:
                return os.read(self._fd, n)
        return b""

    def _backlog_limit_s(self) -> float:
        """What the pipe holds, in seconds of audio (a recorder's backlog cannot be more); 0 unless a pipe."""
        try:
            if self._fd is None or not stat.S_ISFIFO(os.fstat(self._fd).st_mode):
                return 0.0
        except OSError:
            return 0.0
        try:
            size = fcntl.fcntl(self._fd, getattr(fcntl, "F_GETPIPE_SZ", 1032))  # Linux's pipe capacity
        except OSError:
            size = 65536  # the Linux default
        return float(size) / (2 * self.rate)

    def _content(self) -> Iterator[np.ndarray]:
        nbytes = 2 * self.frame_samples
        while True:
            buf = bytearray()
            try:
                while len(buf) < nbytes:
                    chunk = self._read(nbytes - len(buf))
                    if not chunk:
                        break
                    buf += chunk
            except (OSError, ValueError) as exc:
                raise AudioError(f"{self!r}: read failed ({exc})") from None
            samples = np.frombuffer(bytes(buf[: len(buf) // 2 * 2]), dtype="<i2").astype(np.int16)
            if len(buf) == nbytes:
                yield samples
                continue
            if len(samples) and not self._stop_event.is_set():
                yield from _frames(samples, nbytes // 2)  # the last, partial frame (an odd byte is dropped)
            return

    def _close(self) -> None:
        if self._close_stream:
            try:
                self.stream.close()
            except OSError:
                pass


class RawSink(_ThreadedSink):
    """Raw s16le mono samples to a byte stream, e.g. ``rtedge ... | aplay -t raw -f S16_LE -r 24000 -c 1``.

    Real-time pacing by default, so that the pipe stays short and "pulled"
    stays close to "played".  With a file descriptor the descriptor is written
    directly (flushing ``stream`` first), waiting with ``select`` timeouts so
    ``stop()`` is not held up by a reader that stopped reading.  A broken pipe
    sets ``failed``; the sink then keeps pulling and discards the audio.

    Args:
        stream: binary stream (default: standard output; log to stderr then).
        close: close ``stream`` when the device stops.
    """

    def __init__(self, stream: BinaryIO | None = None, rate: int = 24000, frame_ms: int = 20,
                 realtime: bool = True, *, close: bool = False) -> None:
        super().__init__(rate, frame_ms, realtime)
        self.stream = stream if stream is not None else sys.stdout.buffer
        self._close_stream = close
        self._fd = _fileno(self.stream)

    def __repr__(self) -> str:
        return f"RawSink({getattr(self.stream, 'name', type(self.stream).__name__)!r}, rate={self.rate})"

    def _open(self) -> None:
        if self._fd is not None:
            self.stream.flush()

    def _consume(self, frame: np.ndarray) -> None:
        data = memoryview(frame.astype("<i2", copy=False).tobytes())
        try:
            if self._fd is None:
                self.stream.write(data)
                return
            while data and not self._stop_event.is_set():
                _, ready, _ = select.select([], [self._fd], [], 0.1)
                if ready:
                    data = data[os.write(self._fd, data) :]
        except (OSError, ValueError) as exc:
            raise AudioError(f"{self!r}: write failed ({exc})") from None

    def _close(self) -> None:
        try:
            if self._close_stream:
                self.stream.close()
            elif self._fd is None:
                self.stream.flush()
        except (OSError, ValueError):
            pass


# --------------------------------------------------------------------------- discovery and specs


def _split_spec(spec: str | None) -> tuple[str, str]:
    """'wav:x.wav' -> ('wav', 'x.wav'); 'null' -> ('null', ''); other text -> ('pa', text)."""
    if spec is None or spec.strip() in ("", "default", "pa:", "pa:default"):
        return "pa", ""
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("wav", "raw", "pa"):
        if not rest and kind != "pa":
            raise AudioError(f"audio spec {spec!r}: give a path after '{kind}:' ('raw:-' is stdin/stdout)")
        return kind, rest
    if spec == "null":
        return "null", ""
    return "pa", spec


def _pa_device(name: str) -> str | int | None:
    if not name:
        return None
    return int(name) if name.isdigit() else name


def open_source(
    spec: str | None, *, rate: int | None = None, frame_ms: int = 20, realtime: bool | None = None,
    loop: bool = False,
) -> AudioSource:
    """Build (not start) the source a CLI spec names.

    Specs: ``None``/``"default"`` (default microphone), ``"pa:NAME"``,
    ``"pa:INDEX"`` or a plain device name (:class:`Microphone`),
    ``"wav:PATH"`` (:class:`WavSource`), ``"raw:-"`` (stdin) or ``"raw:PATH"``
    (:class:`RawSource`), ``"null"`` (:class:`NullSource`).

    Args:
        rate: frame rate; None = 16000, or the file's rate for WAV.
        realtime: pacing of file/pipe sources; None = their default (WAV and
            raw files paced, stdin not).
        loop: repeat a WAV file (:class:`WavSource`); other specs refuse it.

    Raises:
        AudioError: a malformed spec, an unreadable file, or ``loop`` for a source that is not a WAV.
    """
    kind, arg = _split_spec(spec)
    if loop and kind != "wav":
        raise AudioError(f"audio spec {spec!r}: only a WAV file (wav:PATH) can loop")
    if kind == "wav":
        return WavSource(arg, rate=rate, frame_ms=frame_ms, realtime=True if realtime is None else realtime,
                         loop=loop)
    if kind == "raw":
        if arg == "-":
            return RawSource(rate=rate or 16000, frame_ms=frame_ms, realtime=bool(realtime))
        stream = _open_file(arg, "rb")
        return RawSource(stream, rate=rate or 16000, frame_ms=frame_ms,
                         realtime=True if realtime is None else realtime, close=True)
    if kind == "null":
        return NullSource(rate=rate or 16000, frame_ms=frame_ms)
    return Microphone(_pa_device(arg), rate=rate or 16000, frame_ms=frame_ms)


def open_sink(
    spec: str | None, *, rate: int = 24000, frame_ms: int = 20, realtime: bool | None = None
) -> AudioSink:
    """Build (not start) the sink a CLI spec names.

    Specs: ``None``/``"default"`` (default speaker), ``"pa:NAME"``,
    ``"pa:INDEX"`` or a plain device name (:class:`Speaker`), ``"wav:PATH"``
    (:class:`WavSink`), ``"raw:-"`` (stdout) or ``"raw:PATH"``
    (:class:`RawSink`), ``"null"`` (:class:`NullSink`).  ``realtime`` None
    means paced (see :class:`WavSink` before passing False).

    Raises:
        AudioError: a malformed spec or a file that cannot be created.
    """
    kind, arg = _split_spec(spec)
    paced = True if realtime is None else realtime
    if kind == "wav":
        return WavSink(arg, rate=rate, frame_ms=frame_ms, realtime=paced)
    if kind == "raw":
        if arg == "-":
            return RawSink(rate=rate, frame_ms=frame_ms, realtime=paced)
        return RawSink(_open_file(arg, "wb"), rate=rate, frame_ms=frame_ms, realtime=paced, close=True)
    if kind == "null":
        return NullSink(rate=rate, frame_ms=frame_ms, realtime=paced)
    return Speaker(_pa_device(arg), rate=rate, frame_ms=frame_ms)


def _open_file(path: str, mode: str) -> BinaryIO:
    try:
        return cast(BinaryIO, open(path, mode))  # the device closes it on stop()
    except OSError as exc:
        raise AudioError(f"{path}: cannot open ({exc.strerror or exc})") from None
