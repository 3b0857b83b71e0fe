"""The playback buffer: exact pulls, the per-item played clock, and flush for barge-in."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rtedge.audio.playback import PlaybackBuffer
from rtedge.errors import AudioError

RATE = 24000


def ramp(n: int, start: int = 1) -> np.ndarray:
    return (np.arange(start, start + n) % 30000).astype(np.int16)


def test_pull_returns_exactly_n_samples_in_order_then_silence():
    pb = PlaybackBuffer(RATE)
    a, b = ramp(700), ramp(300, 5000)
    pb.push("item_a", 0, a)
    pb.push("item_b", 0, b)
    out = np.concatenate([pb.pull(480) for _ in range(4)])
    assert len(out) == 1920
    assert np.array_equal(out[:1000], np.concatenate([a, b]))
    assert not out[1000:].any()
    assert pb.stats.played_samples == 1000 and pb.stats.silence_samples == 920
    assert pb.stats.underruns == 1  # one pull was only partly filled


def test_played_clock_counts_handed_samples_per_item():
    pb = PlaybackBuffer(RATE)
    pb.push("item_a", 0, ramp(2400))  # 100 ms
    pb.push("item_b", 1, ramp(4800))  # 200 ms
    pb.pull(1200)
    assert pb.played_ms("item_a") == pytest.approx(50.0)
    pb.pull(2400)  # rest of a (1200) + 1200 of b
    assert pb.played_ms("item_a") == pytest.approx(100.0)
    assert pb.played_ms("item_b", 1) == pytest.approx(50.0)
    assert pb.played_ms("item_b", 0) == 0.0
    assert pb.received_ms("item_b", 1) == pytest.approx(200.0)


def test_output_latency_is_subtracted_from_the_current_item():
    pb = PlaybackBuffer(RATE, output_latency=0.040)
    pb.push("item_a", 0, ramp(RATE))
    pb.pull(4800)  # 200 ms handed; about 40 ms of it is still in the device
    assert 155.0 <= pb.played_ms("item_a") <= 161.0


def test_the_played_clock_never_goes_below_zero():
    """Less handed to the device than its latency: nothing heard yet, so 0 ms (never negative: a
    truncate must not be built from a negative position)."""
    pb = PlaybackBuffer(RATE, output_latency=0.200)
    pb.push("item_a", 0, ramp(RATE))
    pb.pull(480)  # 20 ms handed to a device that holds 200 ms
    assert pb.played_ms("item_a") == 0.0


def test_flush_silences_the_next_pull_and_reports_the_position():
    pb = PlaybackBuffer(RATE)
    pb.push("item_a", 0, ramp(RATE))
    pb.pull(480 * 5)  # 100 ms played
    pos = pb.flush()
    assert pos is not None
    assert (pos.item_id, pos.content_index) == ("item_a", 0)
    assert pos.played_ms == pytest.approx(100.0)
    assert pos.received_ms == pytest.approx(1000.0)
    assert pos.dropped_ms == pytest.approx(900.0)
    assert not pb.pull(480).any()
    deadline = time.monotonic() + 2.0  # the device plays out what it held, then falls silent
    while pb.is_playing() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not pb.is_playing()


def test_flush_reports_everything_handed_over_since_the_device_still_plays_it():
    pb = PlaybackBuffer(RATE, output_latency=0.040)
    pb.push("item_a", 0, ramp(RATE))
    pb.pull(4800)  # 200 ms handed; about 40 ms of it is still in the device and will be heard
    assert pb.played_ms("item_a") < 170.0  # heard so far
    pos = pb.flush()
    assert pos is not None and pos.played_ms == pytest.approx(200.0)  # heard in the end
    assert pb.is_playing()  # the device's 40 ms are still sounding (the echo guard must know)
    assert pb.flush() is None  # a second barge-in finds nothing left to cut


def test_flush_before_anything_played_names_the_queued_item_with_zero_played():
    pb = PlaybackBuffer(RATE)
    pb.push("item_a", 0, ramp(480))
    pos = pb.flush()
    assert pos is not None and pos.item_id == "item_a" and pos.played_ms == 0.0


def test_flush_when_everything_already_played_reports_nothing_interrupted():
    pb = PlaybackBuffer(RATE)
    assert pb.flush() is None  # nothing ever played
    pb.push("item_a", 0, ramp(480))
    pb.pull(480)
    pb.pull(480)  # drained; no output latency: nothing still sounding
    assert pb.flush() is None


def test_overflow_drops_oldest_and_counts():
    pb = PlaybackBuffer(RATE, max_seconds=0.1)
    pb.push("item_a", 0, ramp(2400))
    pb.push("item_a", 0, ramp(2400, 7))
    assert pb.stats.overflow_samples == 2400
    assert np.array_equal(pb.pull(2400), ramp(2400, 7))


def test_rejects_wrong_audio():
    pb = PlaybackBuffer(RATE)
    with pytest.raises(AudioError):
        pb.push("x", 0, np.zeros(10, dtype=np.float32))
    with pytest.raises(AudioError):
        pb.push("x", 0, np.zeros((10, 2), dtype=np.int16))
