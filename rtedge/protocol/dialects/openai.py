"""OpenAI Realtime GA: the canonical dialect (Azure and xAI are small variants of it).

Session shape (GA): ``type`` is required; formats, transcription, noise
reduction and turn detection sit under ``audio.input``; voice, speed and the
output format under ``audio.output``.  Only fields the caller set are sent;
an explicit None becomes ``null`` (that is how ``turn_detection: null`` turns
server VAD off, which openai-python < 3.25 could not send).

Owns: the GA wire shapes.  Must not: do I/O.
"""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from .._unset import UNSET
from ..config import AudioFormat, SemanticVad, ServerVad, SessionConfig, Transcription
from .base import Dialect, merge_extra, set_fields_dict


def encode_format(fmt: AudioFormat) -> dict[str, Any]:
    """AudioFormat -> GA format object."""
    if fmt.kind == "pcm":
        return {"type": "audio/pcm", "rate": fmt.rate}
    return {"type": f"audio/{fmt.kind}"}


def encode_turn_detection(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, ServerVad | SemanticVad):
        out = set_fields_dict(value)
        return {"type": out.pop("type"), **out}
    return dict(value)  # type: ignore[call-overload]


def encode_transcription(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, Transcription):
        return set_fields_dict(value)
    return dict(value)  # type: ignore[call-overload]


def encode_noise_reduction(value: object) -> object:
    if value is None:
        return None
    return {"type": value}


class OpenAIDialect(Dialect):
    """``wss://api.openai.com/v1/realtime?model=...`` with ``Authorization: Bearer``."""

    name = "openai"
    default_model = "gpt-realtime"
    default_url = "wss://api.openai.com/v1/realtime"
    api_key_env = "OPENAI_API_KEY"
    default_input_format = AudioFormat.pcm(24000)
    default_output_format = AudioFormat.pcm(24000)
    session_limit_s: float | None = 3600.0  # 60 min for GA (session_expired, then close 1001)

    #: PCM rates the provider accepts for audio/pcm (GA: 24 kHz only).
    pcm_rates: tuple[int, ...] = (24000,)

    def check(self, config: SessionConfig) -> list[str]:
        """Raise ConfigError for output modalities the server rejects (both at once)."""
        mods = config.output_modalities
        if mods is not UNSET and tuple(mods) not in (("audio",), ("text",)):
            raise ConfigError(f"{self.name} takes output_modalities ('audio',) (speech with its transcript) "
                              f"or ('text',), one of them; got {mods!r}")
        return []

    def encode_session(self, config: SessionConfig) -> dict[str, Any]:
        OpenAIDialect.check(self, config)
        session: dict[str, Any] = {"type": "realtime"}
        top = {
            "instructions": config.instructions,
            "output_modalities": UNSET if config.output_modalities is UNSET else list(config.output_modalities),
            "max_output_tokens": config.max_output_tokens,
            "tool_choice": config.tool_choice,
        }
        session.update({k: v for k, v in top.items() if v is not UNSET})
        if config.tools is not UNSET:
            session["tools"] = [self.encode_tool(t) for t in config.tools]
        audio_in = self._audio_input(config)
        audio_out = self._audio_output(config)
        if audio_in or audio_out:
            session["audio"] = {}
            if audio_in:
                session["audio"]["input"] = audio_in
            if audio_out:
                session["audio"]["output"] = audio_out
        merge_extra(session, config.extra)
        return session

    def _audio_input(self, config: SessionConfig) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if config.input_format is not UNSET:
            out["format"] = encode_format(config.input_format)
        if config.transcription is not UNSET:
            out["transcription"] = encode_transcription(config.transcription)
        if config.noise_reduction is not UNSET:
            out["noise_reduction"] = encode_noise_reduction(config.noise_reduction)
        if config.turn_detection is not UNSET:
            out["turn_detection"] = encode_turn_detection(config.turn_detection)
        return out

    def _audio_output(self, config: SessionConfig) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if config.output_format is not UNSET:
            out["format"] = encode_format(config.output_format)
        if config.voice is not UNSET:
            out["voice"] = config.voice
        if config.speed is not UNSET:
            out["speed"] = config.speed
        return out
