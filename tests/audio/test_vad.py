"""The local VAD gate: speech, silence, noise, boost, chunking, stats, and the server's VAD on gated audio.

Speech fixtures (espeak-ng, 16 kHz, 0.3 s lead / 0.5 s tail silence) live next to the checkout in
``../shared/fixtures/speech``; the tests that need them skip when it is absent.  Optional backends
(``webrtc``, ``silero``) are skipped when their packages are not installed.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rtedge
from rtedge.audio import vad as vad_module
from rtedge.audio.codec import Resampler
from rtedge.audio.vad import GateResult, VadGate, VadSettings, available_backends
from rtedge.errors import AudioError, ConfigError
from rtedge.audio.wavio import read_wav

SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "speech"
FIXTURES = sorted(p.name for p in SPEECH.glob("*.wav")) if SPEECH.is_dir() else []
RATE = 16000
FRAME = 320  # 20 ms at 16 kHz, the default frame
LEAD_S, TAIL_S = 1.0, 2.0  # extra silence around each fixture, so the pre-roll and trailing fit
DEFAULTS = VadSettings()
PRE_ROLL = DEFAULTS.pre_roll_ms // 20
AFTER_SPEECH = (DEFAULTS.hangover_ms + DEFAULTS.trailing_ms) // 20  # frames sent after the last voiced one

BACKENDS = [
    pytest.param(name, marks=pytest.mark.skipif(name not in available_backends(),
                                                reason=f"VAD backend {name!r} is not installed"))
    for name in ("energy", "webrtc", "silero")
]
needs_speech = pytest.mark.skipif(not FIXTURES, reason="../shared/fixtures/speech is not present")


# --------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=None)
def fixture(name: str) -> np.ndarray:
    samples, rate = read_wav(SPEECH / name)
    assert rate == RATE
    samples.setflags(write=False)
    return samples


def padded(x: np.ndarray, lead_s: float = LEAD_S, tail_s: float = TAIL_S) -> np.ndarray:
    return np.concatenate([np.zeros(int(lead_s * RATE), np.int16), x, np.zeros(int(tail_s * RATE), np.int16)])


def noise(seconds: float, dbfs: float, seed: int = 1) -> np.ndarray:
    """Seeded white noise at an RMS level of ``dbfs``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * RATE)) * 32768.0 * 10 ** (dbfs / 20)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def scaled(x: np.ndarray, gain_db: float) -> np.ndarray:
    return np.clip(np.round(x * 10 ** (gain_db / 20)), -32768, 32767).astype(np.int16)


def reference_frames(x: np.ndarray, level_dbfs: float = -45.0) -> tuple[int, int]:
    """First and last 20 ms frame whose RMS exceeds ``level_dbfs``: a simple reference speech region."""
    n = len(x) // FRAME
    rms = np.sqrt(np.mean(x[:n * FRAME].astype(np.float64).reshape(n, FRAME) ** 2, axis=1))
    loud = np.nonzero(20 * np.log10(np.maximum(rms, 1e-9) / 32768) > level_dbfs)[0]
    assert loud.size, "no speech in the reference signal"
    return int(loud[0]), int(loud[-1])


def run_frames(gate: VadGate, x: np.ndarray) -> tuple[np.ndarray, list[GateResult]]:
    """Feed ``x`` one frame per call; return a per-frame 'was sent' mask and the results.

    Fed frame by frame, every call's frames are the latest ones, ending at the current frame,
    so their positions are known; the mask also checks that sent audio is the input, unaltered.
    """
    fs = gate.frame_samples
    n = len(x) // fs
    mask = np.zeros(n, dtype=bool)
    results = []
    for i in range(n):
        result = gate.process(x[i * fs:(i + 1) * fs])
        results.append(result)
        for j, frame in enumerate(reversed(result.frames)):
            k = i - j
            assert not mask[k], "a frame was sent twice"
            assert np.array_equal(frame, x[k * fs:(k + 1) * fs]), "sent audio differs from the input"
            mask[k] = True
    return mask, results


def run_chunks(gate: VadGate, x: np.ndarray, bounds: list[int]) -> np.ndarray:
    """Feed ``x`` split at ``bounds``; return every sent sample, concatenated."""
    edges = [0, *bounds, len(x)]
    out = [gate.process(x[a:b]).samples for a, b in zip(edges, edges[1:])]
    return np.concatenate(out)


def segments(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frame of each run of sent frames."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1))


def assert_flags_pair(results: list[GateResult]) -> None:
    """speech_started and speech_ended alternate, starting with a start."""
    open_ = False
    for r in results:
        if r.speech_started:
            assert not open_
            open_ = True
        if r.speech_ended:
            assert open_
            open_ = False


# --------------------------------------------------------------------------- real speech


@needs_speech
@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("vad_backend", BACKENDS)
def test_speech_is_sent_with_pre_roll_and_trailing(vad_backend, name):
    x = padded(fixture(name))
    gate = VadGate(RATE, VadSettings(backend=vad_backend))
    mask, results = run_frames(gate, x)
    first_ref, last_ref = reference_frames(x)
    segs = segments(mask)
    assert len(segs) == 1, segs
    (first, last), = segs
    # all of the speech is sent
    assert mask[first_ref:last_ref + 1].all()
    # it starts about pre_roll_ms before the speech; a model may need a window or two more
    late = 2 if vad_backend == "energy" else 8
    assert first_ref - PRE_ROLL - 2 <= first <= first_ref - PRE_ROLL + late, (first, first_ref)
    # and ends hangover_ms + trailing_ms after the last voiced frame
    slack = 3 if vad_backend == "energy" else 10
    assert abs(last - (last_ref + AFTER_SPEECH)) <= slack, (last, last_ref)
    # the flags come on the calls that send the first and the last frame
    assert [i for i, r in enumerate(results) if r.speech_started] == [first + PRE_ROLL + 2]
    assert [i for i, r in enumerate(results) if r.speech_ended] == [last]
    assert gate.stats.speech_segments == 1 and not gate.is_open


@needs_speech
@pytest.mark.parametrize("vad_backend", BACKENDS)
def test_chunking_does_not_change_what_is_sent(vad_backend):
    x = padded(fixture(FIXTURES[0]), lead_s=0.5, tail_s=1.2)
    reference = run_chunks(VadGate(RATE, VadSettings(backend=vad_backend)), x, [])
    assert len(reference) > 0
    rng = np.random.default_rng(7)
    splits = [list(range(c, len(x), c)) for c in (7, 160, 320, 333, 1000, 4801)]
    splits.append(sorted(rng.choice(len(x), size=300, replace=False).tolist()))
    for bounds in splits:
        gate = VadGate(RATE, VadSettings(backend=vad_backend))
        assert np.array_equal(run_chunks(gate, x, bounds), reference)
        assert gate.stats.frames_sent * FRAME == len(reference)


@needs_speech
@pytest.mark.parametrize("rate", [8000, 24000, 48000])
@pytest.mark.parametrize("vad_backend", BACKENDS)
def test_other_rates(vad_backend, rate):
    x16 = padded(fixture("turn_on_the_kitchen_lights.wav"))
    rs = Resampler(RATE, rate)
    x = np.concatenate([rs.process(x16), rs.flush()])
    gate = VadGate(rate, VadSettings(backend=vad_backend))
    mask, results = run_frames(gate, x)
    first_ref, last_ref = reference_frames(x16)
    (first, last), = segments(mask)
    assert first <= first_ref - PRE_ROLL + 8 and last >= last_ref + AFTER_SPEECH - 10
    assert_flags_pair(results)


# --------------------------------------------------------------------------- silence and noise


@pytest.mark.parametrize("vad_backend", BACKENDS)
def test_digital_silence_sends_nothing(vad_backend):
    gate = VadGate(RATE, VadSettings(backend=vad_backend))
    silence = np.zeros(RATE // 10, np.int16)
    assert all(gate.process(silence).frames == () for _ in range(100))  # 10 s
    stats = gate.stats
    assert (stats.frames_in, stats.frames_sent, stats.speech_segments) == (500, 0, 0)
    assert stats.bytes_not_sent == 10 * RATE * 2 and stats.seconds_not_sent == pytest.approx(10.0)


@pytest.mark.parametrize("vad_backend", BACKENDS)
def test_white_noise_sends_nothing_once_the_floor_adapts(vad_backend):
    gate = VadGate(RATE, VadSettings(backend=vad_backend))
    mask, results = run_frames(gate, noise(10, -30.0))
    onsets = [i for i, r in enumerate(results) if r.speech_started]
    assert all(i < 25 for i in onsets)  # only within the first 0.5 s, if at all
    assert not mask[25 + AFTER_SPEECH:].any()
    assert gate.noise_floor_dbfs == pytest.approx(-30.0, abs=1.0)


def test_floor_relearns_when_the_room_gets_louder():
    """Silence seeds the floor at -60 dBFS; a fan at -30 dBFS opens the gate once, then never again."""
    s = VadSettings()
    gate = VadGate(RATE, s)
    mask, results = run_frames(gate, np.concatenate([np.zeros(RATE, np.int16), noise(14, -30.0)]))
    (first, last), = segments(mask)
    assert first >= 50 - PRE_ROLL - 1
    assert last <= 50 + (s.relearn_ms + s.hangover_ms + s.trailing_ms) // 20 + 5
    assert gate.noise_floor_dbfs == pytest.approx(-30.0, abs=1.0)
    assert_flags_pair(results)
    assert not gate.is_open


@needs_speech
@pytest.mark.parametrize("vad_backend", BACKENDS)
def test_quiet_speech_in_noise_still_triggers(vad_backend):
    clean = padded(fixture("turn_on_the_kitchen_lights.wav"))
    mix = np.clip(scaled(clean, -20.0).astype(np.int32) + noise(len(clean) / RATE, -50.0), -32768, 32767)
    gate = VadGate(RATE, VadSettings(backend=vad_backend))
    mask, results = run_frames(gate, mix.astype(np.int16))
    first_ref, last_ref = reference_frames(clean)
    (first, last), = segments(mask)
    assert first <= first_ref and last >= last_ref  # a quiet start may lose some of the pre-roll
    assert gate.stats.frames_not_sent > 0.4 * gate.stats.frames_in  # the noise around it stays home


@needs_speech
@pytest.mark.parametrize("vad_backend", BACKENDS)
def test_boost_ignores_low_speech(vad_backend):
    x = padded(scaled(fixture("turn_on_the_kitchen_lights.wav"), -24.0))  # loudest frames about -35 dBFS
    assert run_frames(VadGate(RATE, VadSettings(backend=vad_backend)), x)[0].any()
    assert not run_frames(VadGate(RATE, VadSettings(backend=vad_backend, boost_db=20.0)), x)[0].any()
    gate = VadGate(RATE, VadSettings(backend=vad_backend))
    gate.set_boost(20.0)  # the speaker is playing: the bot's own quiet echo stays home
    assert not run_frames(gate, x)[0].any() and gate.boost_db == 20.0
    gate.set_boost(0.0)  # playback over: the same quiet speech now opens the gate
    assert run_frames(gate, x)[0].any()


def test_boost_does_not_drag_the_floor_up():
    """Echo that the boost hides is louder than the unboosted threshold, so the floor stays put."""
    gate = VadGate(RATE, VadSettings(boost_db=30.0))
    run_frames(gate, np.zeros(RATE // 2, np.int16))
    run_frames(gate, noise(3, -40.0))  # 20 dB above the floor, below floor + threshold + boost
    assert gate.noise_floor_dbfs == pytest.approx(-60.0) and not gate.is_open


# --------------------------------------------------------------------------- bookkeeping


@needs_speech
def test_stats_add_up():
    x = np.concatenate([padded(fixture(FIXTURES[0])), padded(fixture(FIXTURES[-1])), np.ones(100, np.int16)])
    gate = VadGate(RATE)
    sent = run_chunks(gate, x, list(range(0, len(x), 512)))
    stats = gate.stats
    assert stats.frames_in == len(x) // FRAME  # the 100-sample remainder waits for more
    assert stats.frames_sent * FRAME == len(sent)
    assert stats.frames_sent + stats.frames_not_sent == stats.frames_in
    assert len(sent) * 2 + stats.bytes_not_sent == stats.frames_in * FRAME * 2
    assert stats.seconds_not_sent == pytest.approx(stats.bytes_not_sent / 2 / RATE)
    assert stats.speech_segments == 2


@needs_speech
def test_reset_forgets_the_audio_but_keeps_counting():
    x = padded(fixture("stop.wav"))
    fresh = run_chunks(VadGate(RATE), x, [])
    gate = VadGate(RATE, VadSettings(boost_db=6.0))
    gate.process(noise(1.33, -20.0))  # a louder floor, a partial frame, maybe an open gate
    gate.set_boost(0.0)
    gate.reset()
    assert gate.noise_floor_dbfs is None and not gate.is_open and gate.boost_db == 0.0
    assert np.array_equal(run_chunks(gate, x, []), fresh)
    assert gate.stats.frames_in == int(1.33 * RATE) // FRAME + len(x) // FRAME


def test_bytes_input_equals_array_input():
    x = np.concatenate([noise(0.5, -60.0), noise(1.0, -20.0, seed=2), np.zeros(RATE, np.int16)])
    as_array = run_chunks(VadGate(RATE), x, [4000, 9000])
    gate = VadGate(RATE)
    edges = [0, 4000, 9000, len(x)]
    as_bytes = np.concatenate([gate.process(x[a:b].astype("<i2").tobytes()).samples
                               for a, b in zip(edges, edges[1:])])
    assert len(as_array) > 0 and np.array_equal(as_array, as_bytes)


@settings(max_examples=40, deadline=None)
@given(
    frame_ms=st.sampled_from([10, 20, 30]),
    pre_roll_ms=st.integers(0, 400),
    hangover_ms=st.integers(0, 400),
    trailing_ms=st.integers(0, 800),
    min_speech_ms=st.integers(0, 120),
    bursts=st.lists(st.tuples(st.integers(1, 60), st.sampled_from([-200.0, -70.0, -45.0, -25.0])),
                    min_size=1, max_size=12),
    cuts=st.lists(st.integers(0, 10**6), max_size=20),
)
def test_invariants_for_any_settings_and_chunking(frame_ms, pre_roll_ms, hangover_ms, trailing_ms,
                                                  min_speech_ms, bursts, cuts):
    x = np.concatenate([noise(n / 50, db, seed=n) if db > -150 else np.zeros(n * FRAME, np.int16)
                        for n, db in bursts])
    s = VadSettings(frame_ms=frame_ms, pre_roll_ms=pre_roll_ms, hangover_ms=hangover_ms,
                    trailing_ms=trailing_ms, min_speech_ms=min_speech_ms)
    gate = VadGate(RATE, s)
    mask, results = run_frames(gate, x)  # also: sent audio is the input, in order, never twice
    assert_flags_pair(results)
    stats = gate.stats
    assert stats.frames_sent == mask.sum() and stats.frames_sent + stats.frames_not_sent == stats.frames_in
    assert stats.speech_segments == sum(r.speech_started for r in results)
    for _, last in segments(mask):  # a run of sent frames ends where the gate closed
        assert last == len(mask) - 1 or results[last].speech_ended or results[last + 1].speech_ended
    other = VadGate(RATE, s)
    sent = run_chunks(other, x, sorted({c % (len(x) + 1) for c in cuts}))
    frames = x[:len(mask) * gate.frame_samples].reshape(len(mask), gate.frame_samples)
    assert np.array_equal(sent, frames[mask].reshape(-1))


# --------------------------------------------------------------------------- errors and options


def test_bad_audio_raises_audio_error_and_leaves_the_gate_unchanged():
    gate = VadGate(RATE)
    gate.process(np.zeros(100, np.int16))
    with pytest.raises(AudioError, match="int16") as info:
        gate.process(np.zeros(320, np.float32))
    assert isinstance(info.value, TypeError)
    with pytest.raises(AudioError, match="1-D"):
        gate.process(np.zeros((320, 2), np.int16))
    with pytest.raises(AudioError, match="numpy array"):
        gate.process([0] * 320)
    with pytest.raises(AudioError, match="even"):
        gate.process(b"\x00" * 321)
    assert gate.stats.frames_in == 0
    assert gate.process(np.zeros(220, np.int16)).frames == () and gate.stats.frames_in == 1


def test_settings_are_validated():
    for bad in ({"backend": "nope"}, {"frame_ms": 0}, {"threshold_db": -1.0}, {"pre_roll_ms": -5},
                {"boost_db": float("nan")}, {"frame_ms": 20.0}, {"webrtc_mode": 4}):
        with pytest.raises(ConfigError):
            VadSettings(**bad)
    with pytest.raises(ConfigError, match="whole number of samples"):
        VadGate(11025)
    VadGate(11025, VadSettings(frame_ms=40))
    for rate in (0, -16000, 16000.0, True):
        with pytest.raises(AudioError):
            VadGate(rate)
    gate = VadGate(RATE)
    for db in (-1.0, float("inf"), "10"):
        with pytest.raises(ConfigError):
            gate.set_boost(db)


@pytest.mark.skipif("webrtc" not in available_backends(), reason="webrtcvad is not installed")
def test_webrtc_options():
    with pytest.raises(ConfigError, match="10, 20 or 30"):
        VadGate(RATE, VadSettings(backend="webrtc", frame_ms=25))
    with pytest.raises(ConfigError, match="cannot resample"):
        VadGate(12000, VadSettings(backend="webrtc"))


def test_missing_optional_backends_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "webrtcvad", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match="pip install webrtcvad-wheels"):
        VadGate(RATE, VadSettings(backend="webrtc"))
    vad_module._silero_session.cache_clear()
    try:
        monkeypatch.setitem(sys.modules, "onnxruntime", None)
        with pytest.raises(ConfigError, match="onnxruntime"):
            VadGate(RATE, VadSettings(backend="silero"))
        monkeypatch.delitem(sys.modules, "onnxruntime")
        monkeypatch.setattr(vad_module, "_silero_model_path", lambda: None)
        with pytest.raises(ConfigError, match="silero-vad"):
            VadGate(RATE, VadSettings(backend="silero"))
    finally:
        vad_module._silero_session.cache_clear()
    assert "energy" in available_backends()


# --------------------------------------------------------------------------- the server's VAD on gated audio


def _feed_gated(client: rtedge.Client, gate: VadGate, x: np.ndarray) -> int:
    """Gate ``x`` in 20 ms frames and append what the gate sends; returns samples appended."""
    appended = 0
    for i in range(0, len(x) - FRAME + 1, FRAME):
        result = gate.process(x[i:i + FRAME])
        if result.frames:
            client.append_audio(result.samples, rate=RATE)  # upsampled to the session's 24 kHz
            appended += len(result.samples)
            assert client.wait_sent(max_queued_ms=200, timeout=5)  # never overrun the audio queue
    return appended


@needs_speech
@pytest.mark.usefixtures("no_thread_leak")
def test_server_vad_ends_turns_on_gated_audio():
    """Two spoken turns with long silences around them: the server still sees each turn end."""
    from rtedge.testing import RealtimeServer

    session = rtedge.SessionConfig(output_modalities=("text",),
                                   turn_detection=rtedge.ServerVad(silence_duration_ms=500))
    gate = VadGate(RATE)
    silence = np.zeros(3 * RATE, np.int16)
    total = appended = 0
    with RealtimeServer(realtime=False, seed=3) as server, \
            rtedge.connect(url=server.url, session=session) as c:
        for name in ("turn_on_the_kitchen_lights.wav", "stop.wav"):
            x = np.concatenate([silence, fixture(name), silence])
            total += len(x)
            before_ms = appended * 1000 / RATE
            appended += _feed_gated(c, gate, x)
            stopped = c.wait_for("input_audio_buffer.speech_stopped", timeout=10)
            done = c.wait_for("response.done", timeout=10)
            assert done.status == "completed"
            # the turn ended inside this turn's gated audio: the trailing silence was enough
            assert before_ms + 500 < stopped.audio_end_ms <= appended * 1000 / RATE + 20
        assert c.state.input_bytes_sent == pytest.approx(appended * 3, abs=96)  # 24 kHz PCM16 on the wire
    assert gate.stats.speech_segments == 2 and not gate.is_open
    assert appended < 0.4 * total  # most of the 6 s of silence per turn stayed home


# --------------------------------------------------------------------------- onsets (barge-in)


def _two_bursts(gap_ms: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """Quiet room, a 600 ms burst, ``gap_ms`` of quiet, a second 600 ms burst, 3 s of quiet.

    Returns the audio and the sample index where the second burst starts."""
    rng = np.random.default_rng(seed)
    ms = RATE // 1000
    parts = [rng.normal(0, 20, 1000 * ms), rng.normal(0, 3000, 600 * ms), rng.normal(0, 20, gap_ms * ms)]
    second = sum(len(p) for p in parts)
    parts += [rng.normal(0, 3000, 600 * ms), rng.normal(0, 20, 3000 * ms)]
    return np.concatenate(parts).astype(np.int16), second


@pytest.mark.parametrize("gap_ms", range(100, 2001, 100))
def test_every_utterance_raises_an_onset_whatever_the_gap(gap_ms):
    """The second burst finds the gate in hangover, trailing or closed: it is an onset every time."""
    x, second = _two_bursts(gap_ms)
    gate = VadGate(RATE)
    results = [gate.process(x[i:i + FRAME]) for i in range(0, len(x), FRAME)]
    onsets = [i for i, r in enumerate(results) if r.onset]
    assert len(onsets) == 2
    onset_frames = DEFAULTS.min_speech_ms // 20
    assert second // FRAME <= onsets[1] <= second // FRAME + onset_frames
    assert all(r.onset for r in results if r.speech_started)
    assert_flags_pair(results)
    # the gate's segments are unchanged: a second segment only when the first had closed
    segments_ = sum(r.speech_started for r in results)
    closing = DEFAULTS.hangover_ms + DEFAULTS.trailing_ms
    assert segments_ == 1 if gap_ms < closing else segments_ == 2 if gap_ms > closing else segments_ >= 1


def test_onsets_do_not_depend_on_chunking():
    x, _ = _two_bursts(500, seed=3)
    whole = VadGate(RATE).process(x)
    gate = VadGate(RATE)
    chunked = [gate.process(x[i:i + 123]) for i in range(0, len(x), 123)]
    assert whole.onset and sum(r.onset for r in chunked) == 2
