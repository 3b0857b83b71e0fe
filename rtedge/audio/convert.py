"""Streaming conversion between application PCM and a wire :class:`AudioFormat`.

:class:`InputConverter` turns int16 PCM at any supported rate into the bytes
the session expects (resampled with stream state, so no click at chunk
boundaries; G.711-encoded for ``pcmu``/``pcma``).  :func:`decode_pcm`
turns wire bytes back into int16 PCM at the format's rate.

Importing this module is cheap: numpy and the codec are imported on first
use.  Mono PCM16 that is already at the wire rate and format (int16 samples
or bytes) takes a fast path that never needs them: a client that appends
bytes never imports numpy, and an int16 array costs one ``tobytes()``.

Owns: application PCM <-> a wire format, with resampler state between chunks.  Must not: import numpy for the
PCM16 pass-through (a client appending bytes never loads it).
"""

from __future__ import annotations

import numbers
import sys
from typing import TYPE_CHECKING, Any

from ..errors import AudioError
from ..protocol.config import AudioFormat
from . import RATES_TEXT, SUPPORTED_RATES

if TYPE_CHECKING:
    import numpy as np

    from .codec import Resampler

_BYTES_LIKE = (bytes, bytearray, memoryview)
_LITTLE = sys.byteorder == "little"


def _wire_pcm16(pcm: Any) -> bytes | None:
    """The wire bytes of mono PCM16 that needs no conversion, or None when it needs the full path.

    Bytes pass as they are (a bytearray or memoryview is copied once); a 1-D int16 array becomes its
    little-endian bytes.  Anything unusual (odd byte counts, stereo, other dtypes) returns None so that
    :func:`as_pcm16` validates it and raises the right error.
    """
    kind = type(pcm)
    if kind is bytes:
        raw: bytes = pcm
        return raw if not len(raw) % 2 else None
    if kind is bytearray or kind is memoryview:
        data = bytes(pcm)
        return data if not len(data) % 2 else None
    np_mod = sys.modules.get("numpy")  # an ndarray means numpy is already imported
    if np_mod is not None and kind is np_mod.ndarray and pcm.ndim == 1 and pcm.dtype == np_mod.int16:
        wire: bytes = pcm.tobytes() if _LITTLE or pcm.dtype.byteorder == "<" else pcm.astype("<i2").tobytes()
        return wire
    return None


def as_pcm16(pcm: Any, *, channels: int = 1) -> np.ndarray:
    """Validate application audio and return 1-D int16 mono samples.

    Accepts a 1-D int16 array, a 2-D int16 array ``(frames, 2)`` (mixed to mono), or bytes of
    little-endian int16 (interleaved when ``channels == 2``).

    Raises:
        AudioError: wrong dtype, shape, or an odd byte count.
    """
    # lazy: start-up cost (numpy): a client that appends bytes never imports it
    import numpy as np

    from . import codec  # lazy: start-up cost (numpy), as above

    if isinstance(pcm, _BYTES_LIKE):
        data = bytes(pcm)
        if len(data) % (2 * channels):
            raise AudioError(f"PCM16 byte count must be a multiple of {2 * channels}, got {len(data)}")
        samples = np.frombuffer(data, dtype="<i2")
        return codec.stereo_to_mono(samples) if channels == 2 else samples
    if not isinstance(pcm, np.ndarray):
        raise AudioError(f"audio must be an int16 numpy array or bytes, got {type(pcm).__name__}")
    arr: np.ndarray = pcm
    if arr.dtype != np.int16:
        if arr.dtype.kind != "i" or arr.dtype.itemsize != 2:
            raise AudioError(f"audio must be int16 PCM, got dtype {arr.dtype}; {_dtype_hint(arr.dtype)}")
        arr = arr.astype(np.int16)  # int16 in the other byte order
    if arr.ndim == 2 and arr.shape[1] == 2:
        return codec.stereo_to_mono(np.ascontiguousarray(arr).reshape(-1))
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        transposed = arr.ndim == 2 and arr.shape[0] in (1, 2) and arr.shape[1] > 2
        raise AudioError(f"audio must be 1-D mono or (frames, 1|2), got shape {arr.shape}"
                         + ("; channels go last: pass the array's .T" if transposed else ""))
    return np.ascontiguousarray(arr)  # a strided view (x[::2], stereo[:, 0]) is copied; others are not


def _dtype_hint(dtype: np.dtype[Any]) -> str:
    """How to turn samples of ``dtype`` into int16, for an error message."""
    if dtype.kind == "f":
        return "for floats in [-1, 1) use rtedge.audio.codec.float32_to_int16(x.astype(numpy.float32))"
    if dtype.kind == "i" and dtype.itemsize == 4:
        return "for 32-bit samples keep the top 16 bits: (x >> 16).astype(numpy.int16)"
    if dtype.kind == "u" and dtype.itemsize == 1:
        return "for 8-bit WAV samples: ((x.astype(numpy.int16) - 128) << 8)"
    return "scale the samples to 16 bits and pass x.astype(numpy.int16)"


class InputConverter:
    """int16 PCM at ``rate`` -> wire bytes in ``fmt``; keeps resampler state between calls.

    A change of input rate starts a new stream, after the tail the old stream's resampler still held.
    """

    def __init__(self, fmt: AudioFormat) -> None:
        self.fmt = fmt
        self._rate: int | None = None
        self._resampler: Resampler | None = None
        self._passthrough = fmt.kind == "pcm"

    def convert(self, pcm: Any, rate: int) -> bytes:
        """Convert one chunk; returns the wire bytes (possibly empty while the resampler primes).

        Raises:
            AudioError: audio of a type, dtype or shape it does not take, or a rate it cannot convert
                (AudioTypeError, also a TypeError, for a rate that is not an int).
        """
        if type(rate) is not int:  # the one check of every call (a float rate equal to the wire rate too)
            _check_rate_type(rate)
        if rate == self.fmt.rate and self._passthrough and self._resampler is None:
            data = _wire_pcm16(pcm)
            if data is not None:
                self._rate = rate
                return data
        samples = as_pcm16(pcm)
        tail = b""
        if rate != self._rate:
            resampler = None
            if rate != self.fmt.rate:
                _check_rate(rate, self.fmt.rate)
                # lazy: start-up cost (numpy): a client that appends bytes never imports it
                from .codec import Resampler

                resampler = Resampler(rate, self.fmt.rate)  # raises for a rate it does not take
            tail = self.flush()  # the old stream's last samples, still in its resampler
            self._rate, self._resampler = rate, resampler  # only once it is taken: a refused rate stays refused
        if self._resampler is not None:
            samples = self._resampler.process(samples)
        return tail + encode_pcm(samples, self.fmt)

    def flush(self) -> bytes:
        """The tail the resampler still holds (call at the end of a stream)."""
        if self._resampler is None:
            return b""
        tail = self._resampler.flush()
        self._rate, self._resampler = None, None  # the next chunk starts a new stream (and has no tail to send)
        return encode_pcm(tail, self.fmt)


def _check_rate(rate: Any, wire_rate: int) -> None:
    """Raise AudioError (AudioTypeError for a non-int) when ``rate`` cannot be converted to ``wire_rate``."""
    _check_rate_type(rate)
    if rate not in SUPPORTED_RATES:
        raise AudioError(f"audio at {rate} Hz cannot be converted to the session's {wire_rate} Hz; "
                         f"pass audio at one of {RATES_TEXT}")


def _check_rate_type(rate: Any) -> None:
    """Raise AudioTypeError (an AudioError and a TypeError) unless ``rate`` is an int (numpy's too)."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Integral):
        # lazy: start-up cost (numpy): the error class lives in the codec module
        from .codec import AudioTypeError

        raise AudioTypeError(f"the audio's rate must be an int (Hz), got {rate!r}")


def encode_pcm(samples: np.ndarray, fmt: AudioFormat) -> bytes:
    """int16 samples already at ``fmt.rate`` -> wire bytes."""
    # lazy: start-up cost (numpy): a client that appends bytes never imports it
    from . import codec

    if fmt.kind == "pcmu":
        return codec.ulaw_encode(samples).tobytes()
    if fmt.kind == "pcma":
        return codec.alaw_encode(samples).tobytes()
    return samples.astype("<i2", copy=False).tobytes()


def decode_pcm(data: bytes, fmt: AudioFormat) -> np.ndarray:
    """Wire bytes in ``fmt`` -> int16 samples at ``fmt.rate`` (:func:`rtedge.audio.codec.decode_wire`)."""
    from . import codec  # lazy: start-up cost (numpy) of a client that appends bytes

    return codec.decode_wire(data, fmt.kind)
