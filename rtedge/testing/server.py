"""``RealtimeServer``: a local server that behaves like the OpenAI Realtime GA server.

Theory of operation
-------------------
The server is the ``websockets`` package's threaded sync server bound to
``127.0.0.1`` (port 0 by default, so tests never clash), optionally behind
TLS.  Its threads are all named ``rtedge-testserver-*``:

* ``rtedge-testserver-accept`` accepts TCP connections;
* ``rtedge-testserver-connN`` runs one connection: handshake checks, then
  ``session.created``, then every client event in order
  (``rtedge-testserver-connN-recv`` is the library's frame reader for it);
* ``rtedge-testserver-connN-respond`` streams that connection's responses on
  real-time deadlines (see ``_session``).

Everything a client sends and everything the server sends is recorded, in
order, across connections (:attr:`RealtimeServer.received`,
:attr:`RealtimeServer.sent`), and tests wait on those records with
:meth:`RealtimeServer.wait_for_received` / :meth:`RealtimeServer.wait_for_sent`,
which block on a condition variable and never poll.

:meth:`RealtimeServer.stop` closes every connection (1001), waits for all the
threads above to finish, and if a connection does not close in time (a peer
that stopped reading), it tears its socket down, so ``stop`` always returns
within a bounded time.  A client that vanishes without a close frame only ends
its own connection's threads.

Knobs are plain attributes: change ``reply_text``, ``responder``,
``handshake_status`` ... between turns and the next event uses the new value.

Owns: ``RealtimeServer``: sockets, threads, connections.  Must not: bind anything but the interface it is
given (loopback by default).
"""

from __future__ import annotations

import json
import logging
import random
import socket
import ssl
import string
import struct
import threading
import time
import urllib.parse
import uuid
from typing import Any, Callable, Iterable

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response as HttpResponse
from websockets.protocol import State
from websockets.sync.server import Server, ServerConnection, serve

from rtedge.testing._base import RecordingServer
from rtedge.testing._config import DEFAULT_INSTRUCTIONS
from rtedge.testing._qwen import PATH as QWEN_PATH
from rtedge.testing._qwen import QwenServerSession
from rtedge.testing._record import AudioRecord
from rtedge.testing._response import Reply, Turn
from rtedge.testing._session import ServerSession
from rtedge.testing._transcription import TranscriptionServerSession
from rtedge.testing._wirelog import WireLog
from rtedge.testing._xai import XaiServerSession

__all__ = ["RealtimeServer"]

log = logging.getLogger("rtedge.testing")
# the websockets library's frame-by-frame debug lines would bury rtedge's own --debug output (the demo
# runs a server in-process); frames are what the wire trace (rtedge.transport.wiretrace) records.  A filter,
# not a level: a level of INFO on this logger would pass its INFO lines under an application's WARNING.
# Setting this logger's own level to DEBUG brings the frame lines back.
_WS_LOG = logging.getLogger("rtedge.testing.websockets")


def _no_frame_lines(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG or _WS_LOG.level == logging.DEBUG


_WS_LOG.addFilter(_no_frame_lines)

DEFAULT_REPLY = "I heard you."
MAX_MESSAGE = 32 * 1024 * 1024  # a 15 MiB append is 20 MiB of base64 plus JSON
_ALNUM = string.ascii_letters + string.digits
_ID_LENGTH = {"call": 16}
AZURE_PATH = "/openai/v1/realtime"
DIALECTS = ("openai", "azure", "xai", "qwen")

Responder = Callable[[Turn], str | tuple[str, np.ndarray] | Reply]


def _intent(ws: ServerConnection) -> str | None:
    """The ``intent`` query parameter of the connection URL (``transcription``), if any."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(ws.request.path if ws.request else "").query)
    values = query.get("intent")
    return values[0] if values else None


class _Conn:
    """One accepted WebSocket connection."""

    def __init__(self, index: int, ws: ServerConnection, name: str, model: str) -> None:
        self.index = index
        self.ws = ws
        self.name = name
        self.model = model
        self.session: ServerSession | None = None
        self.alive = True


def _check_options(dialect: str | None, xai_ping_s: float | None, finish_reply: str, auth_failure: str,
                   delta_ms: int, session_duration_s: float) -> None:
    """:class:`RealtimeServer`'s argument checks (ValueError naming the argument)."""
    if dialect is not None and dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {DIALECTS} or None")
    if xai_ping_s is not None and not xai_ping_s > 0:
        raise ValueError("xai_ping_s must be positive or None")
    if finish_reply not in ("finished", "error", "none"):
        raise ValueError("finish_reply must be 'finished', 'error' or 'none'")
    if auth_failure not in ("http", "event"):
        raise ValueError("auth_failure must be 'http' or 'event'")
    if not 5 <= int(delta_ms) <= 1000:
        raise ValueError("delta_ms must be between 5 and 1000")
    if not 0 < session_duration_s <= 10 * 365 * 86400:
        raise ValueError("session_duration_s must be positive and finite")


class RealtimeServer(RecordingServer):
    """A local OpenAI Realtime (GA) server for tests, demos and ``rtedge serve``.

    Use it as a context manager (``with RealtimeServer() as server:``) or call
    :meth:`start` / :meth:`stop`; :meth:`serve_forever` blocks until stopped.
    Clients connect to ``server.url + "?model=gpt-realtime"``.

    Args:
        host: Interface to bind (loopback by default).
        port: TCP port; 0 picks a free one (read it back from :attr:`port`).
        ssl_context: Server-side TLS context (see ``server_ssl_context``); ``None`` = plain ``ws://``.
        api_key: When set, a handshake without ``Authorization: Bearer <api_key>``
            (or ``api-key: <api_key>``) is refused.
        auth_failure: How a bad key is refused: ``"http"`` (HTTP 401 at the
            handshake) or ``"event"`` (what the live API does: accept, send an
            ``error`` event, close with 3000).
        handshake_status: When set (e.g. 503), every handshake is refused with
            this HTTP status.  Mutable at run time.
        handshake_headers: Extra headers on such a refusal (e.g. ``{"Retry-After": "2"}``).
            Mutable at run time.
        reply_text: What the model says when no ``responder`` is given.
        responder: ``responder(turn: Turn)`` returning the reply text, a
            ``(text, int16 24 kHz audio)`` tuple, or a :class:`Reply`.
        delta_ms: Audio per ``response.output_audio.delta`` (20 or 40 ms typical).
        realtime: Pace audio deltas at real time on absolute deadlines; ``False``
            sends everything as fast as possible.
        response_delay: Seconds between ``response.created`` and the first output.
        transcript_delay: Seconds between a commit and its input transcription events (the live
            server transcribes asynchronously; 0: at once, with the commit).  Mutable at run time.
        vad_response_delay: Seconds between the end of a server-VAD turn (its commit) and the
            automatic ``response.created`` (the live server's latency; 0: at once).  Mutable at run time.
        tool_name: Tool the model calls when tools are configured (default: the first one).
        tool_arguments: Arguments JSON for tool calls, or ``callable(tool) -> str``;
            default: an example value for every required parameter.
        auto_tool_calls: Make a function call when tools are configured and the
            last context item is not a ``function_call_output``.
        input_transcript: Transcript for committed user audio when the session
            has ``transcription`` set; a string or ``callable(int16 audio, rate) -> str`` (an exception it
            raises sends ``...input_audio_transcription.failed`` with its message instead).
        instructions: The session's default instructions.
        default_model: Model reported when the URL has no ``model`` query.
        session_duration_s: Session lifetime; on expiry the server sends
            ``session_expired`` and closes with 1001 (the live limit is 60 min).  Mutable at run
            time (a new connection gets the value in force when it opens).
        announce_expiry: Put ``expires_at`` (creation time + ``session_duration_s``) in
            ``session.created``, as the live GA server does; ``False`` leaves it out (a server that
            does not state its limit).
        ping_interval: Server keepalive pings in seconds (the live API uses ~20 s); ``None`` = off.
        keep_audio: Record audio payloads; ``False`` replaces them with ``"<N bytes>"``.
        barriers: Accept the extension event ``{"type": "rtedge.barrier", "event_id": ...}`` (not
            in the live API): it is answered with ``{"type": "rtedge.barrier.done",
            "client_event_id": ...}`` once no response is streaming, in order with everything
            else (``rtedge.voice.tick`` uses it for lock-step ticks).  ``False`` rejects it like the
            live server rejects unknown events.
        seed: Seed for ids and padding (``None`` = random).
        dialect: ``"openai"`` (GA), ``"azure"`` (GA on ``/openai/v1/realtime`` only, other paths
            get HTTP 404; the key may come as ``api-key``), ``"xai"`` (Grok Voice: top-level
            ``voice``/``turn_detection``, ``response.text.*``, ``ping`` events, top-level usage, no
            truncate, UUID ids; see ``_xai``), ``"qwen"`` (DashScope Qwen-Omni: flat session, beta
            event names, ``session.finish``, images; see ``_qwen``), or ``None``: per connection,
            ``qwen`` when the path is ``/api-ws/v1/realtime``, else GA.  :attr:`url` uses the
            dialect's path.  With GA (and Azure), a URL with ``?intent=transcription`` opens a GA
            *transcription* session (``session.type: "transcription"``, audio in and
            ``conversation.item.input_audio_transcription.*`` out; see ``_transcription``).
        xai_ping_s: (xai) seconds between ``ping`` events after the first one; ``None`` = only the first.
        finish_reply: (qwen) answer to ``session.finish``: ``"finished"`` (``session.finished``, then
            close 1000), ``"error"`` (refused as an unknown event type) or ``"none"``.
        done_after_cancel: (qwen) ``False``: a client cancel ends the response without ``response.done``.
        idle_cut_s: (qwen) close a connection after this many seconds without input audio (live: ~300).
        idle_close_code: (qwen) the close code of the idle cut (not documented for the live service).

    Raises:
        ValueError: An option is out of range.

    Attributes:
        received: Client events in arrival order (all connections).
        sent: Server events in send order (all connections).
        handshakes: Every handshake attempt (path and lower-cased headers).
        sessions: Effective session config of each connection.
        audio_records: Input audio each connection accepted (counts, SHA-256, arrival times).
        connection_count: Connections accepted so far.
        active_connections: Connections open now.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        api_key: str | None = None,
        auth_failure: str = "http",
        handshake_status: int | None = None,
        handshake_headers: dict[str, str] | None = None,
        reply_text: str = DEFAULT_REPLY,
        responder: Responder | None = None,
        delta_ms: int = 40,
        realtime: bool = True,
        response_delay: float = 0.0,
        transcript_delay: float = 0.0,
        vad_response_delay: float = 0.0,
        tool_name: str | None = None,
        tool_arguments: str | Callable[[dict[str, Any]], str] | None = None,
        auto_tool_calls: bool = True,
        input_transcript: str | Callable[[np.ndarray, int], str] = "Hello.",
        instructions: str = DEFAULT_INSTRUCTIONS,
        default_model: str = "gpt-realtime",
        session_duration_s: float = 3600.0,
        announce_expiry: bool = True,
        ping_interval: float | None = None,
        keep_audio: bool = True,
        barriers: bool = True,
        seed: int | None = None,
        dialect: str | None = None,
        finish_reply: str = "finished",
        done_after_cancel: bool = True,
        idle_cut_s: float | None = None,
        idle_close_code: int = 1011,
        xai_ping_s: float | None = 15.0,
    ) -> None:
        _check_options(dialect, xai_ping_s, finish_reply, auth_failure, delta_ms, session_duration_s)
        self.host, self._port, self.ssl_context = host, port, ssl_context
        self.api_key, self.auth_failure, self.handshake_status = api_key, auth_failure, handshake_status
        self.handshake_headers = dict(handshake_headers or {})
        self.reply_text, self.responder = reply_text, responder
        self.delta_ms, self.realtime, self.response_delay = int(delta_ms), realtime, response_delay
        self.transcript_delay, self.vad_response_delay = float(transcript_delay), float(vad_response_delay)
        self.tool_name, self.tool_arguments, self.auto_tool_calls = tool_name, tool_arguments, auto_tool_calls
        self.input_transcript, self.instructions = input_transcript, instructions
        self.default_model, self.session_duration_s = default_model, float(session_duration_s)
        self.announce_expiry, self.ping_interval, self.keep_audio = announce_expiry, ping_interval, keep_audio
        self.dialect, self.finish_reply, self.done_after_cancel = dialect, finish_reply, done_after_cancel
        self.idle_cut_s, self.idle_close_code, self.barriers = idle_cut_s, idle_close_code, barriers
        self.xai_ping_s = xai_ping_s
        self._rng = random.Random(seed)
        self._lock, self._records = threading.Lock(), threading.Condition()
        self._wirelog = WireLog(log)
        self._received, self._sent, self._handshakes = [], [], []
        self._conns: list[_Conn] = []
        self._bound_port = 0  # kept after stop(), so start() comes back on the same port
        self._ws_server: Server | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopped = threading.Event()

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> RealtimeServer:
        """Bind and start accepting connections (idempotent).

        After :meth:`stop`, ``start`` binds the same port again, so a test can
        take the server down and bring it back for a client to reconnect to.

        Returns:
            The server itself, so ``server = RealtimeServer().start()`` works.
        """
        with self._lock:
            if self._ws_server is not None:
                return self
            self._stopped.clear()
            self._ws_server = serve(
                self._handle, self.host, self._bound_port or self._port, ssl=self.ssl_context,
                compression=None,
                process_request=self._process_request, max_size=MAX_MESSAGE, ping_interval=self.ping_interval,
                close_timeout=2, open_timeout=5, logger=logging.getLogger("rtedge.testing.websockets"),
            )
            inner = self._ws_server.handler

            def named(sock: socket.socket, addr: Any) -> None:
                threading.current_thread().name = "rtedge-testserver-handshake"
                inner(sock, addr)

            self._ws_server.handler = named
            self._bound_port = int(self._ws_server.socket.getsockname()[1])
            self._accept_thread = threading.Thread(
                target=self._ws_server.serve_forever, name="rtedge-testserver-accept", daemon=True)
            self._accept_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection (code 1001) and join all server threads.

        Args:
            timeout: Seconds to wait for a clean shutdown before sockets are torn down.
        """
        with self._lock:
            server, self._ws_server = self._ws_server, None
        if server is None:
            return
        closer = threading.Thread(target=server.shutdown, name="rtedge-testserver-stop", daemon=True)
        closer.start()
        closer.join(timeout)
        if closer.is_alive():  # a peer that does not read can hold a close forever
            for conn in self._snapshot_conns():
                conn.ws.close_socket()
            closer.join(timeout)
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        for conn in self._snapshot_conns():
            if conn.session is not None:
                conn.session.close()
            self._wirelog.flush(conn.name)
        self._stopped.set()

    @property
    def url(self) -> str:
        """``ws[s]://host:port/v1/realtime`` (``/api-ws/v1/realtime`` for qwen, ``/openai/v1/realtime``
        for azure; append ``?model=...``)."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        path = {"qwen": QWEN_PATH, "azure": AZURE_PATH}.get(str(self.dialect), "/v1/realtime")
        return f"{scheme}://{self.host}:{self.port}{path}"

    # -- handshake and connections ----------------------------------------------

    def _authorized(self, headers: Any) -> bool | None:
        """True if the key matches, False if wrong, None if missing."""
        auth = headers.get("Authorization") or ""
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else headers.get("api-key")
        if not given:
            return None
        return given == self.api_key

    def _process_request(self, connection: ServerConnection, request: Request) -> HttpResponse | None:
        with self._records:
            self._handshakes.append({"path": request.path,
                                     "headers": {k.lower(): v for k, v in request.headers.raw_items()}})
            self._records.notify_all()
        if self.handshake_status is not None:
            response = self._http_error(connection, int(self.handshake_status), "server_error",
                                        "The server is temporarily unable to handle the request.", None)
            for name, value in self.handshake_headers.items():
                response.headers[name] = value
            return response
        path = urllib.parse.urlsplit(request.path).path.rstrip("/")
        if self.dialect == "azure" and path != AZURE_PATH:
            return self._http_error(connection, 404, "invalid_request_error", "Resource not found", "404")
        # the real services answer 404 for other paths; dialect=None picks openai or qwen by the path
        own = urllib.parse.urlsplit(self.url).path
        paths = ("/v1/realtime", QWEN_PATH) if self.dialect is None else (own,)
        if path not in paths:
            return self._http_error(connection, 404, "invalid_request_error", f"Invalid URL (GET {path})",
                                    None)
        if self.api_key is not None and self.auth_failure == "http":
            verdict = self._authorized(request.headers)
            if verdict is None:
                return self._http_error(connection, 401, "invalid_request_error",
                                        "Missing bearer or basic authentication in header", None)
            if not verdict:
                return self._http_error(connection, 401, "invalid_request_error",
                                        "Incorrect API key provided.", "invalid_api_key")
        return None

    @staticmethod
    def _http_error(connection: ServerConnection, status: int, kind: str, message: str,
                    code: str | None) -> HttpResponse:
        body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})
        response = connection.respond(status, body + "\n")
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    def _register(self, ws: ServerConnection) -> _Conn:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(ws.request.path if ws.request else "").query)
        model = (query.get("model") or [self.default_model])[0]
        with self._records:
            index = len(self._conns)
            conn = _Conn(index, ws, f"rtedge-testserver-conn{index}", model)
            self._conns.append(conn)
            self._records.notify_all()
        threading.current_thread().name = conn.name
        for attr, suffix in (("recv_events_thread", "recv"), ("keepalive_thread", "ping")):
            thread = getattr(ws, attr, None)
            if isinstance(thread, threading.Thread):
                thread.name = f"{conn.name}-{suffix}"
        return conn

    def _refuse_in_band(self, conn: _Conn) -> bool:
        """Live-API style refusals after the 101: beta header, bad key (``auth_failure="event"``)."""
        headers = conn.ws.request.headers if conn.ws.request else {}
        if "realtime=v1" in (headers.get("OpenAI-Beta") or ""):
            code, kind, close = "beta_api_shape_disabled", "invalid_request_error", 4000
            message = "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
        elif self.api_key is not None and self.auth_failure == "event" and not self._authorized(headers):
            code, kind, close = "invalid_api_key", "invalid_request_error", 3000
            message = "Incorrect API key provided."
        else:
            return False
        event = {"type": "error", "event_id": self.new_id("event"),
                 "error": {"type": kind, "code": code, "message": message, "param": None, "event_id": None}}
        self._record_sent(event, conn.name)
        try:
            conn.ws.send(json.dumps(event))
            conn.ws.close(close, f"{kind}.{code}")
        except ConnectionClosed:
            pass
        return True

    def _handle(self, ws: ServerConnection) -> None:
        conn = self._register(ws)
        try:
            if self._refuse_in_band(conn):
                return
            path = urllib.parse.urlsplit(ws.request.path if ws.request else "").path
            qwen = self.dialect == "qwen" or (self.dialect is None and path.rstrip("/") == QWEN_PATH)
            session_class: type[ServerSession] = ServerSession
            if qwen:
                session_class = QwenServerSession
            elif self.dialect == "xai":
                session_class = XaiServerSession
            elif _intent(ws) == "transcription":
                session_class = TranscriptionServerSession
            conn.session = session_class(self, conn.model, ws.send, ws.close, conn.name)
            conn.session.start()
            while True:
                message = ws.recv()
                if isinstance(message, str):
                    conn.session.handle_text(message)
                else:
                    conn.session.handle_binary()
        except ConnectionClosed:
            pass
        finally:
            conn.alive = False
            if conn.session is not None:
                conn.session.close()
            self._wirelog.flush(conn.name)
            with self._records:
                self._records.notify_all()

    def _snapshot_conns(self) -> list[_Conn]:
        with self._records:
            return list(self._conns)

    def _open_conns(self) -> list[_Conn]:
        return [c for c in self._snapshot_conns() if c.alive and c.ws.state is State.OPEN]

    # -- ids ---------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        """A fresh id such as ``event_...``, ``item_...``, ``resp_...`` or ``call_...`` (xai: UUIDs)."""
        if self.dialect == "xai":
            value = uuid.UUID(int=self._rng.getrandbits(128), version=4)
            return value.hex if prefix == "sess" else f"call-{value}-0" if prefix == "call" else str(value)
        length = _ID_LENGTH.get(prefix, 21)
        return f"{prefix}_" + "".join(self._rng.choices(_ALNUM, k=length))

    def obfuscation(self, delta: str) -> str:
        """Padding like the live ``obfuscation`` field (delta + padding is about 16 chars)."""
        return "".join(self._rng.choices(_ALNUM, k=max(0, 16 - len(delta))))

    # -- records -----------------------------------------------------------------

    def _strip_audio(self, event: dict[str, Any], key: str) -> dict[str, Any]:
        if self.keep_audio or not isinstance(event.get(key), str):
            return event
        return {**event, key: f"<{len(event[key]) * 3 // 4} bytes>"}

    def _record_received(self, event: dict[str, Any], conn: str) -> None:
        self._wirelog.event(conn, "received", event)
        if event.get("type") == "input_audio_buffer.append":
            event = self._strip_audio(event, "audio")
        with self._records:
            self._received.append(event)
            self._records.notify_all()

    def _record_sent(self, event: dict[str, Any], conn: str) -> None:
        self._wirelog.event(conn, "sent", event)
        if event.get("type") in ("response.output_audio.delta", "response.audio.delta"):
            event = self._strip_audio(event, "delta")
        with self._records:
            self._sent.append(event)
            self._records.notify_all()

    def clear_records(self) -> None:
        """Forget the received/sent/handshake records (connections are kept)."""
        with self._records:
            self._received.clear()
            self._sent.clear()
            self._handshakes.clear()

    def wait_for_connections(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` WebSocket connections have been accepted in total.

        Raises:
            TimeoutError: Fewer connections arrived in time.
        """
        deadline = time.monotonic() + timeout
        with self._records:
            while len(self._conns) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self._conns)} of {count} connections within {timeout:g} s")
                self._records.wait(remaining)

    # -- connection state and faults -----------------------------------------------

    @property
    def active_connections(self) -> int:
        """Connections currently open."""
        return len(self._open_conns())

    @property
    def close_codes(self) -> list[int | None]:
        """Per connection, the close code the client sent (1006: it ended without one; None: still open)."""
        return [conn.ws.close_code for conn in self._snapshot_conns()]

    @property
    def sessions(self) -> list[dict[str, Any]]:
        """Effective session config of every connection, in connection order (copies)."""
        return [conn.session.snapshot() for conn in self._snapshot_conns() if conn.session is not None]

    @property
    def audio_records(self) -> list[AudioRecord]:
        """Per connection with a session, in connection order: the input audio it accepted
        (:class:`~rtedge.testing._record.AudioRecord`: sample count, SHA-256, arrival times)."""
        return [conn.session.audio_record for conn in self._snapshot_conns() if conn.session is not None]

    def conversation(self, connection: int = -1) -> list[dict[str, Any]]:
        """Copies of a connection's conversation items, in order (without audio)."""
        session = self._session(connection)
        with session.cond:
            return [entry.public() for entry in session.conversation.entries]

    def _session(self, connection: int) -> ServerSession:
        conns = [c for c in self._snapshot_conns() if c.session is not None]
        if not conns:
            raise LookupError("no connection has a session yet")
        session = conns[connection].session
        assert session is not None
        return session

    def _targets(self, connection: int | None) -> Iterable[_Conn]:
        conns = self._snapshot_conns()
        return self._open_conns() if connection is None else [conns[connection]]

    def send_event(self, event: dict[str, Any], connection: int | None = None) -> int:
        """Inject a server event (``event_id`` added if missing), in order with the session's own.

        Args:
            event: The event dict; it is sent as given.
            connection: Index of the connection, or ``None`` for every open one.

        Returns:
            How many connections it was sent to.
        """
        count = 0
        for conn in self._targets(connection):
            if conn.alive and conn.session is not None:
                conn.session.inject(event)
                count += 1
        return count

    def send_raw(self, text: str | bytes, connection: int | None = None) -> int:
        """Send one frame as given (text or binary; malformed JSON on purpose), in order with the
        session's own events.  Not recorded in :attr:`sent`.

        Returns:
            How many connections it was sent to.
        """
        count = 0
        for conn in self._targets(connection):
            if conn.alive and conn.session is not None:
                with conn.session.cond:
                    try:
                        conn.ws.send(text)
                    except ConnectionClosed:
                        continue
                count += 1
        return count

    def close_connections(self, code: int = 1000, reason: str = "", *, wait: bool = False,
                          timeout: float = 5.0, connection: int | None = None) -> int:
        """Start the closing handshake on every open connection with ``code``/``reason``.

        Args:
            code: WebSocket close code (e.g. 1000, 1001, 1011, 4000).
            reason: Close reason text.
            wait: Block until the handshakes finish (the peers must be reading).
            timeout: Upper bound for ``wait``.
            connection: Only this connection (its index; None: every open one).

        Returns:
            How many connections are being closed.
        """
        conns = self._open_conns() if connection is None else list(self._targets(connection))
        closers = [threading.Thread(target=self._close_one, args=(c, code, reason),
                                    name=f"{c.name}-close", daemon=True) for c in conns]
        for thread in closers:
            thread.start()
        if wait:
            for thread in closers:
                thread.join(timeout)
        return len(conns)

    @staticmethod
    def _close_one(conn: _Conn, code: int, reason: str) -> None:
        try:
            conn.ws.close(code, reason)
        except Exception:  # already gone
            pass

    def drop_connections(self) -> int:
        """Abort open connections without a close frame (TCP reset): the client sees 1006.

        Returns:
            How many connections were dropped.
        """
        conns = self._open_conns()
        for conn in conns:
            try:
                conn.ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            conn.ws.close_socket()
        return len(conns)
