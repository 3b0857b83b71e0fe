"""Session: the sans-IO heart of rtedge.

Theory of operation
-------------------
A :class:`Session` turns client events into text to send and received text
into typed events, and keeps the session's state (:mod:`._state`) up to
date from both.  It does no I/O, starts no threads, reads no clock and logs
nothing: the transport owns all of that and calls in.

* ``send(event) -> str`` checks that the event is legal now, stamps an
  ``event_id`` (except on audio appends: they are never answered), records
  it in the state and returns the JSON text.  An illegal event raises
  :class:`LocalProtocolError` and changes nothing.
* ``receive_message(text)`` parses one message, updates the state and
  queues the event; ``events()`` drains the queue.  Malformed messages raise
  :class:`RemoteProtocolError` and change nothing.
* ``connection_lost(code, reason)`` marks the end; a ``ConnectionLost``
  event is queued so consumers see the end in order.

Policy stays out: the session never sends by itself.  It offers the correct
reply as one call instead (wsproto's ``Ping.response()`` idea):
:meth:`truncate_event` clamps ``audio_end_ms`` to the audio received and
returns None when nothing was heard; :meth:`cancel_event` returns None when
no response is active or a cancel is already under way.  The barge-in rules
themselves (which item, how much was heard, cancel or not) are
:mod:`.interruption`'s.

Owns: the sans-IO session: sending, receiving, the correct replies.  Must not: send anything by itself, do I/O
or read a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import attrs

from ..errors import LocalProtocolError, RemoteProtocolError
from . import events as ev
from . import interruption
from ._state import ConnectionState, ResponseState, SessionState
from ._unset import UNSET
from .dialects import Dialect, get_dialect
from .wire import append_text, from_wire, to_wire


#: the dialect capability a client event type needs (by type: event classes are made on first use)
_NEEDS = {
    "response.create": "response_create",
    "response.cancel": "response_cancel",
    "conversation.item.create": "item_create",
    "input_audio_buffer.clear": "input_clear",
    "conversation.item.truncate": "truncate",
    "conversation.item.retrieve": "retrieve",
    "conversation.item.delete": "delete",
    "session.finish": "session_finish",
    "input_image_buffer.append": "input_image",
}

class Session:
    """The protocol state of one realtime session (sans-IO).

    Args:
        dialect: a :class:`Dialect` or a provider name (``"openai"``).
    """

    def __init__(self, dialect: Dialect | str = "openai") -> None:
        self.dialect = get_dialect(dialect) if isinstance(dialect, str) else dialect
        self.state = SessionState(
            input_format=self.dialect.default_input_format,
            output_format=self.dialect.default_output_format,
            transcripts_count=not self.dialect.answers,
        )
        self._events: deque[ev.ServerEvent] = deque()
        self._next_id = 0

    def __repr__(self) -> str:
        s = self.state
        return (f"<Session {self.dialect.name} {s.connection.value} response={s.response.value} "
                f"input={s.input_buffer.value}>")

    # ---------------------------------------------------------------------------------------------- sending
    def send(self, event: ev.ClientEvent) -> str:
        """Serialize ``event`` for the wire and account for it.

        Returns:
            The JSON text to send.

        Raises:
            LocalProtocolError: the connection is closed, a ``response.cancel`` has no active
                response, or the dialect does not support the event.
        """
        self._check(event)
        kind = event.TYPE  # before the class: event classes are made on first use
        if event.event_id is UNSET and kind != "input_audio_buffer.append" and not (
                not kind and isinstance(event, ev.RawClientEvent)):
            self._next_id += 1
            event = attrs.evolve(event, event_id=f"evt_rtedge_{self._next_id}")
        text = to_wire(event, self.dialect)
        self.state.on_send(event)
        return text

    def send_audio(self, audio: bytes) -> str:
        """:meth:`send` of ``InputAudioBufferAppend(audio=audio)``, without making the event (the hot path:
        50 a second): the same text, the same accounting.

        Raises:
            LocalProtocolError: the connection is closed.
        """
        state = self.state
        if state.connection is ConnectionState.CLOSED:
            raise LocalProtocolError("cannot send input_audio_buffer.append: the connection is closed")
        text = append_text(audio)
        state.on_audio_sent(len(audio))
        return text

    def _check(self, event: ev.ClientEvent) -> None:
        state = self.state
        kind = event.TYPE  # before the class: event classes are made on first use
        if state.connection is ConnectionState.CLOSED:
            raise LocalProtocolError(f"cannot send {kind or 'an event'}: the connection is closed")
        if kind == "input_audio_buffer.append":
            return  # the hot path (50 a second): nothing below applies to it
        if kind == "response.cancel" and isinstance(event, ev.ResponseCancel) and event.response_id is UNSET:
            if state.response is ResponseState.IDLE:
                raise LocalProtocolError("cannot send response.cancel: no response is active")
        if kind == "input_audio_buffer.commit" and isinstance(event, ev.InputAudioBufferCommit) \
                and event.final is not UNSET and "commit_final" not in self.dialect.capabilities:
            raise LocalProtocolError(f"the {self.dialect.name} dialect has no final commit "
                                     "(input_audio_buffer.commit with final is vLLM's)")
        needs = _NEEDS.get(kind)
        if needs is not None and needs not in self.dialect.capabilities:
            raise LocalProtocolError(f"the {self.dialect.name} dialect does not support {kind}")
        if kind == "input_image_buffer.append" and not state.audio_appended:
            raise LocalProtocolError("cannot send an image before any audio: append audio first (DashScope "
                                     "rejects input_image_buffer.append before input_audio_buffer.append)")
        if kind == "conversation.item.truncate" and isinstance(event, ev.ConversationItemTruncate) \
                and event.audio_end_ms < 0:
            raise LocalProtocolError(f"audio_end_ms must be >= 0, got {event.audio_end_ms}")

    # ---------------------------------------------------------------------------------------------- receiving
    def receive_message(self, text: str | bytes) -> ev.ServerEvent:
        """Parse and account for one server message; the event is also queued for :meth:`events`.

        The same as ``receive_event(parse_message(text))``.

        Raises:
            RemoteProtocolError: the message is not a JSON object with a string ``type``, or it is
                nested too deeply to parse or merge (``json`` raises RecursionError, not ValueError).
        """
        return self.receive_event(self.parse_message(text))

    def parse_message(self, text: str | bytes) -> ev.ServerEvent:
        """Parse one server message into its typed event, reading and changing no state.

        A threaded transport parses outside the lock that guards the session, so that senders never
        wait for JSON decoding; :meth:`receive_event` then accounts for the event, in arrival order.

        Raises:
            RemoteProtocolError: as :meth:`receive_message`.
        """
        try:
            return from_wire(text, self.dialect)
        except RecursionError:
            raise RemoteProtocolError("server sent JSON nested too deeply", _as_text(text)) from None

    def receive_event(self, event: ev.ServerEvent) -> ev.ServerEvent:
        """Account for an event from :meth:`parse_message`; it is also queued for :meth:`events`.

        Raises:
            RemoteProtocolError: the event is nested too deeply to merge into the state.
        """
        try:
            self.state.on_event(event)  # merges replace whole values: a RecursionError changes nothing
            if isinstance(event, ev.SessionCreated | ev.SessionUpdated):
                self.state.set_formats(*self.dialect.session_formats(self.state.session))
        except RecursionError:
            raise RemoteProtocolError("server sent JSON nested too deeply", f"<{event.type} event>") from None
        self._events.append(event)
        return event

    def events(self) -> Iterator[ev.ServerEvent]:
        """Drain the queued events, oldest first."""
        while self._events:
            yield self._events.popleft()

    def connection_lost(self, code: int | None = None, reason: str = "", *, by_client: bool = False) -> None:
        """The transport reports the end of the connection (``code`` None: no close frame; ``by_client``:
        this side closed it)."""
        if self.state.connection is ConnectionState.CLOSED:
            return
        self.state.on_connection_lost(code, reason)
        self._events.append(ev.ConnectionLost(type=ev.ConnectionLost.TYPE, code=code, reason=reason,
                                              by_client=by_client))

    # ---------------------------------------------------------------------------------------------- replies
    def truncate_event(self, item_id: str, audio_end_ms: float,
                       content_index: int = 0) -> ev.ConversationItemTruncate | None:
        """The truncate to send for "the user heard ``audio_end_ms`` of this item", or None.

        ``audio_end_ms`` is clamped to the audio the server holds for that item and content index
        (the server rejects more): what was received, and no more than an earlier truncate kept; None
        when the clamped value is 0 (nothing heard: the server rejects a zero truncate of an item
        with no played audio), when the item is unknown, or when the dialect cannot truncate.
        """
        if "truncate" not in self.dialect.capabilities:
            return None
        end = interruption.clamp_truncate_ms(audio_end_ms, self.state.audio_held_ms(item_id, content_index))
        if end <= 0:
            return None
        return ev.ConversationItemTruncate(item_id=item_id, content_index=content_index, audio_end_ms=end)

    def cancel_event(self) -> ev.ResponseCancel | None:
        """A ``response.cancel`` when a response is active and not already being cancelled, else None."""
        if self.state.response is ResponseState.ACTIVE and self.state.connection is not ConnectionState.CLOSED:
            return ev.ResponseCancel()
        return None

    def interrupt_response_on_speech(self) -> bool:
        """True when the server cancels responses itself on speech (``interrupt_response``; the rule is
        :func:`rtedge.protocol.interruption.server_cancels_on_speech`)."""
        return interruption.server_cancels_on_speech(self.state.session)


def _as_text(text: str | bytes) -> str:
    return text if isinstance(text, str) else text[:200].decode("utf-8", "replace")
