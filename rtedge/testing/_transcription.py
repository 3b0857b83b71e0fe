"""An OpenAI realtime *transcription* session (GA): ``/v1/realtime?intent=transcription``.

A transcription session takes input audio and gives back text, with no
model responses.  As openai-python's GA types describe it
(``RealtimeTranscriptionSessionCreateRequest`` / ``...CreateResponse``):

* ``session.created`` / ``session.updated`` carry a session with
  ``type: "transcription"`` and only ``audio.input`` (``format``,
  ``noise_reduction``, ``transcription``, ``turn_detection``) and ``include``
  (plus ``id``, ``object`` and ``expires_at``, as for a realtime session);
* ``session.update`` must say ``type: "transcription"``; realtime fields
  (``instructions``, ``tools``, ``audio.output``...) are unknown parameters;
* the client sends ``input_audio_buffer.append``, ``.commit`` and ``.clear``
  only; with ``turn_detection`` set the server commits at the end of each
  stretch of speech by itself;
* every committed item gets ``conversation.item.input_audio_transcription.delta``
  events and one ``.completed`` (transcript and usage), from the server's
  ``input_transcript`` knob.

The rest (pacing, records, the session limit and its ``session_expired``
close, the per-session audio record) is the realtime session's.

Owns: the emulated GA transcription session.  Must not: do I/O.
"""

from __future__ import annotations

from typing import Any

import copy

from rtedge.testing._config import (PCM_RATE, ClientError, _audio_format, _noise_reduction, _transcription,
                                    _turn_detection, array, enum, nullable, obj)
from rtedge.testing._session import ServerSession

__all__ = ["TRANSCRIPTION_CLIENT_EVENTS", "TranscriptionServerSession", "default_transcription_session"]

#: what a transcription session accepts from the client
TRANSCRIPTION_CLIENT_EVENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "session.update": (("session",), ()),
    "input_audio_buffer.append": (("audio",), ()),
    "input_audio_buffer.commit": ((), ()),
    "input_audio_buffer.clear": ((), ()),
}
DEFAULT_MODEL = "gpt-4o-mini-transcribe"


def _transcription_turn_detection(value: Any, path: str) -> dict[str, Any] | None:
    """As a realtime session's, without a response to create or interrupt."""
    result = _turn_detection(value, path)
    if result is not None:
        result.pop("create_response", None)
        result.pop("interrupt_response", None)
    return result


_SESSION_FIELDS = {
    "type": enum("transcription"),
    "audio": obj({"input": obj({"format": _audio_format, "transcription": _transcription,
                                "noise_reduction": _noise_reduction,
                                "turn_detection": _transcription_turn_detection})}),
    "include": nullable(array(enum("item.input_audio_transcription.logprobs"))),
}


def default_transcription_session(session_id: str, expires_at: int) -> dict[str, Any]:
    """The effective config a fresh transcription session reports in ``session.created``."""
    vad = _transcription_turn_detection({"type": "server_vad"}, "session.audio.input.turn_detection")
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": session_id,
        "expires_at": expires_at,
        "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": PCM_RATE},
            "transcription": {"model": DEFAULT_MODEL, "language": None, "prompt": None},
            "noise_reduction": None,
            "turn_detection": vad,
        }},
        "include": None,
    }


class TranscriptionServerSession(ServerSession):
    """One transcription session (see the module docstring)."""

    client_events = TRANSCRIPTION_CLIENT_EVENTS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        expires = self.config.get("expires_at")
        self.config = default_transcription_session(str(self.config["id"]), int(expires or 0))
        if expires is None:
            del self.config["expires_at"]
        self.input.configure(self._in_fmt(), self._turn_detection())

    def _out_fmt(self) -> Any:  # no output audio; items are built with the input format
        return self._in_fmt()

    def _on_session_update(self, event: dict[str, Any]) -> None:
        session = event["session"]
        if session is None:
            raise ClientError("missing_required_parameter", "Missing required parameter: 'session'.", "session")
        patch = obj(_SESSION_FIELDS, required=("type",))(session, "session")
        old = [self.config["audio"]["input"][k] for k in ("format", "turn_detection")]
        for leaf, value in patch.get("audio", {}).get("input", {}).items():
            self.config["audio"]["input"][leaf] = value
        if "include" in patch:
            self.config["include"] = patch["include"]
        if old != [self.config["audio"]["input"][k] for k in ("format", "turn_detection")]:
            self.input.configure(self._in_fmt(), self._turn_detection())
            self.speech_item = None
        self.emit({"type": "session.updated", "session": copy.deepcopy(self.config)})

    def _speech_stopped(self, position: int) -> None:
        """Server VAD ended a stretch of speech: commit it and transcribe it (no response)."""
        item_id = self.speech_item or self.server.new_id("item")
        self.speech_item = None
        self.emit({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": self.input.ms(position),
                   "item_id": item_id})
        entry = self._commit(item_id, self.input.take(self.speech_start, position))
        self._later(self.server.transcript_delay, lambda: self._transcribe(entry))
