"""The link: establishing a session, keeping it, and getting it back.

Theory of operation
-------------------
The link's state is a :class:`~._lifecycle.LinkState`, moved only through
the transition table in :mod:`._lifecycle` (see there).

Establishing (:meth:`Link._establish`) asks ``rtedge-sender`` to open the
socket (the sender writes the HTTP upgrade), reads frames on the calling
thread until ``session.created``, has the sender send the session config
(and, after a reconnect, the conversation so far) on the new socket, and
reads on until the server confirms the config with ``session.updated``.
``connect()`` starts only the sender, runs the rest on the caller's thread,
and on failure stops and joins the sender, so a failed connect leaves
nothing behind; reconnects run it on ``rtedge-receiver``.

``rtedge-receiver`` is the supervisor: an iterative loop (never recursion)
that reads until the connection ends, then decides.  A close by us ends it.
A fatal cause (HTTP 400/401/403/404, ``invalid_api_key``, ``insufficient_quota``,
``beta_api_shape_disabled``, a config the new session rejects, close 4000)
ends it with one ``rtedge.gave_up`` event and :attr:`fatal_error` set.
Anything recoverable (the close codes in :data:`RECOVERABLE_CLOSE_CODES`,
a broken socket, a keepalive timeout, handshake 429/5xx with
``Retry-After`` honoured) starts the reconnect loop: ``rtedge.reconnecting``
per attempt, a :class:`Backoff` delay that ``close()`` interrupts, and
``rtedge.reconnected`` once the new session is configured and re-seeded.

While the link is down the send queue is paused: queued and newly appended
audio is dropped and counted (``stats.audio_dropped_outage_ms``), never
replayed stale; control events are kept (bounded) and sent after
re-seeding, in order.  A response that was in flight is settled with a
synthetic ``response.done`` (status ``cancelled``, reason ``connection_lost``)
so nobody waits forever.

Before the provider's session limit the session is replaced make-before-break
(``_rollover``: a second connection is seeded while the first still serves).
With ``max_session_seconds`` instead, the old proactive recycle: past that age,
at a turn boundary, the sender pauses the queue and closes the
socket with 1000 (the receiver asks it to check right at ``response.done``);
the supervisor reconnects at once and re-seeds, so users never hit
``session_expired`` mid-sentence.

Owns: establishing, keeping and recovering the link.  Must not: write to a socket off the sender.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import (ConnectionClosed, DeadlineExceeded, HandshakeError, LocalProtocolError, RtEdgeError,
                      ServerError, TransportError)
from ..protocol import events as ev
from ..protocol._state import InputBufferState, ResponseState
from ..protocol.dialects import Dialect
from ..protocol.reseed import history_items, seed_plan
from ..protocol.session import Session
from ..protocol.usage import Usage
from . import _ws
from .backoff import FATAL_ERROR_CODES, FATAL_HTTP_STATUSES, RECOVERABLE_CLOSE_CODES, Backoff
from ._handshake import SENDER_CALL_TIMEOUT, read_until, seed_texts, send_on_sender, server_error
from ._rollover import Rollover
from ._lifecycle import ENDING, SENDING, LinkEvent, LinkState
from ._workers import receive_until_end

log = logging.getLogger("rtedge")

#: control events kept while the link is down; one more raises ConnectionClosed
MAX_PENDING = 256
#: milliseconds of silence appended by the ``keepalive_audio_s`` option
KEEPALIVE_SILENCE_MS = 100.0
#: seconds between the aborts of a failed connect() while the sender still opens a connection
ABORT_POLL_S = 0.05


class Link(Rollover):
    """The link piece of :class:`rtedge.Client`: its state is made here; the parts and the session
    record are :class:`~._core.Core`'s."""

    def __init__(self, dialect: Dialect, url: str, headers: dict[str, str], options: dict[str, Any]) -> None:
        super().__init__(dialect, url, headers, options)
        #: control events kept while the link is down (the client's sends, under the lock), replayed after
        self._pending: list[ev.ClientEvent] = []
        self._history: list[dict[str, Any]] = []  # the conversation a new session is seeded with
        #: every connection the sender opened and has not shut down yet: the sender changes it; close() and a
        #: failing connect() read it (a copy) to abort them
        self._opened: list[_ws.WsConnection] = []
        #: a connection rtedge-rollover is upgrading (not yet handed to the sender), under the lock
        self._upgrading: _ws.WsConnection | None = None
        self._receiver_done = threading.Event()  # the receiver is finished with every connection
        self._linger_until: float | None = None  # close(): how long the sender waits for the receiver
        self._close_started = False  # close() was called (under the lock)
        self._offline_events: list[ev.ServerEvent] = []  # receiver-only: settled at a loss, emitted after
        #: (response id, monotonic time, event log mark) of the last response.cancel sent
        self._cancel_pending: tuple[str | None, float, int] | None = None
        self._last_audio_at = time.monotonic()  # when input audio was last queued (keepalive_audio_s)
        self._last_fatal: ServerError | None = None
        #: the error that made the client give up (HandshakeError, ServerError...), else None
        self.fatal_error: RtEdgeError | None = None

    # ------------------------------------------------------------------------------------------ establish
    @property
    def _offline(self) -> bool:
        return self._machine.state not in SENDING and self._machine.state is not LinkState.CONNECTING

    def _open_socket(self, timeout: float) -> _ws.WsConnection:
        """Any thread (connect, reconnect): have the sender open a connection (it writes the upgrade) and
        return it; it becomes the sender's write target at once.

        Raises what opening raises (HandshakeError, TransportError), or ConnectionClosed when the
        sender has stopped (the client is closing)."""
        conn: _ws.WsConnection = self._sendq.call(lambda: self._open_on_sender(timeout),
                                                  timeout + SENDER_CALL_TIMEOUT)
        return conn

    def _ws_options(self) -> dict[str, Any]:
        """What every connection is opened with (the sender's, a rollover's): TLS, the write stall limit."""
        o = self._opts
        return {"ssl_context": o["ssl_context"], "ca_certs": o["ca_certs"], "send_stall_s": o["ping_timeout"]}

    def _open_on_sender(self, timeout: float) -> _ws.WsConnection:
        def pending(conn: _ws.WsConnection) -> None:
            self._conn = conn  # so that close() can abort it while it upgrades and while we establish
            self._opened.append(conn)
            conn.on_ping = lambda data: self._pong(conn, data)
            if self._machine.state in ENDING:
                raise TransportError("the client is closing")

        conn = _ws.WsConnection.open(self._url, self._headers, timeout=timeout, pending=pending,
                                     **self._ws_options())
        if self._machine.state in ENDING:
            self._shutdown_on_sender(conn)
            raise TransportError("the client is closing")
        return conn

    def _open_here(self, timeout: float) -> _ws.WsConnection:
        """``rtedge-rollover``: open the next session's connection on this thread, then hand it to the
        sender.  Its HTTP upgrade is the one socket write the sender does not make (no frame has gone
        on that socket yet), so that the sender goes on sending the live session's audio meanwhile;
        from the hand-over on, the sender writes every frame on it and releases it.  close() aborts an
        attempt in progress (see :mod:`._dial`; the attempt is bounded by ``timeout``).

        Raises what opening raises (HandshakeError, TransportError), or TransportError /
        ConnectionClosed when the client is closing."""
        def pending(conn: _ws.WsConnection) -> None:
            with self._lock:
                if self._machine.state in ENDING:
                    raise TransportError("the client is closing")
                self._upgrading = conn

        try:
            conn = _ws.WsConnection.open(self._url, self._headers, timeout=timeout, pending=pending,
                                         **self._ws_options())
        finally:
            with self._lock:
                self._upgrading = None
        try:
            self._sendq.call(lambda: self._adopt(conn), SENDER_CALL_TIMEOUT)
        except ConnectionClosed:  # the sender has stopped: it will never write on this socket or release it
            conn.shutdown()
            raise
        except DeadlineExceeded:  # the sender adopts it later: then it releases it too
            self._release(conn)
            raise
        return conn

    def _adopt(self, conn: _ws.WsConnection) -> None:
        """Sender: a connection another thread opened is now this thread's to write on and release."""
        self._opened.append(conn)
        conn.on_ping = lambda data: self._pong(conn, data)
        if self._machine.state in ENDING:
            self._shutdown_on_sender(conn)
            raise TransportError("the client is closing")

    def _pong(self, conn: _ws.WsConnection, data: bytes) -> None:
        """Reader thread: a ping arrived; the sender answers it, ahead of queued sends."""
        try:
            self._sendq.submit(lambda: _quietly(conn.pong, data))
        except ConnectionClosed:
            pass  # closing: no pong needed

    def _release(self, conn: _ws.WsConnection) -> None:
        """Reader thread, when done with ``conn``: the sender answers a close (1000) and shuts it down.
        When the sender has stopped, it already shut down every connection it opened."""
        try:
            self._sendq.call(lambda: self._shutdown_on_sender(conn, reply=True), SENDER_CALL_TIMEOUT)
        except (ConnectionClosed, DeadlineExceeded) as exc:
            log.debug("connection released by the sender's exit (%s)", exc)

    def _shutdown_on_sender(self, conn: _ws.WsConnection, reply: bool = False) -> None:
        if reply:
            conn.send_close(1000)  # our answer to the server's close (no-op when we sent one)
        conn.shutdown()
        if conn in self._opened:
            self._opened.remove(conn)

    def _sender_exit(self) -> None:
        """Sender, last thing: wait (bounded) for the receiver to finish reading, then shut down every
        connection this thread opened; one still being read is aborted first to wake the reader."""
        for old in list(self._retiring):  # old sessions still draining after a rollover: end them too
            old.send_close(1000)
        linger = self._linger_until if self._linger_until is not None else time.monotonic() + 2.0
        self._receiver_done.wait(max(0.0, linger - time.monotonic()))
        for conn in list(self._opened):
            if not self._receiver_done.is_set():
                conn.abort()
            self._shutdown_on_sender(conn)

    def _abandon_opening(self, sender: threading.Thread, limit: float) -> None:
        """Caller's thread, connect() failing (a KeyboardInterrupt too): no close frame for a session that
        never got going; the sender's queue is closed and the sender joined (bounded by ``limit`` s)."""
        with self._lock:
            self._machine.apply(LinkEvent.CONNECT_FAILED)
            self._conn = None
        self._receiver_done.set()
        self._sendq.close(discard=True)
        self._join_opening_sender(sender, limit)

    def _join_opening_sender(self, sender: threading.Thread, limit: float) -> None:
        """Caller's thread, connect() failing (a KeyboardInterrupt too), the sender's queue closed: join
        the sender, which may still wait in an attempt the server never answers.  Every connection it
        opened is aborted, again and again until it stops: the signal can come before the sender has made
        the connection (:mod:`._dial` then gives up at its next check).  Bounded by ``limit`` seconds."""
        end = time.monotonic() + limit
        while sender.is_alive() and time.monotonic() < end:
            for conn in list(self._opened):
                conn.abort()
            sender.join(min(ABORT_POLL_S, max(0.0, end - time.monotonic())))

    def _establish(self, conn: _ws.WsConnection, deadline: float, history: list[dict[str, Any]]) -> None:
        """Read until ``session.created``, send config and history, read until ``session.updated``.

        Raises:
            ServerError: the server sent an error (before ``session.created`` or for our config).
            DeadlineExceeded / ConnectionClosed: no answer by ``deadline`` / the socket ended.
        """
        first = self._pump(conn, lambda e: isinstance(e, ev.SessionCreated | ev.Error), deadline,
                           "session.created")
        if isinstance(first, ev.Error):
            raise server_error(first)
        with self._lock:
            texts, update_id, _ = seed_texts(self._session, self._requested, history)
            self._publish()
        send_on_sender(self._sendq, conn, texts, self.stats, deadline)
        if update_id is None or not self.dialect.acknowledges_session_update:  # vLLM sends no session.updated
            return

        def answer(e: ev.ServerEvent) -> bool:
            return isinstance(e, ev.SessionUpdated) or (isinstance(e, ev.Error) and e.error.event_id == update_id)

        reply = self._pump(conn, answer, deadline, "session.updated")
        if isinstance(reply, ev.Error):
            raise server_error(reply)

    def _pump(self, conn: _ws.WsConnection, match: Callable[[ev.ServerEvent], bool],
              deadline: float, waiting_for: str) -> ev.ServerEvent:
        """Read and handle (deliver) frames on this thread until an event matches (``waiting_for``: what)."""
        return read_until(conn, self.stats, lambda payload: self._on_text(payload, None), match, deadline,
                          "the server", waiting_for)

    # ------------------------------------------------------------------------------------------ supervise
    def _supervise(self) -> None:
        """Body of ``rtedge-receiver``: read, and on loss decide between reconnecting and ending."""
        assert self._conn is not None
        self._receive_loop(self._conn, self._session)

    def _reader(self, conn: _ws.WsConnection, session: Session) -> Callable[[bytes], list[ev.ServerEvent]]:
        """Per message of ``conn``: into ``session`` (the one that connection serves), delivered."""
        def on_text(payload: bytes) -> list[ev.ServerEvent]:
            events = self._on_text(payload, session, False)  # the loop flushes the dispatcher
            entry = self._retiring.get(conn)
            if entry is not None:
                self._retiring_events(conn, entry, events)
            return events
        return on_text

    def _receive_loop(self, conn: _ws.WsConnection | None, session: Session) -> None:
        """Read ``conn``; on loss reconnect or end the link.  A connection retired by a rollover ends
        only this loop (the thread exits; the link lives on with the new session)."""
        retired = False
        try:
            while conn is not None:
                code, reason = receive_until_end(conn, self._reader(conn, session), self.stats,
                                                 self._dispatcher.flush)
                with self._lock:
                    entry = self._retiring.pop(conn, None)
                    if entry is not None:
                        retired = True
                        self._usage_before = self._usage_before + entry.session.state.usage
                        self._publish()
                        break
                    state = self._machine.state
                    if state in ENDING or state is LinkState.FINISHING:
                        break  # ours: the sender closes the socket on its way out
                    cause, fatal = self._cause(code, reason, state)
                    final = fatal or self._opts["reconnect"] is None
                    ended = code in (1000, 1001) and self._last_fatal is None  # a clean close: the end
                    if final:  # set before the state turns GAVE_UP: whoever sees that sees why
                        self.fatal_error = self._final_error(cause, self._last_fatal, ended)
                    self._go_offline(code, reason, LinkEvent.LOST_FINAL if final else LinkEvent.LOST)
                self._release(conn)
                self._flush_offline_events()
                if final:
                    self._give_up(cause, self._last_fatal, ended=ended)
                    return
                conn = self._reconnect(cause, immediate=state is LinkState.RECYCLING)
                session = self._session
            if retired and conn is not None:
                if entry is not None and entry.end_requested is None:  # the server ended it first
                    log.info("session rollover: the old session was ended by the server (%s)", reason or code)
                    self._copy_rest(entry)
                self._release(conn)
                log.debug("session rollover: the old session ended (%s)", reason or code)
                return
            self._end_link()
        finally:
            if not retired:
                self._receiver_done.set()

    def _cause(self, code: int | None, reason: str, state: LinkState) -> tuple[str, bool]:
        if state is LinkState.RECYCLING:
            return "session recycle", False
        if self._last_fatal is not None:
            return f"server error {self._last_fatal.code}", True
        if code is None:
            return reason or "connection lost", False
        if code in RECOVERABLE_CLOSE_CODES:
            return f"close {code} {reason}".strip(), False
        return f"close {code} {reason}".strip(), True

    def _go_offline(self, code: int | None, reason: str, event: LinkEvent) -> None:
        """Under the lock: pause sending, remember the history for re-seeding, and move the link
        (``event`` LOST or LOST_FINAL: consumers of ``rtedge.connection_lost`` already see the new
        state).  The settlement and loss events go out in :meth:`_flush_offline_events`."""
        self._pending.extend(self._sendq.pause())
        state = self._session.state
        in_flight = state.response is not ResponseState.IDLE and state.response_id
        seedable = "item_create" in self.dialect.capabilities  # (a transcription session has no items)
        self._history = list(seed_plan(history_items(state), self._opts["seed_budget"]).items) if seedable else []
        self._session.connection_lost(code, reason, by_client=self._close_started)
        lost = list(self._session.events())
        self._publish()
        self._machine.apply(event)
        settle = []
        if in_flight:
            settle.append(ev.ResponseDone(type="response.done", raw={"rtedge_synthetic": True}, response={
                "id": state.response_id, "object": "realtime.response", "status": "cancelled",
                "status_details": {"type": "cancelled", "reason": "connection_lost"}}))
        self._offline_events = settle + lost

    def _flush_offline_events(self) -> None:
        events, self._offline_events = self._offline_events, []
        for event in events:
            self._emit(event)

    def _reconnect(self, cause: str, immediate: bool) -> _ws.WsConnection | None:
        """The reconnect loop; returns the new connection, or None (closed or gave up).
        ``immediate``: the first attempt has no delay (a proactive recycle)."""
        backoff: Backoff = self._opts["reconnect"]
        down_since, attempt, retry_after = time.monotonic(), 0, None
        while self._machine.state is LinkState.RECONNECTING:
            attempt += 1
            if backoff.exhausted(attempt):
                self._give_up(f"{attempt - 1} attempts failed; last: {cause}", None)
                return None
            delay = 0.0 if immediate and attempt == 1 else backoff.delay(attempt, retry_after=retry_after)
            self._emit(ev.Reconnecting(type=ev.Reconnecting.TYPE, attempt=attempt, delay=delay, cause=cause))
            planned = immediate and attempt == 1  # a recycle at a turn's end: nothing went wrong
            log.log(logging.INFO if planned else logging.WARNING, "reconnecting (attempt %d in %.2f s): %s",
                    attempt, delay, cause)
            if self._stop.wait(delay):
                return None
            try:
                conn = self._attempt()
            except HandshakeError as exc:
                if exc.status_code in FATAL_HTTP_STATUSES:
                    self._give_up(str(exc), exc)
                    return None
                cause, retry_after = str(exc), exc.retry_after
                continue
            except ServerError as exc:
                if exc.code in FATAL_ERROR_CODES or exc.param is not None:
                    self._give_up(str(exc), exc)
                    return None
                cause = str(exc)
                continue
            except (TransportError, DeadlineExceeded) as exc:
                cause = str(exc)
                continue
            if not self._go_online(attempt, time.monotonic() - down_since, planned):
                self._release(conn)  # close() came first
                return None
            return conn
        return None

    def _attempt(self) -> _ws.WsConnection:
        timeout = self._opts["connect_timeout"]
        conn = self._open_socket(timeout)
        with self._lock:
            self._usage_before = self._usage_before + self._session.state.usage
            self._session = Session(self.dialect)
            self._publish()
            while self._updates_in_flight:  # sent, never answered: assume the server took them
                self._merge_requested(self._updates_in_flight.popleft()[1])
        try:
            self._establish(conn, time.monotonic() + timeout, self._history)
        except BaseException:
            self._release(conn)
            with self._lock:  # a session that never got going: end it without a second connection_lost
                self._session.connection_lost(None, "reconnect attempt failed")
                list(self._session.events())
                self._publish()
            raise
        return conn

    def _update_answered(self, event: ev.ServerEvent) -> None:
        """Receiver: ``session.updated`` confirms the oldest update in flight (the server answers them
        in order), an ``error`` naming one rejects it.  Only confirmed updates go into the config a
        new session is given after a reconnect: a rejected one would be rejected again, ending the link."""
        with self._lock:  # update_session() holds it from its send until the update is recorded
            if isinstance(event, ev.SessionUpdated):
                if self._updates_in_flight:
                    self._merge_requested(self._updates_in_flight.popleft()[1])
            elif isinstance(event, ev.Error) and event.error.event_id is not None:
                rejected = event.error.event_id
                self._updates_in_flight = deque(u for u in self._updates_in_flight if u[0] != rejected)

    def _go_online(self, attempt: int, downtime: float, planned: bool) -> bool:
        """Replay the control events kept during the outage, in order, then resume sending (``planned``: a
        recycle's first attempt, counted as one).  False (and nothing done) when close() moved the link
        first."""
        with self._lock:
            if not self._machine.can(LinkEvent.RECONNECTED):
                return False
            pending, self._pending = self._pending + self._sendq.take_orphans(), []
            for event in pending:
                try:
                    self._sendq.put(self._session.send(event), 0.0, event)
                except LocalProtocolError as exc:  # e.g. a cancel for a response that no longer exists
                    log.info("not replaying %s after reconnect: %s", event.TYPE, exc)
            self._session_started = time.monotonic()
            if planned:
                self.stats.recycles += 1
            else:
                self.stats.reconnects += 1
            self.stats.last_receive = time.monotonic()
            self._machine.apply(LinkEvent.RECONNECTED)
            self._arm_deadline(self._session)
            self._sendq.resume()
        self._emit(ev.Reconnected(type=ev.Reconnected.TYPE, attempt=attempt, replayed_items=len(self._history),
                                  downtime=downtime))
        log.log(logging.INFO if planned else logging.WARNING, "reconnected after %.2f s (attempt %d, %d "
                "items re-seeded)", downtime, attempt, len(self._history))
        return True

    def _give_up(self, cause: str, error: RtEdgeError | None, ended: bool = False) -> None:
        with self._lock:
            if self._machine.can(LinkEvent.GIVE_UP):
                self._machine.apply(LinkEvent.GIVE_UP)  # before the event: whoever sees it sees client.closed
            gave_up = self._machine.state is LinkState.GAVE_UP
            if gave_up and self.fatal_error is None:  # (a final loss set it with the state)
                self.fatal_error = self._final_error(cause, error, ended)
        if gave_up:  # (close() may have come first: then this is an ordinary close)
            if ended:
                log.info("the server ended the session (%s)", cause)
            elif self._nothing_tried(error, ended):  # the owner decides (fatal_error says why)
                log.info("the connection ended (%s); reconnect=None: not reconnecting", cause)
            else:
                log.error("giving up on the connection: %s", cause)
            self._emit(ev.GaveUp(type=ev.GaveUp.TYPE, cause=cause))
        self._end_link()

    def _final_error(self, cause: str, error: RtEdgeError | None, ended: bool) -> RtEdgeError:
        """What :attr:`fatal_error` holds once the link gave up for ``cause``."""
        if error is not None:
            return error
        if ended:  # a clean close the link does not reconnect from: not "gave up" either
            return ConnectionClosed(f"the server ended the session ({cause})")
        if self._nothing_tried(error, ended):  # not "gave up"
            return ConnectionClosed(f"{cause} (reconnecting is off)")
        return ConnectionClosed(f"gave up: {cause}")

    def _nothing_tried(self, error: RtEdgeError | None, ended: bool) -> bool:
        """The link ends on a loss it could have reconnected from, but reconnecting is off."""
        return error is None and not ended and self._opts["reconnect"] is None

    def _end_link(self) -> None:
        """Receiver (or a failed connect): the link is over; end the session, the inbox and dispatch."""
        with self._lock:
            if self._machine.can(LinkEvent.ENDED):
                self._machine.apply(LinkEvent.ENDED)
            if self._session.state.connection.value != "closed":
                self._session.connection_lost(None, "closed", by_client=self._close_started)
                lost = list(self._session.events())
                self._publish()
            else:
                lost = []
        for event in lost:
            self._emit(event)
        self._sendq.close(discard=True)
        self._log.end()
        self._dispatcher.stop()  # after the last callbacks: no thread outlives the link, close() or not

    # ------------------------------------------------------------------------------------------ recycle
    def _maybe_recycle(self) -> None:
        """Sender thread (every tick, and asked by the receiver at ``response.done``): recycle the
        session at a turn boundary past its age limit."""
        limit = self._opts["max_session_seconds"]
        if not limit or time.monotonic() - self._session_started < limit:
            return
        conn = self._conn
        with self._lock:
            state = self._session.state
            if (conn is None or self._machine.state is not LinkState.OPEN
                    or state.response is not ResponseState.IDLE or state.input_buffer is InputBufferState.SPEECH):
                return
            self._machine.apply(LinkEvent.RECYCLE)
            self._pending.extend(self._sendq.pause())
        log.info("recycling the session after %.0f s, before the provider's limit", limit)
        conn.send_close(1000, "session recycle")

    # ------------------------------------------------------------------------------------------ per tick
    def _tick(self) -> None:
        """Sender thread, about once a second and after every wait or call (between back-to-back sends at
        most every ``DUTY_INTERVAL_S``): the link's periodic duties."""
        self._maybe_recycle()
        self._maybe_rollover()
        self._retire_tick()
        self._settle_cancel()
        self._keepalive_audio()

    def _settle_cancel(self) -> None:
        """End a cancelled response the server never finishes (DashScope's qwen3.5 models send no
        ``response.done`` after ``response.cancel``): once the dialect's ``cancel_done_timeout`` has
        passed since the cancel with no ``response.done`` for that response, a synthetic one
        (``cancelled``, reason ``client_cancelled``, ``raw["rtedge_synthetic"]``) goes to consumers,
        and through the session state while it still waits on that response.  A real
        ``response.done`` arriving later is delivered as well."""
        timeout, pending = self.dialect.cancel_done_timeout, self._cancel_pending
        if timeout is None or pending is None or time.monotonic() - pending[1] < timeout:
            return
        self._cancel_pending = None
        rid, _, mark = pending
        if self._offline:
            return  # going offline settled it already
        done = ev.ResponseDone(type="response.done", raw={"rtedge_synthetic": True}, response={
            "id": rid or "", "object": "realtime.response", "status": "cancelled",
            "status_details": {"type": "cancelled", "reason": "client_cancelled"}})
        with self._lock:
            state = self._session.state
            waiting = state.response is ResponseState.CANCELLING and state.response_id == rid
            if waiting:
                state.on_event(done)
                self._publish()
        if not waiting:  # the state moved on (a new response started, or the done came): was it done?
            def ended(e: ev.ServerEvent) -> bool:
                return isinstance(e, ev.ResponseDone) and (not rid or e.response_id in (rid, ""))
            try:
                self._log.find(mark, ended, 0)
                return
            except (DeadlineExceeded, ConnectionClosed):
                pass
        log.info("no response.done %.1f s after response.cancel; settling %s as cancelled", timeout, rid)
        self._emit(done)

    def _keepalive_audio(self) -> None:
        """With ``keepalive_audio_s``: append a little silence after that long without input audio
        (DashScope ends a session after about 300 s without audio; WebSocket pings do not count).
        Checked on the sender's tick (about 1 s), so keep it a few seconds under the provider's cut."""
        every = self._opts.get("keepalive_audio_s")
        if not every or self._machine.state is not LinkState.OPEN:
            return
        if time.monotonic() - self._last_audio_at < every:
            return
        fmt = self._session.state.input_format
        fill = {"pcmu": b"\xff", "pcma": b"\xd5"}.get(fmt.kind, b"\x00")  # digital silence per format
        samples = int(fmt.rate * KEEPALIVE_SILENCE_MS / 1000)
        silence = fill * (samples * fmt.bytes_per_sample)
        try:
            self._send(ev.InputAudioBufferAppend(audio=silence), KEEPALIVE_SILENCE_MS)
        except (ConnectionClosed, LocalProtocolError) as exc:
            log.debug("keepalive audio not sent: %s", exc)

    @property
    def usage(self) -> Usage:
        """Token totals over all responses so far, across reconnects and rollovers."""
        total = self.snapshot.usage
        with self._lock:
            for entry in self._retiring.values():  # old sessions still draining after a rollover
                total = total + entry.session.state.usage
        return total


def _quietly(fn: Callable[[bytes], None], data: bytes) -> None:
    try:
        fn(data)
    except ConnectionClosed:
        pass  # the connection is going away; the receiver will notice
