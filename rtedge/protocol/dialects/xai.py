"""xAI Grok Voice: a close variant of the OpenAI GA dialect.

What differs from GA (from recorded xAI sessions and the protocol reference):

* URL ``wss://api.x.ai/v1/realtime?model=grok-voice-think-fast-1.0``, ``Authorization: Bearer``
  with ``XAI_API_KEY``.
* Session: ``voice`` and ``turn_detection`` sit at the top level of the session object
  (beta-like) and there is no ``session.type``, while the formats keep the GA
  ``audio.input/output.format = {"type": "audio/pcm", "rate": ...}`` objects.  PCM may be
  8000, 16000, 22050, 24000, 32000, 44100 or 48000 Hz (G.711 at 8 kHz).  Turn detection is
  ``server_vad`` (threshold 0.1..0.9) or None (manual turns); anything else is a ConfigError,
  as is text-only output (the model always speaks).
* Events: GA names except text, which arrives as ``response.text.delta``/``.done``
  (normalised here to ``response.output_text.*``).  ``response.done`` carries its ``usage``
  at the top level (``response.usage`` is ``{}``); it is copied into ``response.usage``.
  ``status_details`` may be a string (``"unimplemented"``): it becomes null.  The session
  object the server reports is beta-like too: its top-level ``turn_detection`` and
  ``voice`` are also given their GA places under ``audio`` (and its ``turn_detection:
  {"type": null}`` for manual turns becomes null).  ``ping`` events and
  ``conversation.item.input_audio_transcription.updated`` pass through as unknown events.
* No ``conversation.item.truncate`` (unreliable) and no ``.retrieve``: the capabilities
  leave them out, so :meth:`Session.truncate_event` returns None.

Owns: xAI's wire shapes.  Must not: do I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import ConfigError
from .._unset import UNSET
from ..config import AudioFormat, SemanticVad, ServerVad, SessionConfig
from .openai import OpenAIDialect

#: wire event types renamed to their GA spelling
_RENAMES = {
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
}

VAD_THRESHOLD_RANGE = (0.1, 0.9)


class XAIDialect(OpenAIDialect):
    """``wss://api.x.ai/v1/realtime?model=...`` with ``Authorization: Bearer`` (``XAI_API_KEY``)."""

    name = "xai"
    default_model = "grok-voice-think-fast-1.0"
    default_url = "wss://api.x.ai/v1/realtime"
    api_key_env = "XAI_API_KEY"
    session_limit_s: float | None = 3600.0  # Grok Voice: 1 h
    default_input_format = AudioFormat.pcm(24000)
    default_output_format = AudioFormat.pcm(24000)
    pcm_rates = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
    capabilities = OpenAIDialect.capabilities - {"truncate", "retrieve"}

    # -- client events -----------------------------------------------------------------------------------
    def encode_session(self, config: SessionConfig) -> dict[str, Any]:
        self.check(config)
        session = super().encode_session(config)
        session.pop("type", None)
        session.pop("output_modalities", None)  # audio is the only output; nothing to ask for
        audio = session.get("audio")
        if isinstance(audio, dict):
            audio_in, audio_out = audio.get("input"), audio.get("output")
            if isinstance(audio_in, dict) and "turn_detection" in audio_in:
                session["turn_detection"] = audio_in.pop("turn_detection")
            if isinstance(audio_out, dict) and "voice" in audio_out:
                session["voice"] = audio_out.pop("voice")
            for key in ("input", "output"):
                if audio.get(key) == {}:
                    del audio[key]
            if not audio:
                del session["audio"]
        return session

    def check(self, config: SessionConfig) -> list[str]:
        """Raise ConfigError for what xAI rejects: PCM rates, text-only output, turn detection."""
        for what, fmt in (("input_format", config.input_format), ("output_format", config.output_format)):
            if isinstance(fmt, AudioFormat) and fmt.kind == "pcm" and fmt.rate not in self.pcm_rates:
                raise ConfigError(f"xai {what}: PCM rate {fmt.rate} Hz is not accepted; "
                                  f"use one of {self.pcm_rates}")
        if config.output_modalities is not UNSET and "text" in config.output_modalities:
            raise ConfigError("xai takes output_modalities ('audio',) only: its model always speaks (no text "
                              f"only or mixed output); got {config.output_modalities!r}")
        _check_turn_detection(config.turn_detection)
        return []

    # -- server events -----------------------------------------------------------------------------------
    def normalize(self, raw: dict[str, Any]) -> dict[str, Any]:
        kind = raw.get("type")
        renamed = _RENAMES.get(kind) if isinstance(kind, str) else None
        if renamed is not None:
            return {**raw, "type": renamed}
        if kind in ("response.created", "response.done"):
            return _normalize_response_event(raw)
        if kind in ("session.created", "session.updated"):
            session = raw.get("session")
            if isinstance(session, Mapping):
                return {**raw, "session": _ga_session(session)}
        return raw


def _check_turn_detection(value: object) -> None:
    if value is UNSET or value is None:
        return
    if isinstance(value, SemanticVad):
        raise ConfigError("xai supports only server_vad turn detection (or None for manual turns), "
                          "not semantic_vad")
    if isinstance(value, ServerVad):
        threshold: object = value.threshold
    elif isinstance(value, Mapping):
        if value.get("type") != "server_vad":
            raise ConfigError("xai supports only server_vad turn detection (or None), "
                              f"got type {value.get('type')!r}")
        threshold = value.get("threshold", UNSET)
    else:
        raise ConfigError(f"turn_detection must be ServerVad, a dict or None, got {type(value).__name__}")
    lo, hi = VAD_THRESHOLD_RANGE
    if threshold is not UNSET and (isinstance(threshold, bool) or not isinstance(threshold, int | float)
                                   or not lo <= threshold <= hi):
        raise ConfigError(f"xai server_vad threshold must be in [{lo}, {hi}], got {threshold!r}")


def _normalize_response_event(raw: dict[str, Any]) -> dict[str, Any]:
    response = raw.get("response")
    if not isinstance(response, Mapping):
        return raw
    fixed = dict(response)
    if isinstance(fixed.get("status_details"), str):
        fixed["status_details"] = None  # "unimplemented": GA has an object or null here
    top_usage = raw.get("usage")
    if isinstance(top_usage, Mapping) and top_usage and not fixed.get("usage"):
        fixed["usage"] = dict(top_usage)
    return {**raw, "response": fixed}


def _ga_session(session: Mapping[str, Any]) -> dict[str, Any]:
    """The reported session with its top-level ``turn_detection``/``voice`` also at their GA places."""
    out = dict(session)
    audio = dict(out["audio"]) if isinstance(out.get("audio"), Mapping) else {}
    if "turn_detection" in out:
        td = out["turn_detection"]
        if isinstance(td, Mapping) and td.get("type") is None:
            td = out["turn_detection"] = None  # xAI reports manual turns as {"type": null}
        audio["input"] = {**_mapping(audio.get("input")), "turn_detection": td}
    if "voice" in out:
        audio["output"] = {**_mapping(audio.get("output")), "voice": out["voice"]}
    if audio:
        out["audio"] = audio
    return out


def _mapping(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}
