"""The TCP connection (and TLS) under a WebSocket, opened so that another thread can abort it at any point.

websocket-client opens its socket with one blocking ``connect``: until the TCP handshake completes there is
no socket another thread could shut down, so a stop or a ``close()`` waited out the whole connect timeout
for a server that never answers (a host that is down, a firewall that drops the SYN).  :func:`dial`
connects without blocking and waits in slices of :data:`CHECK_EVERY_S`, asking ``aborted()`` between them;
then it hands the socket to ``hold`` (for ``wss://``, the TLS socket before its handshake), so that shutting
it down (``socket.socket.shutdown``, not the TLS layer's) wakes whatever waits on it from then on.
websocket-client then does the HTTP upgrade on the returned socket.

When the environment names a proxy for the URL (``http_proxy``/``https_proxy`` and ``no_proxy``, as
websocket-client reads them), :mod:`._ws` does not call :func:`dial`: websocket-client then dials through the
proxy, and that attempt cannot be aborted until its TCP connection, CONNECT tunnel and TLS are done.  The
name lookup (``getaddrinfo``) cannot be aborted either; the resolver bounds it.

TLS is set up as websocket-client sets it up for rtedge's options: the caller's ``ssl.SSLContext`` as it
is, else a client context that verifies the certificate and the host name against ``ca_certs`` (or the
``WEBSOCKET_CLIENT_CA_BUNDLE`` file or directory, or the system's store), honouring ``SSLKEYLOGFILE``.

Owns: a socket until it returns it.  Must not: speak HTTP or WebSocket, import websocket-client, or wait
longer than :data:`CHECK_EVERY_S` without asking ``aborted()``.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

#: the longest a connection attempt waits without checking whether it was aborted
CHECK_EVERY_S = 0.05
#: errors after which the next address of the host is tried (as websocket-client does)
_NEXT_ADDRESS = frozenset({errno.ECONNREFUSED, errno.ENETUNREACH})


def dial(url: str, timeout: float, aborted: Callable[[], bool], hold: Callable[[socket.socket], None], *,
         ssl_context: ssl.SSLContext | None = None, ca_certs: str | None = None,
         options: Sequence[tuple[int, int, int]] = ()) -> socket.socket:
    """The connected (for ``wss://``, TLS-wrapped) socket for ``url``, in blocking mode with ``timeout``;
    ``options``: ``setsockopt`` arguments for each socket tried (websocket-client's TCP_NODELAY and
    keepalive).

    ``timeout`` bounds the TCP handshake (per address, as websocket-client's does) and then each read and
    write of the TLS handshake.  ``hold`` gets the connected socket (for ``wss://``, the TLS socket before
    its handshake starts).

    Raises:
        ConnectionAbortedError: ``aborted()`` turned true while the TCP handshake waited.
        OSError: DNS, TCP or TLS failure (``TimeoutError`` when the server did not answer in time).
    """
    parts = urlsplit(url)
    secure = parts.scheme.lower() == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    addresses = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, socket.SOL_TCP)
    sock = _connect(addresses, timeout, aborted, options)
    try:
        sock.settimeout(timeout)
        if secure:
            sock = _tls_context(ssl_context, ca_certs).wrap_socket(sock, server_hostname=host,
                                                                   do_handshake_on_connect=False)
        hold(sock)
        if aborted():  # (an abort before the hold found no socket to shut down)
            raise ConnectionAbortedError("the connection attempt was aborted")
        if secure:
            sock.do_handshake()  # type: ignore[attr-defined]
        return sock
    except BaseException:
        sock.close()
        raise


def _connect(addresses: list[Any], timeout: float, aborted: Callable[[], bool],
             options: Sequence[tuple[int, int, int]] = ()) -> socket.socket:
    """The first address that takes the TCP connection; refused or unreachable ones are skipped."""
    error: OSError = OSError(errno.EADDRNOTAVAIL, "the host has no address")
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            for option in options:
                sock.setsockopt(*option)
            _wait_connected(sock, address, time.monotonic() + timeout, aborted)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno not in _NEXT_ADDRESS:
                raise
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error


def _wait_connected(sock: socket.socket, address: Any, deadline: float, aborted: Callable[[], bool]) -> None:
    sock.setblocking(False)
    code = sock.connect_ex(address)
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    while code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
        if aborted():
            raise ConnectionAbortedError("the connection attempt was aborted")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(errno.ETIMEDOUT, "timed out")
        if poller.poll(min(left, CHECK_EVERY_S) * 1000):
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, os.strerror(code))


def _tls_context(context: ssl.SSLContext | None, ca_certs: str | None) -> ssl.SSLContext:
    if context is not None:
        return context
    made = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog is not None:
        made.keylog_filename = keylog
    bundle = os.environ.get("WEBSOCKET_CLIENT_CA_BUNDLE")  # a file, or a directory of hashed certificates
    cafile = ca_certs or (bundle if bundle and os.path.isfile(bundle) else None)
    capath = bundle if ca_certs is None and bundle and os.path.isdir(bundle) else None
    if cafile is None and capath is None:
        made.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return made
    try:
        made.load_verify_locations(cafile=cafile, capath=capath)
    except (OSError, ValueError) as exc:  # (ssl.SSLError is an OSError)
        raise ssl.SSLError(f"the CA certificates in {cafile or capath} cannot be loaded: {exc}") from None
    return made
