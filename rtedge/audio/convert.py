"""Streaming conversion between application PCM and a wire :class:`AudioFormat`.

:class:`InputConverter` turns int16 PCM at any supported rate into the bytes
the session expects (resampled with stream state, so no click at chunk
boundaries; G.711-encoded for ``pcmu``/``pcma``).  :class:`OutputDecoder`
turns wire bytes back into int16 PCM at the format's rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import AudioError
from ..protocol.config import AudioFormat
from . import codec


def as_pcm16(pcm: Any, *, channels: int = 1) -> np.ndarray:
    """Validate application audio and return 1-D int16 mono samples.

    Accepts a 1-D int16 array, a 2-D int16 array ``(frames, 2)`` (mixed to mono), or bytes of
    little-endian int16 (interleaved when ``channels == 2``).

    Raises:
        AudioError: wrong dtype, shape, or an odd byte count.
    """
    if isinstance(pcm, bytes | bytearray | memoryview):
        data = bytes(pcm)
        if len(data) % (2 * channels):
            raise AudioError(f"PCM16 byte count must be a multiple of {2 * channels}, got {len(data)}")
        arr = np.frombuffer(data, dtype="<i2")
        return codec.stereo_to_mono(arr) if channels == 2 else arr
    if not isinstance(pcm, np.ndarray):
        raise AudioError(f"audio must be an int16 numpy array or bytes, got {type(pcm).__name__}")
    if pcm.dtype != np.int16:
        raise AudioError(f"audio must be int16 PCM, got dtype {pcm.dtype}; convert with codec.float32_to_int16")
    if pcm.ndim == 2 and pcm.shape[1] == 2:
        return codec.stereo_to_mono(np.ascontiguousarray(pcm).reshape(-1))
    if pcm.ndim == 2 and pcm.shape[1] == 1:
        return pcm[:, 0]
    if pcm.ndim != 1:
        raise AudioError(f"audio must be 1-D mono or (frames, 1|2), got shape {pcm.shape}")
    return pcm


class InputConverter:
    """int16 PCM at ``rate`` -> wire bytes in ``fmt``; keeps resampler state between calls.

    A change of input rate or of the target format starts a new stream.
    """

    def __init__(self, fmt: AudioFormat) -> None:
        self.fmt = fmt
        self._rate: int | None = None
        self._resampler: codec.Resampler | None = None

    def convert(self, pcm: Any, rate: int) -> bytes:
        """Convert one chunk; returns the wire bytes (possibly empty while the resampler primes)."""
        samples = as_pcm16(pcm)
        if rate != self._rate:
            self._rate = rate
            self._resampler = None if rate == self.fmt.rate else codec.Resampler(rate, self.fmt.rate)
        if self._resampler is not None:
            samples = self._resampler.process(samples)
        return encode_pcm(samples, self.fmt)

    def flush(self) -> bytes:
        """The tail the resampler still holds (call at the end of a stream)."""
        if self._resampler is None:
            return b""
        tail = self._resampler.flush()
        self._resampler.reset()
        return encode_pcm(tail, self.fmt)


def encode_pcm(samples: np.ndarray, fmt: AudioFormat) -> bytes:
    """int16 samples already at ``fmt.rate`` -> wire bytes."""
    if fmt.kind == "pcmu":
        return codec.ulaw_encode(samples).tobytes()
    if fmt.kind == "pcma":
        return codec.alaw_encode(samples).tobytes()
    return samples.astype("<i2", copy=False).tobytes()


def decode_pcm(data: bytes, fmt: AudioFormat) -> np.ndarray:
    """Wire bytes in ``fmt`` -> int16 samples at ``fmt.rate``."""
    if fmt.kind == "pcmu":
        return codec.ulaw_decode(np.frombuffer(data, dtype=np.uint8))
    if fmt.kind == "pcma":
        return codec.alaw_decode(np.frombuffer(data, dtype=np.uint8))
    if len(data) % 2:
        raise AudioError(f"PCM16 audio from the server has an odd byte count ({len(data)})")
    return np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)
