"""The threaded transport: the only layer with sockets and threads.

Ownership
---------
Each piece of mutable state has one owner; other threads ask the owner or read what it publishes.

==============================  =====================================  ==========================================
State                           Owner (the only thread that changes)   How other threads get at it
==============================  =====================================  ==========================================
the socket: upgrade, every      ``rtedge-sender``                      ask: ``SendQueue.call``/``submit`` (run
frame written (events, pings,                                          ahead of queued sends); the receiver
pongs, close), shutdown                                                hands pings over, never writes
frames read after connect       ``rtedge-receiver`` (during            none (events come out through the inbox,
                                ``connect()``: the caller, before      the dispatcher and the internal hooks)
                                the receiver exists)
the link state                  whichever thread causes the            ``client.link_state``: one immutable
(:class:`LinkState`)            transition, through the table in       enum member; the decision and the
                                ``_lifecycle``, under the client lock  transition happen in one locked step
the send queue's items          callers put, the sender takes          ``SendQueue`` (its own condition)
connections opened, not yet     ``rtedge-sender`` (``_opened``)        none; the sender shuts them all down
shut down                                                              on its way out
user callbacks                  ``rtedge-dispatch`` runs them          ``client.on``/``off`` replace the
                                                                       handler lists (copy on write)
==============================  =====================================  ==========================================

``close()`` may ``abort`` a socket (``shutdown(2)``, which writes nothing and only wakes a thread blocked on
it) when the sender itself is stuck in an upgrade or a send; the sender still closes the socket.  The test
suite records the thread of every write and close on rtedge's sockets (``tests/conftest.py``).
"""

from __future__ import annotations

from ._lifecycle import LinkState
from .client import Client, connect

__all__ = ["Client", "LinkState", "connect"]
