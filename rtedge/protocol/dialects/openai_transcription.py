"""OpenAI Realtime GA *transcription* sessions: speech in, text out, no model responses.

The wire facts this dialect encodes (openai-python's GA types:
``RealtimeTranscriptionSessionCreateRequest``, ``...AudioInput``,
``ConversationItemInputAudioTranscription*Event``):

* ``wss://api.openai.com/v1/realtime?intent=transcription`` (no ``model`` in
  the query: the transcription model is part of the session config);
  ``Authorization: Bearer`` as for a realtime session.
* ``session.update`` carries ``{"type": "transcription", "audio": {"input":
  {"format", "transcription", "noise_reduction", "turn_detection"}},
  "include"}``: only input settings exist, so instructions, voice, tools and
  output settings are refused here as :class:`~rtedge.errors.ConfigError`.
* Input is 24 kHz PCM16 (or G.711).  The client appends audio and commits
  (or lets server VAD commit); each committed item gets
  ``conversation.item.input_audio_transcription.delta`` events and one
  ``.completed`` (``transcript``, ``usage``) or ``.failed``.
* No ``response.*`` and no ``conversation.item.*`` client events
  (capabilities: only ``input_clear``).  The session limit is the realtime
  session's (60 min, ``expires_at`` in ``session.created``).

Owns: the GA transcription session's wire shapes.  Must not: do I/O.
"""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from .._unset import UNSET
from ..config import SessionConfig, Transcription
from .base import check_ws_url, merge_extra, with_query
from .openai import OpenAIDialect

#: the transcription model used when neither ``model=`` nor the session names one
DEFAULT_TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"
#: SessionConfig fields a transcription session has
TRANSCRIPTION_FIELDS = frozenset({"input_format", "transcription", "noise_reduction", "turn_detection", "extra"})


def _model_of(session: SessionConfig | None) -> str | None:
    tr = session.transcription if session is not None else UNSET
    if isinstance(tr, Transcription) and isinstance(tr.model, str) and tr.model:
        return tr.model
    return None


class OpenAITranscriptionDialect(OpenAIDialect):
    """``wss://api.openai.com/v1/realtime?intent=transcription``; ``model`` is the transcription model."""

    name = "openai-transcription"
    default_model = DEFAULT_TRANSCRIPTION_MODEL
    capabilities: frozenset[str] = frozenset({"input_clear"})

    def url(self, model: str | None, url: str | None = None) -> str:
        """The endpoint with ``intent=transcription`` (the model goes into the session, not the URL)."""
        base = url or self.default_url
        check_ws_url(base)
        return with_query(base, intent="transcription")

    def initial_session(self, model: str | None, session: SessionConfig | None) -> SessionConfig | None:
        """A session that names the transcription model (``model=``, else the session's, else
        :data:`DEFAULT_TRANSCRIPTION_MODEL`).

        Raises:
            ConfigError: ``model`` disagrees with the session's ``transcription.model``.
        """
        named = _model_of(session)
        if model and named and model != named:
            raise ConfigError(f"model={model!r} disagrees with the session's transcription model {named!r}")
        if named:
            return session
        tr = session.transcription if session is not None else UNSET
        base = tr if isinstance(tr, Transcription) else Transcription()
        wanted = SessionConfig(transcription=Transcription(model=model or self.default_model,
                                                           language=base.language, prompt=base.prompt))
        return wanted if session is None else session.merged(wanted)

    def check(self, config: SessionConfig) -> list[str]:
        """A warning for a conversation model named as the transcription model (the server refuses it)."""
        warnings = super().check(config)
        model = _model_of(config) or ""
        if "realtime" in model and not any(word in model for word in ("transcribe", "whisper")):
            warnings.append(f"{model!r} is a realtime conversation model, not a transcription model; a "
                            f"transcription session takes e.g. {DEFAULT_TRANSCRIPTION_MODEL}, gpt-4o-transcribe "
                            "or whisper-1")
        return warnings

    def encode_session(self, config: SessionConfig) -> dict[str, Any]:
        """``{"type": "transcription", "audio": {"input": {...}}}`` plus ``extra`` (deep-merged).

        Raises:
            ConfigError: a field a transcription session does not have (voice, instructions, tools...).
        """
        unsupported = sorted(set(config.set_fields()) - TRANSCRIPTION_FIELDS)
        if unsupported:
            raise ConfigError(f"a transcription session has only input settings; not supported: "
                              f"{', '.join(unsupported)}")
        session: dict[str, Any] = {"type": "transcription"}
        audio_in = self._audio_input(config)
        if audio_in:
            session["audio"] = {"input": audio_in}
        merge_extra(session, config.extra)
        return session
