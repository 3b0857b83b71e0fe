"""rtedge.audio.convert: the no-conversion fast path agrees with the full path, and start-up stays lean."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rtedge.audio.convert import InputConverter, as_pcm16, encode_pcm
from rtedge.errors import AudioError
from rtedge.protocol.config import AudioFormat

PCM24 = AudioFormat.pcm(24000)


def _full_path(pcm: object) -> bytes:
    return encode_pcm(as_pcm16(pcm), PCM24)


@pytest.mark.parametrize("make", [
    lambda a: a,
    lambda a: a.tobytes(),
    lambda a: bytearray(a.tobytes()),
    lambda a: memoryview(a.tobytes()),
    lambda a: np.repeat(a, 2)[::2],  # a strided (non-contiguous) view
], ids=["int16", "bytes", "bytearray", "memoryview", "strided"])
def test_passthrough_gives_the_same_bytes_as_the_full_path(make) -> None:  # type: ignore[no-untyped-def]
    samples = np.random.default_rng(1).integers(-32768, 32767, 480, dtype=np.int16)
    pcm = make(samples)
    assert InputConverter(PCM24).convert(pcm, 24000) == _full_path(pcm) == samples.astype("<i2").tobytes()


@pytest.mark.parametrize("bad, message", [
    (b"\x00\x01\x02", "multiple of 2"),
    (np.zeros(10, dtype=np.float32), "int16"),
    ([0, 1, 2], "numpy array or bytes"),
    (np.zeros((4, 3), dtype=np.int16), "shape"),
    (np.zeros(10, dtype=np.dtype(np.int16).newbyteorder()), "int16"),  # the other byte order
])
def test_what_the_fast_path_refuses_still_raises(bad: object, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        InputConverter(PCM24).convert(bad, 24000)


def test_stereo_is_still_mixed_to_mono() -> None:
    stereo = np.array([[100, 300], [-100, -300]], dtype=np.int16)
    assert InputConverter(PCM24).convert(stereo, 24000) == np.array([200, -200], dtype="<i2").tobytes()


def test_a_rate_change_after_passthrough_starts_a_resampled_stream_and_back() -> None:
    conv = InputConverter(PCM24)
    tone = (3000 * np.sin(np.arange(1600) * 0.05)).astype(np.int16)
    assert conv.convert(tone, 24000) == tone.tobytes()
    resampled = b"".join(conv.convert(tone[i:i + 160], 16000) for i in range(0, 1600, 160)) + conv.flush()
    assert 2400 <= len(resampled) // 2 <= 2600  # 100 ms at 16 kHz -> 2400 samples at 24 kHz, + the filter tail
    assert conv.convert(tone, 24000) == tone.tobytes()  # back at the wire rate: no resampler tail left
    assert conv.flush() == b""


@pytest.mark.parametrize("rate", [7, 0, -16000])
def test_a_refused_rate_stays_refused(rate: int) -> None:
    """A rate the resampler does not take raises on every call, not only the first (the second call used
    to send the samples unconverted, as if they were at the wire rate)."""
    conv = InputConverter(PCM24)
    tone = (3000 * np.sin(np.arange(160) * 0.05)).astype(np.int16)
    for _ in range(2):
        with pytest.raises(AudioError, match="unsupported src_rate"):
            conv.convert(tone, rate)
    assert conv.convert(tone, 24000) == tone.tobytes()


def test_g711_formats_never_take_the_passthrough() -> None:
    samples = np.array([0, 1000, -1000, 32767], dtype=np.int16)
    assert len(InputConverter(AudioFormat.pcmu()).convert(samples, 8000)) == 4  # one byte a sample


def test_client_import_and_bytes_append_do_not_import_numpy() -> None:
    code = ("import sys\n"
            "import rtedge, rtedge.transport.client\n"
            "from rtedge.audio.convert import InputConverter\n"
            "from rtedge.protocol.config import AudioFormat\n"
            "out = InputConverter(AudioFormat.pcm(24000)).convert(bytes(960), 24000)\n"
            "assert out == bytes(960)\n"
            "print(sorted(m for m in sys.modules if m == 'numpy' or m.startswith('rtedge.audio.codec')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
