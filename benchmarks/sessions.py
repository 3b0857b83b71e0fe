#!/usr/bin/env python3
"""Many TickSessions in one process: client CPU, threads, memory and audio lost, at real time.

What it measures
----------------
N concurrent :class:`rtedge.voice.tick.TickSession` objects (N = 1, 10, 50) run in
this process, each driven by its own thread, each a phone call in 200 ms
ticks of 8 kHz G.711 mu-law both ways (``audio/pcmu`` on the wire, so the
codec passes the bytes through), paced at real time: the caller's audio goes
out in 20 ms appends spread over the tick (``send_audio_instant=False``;
``--chunk-ms 200`` sends each tick in one append instead) and ticks follow the
wall clock (``sync="wall"``), like a telephony gateway.  Each caller speaks a
recorded phrase, waits for the agent's answer (about 6 s of audio streamed at
real time in 40 ms deltas) to finish, waits a second, and speaks again; it
never talks over the agent (server VAD with 500 ms of silence, so the pause at
the phrase's comma is not a turn end), so no audio may be dropped.

The local server runs in a **subprocess**: the target is about the client
side, and a server in the same process would put its own per-connection
threads, JSON, base64 and VAD work into the measured CPU.  It counts what it
sends and receives instead of recording events (so 50 sessions for minutes
stay small).

Reported per N, over the streaming phase only (connects and the final drain
excluded): client CPU (user+sys of this process, all threads) as % of one
core per session and in total as % of the machine's cores, threads, RSS,
how late the ticks ended (p99 and max, vs. their real-time schedule), and
audio lost: the server's agent audio minus the audio the ticks played
(after a drain until every session is quiet) and the caller audio sent by the
ticks minus what the server received.  Both must be 0.

Run from the repo root::

    python benchmarks/sessions.py                 # N = 1, 10, 50 for 60 s each
    python benchmarks/sessions.py --quick         # N = 1, 10 for 5 s each
    python benchmarks/sessions.py --sessions 50 --seconds 30 --profile   # where the time goes

``--profile`` runs every thread of this process under cProfile (slower: read
it for shares, not for absolute CPU) and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import resource
import sys
import threading
import time
from importlib.resources import files

import numpy as np

import rtedge
from rtedge.audio import codec
from rtedge.voice.tick import TickSession, TickSettings
from rtedge.audio.wavio import read_wav

from _serverproc import ServerProcess  # benchmarks/ is on sys.path when a benchmark runs as a script

TICK_MS = 200
N_TICK = 8 * TICK_MS
REPLY = "Sure, let me look that up. Your order shipped yesterday and it should arrive on Friday."
TARGET_TOTAL_PCT = 50.0  # of the machine's 2 cores, for 50 sessions


# -------------------------------------------------------------------------------------------- server process


def serve() -> None:
    """Subprocess body: a counting RealtimeServer; prints its URL, then totals when stdin closes."""
    from rtedge.testing import RealtimeServer

    class CountingServer(RealtimeServer):
        sent_audio = received_audio = 0

        def _record_sent(self, event: dict) -> None:
            if event.get("type") == "response.output_audio.delta":
                self.sent_audio += len(event["delta"]) * 3 // 4 - event["delta"].count("=")

        def _record_received(self, event: dict) -> None:
            if event.get("type") == "input_audio_buffer.append":
                self.received_audio += len(event["audio"]) * 3 // 4 - event["audio"].count("=")

    server = CountingServer(realtime=True, delta_ms=40, reply_text=REPLY, seed=1, barriers=False)
    with server:
        print(server.url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin
        print(json.dumps({"sent_audio": server.sent_audio, "received_audio": server.received_audio,
                          "connections": server.connection_count}), flush=True)


# ------------------------------------------------------------------------------------------------ callers


def caller_phrase() -> np.ndarray:
    pcm, rate = read_wav(files("rtedge") / "data" / "demo_phrase.wav")
    return codec.ulaw_encode(codec.Resampler(rate, 8000).process(pcm))


class Call:
    """One session and its driver thread: speak, wait for the answer to end, pause, speak again."""

    def __init__(self, url: str, phrase: np.ndarray, rng: random.Random, chunk_ms: int) -> None:
        session = rtedge.SessionConfig(input_format=rtedge.AudioFormat.pcmu(),
                                       output_format=rtedge.AudioFormat.pcmu(),
                                       turn_detection=rtedge.ServerVad(silence_duration_ms=500))  # one turn
        self.ts = TickSession(TickSettings(url=url, session=session), tick_ms=TICK_MS, audio_format="ulaw8k",
                              send_audio_instant=chunk_ms == TICK_MS, chunk_ms=chunk_ms, sync="wall")
        self.phrase = phrase
        self.pause_ticks = rng.randrange(1, 10)  # staggered first turns
        self.pending = np.zeros(0, dtype=np.uint8)
        self.sent = self.played = self.dropped = self.interruptions = 0
        self.lateness: list[float] = []
        self.stop_speaking = threading.Event()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, name="bench-call", daemon=True)

    def _next_audio(self, agent_busy: bool) -> np.ndarray:
        if not len(self.pending):
            if agent_busy or self.stop_speaking.is_set():
                self.pause_ticks = 5
            elif self.pause_ticks > 0:
                self.pause_ticks -= 1
            else:
                self.pending = self.phrase
        if not len(self.pending):
            return np.full(N_TICK, 0xFF, dtype=np.uint8)
        chunk, self.pending = self.pending[:N_TICK], self.pending[N_TICK:]
        return np.concatenate([chunk, np.full(N_TICK - len(chunk), 0xFF, dtype=np.uint8)])

    def _run(self) -> None:
        try:
            busy, quiet_since = False, 0
            t0 = time.monotonic()
            while True:
                audio = self._next_audio(busy)
                r = self.ts.run_tick(audio)
                self.lateness.append(time.monotonic() - (t0 + (r.tick + 1) * TICK_MS / 1000))
                self.sent += N_TICK
                busy = r.agent_samples > 0 or r.carried_samples > 0 or "response_created" in r.kinds()
                quiet_since = 0 if busy or len(self.pending) else quiet_since + 1
                if self.stop_speaking.is_set() and not len(self.pending) and quiet_since >= 10:
                    return  # 2 s without agent audio after the caller stopped: drained
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc

    def close(self) -> None:
        stats = self.ts.stats
        self.played, self.dropped = stats.played_samples, stats.dropped_samples + stats.late_samples
        self.interruptions = stats.interruptions
        self.ts.close()


# ------------------------------------------------------------------------------------------------ measuring


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB."""
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user+sys) of this process's live threads, summed by thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = thread.name if thread.name.startswith(("rtedge-", "bench-")) else "other"
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def run_one(n: int, seconds: float, phrase: np.ndarray, chunk_ms: int = 20) -> dict:
    server = ServerProcess(__file__)
    rng = random.Random(n)
    calls = [Call(server.url, phrase, rng, chunk_ms) for _ in range(n)]
    for call in calls:
        call.thread.start()
    cpu0, by_thread0, t0 = cpu_seconds(), thread_cpu(), time.monotonic()
    threading.Event().wait(seconds / 2)
    threads, (rss, _) = threading.active_count(), rss_mb()
    threading.Event().wait(max(0.0, t0 + seconds - time.monotonic()))
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - t0
    by_thread = {k: v - by_thread0.get(k, 0.0) for k, v in thread_cpu().items()}
    for call in calls:
        call.stop_speaking.set()
    for call in calls:
        call.thread.join(60)
    for call in calls:
        call.close()
    server_cpu0 = cpu_seconds(resource.RUSAGE_CHILDREN)
    totals = server.finish()
    server_cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - server_cpu0
    errors = [c.error for c in calls if c.error is not None]
    late = sorted(x for c in calls for x in c.lateness)
    return {
        "n": n, "seconds": wall, "cpu_pct_per_session": 100 * cpu / wall / n,
        "cpu_pct_total": 100 * cpu / wall,
        "cores": os.cpu_count() or 1, "threads": threads, "rss_mb": rss, "peak_rss_mb": rss_mb()[1],
        "late_p99_ms": 1000 * late[int(0.99 * (len(late) - 1))] if late else 0.0,
        "late_max_ms": 1000 * late[-1] if late else 0.0,
        "lost_down": totals["sent_audio"] - sum(c.played + c.dropped for c in calls),
        "dropped": sum(c.dropped for c in calls), "barge_ins": sum(c.interruptions for c in calls),
        "lost_up": sum(c.sent for c in calls) - totals["received_audio"],
        "agent_audio_s": totals["sent_audio"] / 8000, "errors": [repr(e) for e in errors],
        "alive": sum(c.thread.is_alive() for c in calls),
        "by_thread_pct": {k: round(100 * v / wall, 2) for k, v in sorted(by_thread.items())},
        "server_process_s": server_cpu,
    }


def table(rows: list[dict]) -> str:
    head = (f"{'N':>3} {'seconds':>7} {'CPU %/session':>13} {'CPU % total':>11} {'of cores':>8} "
            f"{'threads':>7} {'RSS MiB':>7} {'late p99/max ms':>15} {'agent audio s':>13} "
            f"{'lost down/up':>12} {'barge-ins':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['n']:>3} {r['seconds']:>7.1f} {r['cpu_pct_per_session']:>13.2f} {r['cpu_pct_total']:>11.1f} "
            f"{r['cpu_pct_total'] / r['cores']:>7.1f}% {r['threads']:>7} {r['rss_mb']:>7.0f} "
            f"{r['late_p99_ms']:>7.0f}/{r['late_max_ms']:<7.0f} {r['agent_audio_s']:>13.1f} "
            f"{r['lost_down']:>6}/{r['lost_up']:<5} {r['barge_ins']:>9}")
    lines.append("")
    for r in rows:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in r["by_thread_pct"].items())
        lines.append(f"N={r['n']}: client CPU % of one core by thread: {parts}; server process (whole run, "
                     f"incl. start and drain) {r['server_process_s']:.1f} CPU-s")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ profiling


def profiled(fn, *args):  # type: ignore[no-untyped-def]
    """Run ``fn`` with every thread started meanwhile under cProfile; print the merged top 35."""
    profiles: list[cProfile.Profile] = []
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.runcall(original, self)

    threading.Thread.run = run  # type: ignore[method-assign]
    main = cProfile.Profile()
    try:
        result = main.runcall(fn, *args)
    finally:
        threading.Thread.run = original  # type: ignore[method-assign]
    out = io.StringIO()
    stats = pstats.Stats(main, stream=out)
    for profile in profiles:
        stats.add(profile)
    stats.sort_stats("tottime").print_stats(35)
    print(out.getvalue())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="streaming phase per N (default 60)")
    parser.add_argument("--sessions", type=int, nargs="*", help="values of N (default 1 10 50)")
    parser.add_argument("--quick", action="store_true", help="5 s, N = 1 and 10")
    parser.add_argument("--profile", action="store_true", help="cProfile all threads (one N)")
    parser.add_argument("--chunk-ms", type=int, default=20,
                        help="caller audio per append (default 20; 200 = the whole tick at once)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0
    seconds = 5.0 if args.quick and args.seconds == 60.0 else args.seconds
    counts = args.sessions or ([1, 10] if args.quick else [1, 10, 50])
    phrase = caller_phrase()
    print(f"rtedge {rtedge.__version__}, codec backend {codec.BACKEND}, {os.cpu_count()} cores, "
          f"{TICK_MS} ms ticks, mu-law 8 kHz both ways, caller audio in {args.chunk_ms} ms appends paced at "
          "real time, server in a subprocess", flush=True)
    rows = []
    for n in counts:
        row = (profiled(run_one, n, seconds, phrase, args.chunk_ms) if args.profile
               else run_one(n, seconds, phrase, args.chunk_ms))
        rows.append(row)
        print(f"N={n}: done ({row['cpu_pct_total']:.1f} % of one core)", flush=True)
    print()
    print(table(rows))
    if args.json:
        print(json.dumps(rows, indent=1))
    bad = [r for r in rows if r["lost_down"] or r["lost_up"] or r["errors"] or r["alive"]]
    for r in bad:
        print(f"FAIL N={r['n']}: lost down {r['lost_down']} up {r['lost_up']}, errors {r['errors']}, "
              f"undrained sessions {r['alive']}")
    for r in rows:
        if r["n"] == 50:
            verdict = "met" if r["cpu_pct_total"] / 2 < TARGET_TOTAL_PCT else "MISSED"
            print(f"target (50 sessions under {TARGET_TOTAL_PCT:.0f} % of 2 cores): {verdict} "
                  f"({r['cpu_pct_total'] / 2:.1f} % of 2 cores)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
