"""The echo canceller (libspeexdsp through rtedge.audio._aec) on a simulated room.

Smaller sets than ``benchmarks/aec.py`` (which runs 60 s of playback and 100 double-talk trials):
ERLE on the linear room, no false VAD onsets over own playback, double talk detected within 300 ms,
the live alignment of :meth:`EchoCanceller.played` / :meth:`EchoCanceller.process`, and the one-line
error where the extension is not built.  Far-end speech is espeak-ng (skipped without it), near-end
speech the fixtures in ``../shared/fixtures/speech``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rtedge.audio import aec as aec_mod
from rtedge.audio.aec import EchoCanceller
from rtedge.errors import AudioError, ConfigError
from rtedge.testing import room, speech
from rtedge.audio.wavio import read_wav

RATE = 16000
SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "speech"
needs_aec = pytest.mark.skipif(not aec_mod.available(), reason="rtedge.audio._aec is not built "
                                                                 "(libspeexdsp-dev missing at install)")
needs_tts = pytest.mark.skipif(not speech.available(), reason="espeak-ng and sox are not installed")


@pytest.fixture(scope="module")
def far() -> np.ndarray:
    if not speech.available():
        pytest.skip("espeak-ng and sox are not installed")
    x = speech.answer(20.0, rate=RATE, seed=1)
    return room.to_int16(room.scale_to(x, -20.0, active=np.abs(x) > 300))


@pytest.fixture(scope="module")
def near() -> list[np.ndarray]:
    if not SPEECH.is_dir():
        pytest.skip("../shared/fixtures/speech is not present")
    return [read_wav(p)[0] for p in sorted(SPEECH.glob("*.wav"))]


def test_without_the_extension_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(aec_mod, "_module", lambda: None)
    assert not aec_mod.available()
    with pytest.raises(ConfigError, match="libspeexdsp-dev"):
        EchoCanceller(RATE)


def test_voice_agent_aec_without_the_extension_fails_with_one_clear_line(monkeypatch):
    from rtedge.voice.agent import VoiceAgent

    class Dev:
        rate, frame_ms, output_latency = 16000, 20, 0.0

        def _add_audio_hook(self, sink):
            pass

        def _add_event_hook(self, hook):
            pass

    monkeypatch.setattr(aec_mod, "_module", lambda: None)
    with pytest.raises(ConfigError) as err:
        VoiceAgent(Dev(), Dev(), Dev(), echo_guard="aec")
    assert "\n" not in str(err.value) and "libspeexdsp" in str(err.value)


@needs_aec
def test_bad_settings_and_audio_are_rejected():
    with pytest.raises(ConfigError):
        EchoCanceller(4000)
    with pytest.raises(ConfigError):
        EchoCanceller(RATE, frame_ms=15)
    with pytest.raises(ConfigError):
        EchoCanceller(RATE, tail_ms=5)
    c = EchoCanceller(RATE)
    with pytest.raises(AudioError):
        c.cancel(np.zeros(160, np.int16), np.zeros(150, np.int16))
    with pytest.raises(AudioError):
        c.process(np.zeros(160, np.float32))
    with pytest.raises(ValueError):
        c._c.process(np.zeros(100, np.int16), np.zeros(160, np.int16), np.zeros(160, np.int16))


@needs_aec
@pytest.mark.parametrize("rt60", [0.1, 0.3])
def test_erle_on_the_linear_room_after_two_seconds(far, rt60):
    e = room.echo(far, RATE, rt60_s=rt60, level=-25.0, seed=3)
    mic = room.to_int16(e + np.random.default_rng(0).normal(0, 32768 * 10 ** (-65 / 20), len(e)))
    c = EchoCanceller(RATE)
    out = c.cancel(mic, far)
    assert len(out) == len(mic)  # 20 s is a whole number of 10 ms frames
    s = 2 * RATE
    active = np.abs(far[s:]) > 300
    assert room.erle_db(e[s:], out[s:], active) >= 25.0
    # the same echo without the canceller: nothing removed (the measure is not trivially high)
    assert room.erle_db(e[s:], mic[s:], active) < 1.0


@needs_aec
@pytest.mark.parametrize("drive", [0.0, 2.0], ids=["linear", "nonlinear"])
def test_own_playback_opens_the_local_vad_zero_times(far, drive):
    e = room.echo(far, RATE, rt60_s=0.3, level=-25.0, drive=drive, seed=4)
    mic = e + np.random.default_rng(1).normal(0, 32768 * 10 ** (-65 / 20), len(e))
    _, onsets = room.guard_pipeline(mic, far, RATE, canceller=EchoCanceller(RATE), boost_db=15.0)
    assert onsets == []
    # without the canceller the same echo beats the raised threshold again and again
    _, raw = room.guard_pipeline(mic, far, RATE, canceller=None, boost_db=15.0)
    assert len(raw) > 10


@needs_aec
@pytest.mark.parametrize("room_seed", [1, 2])
def test_a_saturating_speaker_with_drift_does_not_open_the_gate_on_its_loud_passages(room_seed):
    """The canceller cannot model a saturating loudspeaker: on loud passages its residual is only 12-15 dB
    below the echo.  With the converged gate boost at 10 dB whatever the canceller achieved, this answer
    opened the gate 13.5 s in (room 2); the boost now follows the attenuation the canceller reaches."""
    if not speech.available():
        pytest.skip("espeak-ng and sox are not installed")
    x = speech.answer(16.0, rate=RATE, seed=3)
    far = room.to_int16(room.scale_to(x, -20.0, active=np.abs(x) > 300))
    e = room.echo(far, RATE, rt60_s=0.3, level=-25.0, drive=2.0, ppm=50.0, seed=room_seed)
    mic = e + np.random.default_rng(2).normal(0, 32768 * 10 ** (-65 / 20), len(e))
    c = EchoCanceller(RATE)
    _, onsets = room.guard_pipeline(mic, far, RATE, canceller=c, boost_db=15.0, live_ppm=50.0)
    assert onsets == []
    assert c.converged and c.attenuation_db < aec_mod.LINEAR_ATTENUATION_DB  # the residual regime


@needs_aec
def test_the_converged_boost_follows_the_attenuation_reached():
    c = EchoCanceller(RATE)
    assert c.gate_boost() == aec_mod.LEARNING_BOOST_DB
    c._converged, c._p_mic, c._p_out = True, 1e6, 1e6 / 10 ** (35 / 10)
    assert c.gate_boost() == aec_mod.GATE_BOOST_DB
    c._p_out = 1e6 / 10 ** (20 / 10)
    assert c.gate_boost() == aec_mod.RESIDUAL_BOOST_DB > aec_mod.GATE_BOOST_DB


@needs_aec
def test_double_talk_is_detected_within_300_ms(far, near):
    rng = np.random.default_rng(2)
    results = []
    for t in range(12):
        off = int(rng.integers(0, len(far) - 10 * RATE))
        results.append(room.double_talk_trial(far[off:off + 10 * RATE], near[t % len(near)], RATE,
                                              canceller=EchoCanceller(RATE), rng=rng))
    detected = [ms for ms, _ in results if ms is not None]
    assert len(detected) >= 11, results
    assert sum(false for _, false in results) == 0


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@needs_aec
def test_live_alignment_from_device_timing(far):
    """Speaker blocks reported with their output latency, mic frames with their input latency and
    late-jittered callbacks: the canceller lines them up itself and cancels as well as with an
    explicitly aligned reference; a speaker restart is one re-anchoring."""
    clock = _Clock()
    c = EchoCanceller(RATE, clock=clock)
    rng = np.random.default_rng(3)
    out_lat, in_lat, acoustic = 0.060, 0.030, 0.004
    e = room.echo(far, RATE, rt60_s=0.2, level=-25.0, seed=5)
    delay = int((out_lat + acoustic) * RATE)  # echo of far[k] reaches the mic at sample k + delay
    heard = np.concatenate([np.zeros(delay), e])[:len(far)]
    mic = room.to_int16(heard + rng.normal(0, 32768 * 10 ** (-65 / 20), len(heard)))
    n = RATE // 50
    out = []
    for k in range(0, len(far) - n + 1, n):
        t = 100.0 + k / RATE
        clock.t = t + rng.uniform(0, 0.004)  # the speaker callback runs a little late
        c.played(far[k:k + n], RATE, out_lat)
        clock.t = t + n / RATE + in_lat + rng.uniform(0, 0.006)  # mic frame delivered after capture
        out.append(c.process(mic[k:k + n], in_lat))
    y = np.concatenate(out)
    s = 4 * RATE
    active = np.abs(far[s - delay:len(y) - delay]) > 300
    assert room.erle_db(heard[s:len(y)], y[s:], active) >= 20.0
    assert c.stats.realigns == 0 and c.stats.reference_missing < RATE // 10


@needs_aec
def test_reference_at_another_rate_is_resampled_and_a_restart_reanchors():
    clock = _Clock()
    c = EchoCanceller(RATE, clock=clock)
    for k in range(50):  # 24 kHz speaker, 20 ms blocks, in step with the mic
        clock.t = 100.0 + k * 0.02
        c.played(np.zeros(480, np.int16), 24000, 0.02)
        clock.t += 0.02
        assert len(c.process(np.zeros(320, np.int16))) == 320
    assert c.stats.reference_samples == 50 * 320 and c.stats.realigns == 0
    clock.t += 5.0  # the speaker stream was reopened: its schedule jumps by seconds
    for k in range(10):
        c.played(np.zeros(480, np.int16), 24000, 0.02)
        clock.t += 0.02
        c.process(np.zeros(320, np.int16))
    assert c.stats.realigns <= 1


@needs_aec
@pytest.mark.parametrize("echo_moves", [True, False], ids=["new-latency", "misplaced"])
def test_a_reanchored_alignment_shuts_the_gate_until_the_filter_is_shown_to_match(echo_moves):
    """A re-anchor may move the echo along the filter: ``converged`` (and the gate boost) used to stay as they
    were, so the gate opened on echo the misplaced filter let through while relearning (false barge-ins
    through the agent at 50 ppm of drift).  Here the speaker is reopened reporting 40 ms less output latency
    (more than the 20 ms margin): the canceller is learning again at once.  When the echo did come 40 ms
    sooner (the latency is right, the re-anchor keeps it where the filter has it) the kept filter still
    matches, and the check after its tail and RECHECK_S of audible reference calls it converged again (it
    used to wait for CONVERGE_S of relearning from scratch, ~3 s with the gate shut); when the echo did not
    move, the filter is misplaced and the canceller learns for CONVERGE_S as after a reset."""
    clock = _Clock()
    c = EchoCanceller(RATE, clock=clock)
    rng = np.random.default_rng(8)
    n = RATE // 50
    far = room.to_int16(rng.normal(0, 32768 * 10 ** (-20 / 20), 30 * RATE))  # always audible
    e = room.echo(far, RATE, rt60_s=0.2, level=-25.0, seed=5) + rng.normal(0, 32768 * 10 ** (-65 / 20), len(far))
    in_lat, acoustic = 0.030, 0.004

    def step(k: int, out_lat: float, echo_lat: float) -> None:
        t = 100.0 + k / RATE
        clock.t = t
        c.played(far[k:k + n], RATE, out_lat)
        clock.t = t + n / RATE + in_lat
        d = int((echo_lat + acoustic) * RATE)  # the echo of far[j] reaches the mic at sample j + d
        c.process(room.to_int16(e[k - d:k - d + n]) if k >= d else np.zeros(n, np.int16), in_lat)

    k = 0
    while not c.converged and k < 10 * RATE:  # converges within seconds of audible reference
        step(k, 0.100, 0.100)
        k += n
    assert c.converged and c.gate_boost() < aec_mod.LEARNING_BOOST_DB and c.stats.realigns == 0
    for _ in range(50):  # a second more in step: still converged
        step(k, 0.100, 0.100)
        k += n
    assert c.converged
    echo_lat = 0.060 if echo_moves else 0.100
    step(k, 0.060, echo_lat)  # the speaker stream reopened reporting 40 ms less latency: re-anchored
    k += n
    assert c.stats.realigns == 1
    assert not c.converged and c.gate_boost() == aec_mod.LEARNING_BOOST_DB
    learning = 1
    while not c.converged and k < 25 * RATE:
        step(k, 0.060, echo_lat)
        k += n
        learning += 1
    assert c.converged and c.stats.realigns == 1
    if echo_moves:
        assert learning * n < aec_mod.CONVERGE_S * RATE
        checked = (200 / 1000 + aec_mod.RECHECK_S) * RATE  # the filter's tail (tail_ms) left out, then the check
        assert checked <= learning * n <= checked + n
    else:
        assert learning * n >= aec_mod.CONVERGE_S * RATE  # it relearnt from scratch, not from the old powers


# ------------------------------------------------------------------------------------------ clock drift
def test_interpolation_is_exact_at_whole_positions_and_band_limited_between():
    from rtedge.audio.drift import interpolate

    rng = np.random.default_rng(4)
    x = rng.normal(0, 3000, 400)
    assert np.allclose(interpolate(x, 1000, np.arange(1020.0, 1300.0)), x[20:300])
    t = np.arange(4000)
    tone = 8000 * np.sin(2 * np.pi * 1000 * t / RATE)  # 1 kHz, well inside the speech band
    pos = 100 + np.arange(3000) * (1 + 250e-6) + 0.37
    err = interpolate(tone, 0, pos) - 8000 * np.sin(2 * np.pi * 1000 * pos / RATE)
    assert 20 * np.log10(np.sqrt(np.mean(err ** 2)) / 8000) < -50


def test_ir_shift_measures_a_fractional_slide_and_refuses_unrelated_paths():
    from rtedge.audio.drift import interpolate, ir_shift

    h = room.room_impulse_response(RATE, 0.2, seed=6)
    for shift in (0.0, 0.37, -0.8, 3.25):
        moved = interpolate(h, 0, np.arange(len(h)) - shift)
        assert ir_shift(h, moved, RATE, 32) == pytest.approx(shift, abs=0.03)
    assert ir_shift(h, room.room_impulse_response(RATE, 0.2, seed=7), RATE, 32) is None


def _live(far, ppm, drift_compensation, drive=0.0):
    e = room.echo(far, RATE, rt60_s=0.3, level=-25.0, drive=drive, ppm=ppm, seed=4)
    mic = e + np.random.default_rng(1).normal(0, 32768 * 10 ** (-65 / 20), len(e))
    c = EchoCanceller(RATE, drift_compensation=drift_compensation)
    out, onsets = room.guard_pipeline(mic, far, RATE, canceller=c, boost_db=15.0, live_ppm=ppm)
    s = 6 * RATE
    erle = room.erle_db(e[s:len(out)], out[s:], np.abs(far[s:len(out)]) > 300)
    return c, onsets, erle


@needs_aec
@pytest.mark.parametrize(("ppm", "min_erle"), [(50.0, 25.0), (-50.0, 25.0), (200.0, 20.0)])
def test_drift_between_speaker_and_mic_clocks_is_estimated_and_compensated(far, ppm, min_erle):
    """The issue's 50 ppm either way, and 200 ppm (a cheap USB adaptive clock; locks later)."""
    c, onsets, erle = _live(far, ppm, True)
    assert c.drift_ppm == pytest.approx(ppm, abs=2.0)
    assert c.stats.realigns == 0 and c.drift is not None and c.drift.updates > 10
    assert onsets == []
    assert erle >= min_erle


@needs_aec
def test_without_drift_compensation_the_same_drift_costs_echo_loss_and_the_low_gate_boost(far):
    """Uncompensated drift leaves the canceller in the residual regime: the gate needs its higher boost
    (slower double-talk detection), and with the linear path's 10 dB it would open on the echo."""
    c, onsets, erle = _live(far, 50.0, False)
    assert c.drift_ppm == 0.0
    assert erle < 23.0 and c.attenuation_db < aec_mod.LINEAR_ATTENUATION_DB
    assert c.gate_boost() == aec_mod.RESIDUAL_BOOST_DB


@needs_aec
def test_drift_compensation_leaves_matched_clocks_alone(far):
    c, onsets, erle = _live(far, 0.0, True)
    assert abs(c.drift_ppm) < 1.0 and onsets == [] and erle >= 30.0


def _pulled_from_the_mic_thread(c, ppm, seconds, out_latency=0.04, first_late=0.001, step_at=None, step=0.0):
    """A speaker fed from the microphone's thread, as ``rtedge.testing.room_devices`` does: before each mic
    frame, 20 ms blocks are handed over until the loudspeaker (its clock ``ppm`` faster) has what that frame
    hears.  The hand-offs are late by a share of a frame that slides with the drift, from nothing to a whole
    frame and back in one step every ``1 / (ppm * 1e-6 * 50)`` s.  The first mic frame arrives
    ``first_late`` s late; from mic frame ``step_at`` on the speaker reports ``step`` s more latency."""
    clock = _Clock()
    c.clock = clock
    n, blocks, quiet = RATE // 50, 0, np.zeros(RATE // 50, np.int16)
    for k in range(int(seconds * 50)):
        late = step if step_at is not None and k >= step_at else 0.0
        clock.t = 100.0 + k * n / RATE
        while blocks * n <= (k + 1) * n * (1 + ppm * 1e-6):
            c.played(quiet, RATE, out_latency + late)
            blocks += 1
        clock.t += first_late if k == 0 else 0.0
        c.process(quiet)


@needs_aec
def test_a_speaker_handed_blocks_on_the_mics_ticks_with_a_compensated_drift_never_reanchors():
    """The schedules' expected alignment used to drift from the compensated read position: on the mic's
    ticks the speaker's hand-offs look a growing share of a frame late, which its earliest-time schedule
    took for the truth, until a frame took two blocks and it stepped back: a slide of one frame (20 ms, the
    margin) every 400 s at 50 ppm, which through the agent came within 0.2 ms of the margin or past it (a
    re-anchor, the gate shut for seconds).  Here, with the first mic frame 1 ms late, it re-anchored 38 s in
    at 500 ppm.  The expectation now advances with the drift like the read position and keeps the tightest
    bound."""
    c = EchoCanceller(RATE)
    assert c.drift is not None
    c.drift.drift = 500e-6  # as the tracker locks on a playing answer (silence does not move it)
    _pulled_from_the_mic_thread(c, 500.0, 90.0)
    assert c.stats.realigns == 0 and c._next_ref is not None
    assert c.drift.drift == 500e-6  # the audio was silent: the compensation was the preset one throughout


@needs_aec
@pytest.mark.parametrize(("step", "realigns"), [(0.1, 1), (0.01, 0)])
def test_a_speaker_restarted_with_more_latency_reanchors_beyond_margin_and_a_block(step, realigns):
    """A speaker stream reopened with 100 ms more output latency sounds each block later: the expected
    alignment comes down (after a second of later hand-offs) and the alignment is re-anchored; 10 ms more
    is within one hand-off block and is left to the filter (the echo still comes after its reference)."""
    c = EchoCanceller(RATE)
    _pulled_from_the_mic_thread(c, 0.0, 40.0, step_at=500, step=step)
    assert c.stats.realigns == realigns
