"""Acoustic echo cancellation: take the speaker's own voice out of the microphone.

Theory of operation
-------------------
:class:`EchoCanceller` runs libspeexdsp's echo canceller (an MDF adaptive
filter of ``tail_ms`` of echo) and, by default, its preprocessor tied to it
(residual echo suppression and noise suppression), through the optional C
extension ``rtedge.audio._aec``.  That extension is built only where
libspeexdsp's headers are present (Debian/Raspberry Pi OS: ``apt-get install
libspeexdsp-dev``, then reinstall rtedge); without it :func:`available` is
False and constructing a canceller raises :class:`ConfigError` saying so.
There is deliberately no numpy fallback: a home-made adaptive filter would be
a worse canceller, not a twin.

The canceller needs, for every microphone sample, the loudspeaker sample
whose echo it may contain, slightly *earlier* (the filter models only echo
that comes after its reference).  Two ways to give it:

* :meth:`cancel` -- the caller passes the reference, already aligned (rigs,
  files, offline use).
* :meth:`played` + :meth:`process` -- live devices.  The speaker thread reports
  every block it hands to the device (silence included) with the device's
  output latency; the microphone thread passes each captured frame with its
  input latency.  Both sides are placed on one time line: a sample handed to
  the speaker at ``t`` sounds at ``t + output_latency``; a frame arriving at
  ``t`` was captured from ``t - input_latency - duration``.  Callback times
  jitter late, never early, so each side's schedule is the earliest time its
  sample count allows, leaking forward by :data:`LEAK_PER_S` to follow clock
  drift.  The microphone frame then gets the reference that sounds
  ``margin_ms`` after it was captured, so the echo reaches the filter
  ``margin_ms`` (plus the acoustic path) after its reference: that needs
  ``margin_ms`` below the input plus output latency, which real devices have.
  The reference is counted sample by sample (``1 + drift`` speaker samples per
  microphone sample, below) and checked against an *expected* position that
  advances the same way, so the drift compensation never counts against the
  alignment.  What the schedules give is a lower bound (a late hand-off only
  makes the speaker look later), so the expectation rises at once to a higher
  one and comes down only when a whole second of hand-offs came later than one
  block or frame explains (blocks handed on another clock's ticks, a speaker
  fed from the microphone's thread, look late by a share of a tick that slides
  with the drift).  The alignment is re-anchored only when the expectation and
  the read position disagree by more than ``margin_ms`` (a device restarted,
  or drift accumulated without compensation), and each re-anchor is counted.
  A re-anchor may move the echo along the filter by more than ``margin_ms``,
  and then what the filter learnt no longer matches: the canceller counts as
  learning again (:attr:`EchoCanceller.converged` is cleared and its
  measurement restarts).  The adapted filter is kept: after a jump of a few
  tens of ms it re-adapts about as fast as a reset one, and after a re-anchor
  that only follows a device's new latency (reported right) it still matches,
  which :data:`RECHECK_S` of audible reference shows: then it counts as
  converged again at once instead of after :data:`CONVERGE_S`.

Separate speaker and microphone clocks drift apart (tens of ppm): the echo
then slides along the filter, which loses 15 dB or more chasing it.  In the
live path (``drift_compensation``, on by default) the reference is read on the
microphone's clock: the canceller's own impulse response is tracked, its
slide gives the clock ratio, and the reference is resampled by that ratio
(:mod:`rtedge.audio.drift`).  :meth:`cancel` takes the caller's reference as
it is (it is already on the microphone's clock).  What the filter cannot model
(a non-linear loudspeaker) the preprocessor's residual suppression takes.

Thread use: :meth:`played` from the speaker thread, :meth:`process` /
:meth:`cancel` from one microphone thread; a lock guards the reference ring.

Owns: the echo canceller between the microphone and the VAD gate.  Must not: block the microphone thread
beyond one frame's work.
"""

from __future__ import annotations

import importlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from ..errors import AudioError, ConfigError
from .codec import Resampler
from .drift import INTERVAL_S, TAPS, DriftTracker, interpolate

__all__ = ["CONVERGED_DB", "CONVERGE_S", "GATE_BOOST_DB", "LEAK_PER_S", "LEARNING_BOOST_DB", "LINEAR_ATTENUATION_DB",
           "RECHECK_S", "RESIDUAL_BOOST_DB", "AecStats", "EchoCanceller", "available"]

#: the filter counts as converged (:attr:`EchoCanceller.converged`, sticky until a reset or a re-anchored
#: alignment) once it has seen this many seconds of audible reference and removes at least CONVERGED_DB of
#: the echo (microphone power over output power, averaged over about a second of audible reference); after
#: a re-anchor, sooner if the kept filter still matches (RECHECK_S)
CONVERGE_S = 2.0
CONVERGED_DB = 20.0
#: after a re-anchored alignment the filter is checked once, on this many seconds of audible reference after
#: its first ``tail_ms`` (whose frames mix the reference from either side of the jump): if it still removes
#: CONVERGED_DB, the re-anchor only followed a device's new latency and the canceller is converged again;
#: else it learns for CONVERGE_S as after a reset (on speech through the tests' rooms, rt60 0.2-0.3 s, linear
#: or saturating: a filter left 25-40 ms off removes about 1 dB by then, one that still matches 29-38 dB)
RECHECK_S = 0.5
#: VAD gate boost (dB) a VoiceAgent applies while playing once the canceller has converged and removes at
#: least LINEAR_ATTENUATION_DB of the echo (a linear echo path); measured in benchmarks/aec.py
GATE_BOOST_DB = 10.0
#: the boost once converged while the canceller removes less than LINEAR_ATTENUATION_DB: a saturating
#: loudspeaker leaves a residual only 12-15 dB below the echo on loud passages, which beat a 10 dB boost
#: (measured through the agent in benchmarks/aec_agent.py)
RESIDUAL_BOOST_DB = 14.0
LINEAR_ATTENUATION_DB = 30.0
#: gate boost (dB) while the filter is still learning: the gate's maximum, nothing opens it
LEARNING_BOOST_DB = 90.0
_ACTIVE_REF = 32768.0 * 10 ** (-50 / 20)  # reference RMS above which the filter is learning
#: how fast (s per s) the earliest-time schedules may move later, to follow clock drift
LEAK_PER_S = 0.002
#: why echo_guard="aec" cannot run here (the extension is not built)
UNAVAILABLE = ("echo_guard='aec' needs libspeexdsp: install libspeexdsp-dev (Debian, Raspberry Pi OS) and "
               "reinstall rtedge so its rtedge.audio._aec extension is built")


def _module() -> Any:
    try:
        return importlib.import_module("rtedge.audio._aec")
    except ImportError:
        return None


def available() -> bool:
    """True when the libspeexdsp extension is built here."""
    return _module() is not None


@attrs.define(eq=False)
class AecStats:
    """Counters of one canceller (read them; the canceller writes them)."""

    frames: int = 0  #: canceller frames processed
    reference_samples: int = 0  #: speaker samples reported through :meth:`EchoCanceller.played`
    reference_missing: int = 0  #: mic samples that had no reference yet (zeros were used)
    reference_dropped: int = 0  #: reference samples never needed (too old, or the ring overflowed)
    realigns: int = 0  #: times the mic/speaker alignment was re-anchored


class _Schedule:
    """Earliest-start estimate of a sample stream: sample ``k`` happens at ``start + k / rate``."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.start: float | None = None
        self._last = 0.0

    def observe(self, t0: float, now: float) -> float:
        """A block whose first sample was seen at ``t0``; returns the schedule's start."""
        if self.start is None or t0 < self.start:
            self.start = t0
        else:
            self.start = min(t0, self.start + LEAK_PER_S * max(0.0, now - self._last))
        self._last = now
        return self.start


class EchoCanceller:
    """libspeexdsp echo canceller (+ preprocessor) on int16 mono audio at ``rate``.

    Args:
        rate: microphone sample rate in Hz (8000..48000); the reference is resampled to it.
        frame_ms: canceller frame (10 or 20 ms); input of any length is buffered to whole frames.
        tail_ms: echo tail the adaptive filter models (room reverberation), 50..1000 ms.
        margin_ms: live alignment: the reference leads the microphone by this much, and the
            alignment is re-anchored when it is off by more.
        preprocess: run speexdsp's preprocessor on the output (residual echo + noise suppression).
        echo_suppress_db / echo_suppress_active_db: residual echo attenuation without / with
            near-end speech (speexdsp's defaults are -40 / -15).
        noise_suppress_db: stationary noise attenuation (negative dB), with ``preprocess``.
        drift_compensation: live path: estimate the speaker/microphone clock ratio from the filter and
            read the reference on the microphone's clock (:mod:`rtedge.audio.drift`).
        clock: the monotonic clock used by :meth:`played` and :meth:`process`.

    Raises:
        ConfigError: libspeexdsp is not built in (the message says what to install), or a bad setting.
    """

    def __init__(self, rate: int, *, frame_ms: int = 20, tail_ms: int = 200, margin_ms: float = 20.0,
                 preprocess: bool = True, echo_suppress_db: int = -40, echo_suppress_active_db: int = -15,
                 noise_suppress_db: int = -15, drift_compensation: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        mod = _module()
        if mod is None:
            raise ConfigError(UNAVAILABLE)
        if isinstance(rate, bool) or not isinstance(rate, int) or not 8000 <= rate <= 48000:
            raise ConfigError(f"EchoCanceller: rate must be an int in [8000, 48000], got {rate!r}")
        if frame_ms not in (10, 20) or rate * frame_ms % 1000:
            raise ConfigError(f"EchoCanceller: frame_ms must be 10 or 20 (whole samples), got {frame_ms!r}")
        if not 50 <= tail_ms <= 1000:
            raise ConfigError(f"EchoCanceller: tail_ms must be in [50, 1000], got {tail_ms!r}")
        if not 0 <= margin_ms <= 200:
            raise ConfigError(f"EchoCanceller: margin_ms must be in [0, 200], got {margin_ms!r}")
        self.rate, self.frame = rate, rate * frame_ms // 1000
        filter_len = -(-rate * tail_ms // 1000 // self.frame) * self.frame
        self._c = mod.Canceller(self.frame, filter_len, rate, preprocess=preprocess,
                                echo_suppress_db=echo_suppress_db,
                                echo_suppress_active_db=echo_suppress_active_db,
                                noise_suppress_db=noise_suppress_db)
        self.margin = margin_ms / 1000.0
        self.clock = clock
        self.stats = AecStats()
        self._lock = threading.Lock()  # guards the reference ring and the speaker schedule
        self._ring = np.zeros(0, dtype=np.int16)  # reference samples _base .. _base + len
        self._base = 0
        self._spk = _Schedule(rate)
        self._spk_count = 0  # reference samples appended so far (absolute index of the next one)
        self._resampler: Resampler | None = None
        self._resampler_rate = 0
        self._mic = _Schedule(rate)
        self._mic_count = 0
        self._next_ref: float | None = None  # reference position for the next mic sample
        self._expect: float | None = None  # expected position for the next mic sample (see _expected)
        self._worst = -math.inf  # closest the schedules came to _expect in this window (samples, <= 0)
        self._window_from = 0  # mic count at which that window began
        self._grain = 0.0  # longest speaker block or mic frame seen (s): how late a hand-off may be
        self.drift = DriftTracker(rate) if drift_compensation else None
        self._ir = np.zeros(filter_len, dtype=np.int32)
        self._since_snapshot = 0  # mic samples since the last impulse-response snapshot
        self._heard_at_snapshot = 0
        self._pending = self._ref_pending = np.zeros(0, dtype=np.int16)  # mic / explicit reference
        self._out = np.zeros(self.frame, dtype=np.int16)
        self._max_ring = rate * 2
        self._heard = 0  # samples of audible reference seen by the filter
        self._p_mic = self._p_out = 0.0  # smoothed powers over audible-reference frames
        self._converged = False
        self._recheck = False  # a re-anchor is to be checked after RECHECK_S (see _relearn)
        self._skip = 0  # mic samples still to leave out of the measurement after a re-anchor
        self._smooth = 1.0 - math.exp(-frame_ms / 1000.0)  # ~1 s time constant

    def gate_boost(self) -> float:
        """The VAD gate boost while the speaker plays.  Before :attr:`converged`: :data:`LEARNING_BOOST_DB`,
        which keeps the gate shut (the unconverged filter lets the echo through: like ``half_duplex`` for
        the first seconds of audible playback, and again after a re-anchored alignment).  Once converged:
        :data:`GATE_BOOST_DB` while :attr:`attenuation_db` is at least :data:`LINEAR_ATTENUATION_DB`, else
        :data:`RESIDUAL_BOOST_DB` (what the filter cannot model, a saturating loudspeaker, comes through
        louder).  What VoiceAgent uses; benchmarks/aec.py and benchmarks/aec_agent.py measure the same
        policy."""
        if not self.converged:
            return LEARNING_BOOST_DB
        return GATE_BOOST_DB if self.attenuation_db >= LINEAR_ATTENUATION_DB else RESIDUAL_BOOST_DB

    @property
    def converged(self) -> bool:
        """True once the filter has seen :data:`CONVERGE_S` of audible reference since the last reset or
        re-anchored alignment (``stats.realigns``) and then removed at least :data:`CONVERGED_DB` of the
        echo, or, after a re-anchor, once the kept filter still removes that much on :data:`RECHECK_S` of
        audible reference (the re-anchor only followed a device's new latency); it stays True until the next
        reset or re-anchor."""
        return self._converged

    @property
    def drift_ppm(self) -> float:
        """The speaker clock's estimated rate against the microphone's, in ppm (0 without
        ``drift_compensation``)."""
        return self.drift.ppm if self.drift is not None else 0.0

    @property
    def attenuation_db(self) -> float:
        """Echo removed lately: smoothed microphone power over output power while the reference is
        audible, in dB (0 before any since the last reset or re-anchored alignment)."""
        return 10 * math.log10(self._p_mic / self._p_out) if self._p_mic > 0 and self._p_out > 0 else 0.0

    # ------------------------------------------------------------------------------------ speaker side
    def played(self, samples: np.ndarray, rate: int, latency: float = 0.0) -> None:
        """Speaker thread: ``samples`` (int16 mono at ``rate``) were just handed to the device, which
        sounds them ``latency`` seconds later.  Report every block, silence included."""
        now = self.clock()
        if rate != self.rate:
            if self._resampler is None or self._resampler_rate != rate:
                self._resampler, self._resampler_rate = Resampler(rate, self.rate), rate
            delay = self._resampler.delay / self.rate
            samples = self._resampler.process(samples)
        else:
            delay = 0.0
        with self._lock:
            self._grain = max(self._grain, len(samples) / self.rate)
            self._spk.observe(now + latency + delay - self._spk_count / self.rate, now)
            self._ring = np.concatenate([self._ring, samples]) if self._ring.size else samples.copy()
            self._spk_count += len(samples)
            self.stats.reference_samples += len(samples)
            excess = len(self._ring) - self._max_ring
            if excess > 0:
                self._ring, self._base = self._ring[excess:], self._base + excess
                self.stats.reference_dropped += excess

    # ------------------------------------------------------------------------------------ microphone side
    def process(self, mic: np.ndarray, latency: float = 0.0) -> np.ndarray:
        """Microphone thread: a captured frame (int16 mono at ``rate``) that arrived just now,
        ``latency`` seconds after the device captured its end.  Returns the echo-cancelled audio
        (whole canceller frames; a remainder waits for the next call)."""
        mic = _int16(mic)
        now = self.clock()
        start = self._mic.observe(now - latency - (self._mic_count + len(mic)) / self.rate, now)
        first = self._mic_count - len(self._pending)  # absolute index of the first buffered sample
        self._mic_count += len(mic)
        with self._lock:
            self._grain = max(self._grain, len(mic) / self.rate)
            spk_start = self._spk.start
            if spk_start is not None:
                expect = self._expected((start + first / self.rate + self.margin - spk_start) * self.rate)
                if self._next_ref is None or abs(expect - self._next_ref) > self.margin * self.rate:
                    if self._next_ref is not None:
                        self.stats.realigns += 1
                        if self.drift is not None:
                            self.drift.rebase()
                        self._relearn(recheck=True)
                    self._next_ref = float(round(expect))
        return self._run(mic, self._take_reference, track=True)

    def _expected(self, want: float) -> float:
        """The expected reference position for the next mic sample, given ``want``, the one the two
        schedules give now (lock held).

        ``want`` is late-biased: a speaker block handed over late makes its schedule look later, and blocks
        handed on another clock's ticks (a speaker fed from the microphone's thread, a blocking writer)
        are late by a share of a tick that slides with the clock drift, from nothing up to a whole block and
        back in one step, once every ``1 / (ppm * blocks per second)`` (400 s at 50 ppm with 20 ms blocks).
        So ``want`` is a lower bound, and the expectation is the tightest one: it advances with the read
        position (the same ``1 + drift`` per sample, so the drift compensation never counts against the
        alignment), rises at once to any higher ``want`` (the speaker is at least that far along), and
        comes down only when a whole second of hand-offs stayed later than a block or frame explains: to
        that second's highest ``want`` plus that much (a stream restarted with more latency, or clocks
        drifting without compensation)."""
        if self._expect is None or want > self._expect:
            self._expect, self._worst, self._window_from = want, 0.0, self._mic_count
            return want
        self._worst = max(self._worst, want - self._expect)
        if self._mic_count - self._window_from >= self.rate:  # a second of hand-offs
            grain = self._grain * self.rate
            if self._worst < -grain:
                self._expect += self._worst + grain
            self._worst, self._window_from = -math.inf, self._mic_count
        return self._expect

    def cancel(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Cancel with an explicit reference (same length as ``mic``, already aligned so that the echo
        comes after it).  Returns the cleaned audio (whole frames; a remainder waits)."""
        mic, ref = _int16(mic), _int16(ref)
        if len(ref) != len(mic):
            raise AudioError(f"EchoCanceller.cancel: mic has {len(mic)} samples, ref {len(ref)}")
        refs = np.concatenate([self._ref_pending, ref]) if self._ref_pending.size else ref
        offset = [0]

        def take(n: int) -> np.ndarray:
            part = refs[offset[0]:offset[0] + n]
            offset[0] += n
            return part

        out = self._run(mic, take)
        self._ref_pending = refs[offset[0]:].copy()
        return out

    def cancel_frame(self, mic: np.ndarray, ref: np.ndarray, linear: np.ndarray | None = None) -> np.ndarray:
        """One canceller frame, no buffering (rigs): returns the output; ``linear`` (if given) gets the
        adaptive filter's output before the preprocessor."""
        out = np.empty(self.frame, dtype=np.int16)
        self._c.process(_int16(mic), _int16(ref), out, linear)
        self._count(mic, ref, out)
        return out

    def _count(self, mic: np.ndarray, ref: np.ndarray, out: np.ndarray) -> None:
        self.stats.frames += 1
        if self._skip > 0:
            self._skip -= len(ref)
            return
        if _power(ref) <= _ACTIVE_REF * _ACTIVE_REF:
            return
        self._heard += len(ref)
        a = self._smooth
        self._p_mic += a * (_power(mic) - self._p_mic)
        self._p_out += a * (max(_power(out), 1.0) - self._p_out)
        if not self._converged and self._heard >= CONVERGE_S * self.rate:
            self._converged = self.attenuation_db >= CONVERGED_DB
        elif self._recheck and self._heard >= RECHECK_S * self.rate:
            self._recheck, self._converged = False, self.attenuation_db >= CONVERGED_DB

    def reset(self) -> None:
        """Forget the adapted filter, the alignment and buffered audio (counters are kept)."""
        self._c.reset()
        with self._lock:
            self._ring, self._base, self._spk_count = np.zeros(0, dtype=np.int16), 0, 0
            self._spk = _Schedule(self.rate)
        self._mic, self._mic_count, self._next_ref, self._expect = _Schedule(self.rate), 0, None, None
        self._worst, self._window_from = -math.inf, 0
        if self.drift is not None:
            self.drift.reset()
        self._pending = self._ref_pending = np.zeros(0, dtype=np.int16)
        self._relearn()

    def _relearn(self, recheck: bool = False) -> None:
        """The filter may no longer match the echo path (a reset, a re-anchored alignment): count it as
        learning again and restart the convergence measurement (else the attenuation smoothed before the
        change would call it converged at once), and the drift tracker's wait for a filter worth a snapshot.
        The adapted filter itself is left to :meth:`reset`.  ``recheck`` (a re-anchor): the measurement
        leaves out the filter's first ``tail_ms`` and checks the kept filter after :data:`RECHECK_S`."""
        self._since_snapshot = self._heard_at_snapshot = 0
        self._heard, self._p_mic, self._p_out, self._converged = 0, 0.0, 0.0, False
        self._recheck, self._skip = recheck, self._ir.size if recheck else 0  # the filter's length

    # ------------------------------------------------------------------------------------ internals
    def _run(self, mic: np.ndarray, reference: Callable[[int], np.ndarray],
             track: bool = False) -> np.ndarray:
        data = np.concatenate([self._pending, mic]) if self._pending.size else mic
        n = len(data) // self.frame
        out = np.empty(n * self.frame, dtype=np.int16)
        for i in range(n):
            seg = slice(i * self.frame, (i + 1) * self.frame)
            ref, mic_frame = reference(self.frame), np.ascontiguousarray(data[seg])
            self._c.process(mic_frame, ref, self._out)
            self._count(mic_frame, ref, self._out)
            out[seg] = self._out
            if track and self.drift is not None:
                self._track()
        self._pending = np.array(data[n * self.frame:])
        return out

    def _track(self) -> None:
        """After a frame: every INTERVAL_S of adapting, show the drift tracker the filter's response."""
        assert self.drift is not None
        self._since_snapshot += self.frame
        if self._since_snapshot < INTERVAL_S * self.rate:
            return
        adapting = self._heard - self._heard_at_snapshot >= INTERVAL_S * self.rate / 2
        if not adapting or self._heard < self.rate or self.attenuation_db < 6.0:
            return
        self._c.impulse_response(self._ir)
        self.drift.observe(self._ir, self._since_snapshot)
        self._since_snapshot, self._heard_at_snapshot = 0, self._heard

    def _take_reference(self, n: int) -> np.ndarray:
        """The ``n`` reference samples for the next mic frame (zeros where none were reported), read
        ``1 + drift`` reference samples apart."""
        with self._lock:
            if self._next_ref is None:
                self.stats.reference_missing += n
                return np.zeros(n, dtype=np.int16)
            step = 1.0 + (self.drift.drift if self.drift is not None else 0.0)
            lo, end = self._next_ref, len(self._ring) + self._base
            if step == 1.0 and lo.is_integer():
                ref = np.zeros(n, dtype=np.int16)
                first = int(lo)
                a, b = max(first, self._base), min(first + n, end)
                if b > a:
                    ref[a - first:b - first] = self._ring[a - self._base:b - self._base]
                have = max(0, b - a)
            else:
                pos = lo + step * np.arange(n)
                values = np.round(interpolate(self._ring, self._base, pos))
                ref = np.clip(values, -32768, 32767).astype(np.int16)
                near = np.floor(pos)
                have = int(np.count_nonzero((near >= self._base) & (near < end)))
            self.stats.reference_missing += n - have
            self._next_ref = lo + step * n
            if self._expect is not None:
                self._expect += step * n
            # keep what the next frame's interpolation may reach back to
            keep_from = min(max(math.floor(self._next_ref) - TAPS // 2, self._base), end)
            self.stats.reference_dropped += max(0, min(math.floor(lo), keep_from) - self._base)
            self._ring, self._base = self._ring[keep_from - self._base:], keep_from
        return ref


def _power(x: np.ndarray) -> float:
    wide = x.astype(np.int64)
    return int(np.dot(wide, wide)) / max(1, wide.size)


def _int16(x: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != np.int16 or x.ndim != 1:
        raise AudioError("EchoCanceller: audio must be a 1-D int16 numpy array")
    return x
