"""The three loops of a client, each on its own named thread.

Guarantees
----------
* ``rtedge-sender`` is the only thread that writes to the socket or closes
  it: queued events in order (control events never dropped), pings and
  pongs, close frames, the HTTP upgrade of the connections it opens
  (connect, reconnect), and the final shutdown.  (A rollover's next
  connection is upgraded by ``rtedge-rollover`` before any frame goes on it,
  then handed over: see ``_rollover``.)  While audio streams it wakes per
  ``send_batch_ms`` of audio appended (or on a frame clock, :data:`CLOCK_MARGIN_S`
  longer), not per append; control events wake it at once.  What it finds queued
  together (up to :data:`SEND_BATCH` messages, never past a call) goes out in one socket write.  Other threads *ask* it through
  :meth:`SendQueue.call` / :meth:`SendQueue.submit` (run ahead of queued
  items, even while the queue is paused).  It keeps the link alive: a ping
  after ``ping_interval`` seconds with nothing received (sending does not
  count), and the link declared dead (socket aborted) when nothing at all
  has been received for ``ping_interval + ping_timeout`` seconds.  A write
  the server takes no byte of for ``ping_timeout`` fails (``SO_SNDTIMEO``):
  blocked in it, the sender could not keep the link alive.
* ``rtedge-receiver`` is the only thread that reads frames once the link is
  up.  It never writes and never runs user code: per message it updates the
  sans-IO session under the client's lock, hands audio to the internal
  audio hooks (which must not block), and puts events on the dispatch queue
  and the event log.
* ``rtedge-dispatch`` is the only thread that runs user callbacks, in the
  order events arrived (see :mod:`._inbox`); the receiver wakes it once per
  batch of messages that arrived together, not per event, and never for an
  event no callback wants.  A callback that raises is
  logged and passed to ``on_error``; the loop goes on.  A slow callback
  delays only later callbacks, never the receiver, the sender or the
  keepalive.

All three exit on their own when the connection ends or the client closes;
``Client.close()`` joins them with a deadline.

Owns: the sender's and receiver's loops, the send queue and the transport stats.  Must not: run user
callbacks.
"""

from __future__ import annotations

import logging
import math
import os
import select
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from ..errors import ConnectionClosed, DeadlineExceeded, RemoteProtocolError
from ..protocol import events as ev
from . import _ws

log = logging.getLogger("rtedge")

#: the sender's periodic duties (``on_tick``) run after a wait or a call, and between sends at most this often
DUTY_INTERVAL_S = 0.05
#: the receiver wakes the dispatcher at least once per this many messages (``receive_until_end``)
FLUSH_EVERY = 32

BENIGN_ERROR_CODES = frozenset({"response_cancel_not_active", "conversation_already_has_active_response"})


@attrs.define(eq=False)
class TransportStats:
    """Transport counters: read them from any thread.  Each is written by one thread, or only under
    the one lock named beside it (so no increment is lost):

    * ``rtedge-receiver``: ``messages_received``, ``bytes_received``, ``malformed_messages``,
      ``reconnects``, ``recycles``, ``last_receive``, ``receive_busy_since`` (during ``connect()``: the
      caller).
    * ``rtedge-sender``: ``messages_sent``, ``bytes_sent``, ``pings_sent``, ``sender_tick``.
    * ``rtedge-dispatch``: ``callback_errors``, ``dispatch_busy_since``.
    * under the send queue's condition (callers appending, the receiver pausing, the sender):
      ``audio_dropped``, ``audio_dropped_ms``, ``audio_dropped_outage_ms``.
    * under the inbox's condition: ``inbox_dropped``.
    * under the dispatcher's queue lock (the receiver, mostly): ``callback_events_dropped``.
    * under the stats' own lock (:meth:`count_internal_error`): ``internal_errors``.
    """

    messages_received: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    #: audio dropped because the link was down (never replayed stale), in ms
    audio_dropped_outage_ms: float = 0.0
    #: new connections after a lost one (a planned recycle is counted in ``recycles`` instead)
    reconnects: int = 0
    #: sessions recycled break-before-make at ``max_session_seconds`` (a reconnect that nothing forced; one
    #: whose first attempt failed counts in ``reconnects``: something did go wrong)
    recycles: int = 0
    #: sessions replaced make-before-break before the provider's limit (``rtedge.session_rollover``)
    rollovers: int = 0
    #: rollovers that could not open or seed the new session (the old one kept serving)
    rollover_failures: int = 0
    #: sessions the provider ended at its limit (``session_expired``) anyway
    sessions_expired: int = 0
    #: audio appends dropped because the send queue held more than its limit (overflow="drop_oldest")
    audio_dropped: int = 0
    audio_dropped_ms: float = 0.0
    #: events that left the inbox before any consumer (callback, internal sink, reader) got them
    inbox_dropped: int = 0
    #: messages that were not valid JSON events
    malformed_messages: int = 0
    callback_errors: int = 0
    #: events dropped unseen by their callbacks because more than ``dispatch_bytes`` waited for them (a
    #: callback blocked while events kept arriving)
    callback_events_dropped: int = 0
    #: server messages or internal hooks whose handling raised inside rtedge (a bug: logged, skipped)
    internal_errors: int = 0
    pings_sent: int = 0
    last_receive: float = attrs.field(factory=time.monotonic)
    # Heartbeats, for a service watchdog (monotonic seconds; read them, only the workers write them).
    #: the sender loop's last iteration (it iterates at least once a second while the client is open)
    sender_tick: float = attrs.field(factory=time.monotonic)
    #: when the receiver began handling the current message; 0.0 while it waits for one
    receive_busy_since: float = 0.0
    #: when the dispatcher began running callbacks for the current event; 0.0 while it waits for one
    dispatch_busy_since: float = 0.0
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    def count_internal_error(self) -> None:
        with self._lock:
            self.internal_errors += 1


class Doorbell:
    """Wakes one waiting thread, once per :meth:`wait` (the caller rings it only when that thread waits, or
    is about to: a flag under the caller's lock, cleared by whoever rings).

    On Linux an eventfd: the ring is a ``write(2)`` made with the GIL released, so the woken thread takes
    the GIL at once, instead of waking to find the ringer still holding it and sleeping again until it lets
    go (a Condition's notify: two wake-ups per hand-off, and the ringer often preempted).  Elsewhere a
    semaphore."""

    def __init__(self) -> None:
        self._fd = -1
        self._sem: threading.Semaphore | None = None
        self._poll: select.poll | None = None
        self._lock = threading.Lock()  # a ring and close() never overlap (no write to a closed fd)
        self._closed = False
        if hasattr(os, "eventfd"):
            self._fd = os.eventfd(0, os.EFD_CLOEXEC)
            self._release = weakref.finalize(self, os.close, self._fd)  # at the latest when collected
        else:
            self._sem = threading.Semaphore(0)

    def ring(self) -> None:
        if self._sem is None:
            with self._lock:
                if not self._closed:
                    os.eventfd_write(self._fd, 1)
        else:
            self._sem.release()

    def close(self) -> None:
        """Release the eventfd; the waiting thread is done for good (a later ring does nothing)."""
        if self._sem is None:
            with self._lock:
                self._closed = True
                self._release()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a ring (True), or until ``timeout`` passes (False).  A ring that comes after a timeout
        is kept for the next wait (a spurious wake-up for it: the waiter checks its state anyway)."""
        if self._sem is not None:
            return self._sem.acquire(timeout=timeout)
        if timeout is not None:
            if self._poll is None:
                self._poll = select.poll()
                self._poll.register(self._fd, select.POLLIN)
            if not self._poll.poll(max(0.0, timeout) * 1000):
                return False
        os.eventfd_read(self._fd)
        return True


_CLOSE = object()

#: While audio streams, appends do not wake ``rtedge-sender`` one by one: the append that brings the
#: queued audio to ``send_batch_ms`` (:data:`SEND_BATCH_MS` by default) does (control events always do), and
#: the sender sends everything queued.  So 20 ms frames go out in pairs: one wake-up per two appends
#: instead of one per append, the first frame waiting one frame period for the second.  A frame clock picks
#: up a frame no other follows (the last of a stream): it runs :data:`CLOCK_MARGIN_S` longer than the
#: frames filling a batch take to come (40 ms for 20 ms frames, 60 ms for a batch of 45), so that, while
#: frames keep coming, the batch wakes the sender before the clock does.  Frames of a batch or more each
#: wake the sender (no clock), as every append does with ``send_batch_ms=0``.  (60 ms batches, one wake-up
#: per three 20 ms frames, made no difference to the paced CPU that ``benchmarks/client_overhead.py`` could
#: measure, and cost 10 ms more latency on average.)
SEND_BATCH_MS = 40.0
#: how much longer than a batch's frames take to come the frame clock waits (s)
CLOCK_MARGIN_S = 0.01

#: the most queued messages one wake-up of ``rtedge-sender`` writes in one go (one socket write)
SEND_BATCH = 16

#: one queued send: wire text, milliseconds of audio (0 for control), the event (for replay); or, in
#: place of the text, a :class:`SenderCall` to run in queue order (:meth:`SendQueue.put_call`)
Item = tuple["str | SenderCall", float, "ev.ClientEvent | None"]


class SenderCall:
    """A function another thread asked ``rtedge-sender`` to run (a socket operation)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # handed to the caller, who re-raises it on its own thread
            self.error = exc
        finally:
            self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


class SendQueue:
    """FIFO of wire texts for the sender.  Thread-safe.

    Audio is bounded by duration.  A producer that must not lose audio waits for room
    (:meth:`has_room`, :meth:`wait_room`, ``put(drop=False)``); a live one puts anyway and, past
    ``max_audio_ms``, the oldest audio is dropped, counted, and logged once per episode (an episode
    ends when the queue drains to half its limit).  Control events are never dropped.  While the link is down the
    queue is *paused*: :meth:`pause` drops the queued audio (counted, never replayed stale) and hands
    back the queued control events so they can be re-sent, in order, on the next connection.
    """

    def __init__(self, stats: TransportStats, max_audio_ms: float, batch_ms: float = SEND_BATCH_MS) -> None:
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()  # guards _items, _audio_ms, _closed, _paused
        self._audio_ms = 0.0
        self._closed = False
        self._paused = False
        self._dropping_since: float | None = None  # stats.audio_dropped_ms when this episode began
        self._orphans: list[ev.ClientEvent] = []
        self._calls: deque[SenderCall] = deque()
        self._retired = False  # the sender has exited: calls fail at once
        #: audio is streaming in frames shorter than a batch: appends do not wake the sender until a batch
        #: is queued, it wakes on the frame clock instead (_clocked and _frame_ms: the sender's own)
        self._clocked = False
        self._frame_ms = 0.0  # the last audio item sent
        self._stats = stats
        self.max_audio_ms = max_audio_ms
        #: queued audio (ms) at which an append wakes the sender while it runs on the frame clock (at most
        #: half the queue's limit, so that a small queue never drops audio waiting for its batch)
        self.batch_ms = min(batch_ms, max_audio_ms / 2)
        self.clock_margin_s = CLOCK_MARGIN_S
        #: the sender thread's ident (calls made on it run inline)
        self.sender_ident: int | None = None
        #: the sender waits for work on this doorbell (not on _cond, which room waiters use), so that an
        #: append wakes it without holding the GIL; rung by whoever clears _sender_waiting
        self._bell = Doorbell()
        self._sender_waiting = False

    def _claim_ring(self) -> bool:
        """Under ``_cond``: True when the sender waits for the doorbell and the caller must ring it (once
        out of the lock, so that the woken sender does not wait for it)."""
        waiting, self._sender_waiting = self._sender_waiting, False
        return waiting

    # ------------------------------------------------------------------------------------------ calls
    def submit(self, fn: Callable[[], Any]) -> SenderCall:
        """Ask the sender to run ``fn`` ahead of queued items (also while paused or closing).

        Raises:
            ConnectionClosed: the sender has exited.
        """
        call = SenderCall(fn)
        if threading.get_ident() == self.sender_ident:
            call.run()
            return call
        with self._cond:
            if self._retired:
                raise ConnectionClosed("the sender has stopped")
            self._calls.append(call)
            self._cond.notify_all()  # wait_paused_or_closed
            ring = self._claim_ring()
        if ring:
            self._bell.ring()
        return call

    def call(self, fn: Callable[[], Any], timeout: float | None) -> Any:
        """Run ``fn`` on the sender and return its result (or raise its exception) here.

        Raises:
            ConnectionClosed: the sender has exited (before or while the call waited).
            DeadlineExceeded: the sender did not get to it within ``timeout`` (it may still run it).
        """
        call = self.submit(fn)
        if not call.done.wait(timeout):
            raise DeadlineExceeded("the sender did not run the call in time")
        if call.error is not None:
            raise call.error
        return call.result

    def retire(self) -> None:
        """The sender is exiting: calls waiting (and any later) fail with ConnectionClosed."""
        self._bell.close()  # the sender waits on it no more
        with self._cond:
            self._retired = True
            calls, self._calls = list(self._calls), deque()
        for call in calls:
            call.fail(ConnectionClosed("the sender has stopped"))

    def put_call(self, fn: Callable[[], Any]) -> SenderCall:
        """Queue ``fn`` for the sender *in order*: it runs after every item queued before it and
        before every item queued after it (a rollover switches the send path this way, at a frame
        boundary).  Dropped, not run, when the queue is paused first (the link was lost).

        Raises:
            ConnectionClosed: the queue is closed.
        """
        call = SenderCall(fn)
        with self._cond:
            if self._closed:
                raise ConnectionClosed("the client is closing; nothing more can be sent")
            self._items.append((call, 0.0, None))
            ring = self._claim_ring()
        if ring:
            self._bell.ring()
        return call

    def put(self, text: str, audio_ms: float = 0.0, event: ev.ClientEvent | None = None,
            drop: bool = True) -> None:
        """Queue one item.  With ``drop`` (audio only), past ``max_audio_ms`` the oldest audio goes."""
        with self._cond:
            if self._closed:
                raise ConnectionClosed("the client is closing; nothing more can be sent")
            ring = self._push((text, audio_ms, event), drop)
        if ring:
            self._bell.ring()

    def put_audio(self, audio: bytes, audio_ms: float, encode: Callable[[bytes], str]) -> bool:
        """Queue audio that must not be lost, if it fits now (:meth:`has_room`): its text is ``encode(audio)``,
        called only then, under the queue's lock (one round trip per append).  False: nothing was queued."""
        with self._cond:
            if not self._room(audio_ms):
                return False
            ring = self._push((encode(audio), audio_ms, None), drop=False)
        if ring:
            self._bell.ring()
        return True

    def _push(self, item: Item, drop: bool) -> bool:
        """Under ``_cond``: append ``item``; True when the caller must ring the sender (out of the lock)."""
        audio_ms = item[1]
        self._items.append(item)
        self._audio_ms += audio_ms
        if drop:
            while audio_ms and self._audio_ms > self.max_audio_ms + 1e-6 and self._drop_oldest_audio():
                pass
        # streaming audio waits for the sender's frame clock, unless a backlog builds up
        if not audio_ms or not self._clocked or self._audio_ms >= self.batch_ms - 1e-6:
            return self._claim_ring()
        return False

    def has_room(self, audio_ms: float) -> bool:
        """True when ``audio_ms`` more fits under the limit (any size fits an audio-free queue)."""
        with self._cond:
            return self._room(audio_ms)

    def _room(self, audio_ms: float) -> bool:
        return not self._paused and not self._closed and (
            self._audio_ms + audio_ms <= self.max_audio_ms + 1e-6 or self._audio_ms <= 1e-6)

    def wait_room(self, audio_ms: float, timeout: float | None) -> None:
        """Wait until :meth:`has_room`, the queue closes, or ``timeout`` passes.  (Waiters are woken
        when the queue has drained to half its limit: ``audio_ms`` up to half the limit returns then.)"""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (not self._paused and (
                self._audio_ms + audio_ms <= self.max_audio_ms + 1e-6 or self._audio_ms <= 1e-6)), timeout)

    def _drop_oldest_audio(self) -> bool:
        for i, (_, ms, _) in enumerate(self._items):
            if ms and i < len(self._items) - 1:  # never the audio just put
                del self._items[i]
                self._audio_ms -= ms
                if self._dropping_since is None:
                    self._dropping_since = self._stats.audio_dropped_ms
                    log.warning("send queue holds over %.0f ms of audio: dropping the oldest (overflow="
                                "'drop_oldest'; counted in stats.audio_dropped)", self.max_audio_ms)
                self._stats.audio_dropped += 1
                self._stats.audio_dropped_ms += ms
                return True
        return False

    def wait_below(self, audio_ms: float, timeout: float | None) -> bool:
        """Wait until at most ``audio_ms`` of audio is queued (True) or ``timeout`` passes (False).
        Checked when the queue has drained to half its limit, and on every frame sent from then on.  The
        sender is woken for it (a part batch is not held for the frame clock while someone waits)."""
        with self._cond:
            ring = self._audio_ms > audio_ms + 1e-6 and self._claim_ring()
        if ring:
            self._bell.ring()
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._items or self._audio_ms <= audio_ms + 1e-6 or self._closed, timeout)

    def get(self, timeout: float) -> Item | SenderCall | object | None:
        """The next call or item, ``_CLOSE`` once closed and drained, or None on timeout or while paused."""
        return self._get(timeout, 1)

    def get_batch(self, timeout: float) -> list[Item] | Item | SenderCall | object | None:
        """As :meth:`get`, but a text item comes with every text item queued right behind it (up to
        :data:`SEND_BATCH`, none past a call), as a list, in the same lock round trip: what one wake-up of
        the sender writes at once."""
        return self._get(timeout, SEND_BATCH)

    def _get(self, timeout: float, most: int) -> list[Item] | Item | SenderCall | object | None:
        with self._cond:
            idle = not self._calls and (self._paused or not self._items) and not self._closed
            self._sender_waiting = idle
        if idle:
            self._bell.wait(min(timeout, self._clock_period()) if self._clocked else timeout)
        with self._cond:
            self._sender_waiting = False
            if self._calls:
                return self._calls.popleft()
            items = self._items
            if items and not self._paused:
                item = self._pop()
                if most == 1 or type(item[0]) is not str:
                    return item
                batch = [item]
                while items and len(batch) < most and type(items[0][0]) is str:
                    batch.append(self._pop())
                return batch
            self._clocked = False  # a frame period without audio: the next append wakes the sender
            return _CLOSE if self._closed else None

    def _clock_period(self) -> float:
        """Seconds the frames that fill a batch take to come (of the length last sent), and the margin."""
        frames = math.ceil(self.batch_ms / self._frame_ms - 1e-9)
        return frames * self._frame_ms / 1000 + self.clock_margin_s

    def _pop(self) -> Item:
        """Under ``_cond``: the head item, accounted out."""
        item = self._items.popleft()
        self._clocked = 0 < item[1] < self.batch_ms  # (never with batch_ms 0)
        if item[1]:
            self._frame_ms = item[1]
        # an empty queue holds no audio: reset, so float rounding never accumulates
        self._audio_ms = self._audio_ms - item[1] if self._items else 0.0
        if item[1] and (not self._items or self._audio_ms <= self.max_audio_ms / 2):
            # wake wait_below() and wait_room() once the queue has drained to half its limit,
            # not per frame: a producer blocked for room refills it in one go
            self._cond.notify_all()
            if self._dropping_since is not None and self._audio_ms <= self.max_audio_ms / 2:
                log.warning("send queue drained: %.0f ms of audio were dropped in this episode",
                            self._stats.audio_dropped_ms - self._dropping_since)
                self._dropping_since = None
        return item

    def unget(self, item: Item) -> None:
        """Give back an item the sender could not send: at the head, or (when the queue was paused
        meanwhile) to the orphans (control) or the outage count (audio)."""
        with self._cond:
            if self._paused:
                if item[1]:
                    self._stats.audio_dropped_outage_ms += item[1]
                elif item[2] is not None:
                    self._orphans.append(item[2])
                return
            self._items.appendleft(item)
            self._audio_ms += item[1]

    def count_outage(self, audio_ms: float) -> None:
        """Audio a caller appended while the link was down: dropped, counted here (under the lock)."""
        with self._cond:
            self._stats.audio_dropped_outage_ms += audio_ms

    def take_orphans(self) -> list[ev.ClientEvent]:
        """Control events given back while paused (to be replayed after :meth:`pause`'s)."""
        with self._cond:
            orphans, self._orphans = self._orphans, []
            return orphans

    def pause(self) -> list[ev.ClientEvent]:
        """Stop handing items out; drop queued audio (counted) and return the queued control events."""
        with self._cond:
            self._paused = True
            control = [event for _, ms, event in self._items if not ms and event is not None]
            for text, ms, _ in self._items:
                if ms:
                    self._stats.audio_dropped_outage_ms += ms
                elif isinstance(text, SenderCall):
                    text.fail(ConnectionClosed("the link was lost before the queued call ran"))
            self._items.clear()
            self._audio_ms = 0.0
            self._cond.notify_all()
            ring = self._claim_ring()
        if ring:
            self._bell.ring()
        return control

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()
            ring = self._claim_ring()
        if ring:
            self._bell.ring()

    @property
    def paused(self) -> bool:
        return self._paused

    def wait_paused_or_closed(self, timeout: float) -> None:
        """After a failed send: wait until the receiver paused the queue (or it closed)."""
        with self._cond:
            self._cond.wait_for(lambda: self._paused or self._closed or bool(self._calls), timeout)

    def close(self, discard: bool = False) -> None:
        """No more puts; the sender drains what is queued (or nothing, with ``discard``: the link is over;
        the audio discarded is counted in ``audio_dropped_outage_ms``), then stops."""
        with self._cond:
            self._closed = True
            self._paused = False
            if discard:
                for text, ms, _ in self._items:
                    self._stats.audio_dropped_outage_ms += ms
                    if isinstance(text, SenderCall):
                        text.fail(ConnectionClosed("the client closed before the queued call ran"))
                self._items.clear()
                self._audio_ms = 0.0
            self._cond.notify_all()
            ring = self._claim_ring()
        if ring:
            self._bell.ring()

    @property
    def closed(self) -> bool:
        return self._closed


def sender_loop(current: Callable[[], _ws.WsConnection | None], sendq: SendQueue, stats: TransportStats, *,
                ping_interval: float, ping_timeout: float, on_tick: Callable[[], None],
                on_exit: Callable[[], None],
                retired: Callable[[_ws.WsConnection], bool] = lambda conn: False) -> None:
    """Body of ``rtedge-sender``: run calls, send queued items on the current connection, keep it alive.

    A send that fails puts the item back and aborts the connection, so that the receiver notices
    at once and the queue is paused for the outage; the loop itself only ends when the queue closes:
    then it sends the close frame, retires the queue (calls fail from then on) and runs ``on_exit``
    (which shuts down every connection this thread opened).  A send that fails on a connection for
    which ``retired(conn)`` is true (an old session draining after a rollover) is dropped instead:
    that connection's loss is not the link's.
    """
    sendq.sender_ident = threading.get_ident()
    try:
        _send_until_closed(current, sendq, stats, ping_interval, ping_timeout, on_tick, retired)
    finally:
        sendq.retire()
        on_exit()


def _send_until_closed(current: Callable[[], _ws.WsConnection | None], sendq: SendQueue,
                       stats: TransportStats, ping_interval: float, ping_timeout: float,
                       on_tick: Callable[[], None],
                       retired: Callable[[_ws.WsConnection], bool] = lambda conn: False) -> None:
    last_ping = last_duty = 0.0
    tick = min(ping_interval, ping_timeout, 1.0) if ping_interval > 0 else 1.0
    while True:
        stats.sender_tick = time.monotonic()
        wait = tick
        if ping_interval > 0 and not sendq.paused:  # wake when a ping or the verdict is due
            ping_at = max(stats.last_receive + ping_interval, last_ping + min(ping_interval, ping_timeout))
            due = min(ping_at, stats.last_receive + ping_interval + ping_timeout)
            wait = min(tick, max(0.005, due - time.monotonic() + 0.005))
        item = sendq.get_batch(wait)
        if isinstance(item, tuple):
            item = item[0]  # a call queued in order
        if isinstance(item, SenderCall):
            item.run()  # then the periodic duties as after a timeout: a stream of pongs must not starve them
            item = None
        conn = current()
        if item is _CLOSE:
            if conn is not None:
                conn.send_close(1000)
            return
        now = time.monotonic()
        try:
            if isinstance(item, list) and conn is not None:
                texts = [text for text, _, _ in item if isinstance(text, str)]  # (all are: see get_batch)
                conn.send_texts(texts)  # what was queued together goes out in one write
                stats.messages_sent += len(texts)
                stats.bytes_sent += sum(map(len, texts))
            if ping_interval > 0 and conn is not None and not sendq.paused:
                last_ping = _keepalive(conn, stats, now, last_ping, ping_interval, ping_timeout)
            if not isinstance(item, list) or now - last_duty >= DUTY_INTERVAL_S:
                last_duty = now
                on_tick()
        except ConnectionClosed as exc:
            log.debug("sender: %s", exc)
            if conn is not None and retired(conn):  # a rolled-over session died draining: not a loss
                if isinstance(item, list):
                    stats.audio_dropped_outage_ms += sum(ms for _, ms, _ in item)
                continue
            if isinstance(item, list) and sendq.closed:  # closing on a dead link: it cannot go out
                stats.audio_dropped_outage_ms += sum(ms for _, ms, _ in item)
                log.debug("sender: %d queued message(s) not sent: closed on a dead link", len(item))
            elif isinstance(item, list):
                for each in reversed(item):  # back at the head, in order (a reconnect sends them)
                    sendq.unget(each)
            if conn is not None:
                conn.abort()
            sendq.wait_paused_or_closed(5.0)


def _keepalive(conn: _ws.WsConnection, stats: TransportStats, now: float, last_ping: float,
               interval: float, timeout: float) -> float:
    """Ping when nothing has been received for ``interval`` (at most every ``min(interval, timeout)``);
    declare the link dead after ``interval + timeout``.  What we send does not count: streaming audio
    to a server that stays silent (no speech) proves nothing about the link, only a pong does."""
    silent_for = now - stats.last_receive
    if silent_for > interval + timeout:
        log.warning("no data from the server for %.1f s (ping timeout); dropping the connection", silent_for)
        raise ConnectionClosed("keepalive timeout")
    if silent_for >= interval and now - last_ping >= min(interval, timeout):
        conn.ping(b"rtedge")
        stats.pings_sent += 1
        return now
    return last_ping


def receive_until_end(conn: _ws.WsConnection, on_text: Callable[[bytes], object],
                      stats: TransportStats, on_idle: Callable[[], None] = lambda: None) -> tuple[int | None, str]:
    """Read frames until the connection ends; ``on_text`` per message.  Returns the close code
    (None when the socket broke without a close frame) and reason.

    ``on_idle`` (waking the dispatcher) runs before a read that may wait for the network, at least
    every :data:`FLUSH_EVERY` messages, and at the end: what arrived together is handed on with one
    wake-up.  "May wait": no whole message is buffered and none is completed without waiting
    (``conn.readable()``: with nothing buffered the socket is not even asked)."""
    unflushed = 0
    try:
        while True:
            if unflushed and (unflushed >= FLUSH_EVERY or not conn.readable()):
                on_idle()
                unflushed = 0
            opcode, payload = conn.recv()
            stats.last_receive = time.monotonic()
            if opcode == _ws.TEXT:
                stats.messages_received += 1
                stats.bytes_received += len(payload)
                stats.receive_busy_since = stats.last_receive
                unflushed += 1
                try:
                    on_text(payload)
                except Exception:  # a bug of ours on a strange message: never a deaf receiver
                    stats.count_internal_error()
                    log.exception("internal error while handling a server message; message skipped")
                finally:
                    stats.receive_busy_since = 0.0
            elif opcode == _ws.CLOSE:
                return _ws.parse_close(payload)
            elif opcode == _ws.BINARY:
                log.warning("ignoring a binary frame of %d bytes (realtime APIs send text)", len(payload))
    except ConnectionClosed as exc:
        return None, str(exc)
    finally:
        on_idle()


def describe_error(event: ev.Error) -> str:
    err = event.error
    return f"{err.code or err.type or 'error'}: {err.message}"


def decode_failure(exc: RemoteProtocolError) -> str:
    return f"malformed message from the server ({exc}); raw={exc.raw[:80]!r}"
