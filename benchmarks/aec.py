#!/usr/bin/env python3
"""Echo cancellation (``echo_guard="aec"``, libspeexdsp) on a simulated room, against the other guards.

What it measures
----------------
The far end is assistant-like speech (espeak-ng: varied voices and speeds, pauses between sentences)
at -20 dBFS, played through a synthetic room (``rtedge.testing.room``: impulse response with an
rt60 of 100-300 ms, echo at the microphone at -25 dBFS), optionally through a saturating loudspeaker
(``tanh``, drive 2) and with the capture clock 50 ppm off the playback clock; noise at -65 dBFS.
The canceller runs its live path as a VoiceAgent does (``rtedge.testing.room.LiveDevices``: the
speaker reports blocks 60 ms ahead on its own clock, the microphone delivers 20 ms frames), so the
drift compensation (``rtedge.audio.drift``) is measured where it works.

1. **ERLE** (echo return loss enhancement) from 2 s on, over samples where the far end speaks:
   the canceller's full output (adaptive filter + speexdsp preprocessor), with drift compensation and,
   side by side, without (the baseline); the clock ratio it estimated; CPU time per second of audio
   (process time of the canceller, one core).
2. **False barge-ins**: 60 s of own playback, no near-end speech: onsets of the local VAD gate
   (what ``barge_in="local"`` acts on) after the canceller, with the agent's boost policy; side by
   side the canceller without drift compensation, the ``threshold`` guard (raised gate, no
   canceller) and ``off``.
3. **Double talk**: ``--trials`` (100) trials; each plays 7 s of the answer, and a fixture phrase
   (the user, -30 dBFS) starts 4-5 s in; detected = a gate onset within 300 ms of its first loud
   sample.  Side by side the ``threshold`` guard.

These figures come from a rebuilt microphone path (canceller + VAD gate, the agent's boost policy);
``benchmarks/aec_agent.py`` measures false barge-ins and double talk through the whole
``VoiceAgent(echo_guard="aec")`` instead (the end of playback, the device threads and barge-in included).

Run from the repo root (needs the extension built with libspeexdsp-dev, espeak-ng and sox)::

    nice -n 10 python benchmarks/aec.py              # about 2-4 minutes
    nice -n 10 python benchmarks/aec.py --trials 20 --seconds 20   # quick
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import numpy as np

import rtedge
from rtedge.audio import aec as aec_mod
from _aec_rig import SPEECH, add_common_options, missing  # benchmarks/ is on sys.path as a script
from rtedge.audio.aec import EchoCanceller
from rtedge.testing import room, speech
from rtedge.audio.wavio import read_wav

RATE = 16000
CONDITIONS = {"linear": (0.0, 0.0), "nonlinear": (2.0, 0.0), "drift 50 ppm": (0.0, 50.0),
              "nonlinear + drift": (2.0, 50.0)}


def far_end(seconds: float, seed: int) -> np.ndarray:
    x = speech.answer(seconds, rate=RATE, seed=seed)
    return room.to_int16(room.scale_to(x, -20.0, active=np.abs(x) > 300))


def erle_row(far: np.ndarray, rt60: float, drive: float, ppm: float,
             compensate: bool) -> tuple[float, float, float]:
    """(ERLE dB, estimated drift ppm, CPU ms per audio second) of the live path."""
    e = room.echo(far, RATE, rt60_s=rt60, level=-25.0, drive=drive, ppm=ppm, seed=7)
    mic = room.to_int16(e + np.random.default_rng(1).normal(0, 32768 * 10 ** (-65 / 20), len(e)))
    c = EchoCanceller(RATE, drift_compensation=compensate)
    devices = room.LiveDevices(c, far, RATE, ppm=ppm)
    n = len(mic) // c.frame * c.frame
    out = np.empty(n, np.int16)
    t0 = time.process_time()
    for i in range(0, n, c.frame):
        out[i:i + c.frame] = devices.process(mic[i:i + c.frame])
    cpu = time.process_time() - t0
    s = 2 * RATE
    active = np.abs(far[s:n]) > 300
    return room.erle_db(e[s:n], out[s:n], active), c.drift_ppm, 1000.0 * cpu / (n / RATE)


def false_openings(far: np.ndarray, drive: float, ppm: float) -> dict[str, int]:
    e = room.echo(far, RATE, rt60_s=0.3, level=-25.0, drive=drive, ppm=ppm, seed=3)
    mic = e + np.random.default_rng(2).normal(0, 32768 * 10 ** (-65 / 20), len(e))
    got = {}
    for guard, canceller, boost in (("aec", EchoCanceller(RATE), 15.0),
                                    ("aec, no drift compensation",
                                     EchoCanceller(RATE, drift_compensation=False), 15.0),
                                    ("threshold", None, 15.0), ("off", None, 0.0)):
        got[guard] = len(room.guard_pipeline(mic, far, RATE, canceller=canceller, boost_db=boost,
                                             live_ppm=ppm)[1])
    return got


def double_talk(answer: np.ndarray, near: list[np.ndarray], trials: int, drive: float, ppm: float,
                aec: bool) -> tuple[int, int, list[float]]:
    rng = np.random.default_rng(11)
    hits, false, lat = 0, 0, []
    for t in range(trials):
        off = int(rng.integers(0, len(answer) - 10 * RATE))
        got, f = room.double_talk_trial(answer[off:off + 10 * RATE], near[t % len(near)], RATE,
                                        canceller=EchoCanceller(RATE) if aec else None, rng=rng,
                                        drive=drive, ppm=ppm, live=True)
        false += f
        if got is not None:
            hits, lat = hits + 1, lat + [got]
    return hits, false, lat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_options(parser)
    args = parser.parse_args()
    if (why := missing()) is not None:
        print(why)
        return 1
    print(f"python {platform.python_version()}, {platform.machine()}, rtedge {rtedge.__version__}, "
          f"frame 20 ms, tail 200 ms, gate boost after convergence {aec_mod.GATE_BOOST_DB} dB "
          f"({aec_mod.RESIDUAL_BOOST_DB} dB while the canceller removes less than "
          f"{aec_mod.LINEAR_ATTENUATION_DB} dB)")
    far = far_end(max(30.0, args.seconds), seed=1)

    print("\n## ERLE after 2 s (dB) and canceller CPU\n")
    print("| room rt60 | condition | ERLE | ERLE without drift compensation (baseline) | drift estimated | "
          "CPU ms per audio s | CPU without (baseline) |")
    print("|---|---|---|---|---|---|---|")
    for rt60 in (0.1, 0.2, 0.3):
        for name, (drive, ppm) in CONDITIONS.items():
            out, est, cpu = erle_row(far[:30 * RATE], rt60, drive, ppm, True)
            base, _, cpu0 = erle_row(far[:30 * RATE], rt60, drive, ppm, False)
            print(f"| {rt60:.1f} s | {name} | {out:.1f} | {base:.1f} | {est:+.1f} ppm | {cpu:.1f} | "
                  f"{cpu0:.1f} |")

    print(f"\n## False barge-ins over {args.seconds:.0f} s of own playback (gate onsets; rt60 0.3 s)\n")
    print("| condition | aec | aec without drift compensation | threshold (baseline) | off (baseline) |")
    print("|---|---|---|---|---|")
    for name, (drive, ppm) in CONDITIONS.items():
        got = false_openings(far[:int(args.seconds * RATE)], drive, ppm)
        print(f"| {name} | {got['aec']} | {got['aec, no drift compensation']} | {got['threshold']} | "
              f"{got['off']} |")

    near = [read_wav(p)[0] for p in sorted(SPEECH.glob("*.wav"))]
    answer = far_end(90.0, seed=2)
    print(f"\n## Double talk: user at -30 dBFS over the answer's -25 dBFS echo, {args.trials} trials\n")
    print("| condition | guard | detected within 300 ms | false onsets before it | median ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    for name in ("linear", "nonlinear + drift"):
        drive, ppm = CONDITIONS[name]
        for guard in ("aec", "threshold"):
            hits, false, lat = double_talk(answer, near, args.trials, drive, ppm, guard == "aec")
            med = f"{statistics.median(lat):.0f}" if lat else "-"
            p95 = f"{np.percentile(lat, 95):.0f}" if lat else "-"
            print(f"| {name} | {guard} | {hits}/{args.trials} ({100 * hits / args.trials:.0f} %) | {false} | "
                  f"{med} | {p95} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
