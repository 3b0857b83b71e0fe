"""The only module that imports websocket-client.

It wraps a low-level ``websocket.WebSocket`` (not ``WebSocketApp``: we need
our own threads and our own reconnect loop) and translates its exceptions
into rtedge's.  What matters for CPU on a Pi:

* ``skip_utf8_validation=True``: websocket-client's own UTF-8 check is a
  pure-Python per-byte loop that costs ~89 % of a naive client's CPU.  We
  lose no safety: :meth:`WsConnection.recv` decodes text frames with
  ``bytes.decode("utf-8")``, which is strict and runs in C, so invalid
  UTF-8 still fails loudly (as a protocol error).
* ``enable_multithread=True``: the sender and receiver threads share the
  socket; websocket-client then serialises sends with a lock.
* Our own reading: websocket-client reads each frame with three or four
  ``recv`` calls (header, length, payload) and a reader would ``poll`` the
  socket before each message to learn whether more is waiting.  After the
  upgrade :meth:`WsConnection.recv` reads up to :data:`READ_SIZE` bytes per
  ``recv`` and parses them with :mod:`._reader` (sans-IO); a message
  already buffered is returned, and reported by
  :meth:`WsConnection.readable`, without a system call.
* No automatic replies: :meth:`WsConnection.recv` hands pings to
  ``on_ping`` (the client queues the pong for ``rtedge-sender``) and
  returns a close frame to its caller, so the receiver never writes.
  Which thread may call which method is in the ownership table of
  :mod:`rtedge.transport`; one thread at a time reads a connection.

websocket-client still does the HTTP upgrade (it reads the response line by
line, so no frame bytes are left inside it) and writes every frame.

Secrets travel in headers only and no message built here contains a
header value or a URL query value that looks like a key.

Owns: the websocket-client connection and the bytes read from its socket.  Must not: be imported by
anything but the transport, or read a socket from two threads.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import websocket
from websocket._url import get_proxy_info  # (how websocket-client reads the proxy variables, no_proxy too)

from . import wiretrace
from ..errors import ConnectionClosed, DeadlineExceeded, HandshakeError, TransportError, key_hint
from ..protocol.dialects.base import redact_url, url_secrets
from . import _dial, _frame
from ._reader import FrameError, FrameReader

#: opcode constants, re-exported so callers need not import websocket
TEXT = websocket.ABNF.OPCODE_TEXT
BINARY = websocket.ABNF.OPCODE_BINARY
CLOSE = websocket.ABNF.OPCODE_CLOSE
PING = websocket.ABNF.OPCODE_PING
PONG = websocket.ABNF.OPCODE_PONG
CONT = websocket.ABNF.OPCODE_CONT

#: the most bytes one ``recv`` asks for (a burst of deltas arrives in one read)
READ_SIZE = 65536
#: a read that does not wait (plain sockets, where the platform has it; TLS sockets take no flags)
_NOWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if str(key).lower() == "retry-after":
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


def _status_hint(status: int | None, headers: dict[str, str]) -> str:
    """What a refused upgrade's status most likely means, for the error message."""
    if status == 404:
        return " (no realtime endpoint at this path: check the URL)"
    if status in (401, 403):
        return f" ({key_hint(any(name.lower() in _KEY_HEADERS for name in headers))})"
    return ""


#: headers that carry an API key (OpenAI, DashScope and vLLM: Authorization; Azure: api-key)
_KEY_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})


class RtWebSocket(websocket.WebSocket):
    """websocket-client's socket, as its own type so that debugging and test hooks can tell rtedge's
    sockets from any other (the test suite records the thread of every read, write and close on it).

    Every frame goes through :meth:`_send`: once :meth:`limit_send_stall` set a limit, a write the peer
    takes no byte of for that long raises (websocket-client's own would wait for ever on a peer that
    stopped reading, and so would the keepalive that should notice it)."""

    send_stall_s: float | None = None  #: set by :meth:`limit_send_stall`

    def limit_send_stall(self, seconds: float) -> None:
        """Bound each write without progress to ``seconds`` (``SO_SNDTIMEO``; a no-op where unsupported).
        Reads are not affected (they wait on their own timeout)."""
        sock = self.sock
        option = getattr(socket, "SO_SNDTIMEO", None)
        if sock is None or option is None:
            return
        whole = int(seconds)
        # struct timeval: two C longs, or two 64-bit fields for the "new" option of 32-bit ABIs with a
        # 64-bit time_t (Linux's SO_SNDTIMEO_NEW, 67)
        layout = "qq" if option == 67 else "ll"
        try:
            timeval = struct.pack(layout, whole, int((seconds - whole) * 1e6))
            sock.setsockopt(socket.SOL_SOCKET, option, timeval)
        except (OSError, struct.error):
            return
        self.send_stall_s = seconds

    def _send(self, data: bytes | memoryview) -> int:  # type: ignore[override]
        sock = self.sock
        if self.send_stall_s is None or sock is None:
            return int(super()._send(data))  # type: ignore[arg-type]
        try:
            return int(sock.send(data))
        except (BlockingIOError, ssl.SSLWantWriteError):  # SO_SNDTIMEO ran out without a byte taken
            raise TimeoutError(f"the server took no data for {self.send_stall_s:g} s") from None

    def read_bytes(self, flags: int = 0, size: int = READ_SIZE) -> bytes:
        """One ``recv`` of at most ``size`` bytes: every read after the upgrade (b"" at the end).

        Raises:
            OSError: as ``socket.recv`` (a timeout, ``BlockingIOError`` with ``MSG_DONTWAIT``, a reset);
                ConnectionResetError when the socket was released.
        """
        sock = self.sock
        if sock is None:
            raise ConnectionResetError("the socket was released")
        data: bytes = sock.recv(size, flags)
        return data


class WsConnection:
    """One open WebSocket.  ``send_text``/``ping``/``send_close`` are thread-safe with ``recv``."""

    def __init__(self, ws: RtWebSocket, url: str) -> None:
        self._ws = ws
        self.url = redact_url(url)
        self._trace: Any = None  # the wire trace (rtedge.transport.wiretrace) this connection writes to, if any
        self._trace_conn = 0
        #: called with a ping's payload on the reading thread (the pong is the sender's job)
        self.on_ping: Callable[[bytes], None] | None = None
        self.close_sent = False  # a close frame went out (ours, or our reply to the server's)
        self.released = False  # the socket was shut down
        self._frames = FrameReader()  # what the socket gave and no recv() has returned yet
        self._eof = False  # the socket said end of stream (or failed: _failure)
        self._failure: OSError | None = None  # an error that a non-waiting read in readable() met
        self._timeout: float | None = None  # as set_timeout (the socket's own timeout)
        self._nowait = 0  # _NOWAIT on a plain socket once connected: readable() reads without waiting
        self._aborted = False  # abort() was called: a connection attempt still under way gives up
        self._dialing: socket.socket | None = None  # the socket being connected (abort() shuts it down)

    @classmethod
    def open(
        cls,
        url: str,
        headers: dict[str, str],
        *,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        ca_certs: str | None = None,
        pending: Callable[[WsConnection], None] | None = None,
        send_stall_s: float | None = None,
    ) -> WsConnection:
        """Connect and complete the HTTP upgrade.

        ``pending`` gets the connection before anything starts, so that another thread can :meth:`abort`
        an attempt the server never answers, from the TCP handshake on (not in the name lookup; through a
        proxy, only once websocket-client has connected, tunnelled and set up TLS: see :mod:`._dial`).
        ``send_stall_s``: a write the server takes no byte of for that long fails (the connection is lost).

        Raises:
            HandshakeError: the server answered the upgrade with a non-101 status.
            TransportError: DNS, TCP, TLS or protocol failure before the upgrade completed.
        """
        sslopt: dict[str, Any] = {}
        if ssl_context is not None:
            sslopt["context"] = ssl_context
        if ca_certs is not None:
            sslopt["ca_certs"] = ca_certs
        ws = RtWebSocket(enable_multithread=True, skip_utf8_validation=True, sslopt=sslopt)
        conn = cls(ws, url)
        if pending is not None:
            pending(conn)
        safe = redact_url(url)
        try:
            dialed = {} if _proxied(url) else {"socket": _dial.dial(
                url, timeout, lambda: conn._aborted, conn._hold, ssl_context=ssl_context, ca_certs=ca_certs,
                options=websocket.DEFAULT_SOCKET_OPTION)}
            ws.connect(url, header=[f"{k}: {v}" for k, v in headers.items()],  # type: ignore[no-untyped-call]
                       timeout=timeout, suppress_origin=True, **dialed)
        except websocket.WebSocketBadStatusException as exc:
            ws.shutdown()  # type: ignore[no-untyped-call]
            status = getattr(exc, "status_code", None)
            hint = _status_hint(status, headers)
            raise HandshakeError(f"handshake with {safe} refused: HTTP {status}{hint}", status,
                                 _retry_after(getattr(exc, "resp_headers", None))) from None
        except (OSError, websocket.WebSocketException) as exc:
            ws.shutdown()  # type: ignore[no-untyped-call]
            raise TransportError(f"cannot connect to {safe}: {type(exc).__name__}: {exc}") from None
        finally:
            conn._dialing = None
        ws.settimeout(None)
        if send_stall_s is not None:
            ws.limit_send_stall(send_stall_s)
        conn._nowait = 0 if isinstance(ws.sock, ssl.SSLSocket) else _NOWAIT
        conn._trace = wiretrace.active()
        if conn._trace is not None:
            conn._trace_conn = conn._trace.opened(safe, headers, url_secrets(url))
        return conn

    def recv(self) -> tuple[int, bytes]:
        """Block for the next frame: ``(opcode, payload)``; continuation frames are joined.  A ping
        goes to ``on_ping`` (nothing is written here) and is returned like a pong, so that the reader
        knows the link is alive.

        Raises:
            ConnectionClosed: the socket broke or was aborted, or the server broke the protocol (code
                None; the message says which rule).
            DeadlineExceeded: nothing came within the timeout of :meth:`set_timeout`.
        """
        opcode, data = self._read_frame()
        if self._trace is not None:
            self._trace.frame(self._trace_conn, opcode, data)
        return opcode, data

    def _read_frame(self) -> tuple[int, bytes]:
        frames = self._frames
        try:
            while True:
                got = frames.next()
                if got is not None:
                    if got[0] == PING and self.on_ping is not None:
                        self.on_ping(got[1])
                    return got
                self._fill()
        except FrameError as exc:
            raise ConnectionClosed(f"protocol error from the server: {exc}") from None

    def _fill(self) -> None:
        """One read into the frame reader (waits up to the socket's timeout).

        Raises:
            DeadlineExceeded: nothing arrived within the timeout.
            ConnectionClosed: the socket ended, broke, or was aborted or released.
        """
        if self._eof:
            failure = self._failure
            why = f"{type(failure).__name__}: {failure}" if failure else "the stream ended"
            raise ConnectionClosed(f"connection lost: {why}")
        try:
            data = self._ws.read_bytes()
        except TimeoutError:  # TLS too: the ssl module raises TimeoutError for a read that timed out
            raise DeadlineExceeded("no frame from the server in time") from None
        except (OSError, ValueError) as exc:  # ValueError: a socket that abort() or shutdown() released
            raise ConnectionClosed(f"connection lost: {type(exc).__name__}: {exc}") from None
        if not data:
            self._eof = True
            raise ConnectionClosed("connection lost: the stream ended (closed by the server, or aborted)")
        self._frames.feed(data)

    def readable(self) -> bool:
        """True when :meth:`recv` will return without waiting for the network: a whole message (or a
        protocol error, or the end) is buffered, or reading without waiting what has already arrived
        completes one.  That read is tried only while part of a frame is buffered (a burst, or one large
        message): with nothing buffered, as after a message that arrived alone, False without a system
        call.  On a plain socket it reads what the socket holds; on TLS only the decrypted bytes pending
        (raw bytes on the socket may be part of a record, so they do not count).  Never blocks."""
        if self._frames.ready() or self._eof:
            return True
        sock = self._ws.sock
        if sock is None:
            return False
        try:
            if isinstance(sock, ssl.SSLSocket):
                pending = sock.pending()  # decrypted: reading them never waits
                return bool(pending) and self._read_nowait(pending)
            if self._nowait and self._timeout is None and self._frames.buffered():
                return self._read_nowait()
            return False
        except (OSError, ValueError):
            return False

    def _read_nowait(self, size: int = READ_SIZE) -> bool:
        """Read what the socket holds (at most ``size`` bytes) without waiting; True if that completed a
        message (or a protocol error, or the end): part of a frame is kept, and :meth:`recv` would still
        wait for the rest.  On TLS the caller passes the decrypted bytes pending, which need no wait."""
        try:
            data = self._ws.read_bytes(self._nowait, size)
        except (BlockingIOError, ssl.SSLWantReadError):  # nothing after all: not an end
            return False
        except OSError as exc:
            self._eof, self._failure = True, exc  # the next recv() reports it
            return True
        if not data:
            self._eof = True
        self._frames.feed(data)
        return self._eof or self._frames.ready()

    def set_timeout(self, seconds: float | None) -> None:
        """Bound blocking reads (None: block forever); a timed-out :meth:`recv` raises DeadlineExceeded."""
        self._ws.settimeout(seconds)
        self._timeout = seconds

    def send_text(self, text: str) -> None:
        """Send one text frame.

        The frame is built by :mod:`._frame` (one allocation, masked in C), not by websocket-client's
        Python framing, and written under its send lock through its ``_send``, like every other frame.

        Raises:
            ConnectionClosed: the socket is gone.
        """
        self.send_texts((text,))

    def send_texts(self, texts: Sequence[str]) -> None:
        """Send one text frame per text, all in one write (what the sender found queued together).

        Raises:
            ConnectionClosed: the socket is gone (some of the frames may have gone out).
        """
        if self._trace is not None:
            for text in texts:
                self._trace.message(self._trace_conn, "send", text)
        build, key = _frame.build, _frame.mask_key
        ws = self._ws
        try:
            with ws.lock:
                if len(texts) == 1:
                    frame = memoryview(build(TEXT, texts[0].encode("utf-8"), key()))
                else:
                    frame = memoryview(b"".join([build(TEXT, text.encode("utf-8"), key()) for text in texts]))
                while frame:
                    frame = frame[ws._send(frame):]
        except (OSError, websocket.WebSocketException, AttributeError) as exc:
            raise ConnectionClosed(f"send failed: {type(exc).__name__}: {exc}") from None

    def pong(self, payload: bytes) -> None:
        """Answer a ping (sender thread; the receiver hands pings over through ``on_ping``)."""
        try:
            self._ws.pong(payload)
        except (OSError, websocket.WebSocketException, AttributeError) as exc:
            raise ConnectionClosed(f"pong failed: {type(exc).__name__}: {exc}") from None

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping frame (keepalive)."""
        try:
            self._ws.ping(payload)
        except (OSError, websocket.WebSocketException, AttributeError) as exc:
            raise ConnectionClosed(f"ping failed: {type(exc).__name__}: {exc}") from None

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once per connection); the peer's reply arrives through :meth:`recv`."""
        if self.close_sent or self.released:
            return
        self.close_sent = True
        try:
            self._ws.send_close(code, reason.encode("utf-8"))
        except (OSError, websocket.WebSocketException, AttributeError):
            pass  # already broken: the receiver sees the end on its own

    def abort(self) -> None:
        """Wake a blocked :meth:`recv` at once by shutting the socket down (no close handshake).  An
        :meth:`open` still under way gives up too, from its TCP handshake on (see :mod:`._dial`)."""
        self._aborted = True
        sock = self._ws.sock or self._dialing
        if sock is not None:
            try:  # the socket's own shutdown: a TLS socket's would drop its TLS state under a handshake
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def _hold(self, sock: socket.socket) -> None:
        self._dialing = sock

    def shutdown(self) -> None:
        """Release the socket (idempotent)."""
        self.released = True
        try:
            self._ws.shutdown()  # type: ignore[no-untyped-call]
        except OSError:
            pass


def _proxied(url: str) -> bool:
    """True when the environment names a proxy for ``url`` (``http_proxy``/``https_proxy``, less the hosts
    ``no_proxy`` exempts), read as websocket-client reads it: then websocket-client dials, through it."""
    parts = urlsplit(url)
    host, _, _ = get_proxy_info(parts.hostname or "", parts.scheme.lower() == "wss")
    return bool(host)


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """Close code and reason from a close frame's payload (code None when absent)."""
    if len(payload) < 2:
        return None, ""
    (code,) = struct.unpack("!H", payload[:2])
    return code, payload[2:].decode("utf-8", "replace")
