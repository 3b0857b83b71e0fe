"""A device clock far off real time is detected once, and a fast one is paced (rtedge.audio.clock)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import threading
import time

import numpy as np
import pytest

from rtedge.audio.clock import MAX_LEAD_S, TOLERANCE, WARMUP_S, WINDOW_S, ClockCheck
from rtedge.audio.devices import RawSource
from rtedge.testing._base import time_scale


def wait_until(predicate, timeout: float) -> bool:
    """Poll ``predicate`` until true or ``timeout`` times ``RTEDGE_TEST_TIME_SCALE`` (as tests/conftest.py's,
    which this directory cannot import when the ARM stage runs it with ``-P``)."""
    deadline = time.monotonic() + timeout * time_scale()
    tick = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return bool(predicate())
        tick.wait(0.01)
    return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _drive(check: ClockCheck, clock: FakeClock, speed: float, seconds: float, frame: int = 320) -> float:
    """Buffers of ``frame`` samples arriving ``speed`` times faster than real time; honours the waits.
    Returns the audio seconds moved."""
    moved = 0
    start = clock.now
    while clock.now - start < seconds:
        wait = check.tick(frame)
        moved += frame
        clock.now += frame / check.rate / speed + wait
    return moved / check.rate


def test_a_fast_clock_is_reported_once_and_paced_to_real_time(caplog):
    clock = FakeClock()
    check = ClockCheck("Speaker('x')", 16000, clock=clock)
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        _drive(check, clock, speed=50.0, seconds=WARMUP_S + WINDOW_S + 0.01)
        assert check.pacing and check.ratio == pytest.approx(50.0, rel=0.05)
        t0, audio = clock.now, _drive(check, clock, speed=50.0, seconds=10.0)
    assert audio / (clock.now - t0) == pytest.approx(1.0, abs=0.01)  # paced: real time from then on
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and re.search(r"\b(49|5[01])\.\d\dx real time", warnings[0]), warnings
    assert "pacing it" in warnings[0]


def test_a_device_opened_again_is_reported_once_per_process(caplog):
    """rtedge run opens a sound card once to check it, then again for the session (and a failed stream is
    reopened): each opening warned about the same fast clock.  Now the first does; later ones of the same
    device log at debug, and are paced all the same; another device, or another fault, still warns."""
    runs = [("Speaker('a')", 50.0), ("Speaker('a')", 50.0), ("Speaker('b')", 50.0), ("Speaker('a')", 0.5)]
    with caplog.at_level(logging.DEBUG, logger="rtedge"):
        checks = [ClockCheck(name, 16000, clock=FakeClock()) for name, _ in runs]
        for check, (_, speed) in zip(checks, runs):
            _drive(check, check._clock, speed=speed, seconds=5.0)
    assert [check.pacing for check in checks] == [True, True, True, False]
    said = [(r.levelno, r.getMessage()[:12]) for r in caplog.records if "real time" in r.getMessage()]
    assert said == [(logging.WARNING, "Speaker('a')"), (logging.DEBUG, "Speaker('a')"),
                    (logging.WARNING, "Speaker('b')"), (logging.WARNING, "Speaker('a')")]


@pytest.mark.parametrize("speed", [3.0, 1000.0])
def test_a_fast_device_is_paced_once_it_is_a_second_ahead(speed):
    """A file piped in moved the warm-up's and the window's audio (3 s) unpaced before it was found fast,
    more than a 2 s send queue holds; it is now paced once it is MAX_LEAD_S of audio ahead of real time."""
    clock = FakeClock()
    check = ClockCheck("Microphone('pipe')", 16000, clock=clock)
    start, moved = clock.now, 0
    while not check.pacing:
        check.tick(320)
        moved += 320
        clock.now += 320 / 16000 / speed
    ahead = moved / 16000 - (clock.now - start)
    assert MAX_LEAD_S < ahead <= MAX_LEAD_S + 0.02 + 1e-9


@pytest.mark.parametrize("speed", [1.0, 1.0 + TOLERANCE / 2, 1.0 - TOLERANCE / 2])
def test_a_clock_within_tolerance_is_left_alone(caplog, speed):
    clock = FakeClock()
    check = ClockCheck("Microphone('x')", 48000, clock=clock)
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        _drive(check, clock, speed=speed, seconds=10.0)
    assert not check.pacing and check.ratio == pytest.approx(speed, rel=0.01) and not caplog.records


def test_prefill_at_start_is_not_a_clock_fault(caplog):
    clock = FakeClock()
    check = ClockCheck("Speaker('x')", 24000, clock=clock)
    for _ in range(20):  # PortAudio fills its buffers: 20 periods at once
        check.tick(480)
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        _drive(check, clock, speed=1.0, seconds=5.0, frame=480)
    assert not check.pacing and not caplog.records


def test_a_slow_clock_is_reported_not_paced(caplog):
    clock = FakeClock()
    check = ClockCheck("Microphone('x')", 16000, clock=clock)
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        _drive(check, clock, speed=0.5, seconds=5.0)
    assert not check.pacing
    assert len(caplog.records) == 1 and "0.50x real time" in caplog.records[0].getMessage()


def test_a_pipe_fed_from_a_file_is_paced_after_the_warning(caplog):
    """``cat speech.raw | rtedge run --mic raw:-``: the writer is a file, far faster than a microphone."""
    ten_seconds = io.BytesIO(np.zeros(160000, "<i2").tobytes())
    src = RawSource(ten_seconds, rate=16000, realtime=False)
    frames: list[float] = []
    paced = threading.Event()

    def on_frame(frame: np.ndarray) -> None:
        frames.append(time.monotonic())

    with caplog.at_level(logging.WARNING, logger="rtedge"):
        src.start(on_frame)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                    "pacing it" in r.getMessage() for r in caplog.records):
                paced.wait(0.05)
            warned_at, count_then = time.monotonic(), len(frames)
            paced.wait(1.0)
            moved = (len(frames) - count_then) * 0.02  # 20 ms frames delivered in the second after
        finally:
            src.stop()
    assert any("pacing it" in r.getMessage() for r in caplog.records)
    assert count_then < 500  # it did not deliver the whole 10 s at once
    assert moved < 2.0, (moved, time.monotonic() - warned_at)  # about 1 s of audio per second now


def test_a_live_recorders_backlog_in_a_pipe_drains_instead_of_staying_as_latency(caplog):
    """``arecord | rtedge run --mic raw:-``: arecord records while rtedge starts up, so the pipe holds a
    backlog when reading begins.  The burst looked like a fast clock, and pacing to real time kept the
    backlog as latency for the whole session; a pipe ahead of real time is now read faster than real time
    (DRAIN_SPEED) until it falls behind its writer, which then sets the pace."""
    rfd, wfd = os.pipe()
    frame = np.zeros(320, "<i2").tobytes()
    written = [0]
    stop = threading.Event()

    def recorder() -> None:  # 1.5 s recorded before rtedge reads, then one frame per 20 ms
        os.write(wfd, frame * 75)
        written[0] = 75 * 320
        t0, k = time.monotonic(), 0
        while not stop.wait(max(0.0, t0 + k * 0.02 - time.monotonic())):
            os.write(wfd, frame)
            written[0] += 320
            k += 1

    delivered = [0]

    def on_frame(samples: np.ndarray) -> None:
        delivered[0] += len(samples)

    writer = threading.Thread(target=recorder, name="test-recorder", daemon=True)
    writer.start()
    src = RawSource(os.fdopen(rfd, "rb"), rate=16000, close=True)
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        assert wait_until(lambda: written[0] >= 75 * 320, timeout=5)
        src.start(on_frame)
        try:
            assert wait_until(lambda: any("pacing it" in r.getMessage() for r in caplog.records), timeout=10)
            # the backlog drains: at most a few frames (what is in flight) behind the recorder
            assert wait_until(lambda: (written[0] - delivered[0]) / 16000 < 0.1, timeout=10), \
                (written[0] - delivered[0]) / 16000
        finally:
            stop.set()
            writer.join(5)
            src.stop()
            os.close(wfd)


def test_a_file_piped_in_is_paced_to_real_time_once_ahead_by_more_than_a_pipe_holds():
    """``cat speech.raw | rtedge run --mic raw:-``: read faster than real time while its lead could be a
    recorder's backlog, the file would have been sent at 1.5x to its end (a conversation's pauses a third
    shorter than the answers they wait for); once it is further ahead than a pipe holds, it is a file,
    paced to real time: its lead stops growing."""
    rfd, wfd = os.pipe()
    rate = 24000  # a 64 KiB pipe holds 1.37 s of it
    src = RawSource(os.fdopen(rfd, "rb"), rate=rate, close=True)
    limit = src._backlog_limit_s()
    assert 1.0 < limit < 2.0
    first: list[float] = []
    delivered = [0]

    def on_frame(samples: np.ndarray) -> None:
        first.append(time.monotonic()) if not first else None
        delivered[0] += len(samples)

    def cat() -> None:  # ten seconds, as fast as the pipe takes them
        with contextlib.suppress(BrokenPipeError):
            os.write(wfd, np.zeros(10 * rate, "<i2").tobytes())

    writer = threading.Thread(target=cat, name="test-cat", daemon=True)
    writer.start()
    src.start(on_frame)
    try:
        assert wait_until(lambda: delivered[0] >= 6 * rate, timeout=15)
        lead = delivered[0] / rate - (time.monotonic() - first[0])
    finally:
        src.stop()
        os.close(wfd)
        writer.join(5)
    # at 1.5x to the end the lead would be about 2.7 s; paced, it stays near what the pipe holds
    assert lead < limit + 0.7, (lead, limit)
