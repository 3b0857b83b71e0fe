#!/usr/bin/env python3
"""Barge-in and microphone latency of the voice loop, against the local server.

What it measures
----------------
1. **Barge-in**: over ``--interruptions`` cycles (default 100) the server
   streams an answer, the speaker plays it (a paced 20 ms sink), and after a
   random 100-400 ms of playback the server announces
   ``input_audio_buffer.speech_started``.  Two figures per cycle:

   * *flush*: from the event's arrival on the receiver thread to the playback
     buffer being empty (the agent's own work);
   * *to silence*: from the event's arrival to the first speaker pull that
     returns only silence.  Its floor is where the device is in its period;
     the goal is p99 <= one device period (20 ms).

   Side by side, the same cycles with the barge-in handled the way most peers
   do it, in a user-callback on the dispatcher thread, while another callback
   spends 10 ms on each audio delta (a UI update, a log write): rtedge runs
   barge-in on the receiver thread so user code cannot delay it.

2. **Microphone frame to WebSocket send**: ``--frames`` 20 ms frames from a
   paced source through the agent (gate off) to the sender thread's socket
   write, paired in FIFO order; with the default ``send_batch_ms`` (frames
   go out in pairs) and with ``send_batch_ms=0`` (each at once).

Run from the repo root::

    python benchmarks/latency.py                 # 100 interruptions, 500 frames
    python benchmarks/latency.py --interruptions 20 --frames 100   # quick
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rtedge  # noqa: E402
from rtedge.voice.agent import VoiceAgent  # noqa: E402
from rtedge.protocol import events as ev  # noqa: E402
from rtedge.testing import RealtimeServer  # noqa: E402

PERIOD = 0.020


class PacedSink:
    """A speaker stand-in: pulls 20 ms every 20 ms on absolute deadlines, records when silence began."""

    def __init__(self, rate: int = 24000) -> None:
        self.rate, self.frame_ms, self.output_latency = rate, 20, 0.0
        self.n = rate * self.frame_ms // 1000
        self.pulls: list[tuple[float, bool]] = []  # (time, had audio)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pull) -> None:
        def run() -> None:
            t0, k = time.monotonic(), 0
            while not self._stop.wait(max(0.0, t0 + k * PERIOD - time.monotonic())):
                out = pull(self.n)
                self.pulls.append((time.monotonic(), bool(out.any())))
                k += 1

        self._thread = threading.Thread(target=run, name="rtedge-speaker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def first_silence_after(self, t: float) -> float | None:
        for when, audible in list(self.pulls):
            if when >= t and not audible:
                return when
        return None


class PacedMic:
    """A microphone stand-in: a 20 ms frame of low noise every 20 ms; records each frame's time."""

    def __init__(self, frames: int, rate: int = 16000) -> None:
        self.rate, self.frame_ms, self.frames = rate, 20, frames
        self.finished = threading.Event()
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_frame) -> None:
        rng = np.random.default_rng(1)

        def run() -> None:
            t0 = time.monotonic()
            for k in range(self.frames):
                if self._stop.wait(max(0.0, t0 + k * PERIOD - time.monotonic())):
                    return
                self.times.append(time.monotonic())
                on_frame((rng.standard_normal(320) * 30).astype(np.int16))
            self.finished.set()

        self._thread = threading.Thread(target=run, name="rtedge-mic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)


class IdleMic(PacedMic):
    def __init__(self) -> None:
        super().__init__(0)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def barge_in_cycles(cycles: int, *, on_dispatcher: bool, seed: int) -> tuple[list[float], list[float]]:
    """Run the cycles; returns (flush latencies, to-silence latencies) in seconds."""
    rng = random.Random(seed)
    flush: list[float] = []
    silence: list[float] = []
    with RealtimeServer(realtime=False, reply_text="A reply long enough to be interrupted. " * 2, seed=seed) as srv, \
            rtedge.connect(url=srv.url, ping_interval=0) as client:
        arrivals: list[float] = []
        client._add_event_hook(lambda e: arrivals.append(time.monotonic())
                               if isinstance(e, ev.InputAudioBufferSpeechStarted) else None)
        sink = PacedSink()
        agent = VoiceAgent(client, IdleMic(), sink, barge_in="off" if on_dispatcher else "server", vad_gate=False)
        if on_dispatcher:
            client.on("input_audio_buffer.speech_started", lambda e: agent.interrupt("server"))
            client.on("response.output_audio.delta", lambda e: time.sleep(0.010))  # busy user code
        flushed_at: list[float] = []
        original_flush = agent.playback.flush

        def timed_flush(**kwargs):  # record when the buffer is empty
            position = original_flush(**kwargs)
            flushed_at.append(time.monotonic())
            return position

        agent.playback.flush = timed_flush  # type: ignore[method-assign]
        runner = threading.Thread(target=agent.run, name="bench-agent", daemon=True)
        runner.start()
        for i in range(cycles):
            done_before = len([e for e in srv.sent if e["type"] == "response.done"])
            played0 = agent.playback.stats.played_samples
            client.create_response()
            target = played0 + int(24000 * rng.uniform(0.1, 0.4))
            while agent.playback.stats.played_samples < target:
                time.sleep(0.002)
            n_before = len(flushed_at)
            time.sleep(rng.uniform(0, PERIOD))  # speech starts at any point of the device period
            srv.send_event({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": f"item_b{i}"})
            deadline = time.monotonic() + 5
            while len(flushed_at) == n_before and time.monotonic() < deadline:
                time.sleep(0.001)
            t_evt = arrivals[-1]
            flush.append(flushed_at[n_before] - t_evt)
            t_quiet = None
            while t_quiet is None and time.monotonic() < deadline:  # the first silent pull after the flush
                t_quiet = sink.first_silence_after(flushed_at[n_before])
                time.sleep(0.002)
            if t_quiet is not None:
                silence.append(t_quiet - t_evt)
            srv.wait_for_sent("response.done", nth=done_before + 1, timeout=10)
            original_flush()
        agent.stop()
        runner.join(5)
    return flush, silence


def mic_to_send(frames: int, **options: float) -> list[float]:
    """Seconds from a mic frame's delivery to the socket write of its append, per frame (``options``: of
    :func:`rtedge.connect`)."""
    with (RealtimeServer(realtime=False, seed=9) as srv,
          rtedge.connect(url=srv.url, ping_interval=0, **options) as client):
        sends: list[float] = []
        conn = client._conn
        original = conn.send_texts  # the sender writes everything it found queued in one call

        def timed(texts) -> None:
            original(texts)
            now = time.monotonic()
            sends.extend(now for text in texts if text.startswith('{"type":"input_audio_buffer.append"'))

        conn.send_texts = timed  # type: ignore[method-assign]
        mic = PacedMic(frames)
        agent = VoiceAgent(client, mic, PacedSink(), vad_gate=False, echo_guard="off", barge_in="off")
        agent.run(until_input_ends=True, max_seconds=frames * PERIOD + 10)
        client.wait_sent(0, timeout=5)
    pairs = min(len(mic.times), len(sends))
    return [sends[i] - mic.times[i] for i in range(pairs)]


def row(name: str, values: list[float], baseline: list[float] | None = None) -> str:
    if not values:
        return f"| {name} | 0 | - | - | - | - |"
    ms = [v * 1000 for v in values]
    ratio = ""
    if baseline:
        ratio = f"{percentile(values, 99) / percentile(baseline, 99):.2f}x"
    return (f"| {name} | {len(ms)} | {percentile(ms, 50):.3f} | {percentile(ms, 99):.3f} | {max(ms):.3f} | "
            f"{ratio or '-'} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interruptions", type=int, default=100, help="barge-in cycles per mode (default 100)")
    parser.add_argument("--frames", type=int, default=500, help="paced 20 ms mic frames timed to the socket "
                        "(default 500)")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, rtedge {rtedge.__version__}")
    flush, silence = barge_in_cycles(args.interruptions, on_dispatcher=False, seed=1)
    flush_d, silence_d = barge_in_cycles(args.interruptions, on_dispatcher=True, seed=1)
    mic = mic_to_send(args.frames)
    mic_at_once = mic_to_send(args.frames, send_batch_ms=0)
    print("\n| measure | n | p50 ms | p99 ms | max ms | p99 vs dispatcher-callback baseline |")
    print("|---|---|---|---|---|---|")
    print(row("barge-in: event -> playback flushed (receiver hook)", flush, flush_d))
    print(row("barge-in: event -> speaker gets only silence (receiver hook)", silence, silence_d))
    print(row("baseline: event -> flushed (dispatcher callback, 10 ms user work per delta)", flush_d))
    print(row("baseline: event -> only silence (dispatcher callback)", silence_d))
    print(row("mic frame -> WebSocket send (send_batch_ms=40, the default)", mic))
    print(row("mic frame -> WebSocket send (send_batch_ms=0)", mic_at_once))
    p99 = percentile(silence, 99)
    print(f"\ngoal p99(event -> only silence) <= 20 ms: {'met' if p99 <= PERIOD else 'MISSED'} ({p99 * 1000:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
