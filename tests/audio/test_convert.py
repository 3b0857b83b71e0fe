"""rtedge.audio.convert: the no-conversion fast path agrees with the full path, and start-up stays lean."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rtedge.audio.codec import AudioTypeError
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


@pytest.mark.parametrize("make", [lambda a: np.repeat(a, 2)[::2], lambda a: np.stack([a, a], axis=1)[:, 0]],
                         ids=["every_other", "one_channel_of_stereo"])
def test_a_strided_view_at_another_rate_is_resampled_like_a_copy(make) -> None:  # type: ignore[no-untyped-def]
    """A non-contiguous view (``x[::2]``, ``stereo[:, 0]``) at a rate that needs resampling failed with
    "Resampler.process: input must be C-contiguous", an internal name; it is copied now."""
    samples = np.random.default_rng(2).integers(-32768, 32767, 1600, dtype=np.int16)
    assert InputConverter(PCM24).convert(make(samples), 16000) == InputConverter(PCM24).convert(samples, 16000)


@pytest.mark.parametrize("bad, message", [
    (b"\x00\x01\x02", "multiple of 2"),
    (np.zeros(10, dtype=np.float32), "int16"),
    ([0, 1, 2], "numpy array or bytes"),
    (np.zeros((4, 3), dtype=np.int16), "shape"),
])
def test_what_the_fast_path_refuses_still_raises(bad: object, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        InputConverter(PCM24).convert(bad, 24000)


@pytest.mark.parametrize("rate", [24000, 16000])
def test_int16_in_the_other_byte_order_is_read_by_value(rate: int) -> None:
    samples = np.array([1, -2, 300, -32768, 32767] * 32, dtype=np.int16)
    swapped = samples.astype(samples.dtype.newbyteorder())
    assert swapped.tobytes() != samples.tobytes()
    assert InputConverter(PCM24).convert(swapped, rate) == InputConverter(PCM24).convert(samples, rate)


@pytest.mark.parametrize("dtype, hint", [
    (np.float32, r"float32_to_int16\(x.astype\(numpy.float32\)\)"),
    (np.float64, "float32_to_int16"),
    (np.int32, r"\(x >> 16\).astype\(numpy.int16\)"),
    (np.uint8, "8-bit"),
    (np.int64, r"x.astype\(numpy.int16\)"),
])
def test_a_wrong_dtype_is_refused_with_a_conversion_for_that_dtype(dtype: type, hint: str) -> None:
    with pytest.raises(AudioError, match=f"got dtype {np.dtype(dtype).name}; .*{hint}"):
        InputConverter(PCM24).convert(np.zeros(480, dtype), 24000)


def test_channels_first_is_refused_with_the_transpose_named() -> None:
    with pytest.raises(AudioError, match=r"\(2, 480\); channels go last: pass the array's .T"):
        InputConverter(PCM24).convert(np.zeros((2, 480), np.int16), 24000)
    with pytest.raises(AudioError, match=r"\(480, 3\)$"):  # not a transposed layout: no hint
        InputConverter(PCM24).convert(np.zeros((480, 3), np.int16), 24000)


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


@pytest.mark.parametrize("new_rate", [24000, 8000])
def test_a_rate_change_keeps_the_old_streams_tail(new_rate: int) -> None:
    """The samples the resampler still held when the input rate changed were dropped (its filter delay: a
    few ms of the end of what was said); they now go out first, as a flush would have sent them."""
    tone = (3000 * np.sin(np.arange(1600) * 0.05)).astype(np.int16)
    whole = InputConverter(PCM24)
    expected = b"".join(whole.convert(tone[i:i + 160], 16000) for i in range(0, 1600, 160)) + whole.flush()
    conv = InputConverter(PCM24)
    head = b"".join(conv.convert(tone[i:i + 160], 16000) for i in range(0, 1600, 160))
    assert len(head) < len(expected)  # the resampler holds a tail
    after = conv.convert(np.zeros(0, np.int16), new_rate)
    assert head + after == expected
    more = np.full(480, 1000, np.int16)
    if new_rate == 24000:
        assert conv.convert(more, 24000) == more.tobytes()  # and the wire-rate fast path after it


@pytest.mark.parametrize("rate", [7, 0, -16000, 12345])
def test_a_refused_rate_stays_refused(rate: int) -> None:
    """A rate the resampler does not take raises on every call, not only the first (the second call used
    to send the samples unconverted, as if they were at the wire rate).  The message is in the caller's
    terms: the audio's rate, the session's, and the rates that work (not the resampler's argument names)."""
    conv = InputConverter(PCM24)
    tone = (3000 * np.sin(np.arange(160) * 0.05)).astype(np.int16)
    for _ in range(2):
        with pytest.raises(AudioError, match=f"^audio at {rate} Hz cannot be converted to the session's 24000 Hz; "
                                             "pass audio at one of 8000, 11025, .*, 48000 Hz$"):
            conv.convert(tone, rate)
    assert conv.convert(tone, 24000) == tone.tobytes()


@pytest.mark.parametrize("rate", [16000.0, "16000", True])
def test_a_rate_that_is_not_an_int_is_refused_by_type(rate: object) -> None:
    with pytest.raises(AudioTypeError, match=r"the audio's rate must be an int \(Hz\), got "):
        InputConverter(PCM24).convert(np.zeros(160, np.int16), rate)  # type: ignore[arg-type]
    conv = InputConverter(PCM24)
    conv.convert(np.zeros(160, np.int16), 16000)
    for same in (16000.0, 24000.0):  # equal to the stream's or the wire's rate: refused all the same
        with pytest.raises(AudioTypeError):
            conv.convert(np.zeros(160, np.int16), same)  # type: ignore[arg-type]
    assert len(InputConverter(PCM24).convert(np.zeros(160, np.int16), np.int64(16000))) > 0  # numpy ints are ints


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
