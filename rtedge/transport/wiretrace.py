"""Wire trace: every WebSocket text message in both directions, as JSON lines, for debugging a session.

Turn it on with ``rtedge run --trace-wire FILE`` (any command that connects), the ``RTEDGE_TRACE_WIRE=FILE``
environment variable (read at the first connection), or :func:`start` from Python.  Each line is one JSON
object::

    {"t": 12.345678, "conn": 1, "dir": "send", "type": "session.update", "event": {...}}

* ``t``: seconds on the monotonic clock (``time.monotonic()``, the clock rtedge's own timings use); the
  first line (``"dir": "start"``) maps it to wall time once.
* ``conn``: a number per WebSocket connection (a reconnect gets the next one); ``"dir": "open"`` and
  ``"close"`` lines carry its URL (redacted) and the close code the server sent.
* ``dir``: ``send`` (client to server) or ``recv``; ``event`` is the message as parsed JSON, or ``text``
  when it is not JSON.
* Audio and image payloads (base64 strings under ``audio``, ``delta`` of an audio delta, ``image``) are
  replaced by ``"<audio: N bytes>"``, N being the decoded length: a trace stays small and holds no speech.
* Secrets are never written: the connection's API key (and anything registered with :func:`add_secret`)
  is replaced by ``<redacted>`` wherever it appears (servers echo keys in error messages), and the values
  of ``client_secret`` objects and ``api_key``/``authorization``/``token`` fields are dropped.

Writes come from the sender and receiver threads; a lock keeps lines whole.  The file is appended to and
flushed per line (a crashed process leaves a complete trace).  Tracing costs a JSON round trip per message;
leave it off in production.

Owns: the wire trace file.  Must not: write secrets or audio payloads.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

log = logging.getLogger("rtedge.transport.wiretrace")

ENV_VAR = "RTEDGE_TRACE_WIRE"
OPCODE_TEXT, OPCODE_BINARY, OPCODE_CLOSE = 0x1, 0x2, 0x8
#: upgrade headers that carry credentials (their values are scrubbed from every line)
_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})
#: string fields holding base64 media, whatever the event
_MEDIA_KEYS = frozenset({"audio", "image"})
#: fields whose values are credentials
_SECRET_KEYS = frozenset({"api_key", "apikey", "authorization", "token", "client_secret", "ephemeral_key"})
_REDACTED = "<redacted>"


class WireTrace:
    """An open trace file.  Use :func:`start` / :func:`stop` rather than this class directly."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._secrets: list[str] = []
        self._conns = 0
        self._fh: TextIO | None = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._write({"dir": "start", "wall": time.time(), "pid": os.getpid()})

    def add_secret(self, secret: str) -> None:
        """Never write ``secret`` (nor the part after a ``Bearer `` prefix)."""
        value = secret[7:] if secret.lower().startswith("bearer ") else secret
        with self._lock:
            if len(value) >= 4 and value not in self._secrets:
                self._secrets.append(value)

    def opened(self, url: str, headers: Mapping[str, str] | None = None, secrets: Iterable[str] = ()) -> int:
        """A connection is up: register the credentials among its upgrade ``headers`` and ``secrets`` (those
        of its URL, which is given redacted) as never written; returns the connection's number."""
        for name, value in (headers or {}).items():
            if name.lower() in _SECRET_HEADERS:
                self.add_secret(value)
        for value in secrets:
            self.add_secret(value)
        with self._lock:
            self._conns += 1
            number = self._conns
        self._write({"conn": number, "dir": "open", "url": url})
        return number

    def message(self, conn: int, direction: str, text: str | bytes) -> None:
        """One text message sent (``send``) or received (``recv``)."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        line: dict[str, Any] = {"conn": conn, "dir": direction}
        try:
            event = json.loads(text)
        except ValueError:
            line["text"] = text[:2000]
        else:
            if isinstance(event, dict):
                line["type"] = event.get("type")
            line["event"] = _scrub(event, str(line.get("type") or ""))
        self._write(line)

    def frame(self, conn: int, opcode: int, payload: bytes) -> None:
        """One frame received: text is traced as a message, a close frame with its code and reason."""
        if opcode == OPCODE_TEXT:
            self.message(conn, "recv", payload)
        elif opcode == OPCODE_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            self._write({"conn": conn, "dir": "close", "code": code,
                         "reason": payload[2:].decode("utf-8", "replace")})
        elif opcode == OPCODE_BINARY:
            self._write({"conn": conn, "dir": "recv", "binary": len(payload)})

    def close(self) -> None:
        with self._lock:
            fh, self._fh = self._fh, None
        if fh is not None:
            fh.close()

    def _write(self, obj: dict[str, Any]) -> None:
        with self._lock:  # the time is taken under the lock: the file's order is the clock's order
            text = json.dumps({"t": _now(), **obj}, ensure_ascii=False, separators=(",", ":"), default=str)
            for secret in self._secrets:
                text = text.replace(secret, _REDACTED)
            if self._fh is None:
                return
            try:
                self._fh.write(text + "\n")
                self._fh.flush()
            except (OSError, ValueError) as exc:  # a full disk must not break the session
                log.warning("wire trace %s: write failed (%s); tracing stops", self.path, exc)
                self._fh = None


def _now() -> float:
    return round(time.monotonic(), 6)


def scrub(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of one event as the trace writes it: base64 media (audio, images, audio deltas) replaced by
    its length, credential fields by ``<redacted>``, at any depth."""
    scrubbed: dict[str, Any] = _scrub(event, str(event.get("type") or ""))
    return scrubbed


def _scrub(value: Any, event_type: str, key: str = "") -> Any:
    """A copy with media replaced by its length and credential fields dropped."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k.lower() in _SECRET_KEYS:
                out[k] = _REDACTED
            else:
                out[k] = _scrub(v, event_type, k)
        return out
    if isinstance(value, list):
        return [_scrub(v, event_type, key) for v in value]
    if isinstance(value, str) and _is_media(key, event_type) and value:
        return f"<{'image' if key == 'image' else 'audio'}: {_b64_len(value)} bytes>"
    return value


def _is_media(key: str, event_type: str) -> bool:
    if key in _MEDIA_KEYS:
        return True
    # response.output_audio.delta (GA), response.audio.delta (beta, DashScope): the delta is base64 audio;
    # transcript deltas are text and stay
    return key == "delta" and event_type.endswith("audio.delta")


def _b64_len(text: str) -> int:
    n = len(text.rstrip("="))
    return n * 3 // 4


# ------------------------------------------------------------------------------------------ the active trace
_active: WireTrace | None = None
_env_checked = False
_guard = threading.Lock()


def start(path: str) -> WireTrace:
    """Trace every connection from now on into ``path`` (appending); replaces a trace already running.

    Raises:
        OSError: the file cannot be opened.
    """
    global _active, _env_checked
    trace = WireTrace(path)
    with _guard:
        old, _active, _env_checked = _active, trace, True
    if old is not None:
        old.close()
    log.info("tracing the wire into %s", path)
    return trace


def stop() -> None:
    """Stop tracing and close the file (a no-op when none is running); ``$RTEDGE_TRACE_WIRE`` is read
    again at the next connection."""
    global _active, _env_checked
    with _guard:
        old, _active, _env_checked = _active, None, False
    if old is not None:
        old.close()


def active() -> WireTrace | None:
    """The running trace; the first call starts one when ``$RTEDGE_TRACE_WIRE`` names a file."""
    global _active, _env_checked
    if _env_checked:
        return _active
    with _guard:
        if not _env_checked:
            _env_checked = True
            path = os.environ.get(ENV_VAR)
            if path and _active is None:
                try:
                    _active = WireTrace(path)
                except OSError as exc:
                    log.warning("%s=%s: cannot open (%s); not tracing", ENV_VAR, path, exc.strerror or exc)
    return _active
