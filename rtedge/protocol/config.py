"""Session configuration values: what the client asks the server for.

Every field defaults to :data:`UNSET`, which means "leave the server's value
alone" and is *absent* from the wire.  ``None`` is a real value that the
dialect sends as JSON ``null``, and only where the protocol gives null a
meaning (``turn_detection``, ``transcription``, ``noise_reduction``,
``idle_timeout_ms``).  Scalars that the server rejects as null
(``create_response``, ``threshold``...) refuse None at construction, so the
mistake shows where it is made, not as a server error later.

These values are dialect-neutral: :mod:`rtedge.protocol.dialects` turns them
into each provider's shape (OpenAI GA nests them under ``audio.input``;
DashScope keeps them flat).

Owns: the session config values.  Must not: know the wire spelling (dialects do).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from ..errors import ConfigError
from ._unset import UNSET, Unset

FormatKind = Literal["pcm", "pcmu", "pcma"]

_NULLABLE = frozenset({"turn_detection", "transcription", "noise_reduction"})


def _not_none(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        raise ConfigError(
            f"{type(instance).__name__}.{attribute.name} cannot be None: the server rejects null here; "
            "leave it unset to keep the server's value"
        )


def _of_type(kind: type, words: str) -> Any:
    """Not None, and an instance of ``kind`` (a wrong type failed only at the server)."""
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        _not_none(instance, attribute, value)
        if value is not UNSET and not isinstance(value, kind):
            raise ConfigError(f"{type(instance).__name__}.{attribute.name} must be {words}, got {value!r}")
    return check


def _in_range(lo: float, hi: float) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        _not_none(instance, attribute, value)
        if value is UNSET:
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ConfigError(f"{type(instance).__name__}.{attribute.name} must be in [{lo}, {hi}], got {value!r}")

    return check


def _non_negative_int(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _not_none(instance, attribute, value)
    if value is not UNSET and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError(f"{type(instance).__name__}.{attribute.name} must be an int >= 0 (ms), got {value!r}")


def _one_of(*choices: object) -> Any:
    """UNSET or one of ``choices`` (a misspelt value failed only at the server, or not at all)."""
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not UNSET and value not in choices:
            raise ConfigError(f"{type(instance).__name__}.{attribute.name} must be one of "
                              f"{', '.join(map(repr, choices))}, got {value!r}")
    return check


def _bool_or_unset(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _not_none(instance, attribute, value)
    if value is not UNSET and not isinstance(value, bool):
        raise ConfigError(f"{type(instance).__name__}.{attribute.name} must be True or False, got {value!r}")


@attrs.frozen
class AudioFormat:
    """A wire audio format.

    Attributes:
        kind: ``"pcm"`` (16-bit signed little-endian mono), ``"pcmu"`` (G.711 mu-law) or ``"pcma"`` (A-law).
        rate: sample rate in Hz; G.711 is always 8000.
    """

    kind: FormatKind = "pcm"
    rate: int = 24000

    def __attrs_post_init__(self) -> None:
        if self.kind not in ("pcm", "pcmu", "pcma"):
            raise ConfigError(f"unknown audio format kind {self.kind!r}; use 'pcm', 'pcmu' or 'pcma'")
        if self.kind != "pcm" and self.rate != 8000:
            raise ConfigError(f"{self.kind} (G.711) is 8000 Hz, got rate={self.rate}")
        if not isinstance(self.rate, int) or self.rate <= 0:
            raise ConfigError(f"audio rate must be a positive int (Hz), got {self.rate!r}")

    @classmethod
    def pcm(cls, rate: int = 24000) -> AudioFormat:
        return cls("pcm", rate)

    @classmethod
    def pcmu(cls) -> AudioFormat:
        return cls("pcmu", 8000)

    @classmethod
    def pcma(cls) -> AudioFormat:
        return cls("pcma", 8000)

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.kind == "pcm" else 1

    @functools.cached_property
    def bytes_per_ms(self) -> float:
        """Bytes of this format per millisecond of audio (48 for PCM16 at 24 kHz, 8 for G.711).

        Computed once per instance (a format is immutable; every audio append and delta asks).
        """
        return self.rate * self.bytes_per_sample / 1000.0


@attrs.frozen(kw_only=True)
class ServerVad:
    """Server-side voice activity detection (``turn_detection.type = "server_vad"``).

    Attributes:
        threshold: activation threshold, 0..1 (OpenAI default 0.5).
        prefix_padding_ms: audio kept before detected speech, in ms (default 300).
        silence_duration_ms: silence that ends a turn, in ms (live default 200).
        create_response: start a response when a turn ends (default True).
        interrupt_response: cancel a running response when speech starts (default True).
        idle_timeout_ms: ms of silence before ``input_audio_buffer.timeout_triggered``; None disables it.
    """

    threshold: float | Unset = attrs.field(default=UNSET, validator=_in_range(-1.0, 1.0))
    prefix_padding_ms: int | Unset = attrs.field(default=UNSET, validator=_non_negative_int)
    silence_duration_ms: int | Unset = attrs.field(default=UNSET, validator=_non_negative_int)
    create_response: bool | Unset = attrs.field(default=UNSET, validator=_bool_or_unset)
    interrupt_response: bool | Unset = attrs.field(default=UNSET, validator=_bool_or_unset)
    idle_timeout_ms: int | None | Unset = UNSET

    type: Literal["server_vad"] = attrs.field(default="server_vad", init=False)


@attrs.frozen(kw_only=True)
class SemanticVad:
    """Semantic turn detection (``turn_detection.type = "semantic_vad"``).

    Attributes:
        eagerness: ``"low"``, ``"medium"``, ``"high"`` or ``"auto"``.
        create_response: start a response when a turn ends.
        interrupt_response: cancel a running response when speech starts.
    """

    eagerness: Literal["low", "medium", "high", "auto"] | Unset = attrs.field(
        default=UNSET, validator=_one_of("low", "medium", "high", "auto"))
    create_response: bool | Unset = attrs.field(default=UNSET, validator=_bool_or_unset)
    interrupt_response: bool | Unset = attrs.field(default=UNSET, validator=_bool_or_unset)

    type: Literal["semantic_vad"] = attrs.field(default="semantic_vad", init=False)


TurnDetection = ServerVad | SemanticVad


@attrs.frozen(kw_only=True)
class Transcription:
    """Input audio transcription settings.

    Attributes:
        model: e.g. ``"gpt-4o-mini-transcribe"`` (OpenAI) or ``"qwen3-asr-flash-realtime"`` (DashScope).
        language: ISO-639-1 hint such as ``"en"``.
        prompt: a prompt to guide transcription.
    """

    model: str | Unset = UNSET
    language: str | Unset = UNSET
    prompt: str | Unset = UNSET


@attrs.frozen(kw_only=True)
class FunctionTool:
    """A function the model may call.

    Attributes:
        name: the function name the model uses.
        description: what it does, for the model.
        parameters: a JSON schema object for the arguments.
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = attrs.field(factory=lambda: {"type": "object", "properties": {}})


def _tools(value: object) -> object:
    if value is UNSET:
        return value
    if value is None:
        raise ConfigError("tools cannot be None: the server rejects null here; use () to clear the tools")
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ConfigError(f"tools must be a sequence of FunctionTool or dicts, got {type(value).__name__}")
    return tuple(value)


def _modalities(value: object) -> object:
    if value is UNSET or value is None:
        return value
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence):
        raise ConfigError(f"output_modalities must be a sequence of strings, got {value!r}")
    return tuple(value)


@attrs.frozen(kw_only=True)
class SessionConfig:
    """What to ask of the session (``session.update``).  UNSET fields are not sent.

    Attributes:
        instructions: the system prompt; ``""`` clears it.
        output_modalities: what the model answers with, by dialect: OpenAI and Azure take
            ``("audio",)`` (speech, with its transcript) or ``("text",)``; xAI only ``("audio",)``;
            DashScope ``("text", "audio")`` or ``("text",)``.  The dialect refuses what its server
            rejects, before anything is sent.
        voice: output voice name (e.g. ``"marin"``, ``"alloy"``; DashScope ``"Cherry"``).
        speed: speech speed factor (OpenAI 0.25..1.5).
        input_format: the format of audio we append.
        output_format: the format of audio the server sends.
        turn_detection: a :class:`ServerVad`/:class:`SemanticVad` (or a raw dict); None = manual turns (JSON null).
        transcription: a :class:`Transcription` (or dict); None turns input transcription off.
        noise_reduction: ``"near_field"``/``"far_field"``; None turns it off.
        tools: functions the model may call; ``()`` clears them.
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` or a dict.
        max_output_tokens: an int (1..4096) or ``"inf"``.
        extra: dialect-specific fields merged verbatim into the session object (escape hatch).
    """

    instructions: str | Unset = attrs.field(default=UNSET, validator=_of_type(str, "a string"))
    output_modalities: tuple[str, ...] | Unset = attrs.field(default=UNSET, converter=_modalities)
    voice: str | Unset = attrs.field(default=UNSET, validator=_of_type(str, "a voice's name"))
    speed: float | Unset = attrs.field(default=UNSET, validator=_in_range(0.25, 1.5))
    input_format: AudioFormat | Unset = attrs.field(default=UNSET,
                                                    validator=_of_type(AudioFormat, "an AudioFormat"))
    output_format: AudioFormat | Unset = attrs.field(default=UNSET,
                                                     validator=_of_type(AudioFormat, "an AudioFormat"))
    turn_detection: TurnDetection | Mapping[str, Any] | None | Unset = UNSET
    transcription: Transcription | Mapping[str, Any] | None | Unset = UNSET
    noise_reduction: Literal["near_field", "far_field"] | None | Unset = attrs.field(
        default=UNSET, validator=_one_of("near_field", "far_field", None))
    tools: tuple[FunctionTool | Mapping[str, Any], ...] | Unset = attrs.field(default=UNSET, converter=_tools)
    tool_choice: str | Mapping[str, Any] | Unset = attrs.field(default=UNSET, validator=_not_none)
    max_output_tokens: int | Literal["inf"] | Unset = attrs.field(default=UNSET, validator=_not_none)
    extra: Mapping[str, Any] = attrs.field(factory=dict, validator=_of_type(Mapping, "a mapping of fields"))

    def __attrs_post_init__(self) -> None:
        if self.voice == "":
            raise ConfigError("voice cannot be an empty string; leave it unset to keep the server's voice")
        mods = self.output_modalities
        if mods is not UNSET and (not mods or len(set(mods)) != len(mods)
                                  or any(m not in ("audio", "text") for m in mods)):
            raise ConfigError(f"output_modalities must name 'audio' and/or 'text' once each (which "
                              f"combinations a provider takes depends on its dialect), got {mods!r}")
        td = self.turn_detection
        if td is not UNSET and td is not None and not isinstance(td, ServerVad | SemanticVad | Mapping):
            raise ConfigError(f"turn_detection must be ServerVad(...), SemanticVad(...), a dict or None (manual "
                              f"turns), got {td!r}")
        tr = self.transcription
        if tr is not UNSET and tr is not None and not isinstance(tr, Transcription | Mapping):
            raise ConfigError(f"transcription must be Transcription(model=...), a dict or None (off), got {tr!r}")
        mot = self.max_output_tokens
        if mot is not UNSET and mot != "inf" and (isinstance(mot, bool) or not isinstance(mot, int) or mot < 1):
            raise ConfigError(f"max_output_tokens must be an int >= 1 or 'inf', got {mot!r}")

    def set_fields(self) -> dict[str, object]:
        """The fields that are set (not UNSET), by name, ``extra`` excluded."""
        out: dict[str, object] = {}
        for field in attrs.fields(type(self)):
            value = getattr(self, field.name)
            if field.name != "extra" and value is not UNSET:
                out[field.name] = value
        return out

    def merged(self, other: SessionConfig) -> SessionConfig:
        """A config with ``other``'s set fields laid over this one's (what the server will hold)."""
        fields: dict[str, Any] = other.set_fields()
        return attrs.evolve(self, **fields, extra={**self.extra, **other.extra})

    @classmethod
    def from_kwargs(cls, **fields: Any) -> SessionConfig:
        """Build from keyword arguments, turning unknown names into a clear ConfigError."""
        names = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(fields) - names)
        if unknown:
            raise ConfigError(f"unknown session field(s) {unknown}; known: {sorted(names)}")
        return cls(**fields)


def nullable_fields() -> frozenset[str]:
    """Names of the fields for which None is sent as JSON null."""
    return _NULLABLE


__all__ = [
    "AudioFormat",
    "FunctionTool",
    "SemanticVad",
    "ServerVad",
    "SessionConfig",
    "Transcription",
    "TurnDetection",
]
