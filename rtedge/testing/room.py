"""A simulated room for echo-cancellation rigs: loudspeaker -> room -> microphone, deterministic.

:func:`room_impulse_response` makes a synthetic impulse response (a direct path after a short
acoustic delay, then exponentially decaying noise reaching -60 dB at ``rt60_s``);
:func:`loudspeaker` applies an optional memoryless saturation (a small, overdriven speaker);
:func:`drift` resamples by ``1 + ppm * 1e-6`` with a windowed-sinc interpolator (playback and
capture clocks that disagree); :func:`echo` chains them and scales the echo to a chosen level.
Used by the AEC tests and ``benchmarks/aec.py``; seeded, so every run is the same.

Owns: a simulated room for echo-cancellation rigs.  Must not: read the clock (it is deterministic).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..audio.vad import VadGate

__all__ = ["LiveDevices", "drift", "echo", "level_dbfs", "loudspeaker", "mix_at", "room_impulse_response",
           "sample_at", "scale_to"]


def room_impulse_response(rate: int, rt60_s: float, *, delay_ms: float = 3.0, seed: int = 0) -> np.ndarray:
    """A float64 impulse response: silence for ``delay_ms``, a direct path, then a diffuse tail whose
    energy falls 60 dB in ``rt60_s`` (length 1.2 x rt60).  Normalised to unit energy."""
    rng = np.random.default_rng(seed)
    n = int(rate * rt60_s * 1.2)
    d = int(rate * delay_ms / 1000)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60_s)  # 10**(-3) amplitude at rt60
    tail[:int(rate * 0.002)] *= np.linspace(0, 1, int(rate * 0.002))  # early reflections build up
    h = np.zeros(d + n)
    h[d] = 1.0
    h[d + 1:] += 0.5 * tail[:-1]
    return np.asarray(h / np.sqrt(np.sum(h * h)))


def loudspeaker(x: np.ndarray, drive: float = 0.0) -> np.ndarray:
    """Memoryless saturation ``tanh(drive * x) / drive`` on full-scale floats (drive 0: linear)."""
    f = x.astype(np.float64) / 32768.0
    if drive > 0:
        f = np.tanh(drive * f) / drive
    return f * 32768.0


def drift(x: np.ndarray, ppm: float, taps: int = 32) -> np.ndarray:
    """``x`` as seen by a clock ``ppm`` parts per million faster (output sample k is input time
    ``k * (1 + ppm * 1e-6)``), by Kaiser-windowed sinc interpolation; same length, float64."""
    x = np.asarray(x, dtype=np.float64)
    if ppm == 0:
        return x.copy()
    return sample_at(x, np.arange(len(x)) * (1.0 + ppm * 1e-6), taps)


def sample_at(x: np.ndarray, pos: np.ndarray, taps: int = 32) -> np.ndarray:
    """``x`` (float64) at fractional sample positions ``pos`` by Kaiser-windowed sinc interpolation
    (samples outside ``x`` count as zero): the rigs' own interpolator, independent of the library's
    drift compensation (:func:`rtedge.audio.drift.interpolate`), which it is used to test.  float64."""
    base = np.floor(pos).astype(np.intp)
    frac = pos - base
    window = np.kaiser(taps, 8.0)
    out = np.zeros(len(pos))
    for j in range(taps):
        k = j - taps // 2 + 1  # tap offset from base
        idx = base + k
        ok = (idx >= 0) & (idx < len(x))
        out[ok] += np.sinc(frac[ok] - k) * window[j] * x[idx[ok]]
    return out


def level_dbfs(x: np.ndarray) -> float:
    """RMS level in dBFS (-120 for silence)."""
    p = float(np.mean(np.asarray(x, dtype=np.float64) ** 2))
    return 10 * np.log10(p / 32768.0**2) if p > 0 else -120.0


def scale_to(x: np.ndarray, dbfs: float, *, active: np.ndarray | None = None) -> np.ndarray:
    """``x`` scaled so that its RMS (over ``active`` samples if given) is ``dbfs``."""
    x = np.asarray(x, dtype=np.float64)
    ref = x[active] if active is not None else x
    now = level_dbfs(ref)
    return x * 10 ** ((dbfs - now) / 20) if now > -120 else x


def echo(far: np.ndarray, rate: int, *, rt60_s: float = 0.2, level: float = -25.0, drive: float = 0.0,
         ppm: float = 0.0, seed: int = 0) -> np.ndarray:
    """The microphone's view of ``far`` (int16 played by the loudspeaker): saturation, room, clock
    drift, scaled so that the echo of the active far-end has ``level`` dBFS RMS.  float64."""
    h = room_impulse_response(rate, rt60_s, seed=seed)
    y = np.convolve(loudspeaker(far, drive), h)[:len(far)]
    y = drift(y, ppm)
    active = np.abs(far) > 300
    return scale_to(y, level, active=active if active.any() else None)


def mix_at(base: np.ndarray, part: np.ndarray, at: int) -> np.ndarray:
    """``base`` with ``part`` added from sample ``at`` (clipped to ``base``'s length); float64."""
    out = np.asarray(base, dtype=np.float64).copy()
    end = min(len(out), at + len(part))
    if end > at:
        out[at:end] += np.asarray(part[:end - at], dtype=np.float64)
    return out


def erle_db(echo_only: np.ndarray, residual: np.ndarray, active: np.ndarray) -> float:
    """Echo return loss enhancement in dB: echo power over residual power, on ``active`` samples."""
    e = float(np.mean(np.asarray(echo_only, dtype=np.float64)[active] ** 2))
    r = float(np.mean(np.asarray(residual, dtype=np.float64)[active] ** 2))
    return float(10 * np.log10(e / max(r, 1e-12)))


class LiveDevices:
    """A loudspeaker and a microphone on their own clocks, driving an
    :class:`~rtedge.audio.aec.EchoCanceller`'s live path (``played`` / ``process``) as a VoiceAgent's
    device threads do, on a simulated monotonic clock (it replaces the canceller's ``clock``).

    The speaker's clock runs ``ppm`` faster than the microphone's: its sample ``j`` of ``far`` sounds at
    ``j / (rate * (1 + ppm * 1e-6))`` s and is handed over ``out_latency`` earlier, in ``block``-sample
    blocks (silence after ``far`` ends); microphone sample ``k`` is captured at ``k / rate`` s and its
    frame delivered ``in_latency`` after its last sample.  That is the timing :func:`echo` with the same
    ``ppm`` simulates, so ``process(mic frame)`` gives what the canceller would output live."""

    def __init__(self, canceller: Any, far: np.ndarray, rate: int, *, ppm: float = 0.0,
                 out_latency: float = 0.06, in_latency: float = 0.02, block: int | None = None) -> None:
        self.canceller, self.far, self.rate = canceller, np.asarray(far, dtype=np.int16), rate
        self.ppm, self.out_latency, self.in_latency = ppm, out_latency, in_latency
        self.block = block or rate // 50
        self.now = -out_latency
        canceller.clock = lambda: self.now
        self._blocks = 0
        self._mic = 0

    def process(self, frame: np.ndarray) -> np.ndarray:
        """Deliver one microphone frame (after handing the speaker blocks due by then)."""
        self._mic += len(frame)
        due = self._mic / self.rate + self.in_latency
        spk_rate = self.rate * (1.0 + self.ppm * 1e-6)
        while True:
            start = self._blocks * self.block
            handed = start / spk_rate - self.out_latency
            if handed > due:
                break
            part = self.far[start:start + self.block]
            if len(part) < self.block:
                part = np.concatenate([part, np.zeros(self.block - len(part), np.int16)])
            self.now = handed
            self.canceller.played(part, self.rate, self.out_latency)
            self._blocks += 1
        self.now = due
        out: np.ndarray = self.canceller.process(frame, self.in_latency)
        return out


def guard_pipeline(mic: np.ndarray, ref: np.ndarray, rate: int, *, canceller: Any | None,
                   boost_db: float, playing: np.ndarray | None = None,
                   frame_ms: int = 20, live_ppm: float | None = None) -> tuple[np.ndarray, list[int]]:
    """What a VoiceAgent's microphone path does to ``mic`` while ``ref`` plays: the echo canceller
    (an :class:`~rtedge.audio.aec.EchoCanceller`, or None; given ``ref`` aligned through ``cancel``,
    or with ``live_ppm`` through its live path, :class:`LiveDevices` with that speaker clock), then a default
    :class:`~rtedge.audio.vad.VadGate` whose threshold is raised while ``playing`` (per sample;
    default: always) by ``boost_db`` -- with a canceller, by its ``gate_boost()`` as the agent does.

    Returns the cleaned audio and the sample index at which each gate onset completed."""
    gate = VadGate(rate)
    n = rate * frame_ms // 1000
    mic16 = np.clip(np.round(mic), -32768, 32767).astype(np.int16)
    out, onsets = [], []
    devices = LiveDevices(canceller, ref, rate, ppm=live_ppm) if canceller and live_ppm is not None else None
    for i in range(0, len(mic16) - n + 1, n):
        frame = mic16[i:i + n]
        boost = boost_db
        if devices is not None:
            frame = devices.process(frame)
            boost = devices.canceller.gate_boost()
        elif canceller is not None:
            frame = canceller.cancel(frame, ref[i:i + n])
            boost = canceller.gate_boost()
        on = playing is None or bool(playing[i:i + n].any())
        gate.set_boost(boost if on else 0.0)
        if gate.process(frame).onset:
            onsets.append(i + n)
        out.append(frame)
    return np.concatenate(out), onsets


def to_int16(x: np.ndarray) -> np.ndarray:
    """Round and clip float samples to int16."""
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def double_talk_trial(far: np.ndarray, near: np.ndarray, rate: int, *, canceller: Any | None,
                      rng: np.random.Generator, boost_db: float = 15.0, echo_level: float = -25.0,
                      near_level: float = -30.0, noise_level: float = -65.0, drive: float = 0.0,
                      ppm: float = 0.0, near_at: tuple[float, float] = (7.0, 9.0),
                      live: bool = False) -> tuple[float | None, int]:
    """One double-talk trial: ``far`` (the answer, int16) plays through a random room (rt60 0.1-0.3 s);
    ``near`` (the user, int16) starts at a random time in ``near_at`` seconds, at ``near_level`` dBFS;
    ``live``: the canceller runs its live path (:class:`LiveDevices`) instead of an aligned reference.

    Returns (ms from the near-end's first loud sample to the gate's onset, or None if no onset came
    within 300 ms; the number of onsets before the near-end began after 2 s: false barge-ins)."""
    e = echo(far, rate, rt60_s=0.1 + 0.2 * rng.random(), level=echo_level, drive=drive, ppm=ppm,
             seed=int(rng.integers(1 << 30)))
    nz = scale_to(near, near_level, active=np.abs(near) > 300)
    at = int(rate * (near_at[0] + (near_at[1] - near_at[0]) * rng.random()))
    start = at + int(np.nonzero(np.abs(nz) > 1000)[0][0])
    mic = mix_at(e, nz, at) + rng.normal(0.0, 32768 * 10 ** (noise_level / 20), len(e))
    _, onsets = guard_pipeline(mic, far, rate, canceller=canceller, boost_db=boost_db,
                               live_ppm=ppm if live else None)
    false = sum(1 for o in onsets if 2 * rate < o < start)
    hits = [o for o in onsets if start <= o <= start + int(0.3 * rate)]
    return (1000.0 * (hits[0] - start) / rate if hits else None), false
