"""One emulated GA realtime session: client events in, server events out.

Theory of operation
-------------------
A :class:`ServerSession` belongs to one WebSocket connection.  Two threads
touch it:

* the connection's handler thread calls :meth:`ServerSession.handle_text`
  for every client message, and
* the session's own *responder* thread (``rtedge-testserver-connN-respond``)
  streams the active response and watches the session deadline.

Both work under one condition variable (``self.cond``).  Every state change
and the events describing it happen while holding it, and events are sent
while holding it too, so the order on the wire always matches the order of
state changes (a cancellation's ``response.done`` can never be overtaken by a
stale audio delta).  The responder thread pulls one step at a time from the
response generator (see ``_response``): events are sent at once, a deadline
releases the lock until it is due or until someone (a cancel, a barge-in, a
close) replaces the stream and notifies.

Client mistakes become ``error`` events carrying the client's ``event_id``
(:class:`~rtedge.testing._config.ClientError`); the session stays usable, as
on the real server.  A send that fails because the peer is gone just marks
the session closed.  The responder (a scripted ``responder=`` callable) runs
under the lock, so it should be quick.

Owns: one emulated GA session.  Must not: own sockets (the server does).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generator

import numpy as np

from rtedge.testing._audio import WireFormat
from rtedge.testing._config import (
    ClientError,
    default_session,
    invalid_value,
    merge_session,
    validate_response_params,
    validate_session,
)
from rtedge.testing._conversation import Conversation, Entry, estimate_tokens, item_from_client, item_text
from rtedge.testing._input import InputBuffer
from rtedge.testing._record import AudioRecord
from rtedge.testing._response import (
    RATE_LIMIT,
    Plan,
    Reply,
    Response,
    Turn,
    default_arguments,
    message_plan,
    rate_limits_event,
    split_text,
)

if TYPE_CHECKING:
    from rtedge.testing.server import RealtimeServer

__all__ = ["ServerSession"]

log = logging.getLogger("rtedge.testing")

# The client events this server accepts, with their allowed (first: required) fields.
CLIENT_EVENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "session.update": (("session",), ()),
    "input_audio_buffer.append": (("audio",), ()),
    "input_audio_buffer.commit": ((), ()),
    "input_audio_buffer.clear": ((), ()),
    "conversation.item.create": (("item",), ("previous_item_id",)),
    "conversation.item.truncate": (("item_id", "content_index", "audio_end_ms"), ()),
    "conversation.item.delete": (("item_id",), ()),
    "conversation.item.retrieve": (("item_id",), ()),
    "response.create": ((), ("response",)),
    "response.cancel": ((), ("response_id",)),
}
MIN_COMMIT_MS = 100
#: Extension event (not in the live API), see ``RealtimeServer(barriers=...)``.
BARRIER = "rtedge.barrier"


class ServerSession:
    """Protocol state of one connection.

    Args:
        server: The owning server (knobs, ids and the event record are read from it).
        model: The model named in the connection URL.
        send: Sends one text frame; may raise when the peer is gone.
        close: Closes the connection with a code and reason.
        name: Thread name prefix for this connection.
    """

    #: the client events this session accepts: type -> (required keys, optional keys)
    client_events: ClassVar[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = CLIENT_EVENTS

    def __init__(self, server: RealtimeServer, model: str, send: Callable[[str], None],
                 close: Callable[[int, str], None], name: str) -> None:
        self.server = server
        self.name = name
        self._send = send
        self._close = close
        self.cond = threading.Condition()
        self.closing = False
        now = time.time()
        self.deadline = time.monotonic() + server.session_duration_s
        self.config = default_session(model, server.new_id("sess"), int(now + server.session_duration_s),
                                      server.instructions)
        if not server.announce_expiry:
            del self.config["expires_at"]
        self.conversation = Conversation()
        self.conversation_id = server.new_id("conv")
        self.input = InputBuffer(self._in_fmt(), self._turn_detection())
        self.speech_item: str | None = None
        self.speech_start = 0
        self.active: Response | None = None
        self.stream: Generator[dict[str, Any] | float, None, None] | None = None
        self.tokens_used = 0
        self.last_input_tokens = 0
        self.idle_deadline: float | None = None  # server_vad idle_timeout_ms, armed after a response
        self.idle_from = 0  # input position when it was armed
        self.idle_nudged = False  # one nudge per silence, never a self-prompting loop
        self.audio_record = AudioRecord(server.keep_audio)
        #: (due, action): work the responder thread runs once due (a delayed transcript or turn answer)
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self._thread = threading.Thread(target=self._respond_loop, name=f"{name}-respond", daemon=True)

    # -- helpers ---------------------------------------------------------------

    def _in_fmt(self) -> WireFormat:
        return WireFormat(self.config["audio"]["input"]["format"])

    def _out_fmt(self) -> WireFormat:
        return WireFormat(self.config["audio"]["output"]["format"])

    def _turn_detection(self) -> dict[str, Any] | None:
        td = self.config["audio"]["input"]["turn_detection"]
        return dict(td) if td else None

    def snapshot(self) -> dict[str, Any]:
        """A copy of the effective session config."""
        with self.cond:
            return copy.deepcopy(self.config)

    def emit(self, event: dict[str, Any]) -> None:
        """Stamp an ``event_id``, record and send one server event (lock held)."""
        out = {"type": event["type"], "event_id": event.get("event_id") or self.server.new_id("event")}
        out.update((k, v) for k, v in event.items() if k not in ("type", "event_id"))
        if self.closing:
            return
        self.server._record_sent(out, self.name)
        try:
            self._send(json.dumps(out))
        except Exception:  # the peer is gone; the handler thread will clean up
            self.closing = True
            self.cond.notify_all()

    def _error(self, err: ClientError, client_event_id: Any) -> None:
        self.emit({"type": "error", "error": {
            "type": err.error_type, "code": err.code, "message": err.message, "param": err.param,
            "event_id": client_event_id if isinstance(client_event_id, str) else None}})

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Send ``session.created`` and start the responder thread."""
        with self.cond:
            self.emit({"type": "session.created", "session": copy.deepcopy(self.config)})
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop streaming and join the responder thread (idempotent)."""
        with self.cond:
            self.closing = True
            if self.stream is not None:
                self.stream.close()
                self.stream = None
            self.cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def inject(self, event: dict[str, Any]) -> None:
        """Send an arbitrary event (from a test) in order with the session's own."""
        with self.cond:
            self.emit(copy.deepcopy(event))

    # -- client events ---------------------------------------------------------

    def handle_binary(self) -> None:
        with self.cond:
            message = "Expected a text WebSocket message; binary frames are not supported."
            self._error(ClientError("invalid_event", message), None)

    def handle_text(self, raw: str) -> dict[str, Any] | None:
        """Process one client text frame; returns the parsed event (or ``None``)."""
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # nested deeper than the parser recurses: bad JSON too
            with self.cond:
                message = f"Invalid event: failed to parse JSON value. {exc}"
                self._error(ClientError("invalid_json", message), None)
            return None
        if not isinstance(event, dict):
            with self.cond:
                self._error(ClientError("invalid_json", "Invalid event: expected a JSON object."), None)
            return None
        self.server._record_received(event, self.name)
        with self.cond:
            try:
                self._dispatch(event)
            except ClientError as err:
                self._error(err, event.get("event_id"))
        return event

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind is None:
            raise ClientError("missing_required_parameter", "Missing required parameter: 'type'.", "type")
        if kind == BARRIER and self.server.barriers:
            self._barrier(event)
            return
        if kind not in self.client_events:
            raise invalid_value("type", kind, list(self.client_events))
        required, optional = self.client_events[kind]
        for key in event:
            if key not in ("type", "event_id") and key not in required and key not in optional:
                raise ClientError("unknown_parameter", f"Unknown parameter: '{key}'.", key)
        for key in required:
            if key not in event:
                raise ClientError("missing_required_parameter", f"Missing required parameter: '{key}'.", key)
        getattr(self, "_on_" + kind.replace(".", "_"))(event)

    def _barrier(self, event: dict[str, Any]) -> None:
        """``rtedge.barrier``: answer ``rtedge.barrier.done`` once no response is streaming.

        The handler thread waits here (the lock is released while waiting), so every event caused
        by what the client sent before the barrier has been sent before the answer, and nothing the
        client sends after it is processed before: a quiescent point for lock-step clients.
        """
        while self.active is not None and not self.closing:
            self.cond.wait(1.0)
        self.emit({"type": BARRIER + ".done", "client_event_id": event.get("event_id")})

    def _on_session_update(self, event: dict[str, Any]) -> None:
        patch = validate_session(event["session"])
        self._apply_session(merge_session(self.config, patch))

    def _check_voice(self, config: dict[str, Any]) -> None:
        """Refuse ``config`` (a ``session.update``'s result) if it changes the voice once assistant audio
        exists."""
        old_voice = self.config["audio"]["output"]["voice"]
        if config["audio"]["output"]["voice"] != old_voice and self._assistant_audio_present():
            raise ClientError("cannot_update_voice",
                              "Cannot update a conversation's voice if assistant audio is present.")

    def _apply_session(self, config: dict[str, Any]) -> None:
        """Make ``config`` (a validated, GA-shaped copy) the session's and announce it with
        ``session.updated`` (after :meth:`_check_voice`); the input buffer follows a new input format or
        turn detection."""
        self._check_voice(config)
        old_input = self.config["audio"]["input"]
        self.config = config
        new_input = config["audio"]["input"]
        keys = ("format", "turn_detection")
        if [old_input[k] for k in keys] != [new_input[k] for k in keys]:
            self.input.configure(self._in_fmt(), self._turn_detection())
            self.speech_item = None
        self.emit({"type": "session.updated", "session": copy.deepcopy(self.config)})

    def _assistant_audio_present(self) -> bool:
        entries = list(self.conversation.entries)
        if self.active is not None and self.active.entry is not None:
            entries.append(self.active.entry)
        return any(e.item.get("role") == "assistant" and e.audio is not None and e.audio.size
                   for e in entries)

    # -- input audio -----------------------------------------------------------

    def _on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        audio = event["audio"]
        if not isinstance(audio, str):
            raise ClientError("invalid_type", "Invalid type for 'audio': expected a string.", "audio")
        try:
            payload = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            message = "Invalid 'audio'. Expected base64-encoded audio."
            raise ClientError("invalid_value", message, "audio") from None
        pcm = self.input.fmt.decode(payload)
        self.audio_record.add(pcm, self.input.fmt.rate)
        for boundary in self.input.append(pcm):
            if boundary.kind == "start":
                self._speech_started(boundary.sample)
            else:
                self._speech_stopped(boundary.sample)

    def _speech_started(self, position: int) -> None:
        self.speech_item, self.speech_start = self.server.new_id("item"), position
        self.idle_deadline, self.idle_nudged = None, False
        self.emit({"type": "input_audio_buffer.speech_started", "audio_start_ms": self.input.ms(position),
                   "item_id": self.speech_item})
        td = self._turn_detection() or {}
        if td.get("interrupt_response") and self.active is not None and self.active.conversation is not None:
            self._finish_active("cancelled", "turn_detected")

    def _speech_stopped(self, position: int) -> None:
        item_id = self.speech_item or self.server.new_id("item")
        self.speech_item = None
        self.emit({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": self.input.ms(position),
                   "item_id": item_id})
        entry = self._commit(item_id, self.input.take(self.speech_start, position))
        td = self._turn_detection() or {}
        if td.get("create_response"):
            self._later(self.server.vad_response_delay, self._answer_turn)
        self._later(self.server.transcript_delay, lambda: self._transcribe(entry))

    def _answer_turn(self) -> None:
        """Server VAD's automatic answer to a turn (none while a response is already active)."""
        if self.active is None:
            self._start_response({})

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        """Run ``action`` now (lock held) or, with a ``delay``, on the responder thread once due."""
        if delay <= 0:
            action()
            return
        self.timers.append((time.monotonic() + delay, action))
        self.timers.sort(key=lambda timer: timer[0])
        self.cond.notify_all()

    def _streaming(self) -> bool:
        return self.stream is not None

    def _run_timers(self) -> float | None:
        """Lock held: run the timers that are due; the next one's due time (None: no timer)."""
        while self.timers and not self.closing and self.timers[0][0] <= time.monotonic():
            _, action = self.timers.pop(0)
            action()
        return self.timers[0][0] if self.timers and not self.closing else None

    def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        have_ms = self.input.since_commit * 1000.0 / self.input.fmt.rate
        if have_ms < MIN_COMMIT_MS:
            raise ClientError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
                f"but buffer only has {have_ms:.2f}ms of audio.",
            )
        item_id = self.speech_item if self.input.in_speech and self.speech_item else None
        item_id = item_id or self.server.new_id("item")
        self.speech_item = None
        entry = self._commit(item_id, self.input.take_all())
        self._later(self.server.transcript_delay, lambda: self._transcribe(entry))

    def _on_input_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        self.input.clear()
        self.speech_item = None
        self.emit({"type": "input_audio_buffer.cleared"})

    def _commit(self, item_id: str, audio: np.ndarray) -> Entry:
        item = {"id": item_id, "type": "message", "status": "completed", "role": "user",
                "content": [{"type": "input_audio", "transcript": None}]}
        entry = Entry(item, audio, self.input.fmt)
        previous = self.conversation.insert(entry)
        self.emit({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id})
        self.emit({"type": "conversation.item.added", "previous_item_id": previous, "item": entry.public()})
        self.emit({"type": "conversation.item.done", "previous_item_id": previous, "item": entry.public()})
        return entry

    def _transcribe(self, entry: Entry) -> None:
        config = self.config["audio"]["input"]["transcription"]
        if not config:
            return
        knob = self.server.input_transcript
        if callable(knob):
            audio = entry.audio if entry.audio is not None else np.zeros(0, dtype=np.int16)
            try:
                text = str(knob(audio, entry.fmt.rate if entry.fmt else 24000))
            except Exception as exc:  # the model failed on this audio: .failed instead of .completed
                self.emit({"type": "conversation.item.input_audio_transcription.failed", "item_id": entry.id,
                           "content_index": 0, "error": {"type": "server_error", "code": "transcription_failed",
                                                         "message": str(exc), "param": None}})
                return
        else:
            text = str(knob)
        for piece in split_text(text):
            self.emit({"type": "conversation.item.input_audio_transcription.delta", "item_id": entry.id,
                       "content_index": 0, "delta": piece, "obfuscation": self.server.obfuscation(piece)})
        seconds = entry.audio_ms() / 1000.0
        if config["model"] in ("whisper-1", "gpt-realtime-whisper"):
            usage: dict[str, Any] = {"type": "duration", "seconds": round(seconds)}
        else:
            audio_tokens, out_tokens = max(1, round(seconds * 10)), max(1, len(text) // 4)
            usage = {"type": "tokens", "total_tokens": audio_tokens + out_tokens,
                     "input_tokens": audio_tokens,
                     "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
                     "output_tokens": out_tokens}
        entry.item["content"][0]["transcript"] = text
        self.emit({"type": "conversation.item.input_audio_transcription.completed", "item_id": entry.id,
                   "content_index": 0, "transcript": text, "usage": usage})

    # -- conversation items ----------------------------------------------------

    def _on_conversation_item_create(self, event: dict[str, Any]) -> None:
        entry = item_from_client(event["item"], lambda: self.server.new_id("item"), self._in_fmt(),
                                 self._out_fmt())
        if self.conversation.find(entry.id) is not None:
            message = f"Error adding item: the item with id '{entry.id}' already exists."
            raise ClientError("invalid_value", message, "item.id")
        previous = self.conversation.insert(entry, event.get("previous_item_id"))
        self.emit({"type": "conversation.item.added", "previous_item_id": previous, "item": entry.public()})
        self.emit({"type": "conversation.item.done", "previous_item_id": previous, "item": entry.public()})

    def _on_conversation_item_retrieve(self, event: dict[str, Any]) -> None:
        entry = self.conversation.find(event["item_id"])
        if entry is None:
            raise ClientError("item_retrieve_invalid_item_id",
                              f"Error retrieving item: the item with id '{event['item_id']}' does not exist.")
        self.emit({"type": "conversation.item.retrieved", "item": entry.public(with_audio=True)})

    def _on_conversation_item_delete(self, event: dict[str, Any]) -> None:
        if not self.conversation.delete(event["item_id"]):
            raise ClientError("item_delete_invalid_item_id",
                              f"Error deleting item: the item with id '{event['item_id']}' does not exist.")
        self.emit({"type": "conversation.item.deleted", "item_id": event["item_id"]})

    def _on_conversation_item_truncate(self, event: dict[str, Any]) -> None:
        item_id, end_ms, index = event["item_id"], event["audio_end_ms"], event["content_index"]
        entry = self.conversation.find(item_id)
        if entry is None:
            raise ClientError("item_truncate_invalid_item_id",
                              f"Error truncating item: the item with id '{item_id}' does not exist.")
        content = entry.item.get("content") or [{}]
        is_audio = content[0].get("type") == "output_audio" and entry.fmt is not None
        if entry.item.get("role") != "assistant" or not is_audio:
            raise ClientError(None, "Only model output audio messages can be truncated")
        for key, value in (("content_index", index), ("audio_end_ms", end_ms)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                message = f"Invalid type for '{key}': expected a non-negative integer."
                raise ClientError("invalid_type", message, key)
        if index != 0:
            raise ClientError("invalid_value", f"Invalid 'content_index': item has no content part {index}.",
                              "content_index")
        sent_ms = entry.audio_ms()
        if end_ms > sent_ms:
            message = f"Audio content of {sent_ms}ms is already shorter than {end_ms}ms"
            raise ClientError("invalid_value", message, "audio_end_ms")
        transcript = str(content[0].get("transcript") or "")
        keep_chars = round(len(transcript) * end_ms / sent_ms) if sent_ms else 0
        content[0]["transcript"] = transcript[:keep_chars].rstrip()
        assert entry.audio is not None and entry.fmt is not None
        entry.audio = entry.audio[: entry.fmt.ms_to_samples(end_ms)]
        self.emit({"type": "conversation.item.truncated", "item_id": item_id, "content_index": index,
                   "audio_end_ms": end_ms})

    # -- responses -------------------------------------------------------------

    def _on_response_create(self, event: dict[str, Any]) -> None:
        params = validate_response_params(event.get("response"))
        if self.active is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        self._start_response(params)

    def _on_response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        if self.active is None or (wanted is not None and wanted != self.active.id):
            raise ClientError("response_cancel_not_active", "Cancellation failed: no active response found")
        self._finish_active("cancelled", "client_cancelled")

    def _context(self, params: dict[str, Any]) -> list[Entry]:
        if "input" not in params:
            return list(self.conversation.entries)
        context = []
        for raw in params["input"]:
            if raw.get("type") == "item_reference":
                found = self.conversation.find(raw.get("id"))
                if found is None:
                    raise ClientError("invalid_value", f"Item with id '{raw.get('id')}' not found.",
                                      "response.input")
                context.append(found)
            else:
                context.append(item_from_client(raw, lambda: self.server.new_id("item"), self._in_fmt(),
                                                self._out_fmt()))
        return context

    def _start_response(self, params: dict[str, Any]) -> None:
        cfg = self.config
        context = self._context(params)
        instructions = params.get("instructions", cfg["instructions"])
        tools = params.get("tools", cfg["tools"])
        out_params = params.get("audio", {}).get("output", {})
        out_fmt = WireFormat(out_params.get("format", cfg["audio"]["output"]["format"]))
        in_band = params.get("conversation", "auto") != "none"
        tokens = estimate_tokens(context, instructions + (json.dumps(tools) if tools else ""))
        resp = Response(
            id=self.server.new_id("resp"), new_id=self.server.new_id,
            conversation=self.conversation if in_band else None,
            conversation_id=self.conversation_id if in_band else None,
            modality=params.get("output_modalities", cfg["output_modalities"])[0], out_fmt=out_fmt,
            voice=out_params.get("voice", cfg["audio"]["output"]["voice"]), metadata=params.get("metadata"),
            max_output_tokens=params.get("max_output_tokens", cfg["max_output_tokens"]), input_tokens=tokens,
            cached_tokens=self.last_input_tokens // 64 * 64, delta_ms=self.server.delta_ms,
            realtime=self.server.realtime, start_delay=self.server.response_delay,
        )
        self.last_input_tokens = sum(tokens)
        self.idle_deadline = None
        self.emit(resp.created_event())
        self.active = resp
        try:
            plan = self._plan(resp, params, context, instructions, tools)
        except Exception as exc:  # a broken responder fails the response, as a model error would
            log.exception("responder failed")
            self._finish_active("failed", None, {"type": "server_error", "code": "responder_error",
                                                 "message": str(exc)})
            return
        self.stream = self._stream(resp, plan)
        self.cond.notify_all()

    def _plan(self, resp: Response, params: dict[str, Any], context: list[Entry], instructions: str,
              tools: list[dict[str, Any]]) -> Plan:
        server = self.server
        choice = params.get("tool_choice", self.config["tool_choice"])
        last_type = context[-1].item.get("type") if context else None
        functions = [t for t in tools if t.get("type") == "function"]
        if functions and choice != "none" and server.auto_tool_calls and last_type != "function_call_output":
            wanted = choice.get("name") if isinstance(choice, dict) else server.tool_name
            tool = next((t for t in functions if t.get("name") == wanted), functions[0])
            name = wanted or tool["name"]
            args = server.tool_arguments
            if callable(args):
                arguments = args(tool)
            else:
                arguments = args if args is not None else default_arguments(tool)
            return Plan("function_call", name=name, arguments=str(arguments))
        reply = self._reply(params, context, instructions)
        return message_plan(reply, resp.modality, resp.out_fmt)

    def _reply(self, params: dict[str, Any], context: list[Entry], instructions: str) -> Reply:
        responder = self.server.responder
        if responder is None:
            return Reply(self.server.reply_text)
        users = [e for e in context if e.item.get("type") == "message" and e.item.get("role") == "user"]
        last = users[-1] if users else None
        turn = Turn(
            items=[e.public() for e in context], last_user_item=last.public() if last else None,
            last_user_text=item_text(last.item) if last else "",
            last_user_audio=None if last is None or last.audio is None else last.audio.copy(),
            input_rate=last.fmt.rate if last is not None and last.fmt is not None else 24000,
            instructions=instructions, session=copy.deepcopy(self.config), response=copy.deepcopy(params),
        )
        result = responder(turn)
        if isinstance(result, Reply):
            return result
        if isinstance(result, tuple):
            return Reply(str(result[0]), result[1] if len(result) > 1 else None)
        return Reply(str(result))

    def _stream(self, resp: Response, plan: Plan) -> Generator[dict[str, Any] | float, None, None]:
        yield from resp.run(plan, self.server.obfuscation)
        self._closed(resp)

    def _finish_active(self, status: str, reason: str | None, error: dict[str, Any] | None = None) -> None:
        resp = self.active
        assert resp is not None
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        for event in resp.finish(status, reason, error):
            self.emit(event)
        self._closed(resp)

    def _closed(self, resp: Response) -> None:
        """Bookkeeping after ``response.done``: usage totals, rate limits, slot freed."""
        self.tokens_used += int((resp.usage or {}).get("total_tokens", 0))
        if self.active is resp:
            self.active = None
        self.emit(rate_limits_event(RATE_LIMIT - self.tokens_used))
        td = self._turn_detection() or {}
        idle_ms = td.get("idle_timeout_ms")
        if idle_ms is not None and td.get("type") == "server_vad" and not self.idle_nudged:
            self.idle_deadline = resp.playback_end() + idle_ms / 1000.0
            self.idle_from = self.input.total
        self.cond.notify_all()

    def _idle_timeout(self) -> None:
        """No speech for ``idle_timeout_ms`` after playback: commit what was heard and prompt."""
        self.idle_deadline, self.idle_nudged = None, True
        item_id, end = self.server.new_id("item"), self.input.total
        self.emit({"type": "input_audio_buffer.timeout_triggered",
                   "audio_start_ms": self.input.ms(self.idle_from), "audio_end_ms": self.input.ms(end),
                   "item_id": item_id})
        self._commit(item_id, self.input.take(self.idle_from, end))
        if self.active is None:
            self._start_response({})

    # -- responder thread ------------------------------------------------------

    def _respond_loop(self) -> None:
        try:
            while self._respond_step():
                pass
        except Exception:  # never let the thread die silently
            log.exception("test server responder thread failed")

    def _respond_step(self) -> bool:
        """Run one step of the active stream; returns False when the session ends."""
        with self.cond:
            while not self.closing and self.stream is None:
                now = time.monotonic()
                if now >= self.deadline:
                    return self._expire()
                if self.idle_deadline is not None and now >= self.idle_deadline:
                    self._idle_timeout()
                    continue
                timer = self._run_timers()  # (it may start a response: the loop ends)
                wake = min(self.deadline, self.idle_deadline or self.deadline, timer or self.deadline)
                if not self._streaming():
                    self.cond.wait(min(wake - time.monotonic(), 3600.0))  # bounded: an infinite duration is allowed
            if self.closing or self.stream is None:
                return False
            stream = self.stream
            try:
                item = next(stream)
                while isinstance(item, dict):
                    self.emit(item)
                    item = next(stream)
            except StopIteration:
                if self.stream is stream:
                    self.stream = None
                return True
            except Exception as exc:  # a bug while streaming: fail the response, keep the session
                log.exception("test server response stream failed")
                if self.stream is stream and self.active is not None:
                    self._finish_active("failed", None, {"type": "server_error", "code": "server_error",
                                                         "message": str(exc)})
                return True
            while not self.closing and self.stream is stream and time.monotonic() < item:
                timer = self._run_timers()  # (a delayed transcript arrives while the answer streams)
                self.cond.wait(min(item, timer or item) - time.monotonic())
            return True

    def _expire(self) -> bool:
        """The session reached its maximum duration: error, then close 1001."""
        duration = self.server.session_duration_s
        span = f"{int(duration // 60)} minutes" if duration >= 60 else f"{duration:g} seconds"
        message = f"Your session hit the maximum duration of {span}."
        self._error(ClientError("session_expired", message), None)
        self.closing = True
        threading.Thread(target=self._close, args=(1001, message), name=self._thread.name + "-expire",
                         daemon=True).start()
        return False
