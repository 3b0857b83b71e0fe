"""Loopback endpoints that never answer, for tests of giving up on a connection attempt.

* :class:`SilentServer` takes TCP connections and never sends a byte: an HTTP upgrade (or a TLS handshake)
  waits on it for ever.
* :class:`SynDropper` is a port whose TCP handshakes never complete, as for a host that is down or behind
  a firewall that drops them: a listener whose accept queue one connection of its own fills, and that
  nothing accepts from, so Linux drops every further SYN.  :meth:`SynDropper.connecting` tells when a
  client's ``connect`` waits on it.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import TracebackType


class SilentServer:
    """A listener on a free loopback port; :meth:`accept` takes a connection, which never hears a byte."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=4)
        self.port: int = self._sock.getsockname()[1]
        self._taken: list[socket.socket] = []

    def url(self, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/v1/realtime"

    def accept(self, timeout: float = 30.0) -> socket.socket:
        """The next connection (kept open until :meth:`close`).  Raises TimeoutError when none comes: a
        client that died before connecting fails the test instead of hanging it."""
        self._sock.settimeout(timeout)
        conn = self._sock.accept()[0]
        self._taken.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._taken:
            conn.close()
        self._sock.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class SynDropper:
    """A loopback port (``port``: a given one, as after a server went away; 0: a free one) on which no
    TCP handshake completes."""

    def __init__(self, port: int = 0) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(0)  # room for one connection that is never accepted
        self.port: int = self._sock.getsockname()[1]
        self._filler = socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def url(self, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/v1/realtime"

    def connecting(self) -> bool:
        """True while some socket on this machine waits in a TCP handshake with this port (``SYN_SENT``)."""
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            path = Path(table)
            if not path.exists():
                continue
            for line in path.read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "02" and int(fields[2].rsplit(":", 1)[1], 16) == self.port:
                    return True
        return False

    def close(self) -> None:
        self._filler.close()
        self._sock.close()

    def __enter__(self) -> SynDropper:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
