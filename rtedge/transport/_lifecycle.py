"""The link's lifecycle: one enum, one transition table, one place that moves it.

The link is always in exactly one :class:`LinkState`.  It moves only through
:meth:`LinkMachine.apply` with a :class:`LinkEvent`; the table
:data:`TRANSITIONS` says which events are legal in which state and where
each leads.  An event the table does not list for the current state raises
:class:`~rtedge.errors.LocalProtocolError` (a bug in rtedge, never a network
condition: every network outcome has its own event).  Every transition is
logged at debug level on the ``rtedge`` logger as
``link: open --lost--> reconnecting``.

::

    CONNECTING --established--> OPEN            CONNECTING --connect_failed--> CLOSED
    OPEN --recycle--> RECYCLING                 (past max_session_seconds, at a turn boundary)
    OPEN --rollover--> ROLLING_OVER             (near the session limit: a second connection is seeded)
    ROLLING_OVER --switched--> OPEN             (sends now go to the new session; the old one ends)
    ROLLING_OVER --rollover_failed--> OPEN      (the new connection failed; the old one still serves)
    ROLLING_OVER --lost--> RECONNECTING         (the old connection was lost first: the new one is dropped)
    ROLLING_OVER --lost_final--> GAVE_UP
    OPEN / RECYCLING --lost--> RECONNECTING     (recoverable loss; a recycle always is)
    OPEN / RECYCLING --lost_final--> GAVE_UP    (fatal cause, or reconnect=None)
    RECONNECTING --reconnected--> OPEN          RECONNECTING --give_up--> GAVE_UP
    OPEN --finish--> FINISHING                  (close() ending the session the dialect's way)
    OPEN / ROLLING_OVER / RECYCLING / RECONNECTING / FINISHING --close--> CLOSING
    FINISHING / CLOSING --ended--> CLOSED       (the receiver is done with the last connection)

``CLOSED`` and ``GAVE_UP`` are final.  The values are strings
(:class:`enum.StrEnum`), so ``client.link_state == "open"`` keeps working,
but code in rtedge branches on the members.

The machine is pure (no I/O, no lock of its own): the client applies events
under its lock, and the check that decides an event and the event itself
happen in one locked step.  Readers on any thread read :attr:`LinkMachine.state`,
a single reference to an immutable enum member.

Owns: the link states and their transition table.  Must not: do I/O.
"""

from __future__ import annotations

import enum
import logging

from ..errors import LocalProtocolError

log = logging.getLogger("rtedge")


class LinkState(enum.StrEnum):
    """Where the connection is in its life (``client.link_state``)."""

    #: ``connect()`` is opening the socket and establishing the session
    CONNECTING = "connecting"
    #: established; sends go out
    OPEN = "open"
    #: ``close()`` is ending the session the dialect's way (DashScope ``session.finish``); sends go out
    FINISHING = "finishing"
    #: a proactive recycle closed the old socket; the receiver reconnects at once (sends are held)
    RECYCLING = "recycling"
    #: make-before-break: the old session still serves (sends go out on it) while a second connection
    #: is opened and seeded; at a frame boundary the send path switches to it (see ``_rollover``)
    ROLLING_OVER = "rolling_over"
    #: the connection was lost and the receiver is getting it back (sends are held, audio dropped)
    RECONNECTING = "reconnecting"
    #: ``close()`` was called; queued sends drain, then the socket closes
    CLOSING = "closing"
    #: ended by us (or by the server after a finish); final
    CLOSED = "closed"
    #: ended for good by a fatal cause or exhausted reconnects (``client.fatal_error`` says why); final
    GAVE_UP = "gave_up"


class LinkEvent(enum.Enum):
    """What happened to the link (the input of :meth:`LinkMachine.apply`)."""

    ESTABLISHED = "established"
    CONNECT_FAILED = "connect_failed"
    RECYCLE = "recycle"
    ROLLOVER = "rollover"
    SWITCHED = "switched"
    ROLLOVER_FAILED = "rollover_failed"
    LOST = "lost"
    LOST_FINAL = "lost_final"
    RECONNECTED = "reconnected"
    GIVE_UP = "give_up"
    FINISH = "finish"
    CLOSE = "close"
    ENDED = "ended"


S, E = LinkState, LinkEvent

#: state -> {event -> next state}; anything else is illegal
TRANSITIONS: dict[LinkState, dict[LinkEvent, LinkState]] = {
    S.CONNECTING: {E.ESTABLISHED: S.OPEN, E.CONNECT_FAILED: S.CLOSED},
    S.OPEN: {E.RECYCLE: S.RECYCLING, E.ROLLOVER: S.ROLLING_OVER, E.LOST: S.RECONNECTING,
             E.LOST_FINAL: S.GAVE_UP, E.FINISH: S.FINISHING, E.CLOSE: S.CLOSING},
    S.ROLLING_OVER: {E.SWITCHED: S.OPEN, E.ROLLOVER_FAILED: S.OPEN, E.LOST: S.RECONNECTING,
                     E.LOST_FINAL: S.GAVE_UP, E.CLOSE: S.CLOSING},
    S.RECYCLING: {E.LOST: S.RECONNECTING, E.LOST_FINAL: S.GAVE_UP, E.CLOSE: S.CLOSING},
    S.RECONNECTING: {E.RECONNECTED: S.OPEN, E.GIVE_UP: S.GAVE_UP, E.CLOSE: S.CLOSING},
    S.FINISHING: {E.CLOSE: S.CLOSING, E.ENDED: S.CLOSED},
    S.CLOSING: {E.ENDED: S.CLOSED},
    S.CLOSED: {},
    S.GAVE_UP: {},
}

#: states in which sends go out on the socket
SENDING = frozenset({S.OPEN, S.ROLLING_OVER, S.FINISHING})
#: states in which the link is down but coming back: control events wait, audio is dropped (counted)
HELD = frozenset({S.RECYCLING, S.RECONNECTING})
#: states in which ``client.closed`` is true: no send will ever go out again
ENDING = frozenset({S.CLOSING, S.CLOSED, S.GAVE_UP})
#: final states
FINAL = frozenset({S.CLOSED, S.GAVE_UP})


class LinkMachine:
    """The current :class:`LinkState` and the only way to change it."""

    def __init__(self, state: LinkState = LinkState.CONNECTING) -> None:
        self._state = state

    @property
    def state(self) -> LinkState:
        return self._state

    def can(self, event: LinkEvent) -> bool:
        """True when ``event`` is legal in the current state."""
        return event in TRANSITIONS[self._state]

    def apply(self, event: LinkEvent) -> LinkState:
        """Move along the table and return the new state.

        Raises:
            LocalProtocolError: ``event`` is not legal in the current state (the state is unchanged).
        """
        old = self._state
        new = TRANSITIONS[old].get(event)
        if new is None:
            raise LocalProtocolError(f"link event {event.value!r} is illegal in state {old.value!r}")
        self._state = new
        log.debug("link: %s --%s--> %s", old.value, event.value, new.value)
        return new

    def __repr__(self) -> str:
        return f"<LinkMachine {self._state.value}>"


def link_down_text(link: LinkState) -> str:
    """Why nothing can be sent in state ``link``, in words (``gave_up`` is not a sentence)."""
    if link is LinkState.GAVE_UP:
        return "the link gave up (client.fatal_error says why)"
    if link is LinkState.CONNECTING:
        return "the client is still connecting"
    return f"the link is {link.value.replace('_', ' ')}"
