"""Audio sources and sinks.

The PortAudio tests use real PyAudio, PortAudio and alsa-lib, with no sound
card: a test ALSA configuration (written per test, loaded through
``ALSA_CONFIG_PATH``) defines a capture PCM ``rt_rec`` that reads a raw file and
a playback PCM ``rt_play`` that writes one, through ALSA's ``file`` and ``null``
plugins.  Those PCMs are not paced: they run as fast as the CPU, so these
tests wait for sample counts, never for time.  Past the end of its input file
``rt_rec`` repeats stale data, so only a prefix of the feed is compared.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rtedge.app.logs import Console, ConsoleHandler
from rtedge.audio import codec, threadnames
from rtedge.audio.devices import (
    AudioSink,
    AudioSource,
    Microphone,
    NullSink,
    NullSource,
    RawSink,
    RawSource,
    Speaker,
    WavSink,
    WavSource,
    list_devices,
    open_sink,
    open_source,
)
from rtedge.errors import AudioError

STOCK_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
DEVICE_THREAD_NAMES = ("rtedge-mic", "rtedge-speaker", "rtedge-mic-reopen")

ASOUND_CONF = """\
pcm.rt_rec {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{feed}"
    format "raw"
}}
pcm.rt_play {{
    type file
    slave.pcm "null"
    file "{played}"
    format "raw"
}}
pcm.!default {{
    type asym
    playback.pcm "rt_play"
    capture.pcm "rt_rec"
}}
"""


# --------------------------------------------------------------------------- helpers


def device_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in DEVICE_THREAD_NAMES]


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` (waiting on an event, not sleeping) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return bool(predicate())
        tick.wait(0.005)
    return True


def noise(n: int, seed: int = 1, channels: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).integers(-20000, 20000, size=n * channels, dtype=np.int16)
    x[0] = 1234  # a non-zero first sample, to find the signal after leading silence
    return x


def first_nonzero(x: np.ndarray) -> int:
    nz = np.flatnonzero(x)
    assert len(nz), "no signal found"
    return int(nz[0])


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


class Frames:
    """An ``on_frame`` that keeps the first ``keep`` samples and signals when it has them."""

    def __init__(self, keep: int = 1 << 30, on_frame: Callable[[np.ndarray], None] | None = None) -> None:
        self.keep = keep
        self.chunks: list[np.ndarray] = []
        self.count = 0
        self.kept = 0
        self.sizes: set[tuple[int, str]] = set()
        self.threads: set[str] = set()
        self.full = threading.Event()
        self.extra = on_frame
        self.source: AudioSource | None = None  # when set: count frames delivered before ``finished``
        self.before_finished = 0

    def __call__(self, frame: np.ndarray) -> None:
        self.count += 1
        if self.source is not None and not self.source.finished.is_set():
            self.before_finished += 1
        self.sizes.add((len(frame), frame.dtype.name))
        self.threads.add(threading.current_thread().name)
        if self.kept < self.keep:
            self.chunks.append(frame.copy())
            self.kept += len(frame)
        if self.kept >= self.keep:
            self.full.set()
        if self.extra is not None:
            self.extra(frame)

    def samples(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)


class Signal:
    """A ``pull`` that plays ``signal`` then silence, and records what it handed out."""

    def __init__(self, signal: np.ndarray, extra: int = 0) -> None:
        self.signal = signal
        self.pos = 0
        self.sizes: set[int] = set()
        self.done = threading.Event()  # the signal and ``extra`` samples of silence were pulled
        self.extra = extra

    def __call__(self, n: int) -> np.ndarray:
        self.sizes.add(n)
        out = np.zeros(n, dtype=np.int16)
        part = self.signal[self.pos : self.pos + n]
        out[: len(part)] = part
        self.pos += n
        if self.pos >= len(self.signal) + self.extra:
            self.done.set()
        return out


@pytest.fixture(autouse=True)
def no_device_threads():
    yield
    assert wait_for(lambda: not device_threads(), 3.0), device_threads()


# --------------------------------------------------------------------------- ALSA test PCMs


class Alsa:
    def __init__(self, root: Path) -> None:
        self.feed = root / "feed.raw"
        self.played = root / "played.raw"
        self.conf = root / "asound-test.conf"
        self.conf.write_text(ASOUND_CONF.format(feed=self.feed, played=self.played))

    def write_feed(self, samples: np.ndarray, pad: int = 48000) -> None:
        """The capture input, followed by silence (past its end rt_rec repeats old data)."""
        self.feed.write_bytes(samples.astype("<i2").tobytes() + bytes(2 * pad))

    def played_samples(self) -> np.ndarray:
        return np.frombuffer(self.played.read_bytes(), dtype="<i2").astype(np.int16)


@pytest.fixture
def pyaudio_mod():
    return pytest.importorskip("pyaudio")


@pytest.fixture
def alsa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pyaudio_mod) -> Alsa:
    """Test PCMs for this test only; every PortAudio handle must be released after it."""
    from rtedge.audio import _pyaudio

    if not STOCK_ALSA_CONF.exists():
        pytest.skip(f"{STOCK_ALSA_CONF} not found")
    a = Alsa(tmp_path)
    a.write_feed(np.zeros(0, np.int16))
    # The stock config first (it defines the "null" and "file" plugin types), then ours.
    # PortAudio reads it on initialisation, so each test gets a fresh PortAudio.
    monkeypatch.setenv("ALSA_CONFIG_PATH", f"{STOCK_ALSA_CONF}:{a.conf}")
    yield a
    assert wait_for(lambda: _pyaudio.open_handles() == 0, 3.0), "a PortAudio handle was left open"


def run_mic(mic, want: int) -> Frames:
    got = Frames(keep=want)
    mic.start(got)
    try:
        assert got.full.wait(10), f"only {got.kept} samples arrived"
    finally:
        mic.stop()
    return got


def run_speaker(spk, signal: np.ndarray, extra: int) -> Signal:
    pull = Signal(signal, extra=extra)
    spk.start(pull)
    try:
        assert pull.done.wait(10)
    finally:
        spk.stop()
    return pull


# --------------------------------------------------------------------------- no PortAudio needed


def test_importing_devices_does_not_import_pyaudio():
    code = (
        "import sys; import rtedge.audio.devices as d; "
        "assert 'pyaudio' not in sys.modules, 'pyaudio imported'; "
        "assert d.Microphone.__name__ == 'Microphone'; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_without_pyaudio_portaudio_devices_raise_audio_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyaudio", None)  # import pyaudio -> ImportError
    with pytest.raises(AudioError, match="PyAudio is not available.*pip install pyaudio"):
        list_devices()
    mic = Microphone()
    with pytest.raises(AudioError, match="PyAudio is not available"):
        mic.start(lambda frame: None)
    with pytest.raises(AudioError, match="PyAudio is not available"):
        Speaker().start(lambda n: np.zeros(n, np.int16))


def test_base_classes_and_validation(tmp_path):
    src = WavSource(write_wav(tmp_path / "a.wav", noise(1600), 16000), realtime=False)
    assert isinstance(src, AudioSource) and isinstance(NullSink(), AudioSink)
    assert (src.rate, src.frame_ms, src.frame_samples) == (16000, 20, 320)
    assert NullSink().output_latency == 0.0
    with pytest.raises(AudioError, match="whole number of samples"):
        NullSink(rate=11025, frame_ms=20)
    with pytest.raises(AudioError, match="frame_ms must be a positive int"):
        NullSink(frame_ms=0)
    with pytest.raises(AudioError, match="no such file"):
        WavSource(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="channels must be 1 or 2"):
        Microphone(channels=3)
    with pytest.raises(AudioError, match="rate must be one of"):
        Speaker(rate=12000)
    from rtedge.audio import devices

    with pytest.raises(AttributeError):
        devices.NoSuchThing  # noqa: B018


# --------------------------------------------------------------------------- WAV, raw, null


def test_wav_source_fast_delivers_file_then_finished_then_paced_silence(tmp_path):
    x = noise(16000 // 2 + 100)  # 25 frames and a partial one
    src = WavSource(write_wav(tmp_path / "in.wav", x, 16000), realtime=False)
    got = Frames()
    got.source = src
    src.start(got)
    try:
        assert src.finished.wait(5)
        assert wait_for(lambda: got.count >= 26 + 3)
    finally:
        src.stop()
    assert got.before_finished == 26
    assert got.sizes == {(320, "int16")} and got.threads == {"rtedge-mic"}
    out = got.samples()
    np.testing.assert_array_equal(out[: len(x)], x)
    assert not out[len(x) :].any()  # padding of the last frame, then silence frames
    assert src.stats.frames == got.count and src.stats.errors == 0


def test_wav_source_converts_to_the_requested_rate_without_delay(tmp_path):
    t = np.arange(48000 // 2) / 48000
    x = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    src = WavSource(write_wav(tmp_path / "in48.wav", x, 48000), rate=16000, realtime=False)
    assert (src.rate, src.file_rate, len(src.samples)) == (16000, 48000, math.ceil(len(x) / 3))
    # the filter delay is removed to the nearest output sample:
    # sample k is at input time (k + residue) / 16000
    delay = codec.Resampler(48000, 16000).delay
    residue = round(delay) - delay
    assert abs(residue) <= 0.5
    ideal = 8000 * np.sin(2 * np.pi * 440 * (np.arange(len(src.samples)) + residue) / 16000)
    inner = slice(200, len(ideal) - 200)  # away from the edges, where the filter sees silence
    assert np.max(np.abs(src.samples[inner] - ideal[inner])) < 40  # 0.5 % of the amplitude


def test_wav_source_stereo_file_is_mixed_to_mono(tmp_path):
    st = noise(3200, channels=2)
    src = WavSource(write_wav(tmp_path / "st.wav", st, 16000, channels=2), realtime=False)
    np.testing.assert_array_equal(src.samples, codec.stereo_to_mono(st))


def test_realtime_wav_source_takes_as_long_as_its_audio(tmp_path):
    x = noise(16000 * 3 // 10)  # 0.3 s = 15 frames
    src = WavSource(write_wav(tmp_path / "rt.wav", x, 16000), realtime=True)
    got = Frames()
    got.source = src
    t0 = time.monotonic()
    src.start(got)
    try:
        assert src.finished.wait(5)
        elapsed = time.monotonic() - t0
    finally:
        src.stop()
    # frame k is due at t0 + (k + 1) * 20 ms: never early, and late only by scheduling
    assert 0.29 <= elapsed < 2.0, elapsed
    assert got.before_finished == 15
    np.testing.assert_array_equal(got.samples()[: len(x)], x)


def test_realtime_sink_pulls_one_frame_per_period(tmp_path):
    sink = WavSink(tmp_path / "rt.wav", rate=24000, realtime=True)
    pull = Signal(np.zeros(0, np.int16))
    t0 = time.monotonic()
    sink.start(pull)
    try:
        assert wait_for(lambda: sink.stats.frames >= 11, 5)
        elapsed = time.monotonic() - t0
    finally:
        sink.stop()
    # pull k happens at t0 + k * 20 ms, so the 11th at 200 ms at the earliest
    assert 0.19 <= elapsed < 2.0, elapsed
    assert pull.sizes == {480}


def test_wav_source_fast_is_not_taken_for_a_fast_clock_and_paced(tmp_path, caplog):
    """``realtime=False`` on a WAV file asks for it as fast as the consumer takes it (``rtedge transcribe
    --input``): the clock check is for pipes, whose writer sets the pace, so a 600 s file is neither
    reported as a device clock running fast nor slowed to real time after its first seconds."""
    x = noise(16000 * 600)
    src = WavSource(write_wav(tmp_path / "long.wav", x, 16000), realtime=False)
    got = Frames(keep=0)
    got.source = src
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        src.start(got)
        try:
            assert src.finished.wait(120)  # paced to real time it would take about ten minutes
        finally:
            src.stop()
    assert got.before_finished == 600 * 50
    assert not [r.getMessage() for r in caplog.records if "real time" in r.getMessage()]


def test_wav_sink_fast_writes_exactly_what_it_pulled(tmp_path):
    x = noise(24000 // 2)
    sink = WavSink(tmp_path / "out.wav", rate=24000, realtime=False)
    pull = Signal(x, extra=960)
    sink.start(pull)
    try:
        assert pull.done.wait(5)
    finally:
        sink.stop()
    with wave.open(str(tmp_path / "out.wav"), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert len(data) == 480 * sink.stats.frames
    np.testing.assert_array_equal(data[: len(x)], x)
    assert not data[len(x) :].any()
    assert pull.sizes == {480} and sink.stats.errors == 0


def test_bad_pulls_are_counted_and_replaced_by_silence(tmp_path, caplog):
    answers = iter([
        np.full(480, 7, np.int16),
        np.full(100, 8, np.int16),  # too short: padded
        np.full(480, 9, np.float32),  # wrong dtype: silence
        RuntimeError("boom"),  # raises: silence
        np.full(600, 10, np.int16),  # too long: truncated
    ])

    def pull(n: int) -> np.ndarray:
        a = next(answers, np.zeros(n, np.int16))
        if isinstance(a, Exception):
            raise a
        return a

    sink = WavSink(tmp_path / "bad.wav", rate=24000, realtime=False)
    with caplog.at_level(logging.DEBUG, logger="rtedge.audio"):
        sink.start(pull)
        try:
            assert wait_for(lambda: sink.stats.frames >= 6)
        finally:
            sink.stop()
    with wave.open(str(tmp_path / "bad.wav"), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 480)
    assert (data[0] == 7).all()
    assert (data[1, :100] == 8).all() and not data[1, 100:].any()
    assert not data[2].any() and not data[3].any()
    assert (data[4] == 10).all()
    assert sink.stats.errors == 4
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "must return 480 int16 mono samples" in errors[0].getMessage()
    assert any(r.exc_info for r in caplog.records if "pull() raised" in r.getMessage())


@pytest.mark.parametrize("error", [SystemExit(), KeyboardInterrupt()])
def test_a_pull_that_exits_plays_silence_and_the_sink_goes_on(error):
    """sys.exit() in a speaker's pull() ended the device's thread: it played nothing more, uncounted (the
    sink caught Exception only; a source's on_frame already caught everything)."""
    calls = []

    def pull(n: int) -> np.ndarray:
        calls.append(n)
        if len(calls) == 3:
            raise error
        return np.zeros(n, np.int16)

    sink = NullSink(realtime=False)
    sink.start(pull)
    try:
        assert wait_for(lambda: sink.stats.frames >= 10)
    finally:
        sink.stop()
    assert sink.stats.errors == 1 and len(calls) >= 10


@pytest.mark.parametrize("error", [ValueError("consumer bug"), SystemExit(), KeyboardInterrupt()])
def test_on_frame_exceptions_are_counted_and_delivery_goes_on(tmp_path, error):
    """sys.exit() in the consumer too: it ended the device's thread, so that the device delivered nothing
    more and never finished."""
    def explode(frame):
        raise error

    src = WavSource(write_wav(tmp_path / "e.wav", noise(3200), 16000), realtime=False)
    got = Frames(on_frame=explode)
    src.start(got)
    try:
        assert src.finished.wait(5)
    finally:
        src.stop()
    assert got.count >= 10 and src.stats.errors == got.count


def test_raw_source_and_sink_through_bytesio():
    x = noise(16000 // 10)  # 5 frames
    src = RawSource(io.BytesIO(x.astype("<i2").tobytes() + b"\x01"), rate=16000)  # a stray odd byte
    got = Frames()
    src.start(got)
    try:
        assert src.finished.wait(5)
        assert wait_for(lambda: got.count >= 6)
    finally:
        src.stop()
    np.testing.assert_array_equal(got.samples()[: len(x)], x)
    assert not got.samples()[len(x) :].any()

    out = io.BytesIO()
    sink = RawSink(out, rate=24000, realtime=False)
    pull = Signal(noise(2400, seed=2), extra=480)
    sink.start(pull)
    try:
        assert pull.done.wait(5)
    finally:
        sink.stop()
    data = np.frombuffer(out.getvalue(), dtype="<i2")
    assert len(data) == 480 * sink.stats.frames
    np.testing.assert_array_equal(data[:2400], pull.signal)


def test_raw_source_partial_last_frame_is_padded():
    x = noise(500)
    src = RawSource(io.BytesIO(x.astype("<i2").tobytes()), rate=16000)
    got = Frames()
    got.source = src
    src.start(got)
    try:
        assert src.finished.wait(5)
    finally:
        src.stop()
    out = got.samples()
    assert got.before_finished == 2 and got.sizes == {(320, "int16")}
    np.testing.assert_array_equal(out[:500], x)
    assert not out[500:].any()


def test_raw_source_read_error_fails_and_ends_the_input():
    class Unplugged(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            if self.tell() >= 1280:
                raise OSError("input/output error")
            return super().read(n)

    src = RawSource(Unplugged(noise(3200).astype("<i2").tobytes()), rate=16000)
    got = Frames()
    got.source = src
    src.start(got)
    try:
        assert src.finished.wait(5)
    finally:
        src.stop()
    assert src.failed.is_set() and "read failed (input/output error)" in str(src.error)
    assert got.before_finished == 2 and src.stats.errors == 1


def test_raw_source_stop_is_not_held_up_by_a_silent_pipe():
    r, w = os.pipe()
    with os.fdopen(r, "rb", buffering=0) as rf, os.fdopen(w, "wb", buffering=0) as wf:
        src = RawSource(rf, rate=16000)
        got = Frames()
        src.start(got)
        wf.write(noise(320).astype("<i2").tobytes())
        assert wait_for(lambda: got.count == 1)
        src.stop()  # the thread waits for more data that never comes
        assert device_threads() == []
        assert not src.finished.is_set()


def test_raw_sink_survives_a_stalled_and_then_a_broken_pipe():
    r, w = os.pipe()
    rf = os.fdopen(r, "rb", buffering=0)
    with os.fdopen(w, "wb", buffering=0) as wf:
        sink = RawSink(wf, rate=24000, realtime=False)

        def stalled() -> bool:  # no pull for 100 ms
            seen = sink.stats.frames
            return not wait_for(lambda: sink.stats.frames != seen, 0.1)

        sink.start(lambda n: np.ones(n, np.int16))
        try:
            assert wait_for(stalled)  # nobody reads: once the pipe is full the sink waits
            pulled = sink.stats.frames
            assert 0 < pulled <= fcntl.fcntl(w, fcntl.F_GETPIPE_SZ) // 960 + 2
            rf.close()  # the reader goes away: writes now fail with EPIPE
            assert sink.failed.wait(5)
            assert "write failed" in str(sink.error)
            assert wait_for(lambda: sink.stats.frames > pulled + 50)  # still pulling, discarding
        finally:
            sink.stop()


def test_null_source_and_sink_are_paced_and_stop(tmp_path):
    src, sink = NullSource(rate=16000), NullSink(rate=24000, realtime=False)
    got = Frames()
    src.start(got)
    sink.start(lambda n: np.zeros(n, np.int16))
    try:
        assert wait_for(lambda: got.count >= 3 and sink.stats.frames >= 100)
        assert sorted(device_threads()) == ["rtedge-mic", "rtedge-speaker"]
        assert all(t.daemon for t in threading.enumerate() if t.name in DEVICE_THREAD_NAMES)
    finally:
        src.stop()
        sink.stop()
    assert device_threads() == []
    assert not src.finished.is_set() and not got.samples().any()


def test_devices_are_single_use_and_stop_is_idempotent(tmp_path):
    sink = NullSink()
    sink.stop()  # before start: harmless, and final
    with pytest.raises(AudioError, match="already started or stopped"):
        sink.start(lambda n: np.zeros(n, np.int16))
    src = NullSource()
    src.start(Frames())
    with pytest.raises(AudioError, match="single-use"):
        src.start(Frames())
    src.stop()
    src.stop()
    with NullSink(realtime=False) as s:
        s.start(lambda n: np.zeros(n, np.int16))
        assert wait_for(lambda: s.stats.frames > 0)
    assert device_threads() == []


def test_stop_is_bounded_by_stop_timeout_when_a_callback_hangs(monkeypatch, caplog):
    from rtedge.audio import _device

    monkeypatch.setattr(_device, "STOP_TIMEOUT", 0.2)
    release = threading.Event()
    got = Frames(on_frame=lambda frame: release.wait(30))  # the first frame's callback hangs
    src = NullSource(rate=16000)
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        src.start(got)
        try:
            assert wait_for(lambda: got.count == 1)
            t0 = time.monotonic()
            src.stop()  # returns (after STOP_TIMEOUT) although the callback has not
            assert time.monotonic() - t0 < 2.0  # bounded: 0.2 s, and generous slack for a loaded machine
            assert device_threads() == ["rtedge-mic"]
            said = [r.getMessage() for r in caplog.records]
            assert said == [f"{src!r}: thread rtedge-mic did not end within 0.2 s (blocked in I/O?)"]
        finally:
            release.set()
    assert wait_for(lambda: device_threads() == [])
    assert got.count == 1  # once the hung callback returned, no other ran


def test_paced_deadlines_are_absolute_so_slow_callbacks_do_not_drift(monkeypatch):
    """The pacer waits for ``t0 + k * period``: a callback that takes 12 ms of a 20 ms period leaves an
    8 ms wait, not 20; and after a long suspension it starts a new schedule instead of bursting."""
    from rtedge.audio import devices

    class Clock:
        now = 100.0

        def monotonic(self) -> float:
            return self.now

    class Stop:
        def __init__(self) -> None:
            self.waits: list[float] = []

        def wait(self, delay: float) -> bool:
            self.waits.append(round(delay, 6))
            clock.now += delay
            return False

        def is_set(self) -> bool:
            return False

    clock, stop = Clock(), Stop()
    monkeypatch.setattr(devices, "time", clock)
    pacer = devices._Pacer(0.020, stop, realtime=True)  # type: ignore[arg-type]
    for _ in range(50):
        assert pacer.wait()
        clock.now += 0.012  # the callback's work
    assert stop.waits == [0.02] + [0.008] * 49
    assert clock.now == pytest.approx(100.0 + 50 * 0.020 + 0.012)  # 50 periods, not 50 * 32 ms
    clock.now += 0.5  # the process was suspended for 25 periods
    stop.waits.clear()
    assert pacer.wait() and stop.waits == []  # no burst of 25 late frames: a new schedule from now
    assert pacer.wait() and stop.waits == [0.02]


def test_stop_from_inside_the_callback_does_not_deadlock(tmp_path):
    src = WavSource(write_wav(tmp_path / "s.wav", noise(3200), 16000), realtime=False)
    got = Frames(on_frame=lambda frame: src.stop())
    src.start(got)
    assert wait_for(lambda: not device_threads())
    assert got.count == 1


def test_open_source_and_open_sink_specs(tmp_path, monkeypatch):
    wav = write_wav(tmp_path / "in.wav", noise(800), 8000)
    assert isinstance(open_source(f"wav:{wav}"), WavSource)
    assert open_source(f"wav:{wav}", rate=16000).rate == 16000
    assert open_source(f"wav:{wav}").realtime is True
    src = open_source("raw:-", rate=24000)
    assert isinstance(src, RawSource) and src.rate == 24000 and src.realtime is False
    raw = tmp_path / "in.raw"
    raw.write_bytes(bytes(640))
    src = open_source(f"raw:{raw}")
    assert isinstance(src, RawSource) and src.realtime is True
    src.stop()  # never started: closes the file it opened
    assert src.stream.closed
    assert isinstance(open_source("null"), NullSource)
    for spec, device in ((None, None), ("default", None), ("pa:rt_rec", "rt_rec"), ("pa:3", 3),
                         ("USB PnP", "USB PnP"), ("hw:1,0", "hw:1,0")):
        mic = open_source(spec)
        assert isinstance(mic, Microphone) and mic.device == device and mic.rate == 16000
    assert isinstance(open_sink(f"wav:{tmp_path / 'o.wav'}"), WavSink)
    assert isinstance(open_sink("raw:-"), RawSink)
    assert isinstance(open_sink("null", realtime=False), NullSink)
    spk = open_sink("pa:rt_play", rate=16000)
    assert isinstance(spk, Speaker) and spk.device == "rt_play" and spk.rate == 16000
    with pytest.raises(AudioError, match="give a path"):
        open_source("wav:")
    with pytest.raises(AudioError, match="cannot open"):
        open_sink(f"raw:{tmp_path / 'no' / 'such' / 'dir'}")


# --------------------------------------------------------------------------- PortAudio + ALSA


def test_list_devices_shows_the_test_pcms(alsa, capfd):
    devices = {d.name: d for d in list_devices()}
    assert {"rt_rec", "rt_play", "default"} <= set(devices)
    assert devices["default"].default_input and devices["default"].default_output
    assert devices["rt_rec"].max_input_channels >= 2 and devices["rt_rec"].default_rate > 0
    assert devices["rt_rec"].host_api == "ALSA"
    if not os.environ.get("RTEDGE_AUDIO_DEBUG"):
        assert "ALSA lib" not in capfd.readouterr().err  # libasound's chatter is silenced


def test_unknown_device_error_lists_the_devices(alsa):
    with pytest.raises(AudioError, match=r"no audio input device named 'no-such-mic'.*'rt_rec'.*") as e:
        Microphone("no-such-mic").start(lambda frame: None)
    assert "rt_play" in str(e.value)
    with pytest.raises(AudioError, match="no audio device with index 999; available devices: .*rt_play"):
        Speaker(999).start(lambda n: np.zeros(n, np.int16))
    mic = Microphone("no-such-mic")
    with pytest.raises(AudioError):
        mic.start(lambda frame: None)
    assert device_threads() == []


@pytest.mark.parametrize("device", ["rt_rec", "RT_REC", None])
def test_microphone_delivers_the_feed_bit_exact(alsa, device):
    feed = noise(16000)
    alsa.write_feed(feed)
    mic = Microphone(device, rate=16000)
    got = run_mic(mic, 8000)
    np.testing.assert_array_equal(got.samples()[:8000], feed[:8000])
    assert got.sizes == {(320, "int16")}
    assert mic.device_info.name == ("default" if device is None else "rt_rec")
    assert (mic.stream_rate, mic.stream_channels) == (16000, 1)
    assert mic.stats.frames >= 25 and mic.stats.errors == 0 and not mic.finished.is_set()


def test_microphone_mixes_a_stereo_device_to_mono(alsa):
    feed = noise(16000, channels=2)
    alsa.write_feed(feed)
    mic = Microphone("rt_rec", rate=16000, channels=2)
    got = run_mic(mic, 8000)
    assert mic.stream_channels == 2
    np.testing.assert_array_equal(got.samples()[:8000], codec.stereo_to_mono(feed)[:8000])


def test_microphone_converts_from_the_device_rate(alsa):
    feed = noise(48000)
    alsa.write_feed(feed)
    mic = Microphone("rt_rec", rate=16000, device_rate=48000)
    got = run_mic(mic, 8000)
    assert mic.stream_rate == 48000 and got.sizes == {(320, "int16")}
    expected = codec.Resampler(48000, 16000).process(feed)
    np.testing.assert_array_equal(got.samples()[:8000], expected[:8000])


def test_microphone_falls_back_to_the_device_default_rate(alsa, pyaudio_mod, monkeypatch):
    real = pyaudio_mod.PyAudio.is_format_supported

    def only_default_rate(self, rate, *args, **kwargs):  # a device that refuses 16 kHz
        if rate == 16000:
            raise ValueError("Invalid sample rate", -9997)
        return real(self, rate, *args, **kwargs)

    monkeypatch.setattr(pyaudio_mod.PyAudio, "is_format_supported", only_default_rate)
    feed = noise(44100)
    alsa.write_feed(feed)
    mic = Microphone("rt_rec", rate=16000)
    got = run_mic(mic, 8000)
    assert mic.stream_rate == mic.device_info.default_rate == 44100
    expected = codec.Resampler(44100, 16000).process(feed)
    np.testing.assert_array_equal(got.samples()[:8000], expected[:8000])


def test_microphone_reopens_a_stream_that_failed(alsa):
    feed = noise(16000)
    alsa.write_feed(feed)
    got = Frames(keep=320)
    mic = Microphone("rt_rec", reopen_backoff=(0.01, 0.05), max_reopen_attempts=100)
    mic.start(got)
    try:
        assert got.full.wait(5)
        hidden = alsa.feed.rename(alsa.feed.with_suffix(".away"))  # while missing, rt_rec cannot open
        mic._stream.stop_stream()  # the device goes away under the running stream
        assert wait_for(lambda: mic.stats.reopen_attempts >= 2)
        assert mic.stats.reopens == 0 and mic.stats.errors >= 1
        hidden.rename(alsa.feed)
        assert wait_for(lambda: mic.stats.reopens == 1)
        count = got.count
        assert wait_for(lambda: got.count > count + 10)  # frames flow again
        assert device_threads() == ["rtedge-mic"]
    finally:
        mic.stop()
    assert not mic.failed.is_set() and mic.error is None


def test_microphone_reopens_a_stream_that_stopped_calling_back(alsa, caplog):
    """A stream still active whose callbacks stopped for ``stall_timeout`` (here: one callback hangs)
    is reopened, and frames flow again."""
    alsa.write_feed(noise(16000))
    release, hung = threading.Event(), threading.Event()

    def on_frame(frame: np.ndarray) -> None:
        if not hung.is_set():
            hung.set()
            release.wait(10)  # PortAudio's callback thread is stuck here

    got = Frames(on_frame=on_frame)
    mic = Microphone("rt_rec", stall_timeout=0.3, reopen_backoff=(0.01, 0.05))
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        mic.start(got)
        try:
            assert hung.wait(5)
            assert wait_for(lambda: any("no audio callback for" in r.getMessage() for r in caplog.records))
            assert mic.stats.errors == 1 and mic.stats.reopens == 0
            release.set()  # closing the stalled stream waits for its callback to return
            assert wait_for(lambda: mic.stats.reopens == 1)
            count = got.count
            assert wait_for(lambda: got.count > count + 10)  # frames flow from the new stream
        finally:
            release.set()
            mic.stop()
    assert not mic.failed.is_set() and device_threads() == []


def test_microphone_gives_up_after_max_reopen_attempts(alsa, caplog):
    alsa.write_feed(noise(16000))
    mic = Microphone("rt_rec", reopen_backoff=(0.01, 0.02), max_reopen_attempts=2)
    got = Frames(keep=320)
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        mic.start(got)
        try:
            assert got.full.wait(5)
            alsa.feed.unlink()
            mic._stream.stop_stream()
            assert mic.failed.wait(5)
            assert wait_for(lambda: device_threads() == [])  # the watcher ended and closed everything
        finally:
            mic.stop()
    assert mic.stats.reopen_attempts == 2 and mic.stats.reopens == 0
    assert "gave up after 2 reopen attempts" in str(mic.error) and "no input channels" in str(mic.error)
    gave_up = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 1 and gave_up[0].startswith(f"{mic!r}: gave up")  # logged once, named once
    assert gave_up[0].count(repr(mic)) == 1


def test_microphone_stop_from_its_callback(alsa):
    alsa.write_feed(noise(16000))
    holder = {}
    got = Frames(on_frame=lambda frame: holder["mic"].stop())
    holder["mic"] = mic = Microphone("rt_rec")
    mic.start(got)
    assert wait_for(lambda: not device_threads())
    from rtedge.audio import _pyaudio

    assert wait_for(lambda: _pyaudio.open_handles() == 0)
    assert got.count >= 1


def test_speaker_plays_pulled_audio_bit_exact(alsa):
    signal = noise(24000 // 2)
    spk = Speaker("rt_play", rate=24000)
    pull = Signal(signal, extra=4800)
    spk.start(pull)
    try:
        assert pull.done.wait(10)
        assert 0 < spk.output_latency < 1
        assert device_threads() == ["rtedge-speaker"]
    finally:
        spk.stop()
    played = alsa.played_samples()
    start = first_nonzero(played)  # PortAudio primes the device with silence first
    assert not played[:start].any()
    np.testing.assert_array_equal(played[start : start + len(signal)], signal)
    assert pull.sizes == {480} and spk.stats.errors == 0 and spk.stream_rate == 24000


def test_speaker_stereo_device_gets_the_signal_on_both_channels(alsa):
    signal = noise(4800)
    spk = Speaker("rt_play", rate=16000, channels=2)
    run_speaker(spk, signal, extra=3200)
    assert spk.stream_channels == 2
    played = alsa.played_samples().reshape(-1, 2)
    np.testing.assert_array_equal(played[:, 0], played[:, 1])
    start = first_nonzero(played[:, 0])
    np.testing.assert_array_equal(played[start : start + len(signal), 0], signal)


def test_speaker_converts_to_the_device_rate(alsa):
    signal = noise(24000 // 4)
    spk = Speaker("rt_play", rate=24000, device_rate=48000)
    pull = run_speaker(spk, signal, extra=4800)
    assert spk.stream_rate == 48000 and pull.sizes == {480}
    pulled = np.zeros(pull.pos, np.int16)
    pulled[: len(signal)] = signal
    expected = codec.Resampler(24000, 48000).process(pulled)[: 2 * len(signal)]
    played = alsa.played_samples()
    start = first_nonzero(played) - first_nonzero(expected)
    np.testing.assert_array_equal(played[start : start + len(expected)], expected)
    assert spk.output_latency > codec.Resampler(24000, 48000).delay / 48000


def test_speaker_pull_errors_play_silence_and_are_counted(alsa):
    calls = []

    def pull(n):
        calls.append(n)
        if len(calls) == 3:
            raise RuntimeError("buffer bug")
        return np.full(n, 1000, np.int16)

    spk = Speaker("rt_play", rate=16000)
    spk.start(pull)
    try:
        assert wait_for(lambda: len(calls) > 10)
    finally:
        spk.stop()
    assert spk.stats.errors == 1
    played = alsa.played_samples()
    start = first_nonzero(played)
    assert (played[start : start + 640] == 1000).all()
    assert not played[start + 640 : start + 960].any()  # the failed pull: one period of silence
    assert (played[start + 960 : start + 1280] == 1000).all()


def test_a_speaker_on_an_unpaced_alsa_file_plugin_is_detected_and_paced(alsa, caplog):
    """ALSA's ``file`` plugin on ``null`` takes audio as fast as the CPU gives it (437 MB in 15 s): the
    clock check warns once and paces the callbacks to real time."""
    pulled: list[int] = []

    def pull(n: int) -> np.ndarray:
        pulled.append(n)
        return np.zeros(n, np.int16)

    spk = Speaker(rate=24000)
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        spk.start(pull)
        try:
            assert wait_for(lambda: any("pacing it" in r.getMessage() for r in caplog.records), 10.0)
            before = sum(pulled)
            threading.Event().wait(1.0)
            moved = (sum(pulled) - before) / 24000
        finally:
            spk.stop()
    warnings = [r.getMessage() for r in caplog.records if "real time" in r.getMessage()]
    assert len(warnings) == 1 and "Speaker(" in warnings[0]
    assert moved < 2.0, moved  # about one second of audio per second once paced (hundreds before)


def test_log_lines_from_portaudios_callback_threads_name_the_device(alsa):
    """PortAudio calls back on threads it made: a log line from one (a VAD decision, a barge-in, a callback
    failure) was labelled "Dummy-1" in ``--log-format json``; it is now named after the device."""
    console = Console(fmt="json", status_line=False)
    handler = ConsoleHandler(console)
    lines: list[str] = []
    console.record = lines.append  # type: ignore[method-assign]
    logger = logging.getLogger("rtedge.test.callback")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logged = threading.Event()
    alsa.write_feed(noise(16000))

    idents: set[int] = set()

    def on_frame(frame: np.ndarray) -> None:
        idents.add(threading.get_ident())
        if not logged.is_set():
            logger.info("from the microphone's callback")
            logged.set()

    def pull(n: int) -> np.ndarray:
        idents.add(threading.get_ident())
        if not said.is_set():
            logger.info("from the speaker's callback")
            said.set()
        return np.zeros(n, np.int16)

    said = threading.Event()
    mic, spk = Microphone("rt_rec", rate=16000), Speaker("rt_play", rate=24000)
    try:
        mic.start(on_frame)
        spk.start(pull)
        assert logged.wait(10) and said.wait(10)
    finally:
        mic.stop()
        spk.stop()
        logger.removeHandler(handler)
    threads = {json.loads(line)["msg"]: json.loads(line)["thread"] for line in lines}
    assert threads == {"from the microphone's callback": "rtedge-mic-callback",
                       "from the speaker's callback": "rtedge-speaker-callback"}
    assert [threadnames.name_of(i, "gone") for i in idents] == ["gone"] * len(idents)  # forgotten at close
