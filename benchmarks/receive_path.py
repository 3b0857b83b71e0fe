#!/usr/bin/env python3
"""What the receiver does per server message, stage by stage, hot: where rtedge's receiving side goes.

What it measures
----------------
One 40 ms audio delta (24 kHz PCM16, base64 in JSON, 2.6 KB), handled 2,000 times in a row on the calling
thread, in three stages, each including the one before:

* ``json.loads``: decoding and parsing the message (all a plain client does before using it; the baseline);
* ``parse_message``: rtedge's parse into the typed event (``Session.parse_message``);
* ``_on_text``: all that ``rtedge-receiver`` does with a message once read, as its loop calls it: the parse,
  the state update under the session lock (what truncation's ``audio_end_ms`` reads), the inbox entry, and
  queueing it for the callback registered on audio deltas, as a user's would be, with the dispatcher's
  doorbell rung once per :data:`~rtedge.transport._workers.FLUSH_EVERY` messages (the loop rings it at
  least that often, and whenever it is about to wait for the network: once per message in a paced
  stream, which this hot loop does not show).  The callbacks themselves run on ``rtedge-dispatch`` and
  are not in the figure; the run waits for them between repetitions and checks that none was dropped.

CPU time of the calling thread (``time.thread_time``), best of ``--reps``, in microseconds per message.  Hot
figures: in a paced stream each message arrives alone and runs this path cold, several times slower
(``client_overhead.py --modes realtime`` gives the thread's CPU per 20 s); the ratios show what the path
does beyond parsing, the part a shorter path would save.

Run from the repo root::

    python benchmarks/receive_path.py
    python benchmarks/receive_path.py --messages 5000 --reps 7
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=2000, help="messages per repetition (default 2000)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per stage, best taken (default 5)")
    args = ap.parse_args()
    payload = json.dumps({**DELTA, "delta": base64.b64encode(os.urandom(1920)).decode()}).encode()
    done = threading.Semaphore(0)
    with RealtimeServer() as server, rtedge.connect("openai", url=server.url, ping_interval=0) as client:
        client.on("response.output_audio.delta", lambda event: done.release())
        session = client._session
        handed = [0]

        def receive() -> None:
            client._on_text(payload, None, False)  # as the receiver's loop: no doorbell per message
            handed[0] += 1
            if handed[0] % FLUSH_EVERY == 0:
                client._dispatcher.flush()

        def settle() -> None:  # the callbacks catch up before the next repetition
            client._dispatcher.flush()
            while handed[0]:
                if not done.acquire(timeout=10):
                    raise SystemExit(f"the dispatcher did not deliver every event within 10 s ({handed[0]} "
                                     f"missing; callback events dropped: {client.stats.callback_events_dropped})")
                handed[0] -= 1

        stages = [("json.loads", lambda: json.loads(payload.decode())),
                  ("parse_message", lambda: session.parse_message(payload.decode())),
                  ("_on_text", receive)]
        results = [(name, best_us(fn, args.messages, args.reps, settle)) for name, fn in stages]
        dropped = client.stats.callback_events_dropped
    base = results[0][1]
    print(f"### receiver path per audio delta (hot, {args.messages} messages, best of {args.reps})\n")
    print("| stage | us / message | ratio vs json.loads |\n|---|---|---|")
    for name, us in results:
        print(f"| {name} | {us:.1f} | {us / base:.2f}x |")
    print(f"\ncallback events dropped: {dropped} (must be 0)")
    return 1 if dropped else 0


if __name__ == "__main__":
    raise SystemExit(main())
