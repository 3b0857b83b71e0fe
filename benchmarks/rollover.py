#!/usr/bin/env python3
"""Sessions past the provider's limit: make-before-break rollover vs break-before-make recycle.

What it measures
----------------
**Conversation** (default): a paced conversation against the local server with a short session
lifetime (``--lifetime``, 20 s): a microphone thread appends 20 ms frames at real time (a spoken
phrase, then ``--gap`` seconds of silence, again; every frame slightly different), server VAD
ends each turn and the server answers with paced audio.  The same run is done twice, side by
side: with the rollover (the default: a second session is opened and seeded while the first
still serves, the send path switches at a frame boundary) and with the old proactive recycle
(``max_session_seconds``: close, reconnect, re-seed) as the baseline.  Per mode:

* session switches, ``session_expired`` hit, user turns the server committed and responses it
  started (one per turn), responses the client saw completed and cut;
* microphone samples appended vs received by the server over all sessions (lost, extra) and
  whether the SHA-256 of everything received equals that of everything appended;
* the longest pause in the server's audio arrivals across a switch, beyond the 20 ms cadence
  (the longest gap in accepted audio: ``switch_gap_ms``), its median over the switches
  (``switch_gap_med``), how many switches paused a whole frame or more (``switches_over``), and
  for reference the longest pause and the 99th percentile of pauses over the whole run
  (``max_gap_ms``, ``p99_gap_ms``: what the machine's scheduling alone costs);
* whether every new session held the previous one's newest turns verbatim (the seeding; older turns are
  summarized or dropped within the budget), and how many switches were forced (no quiet moment came).

``--latency S`` makes the server take S seconds from the end of a turn to its transcript and to its
answer, as the live service does: a switch forced in that window must still get the turn answered once.

**Soak** (``--soak N``): N rollovers as fast as the server allows (a 0.5 s lifetime, the client
rolling over after 0.25 s), with the server in a subprocess; threads, file descriptors and RSS of
this process after a warm-up vs at the end.

Run from the repo root::

    python benchmarks/rollover.py                      # 10 minutes (rollover) + 2 minutes (recycle)
    python benchmarks/rollover.py --minutes 1 --baseline-minutes 1 --lifetime 10   # quick look
    python benchmarks/rollover.py --minutes 5 --baseline-minutes 0 --latency 0.6   # turns in flight
    python benchmarks/rollover.py --soak 1000          # 1,000 rollovers: threads, fds, RSS
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

import rtedge
from rtedge.audio.codec import Resampler
from rtedge.protocol.config import Transcription
from rtedge.protocol.items import item_text
from rtedge.protocol.reseed import RolloverTiming
from rtedge.testing import RealtimeServer
from rtedge.audio.wavio import read_wav

FRAME = 480  # 20 ms at 24 kHz
#: a new session must hold the old one's newest TAIL messages verbatim (older ones may be summarized)
TAIL = 10
SPEECH = (Path(__file__).resolve().parents[2] / "shared" / "fixtures"
          / "speech" / "turn_on_the_kitchen_lights.wav")


def speech() -> np.ndarray:
    if SPEECH.exists():
        samples, rate = read_wav(SPEECH)
        r = Resampler(rate, 24000)
        return np.concatenate([r.process(samples), r.flush()]).astype(np.int16)
    t = np.arange(int(1.2 * 24000)) / 24000  # no fixture: a loud tone stands in for the phrase
    return (6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


class Mic:
    """Paced 20 ms appends on a thread; SHA-256 and count of everything appended."""

    def __init__(self, client: rtedge.Client, gap_s: float) -> None:
        self.loop = np.concatenate([speech(), np.zeros(int(gap_s * 24000), np.int16)])
        self.client, self.hash, self.samples, self.errors = client, hashlib.sha256(), 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-mic", daemon=True)

    def _run(self) -> None:
        t0, k = time.monotonic(), 0
        while not self.stop.is_set():
            start = (k * FRAME) % (len(self.loop) - FRAME)
            frame = self.loop[start:start + FRAME].copy()
            frame[0] = k % 64 - 32
            try:
                self.client.append_audio(frame, rate=24000)
            except rtedge.RtEdgeError:
                self.errors += 1  # the link was down (the recycle): the frame is not on the wire
            else:
                self.hash.update(frame.astype("<i2").tobytes())
                self.samples += FRAME
            k += 1
            self.stop.wait(max(0.0, t0 + k * 0.02 - time.monotonic()))


def serve(lifetime: float, latency: float) -> None:
    """Child process: the local server; on a line on stdin, one JSON report on stdout, then exit."""
    import json

    n = iter(range(10 ** 6))
    server = RealtimeServer(realtime=True, session_duration_s=lifetime, reply_text="Okay, done.",
                            input_transcript=lambda audio, rate: f"request {next(n)}",
                            transcript_delay=latency, vad_response_delay=latency).start()
    print(server.port, flush=True)
    sys.stdin.readline()
    records = server.audio_records
    pairs = [(a, b) for a, b in zip(records, records[1:]) if a.arrivals and b.arrivals]
    steps = [b[0] - a[0] for r in records for a, b in zip(r.arrivals, r.arrivals[1:])]
    texts = [[item_text(i) for i in server.conversation(k) if item_text(i)] for k in range(len(records))]
    report = {
        "samples": sum(r.samples for r in records), "sessions": len(records),
        "sha256": hashlib.sha256(b"".join(r.audio().astype("<i2").tobytes() for r in records)).hexdigest(),
        "switch_gap": max((b.arrivals[0][0] - a.arrivals[-1][0] for a, b in pairs), default=0.0),
        "switch_gaps": sorted(b.arrivals[0][0] - a.arrivals[-1][0] for a, b in pairs),
        "max_gap": max(steps, default=0.0),
        "p99_gap": sorted(steps)[int(0.99 * (len(steps) - 1))] if steps else 0.0,
        "seeded": sum(1 for a, b in zip(texts, texts[1:]) if a and _holds(b, a[-TAIL:])),
        "unseeded": [(k, a[-TAIL:], b) for k, (a, b) in enumerate(zip(texts, texts[1:]))
                     if a and not _holds(b, a[-TAIL:])],
        "expired": sum(1 for e in server.sent
                       if e["type"] == "error" and e["error"]["code"] == "session_expired"),
        "turns": sum(1 for e in server.sent if e["type"] == "input_audio_buffer.committed"),
        "answered": sum(1 for e in server.sent if e["type"] == "response.created"),
    }
    server.stop()
    print(json.dumps(report), flush=True)


def conversation(mode: str, minutes: float, lifetime: float, gap: float, latency: float = 0.0
                 ) -> dict[str, object]:
    """One paced conversation against a server in a child process (its threads, JSON and VAD stay out
    of this process, so the client's timing is its own)."""
    import json

    child = subprocess.Popen([sys.executable, __file__, "--serve", str(lifetime), "--latency", str(latency)],
                             stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        session = rtedge.SessionConfig(instructions="Be brief.",
                                       transcription=Transcription(model="whisper-1"))
        options: dict[str, object] = {"ping_interval": 0.5, "ping_timeout": 5.0}
        if mode == "recycle":
            options["max_session_seconds"] = lifetime * 0.75
        client = rtedge.connect(url=f"ws://127.0.0.1:{port}/v1/realtime", session=session, **options)
        done: list[object] = []
        rolls: list[object] = []
        client.on("response.done", done.append)
        client.on("rtedge.session_rollover", rolls.append)
        mic = Mic(client, gap)
        mic.thread.start()
        time.sleep(minutes * 60)
        mic.stop.set()
        mic.thread.join()
        client.wait_sent(max_queued_ms=0.0, timeout=10)
        time.sleep(2.0)  # the last appends reach the server
        stats = client.stats
        client.close()
        child.stdin.write("report\n")
        child.stdin.flush()
        report = json.loads(child.stdout.readline())
    finally:
        if child.poll() is None and child.stdin is not None:
            child.stdin.close()
        child.wait(30)
    received = int(report["samples"])
    for k, tail, new in report["unseeded"]:
        print(f"session {k + 1}: its newest messages {tail} are not all in session {k + 2}: {new}",
              file=sys.stderr)
    return {
        "mode": mode, "minutes": minutes, "switches": int(report["sessions"]) - 1,
        "expired": report["expired"],
        "turns": report["turns"], "answered": report["answered"],
        "responses": len(done), "cut": sum(1 for d in done if getattr(d, "status", "") != "completed"),
        "appended": mic.samples, "received": received, "lost": max(0, mic.samples - received),
        "extra": max(0, received - mic.samples), "refused": mic.errors * FRAME,
        "sha_equal": report["sha256"] == mic.hash.hexdigest(),
        "switch_gap_ms": 1000 * max(0.0, float(report["switch_gap"]) - 0.02),
        "switch_gap_med": 1000 * max(0.0, _median(report["switch_gaps"]) - 0.02),
        "switches_over": sum(1 for g in report["switch_gaps"] if g - 0.02 >= 0.02),
        "max_gap_ms": 1000 * max(0.0, float(report["max_gap"]) - 0.02),
        "p99_gap_ms": 1000 * max(0.0, float(report["p99_gap"]) - 0.02),
        "seeded": f"{report['seeded']}/{int(report['sessions']) - 1}",
        "forced": sum(1 for r in rolls if getattr(r, "forced", False)),
        "dropped_ms": stats.audio_dropped_outage_ms,
    }


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else 0.0


def _holds(items: list[str], tail: list[str]) -> bool:
    """``tail`` appears in ``items`` as a contiguous run (the newest turns, seeded verbatim)."""
    return any(items[i:i + len(tail)] == tail for i in range(len(items) - len(tail) + 1))


def rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def drain(client: rtedge.Client) -> None:
    """Read the inbox like an application would (an unread inbox fills up to its byte bound)."""
    for _ in client.events(timeout=0.005):
        pass


def between_rollovers(client: rtedge.Client) -> tuple[int, int, int]:
    """Threads, fds and RSS at a moment with no rollover in progress (one session, one socket)."""
    from rtedge.transport import LinkState

    for _ in range(500):
        drain(client)
        if client.link_state is LinkState.OPEN and not any(t.is_alive() for t in client._draining):
            sample = (threading.active_count(), len(os.listdir("/proc/self/fd")), rss_kb())
            if client.link_state is LinkState.OPEN and not any(t.is_alive() for t in client._draining):
                return sample
    raise RuntimeError("no moment between two rollovers")


def soak(count: int) -> None:
    code = ("import sys; from rtedge.testing import RealtimeServer; "
            "s = RealtimeServer(session_duration_s=0.5, realtime=False, keep_audio=False).start(); "
            "print(s.port, flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        port = int(proc.stdout.readline())
        client = rtedge.connect(url=f"ws://127.0.0.1:{port}/v1/realtime", ping_interval=0.01,
                                ping_timeout=5.0, session_limit_s=0.25,
                                session=rtedge.SessionConfig(turn_detection=None, instructions="Be brief."),
                                rollover_timing=RolloverTiming(margin_s=0.2, force_s=0.05))
        client.send_text("Remember this.")
        client.wait_for("response.done", timeout=10)
        warm = min(50, count // 10)
        while client.stats.rollovers < warm:
            drain(client)
        before = between_rollovers(client)
        t0 = time.monotonic()
        while client.stats.rollovers < count:
            drain(client)
        elapsed = time.monotonic() - t0
        after = between_rollovers(client)
        stats = client.stats
        client.close()
    finally:
        proc.stdin.close()
        proc.wait(10)
    rate = (count - warm) / elapsed
    print(f"{count} rollovers ({count - warm} measured in {elapsed:.0f} s, {rate:.1f}/s); "
          f"failures {stats.rollover_failures}, session_expired {stats.sessions_expired}, "
          f"reconnects {stats.reconnects}")
    print(f"{'':14}{'after warm-up':>16}{'at the end':>14}{'change':>10}")
    for name, a, b, unit in (("threads", before[0], after[0], ""), ("fds", before[1], after[1], ""),
                             ("RSS", before[2], after[2], " KiB")):
        print(f"{name:14}{a:>16}{b:>14}{b - a:>+10}{unit}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="conversation length with the rollover")
    p.add_argument("--baseline-minutes", type=float, default=2.0, help="conversation length with the recycle")
    p.add_argument("--lifetime", type=float, default=20.0, help="the server's session lifetime (s)")
    p.add_argument("--gap", type=float, default=2.5, help="silence between the phrases (s)")
    p.add_argument("--latency", type=float, default=0.0,
                   help="the server's delay from the end of a turn to its transcript and to its answer (s)")
    p.add_argument("--soak", type=int, metavar="N", help="run N rollovers as fast as possible instead")
    p.add_argument("--serve", type=float, metavar="LIFETIME", help=argparse.SUPPRESS)  # the child process
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.latency)
        return
    if args.soak:
        soak(args.soak)
        return
    rows = [conversation("rollover", args.minutes, args.lifetime, args.gap, args.latency)]
    if args.baseline_minutes > 0:
        rows.append(conversation("recycle", args.baseline_minutes, args.lifetime, args.gap, args.latency))
    keys = list(rows[0])
    print(f"{'':16}" + "".join(f"{str(r['mode']):>14}" for r in rows))
    for key in keys[1:]:
        values = [r[key] for r in rows]
        cells = "".join(f"{(f'{v:.1f}' if isinstance(v, float) else str(v)):>14}" for v in values)
        print(f"{key:16}{cells}")
    if len(rows) == 2 and rows[1]["switches"]:
        per = [float(r["lost"]) / max(1, int(r["switches"])) / 24 for r in rows]  # ms lost per switch
        print(f"audio lost per switch: rollover {per[0]:.1f} ms, recycle {per[1]:.1f} ms")


if __name__ == "__main__":
    main()
