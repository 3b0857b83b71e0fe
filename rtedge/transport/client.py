"""The synchronous client: a context manager over three named threads.

Guarantees
----------
* ``connect()`` returns only once ``session.created`` has arrived and, when a session config was given, the
  server confirmed it with ``session.updated``; otherwise it raises (``HandshakeError``, ``TransportError``,
  ``ServerError``, ``DeadlineExceeded``) and leaves no thread behind.
* Every send helper serialises on the caller's thread (so an illegal event raises right there) and queues the
  text for ``rtedge-sender`` in order.
* User callbacks run only on ``rtedge-dispatch`` (see :mod:`._workers`).
* ``close()`` is idempotent, bounded by its timeout, and safe from any thread, a callback included; it joins
  every thread it can (a callback calling it cannot join its own thread, which exits as soon as that callback
  returns).
* Secrets: the API key is sent in a header and kept nowhere else; it is not in ``repr()``, logs or exception
  messages.

Owns: the :class:`Client`, its threads and :func:`connect`.  Must not: run user callbacks on the sender or
receiver thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, TypeVar

from ..audio.convert import InputConverter
from ..errors import (AudioError, BackpressureError, ConfigError, ConnectionClosed, DeadlineExceeded,
                      LocalProtocolError, RemoteProtocolError)
from ..protocol import events as ev
from ..protocol import items
from ..protocol._state import ConnectionState, SessionState
from ..protocol._unset import UNSET
from ..protocol.config import AudioFormat, SessionConfig
from ..protocol.dialects import Dialect, get_dialect
from ..protocol.dialects.base import is_loopback, redact_url
from ..protocol.session import Session
from ._lifecycle import ENDING, HELD, LinkEvent, LinkState, link_down_text
from ._handshake import event_id_of, server_error
from ._link import MAX_PENDING, Link
from ._inbox import SYNTHETIC_BYTES
from ._workers import BENIGN_ERROR_CODES, decode_failure, describe_error, sender_loop
from .backoff import SESSION_ENDING_ERROR_CODES
from .endpoint import endpoint
from .options import as_bytes, check_append, check_session, checked_headers, checked_timeout, connect_options

log = logging.getLogger("rtedge")

F = TypeVar("F", bound=Callable[..., Any])
Overflow = Literal["block", "drop_oldest"]
#: append_audio's default wait for room (a real-time producer never waits near that long)
APPEND_TIMEOUT = 10.0
#: an internal receiver-thread hook on audio deltas (:meth:`Client._add_audio_hook`)
AudioDeltaHook = Callable[["ev.ResponseOutputAudioDelta"], None]
#: the event types Client._track_expected looks at
_EXPECT_TYPES = frozenset({"input_audio_buffer.speech_stopped", "input_audio_buffer.committed", "response.created",
                           "error"})


class Client(Link):
    """A live realtime session.  Create it with :func:`connect`.

    Attributes:
        dialect: the provider's wire dialect.
        stats: transport counters (messages, bytes, dropped audio, callback errors...).
    """

    def __init__(self, dialect: Dialect, url: str, headers: dict[str, str], options: dict[str, Any]) -> None:
        super().__init__(dialect, url, headers, options)  # the parts, the session record, the link's state
        #: rtedge's own receiver-thread hooks (playback, barge-in), added before the events they want
        self._audio_hooks: list[AudioDeltaHook] = []
        self._event_hooks: list[Callable[[ev.ServerEvent], None]] = []
        self._converter: Any = None  # rtedge.audio.convert.InputConverter, created on first audio (lock)
        self._converter_fmt: Any = None
        self._chunk_cache: tuple[AudioFormat | None, int] = (None, 0)  # (format, _chunk_bytes of it)

    def __repr__(self) -> str:
        s = self._session.state
        return f"<rtedge.Client {self.dialect.name} {redact_url(self._url)} {s.connection.value}>"

    @property
    def is_loopback(self) -> bool:
        """True when the endpoint's host is a loopback address (a local server, such as rtedge's own)."""
        return is_loopback(self._url)

    # ------------------------------------------------------------------------------------------ lifecycle
    def _open(self, session: SessionConfig | None) -> None:
        """Caller's thread: start the sender, have it connect, establish the session (reading here),
        then start the receiver and the dispatcher.  On failure the sender is stopped and joined."""
        timeout = self._opts["connect_timeout"]
        deadline = time.monotonic() + timeout
        self._requested = session
        self._start_thread("rtedge-sender", self._run_sender)
        try:
            conn = self._open_socket(timeout)
            self._establish(conn, deadline, [])
        except BaseException:  # KeyboardInterrupt too: an upgrade still waiting is aborted, not waited for
            self._abandon_opening(self._threads[0], timeout + 1.0)
            raise
        try:
            with self._lock:
                self._machine.apply(LinkEvent.ESTABLISHED)
                self._arm_deadline(self._session)
            self._session_started = time.monotonic()
            self._start_thread("rtedge-receiver", self._supervise)
            self._start_thread("rtedge-dispatch", lambda: self._dispatcher.run(self._stop))
            if session is not None:
                _warn_mismatch(session, self)
        except BaseException:  # a KeyboardInterrupt now: connect() raises it and leaves no thread behind
            self.close()
            raise

    def _run_sender(self) -> None:
        opts = self._opts
        sender_loop(lambda: self._conn, self._sendq, self.stats, ping_interval=opts["ping_interval"],
                    ping_timeout=opts["ping_timeout"], on_tick=self._tick, on_exit=self._sender_exit,
                    retired=self._retired)

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def close(self, timeout: float = 5.0) -> None:
        """End the session: drain queued sends, close the socket (1000), join every thread.

        Idempotent and bounded by ``timeout`` seconds; safe from any thread, callbacks included.
        """
        start = time.monotonic()
        deadline = start + timeout
        with self._lock:
            first, self._close_started = not self._close_started, True
            finish = (first and self._machine.state is LinkState.OPEN
                      and "session_finish" in self.dialect.capabilities)
            if finish:  # the server may close right after session.finished: not a loss
                self._machine.apply(LinkEvent.FINISH)
        if finish:
            self._finish_session(min(self._opts["finish_timeout"], timeout / 2))
        with self._lock:
            if self._machine.can(LinkEvent.CLOSE):
                self._machine.apply(LinkEvent.CLOSE)
        if first:
            self._linger_until = start + timeout * 0.75  # the sender waits that long for the close reply
            self._stop.set()
            self._sendq.close()
            with self._lock:
                upgrading = self._upgrading
            if upgrading is not None:  # rtedge-rollover is opening the next session: stop waiting for it
                upgrading.abort()
        me = threading.current_thread()
        by_name = {t.name: t for t in self._threads}
        sender, receiver = by_name.get("rtedge-sender"), by_name.get("rtedge-receiver")
        if sender is not None and sender is not me:
            sender.join(max(0.0, deadline - time.monotonic()) * 0.9)
            if sender.is_alive():
                # the sender is blocked on a socket itself (an upgrade or a send the peer never
                # takes): shutdown(2) wakes it; it still closes the socket on its way out
                for conn in {id(c): c for c in [self._conn, *self._opened] if c is not None}.values():
                    conn.abort()
                sender.join(max(0.05, deadline - time.monotonic()))
        if receiver is not None and receiver is not me:
            receiver.join(max(0.05, deadline - time.monotonic()))
        with self._lock:  # a rollover thread, old receivers draining after a rollover
            others = [t for t in self._threads + self._draining if t.name not in (
                "rtedge-sender", "rtedge-receiver", "rtedge-dispatch") and t is not me]
        for t in others:
            t.join(max(0.05, deadline - time.monotonic()))
        if first:
            self._dispatcher.stop()
        d = by_name.get("rtedge-dispatch")
        if d is not None and d is not me:
            d.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads + self._draining if t.is_alive() and t is not me]
        if stuck:
            log.warning("threads still running after close(%.1f s): %s (a callback may be blocking)", timeout, stuck)

    def _finish_session(self, timeout: float) -> None:
        """End the session the dialect's way (DashScope ``session.finish``), waiting briefly for
        ``session.finished``; an ``error`` reply means "not supported by this model" and is fine."""
        mark = self._log.seq
        try:
            event_id = self._send(ev.SessionFinish())
            self._log.find(mark, lambda e: isinstance(e, ev.SessionFinished) or (
                isinstance(e, ev.Error) and e.error.event_id in (None, event_id)), timeout)
        except (DeadlineExceeded, ConnectionClosed, LocalProtocolError) as exc:
            log.info("session.finish got no answer (%s); closing anyway", exc)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ receiving
    def _on_text(self, payload: bytes, session: Session | None = None,
                 wake: bool = True) -> list[ev.ServerEvent]:
        """Reader thread: one message of ``session`` (default: the current one) in, its events delivered
        and returned.  No user code runs here.  ``wake=False``: the dispatcher is woken by the reader's
        next :meth:`Dispatcher.flush` (see ``receive_until_end``), not per event."""
        try:
            # JSON and the typed event are built outside the lock: appends never wait for a parse
            event = (session or self._session).parse_message(payload.decode("utf-8"))
            with self._lock:
                session = session or self._session
                session.receive_event(event)
                received = list(session.events())
                current = session is self._session
                if current:
                    self._track_expected(received)
                self._publish()
        except (UnicodeDecodeError, RemoteProtocolError) as exc:
            self.stats.malformed_messages += 1
            rpe = exc if isinstance(exc, RemoteProtocolError) else RemoteProtocolError(f"invalid UTF-8: {exc}")
            log.warning("%s", decode_failure(rpe))
            return []
        share = len(payload) // max(1, len(received))
        for event in received:
            self._deliver(event, share, current, wake)
        return received

    def _track_expected(self, events: list[ev.ServerEvent]) -> None:
        """Under the lock, with the state update (a rollover's switch sees both or neither): whether a
        response is expected (server VAD may answer a turn that ended) and has not started."""
        for event in events:
            if event.type not in _EXPECT_TYPES:
                continue  # (audio deltas, most events)
            if isinstance(event, ev.InputAudioBufferSpeechStopped | ev.InputAudioBufferCommitted):
                self._create_pending = (None, time.monotonic())
            elif self._create_pending is not None and (isinstance(event, ev.ResponseCreated) or (
                    isinstance(event, ev.Error) and event.error.event_id == self._create_pending[0])):
                self._create_pending = None

    def _deliver(self, event: ev.ServerEvent, nbytes: int = SYNTHETIC_BYTES, current: bool = True,
                 wake: bool = True) -> None:
        """Hand an event to the sinks, hooks, inbox and dispatcher.  ``current``: it belongs to the
        current session (not to one draining after a rollover, whose errors say nothing about the link).
        ``wake``: as for :meth:`_on_text`."""
        sunk = False
        audio = isinstance(event, ev.ResponseOutputAudioDelta)
        if audio:  # most events: nothing but the audio hooks applies to them
            for sink in self._audio_hooks:
                self._run_hook(sink, event)
                sunk = True
        else:
            if isinstance(event, ev.Error):
                level = logging.DEBUG if event.error.code in BENIGN_ERROR_CODES else logging.WARNING
                log.log(level, "server error event: %s", describe_error(event))
                if event.error.code == "session_expired":
                    self.stats.sessions_expired += 1
                if event.error.code in SESSION_ENDING_ERROR_CODES and current:
                    self._last_fatal = server_error(event)
            if current and isinstance(event, ev.SessionUpdated | ev.Error):  # rare: under the lock
                self._update_answered(event)
        for hook in self._event_hooks:
            self._run_hook(hook, event)
        self._dispatcher.put(event, self._log.append(event, nbytes, delivered=sunk), wake, nbytes)
        if not audio and self._opts["max_session_seconds"] and isinstance(event, ev.ResponseDone):
            try:  # a turn just ended: the best moment, not up to a sender tick later
                self._sendq.submit(self._maybe_recycle)
            except ConnectionClosed:
                pass

    def _run_hook(self, hook: Callable[[Any], None], event: ev.ServerEvent) -> None:
        try:
            hook(event)
        except Exception:  # rtedge's own hooks: a bug must not kill the receiver (counted, logged)
            self.stats.count_internal_error()
            log.exception("internal hook %r failed on %s", hook, event.type)

    def _emit(self, event: ev.ServerEvent) -> None:
        """Deliver an event rtedge made itself (reconnect states, synthetic settlements)."""
        self._deliver(event)

    # ------------------------------------------------------------------------------------------ callbacks
    def on(self, event_type: str, fn: F | None = None) -> Any:
        """Call ``fn(event)`` on the dispatcher thread for each event of ``event_type`` (``"*"``: all).

        Usable as ``client.on("response.done", fn)`` or as a decorator ``@client.on("response.done")``.
        A beta name (``"response.audio.delta"``) matches its GA name too (as in :meth:`wait_for`); unknown: a warning.
        """
        if fn is None:
            def decorator(f: F) -> F:
                self._dispatcher.add(event_type, f)
                return f
            return decorator
        self._dispatcher.add(event_type, fn)
        return fn

    def off(self, event_type: str, fn: Callable[[Any], Any]) -> None:
        """Remove a callback added with :meth:`on` (one registration of it; ``obj.method`` works)."""
        self._dispatcher.remove(event_type, fn)

    def _add_audio_hook(self, hook: AudioDeltaHook) -> None:
        """Internal fast path (rtedge's own parts only): ``hook`` gets every audio delta on the receiver
        thread, before dispatch.  It must not block (rtedge's playback buffer uses it); user code belongs in
        :meth:`on`, which runs it on the dispatcher thread."""
        with self._lock:  # a new list: the receiver may be iterating the old one
            self._audio_hooks = [*self._audio_hooks, hook]

    def _add_event_hook(self, hook: Callable[[ev.ServerEvent], None]) -> None:
        """Internal fast path (rtedge's own parts only): ``hook`` sees every event on the receiver thread,
        before dispatch (barge-in uses it to silence the speaker at once).  It must not block."""
        with self._lock:
            self._event_hooks = [*self._event_hooks, hook]

    def _remove_hooks(self, *hooks: Callable[[Any], None]) -> None:
        """Internal: remove hooks added by the two methods above (a VoiceAgent detaching)."""
        with self._lock:
            self._audio_hooks = [h for h in self._audio_hooks if h not in hooks]
            self._event_hooks = [h for h in self._event_hooks if h not in hooks]

    def events(self, timeout: float | None = None) -> Iterator[ev.ServerEvent]:
        """Iterate received events in order (the inbox), from the oldest not yet consumed.

        Stops when ``timeout`` seconds pass with no new event, or when the connection ends.
        Events consumed here are not seen again by :meth:`wait_for` (and vice versa).
        """
        checked_timeout(timeout)  # (on the first next(): this is a generator)
        while True:
            try:
                yield self._log.consume(lambda e: True, timeout)
            except (DeadlineExceeded, ConnectionClosed):
                return

    def wait_for(self, event_type: str, timeout: float | None = 30.0) -> ev.ServerEvent:
        """Consume inbox events until one of ``event_type`` (``"*"``: any) arrives (it may already have), and
        return it.

        The inbox is apart from the callbacks: when this returns, callbacks (:meth:`on`) for this event and
        earlier ones may still be queued or running on ``rtedge-dispatch``.  To act after them, register a
        callback for this event type instead (callbacks run in arrival order).

        Raises:
            DeadlineExceeded: none arrived within ``timeout`` seconds.
            ConnectionClosed: the connection ended first.  (ValueError: a negative or NaN ``timeout``.)
        """
        types = self._dispatcher.names(event_type)
        match = (lambda e: True) if types == ("*",) else (lambda e: e.type in types)
        return self._log.consume(match, checked_timeout(timeout))

    # ------------------------------------------------------------------------------------------ sending
    def send(self, event: ev.ClientEvent | Mapping[str, Any]) -> str | None:
        """Queue any client event (a typed event, or a dict sent as is).  Returns its event_id, if any.

        Raises:
            LocalProtocolError: the event is illegal now (e.g. cancel with no active response).
            ConnectionClosed: the client is closed or the connection is gone.
        """
        if not isinstance(event, ev.ClientEvent):
            event = ev.RawClientEvent(data=dict(event))
        return self._send(event)

    def _send(self, event: ev.ClientEvent, audio_ms: float = 0.0) -> str | None:
        with self._lock:
            link = self._machine.state
            if link in ENDING or link is LinkState.CONNECTING:
                raise ConnectionClosed("the client is closed" if self._close_started else link_down_text(link))
            if link in HELD:
                return self._send_offline(event, audio_ms)
            try:
                text = self._session.send(event)
            except LocalProtocolError:
                if self._session.state.connection is ConnectionState.CLOSED:
                    raise ConnectionClosed("the connection is closed") from None
                raise
            self._publish()
            if isinstance(event, ev.ResponseCancel):  # see Link._settle_cancel
                self._cancel_pending = (self._session.state.response_id, time.monotonic(), self._log.seq)
            elif isinstance(event, ev.ResponseCreate):  # a response is coming: not a quiet moment (rollover)
                self._create_pending = (event_id_of(text), time.monotonic())
            self._sendq.put(text, audio_ms, None if audio_ms else event)
            if audio_ms:
                self._last_audio_at = time.monotonic()  # see Link._keepalive_audio
            return event_id_of(text) if not isinstance(event, ev.InputAudioBufferAppend) else None

    def _send_offline(self, event: ev.ClientEvent, audio_ms: float) -> str | None:
        """While reconnecting: audio is dropped (counted), control events wait for the new session."""
        if audio_ms:
            self._sendq.count_outage(audio_ms)
            return None
        if len(self._pending) >= MAX_PENDING:
            raise ConnectionClosed(f"reconnecting, and {MAX_PENDING} control events are already waiting")
        self._pending.append(event)
        return None

    def append_audio(self, pcm: Any, rate: int | None = None, *, timeout: float | None = APPEND_TIMEOUT,
                     overflow: Overflow = "block") -> int:
        """Append audio, converted to the session's input format.  Any length: all of it is queued
        (in wire messages of at most 200 ms) or the call raises.

        Args:
            pcm: int16 samples (1-D ndarray, ``(frames, 2)`` stereo, or little-endian bytes).
            rate: the sample rate of ``pcm`` in Hz (default: the session's input rate).
            timeout: with ``overflow="block"``, the longest wait for room in the send queue (which holds
                ``max_audio_queue_ms``) or for a lost link to come back; None waits forever.
            overflow: ``"block"`` (default): wait for room, so a file streamed as fast as possible arrives
                byte for byte.  ``"drop_oldest"``: for live microphones, never wait: past
                ``max_audio_queue_ms`` the oldest queued audio is dropped (``stats.audio_dropped``,
                ``audio_dropped_ms``; logged once per episode), and audio appended while the link is down
                is dropped (``stats.audio_dropped_outage_ms``), never sent stale.

        Returns:
            The number of wire bytes queued: 0 while the resampler primes, and (``"drop_oldest"``) when the
            audio was dropped because the link is down.

        Raises:
            BackpressureError: (``"block"``) no room within ``timeout``; it says how much was not queued.
            ConnectionClosed: the client is closed or the link gave up.
        """
        check_append(overflow, timeout)
        with self._lock:
            fmt = self._session.state.input_format
            if self._converter_fmt is not fmt and (self._converter is None or self._converter_fmt != fmt):
                self._converter = InputConverter(fmt)
            self._converter_fmt = fmt
            data = self._converter.convert(pcm, fmt.rate if rate is None else rate)
            # the usual append (one frame, room in the queue): queued under this one lock acquisition
            if (overflow == "block" and data and len(data) <= self._chunk_bytes(fmt)
                    and self._put_audio_locked(data, len(data) / fmt.bytes_per_ms)):
                return len(data)
        if not data:
            return 0
        if overflow == "drop_oldest":
            return self._append_or_drop(data, fmt)
        return self._append_blocking(data, fmt, timeout)

    def _append_or_drop(self, data: bytes, fmt: AudioFormat) -> int:
        """``overflow="drop_oldest"``: queue ``data`` (the queue drops its oldest audio past its bound), or
        drop it while the link is down (counted); the bytes queued, 0 when dropped."""
        with self._lock:  # re-entrant: _send takes it again, so the link cannot change in between
            held = self._machine.state in HELD
            self._send(ev.InputAudioBufferAppend(audio=data), audio_ms=len(data) / fmt.bytes_per_ms)
        return 0 if held else len(data)

    def _chunk_bytes(self, fmt: AudioFormat) -> int:
        """The largest wire message of audio (bytes of ``fmt``): 200 ms, or half the send queue if less."""
        cached_fmt, size = self._chunk_cache  # every append asks; the queue's bound is fixed
        if cached_fmt is fmt:
            return size
        chunk_ms = min(200.0, max(10.0, self._sendq.max_audio_ms / 2))
        frame = max(1, fmt.bytes_per_sample)
        size = max(frame, int(chunk_ms * fmt.bytes_per_ms) // frame * frame)
        self._chunk_cache = (fmt, size)
        return size

    def _append_blocking(self, data: bytes, fmt: AudioFormat, timeout: float | None) -> int:
        """Queue ``data`` in chunks, each waiting (up to ``timeout``: checked by the caller) for room and an
        open link."""
        step = self._chunk_bytes(fmt)
        queued = 0
        for offset in range(0, len(data), step):
            chunk = data[offset:offset + step]
            ms = len(chunk) / fmt.bytes_per_ms
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._put_audio_if_room(chunk, ms):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    left = len(data) - queued
                    raise BackpressureError(
                        f"append_audio: {left / fmt.bytes_per_ms:.0f} ms of {len(data) / fmt.bytes_per_ms:.0f} ms"
                        f" not queued: no room in the send queue within {timeout} s (link {self.link_state})",
                        queued, left, left / fmt.bytes_per_ms)
                self._sendq.wait_room(ms, remaining)
            queued += len(chunk)
        return queued

    def _put_audio_if_room(self, chunk: bytes, ms: float) -> bool:
        with self._lock:
            return self._put_audio_locked(chunk, ms)

    def _put_audio_locked(self, chunk: bytes, ms: float) -> bool:
        """Under the lock: queue ``chunk`` (``ms`` of audio) if the link is up and it fits; False if not now.

        Raises:
            ConnectionClosed: the client is closed or the link gave up.
        """
        link = self._machine.state
        if link in ENDING or link is LinkState.CONNECTING:
            raise ConnectionClosed("the client is closed" if self._close_started else link_down_text(link))
        if link in HELD or not self._sendq.put_audio(chunk, ms, self._session.send_audio):
            return False
        self._publish()
        self._last_audio_at = time.monotonic()  # see Link._keepalive_audio
        return True

    def append_image(self, jpeg: bytes) -> None:
        """Append one JPEG image (a video frame) to the input, for dialects that take images (DashScope).

        Raises:
            ConfigError: not a JPEG, or over the size limit (256 KB of base64).
            LocalProtocolError: no audio was appended yet in this session, or the provider takes no images.
        """
        self._send(ev.InputImageBufferAppend(image=as_bytes(jpeg, "append_image")))

    def append_encoded(self, data: bytes, *, timeout: float | None = APPEND_TIMEOUT,
                       overflow: Overflow = "block") -> int:
        """Append audio already in the session's input format (``snapshot.input_format``, e.g. G.711
        mu-law bytes on a ``pcmu`` session), sent byte for byte with no conversion.  ``timeout`` and
        ``overflow`` as for :meth:`append_audio`.

        Returns:
            The number of bytes queued (0: dropped with ``"drop_oldest"`` while the link is down).

        Raises:
            AudioError: ``data`` is not a whole number of samples of that format.
            BackpressureError: (``"block"``) no room within ``timeout``.
        """
        check_append(overflow, timeout)
        data, fmt = as_bytes(data, "append_encoded"), self._session.state.input_format
        if len(data) % fmt.bytes_per_sample:
            raise AudioError(f"{len(data)} bytes is not a whole number of {fmt.kind} samples")
        if not data:
            return 0
        if overflow == "drop_oldest":
            return self._append_or_drop(data, fmt)
        return self._append_blocking(data, fmt, timeout)

    def wait_sent(self, max_queued_ms: float = 0.0, timeout: float | None = None) -> bool:
        """Block until at most ``max_queued_ms`` of appended audio waits to be sent.

        ``append_audio`` already waits for room; use this to know the audio is on the wire (before a
        commit timed by the caller, or with ``overflow="drop_oldest"``).  Returns False on timeout.
        """
        return self._sendq.wait_below(max_queued_ms, checked_timeout(timeout))

    def commit(self) -> str | None:
        """Commit the input buffer (manual turns).  Flushes the resampler's tail first."""
        with self._lock:
            tail = self._converter.flush() if self._converter is not None else b""
        if tail:
            self._send(ev.InputAudioBufferAppend(audio=tail), len(tail) / self._session.state.input_format.bytes_per_ms)
        return self._send(ev.InputAudioBufferCommit())

    def clear_input(self) -> str | None:
        """Drop uncommitted input audio on the server."""
        return self._send(ev.InputAudioBufferClear())

    def create_response(self, **overrides: Any) -> str | None:
        """Ask for a response; keyword arguments become per-response overrides (``instructions=``...).
        Returns the event_id; None while the link is reconnecting (the event waits for the new session)."""
        return self._send(ev.ResponseCreate(response=overrides or UNSET))

    def cancel_response(self) -> bool:
        """Cancel the active response.  Returns False (and sends nothing) when none is active
        or a cancel is already under way."""
        with self._lock:
            cancel = self._session.cancel_event()
            if cancel is None:
                return False
            self._send(cancel)
            return True

    def send_text(self, text: str, respond: bool = True) -> str | None:
        """Add a user text message; with ``respond`` also ask for a response.  Returns the event_id of the last
        event sent, None while the link is reconnecting (both wait for the new session, in order)."""
        event_id = self._send(ev.ConversationItemCreate(item=items.user_text(text)))
        return self.create_response() if respond else event_id

    def truncate(self, item_id: str, audio_end_ms: float, content_index: int = 0) -> bool:
        """Tell the server the user heard only ``audio_end_ms`` of an assistant item's audio.

        ``audio_end_ms`` is clamped to the audio the server holds for the item (received, and no more
        than an earlier truncate kept); nothing is sent (False) when that leaves 0 ms, the item is
        unknown, or the provider cannot truncate.
        """
        with self._lock:
            event = self._session.truncate_event(item_id, audio_end_ms, content_index)
            if event is None:
                return False
            self._send(event)
            return True

    def update_session(self, config: SessionConfig | None = None, *, timeout: float | None = None,
                       **fields: Any) -> str | None:
        """Send ``session.update`` with ``config`` (or fields such as ``instructions=``).

        With ``timeout``, wait for the server's ``session.updated`` and raise ``ServerError``
        if it rejected the update, ``DeadlineExceeded`` if it did not answer in time.
        """
        checked_timeout(timeout)  # before anything is sent
        if config is None:
            config = SessionConfig.from_kwargs(**fields)
        elif fields:
            config = config.merged(SessionConfig.from_kwargs(**fields))
        for warning in self.dialect.check(config):
            log.warning("%s", warning)
        mark = self._log.seq
        with self._lock:  # held from the send until it is recorded: its answer is not handled before
            event_id = self._send(ev.SessionUpdate(session=config))
            if self.dialect.acknowledges_session_update:
                self._updates_in_flight.append((event_id, config))  # see Link._update_answered
            else:
                self._merge_requested(config)
        if timeout is not None:
            self._await_update(mark, event_id, timeout)
            _warn_mismatch(config, self)
        return event_id

    def _await_update(self, mark: int, event_id: str | None, timeout: float) -> None:
        def answer(e: ev.ServerEvent) -> bool:
            return isinstance(e, ev.SessionUpdated) or (isinstance(e, ev.Error) and e.error.event_id == event_id)
        try:
            _, event = self._log.find(mark, answer, timeout)
        except DeadlineExceeded:
            raise DeadlineExceeded(f"no session.updated within {timeout:.1f} s") from None
        if isinstance(event, ev.Error):
            raise server_error(event)

    # ------------------------------------------------------------------------------------------ state
    @property
    def state(self) -> SessionState:
        """The live protocol state, changed by ``rtedge-receiver`` as events arrive (and by senders).
        Not safe to iterate from another thread: read :attr:`snapshot` there."""
        return self._session.state

    @property
    def session(self) -> dict[str, Any]:
        """The effective session config as the server last reported it (a copy)."""
        with self._lock:
            return dict(self._session.state.session)

    @property
    def closed(self) -> bool:
        """True once closed by us, or when the link ended for good (gave up, or the server ended it)."""
        return self._machine.state in ENDING


def _warn_mismatch(config: SessionConfig, client: Client) -> None:
    """Log when the server's effective config does not reflect an explicit null we asked for."""
    if config.turn_detection is None:
        audio = client.session.get("audio") or {}
        td = (audio.get("input") or {}).get("turn_detection", None) if isinstance(audio, dict) else None
        if td is not None:
            log.warning("asked for turn_detection=null but the server still reports %r", td)


def connect(
    provider: str | Dialect = "openai",
    *,
    model: str | None = None, api_key: str | None = None, url: str | None = None,
    session: SessionConfig | None = None,
    on: Mapping[str, Callable[[Any], Any] | Iterable[Callable[[Any], Any]]] | None = None,
    **options: Any,
) -> Client:
    """Open a realtime session and return a connected :class:`Client`.

    Args:
        provider: ``"openai"``, ``"qwen"``... (see ``rtedge.protocol.dialects``), or a configured
            :class:`Dialect` such as ``QwenDialect(region="intl", workspace="ws-1")``.
        model: the model (default: the provider's); sent in the URL query.
        api_key: the key; default from the provider's environment variable (``OPENAI_API_KEY``).
            May be omitted for a loopback URL (the local test server).
        url: override the provider endpoint (``ws://`` or ``wss://``).
        session: a :class:`SessionConfig` to apply; ``connect`` waits until the server confirms it.
        on: callbacks by event type (``{"session.updated": fn, "*": [f, g]}``), registered before the
            connection opens, so they see every event from ``session.created`` on.  (The first callback
            added later for a type with :meth:`Client.on` gets the last few events of that type that no
            callback took, replayed once; not audio deltas, not ``"*"``.)
        **options: ``reconnect`` (a :class:`~rtedge.transport.backoff.Backoff`, the default ``Backoff()``;
            None: no reconnecting), ``connect_timeout`` (s, 10), ``ping_interval`` (s, 20; 0 disables
            keepalive), ``ping_timeout`` (s, 10; also: a write the server takes no byte of for that long drops
            the link), ``finish_timeout`` (s, 2: ``close()``'s wait for DashScope's ``session.finished``),
            ``max_audio_queue_ms`` (2000), ``send_batch_ms`` (40, at most half the queue: audio goes out in
            batches of that much, a sender wake-up each; 0: at once), ``inbox_size`` (events, 10000),
            ``inbox_bytes`` (2 MiB), ``inbox_audio`` (False: audio deltas a callback received are kept in the
            inbox without their audio), ``dispatch_bytes`` (8 MiB, at least 64 KiB, of events waiting for slow
            callbacks; past it the oldest are dropped, counted in ``stats.callback_events_dropped``),
            ``ssl_context``, ``ca_certs`` (path), ``on_error`` (``fn(exc, event)``), ``headers`` (extra),
            ``keepalive_audio_s`` (append 100 ms of silence after that many seconds without input audio;
            DashScope ends sessions after ~300 s without audio).  Session limits: ``session_limit_s``
            (``"auto"``: the provider's, e.g. 3600 for OpenAI, 1800 for Azure, 7200 for Qwen, none for vLLM;
            ``expires_at`` in ``session.created`` shortens it; a number overrides it; None turns the rollover
            off), ``rollover_timing`` (:class:`~rtedge.protocol.reseed.RolloverTiming`: from
            ``limit - margin_s`` the session is replaced make-before-break at a quiet moment, at
            ``limit - force_s`` regardless), ``seed_budget`` (:class:`~rtedge.protocol.reseed.SeedBudget`: how
            much conversation a new session gets, after a rollover or a reconnect).  ``max_session_seconds``
            instead recycles the session break-before-make (the old behaviour; the rollover is then off).

    Raises:
        ConfigError: unknown provider/option, or no API key for a remote endpoint.
        HandshakeError: the upgrade was refused (``status_code`` 401, 403, 429...).
        TransportError: the server could not be reached.
        ServerError: the server rejected the session config.
        DeadlineExceeded: no ``session.created``/``session.updated`` within ``connect_timeout``.
    """
    opts = connect_options(options)
    callbacks = check_session(session, on)
    dialect = get_dialect(provider) if isinstance(provider, str) else provider
    full_url, key, session = endpoint(dialect, model, url, api_key, session, opts)
    headers = checked_headers({**dialect.headers(key), **(opts["headers"] or {})})
    client = Client(dialect, full_url, headers, opts)
    for event_type, fns in callbacks.items():
        for fn in fns:
            client.on(event_type, fn)
    client._open(session)
    return client

