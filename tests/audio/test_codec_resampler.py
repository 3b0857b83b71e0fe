"""Streaming resampler: chunk invariance, quality (default preset), delay, errors."""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtedge.audio import codec
from rtedge.audio.codec import Resampler
from rtedge.errors import AudioError

pytestmark = pytest.mark.usefixtures("backend")

RATES = codec.SUPPORTED_RATES
PAIRS = [(s, d) for s, d in itertools.permutations(RATES, 2)]
# the conversions a voice client actually runs, measured in the benchmark too
HOT_PAIRS = [(48000, 16000), (44100, 16000), (24000, 16000), (16000, 24000), (8000, 16000), (16000, 8000)]


def one_shot(r: Resampler, x: np.ndarray) -> np.ndarray:
    return np.concatenate([r.process(x), r.flush()])


def chunked(r: Resampler, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    parts, i = [], 0
    for n in sizes:
        parts.append(r.process(x[i : i + n]))
        i += n
    parts.append(r.process(x[i:]))
    parts.append(r.flush())
    return np.concatenate(parts)


def noise(n: int, dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype is np.int16:
        return np.clip(rng.normal(0, 8000, n), -32768, 32767).astype(np.int16)
    return rng.normal(0, 0.25, n).astype(np.float32)


def tone_fit(y: np.ndarray, freq: float, rate: float, start: int, stop: int) -> tuple[float, float, float]:
    """Least-squares fit of DC + a sine at ``freq``: (amplitude, phase, residual rms)."""
    k = np.arange(start, stop, dtype=np.float64)
    w = 2 * np.pi * freq / rate * k
    basis = np.stack([np.cos(w), np.sin(w), np.ones_like(w)], axis=1)
    seg = y[start:stop].astype(np.float64)
    coef, *_ = np.linalg.lstsq(basis, seg, rcond=None)
    resid = seg - basis @ coef
    return (
        float(np.hypot(coef[0], coef[1])),
        float(np.arctan2(coef[0], coef[1])),
        float(np.sqrt(np.mean(resid**2))),
    )


def run_tone(src: int, dst: int, freq: float, seconds: float = 0.25, amp: float = 0.5) -> np.ndarray:
    n = int(src * seconds)
    x = (amp * np.sin(2 * np.pi * freq / src * np.arange(n))).astype(np.float32)
    return one_shot(Resampler(src, dst), x).astype(np.float64)


def steady(src: int, dst: int, seconds: float) -> tuple[int, int]:
    """Output sample range free of start/stop transients."""
    r = Resampler(src, dst)
    margin = int(math.ceil(2 * r.delay)) + 8
    return margin, int(seconds * dst) - margin


# --------------------------------------------------------------------------- streaming invariants


@pytest.mark.parametrize("src,dst", PAIRS)
def test_every_pair_chunked_equals_one_shot(src: int, dst: int) -> None:
    for dtype in (np.int16, np.float32):
        x = noise(src // 10, dtype, seed=src + dst)
        r = Resampler(src, dst)
        ref = one_shot(r, x)
        assert ref.dtype == dtype
        rng = np.random.default_rng(dst)
        sizes = [int(v) for v in rng.integers(0, src // 40, 12)]
        np.testing.assert_array_equal(chunked(r, x, sizes), ref)
        # 20 ms frames, the pipeline's case
        frame = src // 50
        np.testing.assert_array_equal(chunked(r, x, [frame] * (len(x) // frame)), ref)
        # the stream consumed everything: about N * dst / src samples plus the flushed tail
        produced = len(r.process(x))
        assert abs(produced - len(x) * dst / src) <= 1.0
        r.reset()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pair=st.sampled_from(HOT_PAIRS + [(11025, 48000), (48000, 8000), (22050, 32000)]),
    sizes=st.lists(st.integers(0, 700), max_size=12),
    is_float=st.booleans(),
)
def test_any_split_gives_identical_output(pair: tuple[int, int], sizes: list[int], is_float: bool) -> None:
    src, dst = pair
    x = noise(sum(sizes) + 97, np.float32 if is_float else np.int16, seed=len(sizes))
    r = Resampler(src, dst)
    np.testing.assert_array_equal(chunked(r, x, sizes), one_shot(r, x))


def test_total_output_length_depends_only_on_input_length() -> None:
    for src, dst in HOT_PAIRS + [(48000, 8000), (32000, 8000)]:
        r = Resampler(src, dst)
        totals = set()
        for sizes in ([1] * 50, [50], [7, 0, 43], [25, 25]):
            totals.add(sum(len(r.process(np.zeros(n, np.int16))) for n in sizes))
            r.reset()
        assert len(totals) == 1
        assert abs(totals.pop() - 50 * dst / src) <= 1.0


def test_passthrough_returns_a_copy() -> None:
    r = Resampler(16000, 16000)
    x = noise(100, np.int16)
    y = r.process(x)
    np.testing.assert_array_equal(y, x)
    assert y is not x and not np.shares_memory(x, y)
    assert r.delay == 0.0 and r.flush().size == 0


def test_reset_forgets_history_and_flush_resets() -> None:
    x = noise(4800, np.int16)
    r = Resampler(48000, 16000)
    first = one_shot(r, x)
    np.testing.assert_array_equal(one_shot(r, x), first)  # flush() reset the stream
    r.process(noise(1000, np.int16, seed=5))
    r.reset()
    np.testing.assert_array_equal(one_shot(r, x), first)


def test_flush_emits_the_delayed_tail() -> None:
    """An impulse near the end of the input shows up in flush()'s output."""
    for src, dst in HOT_PAIRS:
        r = Resampler(src, dst)
        x = np.zeros(src // 100, np.float32)
        x[-1] = 1.0
        head = r.process(x)
        tail = r.flush()
        assert np.abs(head).max() < 0.5 * np.abs(tail).max()
        assert tail.size >= int(r.delay)


def test_dc_passes_exactly_for_int16() -> None:
    for src, dst in PAIRS[::5]:
        y = Resampler(src, dst).process(np.full(src // 20, 12345, np.int16))
        start = int(math.ceil(2 * Resampler(src, dst).delay)) + 2
        assert np.all(y[start:] == 12345), (src, dst)


def test_full_scale_input_saturates_instead_of_wrapping() -> None:
    x = np.tile(np.array([32767, 32767, -32768, -32768], np.int16), 500)
    y = Resampler(16000, 48000).process(x)
    assert y.max() == 32767 and y.min() == -32768
    # a square wave overshoots (Gibbs); wrapping would flip signs next to full-scale values
    assert np.all(np.abs(np.diff(y.astype(np.int32))) < 40000)


# --------------------------------------------------------------------------- quality (default preset)


def _lower(src: int, dst: int) -> int:
    return min(src, dst)


@pytest.mark.parametrize("src,dst", PAIRS)
def test_passband_ripple_at_most_0_1_db(src: int, dst: int) -> None:
    lo = _lower(src, dst)
    seconds = 0.2
    a, b = steady(src, dst, seconds)
    gains = []
    for frac in (0.005, 0.05, 0.1, 0.2, 0.3, 0.35, 0.4, 0.42, 0.44, 0.45):
        amp, _, _ = tone_fit(run_tone(src, dst, frac * lo, seconds), frac * lo, dst, a, b)
        gains.append(20 * np.log10(amp / 0.5))
    assert max(gains) - min(gains) <= 0.1, gains


@pytest.mark.parametrize("src,dst", PAIRS)
def test_alias_and_image_rejection_at_least_96_db(src: int, dst: int) -> None:
    seconds = 0.2
    a, b = steady(src, dst, seconds)
    worst = -np.inf
    if dst < src:
        # tones above the new Nyquist frequency must vanish
        nyq = dst / 2
        for f in (1.003 * nyq, 1.05 * nyq, 1.25 * nyq, 1.5 * nyq, 0.5 * (nyq + src / 2), 0.49 * src):
            if f >= src / 2:
                continue
            y = run_tone(src, dst, f, seconds)
            level = np.sqrt(2 * np.mean(y[a:b] ** 2)) / 0.5
            worst = max(worst, 20 * np.log10(level + 1e-30))
    else:
        # a tone below the old Nyquist: everything that is not the tone (its images) must vanish
        for frac in (0.1, 0.3, 0.45, 0.49):
            f = frac * src
            _, _, resid = tone_fit(run_tone(src, dst, f, seconds), f, dst, a, b)
            worst = max(worst, 20 * np.log10(resid * np.sqrt(2) / 0.5 + 1e-30))
    assert worst <= -96.0, f"{src}->{dst}: worst spurious level {worst:.1f} dB"


@pytest.mark.parametrize("src,dst", PAIRS)
def test_thd_n_of_1khz_sine_through_int16(src: int, dst: int) -> None:
    seconds = 0.25
    n = int(src * seconds)
    amp = 32767 * 10 ** (-1 / 20)
    x = np.rint(amp * np.sin(2 * np.pi * 1000 / src * np.arange(n))).astype(np.int16)
    y = one_shot(Resampler(src, dst), x)
    assert y.dtype == np.int16
    a, b = steady(src, dst, seconds)
    fit_amp, _, resid = tone_fit(y, 1000.0, dst, a, b)
    thd_n = 20 * np.log10(resid / (fit_amp / np.sqrt(2)))
    assert thd_n <= -90.0, f"{src}->{dst}: THD+N {thd_n:.1f} dB"


@pytest.mark.parametrize("src,dst", PAIRS)
def test_reported_delay_matches_measured_group_delay(src: int, dst: int) -> None:
    r = Resampler(src, dst)
    seconds = 0.5
    a, b = steady(src, dst, seconds)
    for frac in (0.01, 0.2):
        f = frac * _lower(src, dst)
        y = run_tone(src, dst, f, seconds)
        _, phase, _ = tone_fit(y, f, dst, a, b)
        # input sin(w t) comes out as sin(w (k - delay) / dst): phase = -w * delay / dst
        w = 2 * np.pi * f / dst
        err = (phase + w * r.delay + np.pi) % (2 * np.pi) - np.pi
        assert abs(err / w) < 0.01, f"{src}->{dst} at {f:.0f} Hz: delay off by {err / w:.4f} samples"
    assert r.delay > 0


# --------------------------------------------------------------------------- backends


@pytest.mark.parametrize("src,dst", PAIRS)
def test_backends_agree(kernels, monkeypatch, src: int, dst: int) -> None:  # type: ignore[no-untyped-def]
    """int16 output within 1 LSB, float32 output within float32 rounding."""
    if kernels["c"] is None:
        pytest.skip("the C extension is not built")
    for dtype in (np.int16, np.float32):
        x = noise(src // 10, dtype, seed=3)
        outs = []
        for name in ("numpy", "c"):
            monkeypatch.setattr(codec, "_impl", kernels[name])
            outs.append(one_shot(Resampler(src, dst), x))
        assert outs[0].shape == outs[1].shape
        diff = np.abs(outs[0].astype(np.float64) - outs[1].astype(np.float64))
        assert diff.max() <= (1.0 if dtype is np.int16 else 2e-6), (dtype, diff.max())


def test_streams_in_threads_are_independent() -> None:
    x = noise(48000, np.int16)
    ref = one_shot(Resampler(48000, 16000), x)
    results: list[np.ndarray] = []
    lock = threading.Lock()

    def work() -> None:
        out = one_shot(Resampler(48000, 16000), x)
        with lock:
            results.append(out)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for out in results:
        np.testing.assert_array_equal(out, ref)


# --------------------------------------------------------------------------- errors


def test_unsupported_rates_and_quality() -> None:
    with pytest.raises(ValueError, match="unsupported src_rate 12345"):
        Resampler(12345, 16000)
    with pytest.raises(AudioError, match="unsupported dst_rate 96000"):
        Resampler(16000, 96000)
    with pytest.raises(TypeError, match="must be an int"):
        Resampler(16000.0, 8000)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be an int"):
        Resampler(True, 8000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown quality"):
        Resampler(16000, 8000, quality="best")


def test_process_rejects_bad_chunks() -> None:
    r = Resampler(16000, 24000)
    with pytest.raises(TypeError, match="int16 or float32"):
        r.process(np.zeros(10, np.float64))
    with pytest.raises(ValueError, match="1-D"):
        r.process(np.zeros((10, 2), np.int16))
    with pytest.raises(ValueError, match="contiguous"):
        r.process(np.zeros(20, np.int16)[::2])
    with pytest.raises(ValueError, match="5 bytes"):
        r.process(b"\x00" * 5)
    with pytest.raises(TypeError):
        r.process([1, 2, 3])
    r.process(np.zeros(10, np.int16))
    with pytest.raises(TypeError, match="carries int16"):
        r.process(np.zeros(10, np.float32))
    # the same errors once the stream is running (the C fast path defers to the checks)
    with pytest.raises(ValueError, match="1-D"):
        r.process(np.zeros((10, 2), np.int16))
    with pytest.raises(ValueError, match="contiguous"):
        r.process(np.zeros(20, np.int16)[::2])
    with pytest.raises(ValueError, match="1-D"):
        r.process(np.array(3, np.int16))
    # and the stream still works afterwards
    assert r.process(np.zeros(160, np.int16)).size == 240


def test_bytes_chunks_are_pcm16() -> None:
    x = noise(3200, np.int16)
    r = Resampler(16000, 8000)
    np.testing.assert_array_equal(
        np.concatenate([r.process(x.tobytes()), r.flush()]), one_shot(Resampler(16000, 8000), x)
    )


def test_c_resample_kernel_validates_its_buffers(c_module) -> None:  # type: ignore[no-untyped-def]
    r = Resampler(16000, 24000)
    bank = codec._design(16000, 24000, "default").main.banks[np.dtype(np.float32)]
    taps = r._taps
    work = np.zeros(taps + 100, np.float32)
    src = np.zeros(100, np.int16)
    ok_out = np.empty(150, np.int16)
    assert c_module.resample(bank, 3, 2, taps, work, src, 0, ok_out) == 0
    with pytest.raises(ValueError, match="out must hold"):
        c_module.resample(bank, 3, 2, taps, work, src, 0, np.empty(149, np.int16))
    with pytest.raises(ValueError, match="work buffer"):
        c_module.resample(bank, 3, 2, taps, np.zeros(taps, np.float32), src, 0, ok_out)
    with pytest.raises(ValueError, match="geometry"):
        c_module.resample(bank, 3, 2, taps, work, src, 5, ok_out)
    with pytest.raises(ValueError, match="geometry"):
        c_module.resample(bank, 3, 2, taps + 1, work, src, 0, ok_out)
    with pytest.raises(ValueError, match="bank"):
        c_module.resample(bank[:-8], 3, 2, taps, work, src, 0, ok_out)
    with pytest.raises(ValueError, match="same dtype"):
        c_module.resample(bank, 3, 2, taps, work, src, 0, np.empty(150, np.float32))
    with pytest.raises(TypeError, match="float32"):
        c_module.resample(bank.astype(np.float64), 3, 2, taps, work, src, 0, ok_out)
    with pytest.raises(TypeError):
        c_module.resample(bank, 3, 2, taps, work.tobytes(), src, 0, ok_out)
    with pytest.raises(TypeError):
        c_module.resample(bank, 3, 2, taps, work, src, 0)


@pytest.mark.parametrize("quality,floor_db", [("fast", -80.0), ("high", -115.0)])
@pytest.mark.parametrize("src,dst", [(48000, 16000), (44100, 16000), (16000, 24000), (16000, 8000)])
def test_other_quality_presets(quality: str, floor_db: float, src: int, dst: int) -> None:
    x = noise(src // 10, np.int16, seed=11)
    r = Resampler(src, dst, quality=quality)
    np.testing.assert_array_equal(chunked(r, x, [7, 300, 0, 41]), one_shot(r, x))
    n = int(src * 0.2)
    f = 1.1 * dst / 2 if dst < src else 0.45 * src
    tone = (0.5 * np.sin(2 * np.pi * f / src * np.arange(n))).astype(np.float32)
    y = one_shot(Resampler(src, dst, quality=quality), tone).astype(np.float64)
    a, b = len(y) // 5, 4 * len(y) // 5
    if dst < src:
        level = np.sqrt(2 * np.mean(y[a:b] ** 2)) / 0.5
    else:
        level = tone_fit(y, f, dst, a, b)[2] * np.sqrt(2) / 0.5
    assert 20 * np.log10(level + 1e-30) <= floor_db
