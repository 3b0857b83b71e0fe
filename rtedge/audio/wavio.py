"""WAV files: a RIFF reader for the PCM flavours recorders write, and a 16-bit mono writer.

:func:`read_wav` reads integer PCM (8, 16, 24, 32 bit), IEEE float (32, 64 bit), G.711 A-law/mu-law and
their ``WAVE_FORMAT_EXTENSIBLE`` spellings, any channel count, and returns int16 mono.  The stdlib
``wave`` module reads 16-bit integer PCM only and calls a float file "unknown format: 3".

Owns: reading and writing WAV files.  Must not: pace or play audio.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import struct
import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import AudioError
from . import codec
from .codec import stereo_to_mono

log = logging.getLogger("rtedge.audio.wavio")

PCM, FLOAT, ALAW, ULAW, EXTENSIBLE = 0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE
#: names of the format tags people meet, for the message refusing them
FORMAT_NAMES = {0x0002: "Microsoft ADPCM", 0x0011: "IMA ADPCM", 0x0031: "GSM 6.10", 0x0050: "MPEG",
                0x0055: "MP3", 0x0092: "AC-3", 0x00FF: "AAC", 0x1610: "AAC", 0x674F: "Vorbis",
                0xF1AC: "FLAC"}
_SUPPORTED = "integer PCM (8/16/24/32-bit), float PCM (32/64-bit), A-law or mu-law"
_CONVERT = "convert it with: sox IN.wav -b 16 -e signed-integer OUT.wav"
#: a data size of 0 or 0xFFFFFFFF means "until the end of the file" (a recorder writing to a pipe)
_STREAMING_SIZES = (0, 0xFFFFFFFF)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV file as mono int16 samples and its sample rate.

    Channels are averaged to mono; wider samples are scaled to 16 bits, floats clipped to [-1, 1].
    A file shorter than its header says (a copy cut short) is read as far as it goes, with a warning.
    ``path`` may be a pipe (``/dev/stdin``, a FIFO), read whole; ``"-"`` is standard input.

    Raises:
        AudioError: the file is missing, empty, not a WAV, or in a format named in the message that
            rtedge does not read.
    """
    try:
        with open(0 if str(path) == "-" else path, "rb", closefd=str(path) != "-") as fh:
            source: BinaryIO = fh
            info = os.fstat(fh.fileno())
            size = info.st_size
            if not stat.S_ISREG(info.st_mode):  # a pipe has no size and cannot seek past a chunk: read it whole
                source = io.BytesIO(fh.read())
                size = len(source.getbuffer())
            if size == 0:
                raise AudioError(f"{path}: empty file (0 bytes), not a WAV file")
            fmt, data, truncated = _parse(source, size, str(path))
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AudioError(f"{path}: is a directory, not a WAV file") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror or exc})") from None
    tag, channels, rate, bits = fmt
    block = channels * bits // 8
    whole = len(data) // block * block
    if truncated is not None:
        log.warning("%s: truncated: the header announces %.2f s, the file holds %.2f s; using what is there",
                    path, truncated / block / rate, whole / block / rate)
    samples = _to_int16(np.frombuffer(data[:whole], dtype=np.uint8), tag, bits)
    if channels > 1:
        samples = _mix_down(samples, channels)
    return samples, rate


def _parse(fh: BinaryIO, size: int, name: str) -> tuple[tuple[int, int, int, int], bytes, int | None]:
    """(format, the data chunk's bytes, the announced data size when the file is shorter, else None)."""
    head = fh.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        raise AudioError(f"{name}: not a WAV file (no RIFF/WAVE header)")
    if head[:4] == b"RIFX":
        raise AudioError(f"{name}: big-endian WAV (RIFX); {_CONVERT}")
    fmt: tuple[int, int, int, int] | None = None
    while True:
        chunk = fh.read(8)
        if len(chunk) < 8:
            raise AudioError(f"{name}: not a readable WAV file (no data chunk"
                             f"{'' if fmt else ' and no fmt chunk'})")
        cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"fmt ":
            fmt = _format(fh.read(csize), name)
            fh.read(csize & 1)
        elif cid == b"data":
            if fmt is None:
                raise AudioError(f"{name}: not a readable WAV file (data before the fmt chunk)")
            if csize in _STREAMING_SIZES:
                return fmt, fh.read(), None
            data = fh.read(csize)
            return fmt, data, (csize if len(data) < csize else None)
        else:
            fh.seek(csize + (csize & 1), 1)


def _format(raw: bytes, name: str) -> tuple[int, int, int, int]:
    """(format tag, channels, rate, bits per sample) of a fmt chunk, checked."""
    if len(raw) < 16:
        raise AudioError(f"{name}: not a readable WAV file (fmt chunk of {len(raw)} bytes)")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", raw[:16])
    if tag == EXTENSIBLE:
        if len(raw) < 40:
            raise AudioError(f"{name}: not a readable WAV file (WAVE_FORMAT_EXTENSIBLE without a subformat)")
        tag = struct.unpack("<H", raw[24:26])[0]  # the subformat GUID starts with the plain format tag
    if tag not in (PCM, FLOAT, ALAW, ULAW):
        what = FORMAT_NAMES.get(tag, f"format tag 0x{tag:04x}")
        raise AudioError(f"{name}: {what} audio; rtedge reads {_SUPPORTED}: {_CONVERT}")
    ok_bits = {PCM: (8, 16, 24, 32), FLOAT: (32, 64), ALAW: (8,), ULAW: (8,)}[tag]
    if bits not in ok_bits:
        kind = {PCM: "integer", FLOAT: "float", ALAW: "A-law", ULAW: "mu-law"}[tag]
        raise AudioError(f"{name}: {bits}-bit {kind} samples; rtedge reads {_SUPPORTED}: {_CONVERT}")
    if channels < 1 or not 1000 <= rate <= 384000:
        raise AudioError(f"{name}: not a readable WAV file ({channels} channels at {rate} Hz)")
    return tag, channels, rate, bits


def _to_int16(raw: np.ndarray, tag: int, bits: int) -> np.ndarray:
    """Interleaved samples of any supported format (as bytes) -> int16."""
    if tag in (ALAW, ULAW):
        return (codec.alaw_decode if tag == ALAW else codec.ulaw_decode)(raw)
    if tag == FLOAT:
        x = raw.view("<f4" if bits == 32 else "<f8").astype(np.float64)
        return np.round(np.clip(np.nan_to_num(x), -1.0, 1.0) * 32767.0).astype(np.int16)
    if bits == 8:
        return ((raw.astype(np.int16) - 128) << 8).astype(np.int16)
    if bits == 16:
        return raw.view("<i2").astype(np.int16)
    if bits == 24:
        b = raw.reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return ((value << 8) >> 16).astype(np.int16)  # sign-extend the 24-bit value, keep the top 16 bits
    return (raw.view("<i4") >> 16).astype(np.int16)


def _mix_down(samples: np.ndarray, channels: int) -> np.ndarray:
    if channels == 2:
        return stereo_to_mono(samples)
    frames = samples.reshape(-1, channels).astype(np.int32)
    mixed: np.ndarray = (frames.sum(axis=1) // channels).astype(np.int16)
    return mixed


def check_writable(path: str | Path) -> None:
    """Raise AudioError now if ``path`` cannot be created or written (before a session is opened for it).

    The check opens the file for appending, so it sees what a later write would (permissions, a read-only
    or full file system, a directory in the way); a file that did not exist is removed again.
    """
    existed = os.path.lexists(path)
    try:
        open(path, "ab").close()
    except OSError as exc:
        raise AudioError(f"{path}: cannot write ({exc.strerror or exc})") from None
    if not existed:
        os.unlink(path)


class WavWriter:
    """Append int16 mono samples to a WAV file; ``close()`` finalises the header.

    Raises:
        AudioError: the file cannot be created (a directory, a missing folder, no permission); nothing
            is left behind then.
    """

    def __init__(self, path: str | Path, rate: int) -> None:
        try:
            # opened here, not by wave.open(path): a failed open inside wave leaves a half-built writer
            # whose __del__ prints "Exception ignored" at exit
            self._file: BinaryIO = open(path, "wb")
        except OSError as exc:
            raise AudioError(f"{path}: cannot write ({exc.strerror or exc})") from None
        self._wav = wave.open(self._file, "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self.rate = rate
        self.frames = 0

    def write(self, samples: np.ndarray) -> None:
        self._wav.writeframes(samples.astype("<i2", copy=False).tobytes())
        self.frames += len(samples)

    def close(self) -> None:
        try:
            self._wav.close()
        finally:
            self._file.close()
