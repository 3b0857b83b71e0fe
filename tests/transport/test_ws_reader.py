"""WsConnection's reading side against a raw loopback server that writes exactly the bytes a test gives
(plain TCP and TLS): buffered reads, readable() (will recv() wait?) and the reads it makes, protocol
errors, timeouts, the end of the stream and abort()."""

from __future__ import annotations

import base64
import hashlib
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rtedge.errors import ConnectionClosed, DeadlineExceeded
from rtedge.testing import make_self_signed_cert
from rtedge.testing._tls import client_ssl_context, server_ssl_context
from rtedge.transport import _ws
from rtedge.transport._workers import TransportStats, receive_until_end
from rtedge.transport._ws import CLOSE, PING, TEXT, WsConnection

from ..conftest import audit, wait_until
from .test_reader import frame

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RawServer:
    """Accepts one connection, answers the upgrade, then writes what :meth:`write` is given."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._ssl = ssl_context
        self.port = self._listener.getsockname()[1]
        self.peer: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="test-raw-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        sock, _ = self._listener.accept()
        if self._ssl is not None:
            sock = self._ssl.wrap_socket(sock, server_side=True)
        request = b""
        while b"\r\n\r\n" not in request:
            request += sock.recv(4096)
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.peer = sock
        self._ready.set()

    def write(self, data: bytes) -> None:
        assert self._ready.wait(10)
        self.peer.sendall(data)

    def close(self) -> None:
        if self.peer is not None:
            self.peer.close()
        self._listener.close()
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"{'wss' if self._ssl else 'ws'}://localhost:{self.port}/"


def on_sender(fn: Any) -> Any:
    """Run ``fn`` on a thread named as rtedge's sender: the suite's audit allows upgrades and releases
    of an rtedge socket only there."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), name=audit.WRITER)
    t.start()
    t.join(30)
    assert out, "did not finish"
    return out[0]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(params=["plain", "tls"])
def pair(request, tls_files) -> Iterator[tuple[RawServer, WsConnection]]:
    cert, key = tls_files
    tls = request.param == "tls"
    server = RawServer(server_ssl_context(cert, key) if tls else None)
    context = client_ssl_context(cert) if tls else None
    conn = on_sender(lambda: WsConnection.open(server.url, {}, timeout=10, ssl_context=context))
    assert server._ready.wait(10)
    try:
        yield server, conn
    finally:
        on_sender(conn.shutdown)
        server.close()


def _reads() -> int:
    return audit.total("read", threading.current_thread().name)


def test_a_burst_is_read_once_and_readable_needs_no_read_while_a_message_is_buffered(pair):
    server, conn = pair
    messages = [f'{{"type":"response.output_audio.delta","n":{i}}}'.encode() for i in range(5)]
    data = b"".join(frame(TEXT, m) for m in messages)
    server.write(data)  # one write: one segment (one TLS record) on loopback, which arrives whole
    assert wait_until(lambda: _socket_holds(conn), timeout=10)
    assert conn.recv() == (TEXT, messages[0])
    before = _reads()
    for m in messages[1:]:
        assert conn.readable()
        assert conn.recv() == (TEXT, m)
    assert _reads() == before  # four messages, no read: they came with the first


def test_readable_with_nothing_buffered_is_false_without_asking_the_socket(pair):
    """As after a message that arrived alone: False with no read, even with a message waiting on the socket
    (the receiver then wakes the dispatcher and reads, waiting if need be)."""
    server, conn = pair
    assert not conn.readable()
    server.write(frame(TEXT, b"late"))
    assert wait_until(lambda: _socket_holds(conn), timeout=10)
    before = _reads()
    assert not conn.readable()
    assert _reads() == before  # not asked
    assert conn.recv() == (TEXT, b"late")
    assert not conn.readable()


def test_readable_in_the_middle_of_a_frame_on_a_plain_socket_reads_without_waiting(pair):
    """Part of a frame buffered: what the socket holds is read without waiting; True only once that
    completes the message."""
    server, conn = pair
    if conn._nowait == 0:
        pytest.skip("TLS: only decrypted bytes pending are read (the test below)")
    whole = frame(TEXT, b"split in three")
    conn._frames.feed(whole[:3])  # as a read that ended in the middle of a frame
    assert not conn.readable()  # nothing more on the socket yet
    server.write(whole[3:8])
    assert wait_until(lambda: conn._frames.buffered() == 8 or conn.readable(), timeout=10)
    assert not conn.readable()  # read, but not a whole message: recv() would still wait for the rest
    server.write(whole[8:])
    assert wait_until(conn.readable, timeout=10)
    assert conn.recv() == (TEXT, b"split in three")


def test_readable_on_tls_does_not_count_raw_bytes_on_the_socket(pair):
    """They may be part of a record, so a read could wait for the rest of it: False."""
    server, conn = pair
    if conn._nowait:
        pytest.skip("plain socket: the test above")
    whole = frame(TEXT, b"split in two")
    conn._frames.feed(whole[:5])
    server.write(whole[5:])
    assert wait_until(lambda: _socket_holds(conn), timeout=10)
    assert not conn.readable()
    assert conn.recv() == (TEXT, b"split in two")


def test_the_receiver_wakes_the_dispatcher_before_waiting_for_the_rest_of_a_large_frame(pair):
    """A message, then part of a large one, then a pause: the message is handed on (``on_idle``) before the
    receiver waits for the rest, on TLS too (where bytes on the socket may not complete the frame)."""
    server, conn = pair
    got: list[bytes] = []
    idle = threading.Event()
    big = frame(TEXT, bytes(100_000))
    t = threading.Thread(target=receive_until_end, name="rtedge-receiver",
                         args=(conn, got.append, TransportStats(), idle.set))
    t.start()
    try:
        server.write(frame(TEXT, b"first") + big[:10])
        server.write(big[10:20_010])  # more of it, still not all
        assert idle.wait(10), "the dispatcher was not woken before the receiver waited for the network"
        assert got == [b"first"]
        server.write(big[20_010:] + frame(CLOSE, b"\x03\xe8"))
        t.join(10)
        assert not t.is_alive() and got == [b"first", bytes(100_000)]
    finally:
        if t.is_alive():
            on_sender(conn.abort)
            t.join(10)


def test_readable_on_tls_reads_the_decrypted_bytes_pending(pair):
    """On TLS the decrypted bytes pending are read (no wait): True when they complete the message buffered
    in part, False when they do not."""
    server, conn = pair
    if conn._nowait:
        pytest.skip("plain socket: the socket itself is read (the tests above)")
    whole = frame(TEXT, b"x" * 100)
    for part, completes in ((whole, True), (whole[:60], False)):
        server.write(part)  # one write: one TLS record on loopback
        assert wait_until(lambda: _socket_holds(conn), timeout=10)
        conn._frames.feed(conn._ws.read_bytes(0, 10))  # a read that ended inside the record
        assert conn._ws.sock.pending() == len(part) - 10
        assert conn.readable() is completes
        assert conn._ws.sock.pending() == 0  # all read: a whole message is parsed, or the part kept
        assert conn._frames.buffered() == (0 if completes else len(part))
        if completes:
            assert conn.recv() == (TEXT, b"x" * 100)
    server.write(whole[60:])
    assert conn.recv() == (TEXT, b"x" * 100)


def _socket_holds(conn: WsConnection) -> bool:
    """Bytes wait on the connection's socket (or in TLS's record buffer), read by nobody yet."""
    sock = conn._ws.sock
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    return bool(select.select([sock], [], [], 0)[0])


def test_a_large_message_in_many_reads_and_fragments(pair):
    server, conn = pair
    payload = bytes(i % 251 for i in range(300_000))
    server.write(frame(TEXT, payload[:100_000], fin=False) + frame(PING, b"k") + frame(0, payload[100_000:]))
    pings: list[bytes] = []
    conn.on_ping = pings.append
    assert conn.recv() == (PING, b"k") and pings == [b"k"]
    assert conn.recv() == (TEXT, payload)


def test_a_protocol_violation_closes_with_its_rule(pair):
    server, conn = pair
    server.write(frame(TEXT, b"ok") + frame(TEXT, b"masked", mask=b"abcd"))
    assert conn.recv() == (TEXT, b"ok")
    with pytest.raises(ConnectionClosed, match="protocol error from the server: a masked frame"):
        conn.recv()
    with pytest.raises(ConnectionClosed, match="masked"):
        conn.recv()


def test_a_timeout_raises_deadline_exceeded_and_reading_goes_on(pair):
    server, conn = pair
    server.write(frame(TEXT, b"a" * 1000)[:10])  # a frame's first bytes only
    conn.set_timeout(0.2)
    with pytest.raises(DeadlineExceeded):
        conn.recv()
    server.write(frame(TEXT, b"a" * 1000)[10:])
    conn.set_timeout(10)
    assert conn.recv() == (TEXT, b"a" * 1000)
    conn.set_timeout(None)


def test_the_end_of_the_stream_after_the_last_message(pair):
    server, conn = pair
    server.write(frame(TEXT, b"last") + frame(TEXT, b"cut short")[:5])
    server.peer.close()
    assert conn.recv() == (TEXT, b"last")
    with pytest.raises(ConnectionClosed, match="connection lost"):
        conn.recv()
    assert conn.readable()  # the end is known: the next recv() raises at once
    with pytest.raises(ConnectionClosed):
        conn.recv()


def test_abort_wakes_a_blocked_recv(pair):
    _, conn = pair
    failures: list[BaseException] = []

    def read() -> None:
        try:
            conn.recv()
        except ConnectionClosed as exc:
            failures.append(exc)
    reader = threading.Thread(target=read, name="test-reader")
    reader.start()
    conn.abort()
    reader.join(10)
    assert not reader.is_alive() and len(failures) == 1


def test_recv_after_shutdown_raises_connection_closed(pair):
    _, conn = pair
    on_sender(conn.shutdown)
    with pytest.raises(ConnectionClosed):
        conn.recv()
    assert not conn.readable()


def test_a_read_error_met_by_readable_is_reported_by_the_next_recv(monkeypatch):
    conn = WsConnection(_ws.RtWebSocket(), "ws://localhost/")
    conn._nowait = 64

    def reset(flags: int = 0, size: int = 0) -> bytes:
        raise ConnectionResetError("reset by peer")
    monkeypatch.setattr(conn._ws, "read_bytes", reset)
    monkeypatch.setattr(conn._ws, "sock", object())
    conn._frames.feed(b"\x81")  # part of a frame buffered: readable() reads, and meets the error
    assert conn.readable()
    with pytest.raises(ConnectionClosed, match="ConnectionResetError: reset by peer"):
        conn.recv()
