"""Make-before-break session rollover: a new server session before the provider ends the old one.

Theory of operation
-------------------
Every session has a deadline (:func:`~rtedge.protocol.reseed.session_deadline`:
the dialect's limit, or ``session_limit_s``, from the time the server created
it, shortened by ``expires_at`` in ``session.created``; a rollover's next
session is created well before it becomes the current one).  From ``deadline - margin`` on, the sender's tick moves
the link ``OPEN --rollover--> ROLLING_OVER`` and starts ``rtedge-rollover``.
The old session keeps serving all along: audio and events still go out on it.

``rtedge-rollover`` opens a second connection itself (its HTTP upgrade is the
only write the sender does not make: no frame has gone on that socket yet, and
the sender goes on sending the live session's audio meanwhile), hands it to
the sender, which writes every frame on it from then on, and is the only
reader of that socket until the switch.  It feeds the new socket's events to a second sans-IO
:class:`~rtedge.protocol.session.Session` without delivering them, has the
sender send the session config and the conversation (within the seeding
budget, :func:`~rtedge.protocol.reseed.seed_plan`), and reads until the
server confirmed the config and created every item.  Seeded are the items
before the first one that is not final yet
(:func:`~rtedge.protocol.reseed.unsettled`: being generated, or user audio
whose transcript is still to come), so the new session's order is the old
one's.  Then it waits, still reading the new socket, for a quiet moment on
the old session (no response active, no user speech, no uncommitted
manual-turn audio, no ``session.update`` unanswered), or for the forced
point (:class:`~rtedge.protocol.reseed.RolloverTiming`; user speech in
progress there delays it, by half the forced margin at most, so that an
utterance is not split between the sessions).

The switch is one locked step: items the old session gained since the
snapshot, up to the first one not final yet, are serialized for the new
session, the new session becomes the one every later send is serialized with, the link moves ``--switched--> OPEN``,
and an in-order call is queued for the sender (:meth:`SendQueue.put_call`).
Items queued before that call were serialized for the old session and go
out on the old socket; the call sends the late items on the new socket and
moves the sender's write target; items queued after it go to the new
socket.  The send path thus switches at a frame boundary, and no append is
lost or sent twice.  ``rtedge.session_rollover`` follows.

``rtedge-rollover`` then *is* the receiver (it takes the name
``rtedge-receiver``) and reads the new socket; the old receiver (renamed
``rtedge-receiver-draining``) keeps reading the old socket and delivering its
events, so a response still streaming there (a forced switch) is not cut.

A user turn in flight at the switch
-----------------------------------
A forced switch can come right after a user turn was committed on the old
session, before its transcript or its answer arrived.  The rule: **the old
session answers what it was given, and is ended only once it owes nothing**
(:meth:`Retiring.owes`):

* a response streaming on it: until ``response.done`` (as before);
* a response expected (our ``response.create``, or a turn server VAD ended,
  with no ``response.created`` yet): up to :data:`EXPECT_S`;
* the transcript of a recent user turn: up to :data:`TRANSCRIPT_WAIT_S`
  after the switch.

The two waits stop ``guard`` (:data:`END_GUARD_S`, at most half the forced
margin) before the old session's deadline.  A response still streaming a
quarter ``guard`` before it (the switch came late, a slow connect, or the
answer is long) is cancelled (``response.done`` says ``cancelled``), and the
old session is closed at its deadline at the latest: the provider's limit is
never hit (before, the provider cut such an answer with ``session_expired``).  The turn's audio went to the old session only (every sample
goes to exactly one session), so it is answered there, once: the new session
never gets the audio and is never asked to answer it.  When the old session
ends, the items it gained since the switch (the turn as its transcript, the
answer) are copied to the new session in the old order (appended: a turn the
new session completed meanwhile stays before them), so the model knows what
was said.  A user turn whose transcript never came is not copied (logged).
Once the old session owes nothing the sender ends it the dialect's way
(DashScope ``session.finish``, then close 1000; others close 1000) and the
old receiver exits on the close.  A failed rollover moves the link back to
``OPEN`` (the old session still serves) and is retried a few seconds later;
if the old socket is lost before the switch, the new one is dropped and the
ordinary reconnect takes over.

Owns: make-before-break session rollover.  Must not: write frames on the live connection (the sender does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from ..errors import ConnectionClosed, DeadlineExceeded, LocalProtocolError
from ..protocol import events as ev
from ..protocol._state import InputBufferState, ResponseState, SessionState
from ..protocol.reseed import (RolloverTiming, SeedPlan, replay_item, seed_plan, session_deadline, transcribes,
                               unsettled)
from ..protocol.dialects import Dialect
from ..protocol.session import Session
from . import _ws
from ._core import Core
from ._handshake import read_one, read_until, seed_texts, send_on_sender, server_error
from ._lifecycle import LinkEvent, LinkState

log = logging.getLogger("rtedge")

#: how often the rollover thread looks for a quiet moment while it reads the new socket
QUIET_POLL_S = 0.02
#: the default timing: 120 s / 20 s before the limit, scaled down for sessions shorter than 8 minutes
DEFAULT_TIMING = RolloverTiming()
#: seconds before retrying a rollover that failed
RETRY_S = 2.0
#: how long a response is expected after response.create or the end of a server-VAD turn (then it
#: is assumed not to come: ``create_response`` off, or a refused create)
EXPECT_S = 3.0
#: how long an old session is kept after the switch for a user turn's transcript (so the new session
#: can be given the turn as text)
TRANSCRIPT_WAIT_S = 5.0
#: an old session waiting for an expected response or a transcript stops waiting this long before its
#: deadline (at most half the forced margin): the provider's limit is not hit for a wait
END_GUARD_S = 1.0


@attrs.define(eq=False)
class Retiring:
    """An old session after its rollover: draining until it ends."""

    session: Session
    deadline: float | None  # epoch seconds the provider ends it
    guard: float = END_GUARD_S  # it is ended this long before ``deadline`` at the latest
    end_requested: float | None = None  # monotonic time its end (finish or close) was asked
    #: ids of its items the new session has been given (or that had nothing to give): the others are
    #: copied once final, when it ends
    carried: set[str] = attrs.field(factory=set)
    #: a response it owes: (event_id of our response.create or None for a server-VAD turn, monotonic
    #: time it became expected); None once ``response.created`` came
    expecting: tuple[str | None, float] | None = None
    switched_at: float = attrs.field(factory=time.monotonic)
    cancel_sent: bool = False  # its response was cancelled before its deadline
    #: the sender's in-order switch call: until it ran, audio queued for the old session is still
    #: going out on it, so the old session must not be ended yet
    switch: Any = None

    def switched(self) -> bool:
        return self.switch is None or self.switch.done.is_set()

    def owes(self, now: float, wall: float) -> str | None:
        """What it still owes the conversation, or None: a response streaming (until it is done, as
        before a rollover), a response expected (within :data:`EXPECT_S`) or a user turn's transcript
        (within :data:`TRANSCRIPT_WAIT_S` of the switch); the last two until ``guard`` before its deadline."""
        state = self.session.state
        if state.response is not ResponseState.IDLE:
            return "a response"
        if self.deadline is not None and wall >= self.deadline - self.guard:
            return None
        if self.expecting is not None and now - self.expecting[1] <= EXPECT_S:
            return "an expected response"
        if now - self.switched_at <= TRANSCRIPT_WAIT_S and any(key not in self.carried for key in unsettled(state)):
            return "a transcript"
        return None

    def cancel_due(self, wall: float) -> bool:
        """A response still streams a quarter ``guard`` before the deadline: cancel it (the switch came
        late, or the answer is long), or the provider's limit would cut it with ``session_expired``."""
        return (not self.cancel_sent and self.deadline is not None and wall >= self.deadline - self.guard / 4
                and self.session.state.response is ResponseState.ACTIVE)


def _server_vad(session: dict[str, Any]) -> bool:
    """The session (canonical shape) turns user audio into turns by itself (server VAD on)."""
    audio = session.get("audio")
    if isinstance(audio, dict) and isinstance(audio.get("input"), dict):
        return bool(audio["input"].get("turn_detection"))
    return bool(session.get("turn_detection"))


def quiet(state: SessionState) -> bool:
    """Nothing in flight that a switch would split: no response, no speech, no manual-turn audio."""
    if state.response is not ResponseState.IDLE or state.input_buffer is InputBufferState.SPEECH:
        return False
    return state.input_buffer is InputBufferState.EMPTY or _server_vad(state.session)


class Rollover(Core):
    """The rollover piece of :class:`rtedge.Client`: its state is made here; the parts and the session
    record it moves at a switch are :class:`~._core.Core`'s."""

    def __init__(self, dialect: Dialect, url: str, headers: dict[str, str], options: dict[str, Any]) -> None:
        super().__init__(dialect, url, headers, options)
        self._deadline: float | None = None  # epoch seconds the current session ends; None: no limit
        self._timing: Any = None  # RolloverTiming scaled to the current session's length
        self._retry_at = 0.0  # monotonic: no new rollover before (after a failure)
        #: old connections after a switch, until their receiver is done with them
        self._retiring: dict[_ws.WsConnection, Retiring] = {}
        #: threads that left the receiver's role (old receivers, failed rollovers): joined on close
        self._draining: list[threading.Thread] = []

    # -- what Link provides (a new connection, and the reading of it) --------------------------------------
    def _open_here(self, timeout: float) -> _ws.WsConnection:
        """Open a connection on this thread and hand it to the sender (:class:`~._link.Link`)."""
        raise NotImplementedError

    def _release(self, conn: _ws.WsConnection) -> None:
        """Have the sender close and shut down ``conn`` (:class:`~._link.Link`)."""
        raise NotImplementedError

    def _receive_loop(self, conn: _ws.WsConnection | None, session: Session) -> None:
        """Read ``conn`` for ``session`` until it ends (:class:`~._link.Link`)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ deadline
    def _session_limit(self) -> float | None:
        limit = self._opts["session_limit_s"]
        if limit == "auto":
            return self.dialect.session_limit_s
        return float(limit) if limit else None

    def _arm_deadline(self, session: Session, started: float | None = None) -> None:
        """Under the lock, when ``session`` becomes the current one: its deadline and timing.
        ``started``: when the server created it (epoch seconds; default now): a rollover's next session
        is created while the old one still serves, and its limit runs from then."""
        started = time.time() if started is None else started
        off = self._opts["max_session_seconds"] or self._opts["session_limit_s"] is None
        deadline = None if off else session_deadline(started, self._session_limit(), session.state.session)
        self._deadline = deadline
        timing = self._opts["rollover_timing"]
        if deadline is not None and timing == DEFAULT_TIMING:  # the default margins shrink for short sessions
            timing = timing.scaled(max(1.0, deadline - started))  # (its whole lifetime, not what is left)
        self._timing = None if deadline is None else timing

    # ------------------------------------------------------------------------------------------ trigger
    def _maybe_rollover(self) -> None:
        """Sender tick: past ``deadline - margin``, start a rollover on ``rtedge-rollover``."""
        deadline, timing = self._deadline, self._timing
        if deadline is None or timing is None or time.time() < deadline - timing.margin_s:
            return
        if time.monotonic() < self._retry_at:
            return
        with self._lock:
            if self._machine.state is not LinkState.OPEN or deadline != self._deadline:
                return  # (a rollover switched since the read: that deadline was the old session's)
            self._machine.apply(LinkEvent.ROLLOVER)
            self._draining = [t for t in self._draining if t.is_alive()]
            thread = threading.Thread(target=self._rollover_run, name="rtedge-rollover", daemon=True)
            self._threads.append(thread)
            thread.start()  # under the lock: close() never sees an unstarted thread
        log.info("session rollover: %.1f s before the session limit, opening the next session",
                 deadline - time.time())

    # ------------------------------------------------------------------------------------------ the thread
    def _rollover_run(self) -> None:
        """Body of ``rtedge-rollover``: prepare, switch, then serve as the receiver."""
        try:
            prepared = self._rollover_prepare()
        except Exception as exc:  # RtEdgeError, OSError, a malformed frame...: the old session goes on
            self._rollover_failed(f"{type(exc).__name__}: {exc}")
            return
        if prepared is None:
            self._leave_threads()
            return
        conn, session, plan, snapshot, created = prepared
        try:
            switched = self._rollover_wait_and_switch(conn, session, plan, snapshot, created)
        except Exception as exc:  # (before the switch: after it, this thread is the receiver)
            self._release(conn)
            self._rollover_failed(f"{type(exc).__name__}: {exc}")
            return
        if not switched:
            self._release(conn)
            self._leave_threads()
            return
        self._receive_loop(conn, session)

    def _rolling(self) -> bool:
        return self._machine.state is LinkState.ROLLING_OVER

    def _rollover_prepare(self) -> tuple[_ws.WsConnection, Session, SeedPlan, set[str], float] | None:
        """Open and seed the next session (and when the server created it, epoch seconds); None when
        the link moved on meanwhile (conn released).

        Raises:
            RtEdgeError: the connection, its config or its seeding failed (conn released).
        """
        timeout = self._opts["connect_timeout"]
        deadline = time.monotonic() + timeout
        with self._lock:
            # the items before the first one not final yet (being generated, or user audio whose
            # transcript is still to come) are seeded; from that one on, the switch takes them
            old = self._session.state
            keys = list(old.items)
            pending = set(unsettled(old))
            settled = keys[:next((i for i, key in enumerate(keys) if key in pending), len(keys))]
            seedable = "item_create" in self.dialect.capabilities  # (a transcription session has no items)
            history = [replay_item(old.items[key], old) for key in settled] if seedable else []
            plan = seed_plan([item for item in history if item is not None], self._opts["seed_budget"])
            snapshot = set(settled)
        conn = self._open_here(timeout)  # the sender keeps sending on the old socket meanwhile
        session = Session(self.dialect)
        try:
            if not self._rolling():
                self._release(conn)
                return None
            first = self._pump_into(conn, session, lambda e: isinstance(e, ev.SessionCreated | ev.Error), deadline)
            created = time.time()
            if isinstance(first, ev.Error):
                raise server_error(first)
            self._seed(conn, session, plan, deadline)
        except BaseException:
            self._release(conn)
            raise
        return conn, session, plan, snapshot, created

    def _seed(self, conn: _ws.WsConnection, session: Session, plan: SeedPlan, deadline: float) -> None:
        """Send the config and the planned items on ``conn`` (by the sender) and read until the server
        confirmed the config and added every item (an item it refuses is logged and counted out)."""
        with self._lock:
            texts, update_id, item_ids = seed_texts(session, self._requested, plan.items)
        send_on_sender(self._sendq, conn, texts, self.stats, deadline)
        updated = update_id is None or not self.dialect.acknowledges_session_update
        refused = 0

        def done() -> bool:
            return updated and len(session.state.items) + refused >= len(plan.items)

        def settled(e: ev.ServerEvent) -> bool:
            nonlocal updated, refused
            if isinstance(e, ev.Error):
                if e.error.event_id is not None and e.error.event_id == update_id:
                    raise server_error(e)
                if e.error.event_id in item_ids:
                    refused += 1
                    log.warning("session rollover: the new session refused a seeded item: %s", e.error.message)
            updated = updated or isinstance(e, ev.SessionUpdated)
            return done()

        if not done():
            self._pump_into(conn, session, settled, deadline)

    def _pump_into(self, conn: _ws.WsConnection, session: Session, match: Callable[[ev.ServerEvent], bool],
                   deadline: float) -> ev.ServerEvent:
        """Read ``conn`` on this thread into ``session`` (nothing delivered) until an event matches."""
        return read_until(conn, self.stats, self._into(session), match, deadline, "the new session")

    def _into(self, session: Session) -> Callable[[bytes], list[ev.ServerEvent]]:
        """A message of the new connection into ``session``: its events, not delivered."""
        def handle(payload: bytes) -> list[ev.ServerEvent]:
            event = session.parse_message(payload.decode("utf-8"))
            with self._lock:
                session.receive_event(event)
                events = list(session.events())
            for event in events:
                if isinstance(event, ev.Error):
                    log.warning("session rollover: error from the new session: %s", event.error.message)
            return events
        return handle

    # ------------------------------------------------------------------------------------------ switch
    def _rollover_wait_and_switch(self, conn: _ws.WsConnection, session: Session, plan: SeedPlan,
                                  snapshot: set[str], created: float) -> bool:
        """Read the new socket until a quiet moment (or the forced point), then switch; False when the
        link moved on meanwhile (the old socket was lost, or close())."""
        conn.set_timeout(QUIET_POLL_S)
        handle = self._into(session)
        try:
            while True:
                with self._lock:
                    if not self._rolling():
                        return False
                    calm = quiet(self._session.state) and not self._updates_in_flight and (
                        self._create_pending is None or time.monotonic() - self._create_pending[1] > EXPECT_S)
                    speaking = self._session.state.input_buffer is InputBufferState.SPEECH
                    decision = self._timing.decide(time.time(), self._deadline, calm, speaking)
                    if decision != "wait":
                        switched = self._switch(conn, session, plan, snapshot, created, forced=decision == "now")
                        break
                try:
                    read_one(conn, self.stats, handle, "the new session")
                except DeadlineExceeded:
                    pass
        finally:
            conn.set_timeout(None)
        self._emit(switched)
        log.info("session rollover: %s -> %s (%d items seeded, %d summarized, %d dropped%s)",
                 switched.old_session_id, switched.new_session_id, switched.seeded_items, switched.summarized,
                 switched.dropped, ", forced" if switched.forced else "")
        return True

    def _switch(self, conn: _ws.WsConnection, session: Session, plan: SeedPlan, snapshot: set[str],
                created: float, forced: bool) -> ev.SessionRollover:
        """Under the lock: make ``session`` the current one and queue the sender's switch."""
        old_session, old_conn = self._session, self._conn
        assert old_conn is not None
        # the old session keeps what it owes: a response streaming or expected (a forced switch right
        # after a user turn), which it still gives; it is ended once it owes nothing (Retiring.owes)
        entry = Retiring(session=old_session, deadline=self._deadline, carried=set(snapshot),
                         guard=min(END_GUARD_S, self._timing.force_s / 2), expecting=self._create_pending)
        late_texts = []
        if "item_create" in self.dialect.capabilities:
            state = old_session.state
            pending = set(unsettled(state))
            for key, item in state.items.items():
                if key in entry.carried:
                    continue
                if key in pending:  # it and every later item are copied once final (Rollover._copy_rest)
                    break
                entry.carried.add(key)
                replay = replay_item(item, state)
                if replay is not None:
                    late_texts.append(session.send(ev.ConversationItemCreate(item=replay)))
        else:
            entry.carried.update(old_session.state.items)
        self._retiring[old_conn] = entry
        self._session = session
        self._publish()
        self._create_pending = None
        self._session_started = time.monotonic()
        self._machine.apply(LinkEvent.SWITCHED)
        self._arm_deadline(session, created)
        entry.switch = self._sendq.put_call(lambda: self._switch_on_sender(conn, old_conn, late_texts))
        self.stats.rollovers += 1
        me = threading.current_thread()
        for thread in list(self._threads):
            if thread.name == "rtedge-receiver" and thread is not me:
                thread.name = "rtedge-receiver-draining"
                self._threads.remove(thread)
                self._draining.append(thread)
        me.name = "rtedge-receiver"
        return ev.SessionRollover(
            type=ev.SessionRollover.TYPE, old_session_id=old_session.state.session_id or "",
            new_session_id=session.state.session_id or "", seeded_items=len(plan.items) + len(late_texts),
            summarized=plan.summarized, dropped=plan.dropped, forced=forced)

    def _switch_on_sender(self, conn: _ws.WsConnection, old: _ws.WsConnection, late: list[str]) -> None:
        """Sender, in queue order: from here on write to ``conn``; end the old session if it owes nothing."""
        self._conn = conn
        entry = self._retiring.get(old)
        if entry is not None:
            entry.switch = None  # (the call is running: what was queued for the old session went out)
        try:
            for text in late:
                conn.send_text(text)
                self.stats.messages_sent += 1
                self.stats.bytes_sent += len(text)
        except ConnectionClosed as exc:
            log.debug("session rollover: late items not sent (%s); the receiver will see the loss", exc)
        if entry is not None:
            with self._lock:
                owed = entry.owes(time.monotonic(), time.time())
            if owed is None:
                self._end_retiring(old)
            else:
                log.debug("session rollover: the old session stays for %s", owed)

    def _rollover_failed(self, cause: str) -> None:
        """The rollover thread failed before the switch: the old session keeps serving; retry later."""
        with self._lock:
            if self._rolling():
                self._machine.apply(LinkEvent.ROLLOVER_FAILED)
                self.stats.rollover_failures += 1
                self._retry_at = time.monotonic() + RETRY_S
                log.warning("session rollover failed (%s); the current session goes on, retrying in %.0f s",
                            cause, RETRY_S)
        self._leave_threads()

    def _leave_threads(self) -> None:
        """The rollover thread ends without becoming the receiver: joined on close, not watched."""
        me = threading.current_thread()
        with self._lock:
            if me in self._threads:
                self._threads.remove(me)
                self._draining.append(me)

    # ------------------------------------------------------------------------------------------ the old session
    def _end_retiring(self, conn: _ws.WsConnection) -> None:
        """Sender: end an old session the dialect's way (DashScope ``session.finish``, else close 1000),
        after copying to the new session what it gained since the switch."""
        entry = self._retiring.get(conn)
        if entry is None or entry.end_requested is not None or not entry.switched():
            return  # (before the switch call ran, the old session still has audio to take)
        entry.end_requested = time.monotonic()
        log.debug("session rollover: ending the old session %s, %.1f s after the switch%s",
                  entry.session.state.session_id, entry.end_requested - entry.switched_at,
                  "" if entry.deadline is None else f", {entry.deadline - time.time():.1f} s before its deadline")
        self._copy_rest(entry)
        try:
            if "session_finish" in self.dialect.capabilities:
                with self._lock:
                    text = entry.session.send(ev.SessionFinish())
                conn.send_text(text)
            else:
                conn.send_close(1000, "session rollover")
        except (ConnectionClosed, LocalProtocolError) as exc:
            log.debug("session rollover: the old session could not be ended cleanly (%s)", exc)
            conn.send_close(1000, "session rollover")

    def _retiring_events(self, conn: _ws.WsConnection, entry: Retiring, events: list[ev.ServerEvent]) -> None:
        """Old receiver: track what the old session owes; once it owes nothing, end it; once it
        finished, close it."""
        now = time.monotonic()
        for event in events:
            if isinstance(event, ev.SessionFinished) or (
                    isinstance(event, ev.Error) and entry.end_requested is not None):
                self._submit(lambda: conn.send_close(1000, "session rollover"))
            elif isinstance(event, ev.InputAudioBufferSpeechStopped | ev.InputAudioBufferCommitted):
                entry.expecting = (None, now)  # a turn ended from audio sent before the switch
            elif isinstance(event, ev.ResponseCreated) or (isinstance(event, ev.Error) and entry.expecting
                                                           and event.error.event_id == entry.expecting[0]):
                entry.expecting = None
        with self._lock:
            done = entry.end_requested is None and entry.owes(now, time.time()) is None
            cancel = entry.end_requested is None and entry.cancel_due(time.time())
        if done:
            self._submit(lambda: self._end_retiring(conn))
        elif cancel:
            self._submit(lambda: self._cancel_retiring(conn))

    def _cancel_retiring(self, conn: _ws.WsConnection) -> None:
        """Sender: cancel the response still streaming on an old session just before its deadline."""
        entry = self._retiring.get(conn)
        with self._lock:
            if entry is None or not entry.cancel_due(time.time()):
                return
            entry.cancel_sent = True
            try:
                text = entry.session.send(ev.ResponseCancel())
            except LocalProtocolError as exc:
                log.debug("session rollover: the old session's response not cancelled (%s)", exc)
                return
        log.warning("session rollover: the old session's response is cancelled %.2f s before the session "
                    "limit (the switch came late or the answer is long)", entry.guard / 4)
        try:
            conn.send_text(text)
        except ConnectionClosed as exc:
            log.debug("session rollover: the old session's response not cancelled (%s)", exc)

    def _copy_rest(self, entry: Retiring) -> None:
        """The old session is ending: the new session gets what the old one gained since the switch
        (the answer to a turn in flight at a forced switch, the turn itself once transcribed),
        appended to its conversation in the old order, so the model knows what was said."""
        if "item_create" not in self.dialect.capabilities:
            return
        with self._lock:
            state = entry.session.state
            rest = [(key, item, replay_item(item, state)) for key, item in state.items.items()
                    if key not in entry.carried]
            entry.carried.update(key for key, _, _ in rest)
            transcribing = transcribes(state.session)
        for key, item, replay in rest:
            if replay is None:
                if item.get("role") == "user" and transcribing:
                    log.info("session rollover: user turn %s not copied to the new session (no transcript)", key)
                continue
            try:
                self._send(ev.ConversationItemCreate(item=replay))
            except (ConnectionClosed, LocalProtocolError) as exc:
                log.info("session rollover: the old session's last items not copied (%s)", exc)
                return

    def _submit(self, fn: Callable[[], None]) -> None:
        try:
            self._sendq.submit(fn)
        except ConnectionClosed:
            pass  # the sender is gone: it shut every connection down

    def _retire_tick(self) -> None:
        """Sender tick: end old sessions that never went idle, close unfinished ones, drop dead ones."""
        now, wall = time.monotonic(), time.time()
        finish = self._opts["finish_timeout"]
        for conn, entry in list(self._retiring.items()):
            if entry.end_requested is None:
                with self._lock:
                    owed = entry.owes(now, wall)
                if owed is None:
                    self._end_retiring(conn)  # it owes nothing (an expectation ran out, or no event came)
                elif entry.deadline is not None and wall >= entry.deadline:
                    self._end_retiring(conn)  # its limit: whatever is left (a cancel not answered)
                elif entry.cancel_due(wall):
                    self._cancel_retiring(conn)
            elif not conn.close_sent and now - entry.end_requested > finish:
                conn.send_close(1000, "session rollover")
            elif now - entry.end_requested > finish + 5.0:
                conn.abort()  # the server never answered the close: wake the old receiver

    def _retired(self, conn: _ws.WsConnection) -> bool:
        return conn in self._retiring
