#!/usr/bin/env python3
"""Client memory over a long full-duplex session: peak RSS, and RSS late vs early (flat per turn?).

What it measures
----------------
The local server (``rtedge.testing.RealtimeServer``, real-time pacing, in this process) talks to a client
in a child process, so only the client's memory is measured.  The client streams 24 kHz PCM16 microphone
audio (real speech from ``../shared/fixtures/speech``, looped; silence if absent) in 20 ms frames paced in
real time, and the server answers turn after turn in 24 kHz audio, also paced: at every
``response.done`` the client commits its input and asks for the next response, so both directions run
all the time.  A ``"*"`` callback consumes every event (audio deltas are decoded with ``event.pcm()``);
nobody reads ``events()``.

The child samples its RSS once a second and reports the peak (``VmHWM``) and the RSS at the marks
(``--marks``, seconds).  Two configurations run side by side, one after the other:

* ``default``: ``rtedge.connect`` with its defaults (inbox bounded by 2 MiB, audio payloads released
  once callbacks had them, per-turn state in windows).
* ``big-inbox`` (baseline): an inbox that keeps audio payloads and 10,000 events regardless of bytes
  (``inbox_audio=True, inbox_bytes=1 GiB``), what a client without a byte bound holds.

Run from the repo root::

    python benchmarks/memory.py                           # 600 s each; marks at 300 s and the end
    python benchmarks/memory.py --seconds 3600 --marks 300,3600 --configs default   # the hour-long check
    python benchmarks/memory.py --quick                   # 60 s each (a smoke run)

The acceptance figures for a kiosk: peak RSS under 45 MB over 600 s, and RSS at 60 min within 1 MB of
RSS at 5 min.  The start-up (interpreter, numpy, rtedge, connected: the ``startup MB`` column) is about 32 MB
of that on x86-64 with numpy 2.4; where a machine or a numpy release starts higher, judge the peak by its
growth over start-up (about 10 MB here).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SPEECH = REPO.parent / "shared" / "fixtures" / "speech"
RATE = 24000
FRAME = RATE // 50  # 20 ms
REPLY = ("Here is a longer answer, so that the speaker keeps talking while the microphone streams. " * 4).strip()

CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "big-inbox": {"inbox_audio": True, "inbox_bytes": 1 << 30, "inbox_size": 10000},
}


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _hwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _speech() -> Any:
    import numpy as np

    from rtedge.audio.wavio import read_wav
    parts = []
    for path in sorted(SPEECH.glob("*.wav")) if SPEECH.is_dir() else []:
        samples, rate = read_wav(path)
        mono = samples if samples.ndim == 1 else samples[:, 0]
        n = int(len(mono) * RATE / rate)
        parts.append(np.interp(np.arange(n) * rate / RATE, np.arange(len(mono)), mono).astype(np.int16))
    return np.concatenate(parts) if parts else np.zeros(RATE, np.int16)


def child(url: str, seconds: float, marks: list[float], config: str) -> None:
    """The measured client (its own process)."""
    import rtedge

    speech = _speech()
    startup_kb = _rss_kb()  # interpreter, numpy, rtedge and the speech loop: before any session
    counts = {"events": 0, "audio_samples": 0, "responses": 0}
    holder: dict[str, rtedge.Client] = {}

    def consume(event: Any) -> None:
        counts["events"] += 1
        if event.type == "response.output_audio.delta":
            counts["audio_samples"] += len(event.pcm())
        elif event.type == "response.done":
            counts["responses"] += 1
            client = holder.get("client")
            if client is not None and not client.closed:
                client.commit()
                client.create_response()

    session = rtedge.SessionConfig(turn_detection=None)
    client = rtedge.connect(url=url, session=session, on={"*": consume}, **CONFIGS[config])
    holder["client"] = client
    stop = threading.Event()
    sent = {"frames": 0}

    def microphone() -> None:
        t0, k, pos = time.monotonic(), 0, 0
        while not stop.wait(max(0.0, t0 + k * 0.02 - time.monotonic())):
            frame = speech[pos:pos + FRAME]
            if len(frame) < FRAME:
                pos, frame = 0, speech[:FRAME]
            pos += FRAME
            client.append_audio(frame, rate=RATE, overflow="drop_oldest")
            sent["frames"] += 1
            k += 1

    mic = threading.Thread(target=microphone, name="bench-microphone", daemon=True)
    client.create_response()
    mic.start()
    t0 = time.monotonic()
    at_marks: dict[str, int] = {}
    pending = sorted(marks)
    while True:
        elapsed = time.monotonic() - t0
        while pending and elapsed >= pending[0]:
            at_marks[f"{pending.pop(0):.0f}"] = _rss_kb()
        if elapsed >= seconds:
            break
        time.sleep(1.0)
    stop.set()
    mic.join(2)
    stats = client.stats
    client.close()
    print(json.dumps({"config": config, "seconds": seconds, "peak_kb": _hwm_kb(), "rss_at": at_marks,
                      "startup_kb": startup_kb,
                      "events": counts["events"], "responses": counts["responses"],
                      "audio_in_s": counts["audio_samples"] / RATE, "audio_out_s": sent["frames"] * 0.02,
                      "inbox_dropped": stats.inbox_dropped, "audio_dropped": stats.audio_dropped,
                      "inbox_kb": client._log.nbytes // 1024}), flush=True)


def run(config: str, seconds: float, marks: list[float]) -> dict[str, Any]:
    from rtedge.testing import RealtimeServer

    with RealtimeServer(realtime=True, reply_text=REPLY, keep_audio=False) as srv:
        proc = subprocess.Popen([sys.executable, __file__, "--child", srv.url, "--seconds", str(seconds),
                                 "--marks", ",".join(str(m) for m in marks), "--configs", config],
                                stdout=subprocess.PIPE, text=True)
        while proc.poll() is None:
            time.sleep(5)
            srv.clear_records()  # the server's own records would grow for an hour (not what is measured)
        out = proc.stdout.read() if proc.stdout else ""
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"the {config} client failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--marks", default="", help="seconds at which to record RSS (default: 300 and the end)")
    ap.add_argument("--configs", default="default,big-inbox")
    ap.add_argument("--quick", action="store_true", help="60 s per configuration")
    ap.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = ap.parse_args()
    seconds = 60.0 if args.quick else args.seconds
    marks = [float(m) for m in args.marks.split(",") if m] or sorted({min(300.0, seconds / 2), seconds})
    if args.child:
        child(args.child, seconds, marks, args.configs)
        return
    results = [run(config, seconds, marks) for config in args.configs.split(",")]
    base = results[-1]
    print(f"\nclient memory, {seconds:.0f} s full duplex at 24 kHz (callbacks consume every event; "
          "nobody reads events())\n")
    mark_cols = [f"RSS@{m:.0f}s MB" for m in marks]
    header = ["config", "startup MB", "peak RSS MB", "x baseline", *mark_cols, "late-early MB", "responses", "audio in s",
              "inbox KB", "inbox_dropped"]
    print("  ".join(f"{h:>14}" for h in header))
    for r in results:
        rss = [r["rss_at"].get(f"{m:.0f}", 0) / 1024 for m in marks]
        row = [r["config"], f"{r['startup_kb'] / 1024:.1f}", f"{r['peak_kb'] / 1024:.1f}", f"{r['peak_kb'] / base['peak_kb']:.2f}",
               *[f"{v:.1f}" for v in rss], f"{rss[-1] - rss[0]:+.2f}", str(r["responses"]),
               f"{r['audio_in_s']:.0f}", str(r["inbox_kb"]), str(r["inbox_dropped"])]
        print("  ".join(f"{c:>14}" for c in row))
    print(f"\nbaseline: {base['config']}; 'late-early' is RSS at the last mark minus RSS at the first.")


if __name__ == "__main__":
    main()
