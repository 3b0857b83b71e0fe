"""What every new connection goes through, shared by connect, reconnect (``_link``) and rollover.

A new connection is established the same way whoever opens it: read frames on the opening
thread until ``session.created``; have ``rtedge-sender`` send the session config and the seeded
conversation (:func:`seed_texts`, :func:`send_on_sender`); read on until the server confirmed
them.  The functions here do the reading and the sending; what a message does to which session
is the caller's ``handle``.

Owns: what every new connection goes through.  Must not: run on any thread but the one opening the connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import ConnectionClosed, DeadlineExceeded, ServerError
from ..protocol import events as ev
from ..protocol.config import SessionConfig
from ..protocol.session import Session
from . import _ws
from ._workers import SendQueue, TransportStats

#: how long a reader waits for the sender to run a socket operation it asked for
SENDER_CALL_TIMEOUT = 5.0

Handle = Callable[[bytes], list[ev.ServerEvent]]


def event_id_of(text: str) -> str | None:
    """The event_id of a client event we serialized (``Dialect.encode`` writes it second)."""
    marker = '"event_id":"'
    start = text.find(marker)
    if start < 0:
        return None
    start += len(marker)
    return text[start:text.index('"', start)]


def server_error(event: ev.Error) -> ServerError:
    """The exception for an ``error`` event that answers something we sent."""
    e = event.error
    return ServerError(e.message, code=e.code, event_id=e.event_id, type=e.type, param=e.param)


def read_one(conn: _ws.WsConnection, stats: TransportStats, handle: Handle, who: str) -> list[ev.ServerEvent]:
    """One frame of ``conn`` on this thread: a text message's events (through ``handle``), else none.

    Raises:
        ConnectionClosed: ``who`` (e.g. "the server") closed the connection, or it broke.
        DeadlineExceeded: no frame within the socket's timeout.
    """
    opcode, payload = conn.recv()
    stats.last_receive = time.monotonic()
    if opcode == _ws.CLOSE:
        code, reason = _ws.parse_close(payload)
        raise ConnectionClosed(f"{who} closed the connection ({code} {reason})".strip(), code, reason)
    return handle(payload) if opcode == _ws.TEXT else []


def read_until(conn: _ws.WsConnection, stats: TransportStats, handle: Handle,
               match: Callable[[ev.ServerEvent], bool], deadline: float, who: str,
               waiting_for: str = "answer") -> ev.ServerEvent:
    """Read ``conn`` on this thread (see :func:`read_one`) until an event matches; its socket timeout
    follows ``deadline`` (monotonic) and is cleared on the way out.

    Raises:
        DeadlineExceeded: nothing matched by ``deadline`` (the message names ``waiting_for``, what
            ``match`` waits for: frames may have come, just not that one).
        ConnectionClosed: as :func:`read_one`.
    """
    late = DeadlineExceeded(f"no {waiting_for} from {who} in time (connect_timeout)")
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise late
            conn.set_timeout(remaining)
            try:
                events = read_one(conn, stats, handle, who)
            except DeadlineExceeded:
                raise late from None
            for event in events:
                if match(event):
                    return event
    finally:
        conn.set_timeout(None)


def seed_texts(session: Session, config: SessionConfig | None,
               items: Iterable[Mapping[str, Any]]) -> tuple[list[str], str | None, set[str | None]]:
    """Under the client's lock: serialize a new session's ``session.update`` (when ``config``) and one
    ``conversation.item.create`` per item, for ``session``.  Returns the texts, the update's event_id
    and the items' event_ids."""
    texts, update_id = [], None
    if config is not None:
        texts.append(session.send(ev.SessionUpdate(session=config)))
        update_id = event_id_of(texts[0])
    item_ids = set()
    for item in items:
        texts.append(session.send(ev.ConversationItemCreate(item=item)))
        item_ids.add(event_id_of(texts[-1]))
    return texts, update_id, item_ids


def send_texts(conn: _ws.WsConnection, texts: Iterable[str], stats: TransportStats) -> None:
    """Sender thread: write ``texts`` on ``conn``, counted.

    Raises:
        ConnectionClosed: the socket is gone.
    """
    for text in texts:
        conn.send_text(text)
        stats.messages_sent += 1
        stats.bytes_sent += len(text)


def send_on_sender(sendq: SendQueue, conn: _ws.WsConnection, texts: list[str], stats: TransportStats,
                   deadline: float) -> None:
    """Have ``rtedge-sender`` write ``texts`` on ``conn`` (ahead of queued items) and wait for it.

    Raises:
        ConnectionClosed / DeadlineExceeded: as :meth:`SendQueue.call`.
    """
    if texts:
        wait = max(0.0, deadline - time.monotonic()) + SENDER_CALL_TIMEOUT
        sendq.call(lambda: send_texts(conn, texts, stats), wait)
