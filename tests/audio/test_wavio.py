"""WAV input as recorders write it (24-bit, 32-bit, float, extensible), and messages that name the problem."""

from __future__ import annotations

import logging
import struct
import wave

import numpy as np
import pytest

from rtedge.app.cli import EXIT_CONFIG, main
from rtedge.errors import AudioError
from rtedge.audio.wavio import WavWriter, read_wav

RATE = 16000
#: a 440 Hz tone at about half scale, as the float reference every format is compared with
REF = 0.5 * np.sin(2 * np.pi * 440 * np.arange(1600) / RATE)
KSDATAFORMAT_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def _riff(fmt_tag: int, bits: int, payload: bytes, channels: int = 1, extensible: bool = False,
          announced: int | None = None, extra_chunk: bool = True) -> bytes:
    """A WAV file by hand: the stdlib writes 16-bit PCM only."""
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, RATE, RATE * block, block, bits)
        fmt += struct.pack("<HHI", 22, bits, 0x4) + struct.pack("<H", fmt_tag) + KSDATAFORMAT_TAIL
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, RATE, RATE * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:  # a LIST chunk before data, with an odd size (padded), as editors write
        body += b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\x00"
    body += b"data" + struct.pack("<I", len(payload) if announced is None else announced) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _encode(bits: int, kind: str, x: np.ndarray) -> bytes:
    if kind == "float":
        return x.astype("<f4" if bits == 32 else "<f8").tobytes()
    scaled = np.round(x * (2 ** (bits - 1) - 1)).astype(np.int64)
    if bits == 8:
        return (scaled + 128).astype(np.uint8).tobytes()
    if bits == 24:
        return b"".join(int(v).to_bytes(3, "little", signed=True) for v in scaled)
    return scaled.astype({16: "<i2", 32: "<i4"}[bits]).tobytes()


@pytest.mark.parametrize("bits, kind, extensible", [
    (16, "int", False), (24, "int", False), (32, "int", False), (8, "int", False),
    (32, "float", False), (64, "float", False),
    (16, "int", True), (24, "int", True), (32, "float", True),
])
def test_reads_integer_float_and_extensible_pcm(tmp_path, bits, kind, extensible):
    path = tmp_path / "x.wav"
    payload = _encode(bits, kind, REF)
    path.write_bytes(_riff(3 if kind == "float" else 1, bits, payload, extensible=extensible))
    samples, rate = read_wav(path)
    assert rate == RATE and samples.dtype == np.int16 and len(samples) == len(REF)
    tolerance = 260 if bits == 8 else 2  # 8 bits keep 1/256 of the scale
    assert np.abs(samples.astype(np.int32) - np.round(REF * 32767)).max() <= tolerance


def test_multichannel_files_are_averaged_to_mono(tmp_path):
    left, right = REF, -REF / 2
    inter = np.stack([left, right, left * 0], axis=1).reshape(-1)
    path = tmp_path / "3ch.wav"
    path.write_bytes(_riff(3, 32, inter.astype("<f4").tobytes(), channels=3))
    samples, _ = read_wav(path)
    expect = np.round(left * 32767) + np.round(right * 32767)
    assert np.abs(samples - expect / 3).max() <= 2


@pytest.mark.parametrize("tag, name", [(2, "Microsoft ADPCM"), (0x55, "MP3"), (0x1234, "format tag 0x1234")])
def test_refusing_a_format_names_it(tmp_path, tag, name):
    path = tmp_path / "x.wav"
    path.write_bytes(_riff(tag, 4, b"\x00" * 64))
    with pytest.raises(AudioError) as info:
        read_wav(path)
    assert f"{name} audio" in str(info.value) and "sox" in str(info.value)
    assert "unknown format" not in str(info.value)


def test_extensible_names_the_subformat_it_refuses(tmp_path):
    path = tmp_path / "x.wav"
    path.write_bytes(_riff(0x55, 16, b"\x00" * 64, extensible=True))
    with pytest.raises(AudioError, match="MP3 audio"):
        read_wav(path)


def test_an_empty_file_says_so(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError) as info:
        read_wav(path)
    assert "empty file (0 bytes)" in str(info.value) and "()" not in str(info.value)


def test_not_a_wav_says_so(tmp_path):
    path = tmp_path / "text.wav"
    path.write_text("hello, this is not audio at all")
    with pytest.raises(AudioError, match="not a WAV file"):
        read_wav(path)


def test_a_truncated_file_is_read_with_a_warning(tmp_path, caplog):
    payload = _encode(16, "int", REF)
    path = tmp_path / "cut.wav"
    path.write_bytes(_riff(1, 16, payload[: len(payload) // 4 + 1], announced=len(payload)))
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        samples, _ = read_wav(path)
    assert len(samples) == len(REF) // 4
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "truncated" in warning[0]
    assert "announces 0.10 s, the file holds 0.03 s" in warning[0]


def test_a_streamed_wav_without_sizes_is_read_to_its_end_without_a_warning(tmp_path, caplog):
    payload = _encode(16, "int", REF)
    path = tmp_path / "piped.wav"
    path.write_bytes(_riff(1, 16, payload, announced=0xFFFFFFFF))
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        samples, _ = read_wav(path)
    assert len(samples) == len(REF) and not caplog.records


def test_the_stdlib_writer_round_trips(tmp_path):
    path = tmp_path / "w.wav"
    writer = WavWriter(path, 24000)
    writer.write(np.arange(-100, 100, dtype=np.int16))
    writer.close()
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnframes()) == (24000, 2, 200)
    assert np.array_equal(read_wav(path)[0], np.arange(-100, 100, dtype=np.int16))


def test_cli_input_message_for_float_and_empty_files(tmp_path, capsys):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    code = main(["run", "--input", str(empty), "--fast", "--url", "ws://127.0.0.1:9/v1/realtime"])
    assert code == EXIT_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"rtedge: error: {empty}: empty file (0 bytes), not a WAV file"]


@pytest.mark.parametrize("name", ["-", "/dev/stdin"])
def test_a_wav_piped_on_standard_input_is_read_whole(tmp_path, name):
    """`cat talk.wav | rtedge transcribe --input /dev/stdin` said 'empty file (0 bytes)' (a pipe's size is 0)
    and '--input -' 'no such file'; a pipe is read whole, and '-' is standard input."""
    import subprocess
    import sys

    path = tmp_path / "tone.wav"
    samples = (np.sin(np.arange(8000) / 5) * 3000).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(samples.tobytes())
    code = (f"from rtedge.audio.wavio import read_wav; s, r = read_wav({name!r}); "
            "print(len(s), r, int(s.astype('int64').sum()))")
    child = subprocess.run([sys.executable, "-c", code], input=path.read_bytes(), capture_output=True, timeout=60)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == [b"8000", b"16000", str(int(samples.astype("int64").sum())).encode()]
