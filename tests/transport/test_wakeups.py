"""Fewer wake-ups per audio frame: what rtedge's threads are no longer woken for, and what still wakes
them."""

from __future__ import annotations

import base64
import threading
import time

import pytest

import rtedge
from rtedge.app.launch import connect_options
from rtedge.app.settings_load import load_config
from rtedge.protocol import events as ev
from rtedge.testing import RealtimeServer
from rtedge.transport import _inbox, _workers, _ws
from rtedge.transport._workers import SendQueue, TransportStats, receive_until_end

from ..conftest import wait_until
from .test_inbox import LONG, _audio_turn


def test_events_no_callback_wants_never_reach_the_dispatcher_thread(monkeypatch):
    queued: list[str] = []
    original = _inbox.Dispatcher._enqueue

    def recording(self, item, wake, nbytes=0):  # type: ignore[no-untyped-def]
        if isinstance(item, tuple):
            queued.append(item[1].type)
        original(self, item, wake, nbytes)

    monkeypatch.setattr(_inbox.Dispatcher, "_enqueue", recording)
    with RealtimeServer(realtime=False, reply_text=LONG) as srv, rtedge.connect(url=srv.url) as client:
        deltas: list[int] = []
        client.on("response.output_audio.delta", lambda e: deltas.append(len(e.audio)))
        events = _audio_turn(client)
        n_deltas = sum(e.type == "response.output_audio.delta" for e in events)
        assert n_deltas > 10 and wait_until(lambda: len(deltas) == n_deltas)
        assert set(queued) == {"response.output_audio.delta"}  # nothing else was queued for rtedge-dispatch
        assert len(queued) == n_deltas
        # an event nobody wanted is still kept for a callback registered late (replayed once)
        late: list[str] = []
        client.on("response.done", lambda e: late.append(e.type))
        assert wait_until(lambda: late == ["response.done"])


def test_inbox_losses_are_counted_exactly_when_the_dispatcher_keeps_up():
    """Events nobody took (no callback, no reader) that left the inbox are each counted once."""
    with RealtimeServer(realtime=False, reply_text=LONG) as srv:
        client = rtedge.connect(url=srv.url, inbox_bytes=64 * 1024)
        done = client._log.seq
        client.send_text("Tell me a story.")
        # the receiver took in the whole answer (far over 64 KiB) before anyone reads: most of it is gone
        assert wait_until(lambda: client.usage.responses == 1, timeout=30)
        assert any(e.type == "response.done" for e in client.events(timeout=5))  # a reader, too late for most
        client.close()
        assert client.stats.inbox_dropped > 0
        assert client.stats.inbox_dropped <= client._log.seq - done
        assert not client._log._evicted_undecided  # every eviction was decided


def _delta(n: int) -> ev.ResponseOutputAudioDelta:
    return ev.ResponseOutputAudioDelta(type=ev.ResponseOutputAudioDelta.TYPE, raw={}, delta=f"AAA{n}")


def _running_dispatcher(stats: TransportStats,
                        **options: int) -> tuple[_inbox.Dispatcher, list[str], threading.Thread]:
    """A dispatcher on its own rtedge-dispatch thread, a callback collecting the deltas, and that thread."""
    dispatcher = _inbox.Dispatcher(stats, None, **options)
    got: list[str] = []
    dispatcher.add("response.output_audio.delta", lambda e: got.append(e.delta))
    thread = threading.Thread(target=dispatcher.run, args=(threading.Event(),), name="rtedge-dispatch")
    thread.start()
    return dispatcher, got, thread


def test_a_deferred_put_waits_for_flush_and_an_immediate_one_does_not():
    dispatcher, got, thread = _running_dispatcher(TransportStats())
    try:
        assert wait_until(lambda: dispatcher._waiting)
        dispatcher.put(_delta(1), wake=False)
        dispatcher.put(_delta(2), wake=False)
        assert not wait_until(lambda: got, timeout=0.3)  # queued, nobody woke the thread
        dispatcher.flush()
        assert wait_until(lambda: got == ["AAA1", "AAA2"])  # one wake-up, both, in order
        assert wait_until(lambda: dispatcher._waiting)
        dispatcher.put(_delta(3))
        assert wait_until(lambda: got[-1:] == ["AAA3"])
    finally:
        dispatcher.stop()
        thread.join(5)
    assert not thread.is_alive()


class _Burst:
    """A connection whose frames arrive in bursts: ``readable()`` is true while the current burst
    has frames left (as a socket with bytes buffered)."""

    def __init__(self, bursts: list[int]) -> None:
        self.frames = [(burst, i, i == n - 1) for burst, n in enumerate(bursts) for i in range(n)]
        self.log: list[str] = []
        self.pos = 0

    def readable(self) -> bool:
        return self.pos < len(self.frames) and self.pos > 0 and not self.frames[self.pos - 1][2]

    def recv(self) -> tuple[int, bytes]:
        if self.pos == len(self.frames):
            return _ws.CLOSE, b"\x03\xe8"
        burst, i, _ = self.frames[self.pos]
        self.pos += 1
        return _ws.TEXT, f"{burst}.{i}".encode()


def test_the_receiver_wakes_the_dispatcher_once_per_burst_and_at_least_every_flush_every():
    conn = _Burst([3, 1, _workers.FLUSH_EVERY * 2 + 5])
    receive_until_end(conn, lambda payload: conn.log.append(payload.decode()),  # type: ignore[arg-type]
                      TransportStats(), lambda: conn.log.append("wake"))
    batches = " ".join(conn.log).split("wake")  # the messages each wake-up handed on
    sizes = [len(b.split()) for b in batches]
    assert batches[0].split() == ["0.0", "0.1", "0.2"]  # the first burst: one wake-up, before waiting
    assert batches[1].split() == ["1.0"]
    assert sizes[2:5] == [_workers.FLUSH_EVERY, _workers.FLUSH_EVERY, 5]  # bounded by FLUSH_EVERY
    assert not any(sizes[5:]) and conn.log[-1] == "wake"  # and once more at the end


def _streaming(batch_ms: float = _workers.SEND_BATCH_MS, max_audio_ms: float = 2000) -> SendQueue:
    """A queue whose sender has just sent a frame (so it runs on its frame clock, slowed to 1 s here)."""
    q = SendQueue(TransportStats(), max_audio_ms=max_audio_ms, batch_ms=batch_ms)
    q.clock_margin_s = 1.0
    q.put("a0", 20.0)
    assert q.get(0.1)[0] == "a0"  # type: ignore[index]
    return q


def _getter(q: SendQueue) -> tuple[threading.Thread, list[float]]:
    took: list[float] = []
    t = threading.Thread(target=lambda: (q.get(5.0), took.append(time.monotonic())), name="test-getter")
    t.start()
    assert wait_until(lambda: q._sender_waiting)  # the getter waits (for the doorbell)
    return t, took


def test_streaming_audio_waits_for_the_frame_clock_and_control_events_do_not():
    q = _streaming()
    t, took = _getter(q)
    q.put("a1", 20.0)  # no wake-up: picked up on the next tick (1 s here)
    assert not wait_until(lambda: took, timeout=0.4)
    t.join(5)
    assert took
    t, took = _getter(q)
    q.put("commit", 0.0)  # a control event wakes the sender at once
    assert wait_until(lambda: took, timeout=0.5)
    t.join(5)


@pytest.mark.parametrize("batch_ms", [_workers.SEND_BATCH_MS, 60.0, 100.0])
def test_a_batch_of_audio_wakes_the_sender_at_once_and_less_does_not(batch_ms):
    q = _streaming(batch_ms)
    t, took = _getter(q)
    for i in range(int(batch_ms // 20) - 1):
        q.put(f"a{i + 1}", 20.0)
    assert not wait_until(lambda: took, timeout=0.3)  # 20 ms short of a batch: the sender sleeps on
    q.put("last", 20.0)  # a batch queued
    assert wait_until(lambda: took, timeout=0.5)
    t.join(5)


def test_a_batch_of_zero_wakes_the_sender_on_every_append():
    q = _streaming(batch_ms=0)
    for i in range(3):
        t, took = _getter(q)
        q.put(f"a{i + 1}", 20.0)
        assert wait_until(lambda: took, timeout=0.5)
        t.join(5)


def test_a_batch_is_at_most_half_the_queue_so_a_small_queue_never_drops_while_it_waits():
    """A batch larger than the queue was never reached: the frames were dropped (oldest first) while the
    sender waited for its clock."""
    q = _streaming(batch_ms=200, max_audio_ms=100)
    got: list[str] = []
    stop = threading.Event()

    def sender() -> None:
        while not stop.is_set():
            item = q.get(5.0)  # (waits for a ring, or the clock: over a second here)
            if isinstance(item, tuple) and item[1]:
                got.append(item[0])

    t = threading.Thread(target=sender, name="test-sender")
    t.start()
    try:
        for i in range(6):  # 25 ms frames, two at a time: the sender drains each pair before the next
            q.put(f"a{2 * i + 1}", 25.0)
            q.put(f"a{2 * i + 2}", 25.0)  # half the queue: a batch
            assert wait_until(lambda: not q._items, timeout=0.5)
    finally:
        stop.set()
        q.put("stop", 0.0)  # a control event wakes the sender at once
        t.join(5)
    assert q._stats.audio_dropped == 0 and got == [f"a{i}" for i in range(1, 13)]


@pytest.mark.parametrize("batch_ms, frame_ms, period", [
    (40.0, 20.0, 0.05),  # two frames fill a batch: 40 ms, and the margin
    (45.0, 20.0, 0.07),  # three: the clock fired at 55 ms, before the third frame came at 60
    (40.0, 100.0, None),  # a frame fills a batch: it wakes the sender itself, and no clock ticks between
    (40.0, 40.0, None),
    (0.0, 20.0, None),  # every append wakes the sender
])
def test_the_frame_clock_runs_only_for_frames_shorter_than_a_batch_and_outlasts_their_batch(
        batch_ms, frame_ms, period):
    q = SendQueue(TransportStats(), max_audio_ms=2000, batch_ms=batch_ms)
    q.put("a0", frame_ms)
    q.get(0.1)
    waits: list[float | None] = []
    wait = q._bell.wait
    q._bell.wait = lambda timeout=None: (waits.append(timeout), wait(0))[1]  # type: ignore[method-assign]
    assert q.get(5.0) is None
    assert waits == [pytest.approx(period if period is not None else 5.0)]


def test_waiting_for_audio_to_be_sent_wakes_the_sender_for_a_part_batch():
    """A part batch waited for the frame clock, also while a caller waited in wait_sent() for it: with 60 ms
    batches, a producer appending ten 20 ms frames and then waiting for them lost 70 ms on every round."""
    q = _streaming()
    t, took = _getter(q)
    q.put("a1", 20.0)  # a part batch: no wake-up (the clock is 1 s here)
    waited: list[bool] = []
    w = threading.Thread(target=lambda: waited.append(q.wait_below(0, 5.0)), name="test-wait-sent")
    w.start()
    assert wait_until(lambda: took, timeout=0.5)  # the waiter woke the sender
    t.join(5)
    w.join(5)
    assert waited == [True]


def test_the_first_append_after_a_pause_wakes_the_sender():
    q = SendQueue(TransportStats(), max_audio_ms=2000)
    q.clock_margin_s = 0.01
    q.put("a0", 20.0)
    q.get(0.1)
    assert q.get(5.0) is None  # a frame period with no audio (0.05 s here): off the clock
    q.clock_margin_s = 1.0
    t, took = _getter(q)
    q.put("a1", 20.0)
    assert wait_until(lambda: took, timeout=0.5)
    t.join(5)


def test_a_producer_blocked_for_room_is_woken_once_the_queue_drained_to_half():
    q = SendQueue(TransportStats(), max_audio_ms=200)
    for i in range(10):
        q.put(f"a{i}", 20.0, drop=False)
    done = threading.Event()
    t = threading.Thread(target=lambda: (q.wait_room(20.0, 5.0), done.set()), name="test-producer")
    t.start()
    assert wait_until(lambda: q._cond._waiters)  # type: ignore[attr-defined]
    q.get(0.1)  # 180 ms queued: there is room, but the producer is not woken per frame
    assert not done.wait(0.3)
    for _ in range(4):
        q.get(0.1)  # 100 ms queued: half the limit
    assert done.wait(5)
    t.join(5)


def test_what_was_queued_together_is_taken_in_one_batch_up_to_a_call():
    q = SendQueue(TransportStats(), max_audio_ms=2000)
    for i in range(3):
        q.put(f"a{i}", 20.0)
    q.put("commit", 0.0)
    call = q.put_call(lambda: None)
    q.put("a3", 20.0)
    batch = q.get_batch(0.1)
    assert [text for text, _, _ in batch] == ["a0", "a1", "a2", "commit"]  # type: ignore[union-attr]
    assert q.get_batch(0.1)[0] is call  # type: ignore[index]  # a call queued in order runs alone
    assert [text for text, _, _ in q.get_batch(0.1)] == ["a3"]  # type: ignore[union-attr]
    assert q._audio_ms == 0.0
    for i in range(_workers.SEND_BATCH + 2):
        q.put(f"b{i}", 20.0)
    assert len(q.get_batch(0.1)) == _workers.SEND_BATCH  # type: ignore[arg-type]  # bounded
    assert len(q.get_batch(0.1)) == 2  # type: ignore[arg-type]


def test_the_sender_writes_a_batch_in_one_write_and_frames_parse_in_order():
    """One socket write for what was queued together; the server reads every frame, in order."""
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url) as client:
        writes: list[int] = []
        conn = client._conn
        assert conn is not None
        original = conn._ws._send

        def counting(data):  # type: ignore[no-untyped-def]
            writes.append(len(data))
            return original(data)

        conn._ws._send = counting  # type: ignore[method-assign]
        frames = [bytes([i]) * 960 for i in range(5)]
        with client._sendq._cond:  # (reentrant) the sender cannot take anything until all five are queued
            for frame in frames:
                client.append_audio(frame)
        assert client.wait_sent(0.0, timeout=5)
        assert wait_until(lambda: sum(e["type"] == "input_audio_buffer.append" for e in srv.received) >= 5)
        appended = [e["audio"] for e in srv.received if e["type"] == "input_audio_buffer.append"][-5:]
        assert appended == [base64.b64encode(frame).decode() for frame in frames]
        assert len(writes) == 1


@pytest.fixture(params=["eventfd", "semaphore"])
def doorbell(request, monkeypatch):
    if request.param == "semaphore":
        monkeypatch.delattr(_workers.os, "eventfd", raising=False)
    elif not hasattr(_workers.os, "eventfd"):
        pytest.skip("no eventfd on this platform")
    return _workers.Doorbell()


def test_a_doorbell_wakes_its_waiter_once_per_ring(doorbell):
    assert doorbell.wait(0.05) is False  # nobody rang
    doorbell.ring()
    assert doorbell.wait(0.05) is True  # a ring before the wait is kept
    assert doorbell.wait(0.05) is False  # and consumed
    woke: list[bool] = []
    t = threading.Thread(target=lambda: woke.append(doorbell.wait(None)), name="test-bell-waiter")
    t.start()
    assert not wait_until(lambda: woke, timeout=0.2)
    doorbell.ring()
    t.join(5)
    assert woke == [True]
    doorbell.close()  # the waiter is done: its file descriptor goes, and a late ring does nothing
    doorbell.ring()
    doorbell.close()


def test_the_sender_sleeps_on_its_doorbell_and_a_control_event_rings_it():
    q = SendQueue(TransportStats(), max_audio_ms=2000)
    rings: list[int] = []
    original = q._bell.ring
    q._bell.ring = lambda: (rings.append(1), original())  # type: ignore[method-assign]
    t, took = _getter(q)
    q.put("commit", 0.0)
    q.put("commit2", 0.0)  # the sender is no longer waiting: no second ring
    assert wait_until(lambda: took, timeout=0.5)
    t.join(5)
    assert rings == [1] and not q._sender_waiting


def test_the_byte_bound_sheds_only_behind_a_busy_dispatcher_and_never_for_a_marker():
    """Unflushed events (the receiver batches up to FLUSH_EVERY) are no backlog: they were shed while
    rtedge-dispatch sat idle.  And a zero-byte marker (stop, a replay's wake) shed an event already over the
    bound, breaking 'events queued before stop() are still delivered'."""
    stats = TransportStats()
    dispatcher, got, thread = _running_dispatcher(stats, max_bytes=65536)
    try:
        assert wait_until(lambda: dispatcher._waiting)
        for i in range(40):  # 40 x 4 KB unflushed while the dispatcher waits: nothing is dropped
            dispatcher.put(_delta(i), wake=False, nbytes=4096)
        dispatcher.flush()
        assert wait_until(lambda: len(got) == 40) and stats.callback_events_dropped == 0
    finally:
        dispatcher.stop()
        thread.join(5)
    idle = _inbox.Dispatcher(stats, None, max_bytes=65536)  # not running: as busy as can be
    idle.add("response.output_audio.delta", lambda e: got.append(e.delta))
    idle.put(_delta(99), nbytes=100_000)  # one event over the bound on its own: kept (the newest is)
    idle.stop()  # a marker: sheds nothing
    idle.run(threading.Event())  # delivers what was queued, then returns at the stop marker
    assert got[-1] == "AAA99" and stats.callback_events_dropped == 0


def test_a_beta_name_matches_both_names():
    """A dialect that renames beta events (DashScope) delivers the GA name; one that does not passes the beta
    name through: a callback registered under the beta name gets both, each event once."""
    dispatcher = _inbox.Dispatcher(TransportStats(), None)
    got: list[str] = []
    dispatcher.add("response.audio.delta", lambda e: got.append(e.type))
    for name in ("response.output_audio.delta", "response.audio.delta", "response.output_text.delta"):
        dispatcher.put(ev.UnknownServerEvent(type=name, raw={}))
    dispatcher.stop()
    dispatcher.run(threading.Event())
    assert got == ["response.output_audio.delta", "response.audio.delta"]


def test_events_waiting_for_a_slow_callback_stay_within_about_twice_the_byte_bound():
    """The documented memory bound: at most ``max_bytes`` (plus the newest event) queued, and the batch
    rtedge-dispatch holds was taken under that same bound, so about twice ``max_bytes`` in all; every
    event is either delivered or counted as dropped."""
    stats, bound, size, total = TransportStats(), 65536, 4096, 3000
    dispatcher = _inbox.Dispatcher(stats, None, max_bytes=bound)
    batches: list[int] = []
    take = dispatcher._take

    def measured_take():
        batch = take()
        batches.append(sum(item[2] for item in batch if isinstance(item, tuple)))
        return batch

    dispatcher._take = measured_take  # type: ignore[method-assign]
    turns = threading.Semaphore(0)  # the callback handles one event per 50 the producer queues
    delivered: list[str] = []
    dispatcher.add("response.output_audio.delta",
                   lambda e: (turns.acquire(timeout=10), delivered.append(e.delta)))
    thread = threading.Thread(target=dispatcher.run, args=(threading.Event(),), name="rtedge-dispatch")
    thread.start()
    queued = []
    try:
        for i in range(total):
            dispatcher.put(_delta(i), nbytes=size)
            queued.append(dispatcher._queued_bytes)
            if i % 50 == 0:
                turns.release()
    finally:
        turns.release(total)
        dispatcher.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert stats.callback_events_dropped > 0  # the bound was reached
    assert max(queued) <= bound + size and max(batches) <= bound + size
    assert len(delivered) + stats.callback_events_dropped == total
    assert delivered[-1] == f"AAA{total - 1}"  # the newest are kept, the oldest dropped


def test_a_late_callback_gets_the_last_few_events_of_its_type_and_no_audio():
    """The replay to a late callback is bounded as written: the last REPLAY_PER_TYPE events per type, for
    at most REPLAY_TYPES types (the oldest types forgotten first), and never audio deltas."""
    dispatcher = _inbox.Dispatcher(TransportStats(), None)
    for i in range(10):
        dispatcher.put(ev.UnknownServerEvent(type="x.first", raw={"i": i}))
    for t in range(_inbox.REPLAY_TYPES + 5):  # pushes x.first and the oldest of these out
        dispatcher.put(ev.UnknownServerEvent(type=f"x.type{t}", raw={"i": t}))
    for i in range(10):
        dispatcher.put(ev.UnknownServerEvent(type="x.last", raw={"i": i}))
        dispatcher.put(_delta(i))
    got: dict[str, list[int | str]] = {}
    for name in ("x.first", "x.type0", "x.type10", "x.last"):
        dispatcher.add(name, lambda e, name=name: got.setdefault(name, []).append(e.raw["i"]))
    dispatcher.add("response.output_audio.delta", lambda e: got.setdefault("audio", []).append(e.delta))
    dispatcher.stop()
    dispatcher.run(threading.Event())
    kept = list(range(10))[-_inbox.REPLAY_PER_TYPE:]
    assert _inbox.REPLAY_PER_TYPE < 10 and _inbox.REPLAY_TYPES > 12
    assert got == {"x.type10": [10], "x.last": kept}


def test_audio_discarded_when_the_link_ends_is_counted():
    """The receiver ends the link by discarding what is queued: on a slow machine that came before the
    sender could fail (and count) the audio queued when close() aborted a stalled link, and it was lost
    uncounted."""
    stats = TransportStats()
    q = SendQueue(stats, max_audio_ms=2000)
    for _ in range(10):
        q.put("a", 20.0)
    q.put("commit", 0.0)
    q.close(discard=True)
    assert stats.audio_dropped_outage_ms == 200.0 and q.get(0.1) is _workers._CLOSE


def test_send_batch_ms_reaches_the_send_queue_from_connect_and_from_the_settings():
    options = connect_options(load_config(None, {}, {"provider.send_batch_ms": ("0", "--set")}), None)
    assert options["send_batch_ms"] == 0
    with RealtimeServer(realtime=False) as server:
        with rtedge.connect(url=server.url, send_batch_ms=options["send_batch_ms"]) as c:
            assert c._sendq.batch_ms == 0
        with rtedge.connect(url=server.url) as c:
            assert c._sendq.batch_ms == _workers.SEND_BATCH_MS
