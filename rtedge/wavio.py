"""Small WAV helpers on the stdlib ``wave`` module (16-bit PCM only)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from .errors import AudioError


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV as mono int16 samples and its sample rate.

    Stereo is mixed to mono.

    Raises:
        AudioError: the file is missing, not a WAV, or not 16-bit PCM.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            data = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"{path}: not a readable WAV file ({exc})") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if width != 2:
        raise AudioError(f"{path}: {8 * width}-bit samples; rtedge reads 16-bit PCM WAV (convert with sox -b 16)")
    if channels not in (1, 2):
        raise AudioError(f"{path}: {channels} channels; rtedge reads mono or stereo")
    samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
    if channels == 2:
        from .audio.codec import stereo_to_mono

        samples = stereo_to_mono(samples)
    return samples, rate


class WavWriter:
    """Append int16 mono samples to a WAV file; ``close()`` finalises the header."""

    def __init__(self, path: str | Path, rate: int) -> None:
        try:
            self._wav = wave.open(str(path), "wb")
        except OSError as exc:
            raise AudioError(f"{path}: cannot write ({exc.strerror or exc})") from None
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self.rate = rate
        self.frames = 0

    def write(self, samples: np.ndarray) -> None:
        self._wav.writeframes(samples.astype("<i2", copy=False).tobytes())
        self.frames += len(samples)

    def close(self) -> None:
        self._wav.close()
