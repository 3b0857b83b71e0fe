"""``VLLMServer``: a local server that speaks vLLM's realtime transcription protocol.

Theory of operation
-------------------
It behaves like ``vllm serve <realtime ASR model>`` at ``/v1/realtime`` as far
as a client can tell, without a model: the transcript comes from the
``transcript`` knob.  The protocol, as vLLM implements it:

1. On accept the server sends ``session.created`` ``{id: "sess-<hex>", created}``
   (no ``session`` object, no ``event_id``).
2. ``session.update`` names the model at the top level.  A missing model is an
   ``invalid_event`` error and an unknown one ``model_not_found``; a good one is
   accepted silently (there is no ``session.updated``).
3. ``input_audio_buffer.commit`` (no ``final``) starts a *generation*; before a
   valid ``session.update`` it is refused with ``model_not_validated``.  A second
   start while a generation runs is ignored (counted in :attr:`ignored_commits`).
4. ``input_audio_buffer.append`` audio (base64 PCM16, 16 kHz) is decoded and
   queued; a bad payload is ``invalid_audio``.  Audio queued before a start
   commit is consumed by the next generation, as in vLLM.
5. While audio arrives the generation streams ``transcription.delta`` words: a
   string transcript one word per ``word_ms`` of audio (the last word waits for
   the end); a callable one at the end, when all the audio is known.
6. ``input_audio_buffer.commit`` with ``final: true`` ends the audio; the
   generation sends its remaining words and ``transcription.done`` with ``text``
   (the deltas joined) and ``usage`` ``{prompt_tokens, completion_tokens,
   total_tokens}`` (one prompt token per 80 ms of audio, one completion token per
   word).  Then it drops whatever audio is still queued: appends sent after the
   final commit and before ``done`` are lost (:attr:`dropped_appends`).
7. ``input_audio_buffer.clear``, ``response.*``, ``conversation.*`` and any other
   type are answered with ``unknown_event``.

Errors are ``{"type": "error", "error": "<message>", "code": "<code>"}``.

Threads are all named ``rtedge-testserver-vllm-*``: ``-accept``,
``-handshake``, ``-connN`` (one per connection, reading its events), its
``-connN-recv`` frame reader and one ``-connN-gen`` per generation.
:meth:`VLLMServer.stop` closes every connection (1001) and joins them, bounded.
Everything received and sent is recorded in order; tests wait with
:meth:`VLLMServer.wait_for_received` / :meth:`VLLMServer.wait_for_sent`, which
block on a condition variable.

Owns: ``VLLMServer``.  Must not: be imported by the library.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import queue
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request
from websockets.http11 import Response as HttpResponse
from websockets.protocol import State
from websockets.sync.server import Server, ServerConnection, serve

from rtedge.testing._base import RecordingServer
from rtedge.testing._wirelog import WireLog

__all__ = ["DEFAULT_MODEL", "VLLMServer"]

log = logging.getLogger("rtedge.testing")

DEFAULT_MODEL = "mistralai/Voxtral-Mini-4B-Realtime-2602"
RATE = 16000
#: audio per prompt token (Voxtral realtime: 80 ms per frame token)
SAMPLES_PER_TOKEN = RATE * 80 // 1000
MAX_MESSAGE = 32 * 1024 * 1024

Transcript = str | Callable[[np.ndarray], str] | None


def default_transcript(audio: np.ndarray) -> str:
    """What the server "hears" without a ``transcript`` knob: the utterance's duration."""
    return f"{len(audio) / RATE:.2f} seconds of audio"


class _Conn:
    """One accepted connection and its transcription state."""

    def __init__(self, index: int, ws: ServerConnection) -> None:
        self.index = index
        self.ws = ws
        self.name = f"rtedge-testserver-vllm-conn{index}"
        self.model: str | None = None
        self.validated = False
        self.audio: queue.Queue[np.ndarray | None] = queue.Queue()
        self.generation: threading.Thread | None = None
        self.generations: list[threading.Thread] = []
        self.send_lock = threading.Lock()
        self.closed = threading.Event()


class VLLMServer(RecordingServer):
    """A local vLLM realtime transcription server for tests and demos.

    Use it as a context manager (``with VLLMServer() as server:``) or call
    :meth:`start` / :meth:`stop`.  Clients connect to :attr:`url` and name one of
    ``models`` in ``session.update``.

    Args:
        host: Interface to bind (loopback by default).
        port: TCP port; 0 picks a free one (see :attr:`port`).
        ssl_context: Server-side TLS context; ``None`` = plain ``ws://``.
        api_key: When set, a handshake without ``Authorization: Bearer <api_key>`` gets HTTP 401
            (like ``vllm serve --api-key``).
        models: Served model names (``session.update`` with another is ``model_not_found``).
        transcript: The text of each utterance: a string, ``callable(int16 16 kHz audio) -> str``
            (called once per utterance, on all its audio), or None for :func:`default_transcript`.
            Mutable at run time.
        word_ms: Audio per streamed word for a string transcript.
        done_delay: Seconds between the final commit's audio and ``transcription.done`` (model
            latency); appends arriving meanwhile are dropped, as vLLM drops them.
        max_audio_mb: Per-append cap, compared like vLLM does (samples / 1024**2).
        max_tokens: Words per generation, like a model's ``realtime_max_tokens``: a string
            transcript's generation ends with ``transcription.done`` once it streamed this many,
            even while audio still arrives (later audio waits for the next start commit).
        keep_audio: Record append payloads; ``False`` replaces them with ``"<N bytes>"``.

    Attributes:
        received: Client events in arrival order (all connections).
        sent: Server events in send order (all connections).
        handshakes: Every handshake (path and lower-cased headers).
        utterances: Audio (int16 16 kHz) of every finished generation, in order.
        ignored_commits: Start commits ignored because a generation was running.
        dropped_appends: Appends dropped after a final commit.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        api_key: str | None = None,
        models: tuple[str, ...] | list[str] = (DEFAULT_MODEL,),
        transcript: Transcript = None,
        word_ms: int = 300,
        done_delay: float = 0.0,
        max_audio_mb: float = 25.0,
        max_tokens: int | None = None,
        keep_audio: bool = True,
    ) -> None:
        if not models:
            raise ValueError("models must name at least one model")
        if word_ms <= 0 or done_delay < 0 or max_audio_mb <= 0:
            raise ValueError("word_ms and max_audio_mb must be positive, done_delay >= 0")
        self.host, self._port, self.ssl_context, self.api_key = host, port, ssl_context, api_key
        self.models = tuple(models)
        self.transcript, self.word_ms, self.done_delay = transcript, int(word_ms), float(done_delay)
        self.max_audio_mb, self.keep_audio = float(max_audio_mb), keep_audio
        self.max_tokens = max_tokens
        self.ignored_commits = 0
        self.dropped_appends = 0
        self._lock = threading.Lock()
        self._records = threading.Condition()
        self._wirelog = WireLog(log)
        self._received: list[dict[str, Any]] = []
        self._sent: list[dict[str, Any]] = []
        self._handshakes: list[dict[str, Any]] = []
        self._utterances: list[np.ndarray] = []
        self._conns: list[_Conn] = []
        self._handlers: list[threading.Thread] = []
        self._bound_port = 0
        self._ws_server: Server | None = None
        self._accept_thread: threading.Thread | None = None
        self._stopped = threading.Event()

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> VLLMServer:
        """Bind and start accepting connections (idempotent); returns the server."""
        with self._lock:
            if self._ws_server is not None:
                return self
            self._stopped.clear()
            self._ws_server = serve(
                self._handle, self.host, self._bound_port or self._port, ssl=self.ssl_context,
                compression=None, process_request=self._process_request, max_size=MAX_MESSAGE,
                ping_interval=None, close_timeout=2, open_timeout=5,
                logger=logging.getLogger("rtedge.testing.websockets"),
            )
            inner = self._ws_server.handler

            def named(sock: socket.socket, addr: Any) -> None:
                threading.current_thread().name = "rtedge-testserver-vllm-handshake"
                with self._records:
                    self._handlers.append(threading.current_thread())
                inner(sock, addr)

            self._ws_server.handler = named
            self._bound_port = int(self._ws_server.socket.getsockname()[1])
            self._accept_thread = threading.Thread(target=self._ws_server.serve_forever,
                                                   name="rtedge-testserver-vllm-accept", daemon=True)
            self._accept_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection (1001) and join all server threads, within about ``timeout`` s."""
        with self._lock:
            server, self._ws_server = self._ws_server, None
        if server is None:
            return
        deadline = time.monotonic() + timeout
        for conn in self._snapshot_conns():
            conn.closed.set()
            conn.audio.put(None)
        closer = threading.Thread(target=server.shutdown, name="rtedge-testserver-vllm-stop", daemon=True)
        closer.start()
        closer.join(max(0.1, deadline - time.monotonic()))
        if closer.is_alive():
            for conn in self._snapshot_conns():
                conn.ws.close_socket()
            closer.join(max(0.1, deadline - time.monotonic()))
        threads = [self._accept_thread] if self._accept_thread is not None else []
        with self._records:
            threads += self._handlers + [g for c in self._conns for g in c.generations]
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.05, deadline - time.monotonic()))
        self._stopped.set()

    @property
    def url(self) -> str:
        """``ws[s]://host:port/v1/realtime``."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self.host}:{self.port}/v1/realtime"

    # -- handshake and connection ---------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> HttpResponse | None:
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        with self._records:
            self._handshakes.append({"path": request.path, "headers": headers})
            self._records.notify_all()
        path = request.path.split("?")[0]
        if path not in ("/v1/realtime", "/v1/models"):
            return self._http_error(connection, 404, {"detail": "Not Found"})
        if self.api_key is not None:
            auth = headers.get("authorization", "")
            if not auth.lower().startswith("bearer ") or auth[7:].strip() != self.api_key:
                return self._http_error(connection, 401, {"error": "Unauthorized"})
        if path == "/v1/models":  # a plain GET, as `vllm serve` answers it: the served model names
            created = int(time.time())
            return self._http_error(connection, 200, {"object": "list", "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "vllm", "root": name,
                 "parent": None, "max_model_len": 32768} for name in self.models]})
        return None

    @staticmethod
    def _http_error(connection: ServerConnection, status: int, body: dict[str, Any]) -> HttpResponse:
        """A JSON response (an error, or the model list) in place of the upgrade."""
        response = connection.respond(status, json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    def _handle(self, ws: ServerConnection) -> None:
        with self._records:
            conn = _Conn(len(self._conns), ws)
            self._conns.append(conn)
            self._records.notify_all()
        threading.current_thread().name = conn.name
        reader = getattr(ws, "recv_events_thread", None)
        if isinstance(reader, threading.Thread):
            reader.name = f"{conn.name}-recv"
        try:
            self._send(conn, {"type": "session.created", "id": f"sess-{uuid.uuid4().hex}",
                              "created": int(time.time())})
            while not conn.closed.is_set():
                message = ws.recv()
                if isinstance(message, bytes):
                    self._error(conn, "Expected a text frame", "processing_error")
                    continue
                self._on_text(conn, message)
        except ConnectionClosed:
            pass
        finally:
            conn.closed.set()
            conn.audio.put(None)  # ends a running generation (vLLM aborts it on disconnect)
            self._wirelog.flush(conn.name)
            with self._records:
                self._records.notify_all()

    def _on_text(self, conn: _Conn, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            self._record_received({"<invalid json>": text[:200]}, conn.name)
            self._error(conn, "Invalid JSON", "invalid_json")
            return
        if not isinstance(event, dict):
            self._record_received({"<not an object>": event}, conn.name)
            self._error(conn, f"Unknown event type: {None}", "unknown_event")
            return
        self._record_received(event, conn.name)
        kind = event.get("type")
        if kind == "session.update":
            self._on_session_update(conn, event)
        elif kind == "input_audio_buffer.append":
            self._on_append(conn, event)
        elif kind == "input_audio_buffer.commit":
            self._on_commit(conn, event)
        else:
            self._error(conn, f"Unknown event type: {kind}", "unknown_event")

    def _on_session_update(self, conn: _Conn, event: dict[str, Any]) -> None:
        model = event.get("model")
        if not isinstance(model, str) or not model:
            self._error(conn, "session.update needs a 'model' field", "invalid_event")
        elif model not in self.models:
            self._error(conn, f"The model `{model}` does not exist.", "model_not_found")
        else:
            conn.model, conn.validated = model, True

    def _on_append(self, conn: _Conn, event: dict[str, Any]) -> None:
        audio = event.get("audio")
        if not isinstance(audio, str):
            self._error(conn, "input_audio_buffer.append needs a string 'audio' field", "processing_error")
            return
        try:
            data = base64.b64decode(audio, validate=True)
            if not data or len(data) % 2:
                raise ValueError("empty or odd-length PCM16")
            if len(data) // 2 / 1024 ** 2 > self.max_audio_mb:
                raise ValueError("Maximum file size exceeded")
        except (binascii.Error, ValueError):
            self._error(conn, "Invalid audio data", "invalid_audio")
            return
        conn.audio.put(np.frombuffer(data, dtype="<i2").astype(np.int16))

    def _on_commit(self, conn: _Conn, event: dict[str, Any]) -> None:
        if not conn.validated:
            self._error(conn, "Model not validated. Make sure to validate the model by sending a "
                              "session.update event.", "model_not_validated")
            return
        if event.get("final"):
            conn.audio.put(None)  # the end of this utterance's audio
            return
        if conn.generation is not None and conn.generation.is_alive():
            log.warning("%s: generation already in progress, ignoring commit", conn.name)
            with self._records:
                self.ignored_commits += 1
            return
        thread = threading.Thread(target=self._generate, args=(conn,), name=f"{conn.name}-gen", daemon=True)
        conn.generation = thread
        with self._records:
            conn.generations.append(thread)
        thread.start()

    # -- generation -------------------------------------------------------------------

    def _generate(self, conn: _Conn) -> None:
        """One utterance: consume audio until the final commit, stream words, then ``done``."""
        chunks: list[np.ndarray] = []
        total = 0
        deltas: list[str] = []
        knob, limit = self.transcript, self.max_tokens
        while limit is None or len(deltas) < limit:
            chunk = conn.audio.get()
            if chunk is None or conn.closed.is_set():
                break
            chunks.append(chunk)
            total += len(chunk)
            if isinstance(knob, str):
                words = knob.split()
                due = min(len(words) - 1, total * 1000 // RATE // self.word_ms)
                if limit is not None:
                    due = min(due, limit)
                while len(deltas) < due:
                    deltas.append(self._delta(conn, words[len(deltas)], first=not deltas))
        if conn.closed.is_set():
            return
        audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        try:
            text = knob if isinstance(knob, str) else (knob or default_transcript)(audio)
        except Exception as exc:
            log.exception("%s: transcript callable failed", conn.name)
            self._error(conn, str(exc), "processing_error")
            self._drain(conn)
            return
        words = text.split()[:limit]
        for word in words[len(deltas):]:
            deltas.append(self._delta(conn, word, first=not deltas))
        if self.done_delay and conn.closed.wait(self.done_delay):
            return
        prompt = math.ceil(len(audio) / SAMPLES_PER_TOKEN)
        usage = {"prompt_tokens": prompt, "completion_tokens": len(deltas), "total_tokens": prompt + len(deltas)}
        with self._records:
            self._utterances.append(audio)
        self._send(conn, {"type": "transcription.done", "text": "".join(deltas), "usage": usage})
        self._drain(conn)

    def _delta(self, conn: _Conn, word: str, first: bool) -> str:
        delta = word if first else " " + word
        self._send(conn, {"type": "transcription.delta", "delta": delta})
        return delta

    def _drain(self, conn: _Conn) -> None:
        """Drop queued audio after ``done`` (vLLM clears its queue for the next utterance)."""
        dropped = 0
        while True:
            try:
                item = conn.audio.get_nowait()
            except queue.Empty:
                break
            dropped += item is not None
        if dropped:
            with self._records:
                self.dropped_appends += dropped

    # -- sending and records --------------------------------------------------------------

    def _send(self, conn: _Conn, event: dict[str, Any]) -> None:
        with conn.send_lock:
            self._wirelog.event(conn.name, "sent", event)
            with self._records:
                self._sent.append(event)
                self._records.notify_all()
            try:
                conn.ws.send(json.dumps(event))
            except ConnectionClosed:
                conn.closed.set()

    def _error(self, conn: _Conn, message: str, code: str) -> None:
        self._send(conn, {"type": "error", "error": message, "code": code})

    def _record_received(self, event: dict[str, Any], conn: str) -> None:
        self._wirelog.event(conn, "received", event)
        if not self.keep_audio and event.get("type") == "input_audio_buffer.append" \
                and isinstance(event.get("audio"), str):
            event = {**event, "audio": f"<{len(event['audio']) * 3 // 4} bytes>"}
        with self._records:
            self._received.append(event)
            self._records.notify_all()

    def _snapshot_conns(self) -> list[_Conn]:
        with self._records:
            return list(self._conns)

    @property
    def utterances(self) -> list[np.ndarray]:
        """The audio of every transcribed utterance, in order (int16, 16 kHz)."""
        with self._records:
            return list(self._utterances)

    @property
    def active_connections(self) -> int:
        """Connections open now."""
        return sum(1 for c in self._snapshot_conns() if not c.closed.is_set() and c.ws.state is State.OPEN)

    @property
    def close_codes(self) -> list[int | None]:
        """Per connection, the close code the client sent (1006: it ended without one; None: still open)."""
        return [conn.ws.close_code for conn in self._snapshot_conns()]

    # -- faults ---------------------------------------------------------------------------

    def send_event(self, event: dict[str, Any], connection: int | None = None) -> int:
        """Send any server event as given (e.g. a ``processing_error``) to one or every open connection.

        Returns:
            How many connections it was sent to.
        """
        conns = self._snapshot_conns()
        targets = conns if connection is None else [conns[connection]]
        count = 0
        for conn in targets:
            if not conn.closed.is_set():
                self._send(conn, event)
                count += 1
        return count

    def close_connections(self, code: int = 1000, reason: str = "") -> int:
        """Close every open connection with ``code``; returns how many were open."""
        conns = [c for c in self._snapshot_conns() if not c.closed.is_set()]
        for conn in conns:
            try:
                conn.ws.close(code, reason)
            except Exception as exc:  # noqa: BLE001 - already gone
                log.debug("%s: close(%d): %s", conn.name, code, exc)
        return len(conns)
