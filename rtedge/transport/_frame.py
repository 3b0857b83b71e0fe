"""Client WebSocket frames, built in one piece and masked in C.

websocket-client builds every frame in Python (header by string concatenation, the payload copied
into two ``array.array`` and masked as big integers, with ``wsaccel`` only when it is installed):
about 50 us of CPU for one 1.3 KB ``input_audio_buffer.append``, 50 times a second.  Here the frame
is one allocation: ``rtedge.audio._codec.ws_frame`` (C, GIL released while masking) writes the header,
the key and the masked payload, about 4 us; :func:`py_frame` is its pure-Python twin (same bytes),
used when the extension is not built or ``RTEDGE_CODEC=numpy`` asks for the twins.

Masking keys come from ``os.urandom`` (RFC 6455 wants them unpredictable), 256 keys per call.

Owns: building client WebSocket frames.  Must not: write to a socket.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable

#: the frame builder in use: ``ws_frame(opcode, payload, mask_key) -> bytes``
FrameBuilder = Callable[[int, bytes, bytes], bytes]


def py_frame(opcode: int, payload: bytes, mask_key: bytes) -> bytes:
    """One final (FIN), masked frame: the pure-Python twin of the C ``ws_frame``.

    Raises:
        ValueError: an opcode outside 0..15 or a mask key that is not 4 bytes.
    """
    if not 0 <= opcode <= 15:
        raise ValueError("ws_frame: opcode must be in 0..15")
    if len(mask_key) != 4:
        raise ValueError("ws_frame: the mask key must be 4 bytes")
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = bytes(mask_key)
    repeated = key * (n // 4) + key[: n % 4]
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")
    return head + key + masked


def _load() -> tuple[FrameBuilder, str]:
    if os.environ.get("RTEDGE_CODEC", "").strip().lower() in ("numpy", "python", "pure"):
        return py_frame, "python"
    try:
        # lazy: optional dependency (the C extension may not be built; the fallback is used then)
        from ..audio._codec import ws_frame
    except ImportError:
        return py_frame, "python"
    return ws_frame, "c"


build, BACKEND = _load()


class MaskKeys:
    """Fresh 4-byte masking keys, drawn from ``os.urandom`` 256 at a time.

    Not thread-safe: one per thread (:func:`mask_key`).
    """

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> bytes:
        at = self._at
        if at >= len(self._pool):
            self._pool, at = os.urandom(1024), 0
        self._at = at + 4
        return self._pool[at:at + 4]


_per_thread = threading.local()


def mask_key() -> bytes:
    """A fresh masking key from this thread's :class:`MaskKeys` (each sender thread has its own)."""
    keys: MaskKeys | None = getattr(_per_thread, "keys", None)
    if keys is None:
        keys = _per_thread.keys = MaskKeys()
    return keys.next()
