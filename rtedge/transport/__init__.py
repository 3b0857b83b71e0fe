"""The threaded transport: the only layer with sockets and threads.

Ownership
---------
The :class:`Client` is built of pieces by responsibility, each a class over the one before and each
making the state it manages in its own ``__init__``: ``_core.Core`` (the parts and the session record),
``_rollover.Rollover``, ``_link.Link``, ``client.Client``.

Each piece of mutable state has one owner, the only thread that changes it (or one lock all its writers
take); other threads ask the owner, or read an immutable value the owner publishes.  Every row is
checked by a test (named in brackets, under ``tests/``).

=======================  ==============================  ==================================================
State                    Owner                           How other threads get at it
=======================  ==============================  ==================================================
socket writes: every     ``rtedge-sender``               ask: ``SendQueue.call``/``submit``, run ahead of
frame (events, pings,                                    queued sends; a ping read by the receiver is
pongs, close), the                                       answered by the sender  [conftest.py audit on the
upgrade, the shutdown                                    whole suite, transport/test_sole_writer.py]
a rollover's next        ``rtedge-rollover`` writes its  the sender keeps sending on the live socket
connection before any    HTTP upgrade (and releases it   meanwhile; the connection is then handed to the
frame went on it         if it never gets to the         sender (``_adopt``), which writes every frame
                         sender)                         on it  [conftest.py audit, faults/test_rollover.py]
socket reads             ``rtedge-receiver`` (in         nobody else reads; events come out through the
                         ``connect()``: the caller,      inbox, the dispatcher and the internal hooks
                         before the receiver exists)     [transport/test_ownership.py]
a rollover's new         ``rtedge-rollover`` until the   nothing is delivered before the switch; then it
connection's reads       switch; it then is              is ``rtedge-receiver`` and the old receiver,
                         ``rtedge-receiver``             ``rtedge-receiver-draining``, reads the old
                                                         connection until it ends  [faults/test_rollover.py]
the sender's write       ``rtedge-sender`` (``_conn``)   set when it opens a connection, or by a
target                                                   rollover's switch call queued in order
                                                         (``SendQueue.put_call``)  [faults/test_rollover.py]
connections opened       ``rtedge-sender`` (a            the sender shuts every one down, at the latest on
                         rollover's: once handed over)   its way out  [transport/test_sole_writer.py]
the sans-IO ``Session``  whoever holds ``Client._lock``  ``client.snapshot``: an immutable
and its ``SessionState`` (the receiver for events, a     ``SessionSnapshot``, built under the lock by the
                         caller for its sends)           first read after a change; ``client.state`` is the
                                                         live object, not for other threads
                                                         [voice/test_agent_stress.py,
                                                         transport/test_ownership.py]
the link state           the thread causing the          ``client.link_state``: one immutable
                         transition, via the table in    ``LinkState`` member  [faults/test_link_states.py]
                         ``_lifecycle``, under the lock
send queue items         callers put, the sender takes   ``SendQueue``'s condition  [transport/test_append.py]
the inbox                the receiver appends; readers   ``events()``/``wait_for()`` under the inbox's
                         consume under its condition     condition  [transport/test_inbox.py]
callbacks                ``rtedge-dispatch`` runs them   ``client.on``/``off`` replace handler lists (copy
                         (each after its event is in     on write)  [transport/test_ownership.py,
                         the inbox)                      transport/test_inbox.py]
``TransportStats``       one thread per counter, or      read any time (see ``TransportStats``)
                         the one lock named for it       [transport/test_ownership.py]
=======================  ==============================  ==================================================

``close()`` may ``abort`` a socket (``shutdown(2)``, which writes nothing and only wakes a thread blocked
on it) when the sender itself is stuck in an upgrade or a send, or when ``rtedge-rollover`` is upgrading
the next connection; the sender still closes the socket.
rtedge's own events (reconnect states, synthetic settlements) are delivered by the thread that makes them:
the receiver, or the sender's tick for a cancel the server never settles.

Owns: the transport's public names and the ownership table.  Must not: run user code on the sender or
receiver.
"""

from __future__ import annotations

from ._lifecycle import LinkState
from .client import Client, connect

__all__ = ["Client", "LinkState", "connect"]
