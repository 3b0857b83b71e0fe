#!/usr/bin/env python3
"""Wall-clock pacing of TickSession: do 200 ticks of 200 ms take 40 s, and is every tick exact?

What it measures
----------------
A phone call in 200 ms ticks of 8 kHz mu-law (``audio/pcmu`` on the wire) against the local
server streaming at real time, in wall mode with ``pace=True``: the caller speaks the bundled
phrase (given in uneven chunks of 0 to 3 ticks, so the caller audio is carried and padded),
the agent answers at real time, and the ticks go on until ``--ticks`` have run.  Reported per
row: the wall-clock time of all the ticks against ``ticks * tick_ms`` (the target is within
2 %), each tick's duration (p50, p99, max), how late ticks ended against their schedule, and
the exactness the harness relies on: agent audio per tick, caller audio per tick, the caller's
bytes at the server, and the agent's audio conserved (server sent = ticks played).

The baseline, measured side by side in the same run, is a bare loop that sleeps to the same
absolute schedule and does nothing else: the timer floor of this machine.  The local server
runs in a subprocess, so its streaming does not share this process's interpreter.

Run from the repo root::

    python benchmarks/tick_pacing.py                  # 200 ticks of 200 ms (about 3 x 40 s)
    python benchmarks/tick_pacing.py --ticks 50       # shorter
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from importlib.resources import files

import numpy as np

import rtedge
from rtedge.audio import codec
from rtedge.testing import RealtimeServer
from rtedge.voice.tick import TickResult, TickSession, TickSettings
from rtedge.audio.wavio import read_wav

from _serverproc import ServerProcess  # benchmarks/ is on sys.path when a benchmark runs as a script

TICK_MS = 200
N = 8 * TICK_MS  # mu-law bytes per tick


def serve() -> None:
    """Subprocess: the local server at real time; on stdin EOF print what it received and sent."""
    server = RealtimeServer(realtime=True, seed=1, reply_text="Sure. Your order ships tomorrow morning, "
                            "and you will get a text message with the tracking number.")
    with server:
        print(server.url, flush=True)
        sys.stdin.read()
        received = b"".join(base64.b64decode(e["audio"]) for e in server.received
                            if e["type"] == "input_audio_buffer.append")
        sent = b"".join(base64.b64decode(e["delta"]) for e in server.sent
                        if e["type"] == "response.output_audio.delta")
        print(json.dumps({"received": received.hex(), "sent": sent.hex()}), flush=True)


def caller_phrase() -> bytes:
    pcm, rate = read_wav(files("rtedge") / "data" / "demo_phrase.wav")
    return codec.ulaw_encode(codec.Resampler(rate, 8000).process(pcm)).tobytes()


def baseline(ticks: int) -> dict:
    """The same absolute schedule with nothing to do: sleep to each tick's end."""
    durations, late = [], []
    t0 = time.monotonic()
    for k in range(ticks):
        start = time.monotonic()
        delay = t0 + (k + 1) * TICK_MS / 1000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        end = time.monotonic()
        durations.append(end - start)
        late.append(end - (t0 + (k + 1) * TICK_MS / 1000))
    return {"name": "baseline: sleep to the schedule", "total": time.monotonic() - t0, "durations": durations,
            "late": late, "exact": None}


def call(ticks: int, instant: bool) -> dict:
    """One call through TickSession in wall mode with pace=True."""
    server = ServerProcess(__file__)
    rng = np.random.default_rng(1)
    phrase = caller_phrase()
    pcmu = rtedge.AudioFormat.pcmu()
    session = rtedge.SessionConfig(input_format=pcmu, output_format=pcmu,
                                   turn_detection=rtedge.ServerVad(silence_duration_ms=500))
    given, results, durations, late = bytearray(), [], [], []
    with TickSession(TickSettings(url=server.url, session=session), tick_ms=TICK_MS, audio_format="ulaw8k",
                     sync="wall", pace=True, send_audio_instant=instant, silence_byte=0x7F) as ts:
        pos, t0 = 0, time.monotonic()
        for k in range(ticks):
            size = int(rng.integers(0, 3 * N + 1)) if pos < len(phrase) else 0
            chunk, pos = phrase[pos:pos + size], pos + size
            given += chunk
            start = time.monotonic()
            results.append(ts.run_tick(chunk))
            end = time.monotonic()
            durations.append(end - start)
            late.append(end - (t0 + (k + 1) * TICK_MS / 1000))
        total = time.monotonic() - t0
        carried = ts.caller_carried
    data = server.finish()
    received, sent = bytes.fromhex(data["received"]), bytes.fromhex(data["sent"])
    name = "TickSession wall, pace=True, " + ("one append per tick" if instant else "20 ms appends")
    return {"name": name, "total": total, "durations": durations, "late": late,
            "exact": exactness(results, given, carried, received, sent)}


def exactness(results: list[TickResult], given: bytes, carried: int, received: bytes, sent: bytes) -> dict:
    caller = b"".join(received[r.tick * N:r.tick * N + r.input_samples] for r in results)
    heard = b"".join(r.agent_audio[s.offset:s.offset + s.length] for r in results for s in r.spans)
    return {
        "agent audio per tick exact": all(len(r.agent_audio) == N for r in results),
        "caller audio per tick exact": all(r.input_samples + r.input_padded == N for r in results)
        and len(received) == N * len(results),
        "caller bytes at the server (carried excluded)": caller == given[:len(given) - carried],
        "agent audio played = sent (carried excluded)": heard == sent[:len(heard)]
        and len(sent) - len(heard) == results[-1].carried_samples,
    }


def ms(x: float) -> str:
    return f"{1000 * x:7.1f}"


def report(rows: list[dict], ticks: int) -> None:
    target = ticks * TICK_MS / 1000
    base = rows[0]["total"]
    print(f"\n{ticks} ticks of {TICK_MS} ms (target {target:.1f} s, within 2 %: "
          f"{0.98 * target:.2f}..{1.02 * target:.2f} s)\n")
    print(f"{'':48} {'total s':>8} {'error':>7} {'vs base':>8} {'tick p50':>8} {'p99':>7} {'max':>7} "
          f"{'late p99':>8} {'max':>7}  (ms)")
    for row in rows:
        d, late = np.array(row["durations"]), np.array(row["late"])
        err = (row["total"] - target) / target
        print(f"{row['name']:48} {row['total']:8.3f} {100 * err:+6.2f}% {row['total'] / base:8.4f} "
              f"{ms(np.percentile(d, 50)):>8} {ms(np.percentile(d, 99))} {ms(d.max())} "
              f"{ms(np.percentile(late, 99)):>8} {ms(late.max())}")
    for row in rows[1:]:
        within = abs(row["total"] - target) <= 0.02 * target
        verdict = "yes" if within else "NO"
        print(f"\n{row['name']}: {row['total']:.3f} s, within 2 % of {target:.1f} s: {verdict}")
        for check, ok in row["exact"].items():
            print(f"  {check:48} {'yes' if ok else 'NO'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=200)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve()
        return
    rows = [baseline(args.ticks), call(args.ticks, instant=True), call(args.ticks, instant=False)]
    report(rows, args.ticks)


if __name__ == "__main__":
    main()
