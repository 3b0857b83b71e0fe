"""Audio sample codecs for the realtime path: G.711, sample formats, resampling.

Two interchangeable backends do the arithmetic:

* ``"c"``: the optional ``rtedge.audio._codec`` extension (built by ``pip
  install`` when a C compiler is available; its kernels release the GIL);
* ``"numpy"``: ``rtedge.audio._codec_numpy``, a pure-numpy twin with the same
  kernels: identical G.711 and format results, resampler output within float32
  rounding (at most 1 LSB for int16).

``BACKEND`` says which one is in use.  Set ``RTEDGE_CODEC=numpy`` in the
environment before import to force the twin.  The extension is optional at
install time: without a working C compiler ``pip install`` still succeeds and
the twin is used; ``CC=false pip install .`` installs without it on purpose.  All validation happens here;
the kernels only compute.  Neither backend keeps state between calls: the
resampler's stream state (input history, phase) lives in the
:class:`Resampler` object.

G.711 is bit-exact with ITU-T G.711 as implemented in the ITU-T G.191 software
tools library.  Note that Python's ``audioop`` mu-law *encoder* differs from it
on 508 negative inputs (it negates with ``-x`` where G.191 uses ``~x``); the
decoders and A-law agree.

PCM16 passed as ``bytes``-like objects is read as little-endian.

Owns: G.711, sample formats, the streaming resampler, and the choice of C or numpy kernels.  Must not: know
about sessions or devices.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from types import ModuleType
from typing import Any

import numpy as np

from rtedge.errors import AudioError

from . import RATES_TEXT
from . import SUPPORTED_RATES as _RATES

from . import _codec_numpy

__all__ = [
    "BACKEND",
    "SUPPORTED_RATES",
    "AudioTypeError",
    "Resampler",
    "alaw_decode",
    "alaw_encode",
    "apply_gain",
    "decode_wire",
    "float32_to_int16",
    "int16_to_float32",
    "stereo_to_mono",
    "ulaw_decode",
    "ulaw_encode",
]


class AudioTypeError(AudioError, TypeError):
    """Audio input of the wrong type or dtype (both an ``AudioError``/``ValueError`` and a ``TypeError``)."""


def _load_backend() -> tuple[ModuleType, str]:
    """The C kernels when built, else the numpy twin; a missing extension is logged once (a warning)."""
    choice = os.environ.get("RTEDGE_CODEC", "").strip().lower()
    if choice in ("numpy", "python", "pure"):
        return _codec_numpy, "numpy"
    try:
        # lazy: optional dependency (the C extension may not be built; the fallback is used then)
        from . import _codec
    except ImportError as exc:
        if choice == "c":
            raise
        logging.getLogger(__name__).warning(
            "rtedge codec: C kernels not built (%s); using the numpy twin (slower). For the C kernels "
            "install gcc and python3-dev, then reinstall rtedge", exc
        )
        return _codec_numpy, "numpy"
    return _codec, "c"


_impl, BACKEND = _load_backend()

#: Sample rates the resampler accepts (Hz).
SUPPORTED_RATES = _RATES

_ndarray = np.ndarray
_empty = np.empty
_I16 = np.dtype(np.int16)
_U8 = np.dtype(np.uint8)
_F32 = np.dtype(np.float32)
_I16_LE = np.dtype("<i2")
_F32_LE = np.dtype("<f4")


# --------------------------------------------------------------------------- validation


def _as_array(x: Any, dtype: np.dtype[Any], what: str, *, name: str = "input") -> np.ndarray:
    """Return ``x`` as a 1-D C-contiguous array of ``dtype`` without copying numpy input.

    bytes-like input is reinterpreted (little-endian for multi-byte dtypes).
    """
    if isinstance(x, np.ndarray):
        if x.dtype != dtype:
            got = x.dtype.str if x.dtype.name == dtype.name else x.dtype.name  # e.g. '>i2'
            raise AudioTypeError(f"{what}: {name} must have dtype {dtype.name} (native order), got {got}")
        if x.ndim != 1:
            raise AudioError(f"{what}: {name} must be 1-D, got shape {x.shape}")
        if not x.flags.c_contiguous:
            raise AudioError(f"{what}: {name} must be C-contiguous; pass np.ascontiguousarray(x)")
        return x
    if isinstance(x, (bytes, bytearray, memoryview)):
        mv = memoryview(x)
        if not mv.contiguous:
            raise AudioError(f"{what}: {name} buffer must be contiguous")
        nbytes = mv.nbytes
        if nbytes % dtype.itemsize:
            raise AudioError(
                f"{what}: {name} has {nbytes} bytes, "
                f"not a multiple of {dtype.itemsize} ({dtype.name} samples)"
            )
        le = _I16_LE if dtype == _I16 else _F32_LE if dtype == _F32 else dtype
        arr: np.ndarray = np.frombuffer(mv.cast("B"), dtype=le)
        if arr.dtype != dtype:  # big-endian host
            arr = arr.astype(dtype)
        return arr
    raise AudioTypeError(
        f"{what}: {name} must be a numpy array of {dtype.name} or a bytes-like object, got {type(x).__name__}"
    )


def _pcm_array(x: Any, what: str) -> np.ndarray:
    """int16 or float32 1-D contiguous array (bytes-like input is read as PCM16)."""
    if isinstance(x, np.ndarray):
        if x.dtype != _I16 and x.dtype != _F32:
            got = x.dtype.str if x.dtype.name in ("int16", "float32") else x.dtype.name
            raise AudioTypeError(f"{what}: samples must be int16 or float32 (native order), got dtype {got}")
        return _as_array(x, x.dtype, what)
    return _as_array(x, _I16, what)


# --------------------------------------------------------------------------- G.711


def _elementwise(
    x: Any, in_dtype: np.dtype[Any], out_dtype: np.dtype[Any], kernel: str, what: str, name: str
) -> np.ndarray:
    impl = _impl
    if type(x) is _ndarray and x.dtype is in_dtype and impl is not _codec_numpy:
        # C backend: the kernel checks dimensions and contiguity itself; when it refuses,
        # the full check below says what is wrong.
        try:
            out = _empty(len(x), out_dtype)
            getattr(impl, kernel)(x, out)
            return out
        except (TypeError, ValueError, BufferError):
            pass
    a = _as_array(x, in_dtype, what, name=name)
    out = _empty(a.shape[0], out_dtype)
    getattr(impl, kernel)(a, out)
    return out


def ulaw_encode(pcm: Any) -> np.ndarray:
    """PCM16 (int16 array or little-endian bytes) -> mu-law codes (uint8 array)."""
    return _elementwise(pcm, _I16, _U8, "ulaw_encode", "ulaw_encode", "input")


def alaw_encode(pcm: Any) -> np.ndarray:
    """PCM16 (int16 array or little-endian bytes) -> A-law codes (uint8 array)."""
    return _elementwise(pcm, _I16, _U8, "alaw_encode", "alaw_encode", "input")


def ulaw_decode(codes: Any) -> np.ndarray:
    """mu-law codes (uint8 array or bytes) -> PCM16 (int16 array)."""
    return _elementwise(codes, _U8, _I16, "ulaw_decode", "ulaw_decode", "codes")


def alaw_decode(codes: Any) -> np.ndarray:
    """A-law codes (uint8 array or bytes) -> PCM16 (int16 array)."""
    return _elementwise(codes, _U8, _I16, "alaw_decode", "alaw_decode", "codes")


# --------------------------------------------------------------------------- sample formats


def int16_to_float32(pcm: Any) -> np.ndarray:
    """int16 samples -> float32 in [-1, 1), scaled by 1/32768."""
    return _elementwise(pcm, _I16, _F32, "i16_to_f32", "int16_to_float32", "input")


def float32_to_int16(x: Any) -> np.ndarray:
    """float32 samples -> int16: times 32768, rounded half to even, saturated; NaN -> 0."""
    return _elementwise(x, _F32, _I16, "f32_to_i16", "float32_to_int16", "input")


def decode_wire(data: bytes, kind: str) -> np.ndarray:
    """Wire audio bytes of a format ``kind`` (``"pcm"``: little-endian PCM16, ``"pcmu"``, ``"pcma"``)
    -> int16 samples at the same rate.

    Raises:
        AudioError: PCM16 with an odd byte count.
    """
    if kind == "pcmu":
        return ulaw_decode(np.frombuffer(data, dtype=np.uint8))
    if kind == "pcma":
        return alaw_decode(np.frombuffer(data, dtype=np.uint8))
    if len(data) % 2:
        raise AudioError(f"PCM16 audio from the server has an odd byte count ({len(data)})")
    return np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)


def stereo_to_mono(pcm_interleaved: Any) -> np.ndarray:
    """Interleaved L/R samples -> mono, same dtype.

    int16: ``floor((l + r) / 2)`` (exact, cannot overflow); float32: ``(l + r) * 0.5``.
    """
    x = _pcm_array(pcm_interleaved, "stereo_to_mono")
    if x.shape[0] % 2:
        raise AudioError(f"stereo_to_mono: interleaved stereo needs an even sample count, got {x.shape[0]}")
    out = np.empty(x.shape[0] // 2, dtype=x.dtype)
    if x.dtype == _I16:
        _impl.stereo_to_mono_i16(x, out)
    else:
        _impl.stereo_to_mono_f32(x, out)
    return out


def apply_gain(pcm: Any, gain: float) -> np.ndarray:
    """Multiply samples by ``gain`` with saturation, same dtype.

    int16: the exact product rounded half to even and clipped to [-32768, 32767];
    float32: the float32 product clipped to [-1.0, 1.0].  NaN samples become 0.
    """
    x = _pcm_array(pcm, "apply_gain")
    try:
        g = float(gain)
    except (TypeError, ValueError):
        raise AudioTypeError(f"apply_gain: gain must be a real number, got {type(gain).__name__}") from None
    if not math.isfinite(g):
        raise AudioError(f"apply_gain: gain must be finite, got {g}")
    out = np.empty(x.shape[0], dtype=x.dtype)
    if x.dtype == _I16:
        _impl.gain_i16(x, out, g)
    else:
        _impl.gain_f32(x, out, g)
    return out


# --------------------------------------------------------------------------- resampler design

_TAP_MULTIPLE = 8  # taps per phase are padded to a multiple of this (SIMD blocks)
_COEF_SCALE = 1 << 23  # coefficients are integers in Q23 (see _codec_numpy)

# quality -> (filter length in samples of the lower rate, Kaiser beta, cutoff as a
# fraction of the lower rate).  The stopband starts at the lower Nyquist frequency
# (0.5), so nothing above it aliases or images into the band below it:
#   "fast":    passband (<= 0.1 dB ripple) to 0.40, stopband >= 83 dB
#   "default": passband (<= 0.1 dB ripple) to 0.45, stopband >= 99 dB
#   "high":    passband (<= 0.02 dB ripple) to 0.45, stopband about 120 dB (Q23 coefficients)
_QUALITY: dict[str, tuple[int, float, float]] = {
    "fast": (48, 8.25, 0.4425),
    "default": (112, 10.0, 0.471),
    "high": (160, 14.5, 0.471),
}


# A 2:1 decimating pre-stage is used when src_rate >= _PRESTAGE_RATIO * dst_rate and
# the rest needs few phases (48k->16k, 48k->8k, 32k->8k, 24k->8k): its
# transition band is wide (passband to 0.46*dst, stopband from src/2 - dst/2, so
# nothing it lets through aliases below the final Nyquist frequency) and cheap, and
# it halves the rate the long final filter runs at.
_PRESTAGE_RATIO = 2.5
_PRESTAGE_MAX_UP = 4
_PRESTAGE_ATTEN = {"fast": 90.0, "default": 105.0, "high": 125.0}


def _aligned_zeros(n: int, dtype: np.dtype[Any]) -> np.ndarray:
    """Zeroed 1-D array whose data starts on a 64-byte boundary.

    The kernels load coefficients in 32-byte blocks; with taps a multiple of 8
    every bank row then starts aligned, so no load straddles a cache line
    (worth about 10 % on 44.1k->16k).
    """
    raw = np.zeros(n * dtype.itemsize + 64, dtype=np.uint8)
    skip = -raw.ctypes.data % 64
    return raw[skip : skip + n * dtype.itemsize].view(dtype)


class _Stage:
    """One polyphase filter stage: ``up`` rows of ``taps`` integer coefficients."""

    __slots__ = ("banks", "centre", "down", "taps", "up")

    def __init__(self, bank: np.ndarray, up: int, down: int, taps: int, centre: float) -> None:
        # the same integer coefficients in float64 and float32 (exact: |c| < 2^24)
        self.banks = {}
        for dt in (np.float64, np.float32):
            b = _aligned_zeros(bank.size, np.dtype(dt))
            b[...] = bank
            b.flags.writeable = False
            self.banks[np.dtype(dt)] = b
        self.up = up
        self.down = down
        self.taps = taps
        self.centre = centre  # prototype samples


class _Design:
    __slots__ = ("delay", "main", "pre")

    def __init__(self, main: _Stage, pre: _Stage | None, delay: float) -> None:
        self.main = main
        self.pre = pre
        self.delay = delay


def _quantize_rows(bank: np.ndarray) -> np.ndarray:
    """Round each row to integers summing to exactly ``_COEF_SCALE`` (unit DC gain)."""
    q: np.ndarray = np.rint(bank * _COEF_SCALE)
    for row, ideal in zip(q, bank * _COEF_SCALE, strict=True):
        residual = int(_COEF_SCALE - row.sum())
        if residual:
            # nudge the taps whose rounding moved them most in the opposite direction
            order = np.argsort((row - ideal) * np.sign(residual))
            row[order[: abs(residual)]] += np.sign(residual)
    return q


def _stage(up: int, down: int, taps: int, fc: float, beta: float) -> _Stage:
    """Kaiser-windowed sinc with ``up * taps`` prototype taps, cutoff ``fc`` cycles/prototype sample.

    Phase ``p`` tap ``j`` is ``h[p + j*up]``; each row is normalised to unit DC gain,
    quantised to Q23 and stored time-reversed so that output = dot(row, window).
    """
    n_proto = up * taps
    centre = (n_proto - 1) / 2.0
    t = np.arange(n_proto, dtype=np.float64) - centre
    h = 2.0 * fc * np.sinc(2.0 * fc * t) * np.kaiser(n_proto, beta)
    bank = h.reshape(taps, up).T
    bank = bank / bank.sum(axis=1, keepdims=True)
    bank = np.ascontiguousarray(_quantize_rows(bank)[:, ::-1])
    # float32 holds every coefficient exactly, and with |x| <= 2^27 and
    # sum|c| <= 2^25 every sum in the numpy kernel stays below 2^53
    assert float(np.abs(bank).max()) < 1 << 24
    assert float(np.abs(bank).sum(axis=1).max()) <= 4 * _COEF_SCALE
    return _Stage(bank.reshape(-1), up, down, taps, centre)


def _round_taps(n: float) -> int:
    return max(1, int(math.ceil(n / _TAP_MULTIPLE - 1e-9))) * _TAP_MULTIPLE


@functools.lru_cache(maxsize=64)
def _design(src_rate: int, dst_rate: int, quality: str) -> _Design:
    """Filter plan for ``src_rate -> dst_rate`` (cached; the banks are read-only)."""
    n_lo, beta, cutoff = _QUALITY[quality]
    pre = None
    rate = src_rate
    if src_rate >= _PRESTAGE_RATIO * dst_rate and dst_rate // math.gcd(src_rate // 2, dst_rate) <= _PRESTAGE_MAX_UP:
        f_pass, f_stop = 0.46 * dst_rate, src_rate / 2 - dst_rate / 2
        atten = _PRESTAGE_ATTEN[quality]
        taps1 = _round_taps((atten - 7.95) / (14.36 * (f_stop - f_pass) / src_rate) + 1)
        pre = _stage(1, 2, taps1, (f_pass + f_stop) / 2 / src_rate, 0.1102 * (atten - 8.7))
        rate = src_rate // 2
    g = math.gcd(rate, dst_rate)
    up, down = dst_rate // g, rate // g
    f_lo = min(rate, dst_rate)
    taps = _round_taps(n_lo * rate / f_lo)  # filter span in input samples
    main = _stage(up, down, taps, cutoff * f_lo / (rate * up), beta)
    delay = main.centre / down  # output samples
    if pre is not None:
        delay += pre.centre / 2 * up / down
    return _Design(main, pre, delay)


# --------------------------------------------------------------------------- streaming resampler


class Resampler:
    """Streaming rational polyphase resampler (Kaiser-windowed sinc, linear phase).

    ``process(chunk)`` takes a 1-D int16 or float32 array (or PCM16 bytes) and
    returns the output it completes, in the same dtype (int16 output is rounded
    half to even and saturated; float32 input is clipped to [-8, 8], NaN read
    as 0).  A stream's dtype is fixed by its first chunk until ``flush()`` or
    ``reset()``.  ``flush()`` returns the tail still in the filter (as if the
    input were followed by silence) and resets the stream.

    The output for any split of the input into chunks is exactly (bit for bit)
    the one-shot output, and how many samples ``process`` has returned depends
    only on how many it was given: within one sample of ``N * dst_rate /
    src_rate`` after ``N`` inputs.

    ``delay`` is the group delay in **output samples** (a float): output sample
    ``k`` corresponds to input time ``(k - delay) / dst_rate`` seconds.  At the
    default quality it is about 4 ms at 16 kHz output (65 samples for 48k->16k)
    and 8.5 ms for 8k->16k.

    Quality presets, edges as fractions of the lower of the two rates:

    * ``"default"``: passband to 0.45 with <= 0.1 dB ripple; everything at or
      above the lower Nyquist frequency (aliases when downsampling, images
      when upsampling) at least 96 dB down (about 100 dB measured);
    * ``"fast"``: passband to 0.40, about 83 dB, less than half the work;
    * ``"high"``: passband to 0.45 (<= 0.02 dB), about 120 dB.

    Downsampling by 2.5x or more with a small remaining ratio (48k->16k,
    48k->8k, 32k->8k, 24k->8k) runs a short 2:1 stage first.

    The numpy backend computes the same filter in exact integer arithmetic and
    agrees with the C backend within float32 rounding (at most 1 LSB for
    int16).  A Resampler is not thread-safe; use one per stream.

    When ``src_rate == dst_rate`` the stream is a passthrough: ``process``
    returns a copy and ``delay`` is 0.
    """

    __slots__ = (
        "_acc",
        "_bank",
        "_bank1",
        "_down",
        "_dtype",
        "_fast",
        "_impl",
        "_kernel",
        "_passthrough",
        "_taps",
        "_taps1",
        "_up",
        "_work",
        "_work1",
        "_work_dtype",
        "delay",
        "dst_rate",
        "quality",
        "src_rate",
    )

    def __init__(self, src_rate: int, dst_rate: int, *, quality: str = "default") -> None:
        for name, rate in (("src_rate", src_rate), ("dst_rate", dst_rate)):
            if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)):
                raise AudioTypeError(f"Resampler: {name} must be an int, got {type(rate).__name__}")
            if int(rate) not in SUPPORTED_RATES:
                raise AudioError(f"Resampler: unsupported {name} {rate} Hz; supported rates are {RATES_TEXT}")
        if quality not in _QUALITY:
            raise AudioError(f"Resampler: unknown quality {quality!r}; choose one of {sorted(_QUALITY)}")
        self.src_rate = int(src_rate)
        self.dst_rate = int(dst_rate)
        self.quality = quality
        self._passthrough = self.src_rate == self.dst_rate
        self._impl = _impl
        self._work_dtype = np.dtype(_impl.WORK_DTYPE)
        bank_dtype = np.dtype(_impl.BANK_DTYPE)
        self._taps1 = 0  # 2:1 pre-stage taps, 0 when there is none
        if self._passthrough:
            self.delay = 0.0
            self._up = self._down = 1
            self._taps = _TAP_MULTIPLE
            self._bank = np.zeros(_TAP_MULTIPLE, dtype=bank_dtype)
        else:
            d = _design(self.src_rate, self.dst_rate, quality)
            self.delay = d.delay
            self._up, self._down, self._taps = d.main.up, d.main.down, d.main.taps
            self._bank = d.main.banks[bank_dtype]
            if d.pre is not None:
                self._taps1 = d.pre.taps
                self._bank1 = d.pre.banks[bank_dtype]
                self._work1 = _aligned_zeros(self._taps1 - 1 + 4096, self._work_dtype)
        self._work = _aligned_zeros(self._taps - 1 + 4096, self._work_dtype)
        # Stream state, all of it: the input history at the start of the work buffers and
        # the phase accumulator (K*down - N*up; with a pre-stage acc1 + 2*acc2).
        self._acc = 0
        self._dtype: np.dtype[Any] | None = None
        # the C kernel validates its buffers itself, so process() can skip the Python checks
        self._fast = _impl is not _codec_numpy and not self._passthrough
        self._kernel = _impl.resample

    def __repr__(self) -> str:
        pre = f" pre-stage 2:1 taps={self._taps1}" if self._taps1 else ""
        return (
            f"Resampler({self.src_rate}, {self.dst_rate}, quality={self.quality!r}) "
            f"[up={self._up} down={self._down} taps/phase={self._taps}{pre} delay={self.delay:.3f} samples]"
        )

    def reset(self) -> None:
        """Forget all input: clear the history and phase, unlock the dtype."""
        self._work[: self._taps - 1] = 0.0
        if self._taps1:
            self._work1[: self._taps1 - 1] = 0.0
        self._acc = 0
        self._dtype = None

    def _check(self, chunk: Any) -> np.ndarray:
        x = _pcm_array(chunk, "Resampler.process")
        if self._dtype is None:
            self._dtype = x.dtype
        elif x.dtype != self._dtype:
            raise AudioTypeError(
                f"Resampler.process: this stream carries {self._dtype.name}, got {x.dtype.name}; "
                "call reset() to change dtype"
            )
        return x

    def _grown(self, work: np.ndarray, hist: int, n: int) -> np.ndarray:
        need = hist + n
        new = _aligned_zeros(need + need // 2, self._work_dtype)
        new[:hist] = work[:hist]
        return new

    def _step(self, x: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
        n = len(x)
        up, down, acc = self._up, self._down, self._acc
        if self._taps1:
            t = n - (acc & 1)
            n1 = (t + 1) >> 1 if t > 0 else 0
            t = n1 * up - (acc >> 1)
            out = np.empty((t + down - 1) // down if t > 0 else 0, dtype=dtype)
            if self._work1.shape[0] < self._taps1 - 1 + n:
                self._work1 = self._grown(self._work1, self._taps1 - 1, n)
            if self._work.shape[0] < self._taps - 1 + n1:
                self._work = self._grown(self._work, self._taps - 1, n1)
            self._acc = self._impl.resample2(
                self._bank1,
                self._taps1,
                self._work1,
                self._bank,
                up,
                down,
                self._taps,
                self._work,
                x,
                acc,
                out,
            )
            return out
        t = n * up - acc
        out = np.empty((t + down - 1) // down if t > 0 else 0, dtype=dtype)
        if self._work.shape[0] < self._taps - 1 + n:
            self._work = self._grown(self._work, self._taps - 1, n)
        self._acc = self._impl.resample(self._bank, up, down, self._taps, self._work, x, acc, out)
        return out

    def process(self, chunk: Any) -> np.ndarray:
        """Feed a chunk; return the output samples it completes (same dtype as the input)."""
        if self._fast and type(chunk) is _ndarray and chunk.dtype is self._dtype:
            # Hot path for the C backend: the kernel itself rejects anything that is not
            # a 1-D C-contiguous buffer of the right type; on error the full check below
            # produces the descriptive message.
            try:
                if self._taps1:
                    return self._step(chunk, self._dtype)
                n = len(chunk)
                up, down, acc = self._up, self._down, self._acc
                t = n * up - acc
                out = _empty((t + down - 1) // down if t > 0 else 0, self._dtype)
                if self._work.shape[0] < self._taps - 1 + n:
                    self._work = self._grown(self._work, self._taps - 1, n)
                self._acc = self._kernel(self._bank, up, down, self._taps, self._work, chunk, acc, out)
                return out
            except (TypeError, ValueError, BufferError):
                self._check(chunk)
                raise
        x = self._check(chunk)
        if self._passthrough:
            return x.copy()
        return self._step(x, x.dtype)

    def flush(self) -> np.ndarray:
        """Return the tail still held in the filter (input padded with silence), then reset."""
        dtype = self._dtype if self._dtype is not None else _I16
        if self._passthrough:
            self.reset()
            return np.empty(0, dtype=dtype)
        # enough silence to push the last input sample through the filter centre
        pad = int(math.ceil(self.delay * self.src_rate / self.dst_rate)) + 1
        out = self._step(np.zeros(pad, dtype=dtype), dtype)
        self.reset()
        return out
