"""Server WebSocket frames, parsed from bytes (sans-IO): feed what the socket gave, take messages.

:class:`FrameReader` turns the byte stream a server sends (RFC 6455 section 5) into what
:meth:`rtedge.transport._ws.WsConnection.recv` returns: a whole data message (fragments joined,
``(TEXT or BINARY, payload)``) or one control frame (``(CLOSE, PING or PONG, payload)``, which may
arrive between the fragments of a message).  Bytes come in whatever pieces the socket returns; a
frame is decoded once all of it is buffered, and pieces are joined once (no copy per piece).

Frames a client must refuse raise :class:`FrameError`: a masked frame (servers never mask), reserved
bits set (no extension is negotiated), an unknown opcode, a fragmented or oversized (> 125 bytes)
control frame, a close frame of one byte or with an invalid status code, a 64-bit length with its
top bit set, a data message longer than :data:`MAX_MESSAGE` (refused from its frame header, before its
payload is buffered), a continuation without a message, or a new message inside a fragmented one.  After an
error the reader stays failed: the connection is done.

Text is not checked for UTF-8 here (the receiver decodes it strictly, in C).

Owns: frame parsing and the bytes not yet parsed.  Must not: touch a socket, write anything,
validate UTF-8, or be used by two threads at once.
"""

from __future__ import annotations

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: close status codes a server may send (RFC 6455 7.4.1; 1005, 1006 and 1015 never go on the wire)
VALID_CLOSE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
MAX_CONTROL = 125
#: the largest data message accepted (fragments together), so that a server cannot make the client buffer
#: without bound; the largest legitimate ones (a retrieved conversation item with ~10 minutes of 24 kHz
#: audio in base64) stay well below it
MAX_MESSAGE = 64 * 1024 * 1024


class FrameError(ValueError):
    """The server sent a frame that breaks RFC 6455 (the message says which rule)."""


class FrameReader:
    """Bytes in (:meth:`feed`), messages and control frames out (:meth:`next`)."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._max_message = max_message
        self._buf = b""  # the bytes being parsed; frames start at self._pos
        self._pos = 0
        self._pieces: list[bytes] = []  # fed since the last join, in order
        self._pieces_len = 0
        self._message: int | None = None  # the opcode of a fragmented message in progress
        self._fragments: list[bytes] = []
        self._fragments_len = 0
        self._ready: tuple[int, bytes] | None = None  # parsed by ready(), handed out by next()
        self._error: FrameError | None = None

    def feed(self, data: bytes) -> None:
        """Add bytes received from the server (any split)."""
        if data:
            self._pieces.append(data)
            self._pieces_len += len(data)

    def buffered(self) -> int:
        """Bytes fed and not yet handed out as part of a frame."""
        return len(self._buf) - self._pos + self._pieces_len

    def ready(self) -> bool:
        """True when :meth:`next` will return a message or raise without more bytes."""
        if self._ready is None and self._error is None and self._pieces_len + len(self._buf) > self._pos:
            try:
                self._ready = self._parse()
            except FrameError:
                pass  # kept in self._error for next()
        return self._ready is not None or self._error is not None

    def next(self) -> tuple[int, bytes] | None:
        """The next message or control frame, or None until more bytes are fed.

        Raises:
            FrameError: the server broke the protocol (again on every later call).
        """
        ready, self._ready = self._ready, None
        if ready is not None:
            return ready
        if self._error is not None:
            raise self._error
        if not self._pieces_len and self._pos == len(self._buf):
            return None  # nothing buffered (the usual case before a read)
        return self._parse()

    # ------------------------------------------------------------------------------------------ parsing
    def _parse(self) -> tuple[int, bytes] | None:
        try:
            while True:
                frame = self._frame()
                if frame is None:
                    return None
                message = self._assemble(*frame)
                if message is not None:
                    return message
        except FrameError as exc:
            self._error = exc
            raise

    def _frame(self) -> tuple[bool, int, bytes] | None:
        """One whole frame, consumed: ``(fin, opcode, payload)``; None when it is not all here yet."""
        if not self._have(2):
            return None
        buf, pos = self._buf, self._pos
        b1, b2 = buf[pos], buf[pos + 1]
        if b1 & 0x70:
            raise FrameError(f"reserved bits set (0x{b1 & 0x70:02x}) but no extension was negotiated")
        if b2 & 0x80:
            raise FrameError("a masked frame from the server")
        fin, opcode, length = bool(b1 & 0x80), b1 & 0x0F, b2 & 0x7F
        head = 2
        if length >= 126:
            head = 4 if length == 126 else 10
            if not self._have(head):
                return None
            buf, pos = self._buf, self._pos
            length = int.from_bytes(buf[pos + 2:pos + head], "big")
            if length >> 63:
                raise FrameError("a 64-bit frame length with its top bit set")
        _check_opcode(fin, opcode, length)
        if opcode < CLOSE and length + (self._fragments_len if opcode == CONT else 0) > self._max_message:
            raise FrameError(f"a message of more than {self._max_message} bytes (the most this client takes)")
        if not self._have(head + length):
            return None
        buf, pos = self._buf, self._pos
        end = pos + head + length
        if end == len(buf):
            self._buf, self._pos = b"", 0  # all parsed: keep nothing alive
        else:
            self._pos = end
        return fin, opcode, buf[pos + head:end]

    def _have(self, n: int) -> bool:
        """Make ``n`` bytes from the frame start contiguous in ``self._buf``; False if fewer were fed."""
        avail = len(self._buf) - self._pos
        if avail >= n:
            return True
        if avail + self._pieces_len < n:
            return False
        parts = [self._buf[self._pos:], *self._pieces] if avail else self._pieces
        self._buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos = 0
        self._pieces, self._pieces_len = [], 0
        return True

    def _assemble(self, fin: bool, opcode: int, payload: bytes) -> tuple[int, bytes] | None:
        """A control frame or a whole message, or None while a fragmented message goes on."""
        if opcode >= CLOSE:
            if opcode == CLOSE:
                _check_close(payload)
            return opcode, payload
        if opcode == CONT:
            if self._message is None:
                raise FrameError("a continuation frame without a message to continue")
            self._fragments.append(payload)
            self._fragments_len += len(payload)
            if not fin:
                return None
            whole = (self._message, b"".join(self._fragments))
            self._message, self._fragments, self._fragments_len = None, [], 0
            return whole
        if self._message is not None:
            raise FrameError("a new message began before the fragmented one ended")
        if fin:
            return opcode, payload
        self._message, self._fragments, self._fragments_len = opcode, [payload], len(payload)
        return None


def _check_opcode(fin: bool, opcode: int, length: int) -> None:
    if opcode in (CONT, TEXT, BINARY):
        return
    if opcode not in (CLOSE, PING, PONG):
        raise FrameError(f"unknown opcode 0x{opcode:x}")
    if not fin:
        raise FrameError(f"a fragmented control frame (opcode 0x{opcode:x})")
    if length > MAX_CONTROL:
        raise FrameError(f"a control frame of {length} bytes (opcode 0x{opcode:x}; at most {MAX_CONTROL})")


def _check_close(payload: bytes) -> None:
    if len(payload) == 1:
        raise FrameError("a close frame with a one-byte payload")
    if len(payload) >= 2:
        code = int.from_bytes(payload[:2], "big")
        if code not in VALID_CLOSE and not 3000 <= code < 5000:
            raise FrameError(f"a close frame with the invalid status code {code}")
