#!/usr/bin/env python3
"""What one thread hand-off costs on this machine: the unit of rtedge's paced overhead.

What it measures
----------------
A paced stream shaped like the one ``client_overhead.py --modes realtime`` runs: the main thread
sleeps to absolute 20 ms deadlines, and every second deadline writes a 2.7 KB message into a
loopback socket pair (a 40 ms audio delta); a reader thread blocks on the other end.  Two variants,
interleaved A B, A B ... in fresh processes:

* ``inline``: the reader handles each message itself (what the plain client's receiver does);
* ``handoff``: the reader wakes a second thread per message with rtedge's own
  ``Doorbell`` (an eventfd), and that thread handles it (what rtedge's receiver does for
  ``rtedge-dispatch``, and an append for ``rtedge-sender``).

The difference in CPU (user + sys of the process, all threads) per hand-off is what each extra
wake-up of a thread costs here: rtedge's paced stream makes about 50 more of them per second than the
plain client (``rtedge-sender`` once per two 20 ms frames, ``rtedge-dispatch`` once per delta a
callback wants), and the table multiplies the two to predict the paced gap in % of one core.  On a
virtual machine a wake-up of an idle CPU is far dearer than on bare metal, so run it on the target.

Run from the repo root::

    python benchmarks/handoff.py                 # 3 reps of 20 s per variant
    python benchmarks/handoff.py --seconds 5 --reps 1
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time

#: rtedge's paced stream: extra wake-ups per second against the plain client (sender 25 + dispatch 25)
EXTRA_WAKEUPS_PER_S = 50
MESSAGE = b"m" * 2700  # a 40 ms 24 kHz PCM16 delta, base64 in JSON


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_variant(variant: str, seconds: float) -> dict[str, float]:
    """One run in this process: CPU seconds over ``seconds`` of paced stream, and messages handled."""
    from rtedge.transport._workers import Doorbell

    a, b = socket.socketpair()
    handled = [0]
    bell = Doorbell() if variant == "handoff" else None
    stop = threading.Event()

    def reader() -> None:
        while True:
            data = b.recv(65536)
            if not data or data == b"q":
                break
            if bell is None:
                handled[0] += 1
            else:
                bell.ring()
        stop.set()
        if bell is not None:
            bell.ring()

    def handler() -> None:
        while bell is not None and not stop.is_set():
            if bell.wait(1.0) and not stop.is_set():
                handled[0] += 1

    threads = [threading.Thread(target=reader, name="reader")]
    if bell is not None:
        threads.append(threading.Thread(target=handler, name="handler"))
    for t in threads:
        t.start()
    c0, start = _cpu(), time.monotonic()
    for i in range(int(seconds * 50)):
        delay = start + i * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if i % 2 == 0:
            a.sendall(MESSAGE)
    time.sleep(max(0.0, start + seconds - time.monotonic()))
    cpu = _cpu() - c0
    a.sendall(b"q")
    for t in threads:
        t.join(5)
    return {"cpu": cpu, "handled": handled[0], "seconds": seconds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds per run (default 20)")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    ap.add_argument("--variant", help=argparse.SUPPRESS)  # a child process runs one variant
    args = ap.parse_args()
    if args.variant:
        print("RESULT " + json.dumps(run_variant(args.variant, args.seconds)), flush=True)
        return 0
    results: dict[str, list[dict[str, float]]] = {"inline": [], "handoff": []}
    for rep in range(args.reps):
        for variant in results:
            out = subprocess.run([sys.executable, __file__, "--variant", variant, "--seconds", str(args.seconds)],
                                 capture_output=True, text=True, timeout=60 + 2 * args.seconds, check=True).stdout
            res = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:])
            results[variant].append(res)
            print(f"  rep {rep + 1}/{args.reps} {variant:8s} CPU {res['cpu']:.3f} s, {res['handled']} messages",
                  file=sys.stderr)
    pct = {v: statistics.median(r["cpu"] / r["seconds"] * 100 for r in rs) for v, rs in results.items()}
    handoffs = statistics.median(r["handled"] / r["seconds"] for r in results["handoff"])
    per_us = (pct["handoff"] - pct["inline"]) / 100 / handoffs * 1e6 if handoffs else float("nan")
    print(f"### thread hand-off cost: {args.seconds:g} s paced per run, {args.reps} interleaved rep(s), medians\n")
    print("| variant | CPU % of one core | ratio vs inline |")
    print("|---|---|---|")
    for variant, value in pct.items():
        print(f"| {variant} | {value:.3f} | {value / pct['inline']:.2f}x |")
    print(f"\none hand-off (wake-up of a second thread): {per_us:.0f} us of CPU; rtedge's paced stream makes "
          f"~{EXTRA_WAKEUPS_PER_S} more per second than the plain client: "
          f"~{EXTRA_WAKEUPS_PER_S * per_us / 1e4:.2f} % of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
