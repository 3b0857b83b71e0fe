#!/usr/bin/env python3
"""Conservation end to end over a long TickSession call: 10,000 ticks of uneven caller chunks.

What it checks
--------------
A call of ``--ticks`` 200 ms ticks (default 10,000: 33 minutes of call time) in lock-step
(barrier) mode against the local server.  The caller gives its audio in chunks of random length
from 0 to 3 ticks (none about half of the time, so the audio is carried at times and padded at
others): the bundled phrase, a pause, and now and then a tone that talks over the agent's
answer (barge-in).  At the end it compares, byte for byte:

* caller: the audio the server received, tick by tick, against the chunks given (every tick
  exactly one tick; the caller's bytes in order, exactly once; padding only where nothing was
  carried);
* agent: the audio each tick played against what the server sent, per item (a prefix of it,
  all of it unless a barge-in cut it), and received = played + dropped + carried;
* usage: the ticks' usage against the client's totals and the server's ``response.done`` events.

It prints the totals, the time the run took and ticks per second (the lock-step speed; the
baseline is the call's own length in real time).

Run from the repo root::

    python benchmarks/tick_conservation.py                 # 10,000 ticks
    python benchmarks/tick_conservation.py --ticks 2000
"""

from __future__ import annotations

import argparse
import base64
import time
from importlib.resources import files

import numpy as np

import rtedge
from rtedge.audio import codec
from rtedge.testing import RealtimeServer
from rtedge.voice.tick import TickResult, TickSession, TickSettings
from rtedge.audio.wavio import read_wav

TICK_MS = 200
N = 8 * TICK_MS


def caller_audio(rng: np.random.Generator, ticks: int) -> bytes:
    """Phrase, pause, sometimes a tone over the agent's answer: about ``ticks`` ticks of it."""
    pcm, rate = read_wav(files("rtedge") / "data" / "demo_phrase.wav")
    phrase = codec.ulaw_encode(codec.Resampler(rate, 8000).process(pcm)).tobytes()
    t = np.arange(8 * 500) / 8000.0
    tone = codec.ulaw_encode(np.round(8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)).tobytes()
    out = bytearray()
    while len(out) < ticks * N:
        out += phrase + b"\x7f" * (8 * int(rng.integers(1500, 3000)))
        if rng.random() < 0.5:
            out += tone + b"\x7f" * (8 * 4000)
        else:
            out += b"\x7f" * (8 * int(rng.integers(4000, 9000)))
    return bytes(out[:ticks * N])


def run(ticks: int) -> None:
    rng = np.random.default_rng(18)
    stream = caller_audio(rng, ticks)
    pcmu = rtedge.AudioFormat.pcmu()
    session = rtedge.SessionConfig(input_format=pcmu, output_format=pcmu,
                                   turn_detection=rtedge.ServerVad(silence_duration_ms=500))
    results: list[TickResult] = []
    given = 0
    with RealtimeServer(realtime=False, seed=18, reply_text="Sure, I can help with that. Your order "
                        "ships tomorrow, and the tracking number comes by text message.") as srv, \
            TickSession(TickSettings(url=srv.url, session=session), tick_ms=TICK_MS, audio_format="ulaw8k",
                        silence_byte=0x7F) as ts:
        t0 = time.monotonic()
        for _ in range(ticks):
            size = int(rng.integers(0, 3 * N + 1)) if rng.random() < 0.5 else 0
            chunk = stream[given:given + size]
            given += len(chunk)
            results.append(ts.run_tick(chunk))
        elapsed = time.monotonic() - t0
        client_usage, stats, carried_in = ts.client.usage, ts.stats, ts.caller_carried
        received = b"".join(base64.b64decode(e["audio"]) for e in srv.received
                            if e["type"] == "input_audio_buffer.append")
        deltas = [e for e in srv.sent if e["type"] == "response.output_audio.delta"]
        dones = [e for e in srv.sent if e["type"] == "response.done"]
    sent: dict[str, bytearray] = {}
    for e in deltas:
        sent.setdefault(e["item_id"], bytearray()).extend(base64.b64decode(e["delta"]))
    heard: dict[str, bytearray] = {}
    for r in results:
        for s in r.spans:
            heard.setdefault(s.item_id, bytearray()).extend(r.agent_audio[s.offset:s.offset + s.length])
    caller = b"".join(received[r.tick * N:r.tick * N + r.input_samples] for r in results)
    padding_ok = all(received[r.tick * N + r.input_samples:(r.tick + 1) * N] == b"\x7f" * r.input_padded
                     and (r.input_padded == 0 or r.input_carried == 0) for r in results)
    total_sent = sum(len(a) for a in sent.values())
    tick_usage = sum((r.usage_total for r in results), rtedge.Usage())
    server_out = sum(d["response"]["usage"]["output_tokens"] for d in dones)
    checks = {
        "every tick exactly one tick both ways": all(len(r.agent_audio) == N for r in results)
        and len(received) == N * ticks,
        "caller bytes in order, once (carried excluded)": caller == stream[:given - carried_in],
        "padding only where nothing was carried": padding_ok,
        "agent: each item's heard audio is a prefix of it": all(
            bytes(a) == bytes(sent[i][:len(a)]) for i, a in heard.items()),
        "agent: received = played + dropped + carried": stats.received_samples == stats.played_samples
        + stats.dropped_samples + results[-1].carried_samples and stats.received_samples == total_sent,
        "usage: ticks = client = server": tick_usage == client_usage
        and tick_usage.output_tokens == server_out,
    }
    call_s = ticks * TICK_MS / 1000
    print(f"\n{ticks} ticks of {TICK_MS} ms ({call_s / 60:.1f} min of call) in {elapsed:.1f} s: "
          f"{ticks / elapsed:.0f} ticks/s, {call_s / elapsed:.1f}x real time\n")
    rows = [("caller bytes given", given), ("  sent", len(caller)), ("  carried at the end", carried_in),
            ("  padding sent", sum(r.input_padded for r in results)),
            ("ticks that carried caller audio", sum(r.input_carried > 0 for r in results)),
            ("ticks padded", sum(r.input_padded > 0 for r in results)),
            ("agent bytes sent by the server", total_sent), ("  played", stats.played_samples),
            ("  dropped by barge-in", stats.dropped_samples),
            ("  carried at the end", results[-1].carried_samples),
            ("responses", len(dones)), ("barge-ins", stats.interruptions),
            ("output tokens", tick_usage.output_tokens)]
    for name, value in rows:
        print(f"  {name:34} {value:>12,}")
    print()
    for check, ok in checks.items():
        print(f"  {check:50} {'yes' if ok else 'NO'}")
    if not all(checks.values()):
        raise SystemExit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=10_000)
    run(ap.parse_args().ticks)


if __name__ == "__main__":
    main()
