"""What every piece of the client shares: its parts, and the record of the session the link serves.

The client is three pieces by responsibility, each a class over the one before: :class:`Core` (here: the
parts and the session record), :class:`~._rollover.Rollover` (make-before-break session replacement),
:class:`~._link.Link` (establishing, keeping and recovering the link) and :class:`~.client.Client` (the
public API: sending, receiving, closing).  Each declares and creates, in its own ``__init__``, the state
it manages; what a piece needs from a later one is a method stub here or in that piece (``_emit``...),
never a field.

Who writes what here:

* the parts (``dialect``, ``stats``, the send queue, the inbox, the dispatcher, the stop flag, the URL
  and headers, the options) are made once in ``__init__`` and never replaced;
* the session record (``_session``, ``_machine``, ``_usage_before``, ``_requested``,
  ``_updates_in_flight``, ``_session_started``, ``_create_pending``) is changed only under
  ``_lock``, by the thread that moves the session (the receiver, ``connect()``'s caller, a
  rollover's switch, a caller sending), which then calls :meth:`Core._publish`;
* ``_conn``, the sender's write target, is written by ``rtedge-sender`` (and by ``connect()`` when
  it fails, before any other thread runs).

Owns: the client's parts and its session record.  Must not: do I/O or start threads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from ..protocol import events as ev
from ..protocol._state import SessionSnapshot
from ..protocol.config import SessionConfig
from ..protocol.dialects import Dialect
from ..protocol.session import Session
from ..protocol.usage import Usage
from . import _ws
from ._inbox import Dispatcher, EventLog
from ._lifecycle import LinkMachine, LinkState
from ._workers import SendQueue, TransportStats


class Core:
    """The parts and the session record of a :class:`rtedge.Client` (see the module docstring)."""

    def __init__(self, dialect: Dialect, url: str, headers: dict[str, str], options: dict[str, Any]) -> None:
        self.dialect = dialect
        self._url = url
        self._headers = headers  # holds the key: never logged, never in repr
        self._opts = options
        self.stats = TransportStats()
        self._sendq = SendQueue(self.stats, options["max_audio_queue_ms"], options["send_batch_ms"])
        self._log = EventLog(options["inbox_size"], options["inbox_bytes"], self.stats, options["inbox_audio"])
        self._dispatcher = Dispatcher(self.stats, options["on_error"], self._log.dispatched,
                                      options["dispatch_bytes"])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conn: _ws.WsConnection | None = None  # the sender's write target
        # the session record: under the lock (pure calls only, never I/O)
        self._lock = threading.RLock()
        self._session = Session(dialect)
        self._machine = LinkMachine()
        self._snapshot: SessionSnapshot | None = SessionSnapshot()
        self._usage_before = Usage()  # the usage of the sessions before the current one
        self._requested: SessionConfig | None = None  # every session.update the server accepted, merged
        #: session.updates sent and not answered yet (event_id, config), oldest first
        self._updates_in_flight: deque[tuple[str | None, SessionConfig]] = deque()
        self._session_started = time.monotonic()
        #: (event_id of a response.create or None, monotonic time): a response is expected (we asked
        #: for one, or server VAD ended a turn) and has not started yet: not a quiet moment for a rollover
        self._create_pending: tuple[str | None, float] | None = None

    # -- what the client provides (the pieces below call these) -----------------------------------------
    def _on_text(self, payload: bytes, session: Session | None = None,
                 wake: bool = True) -> list[ev.ServerEvent]:
        """One message in, its events delivered (the receiving path: :class:`~.client.Client`)."""
        raise NotImplementedError

    def _emit(self, event: ev.ServerEvent) -> None:
        """Deliver an event rtedge made itself (:class:`~.client.Client`)."""
        raise NotImplementedError

    def _send(self, event: ev.ClientEvent, audio_ms: float = 0.0) -> str | None:
        """Serialise and queue a client event (:class:`~.client.Client`)."""
        raise NotImplementedError

    # -- the session record ---------------------------------------------------------------------------
    @property
    def link_state(self) -> LinkState:
        """Where the connection is in its life (see :class:`~rtedge.transport.LinkState`)."""
        return self._machine.state

    @property
    def snapshot(self) -> SessionSnapshot:
        """The session state as an immutable value (response and input-buffer states, the streaming
        item, formats, usage...), current as of this read: read this from any thread."""
        snap = self._snapshot
        if snap is None:  # changed since the last read: built once, under the lock, by the first reader
            with self._lock:
                snap = self._snapshot
                if snap is None:
                    snap = self._snapshot = self._session.state.snapshot(self._usage_before)
        return snap

    def _publish(self) -> None:
        """Under the lock, by the thread that just changed the session: the published snapshot is stale.

        The next read builds the new one (under the lock, so it is consistent), so that a client whose
        snapshot nobody reads pays nothing per event or append."""
        self._snapshot = None

    def _merge_requested(self, config: SessionConfig) -> None:
        """Under the lock: ``config`` was accepted; a new session after a reconnect is given it too."""
        self._requested = config if self._requested is None else self._requested.merged(config)
