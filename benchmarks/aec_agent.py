#!/usr/bin/env python3
"""Echo cancellation through the real ``VoiceAgent(echo_guard="aec")``: false barge-ins and double talk.

``benchmarks/aec.py`` measures the canceller and the VAD gate on a rebuilt microphone path; this script
runs the whole agent instead.  The local server (``rtedge.testing.RealtimeServer``, real-time paced)
answers with assistant-like speech (espeak-ng, varied voices and speeds, pauses between sentences) at
-20 dBFS; the agent plays it into ``rtedge.testing.room_devices.RoomDevices``: the sound leaves the
speaker 40 ms after each pull, goes through a synthetic room (rt60 ``--rt60``, acoustic gain -5 dB: echo
about -25 dBFS at the microphone) and, per condition, a saturating loudspeaker (``tanh``, drive 2) and a
playback clock 50 ppm faster than the capture clock; noise at -65 dBFS.  The agent runs
``barge_in="local"`` on a session without server VAD, so every barge-in is the local VAD's.

1. **Own playback only**: one ``--seconds`` (60) answer, no near-end speech, from a fresh agent (the
   canceller learns on it): times the agent's VAD gate opened (``gate.stats.speech_segments``) and local
   barge-ins; side by side the ``threshold`` guard (baseline, same room and answer, with ``barge_in="off"``
   so that its first false barge-in does not cut the answer short).
2. **Double talk**: then, on the same agent, ``--trials`` (100) answers; into each, after a random
   0.5-5 s of it has been handed to the speaker, the user (the spoken fixtures and espeak-ng commands in
   other voices, -30 dBFS) starts talking.  Detected = the agent's local barge-in (flush + truncate +
   cancel) came within 300 ms of the user's first loud sample, in microphone audio time (the end of the
   frame after which the agent had acted); a barge-in before the user spoke is a false one (and a miss).

Run from the repo root (needs the extension built with libspeexdsp-dev, espeak-ng and sox; real time:
about 11 minutes per condition)::

    nice -n 10 python benchmarks/aec_agent.py
    nice -n 10 python benchmarks/aec_agent.py --condition linear --trials 10 --seconds 20   # quick
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import rtedge
from rtedge.audio import aec as aec_mod
from _aec_rig import SPEECH, add_common_options, missing  # benchmarks/ is on sys.path as a script
from rtedge.audio.wavio import read_wav
from rtedge.protocol import ResponseState
from rtedge.testing import RealtimeServer, Reply, room, speech
from rtedge.testing.room_devices import RoomDevices
from rtedge.voice.agent import VoiceAgent

RATE, SPEAKER_RATE = 16000, 24000
CONDITIONS = {"linear": (0.0, 0.0), "nonlinear": (2.0, 0.0), "drift 50 ppm": (0.0, 50.0),
              "nonlinear + drift": (2.0, 50.0)}
COMMANDS = ("stop", "wait a second", "no, the other one", "turn it down please", "what time is it",
            "cancel that", "hold on", "play some music")
BUDGET_S = 0.3


def answer(seconds: float, seed: int) -> np.ndarray:
    """Assistant-like speech at the server's rate, -20 dBFS over its active samples."""
    x = speech.answer(seconds, rate=SPEAKER_RATE, seed=seed)
    return room.to_int16(room.scale_to(x, -20.0, active=np.abs(x) > 300))


def user_phrases() -> list[np.ndarray]:
    """The near-end talkers: the spoken fixtures, then espeak-ng commands in other voices; -30 dBFS."""
    raw = [read_wav(p)[0] for p in sorted(SPEECH.glob("*.wav"))]
    raw += [speech.synthesize(text, voice=speech.VOICES[(i + 1) % len(speech.VOICES)], rate=RATE,
                              speed=150 + 7 * i) for i, text in enumerate(COMMANDS)]
    return [room.to_int16(room.scale_to(x, -30.0, active=np.abs(x) > 300)) for x in raw]


class Rig:
    """The local server, a client and a VoiceAgent on :class:`RoomDevices`, with the barge-in timeline."""

    def __init__(self, guard: str, barge_in: str, drive: float, ppm: float, rt60: float) -> None:
        self.server = RealtimeServer(seed=3, keep_audio=False)
        self.server.start()
        self.client = rtedge.connect(url=self.server.url, session=rtedge.SessionConfig(turn_detection=None))
        self.room = RoomDevices(rt60_s=rt60, drive=drive, ppm=ppm, seed=7)
        self.agent = VoiceAgent(self.client, self.room.mic, self.room.speaker, barge_in=barge_in,  # type: ignore[arg-type]
                                echo_guard=guard)  # type: ignore[arg-type]
        #: microphone samples delivered when each barge-in had been made (room thread)
        self.marks: list[int] = []
        self.room.on_frame_done = self._frame_done
        self._runner = threading.Thread(target=self.agent.run, name="bench-agent-run", daemon=True)
        self._runner.start()

    def _frame_done(self, count: int) -> None:
        if self.agent.stats.interruptions > len(self.marks):
            self.marks.append(count)

    def play(self, audio: np.ndarray) -> int:
        """Ask for an answer saying ``audio``; returns the played-sample count it starts from."""
        self.server.responder = lambda turn: Reply("(answer)", audio)
        before = self.agent.playback.stats.played_samples
        self.client.create_response()
        return before

    def quiet(self, timeout: float) -> bool:
        """Wait until no response is active, nothing plays, the user is silent and 0.5 s has passed."""
        ok = wait(lambda: (self.client.snapshot.response is ResponseState.IDLE and not self.agent.playing()
                           and not self.room.near_pending()
                           and len(self.marks) == self.agent.stats.interruptions), timeout)
        after = self.room.samples_delivered + RATE // 2
        return ok and wait(lambda: self.room.samples_delivered >= after, 5.0)

    def close(self) -> None:
        self.agent.stop()
        self._runner.join(10)
        self.client.close()
        self.server.stop()


def wait(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` every 10 ms until true or ``timeout`` seconds; its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def own_playback(rig: Rig, audio: np.ndarray) -> dict[str, Any]:
    """Play ``audio`` (no near-end speech) to its end; gate openings and local barge-ins meanwhile."""
    opened0, barged0 = rig.agent.gate.stats.speech_segments, rig.agent.stats.interruptions
    before = rig.play(audio)
    started = wait(lambda: rig.agent.playback.stats.played_samples > before, 30)
    done = started and rig.quiet(timeout=len(audio) / SPEAKER_RATE + 30)
    aec = rig.agent.aec
    return {"played_s": (rig.agent.playback.stats.played_samples - before) / SPEAKER_RATE, "complete": done,
            "openings": rig.agent.gate.stats.speech_segments - opened0,
            "barge_ins": rig.agent.stats.interruptions - barged0,
            "attenuation": aec.attenuation_db if aec else None, "drift": aec.drift_ppm if aec else None,
            "realigns": aec.stats.realigns if aec else None}


def trial(rig: Rig, audio: np.ndarray, user: np.ndarray, lead_s: float) -> tuple[str, float | None]:
    """One double-talk trial: ("hit" | "late" | "missed" | "false" | "stuck", latency ms or None)."""
    if not rig.quiet(timeout=30):
        return "stuck", None
    k0 = len(rig.marks)
    before = rig.play(audio)
    if not wait(lambda: rig.agent.playback.stats.played_samples - before >= lead_s * SPEAKER_RATE
                or len(rig.marks) > k0, 30):
        return "stuck", None
    if len(rig.marks) > k0:
        return "false", None
    start = rig.room.speak(user) + int(np.nonzero(np.abs(user) > 1000)[0][0])
    end = start + len(user) + RATE // 2
    wait(lambda: len(rig.marks) > k0 or rig.room.samples_delivered > end, 30)
    if len(rig.marks) == k0:
        rig.agent.interrupt("rig")  # stop the answer before the next trial
        return "missed", None
    got = rig.agent.interruptions[-1] if rig.agent.stats.interruptions == k0 + 1 else None
    mark = rig.marks[k0]
    if mark < start:
        return "false", None
    ok = got is not None and got.source == "local" and got.truncated
    latency = 1000.0 * (mark - start) / RATE
    return ("hit" if ok and latency <= 1000 * BUDGET_S else "late"), latency


def run_condition(name: str, args: argparse.Namespace, long_answer: np.ndarray, answers: list[np.ndarray],
                  users: list[np.ndarray]) -> None:
    drive, ppm = CONDITIONS[name]
    print(f"\n### {name}\n", flush=True)
    print(f"| guard | own playback (s) | VAD gate openings | local barge-ins | attenuation at the end (dB) | "
          f"drift estimated (ppm) | realigns |")
    print("|---|---|---|---|---|---|---|", flush=True)
    base = Rig("threshold", "off", drive, ppm, args.rt60)
    try:
        row = own_playback(base, long_answer)
    finally:
        base.close()
    print(f"| threshold (baseline) | {row['played_s']:.1f} | {row['openings']} | {row['barge_ins']} | - | - | - |",
          flush=True)
    rig = Rig("aec", "local", drive, ppm, args.rt60)
    try:
        row = own_playback(rig, long_answer)
        print(f"| aec | {row['played_s']:.1f} | {row['openings']} | {row['barge_ins']} | "
              f"{row['attenuation']:.1f} | {row['drift']:+.1f} | {row['realigns']} |", flush=True)
        rng = np.random.default_rng(11)
        counts = {"hit": 0, "late": 0, "missed": 0, "false": 0, "stuck": 0}
        latencies: list[float] = []
        for t in range(args.trials):
            outcome, latency = trial(rig, answers[t % len(answers)], users[t % len(users)],
                                     float(rng.uniform(0.5, 5.0)))
            counts[outcome] += 1
            if latency is not None:
                latencies.append(latency)
            if args.verbose:
                aec = rig.agent.aec
                print(f"  trial {t}: {outcome} {latency} (realigns so far {aec.stats.realigns if aec else 0}, "
                      f"converged {aec.converged if aec else '-'})", flush=True)
        realigns = rig.agent.aec.stats.realigns if rig.agent.aec else 0
    finally:
        rig.close()
    hits = counts["hit"]
    print(f"\n| detected within {1000 * BUDGET_S:.0f} ms | later | missed | false barge-ins | median ms | "
          f"p95 ms | max ms | realigns |")
    print("|---|---|---|---|---|---|---|---|")
    med = f"{statistics.median(latencies):.0f}" if latencies else "-"
    p95 = f"{np.percentile(latencies, 95):.0f}" if latencies else "-"
    top = f"{max(latencies):.0f}" if latencies else "-"
    print(f"| {hits}/{args.trials} ({100 * hits / args.trials:.0f} %) | {counts['late']} | "
          f"{counts['missed'] + counts['stuck']} | {counts['false']} | {med} | {p95} | {top} | {realigns} |",
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_common_options(parser)
    parser.add_argument("--rt60", type=float, default=0.3, help="the room's reverberation time (s)")
    parser.add_argument("--condition", action="append", choices=sorted(CONDITIONS),
                        help="a condition to run (repeatable; default: linear and nonlinear + drift)")
    parser.add_argument("--verbose", action="store_true",
                        help="print every trial (with the canceller's re-anchor count and convergence after it)")
    args = parser.parse_args()
    if (why := missing()) is not None:
        print(why)
        return 1
    print(f"python {platform.python_version()}, {platform.machine()}, rtedge {rtedge.__version__}; "
          f"room rt60 {args.rt60} s, answer -20 dBFS, echo gain -5 dB, user -30 dBFS, noise -65 dBFS; "
          f"speaker 24 kHz, output latency 40 ms; microphone 16 kHz, 20 ms frames")
    long_answer = answer(args.seconds, seed=1)
    answers = [answer(9.0, seed=100 + i) for i in range(8)]
    users = user_phrases()
    for name in args.condition or ["linear", "nonlinear + drift"]:
        run_condition(name, args, long_answer, answers, users)
    return 0


if __name__ == "__main__":
    sys.exit(main())
