"""Where received events go: the inbox (``events()``/``wait_for()``) and the callback dispatcher.

Guarantees
----------
* The inbox is bounded by count (``inbox_size``) *and* by bytes (``inbox_bytes``: the size of the
  messages the events came in, plus :data:`EVENT_OVERHEAD` per event for its Python objects).  Past either bound the oldest events go.  An event that goes before
  any consumer got it (no callback ran for it, no internal sink took it, ``events()`` never reached it)
  is counted in ``stats.inbox_dropped``; one a callback received is not a loss.
* Events the reader already consumed are kept only as a short tail (for rtedge's own waits).
* Once a callback (or rtedge's audio hook) received an audio delta, the inbox keeps the event without
  its audio payload (``event.audio_dropped``), unless ``inbox_audio=True`` was asked for.
* A callback runs only after its event is in the inbox: a callback that reads ``events(timeout=0)``
  finds that event there (or already read), never a wake-up ahead of its event (the transcriber's
  wait relies on this).
* Callbacks run only on ``rtedge-dispatch``, in arrival order.  An event no callback wants is not
  handed to ``rtedge-dispatch`` at all (no wake-up per event for consumers nobody registered; audio
  deltas go to rtedge's audio hooks on the receiver).  Events that arrived before the first
  callback for their type was registered are replayed to that callback, once, before any later event
  (the last :data:`REPLAY_PER_TYPE` per type; audio deltas and ``"*"`` callbacks excepted).
* Events waiting for callbacks are bounded by bytes (``dispatch_bytes``): when a callback blocks while
  events keep arriving, the oldest waiting events are dropped, counted in
  ``stats.callback_events_dropped`` and logged once per episode; the receiver never waits for callbacks.

Owns: the inbox and the dispatcher (the only thread running user callbacks).  Must not: block the receiver.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from types import MethodType
from typing import Any

import attrs

from ..errors import ConnectionClosed, DeadlineExceeded
from ..protocol import events as ev
from ..protocol.event_names import named_event_type
from ._workers import Doorbell, TransportStats
from .options import DEFAULTS

log = logging.getLogger("rtedge")

#: consumed events kept behind the reader's cursor (rtedge's own waits look back a little)
CONSUMED_TAIL = 256
#: unclaimed events kept per type for a callback registered late
REPLAY_PER_TYPE = 4
#: event types remembered for replay (the rest are forgotten oldest first)
REPLAY_TYPES = 32
#: bytes counted for an event rtedge made itself
SYNTHETIC_BYTES = 256
#: bytes counted per event on top of its message: what the Python objects of an event (attrs instance,
#: raw dict, strings) take beyond the payload, so that ``inbox_bytes`` bounds real memory
EVENT_OVERHEAD = 1024


class _Entry:
    __slots__ = ("seq", "event", "nbytes", "delivered", "reported")

    def __init__(self, seq: int, event: ev.ServerEvent, nbytes: int, delivered: bool) -> None:
        self.seq, self.event, self.nbytes, self.delivered = seq, event, nbytes, delivered
        self.reported = delivered  # the dispatcher has said whether a callback got it


#: strings that recur in every audio delta (keys, the type, item and response ids), shared by the stripped
#: deltas the inbox keeps: each parsed message has its own copies, about half of what a kept delta holds
_SHARED: dict[str, str] = {}
_SHARED_MAX = 512
#: an audio delta's keys, one string each; and the keys whose values recur from delta to delta
_KEYS = {k: k for k in ("type", "event_id", "response_id", "item_id", "output_index", "content_index")}
_SHARED_VALUES = frozenset({"type", "response_id", "item_id"})


def _shared(value: Any) -> Any:
    if type(value) is not str or len(value) > 80:
        return value
    kept = _SHARED.get(value)
    if kept is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()  # bounded, whatever a server sends
        kept = _SHARED[value] = value
    return kept


def strip_audio(event: ev.ServerEvent) -> ev.ServerEvent:
    """The event without its audio payload (other events unchanged)."""
    if not isinstance(event, ev.ResponseOutputAudioDelta) or event.audio_dropped:
        return event
    key = _KEYS.get
    raw = {key(k, k): _shared(v) if k in _SHARED_VALUES else v for k, v in event.raw.items() if k != "delta"}
    return attrs.evolve(event, delta="", raw=raw, audio_dropped=True, type=_shared(event.type),
                        item_id=_shared(event.item_id), response_id=_shared(event.response_id))


def _stripped_size(event: ev.ServerEvent, nbytes: int) -> int:
    if isinstance(event, ev.ResponseOutputAudioDelta):
        return max(EVENT_OVERHEAD, nbytes - len(event.delta))
    return nbytes


class EventLog:
    """The client's inbox: a log of received events with a consumer cursor, bounded by count and bytes.

    ``events()``/``wait_for()`` consume from the cursor; internal waits read from any sequence number
    without consuming.  Thread-safe.
    """

    def __init__(self, maxlen: int, max_bytes: int, stats: TransportStats, keep_audio: bool = False) -> None:
        self._log: deque[_Entry] = deque()
        self._cond = threading.Condition()  # guards everything below
        self._seq = 0
        self._cursor = 0
        self._ended = False
        self._bytes = 0
        self._maxlen = maxlen
        self._max_bytes = max_bytes
        self._keep_audio = keep_audio
        self._stats = stats
        #: unread events evicted before the dispatcher ran their callbacks: a loss only if none ran
        self._evicted_undecided: set[int] = set()

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def nbytes(self) -> int:
        """Bytes the inbox holds now (message sizes of the events kept)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._log)

    def append(self, event: ev.ServerEvent, nbytes: int, delivered: bool = False) -> int:
        """Add an event (``delivered``: a consumer already got it, e.g. the audio hook); its sequence.
        ``nbytes``: the size of the message it came in (:data:`EVENT_OVERHEAD` is added)."""
        nbytes += EVENT_OVERHEAD
        if delivered and not self._keep_audio:
            nbytes, event = _stripped_size(event, nbytes), strip_audio(event)
        with self._cond:
            self._seq += 1
            self._log.append(_Entry(self._seq, event, nbytes, delivered))
            self._bytes += nbytes
            self._trim()
            self._cond.notify_all()
            return self._seq

    def dispatched(self, seq: int, delivered: bool) -> None:
        """The dispatcher ran the callbacks for ``seq`` (``delivered``: at least one)."""
        with self._cond:
            if seq in self._evicted_undecided:
                self._evicted_undecided.discard(seq)
                if not delivered:
                    self._stats.inbox_dropped += 1
                return
            entry = self._entry(seq)
            if entry is None:
                return
            entry.reported = True
            if not delivered:
                return  # no callback wanted it: a loss if it is evicted before anyone reads it
            entry.delivered = True
            if not self._keep_audio and isinstance(entry.event, ev.ResponseOutputAudioDelta):
                smaller = _stripped_size(entry.event, entry.nbytes)
                self._bytes -= entry.nbytes - smaller
                entry.nbytes, entry.event = smaller, strip_audio(entry.event)

    def _entry(self, seq: int) -> _Entry | None:
        if not self._log:
            return None
        index = seq - self._log[0].seq  # sequence numbers are contiguous
        return self._log[index] if 0 <= index < len(self._log) else None

    def _trim(self) -> None:
        log_ = self._log
        while len(log_) > 1 and (len(log_) > self._maxlen or self._bytes > self._max_bytes):
            self._evict()
        while log_ and log_[0].seq <= self._cursor - CONSUMED_TAIL:
            self._evict()

    def _evict(self) -> None:
        entry = self._log.popleft()
        self._bytes -= entry.nbytes
        if entry.seq > self._cursor:
            if not entry.reported:
                self._evicted_undecided.add(entry.seq)  # decided when the dispatcher reports on it
            elif not entry.delivered:
                self._stats.inbox_dropped += 1  # the dispatcher found no callback, and nobody read it
            self._cursor = entry.seq

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def find(self, after: int, match: Callable[[ev.ServerEvent], bool],
             timeout: float | None) -> tuple[int, ev.ServerEvent]:
        """The first event after sequence ``after`` that matches, waiting up to ``timeout``.

        Raises:
            DeadlineExceeded: nothing matched in time.
            ConnectionClosed: the log ended (connection gone) with no match.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                first = max(0, after + 1 - self._log[0].seq) if self._log else 0  # contiguous sequences
                for i in range(first, len(self._log)):
                    entry = self._log[i]
                    if match(entry.event):
                        return entry.seq, entry.event
                after = max(after, self._seq)
                if self._ended:
                    raise ConnectionClosed("the connection ended before the awaited event arrived")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise DeadlineExceeded(f"no matching event within {timeout} s")
                self._cond.wait(remaining)

    def consume(self, match: Callable[[ev.ServerEvent], bool], timeout: float | None) -> ev.ServerEvent:
        """Like :meth:`find` from the cursor, and move the cursor past the match."""
        seq, event = self.find(self._cursor, match, timeout)
        with self._cond:
            self._cursor = max(self._cursor, seq)
            self._trim()
        return event


_CLOSE = object()
_WAKE = object()
Handler = Callable[[Any], Any]


class Dispatcher:
    """Runs user callbacks on ``rtedge-dispatch``, in arrival order (see the module docstring).

    Wake-ups: :meth:`put` with ``wake=False`` (the receiver, per message) queues without waking the
    thread; the receiver calls :meth:`flush` when it may wait for the network (no whole message
    buffered) and at least every :data:`~._workers.FLUSH_EVERY` messages, so that what arrived together is
    dispatched in one wake-up.  Everything else (rtedge's own events, :meth:`add`'s replays,
    :meth:`stop`) wakes it at once.
    """

    def __init__(self, stats: TransportStats, on_error: Callable[[BaseException, Any], None] | None,
                 on_dispatched: Callable[[int, bool], None] | None = None,
                 max_bytes: int = DEFAULTS["dispatch_bytes"]) -> None:
        self._queue: deque[tuple[int, ev.ServerEvent, int] | object] = deque()
        self._ready = threading.Lock()  # guards _queue, _queued_bytes, _shedding and _waiting
        self._max_bytes = max_bytes
        self._queued_bytes = 0  # the message bytes of the events in _queue
        self._shedding = False  # dropping since the last _take (logged once per episode)
        self._waiting = False  # rtedge-dispatch waits (or is about to) for the doorbell: a put must ring it
        self._bell = Doorbell()
        self._handlers: dict[str, list[Handler]] = {}
        self._lock = threading.Lock()  # guards _handlers (copy-on-write lists), _unclaimed, _replays
        #: events dispatched while no callback for their type existed, by type (for a late callback)
        self._unclaimed: dict[str, deque[ev.ServerEvent]] = {}
        self._replays: list[tuple[Handler, list[ev.ServerEvent]]] = []
        self._stats = stats
        self._on_dispatched = on_dispatched
        self.on_error = on_error
        self._warned: set[str] = set()  # unknown event types named by a caller, each warned about once

    def named(self, event_type: str) -> str:
        """The type a caller means by ``event_type`` (:func:`~rtedge.protocol.event_names.named_event_type`:
        a beta name's GA name); an unknown name is logged, once per name and client.

        Raises:
            TypeError: ``event_type`` is not a str (an event class given for its type, say).
        """
        if not isinstance(event_type, str):
            raise TypeError(f"event_type must be a str such as 'response.done', got {type(event_type).__name__}")
        named, warning = named_event_type(event_type)
        if warning is not None and event_type not in self._warned:
            self._warned.add(event_type)
            log.warning("%s", warning)
        return named

    def names(self, event_type: str) -> tuple[str, ...]:
        """The types a caller's ``event_type`` matches: :meth:`named`'s, and a beta name itself too (the
        dialects that speak beta names rename them on arrival; one that does not passes them through)."""
        named = self.named(event_type)
        return (named,) if named == event_type else (event_type, named)

    def add(self, event_type: str, fn: Handler) -> None:
        if not callable(fn):  # else it failed on every event, on rtedge-dispatch
            raise TypeError(f"a callback must be callable as fn(event), got {fn!r}")
        for name in self.names(event_type):
            self._add(name, fn)

    def _add(self, event_type: str, fn: Handler) -> None:
        with self._lock:
            first = not self._handlers.get(event_type)
            self._handlers[event_type] = [*self._handlers.get(event_type, ()), fn]
            missed = self._unclaimed.pop(event_type, None) if first else None
            if missed:
                self._replays.append((fn, list(missed)))
        if missed:
            self._enqueue(_WAKE, True)

    def remove(self, event_type: str, fn: Handler) -> None:
        """Undo one :meth:`add` of ``fn`` (the latest; the same object, or for a bound method the same
        method of the same object: each ``obj.method`` is a new one).  Nothing happens when it is not registered."""
        bound = isinstance(fn, MethodType)
        with self._lock:
            for name in self.names(event_type):
                handlers = self._handlers.get(name, [])
                for i in range(len(handlers) - 1, -1, -1):
                    if handlers[i] is fn or (bound and handlers[i] == fn):
                        self._handlers[name] = handlers[:i] + handlers[i + 1:]
                        break

    def put(self, event: ev.ServerEvent, seq: int = 0, wake: bool = True, nbytes: int = 0) -> None:
        """Queue ``event`` (of ``nbytes`` message bytes) for its callbacks (``wake=False``: until the next
        :meth:`flush`).  Past ``max_bytes`` queued, the oldest queued events are dropped (see :meth:`_shed`).

        An event no callback wants is settled here instead, without waking ``rtedge-dispatch``:
        remembered for a late callback (as :meth:`run` would; this check and :meth:`add` share the
        lock, so an event is either queued for a callback or kept for its replay) and reported
        undelivered.
        """
        handlers = self._handlers  # a callback wanting it now: queued without the lock (remove() may
        wanted = bool(handlers.get(event.type) or handlers.get("*"))  # follow: _dispatch checks again)
        if not wanted:
            with self._lock:
                wanted = bool(handlers.get(event.type) or handlers.get("*"))
                if not wanted and not isinstance(event, ev.ResponseOutputAudioDelta):
                    self._remember(event)
        if wanted:
            self._enqueue((seq, event, nbytes), wake, nbytes)
        elif self._on_dispatched is not None and seq:
            self._on_dispatched(seq, False)

    def flush(self) -> None:
        """Wake ``rtedge-dispatch`` if events wait for it (the receiver, before it waits for the network)."""
        with self._ready:
            ring = self._waiting and bool(self._queue)
            if ring:
                self._waiting = False
        if ring:  # outside the lock: the woken thread takes it at once
            self._bell.ring()

    def _enqueue(self, item: tuple[int, ev.ServerEvent, int] | object, wake: bool, nbytes: int = 0) -> None:
        shed: list[tuple[int, ev.ServerEvent, int]] = []
        first = False
        with self._ready:
            self._queued_bytes += nbytes
            # only an event over the bound, and only while rtedge-dispatch is busy (not waiting for the bell:
            # events the receiver has not flushed yet are no backlog), sheds
            if nbytes and self._queued_bytes > self._max_bytes and not self._waiting:
                shed, first = self._shed()
            self._queue.append(item)
            ring = wake and self._waiting
            if ring:
                self._waiting = False  # one ring per wait: whoever clears the flag rings
        if ring:
            self._bell.ring()
        if shed:
            self._report_shed(shed, first)

    def _shed(self) -> tuple[list[tuple[int, ev.ServerEvent, int]], bool]:
        """Under ``_ready``: drop the oldest queued events until half of ``max_bytes`` is left (the event
        being queued counts, and is kept).  Callbacks are that far behind only when one blocks while
        events keep arriving; holding on would grow memory without bound, and blocking the receiver would
        stall keepalive.  Markers (wake, close) stay, in order.  Returns the events dropped, and whether
        they are the first since ``rtedge-dispatch`` last took its queue (then the drop is logged).  With the
        batch that thread holds, at most about twice ``max_bytes`` of events wait for callbacks."""
        shed, kept = [], []
        while self._queue and self._queued_bytes > self._max_bytes // 2:
            item = self._queue.popleft()
            if isinstance(item, tuple):
                shed.append(item)
                self._queued_bytes -= item[2]
            else:
                kept.append(item)
        self._queue.extendleft(reversed(kept))
        self._stats.callback_events_dropped += len(shed)
        first = bool(shed) and not self._shedding
        self._shedding = self._shedding or first
        return shed, first

    def _report_shed(self, shed: list[tuple[int, ev.ServerEvent, int]], first: bool) -> None:
        """Outside the lock: tell the inbox no callback got them, and log the first drop of an episode."""
        if first:
            busy = self._stats.dispatch_busy_since
            held = f" (a callback has been running for {time.monotonic() - busy:.1f} s)" if busy else ""
            log.warning("callbacks are more than %d bytes of events behind%s: dropping the oldest events "
                        "not yet delivered, counted in stats.callback_events_dropped", self._max_bytes, held)
        if self._on_dispatched is not None:
            for seq, _, _ in shed:
                if seq:
                    self._on_dispatched(seq, False)

    def stop(self) -> None:
        self._enqueue(_CLOSE, True)

    def _take(self) -> list[tuple[int, ev.ServerEvent, int] | object]:
        """Everything queued, in order, waiting for it when there is nothing."""
        while True:
            with self._ready:
                if self._queue:
                    batch = list(self._queue)
                    self._queue.clear()
                    self._queued_bytes, self._shedding = 0, False
                    return batch
                self._waiting = True
            self._bell.wait()  # rung by the put that clears _waiting (that put queued something)

    def run(self, stop_requested: threading.Event) -> None:
        """Body of ``rtedge-dispatch``: until stop().  Events queued before stop() are still delivered
        (close() waits for that within its timeout; when a callback blocks past it, the rest follow once
        it returns, and then the thread exits)."""
        try:
            while True:
                for item in self._take():
                    if self._replays:
                        self._replay()
                    if item is _CLOSE:
                        return
                    if item is _WAKE:
                        continue
                    assert isinstance(item, tuple)
                    self._dispatch(item[0], item[1])
        finally:
            self._bell.close()  # this thread waits on it no more

    def _dispatch(self, seq: int, event: ev.ServerEvent) -> None:
        with self._lock:
            own = self._handlers.get(event.type, [])
            if not own and not isinstance(event, ev.ResponseOutputAudioDelta):
                self._remember(event)
            handlers = own + self._handlers.get("*", [])
        self._stats.dispatch_busy_since = time.monotonic()
        for fn in handlers:
            self._call(fn, event)
        self._stats.dispatch_busy_since = 0.0
        if self._on_dispatched is not None and seq:
            self._on_dispatched(seq, bool(handlers))

    def _remember(self, event: ev.ServerEvent) -> None:
        kept = self._unclaimed.get(event.type)
        if kept is None:
            if len(self._unclaimed) >= REPLAY_TYPES:
                del self._unclaimed[next(iter(self._unclaimed))]
            kept = self._unclaimed[event.type] = deque(maxlen=REPLAY_PER_TYPE)
        kept.append(event)

    def _replay(self) -> None:
        with self._lock:
            replays, self._replays = self._replays, []
        for fn, events in replays:
            for event in events:
                self._call(fn, event)

    def _call(self, fn: Handler, event: ev.ServerEvent) -> None:
        """Run one callback.  Whatever it raises is counted, logged and given to ``on_error``, SystemExit and
        KeyboardInterrupt included: raised here they would end ``rtedge-dispatch`` in silence, and with
        it every later callback, while the link stayed up."""
        try:
            fn(event)
        except BaseException as exc:  # noqa: B036 - see the docstring
            self._stats.callback_errors += 1
            log.error("callback %r raised on %s", getattr(fn, "__name__", fn), event.type, exc_info=exc)
            if self.on_error is not None:
                try:
                    self.on_error(exc, event)
                except BaseException:  # noqa: B036 - as above
                    log.exception("on_error hook raised; ignoring")
