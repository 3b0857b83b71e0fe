"""Clock drift between a loudspeaker and a microphone, for the echo canceller.

Theory of operation
-------------------
A USB speaker and a USB microphone (or an HDMI output and a USB array) run on
separate crystals: at 50 ppm apart the echo slides by 0.8 samples a second at
16 kHz, and an adaptive filter chasing a moving echo path loses 15 dB or more
of echo return loss enhancement.  The cure is to read the reference (what the
speaker played) on the microphone's clock: sample ``k`` of the reference fed to
the canceller is the speaker's sample at position ``k * (1 + drift)``, computed
by :func:`interpolate` (Kaiser-windowed sinc, :data:`TAPS` taps; exact at whole
positions, so a drift of zero changes nothing).

The drift is estimated from the canceller itself: the adaptive filter's impulse
response *is* the echo path, so while the clocks disagree it moves along the lag
axis.  :class:`DriftTracker` takes a snapshot of the impulse response every
:data:`INTERVAL_S` of adapting (audible reference, filter attenuating), measures
the shift from the previous snapshot (:func:`ir_shift`: integer lag from the
cross-correlation peak, then the sub-sample remainder from the slope of the
cross-spectrum's phase over the speech band), and corrects the drift by a
fraction :data:`GAIN` of the residual rate it implies.  That is a first-order
frequency-locked loop: the residual falls by ``1 - GAIN`` per interval, so
50 ppm is tracked to within 1 ppm in about 8 s of speech.  A constant offset
left over is part of the echo path the filter models anyway; only a *changing*
offset hurts it.  Measurements that jump (a re-anchored alignment, a reset
filter, double talk disturbing the filter) are dropped and counted.

Owns: estimating the speaker/microphone clock ratio.  Must not: touch the devices.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GAIN", "INTERVAL_S", "MAX_PPM", "TAPS", "DriftTracker", "interpolate", "ir_shift"]

#: interpolation taps (Kaiser-windowed sinc, beta 6)
TAPS = 16
#: seconds of adapting between two impulse-response snapshots
INTERVAL_S = 0.5
#: fraction of the measured residual drift corrected per snapshot
GAIN = 0.3
#: the estimate is clamped to +-MAX_PPM (crystals are within +-100 ppm; USB adaptive clocks a few hundred)
MAX_PPM = 1000.0
_MAX_JUMP_S = 0.002  # a shift larger than this between two snapshots is not drift
_PHASES = 512  # fractional positions are rounded to 1/512 sample (phase error < -55 dB at 4 kHz)


def _table() -> np.ndarray:
    """Windowed sinc per fraction; the Kaiser window is centred on the interpolated point, so a whole
    position gives back the sample itself."""
    frac = np.arange(_PHASES + 1)[:, None] / _PHASES
    d = frac - (np.arange(TAPS)[None, :] - TAPS // 2 + 1)
    window = np.i0(6.0 * np.sqrt(np.clip(1.0 - (d / (TAPS / 2)) ** 2, 0.0, 1.0))) / np.i0(6.0)
    return np.asarray(np.sinc(d) * window)


_COEF = _table()  # (_PHASES + 1, TAPS): row q interpolates at fraction q / _PHASES
_OFFSETS = np.arange(TAPS, dtype=np.intp) - TAPS // 2 + 1


def interpolate(x: np.ndarray, first: int, positions: np.ndarray) -> np.ndarray:
    """Band-limited values of ``x`` (whose element 0 is sample ``first``) at fractional sample
    ``positions`` (float64); ``x`` must cover ``positions`` by ``TAPS // 2`` samples either side
    (missing samples count as zero).  Returns float64."""
    pos = np.asarray(positions, dtype=np.float64) - first
    base = np.floor(pos)
    phase = np.round((pos - base) * _PHASES).astype(np.intp)
    idx = base.astype(np.intp)[:, None] + _OFFSETS[None, :]
    inside = (idx >= 0) & (idx < len(x))
    values = np.where(inside, np.asarray(x)[np.clip(idx, 0, max(0, len(x) - 1))], 0).astype(np.float64)
    return np.asarray(np.einsum("ij,ij->i", _COEF[phase], values))


def ir_shift(h0: np.ndarray, h1: np.ndarray, rate: int, max_lag: int) -> float | None:
    """How many samples later the echo path ``h1`` lies than ``h0`` (same length), or None when the
    two do not look like shifted copies (no clear peak within ``max_lag``)."""
    n = 2 * len(h0)
    x = np.fft.rfft(h1, n) * np.conj(np.fft.rfft(h0, n))
    if not np.any(x):
        return None
    xc = np.fft.irfft(x, n)
    lags = np.concatenate([xc[:max_lag + 1], xc[-max_lag:]]) if max_lag else xc[:1]
    k = int(np.argmax(lags))
    lag = k if k <= max_lag else k - 2 * max_lag - 1
    if lags[k] <= 0.5 * np.sqrt(np.dot(h0, h0) * np.dot(h1, h1)):
        return None  # the paths are not alike: the filter re-adapted, not drifted
    omega = np.pi * np.arange(len(x)) / (len(x) - 1)
    band = (omega > 2 * np.pi * 200 / rate) & (omega < 2 * np.pi * min(3500, 0.4 * rate) / rate)
    phase = np.angle(x[band] * np.exp(1j * omega[band] * lag))
    w, o = np.abs(x[band]), omega[band]
    return float(lag - np.sum(w * phase * o) / np.sum(w * o * o))


class DriftTracker:
    """Estimates how fast the speaker's clock runs against the microphone's (see the module docstring).

    :attr:`drift` (dimensionless, ``ppm * 1e-6``) is what the reader adds to 1 per microphone sample.
    Feed :meth:`observe` an impulse-response snapshot and the microphone samples since the previous one;
    call :meth:`rebase` when the alignment jumps.  Not thread-safe: one microphone thread."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.drift = 0.0
        self.updates = 0  #: snapshots that moved the estimate
        self.rejected = 0  #: snapshots dropped (the path jumped rather than slid)
        self._last: np.ndarray | None = None
        self._elapsed = 0

    @property
    def ppm(self) -> float:
        return self.drift * 1e6

    def rebase(self) -> None:
        """Forget the last snapshot (the alignment or the filter jumped); the estimate is kept."""
        self._last, self._elapsed = None, 0

    def reset(self) -> None:
        self.rebase()
        self.drift = 0.0

    def observe(self, h: np.ndarray, elapsed: int) -> None:
        """A snapshot of the filter's impulse response, ``elapsed`` microphone samples after the last."""
        h = np.asarray(h, dtype=np.float64)
        last, self._last = self._last, h
        self._elapsed += elapsed
        span, self._elapsed = self._elapsed, 0
        if last is None or span <= 0:
            return
        max_lag = max(1, int(self.rate * _MAX_JUMP_S))
        shift = ir_shift(last, h, self.rate, max_lag)
        if shift is None or abs(shift) > max_lag:
            self.rejected += 1
            return
        # the echo slides later when the reference is read too fast: slow it down
        self.drift = float(np.clip(self.drift - GAIN * shift / span, -MAX_PPM * 1e-6, MAX_PPM * 1e-6))
        self.updates += 1
