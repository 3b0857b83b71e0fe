"""What a transcription produces, and how each endpoint spells it on the wire.

:class:`Utterance` (one transcript) and :class:`TranscriberStats` are the values
:class:`rtedge.voice.transcriber.Transcriber` hands out; ``_Wire`` and
``_OpenAIWire`` read vLLM's and OpenAI's transcription events into them.

Owns: those values and the per-endpoint event shapes.  Must not: do I/O, hold a connection, or import
numpy (``rtedge transcribe`` builds its command line from the modules that import this one).
"""

from __future__ import annotations

from typing import Any

import attrs

from ..errors import ServerError
from ..protocol import events as ev
from ..protocol.usage import Usage

__all__ = ["RATE", "TranscriberStats", "Utterance"]

#: the endpoint's input rate (vLLM: PCM16 mono at 16 kHz)
RATE = 16000


#: provider names the Transcriber accepts -> the dialect it speaks
_DIALECT_OF = {"vllm": "vllm", "openai": "openai-transcription", "openai-transcription": "openai-transcription"}


class _Wire:
    """How one utterance goes on the wire (vLLM's spelling; :class:`_OpenAIWire` overrides it)."""

    #: a commit starts a generation (vLLM) / commits need this many ms of audio (OpenAI)
    start_commit, min_commit_ms = True, 0

    def final(self) -> ev.ClientEvent:
        return ev.InputAudioBufferCommit(final=True)

    def delta(self, event: ev.ServerEvent) -> str | None:
        return event.delta if isinstance(event, ev.TranscriptionDelta) else None

    def done(self, event: ev.ServerEvent) -> tuple[str, Any] | None:
        return (event.text, event.usage) if isinstance(event, ev.TranscriptionDone) else None

    def failed(self, event: ev.ServerEvent) -> ServerError | None:
        return None


class _OpenAIWire(_Wire):
    """OpenAI transcription sessions: appends, a plain commit, ``...input_audio_transcription.*``."""

    start_commit, min_commit_ms = False, 100

    def final(self) -> ev.ClientEvent:
        return ev.InputAudioBufferCommit()

    def delta(self, event: ev.ServerEvent) -> str | None:
        return event.delta if isinstance(event, ev.InputAudioTranscriptionDelta) else None

    def done(self, event: ev.ServerEvent) -> tuple[str, Any] | None:
        if isinstance(event, ev.InputAudioTranscriptionCompleted):
            return event.transcript, event.usage
        return None

    def failed(self, event: ev.ServerEvent) -> ServerError | None:
        if not isinstance(event, ev.InputAudioTranscriptionFailed):
            return None
        err = event.error
        return ServerError(str(err.get("message") or "transcription failed"), code=err.get("code"),
                           type=err.get("type"), param=err.get("param"))


@attrs.frozen(kw_only=True)
class Utterance:
    """One transcribed stretch of speech.

    Attributes:
        text: the server's transcript (``transcription.done`` ``text``), stripped.
        start_s: where the speech starts, in seconds from the start of the source
            (the gate's first voiced frame; the audio sent begins ``pre_roll_ms`` earlier).
        end_s: where the speech ends (the gate's last voiced frame, or the end of the source).
        usage: the server's token counts for this utterance.
        truncated: the server ended the transcription before the speech ended (token limit);
            the rest of the speech is the next utterance, and audio the server had queued
            when it stopped is lost (vLLM drops it).
        error: the server's message when it could not transcribe this speech (OpenAI's
            ``...transcription.failed``); ``text`` then holds only what arrived before the failure (usually
            nothing), and the next utterances go on.
    """

    text: str
    start_s: float
    end_s: float
    usage: Usage = attrs.field(factory=Usage)
    truncated: bool = False
    error: str | None = None

    def __str__(self) -> str:
        """One line, whatever the text holds (see :func:`one_line`)."""
        return f"[{self.start_s:.2f}-{self.end_s:.2f}] " + one_line(
            self.text if self.error is None else f"(transcription failed: {self.error})")


def one_line(text: str) -> str:
    """``text`` for a line of output: line breaks and other control characters (C0, DEL, C1: a terminal's
    escapes too) become spaces, so that what a server says cannot start a line of its own (one that looks
    like rtedge's, or a journal priority)."""
    return text.translate(_CONTROLS)


_CONTROLS = {c: " " for c in [*range(32), *range(127, 160), 0x2028, 0x2029]}  # C0, DEL, C1, separators


@attrs.define
class TranscriberStats:
    """Counters over the transcriber's life (read them any time).

    Attributes:
        utterances: utterances transcribed.
        failed_utterances: utterances the server could not transcribe (yielded with ``error`` set).
        audio_sent_s: seconds of audio sent.
        audio_not_sent_s: seconds of audio the VAD gate kept off the wire (silence).
        frames_dropped: source frames dropped because the backlog was full (a live source only).
        reconnects: new connections after a lost one (only with ``reconnect=``).
        retried_utterances: utterances sent again on a new connection after an outage.
        lost_utterances: utterances lost to an outage (longer than ``max_retry_audio_s``).
    """

    utterances: int = 0
    failed_utterances: int = 0
    audio_sent_s: float = 0.0
    audio_not_sent_s: float = 0.0
    frames_dropped: int = 0
    reconnects: int = 0
    retried_utterances: int = 0
    lost_utterances: int = 0
