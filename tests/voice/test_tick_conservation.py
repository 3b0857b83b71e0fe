"""Conservation at the engine level, no server: uneven caller chunks, streamed answers, barge-ins.

A synthetic server streams responses (random delta sizes, late deltas after a cut) while a caller gives
0 to 3 ticks of audio per tick.  Over every run: each tick is exactly one tick both ways; the caller's
samples go out in order, exactly once, padding only when nothing is carried; each item's heard audio is
a prefix of what the server sent for it (all of it when not cut); and agent audio received = played +
dropped + carried, sample for sample; usage adds up.
"""

from __future__ import annotations

import base64

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rtedge.voice._tick_engine import EngineStats, TickEngine
from rtedge.voice._tick_records import CallerAudio
from rtedge.protocol import events as ev
from rtedge.protocol.config import AudioFormat
from rtedge.voice.tick import TickResult, tick_format

N = 1600  # 200 ms at 8 kHz
TD = {"type": "server_vad", "prefix_padding_ms": 0, "interrupt_response": True}


def make(cls: type[ev.ServerEvent], **fields: object) -> ev.ServerEvent:
    """An event as the protocol core delivers it: typed fields, and the wire payload in ``raw``."""
    return cls(type=cls.TYPE, raw={"type": cls.TYPE, **fields}, **fields)


class FakeServer:
    """Responses streamed as mu-law deltas; a barge-in cuts the active one (late deltas may follow)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.sent: dict[str, bytearray] = {}  # item -> audio sent
        self.usage_out = 0
        self.active: tuple[str, str, int] | None = None  # response id, item id, deltas left
        self.count = 0

    def events(self, tick: int) -> list[ev.ServerEvent]:
        rng, out = self.rng, []
        if self.active is None and rng.random() < 0.3:
            self.count += 1
            rid, item = f"resp_{self.count}", f"item_{self.count}"
            self.active = (rid, item, int(rng.integers(1, 12)))
            self.sent[item] = bytearray()
            out.append(make(ev.ResponseCreated, response={"id": rid}))
        if self.active is not None and rng.random() < 0.05:  # the caller talks over the agent
            ms = 200 * tick + int(rng.integers(0, 200))
            out.append(make(ev.InputAudioBufferSpeechStarted, audio_start_ms=ms, item_id=f"user_{tick}"))
            rid, item, _ = self.active
            if rng.random() < 0.5:
                out.append(self._delta(rid, item))  # a late delta of the cut response
            out.append(self._done(rid, "cancelled"))
            self.active = None
            return out
        if self.active is not None:
            rid, item, left = self.active
            out.extend(self._delta(rid, item) for _ in range(int(rng.integers(0, 4))))
            if left <= 1:
                out.append(make(ev.ResponseOutputAudioDone, response_id=rid, item_id=item))
                out.append(self._done(rid, "completed"))
                self.active = None
            else:
                self.active = (rid, item, left - 1)
        return out

    def _delta(self, rid: str, item: str) -> ev.ServerEvent:
        data = self.rng.bytes(int(self.rng.integers(1, 2 * N)))
        self.sent[item] += data
        return make(ev.ResponseOutputAudioDelta, response_id=rid, item_id=item,
                    delta=base64.b64encode(data).decode())

    def _done(self, rid: str, status: str) -> ev.ServerEvent:
        self.usage_out += 7
        usage = {"input_tokens": 3, "output_tokens": 7, "total_tokens": 10}
        return make(ev.ResponseDone, response={"id": rid, "status": status, "usage": usage})


def drive(seed: int, ticks: int) -> tuple[EngineStats, list[TickResult]]:
    rng = np.random.default_rng(seed)
    engine = TickEngine(tick_format("ulaw8k"), 200, AudioFormat.pcmu(), session={"turn_detection": TD})
    caller = CallerAudio(N, np.dtype(np.uint8), 0x7F, max_samples=4 * N * ticks + N)
    server = FakeServer(rng)
    given, sent_caller = bytearray(), bytearray()
    heard: dict[str, bytearray] = {}
    results: list[TickResult] = []
    for k in range(ticks):
        size = int(rng.integers(0, 3 * N + 1)) if rng.random() < 0.5 else 0  # 0 to 3 ticks, often none
        chunk = np.frombuffer(rng.bytes(size), dtype=np.uint8)
        given += chunk.tobytes()
        before = caller.queued + len(chunk)
        caller.push(chunk)
        tick = caller.take()
        assert len(tick.audio) == N and tick.samples + tick.padded == N
        assert tick.samples == min(N, before) and tick.carried == before - tick.samples
        assert (tick.audio[tick.samples:] == 0x7F).all()
        sent_caller += tick.audio[:tick.samples].tobytes()
        engine.begin(k)
        for event in server.events(k):
            engine.feed(event)
        r = engine.end(tick)
        assert len(r.agent_audio) == N and r.agent_samples == sum(s.length for s in r.spans)
        assert (r.input_samples, r.input_padded, r.input_carried) == (tick.samples, tick.padded, tick.carried)
        for s in r.spans:
            heard.setdefault(s.item_id, bytearray()).extend(r.agent_audio[s.offset:s.offset + s.length])
        results.append(r)
    assert bytes(sent_caller) == bytes(given[:len(sent_caller)])  # the caller's samples, in order, once
    assert len(given) - len(sent_caller) == caller.queued
    stats = engine.stats
    carried = results[-1].carried_samples
    assert stats.received_samples == stats.played_samples + stats.dropped_samples + carried
    assert stats.played_samples == sum(r.agent_samples for r in results)
    assert stats.dropped_samples == sum(r.dropped_samples for r in results)
    for item, audio in heard.items():
        assert bytes(audio) == bytes(server.sent[item][:len(audio)])  # in order, never duplicated
    assert sum(len(a) for a in heard.values()) == stats.played_samples
    assert sum(len(a) for a in server.sent.values()) == stats.received_samples + stats.late_samples
    if not stats.interruptions and not stats.late_samples:  # nothing cut: all heard, but the carried tail
        assert sum(len(a) for a in server.sent.values()) - stats.played_samples == results[-1].carried_samples
    assert sum(r.usage_total.output_tokens for r in results) == server.usage_out
    return stats, results


def test_ten_thousand_ticks_of_uneven_caller_chunks_conserve_both_directions():
    stats, results = drive(seed=18, ticks=10_000)
    # the run went through every case: barge-ins with late deltas, caller audio carried and padded
    assert stats.interruptions > 50 and stats.late_samples > 0 and stats.dropped_samples > 0
    assert max(r.input_carried for r in results) > 3 * N and sum(r.input_padded > 0 for r in results) > 100
    assert max(r.carried_samples for r in results) > 3 * N


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ticks=st.integers(1, 250))
def test_conservation_holds_for_any_run(seed, ticks):
    drive(seed, ticks)
