"""Wire audio formats and a deterministic speech-like synthesizer for the test server.

Theory of operation
-------------------
:class:`WireFormat` turns a GA format object (``{"type": "audio/pcm", "rate":
24000}``, ``{"type": "audio/pcmu"}``, ``{"type": "audio/pcma"}``) into a
decoder/encoder between base64 payload bytes and int16 samples at the
format's own rate (24 kHz for PCM, 8 kHz for G.711).  G.711 goes through
``rtedge.audio.codec``.

:func:`synthesize` makes "speech" without any model: every character of the
reply text becomes a short segment (vowels are harmonic tones shaped by two
formants, voiced consonants are weaker tones, other letters are soft noise,
spaces and punctuation are pauses), stitched with short fades.  It is
deterministic (the noise generator is seeded from the text), has a falling
pitch contour so it sounds voice-like, lasts roughly 60-80 ms per character,
and reports where each character starts so transcript deltas can be timed
against the audio.  Results are cached, so a repeated reply costs nothing.

Owns: the test server's audio formats and synthesizer.  Must not: read the clock (it is deterministic).
"""

from __future__ import annotations

import functools
import zlib
from typing import Any, Mapping

import numpy as np

from rtedge.audio import codec

__all__ = ["WireFormat", "resample", "synthesize"]

PCM_RATE = 24000
G711_RATE = 8000


class WireFormat:
    """Encoder/decoder for one GA audio format.

    Args:
        fmt: A normalized GA format object.
    """

    def __init__(self, fmt: Mapping[str, Any]) -> None:
        self.kind: str = str(fmt.get("type", "audio/pcm"))
        rate = fmt.get("rate", PCM_RATE)  # GA PCM is 24 kHz only; DashScope's input is 16 kHz
        pcm_rate = rate if isinstance(rate, int) and rate > 0 else PCM_RATE
        self.rate: int = pcm_rate if self.kind == "audio/pcm" else G711_RATE
        self.bytes_per_sample: int = 2 if self.kind == "audio/pcm" else 1

    def decode(self, payload: bytes) -> np.ndarray:
        """Wire bytes -> int16 samples at :attr:`rate` (a trailing odd byte of PCM is dropped)."""
        if self.kind == "audio/pcmu":
            return codec.ulaw_decode(np.frombuffer(payload, dtype=np.uint8))
        if self.kind == "audio/pcma":
            return codec.alaw_decode(np.frombuffer(payload, dtype=np.uint8))
        usable = len(payload) - len(payload) % 2
        return np.frombuffer(payload[:usable], dtype="<i2").astype(np.int16)

    def encode(self, samples: np.ndarray) -> bytes:
        """int16 samples at :attr:`rate` -> wire bytes."""
        pcm = np.ascontiguousarray(samples, dtype=np.int16)
        if self.kind == "audio/pcmu":
            return bytes(codec.ulaw_encode(pcm))
        if self.kind == "audio/pcma":
            return bytes(codec.alaw_encode(pcm))
        return pcm.astype("<i2").tobytes()

    def ms_to_samples(self, ms: float) -> int:
        return int(round(ms * self.rate / 1000.0))

    def samples_to_ms(self, samples: int) -> int:
        return int(samples * 1000 // self.rate)


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """One-shot int16 resampling with the project's polyphase resampler."""
    if src_rate == dst_rate:
        return np.asarray(samples, dtype=np.int16).copy()
    rs = codec.Resampler(src_rate, dst_rate)
    out = rs.process(np.ascontiguousarray(samples, dtype=np.int16))
    return np.concatenate([out, rs.flush()]).astype(np.int16)


# ---------------------------------------------------------------------------
# synthesizer

_VOWELS = {  # first two formants (Hz)
    "a": (730, 1090), "e": (530, 1840), "i": (270, 2290), "o": (570, 840), "u": (300, 870), "y": (300, 2200),
}
_VOICED = set("bdglmnrvwzj")
_PAUSE_MS = {" ": 40, ",": 110, ";": 110, ":": 110, ".": 150, "!": 150, "?": 150, "-": 60}


def _char_ms(ch: str) -> int:
    low = ch.lower()
    if low in _PAUSE_MS:
        return _PAUSE_MS[low]
    if low in _VOWELS:
        return 80
    if low.isdigit():
        return 90
    return 60


def _formant_weights(freqs: np.ndarray, formants: tuple[int, int]) -> np.ndarray:
    bandwidth = 110.0
    weight = np.zeros_like(freqs)
    for i, centre in enumerate(formants):
        weight += (0.6 if i else 1.0) / (1.0 + ((freqs - centre) / bandwidth) ** 2)
    tilted: np.ndarray = weight / np.arange(1, len(freqs) + 1) ** 0.3
    return tilted


def _tone(phase: np.ndarray, f0: float, rate: int, formants: tuple[int, int]) -> np.ndarray:
    top = min(3800.0, rate / 2 - 300.0)
    harmonics = np.arange(1, max(2, int(top // f0)) + 1)
    weights = _formant_weights(harmonics * f0, formants)
    seg = np.sin(np.outer(phase, harmonics)) @ weights
    normalized: np.ndarray = seg / max(1e-9, float(np.abs(seg).max()))
    return normalized


def _fade(n: int, rate: int) -> np.ndarray:
    env = np.ones(n)
    ramp = min(n // 2, int(0.008 * rate))
    if ramp > 0:
        shape = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, ramp))
        env[:ramp] = shape
        env[n - ramp :] = shape[::-1]
    return env


def _segment(ch: str, n: int, t0: float, f0: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    low = ch.lower()
    seg: np.ndarray
    if low in _PAUSE_MS or n == 0:
        seg = np.zeros(n)
    elif low in _VOWELS or low.isdigit():
        phase = 2 * np.pi * f0 * (t0 + np.arange(n) / rate)
        seg = 0.9 * _tone(phase, f0, rate, _VOWELS.get(low, (500, 1500))) * _fade(n, rate)
    elif low in _VOICED:
        phase = 2 * np.pi * f0 * (t0 + np.arange(n) / rate)
        seg = 0.45 * _tone(phase, f0, rate, (400, 1300)) * _fade(n, rate)
    else:
        noise = np.diff(rng.standard_normal(n + 1))  # tilted towards high frequencies, like fricatives
        seg = 0.12 * noise / max(1e-9, float(np.abs(noise).max())) * _fade(n, rate)
    return seg


@functools.lru_cache(maxsize=64)
def _synthesize_cached(text: str, rate: int) -> tuple[np.ndarray, tuple[int, ...]]:
    rng = np.random.default_rng(zlib.crc32(text.encode("utf-8")))
    lengths = [int(_char_ms(ch) * rate / 1000) for ch in text]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    total = int(offsets[-1])
    out = np.zeros(total)
    for i, ch in enumerate(text):
        start = int(offsets[i])
        progress = start / max(1, total)
        f0 = 150.0 - 40.0 * progress  # a falling declarative contour
        out[start : start + lengths[i]] = _segment(ch, lengths[i], start / rate, f0, rate, rng)
    pcm = np.round(out * 0.35 * 32767).astype(np.int16)
    pcm.flags.writeable = False
    return pcm, tuple(int(o) for o in offsets)


def synthesize(text: str, rate: int = PCM_RATE) -> tuple[np.ndarray, tuple[int, ...]]:
    """Speech-like int16 audio for ``text``.

    Args:
        text: The words to "say".
        rate: Output sample rate (24000 or 8000).

    Returns:
        ``(samples, offsets)``: read-only int16 samples, and for every character
        ``i`` the sample index where it starts (``offsets[len(text)]`` is the end).
    """
    return _synthesize_cached(text, rate)
