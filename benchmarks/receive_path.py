#!/usr/bin/env python3
"""What the receiver does per server message, stage by stage, hot and cold: where its CPU goes.

What it measures
----------------
One 40 ms audio delta (24 kHz PCM16, base64 in JSON, 2.6 KB), handled on the calling thread in three
stages, each including the one before:

* ``json.loads``: decoding and parsing the message (all a plain client does before using it; the baseline);
* ``parse_message``: rtedge's parse into the typed event (``Session.parse_message``);
* ``_on_text``: all that ``rtedge-receiver`` does with a message once read, as its loop calls it: the parse,
  the state update under the session lock (what truncation's ``audio_end_ms`` reads), the inbox entry, and
  queueing it for the callback registered on audio deltas, as a user's would be, with the dispatcher's
  doorbell rung as the receiver's loop rings it (below).  The callbacks themselves run on
  ``rtedge-dispatch`` and are not in the figure; the run waits for them and checks that none was dropped.

Two ways, in CPU time of the calling thread (``time.thread_time``), microseconds per message:

* hot: ``--messages`` (2,000) in a row, best of ``--reps``; the doorbell rung once per
  :data:`~rtedge.transport._workers.FLUSH_EVERY` messages, as the loop does in a burst;
* cold: ``--cold-messages`` (200), one every 40 ms as a paced stream brings them, the mean; the doorbell
  rung after each, as the loop does before it waits for the next.  Each message runs after the thread
  slept 40 ms, as in a real-time stream, with the caches, the clock and the core as they are by then (which
  of these makes it slower is not measured here): what the receiver pays per message in a paced stream
  (``client_overhead.py --modes realtime`` gives the thread's whole CPU per 20 s).

The ratios show what the path does beyond parsing, the part a shorter path would save.

Run from the repo root::

    python benchmarks/receive_path.py
    python benchmarks/receive_path.py --messages 5000 --reps 7 --cold-messages 500
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import threading
import time
from collections.abc import Callable

import rtedge
from rtedge.testing import RealtimeServer
from rtedge.transport._workers import FLUSH_EVERY

DELTA = {"type": "response.output_audio.delta", "event_id": "event_1", "response_id": "resp_1",
         "item_id": "item_1", "output_index": 0, "content_index": 0}


def best_us(fn: Callable[[], object], n: int, reps: int, settle: Callable[[], None]) -> float:
    """Best of ``reps`` runs of ``n`` calls of ``fn``, in thread-CPU microseconds per call."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.thread_time()
        for _ in range(n):
            fn()
        best = min(best, time.thread_time() - t0)
        settle()
    return best / n * 1e6


def cold_us(fn: Callable[[], object], n: int, gap: float) -> float:
    """Mean thread-CPU microseconds of ``n`` calls of ``fn``, one every ``gap`` seconds."""
    total = 0.0
    deadline = time.monotonic()
    for _ in range(n):
        deadline += gap
        time.sleep(max(0.0, deadline - time.monotonic()))  # the pacing being measured, not a wait
        t0 = time.thread_time()
        fn()
        total += time.thread_time() - t0
    return total / n * 1e6


GAP_S = 0.040  # a cold message every 40 ms, as a paced stream's audio deltas come


def measure(client: rtedge.Client, payload: bytes,
            args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """``(stage, hot us, cold us)`` per stage (cold: NaN with ``--cold-messages 0``); raises SystemExit when
    the dispatcher did not deliver every event handed on."""
    done = threading.Semaphore(0)
    client.on("response.output_audio.delta", lambda event: done.release())
    session = client._session
    handed = [0]

    def receive(flush_every: int) -> None:
        client._on_text(payload, None, False)  # as the receiver's loop: the doorbell is rung apart
        handed[0] += 1
        if handed[0] % flush_every == 0:
            client._dispatcher.flush()

    def settle() -> None:  # the callbacks catch up before the next repetition
        client._dispatcher.flush()
        while handed[0]:
            if not done.acquire(timeout=10):
                raise SystemExit(f"the dispatcher did not deliver every event within 10 s ({handed[0]} "
                                 f"missing; callback events dropped: {client.stats.callback_events_dropped})")
            handed[0] -= 1

    def loads() -> object:
        return json.loads(payload.decode())

    def parse() -> object:
        return session.parse_message(payload.decode())

    stages: list[tuple[str, Callable[[], object], Callable[[], object]]] = [  # (name, hot, cold)
        ("json.loads", loads, loads), ("parse_message", parse, parse),
        ("_on_text", lambda: receive(FLUSH_EVERY), lambda: receive(1))]  # the doorbell as the loop rings it
    results = []
    for name, hot, cold in stages:
        hot_us = best_us(hot, args.messages, args.reps, settle)
        cold_figure = cold_us(cold, args.cold_messages, GAP_S) if args.cold_messages else float("nan")
        settle()
        results.append((name, hot_us, cold_figure))
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=2000, help="messages per repetition (default 2000)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per stage, best taken (default 5)")
    ap.add_argument("--cold-messages", type=int, default=200,
                    help="messages per stage, one every 40 ms (default 200; 0: hot only)")
    args = ap.parse_args()
    if args.messages < 1 or args.reps < 1 or args.cold_messages < 0:
        ap.error("--messages and --reps must be positive, --cold-messages not negative")
    payload = json.dumps({**DELTA, "delta": base64.b64encode(os.urandom(1920)).decode()}).encode()
    with RealtimeServer() as server, rtedge.connect("openai", url=server.url, ping_interval=0) as client:
        results = measure(client, payload, args)
        dropped = client.stats.callback_events_dropped
    hot0, cold0 = results[0][1], results[0][2]
    cold_run = ""
    if args.cold_messages:
        cold_run = f"; cold: {args.cold_messages}, one per {GAP_S * 1e3:.0f} ms, mean"
    print(f"### receiver path per audio delta (hot: {args.messages} in a row, best of {args.reps}"
          f"{cold_run})\n")
    head = "| stage | hot us / message | hot ratio vs json.loads |"
    if args.cold_messages:
        head += " cold us / message | cold ratio vs json.loads | cold mean / hot best |"
    print(head + "\n" + "|---" * (head.count("|") - 1) + "|")
    for name, hot, cold in results:
        cells = f"| {name} | {hot:.1f} | {hot / hot0:.2f}x |"
        if args.cold_messages:
            cells += f" {cold:.1f} | {cold / cold0:.2f}x | {cold / hot:.1f}x |"
        print(cells)
    print(f"\ncallback events dropped: {dropped} (must be 0)")
    return 1 if dropped else 0


if __name__ == "__main__":
    raise SystemExit(main())
