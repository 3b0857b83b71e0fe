"""Settings of ``rtedge run``: one frozen class per subsystem, loaded from TOML, ``RTEDGE_*`` and the CLI.

Theory of operation
-------------------
Every setting is a field of one of the frozen classes below, named
``<section>.<key>`` (``audio.mic``, ``reconnect.max_attempts``...).  Its
metadata holds the documentation and the unit; its validator checks the type
and the range, so a settings object that exists is valid.

:func:`rtedge.app.settings_load.load_config` lays four layers over each other, later ones winning::

    defaults < config file (TOML) < environment (RTEDGE_<SECTION>_<KEY>) < command line

and remembers where each value came from (``Config.origin``), so that every
error names the key and the file line (``rtedge.toml:7: audio.mic_rate: must
be an integer...``) or the variable or flag that set it.  An unknown key or
section in the file is an error; an unknown ``RTEDGE_*`` variable is only a
warning, because other tools share the prefix (``RTEDGE_CODEC``).

This module is the schema; reading files and variables is :mod:`rtedge.app.settings_load`'s (which imports
this one, never the other way round).

Secrets are not settings: the API key is resolved by :func:`resolve_api_key`
from ``provider.api_key_file``, ``$CREDENTIALS_DIRECTORY/api-key`` (systemd
``LoadCredential=``) or the provider's environment variable, in that order,
and kept in a :class:`Secret` whose ``repr``/``str`` never show it.

TOML has no null, so optional strings use ``""`` for "not set" and optional
numbers use ``0`` (each field's documentation says so).

Owns: the settings schema: the frozen classes, their checks, the API key resolution.  Must not: read files or
the environment for settings (that is :mod:`rtedge.app.settings_load`'s).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from ..errors import ConfigError
from ..protocol.config import SemanticVad, ServerVad, SessionConfig, Transcription
from ..protocol.dialects.base import redact_url
from ..protocol.dialects import get_dialect

log = logging.getLogger("rtedge")

__all__ = [
    "AudioSettings", "Config", "LocalVadSettings", "LoggingSettings", "ProviderSettings", "ReconnectSettings",
    "Secret", "ServiceSettings", "SessionSettings", "WakeSettings", "SECTIONS", "read_key_file",
    "resolve_api_key",
]


# ------------------------------------------------------------------------------------------------ fields
def describe_kind(field: attrs.Attribute[Any]) -> str:
    """What a field accepts, in words: ``an integer in [8000, 48000]``, ``one of 'a', 'b'``..."""
    md = field.metadata
    if md.get("choices"):
        return "one of " + ", ".join(repr(c) for c in md["choices"])
    kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[md["kind"]]
    lo, hi = md.get("lo"), md.get("hi")
    if lo is not None and hi is not None:
        kind += f" in [{lo:g}, {hi:g}]"
    return kind


def check_value(field: attrs.Attribute[Any], value: Any) -> Any:
    """``value`` checked (and ints widened to float for float fields) for ``field``.

    Raises:
        ConfigError: a message without location: ``must be an integer in [0, 10] (ms), got 'x'``.
    """
    md = field.metadata
    kind, given = md["kind"], value
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if ok and kind is float and not math.isfinite(value):
        ok = False
    if ok and md.get("choices") and value not in md["choices"]:
        ok = False
    if ok and md.get("lo") is not None and not md["lo"] <= value <= md["hi"]:
        ok = False
    if not ok:
        unit = f" ({md['unit']})" if md.get("unit") else ""
        raise ConfigError(f"must be {describe_kind(field)}{unit}, got {given!r}")
    return value


def _validate(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    try:
        check_value(attribute, value)
    except ConfigError as exc:
        section = getattr(instance, "SECTION", type(instance).__name__)
        raise ConfigError(f"{section}.{attribute.name}: {exc}") from None


def setting(default: Any, doc: str, unit: str = "", *, choices: tuple[str, ...] = (),
            lo: float | None = None, hi: float | None = None, repr: Any = True) -> Any:  # noqa: A002
    """A settings field: ``default`` fixes its type; ``doc`` and ``unit`` document it; ``repr`` as attrs'."""
    meta = {"kind": type(default), "doc": doc, "unit": unit, "choices": choices, "lo": lo, "hi": hi}
    return attrs.field(default=default, validator=_validate, metadata=meta, repr=repr)


# ------------------------------------------------------------------------------------------------ sections
@attrs.frozen(kw_only=True)
class ProviderSettings:
    """Which realtime API to talk to, and how the connection behaves."""

    SECTION: ClassVar[str] = "provider"

    name: str = setting("openai", "provider dialect: openai, azure, xai, qwen, vllm, openai-transcription")
    url: str = setting("", "WebSocket endpoint; empty = the provider's own",
                       repr=lambda url: repr(redact_url(url)))  # its query may hold a credential
    model: str = setting("", "model name; empty = the provider's default")
    api_key_file: str = setting("", "file holding the API key (first line); empty = $CREDENTIALS_DIRECTORY/"
                                    "api-key, then the provider's environment variable")
    ca_certs: str = setting("", "PEM bundle to trust for wss:// instead of the system's; empty = system")
    connect_timeout: float = setting(10.0, "bound on opening the connection and configuring the session",
                                     "s", lo=0.1, hi=300)
    ping_interval: float = setting(20.0, "ping after this long without traffic; 0 = no keepalive",
                                   "s", lo=0, hi=3600)
    ping_timeout: float = setting(10.0, "the link is dead after ping_interval + this without any data",
                                  "s", lo=0.1, hi=3600)
    max_audio_queue_ms: int = setting(2000, "microphone audio queued for sending beyond this is dropped "
                                            "(oldest first)", "ms", lo=100, hi=60000)
    send_batch_ms: int = setting(40, "microphone audio is sent once this much is queued (one wake-up of the "
                                     "sender per batch; at most half of max_audio_queue_ms); 0 = every frame "
                                     "at once", "ms", lo=0, hi=1000)
    max_session_seconds: float = setting(0.0, "recycle the session at a turn boundary after this long, "
                                              "break-before-make (turns the rollover off); 0 = never",
                                         "s", lo=0, hi=86400)
    rollover: bool = setting(True, "replace the session make-before-break before the provider ends it")
    session_limit: float = setting(0.0, "the session limit the rollover works to; 0 = the provider's (OpenAI "
                                        "60 min, Azure 30, xAI 60, Qwen 120; expires_at shortens it)",
                                   "s", lo=0, hi=86400)


@attrs.frozen(kw_only=True)
class SessionSettings:
    """What the session asks of the model (sent in ``session.update``, again on SIGHUP)."""

    SECTION: ClassVar[str] = "session"

    instructions: str = setting("", "system instructions; empty = the server's default")
    voice: str = setting("", "output voice (marin, alloy...); empty = the server's default")
    turn_detection: str = setting("server_vad", "who ends a turn: the server's VAD, semantic VAD, "
                                                "or none (manual turns: rtedge's local VAD ends each turn)",
                                  choices=("server_vad", "semantic_vad", "none"))
    vad_threshold: float = setting(0.5, "server_vad activation threshold", lo=0, hi=1)
    prefix_padding_ms: int = setting(300, "server_vad: audio kept before speech", "ms", lo=0, hi=10000)
    silence_duration_ms: int = setting(500, "server_vad: silence that ends a turn", "ms", lo=0, hi=10000)
    idle_timeout_ms: int = setting(0, "server_vad: silence before the server prompts; 0 = off", "ms",
                                   lo=0, hi=600000)
    eagerness: str = setting("auto", "semantic_vad eagerness", choices=("low", "medium", "high", "auto"))
    transcription_model: str = setting("", "transcribe the user's audio with this model "
                                           "(gpt-4o-mini-transcribe...); empty = no transcripts")
    transcription_language: str = setting("", "ISO-639-1 language hint for transcription; empty = auto")
    noise_reduction: str = setting("", "server-side noise reduction: near_field, far_field, off; empty = the "
                                       "server's default",
                                   choices=("", "near_field", "far_field", "off"))
    max_output_tokens: int = setting(0, "bound on tokens per response; 0 = no bound", "tokens",
                                     lo=0, hi=4096)

    def to_session_config(self, *, interrupt: bool = True) -> Any:
        """The :class:`rtedge.SessionConfig` these settings ask for (empty strings stay unset).  ``interrupt``
        False (``vad.barge_in = "off"``): the server's VAD does not cancel an answer either."""
        fields: dict[str, Any] = {}
        cut = {} if interrupt else {"interrupt_response": False}
        if self.instructions:
            fields["instructions"] = self.instructions
        if self.voice:
            fields["voice"] = self.voice
        if self.turn_detection == "none":
            fields["turn_detection"] = None
        elif self.turn_detection == "semantic_vad":
            fields["turn_detection"] = SemanticVad(eagerness=self.eagerness, **cut)  # type: ignore[arg-type]
        else:
            vad: dict[str, Any] = {"threshold": self.vad_threshold, "prefix_padding_ms": self.prefix_padding_ms,
                                   "silence_duration_ms": self.silence_duration_ms}
            if self.idle_timeout_ms:
                vad["idle_timeout_ms"] = self.idle_timeout_ms
            fields["turn_detection"] = ServerVad(**vad, **cut)
        if self.transcription_model:
            lang = {"language": self.transcription_language} if self.transcription_language else {}
            fields["transcription"] = Transcription(model=self.transcription_model, **lang)
        if self.noise_reduction:
            fields["noise_reduction"] = None if self.noise_reduction == "off" else self.noise_reduction
        if self.max_output_tokens:
            fields["max_output_tokens"] = self.max_output_tokens
        return SessionConfig(**fields)


@attrs.frozen(kw_only=True)
class AudioSettings:
    """The microphone and the speaker (names as ``rtedge devices`` lists them, or a spec)."""

    SECTION: ClassVar[str] = "audio"

    mic: str = setting("default", "microphone: default, a device name or index (pa:NAME, pa:3), "
                                  "wav:PATH, raw:PATH, raw:- (stdin) or null")
    speaker: str = setting("default", "speaker: default, a device name or index, wav:PATH, raw:PATH, "
                                      "raw:- (stdout) or null")
    mic_rate: int = setting(16000, "microphone sample rate (resampled for the wire): 8000, 11025, 16000, "
                                   "22050, 24000, 32000, 44100 or 48000", "Hz", lo=8000, hi=48000)
    speaker_rate: int = setting(24000, "speaker sample rate, as mic_rate", "Hz", lo=8000, hi=48000)
    frame_ms: int = setting(20, "audio period of both devices", "ms", lo=5, hi=100)


@attrs.frozen(kw_only=True)
class LocalVadSettings:
    """The local VAD gate (send speech, not silence), barge-in and the echo guard."""

    SECTION: ClassVar[str] = "vad"

    gate: bool = setting(True, "send only speech with pre-roll and trailing silence, not idle silence")
    backend: str = setting("energy", "local VAD: energy (numpy), webrtc (webrtcvad-wheels), "
                                     "silero (onnxruntime)", choices=("energy", "webrtc", "silero"))
    barge_in: str = setting("server", "interrupt the assistant on the server's VAD (the local VAD's onset "
                                      "with turn_detection none), the local VAD, or never (off: the "
                                      "session's interrupt_response is false too)",
                            choices=("server", "local", "off"))
    echo_guard: str = setting("threshold", "keep the speaker's sound from counting as the user: "
                                           "half_duplex, threshold, aec (libspeexdsp echo canceller), "
                                           "or off (echo-cancelled source)",
                              choices=("half_duplex", "threshold", "aec", "off"))
    echo_boost_db: float = setting(15.0, "threshold: how much louder speech must be while the speaker plays",
                                   "dB", lo=0, hi=90)
    echo_tail_ms: int = setting(300, "every guard but off stays on this long after playback ends, for the "
                                     "room's echo of the last sound", "ms", lo=0, hi=5000)
    threshold_db: float = setting(12.0, "energy backend: voiced when this far above the noise floor",
                                  "dB", lo=0, hi=90)
    pre_roll_ms: int = setting(300, "audio sent from before the first voiced frame", "ms", lo=0, hi=10000)
    hangover_ms: int = setting(300, "speech goes on this long after the last voiced frame", "ms",
                               lo=0, hi=10000)
    trailing_ms: int = setting(700, "silence still sent after speech, so the server's VAD ends the turn",
                               "ms", lo=0, hi=10000)
    min_speech_ms: int = setting(60, "voiced audio needed to open the gate (rejects clicks)", "ms",
                                 lo=0, hi=10000)

    def to_vad_settings(self) -> Any:
        """The :class:`rtedge.audio.vad.VadSettings` of the gate."""
        from ..audio.vad import VadSettings  # lazy: start-up cost (numpy) of the CLI

        return VadSettings(backend=self.backend, threshold_db=self.threshold_db, pre_roll_ms=self.pre_roll_ms,
                           hangover_ms=self.hangover_ms, trailing_ms=self.trailing_ms,
                           min_speech_ms=self.min_speech_ms)


@attrs.frozen(kw_only=True)
class ReconnectSettings:
    """Getting the session back after the network or the server dropped it."""

    SECTION: ClassVar[str] = "reconnect"

    enabled: bool = setting(True, "reconnect (and re-seed the conversation) after a recoverable loss")
    initial_delay: float = setting(0.5, "wait before the first attempt", "s", lo=0, hi=3600)
    max_delay: float = setting(30.0, "upper bound of any wait", "s", lo=0, hi=3600)
    multiplier: float = setting(2.0, "growth of the wait per attempt", lo=1, hi=10)
    jitter: float = setting(0.25, "fraction of each wait taken off at random (fleets do not reconnect in "
                                  "lockstep)", lo=0, hi=1)
    max_attempts: int = setting(12, "failed attempts in a row before giving up (exit code 6); 0 = never "
                                    "give up", lo=0, hi=1000000)
    retry_first_connect: bool = setting(False, "at start, also wait with this backoff for the network (the "
                                               "first connection) and for the sound cards (a kiosk booting "
                                               "before its network or USB audio is up)")

    def to_backoff(self) -> Any:
        """The :class:`rtedge.transport.backoff.Backoff`, or None when reconnecting is off."""
        # lazy: start-up cost of the CLI (rtedge.transport loads websocket-client)
        from ..transport.backoff import Backoff

        if not self.enabled:
            return None
        return Backoff(initial=self.initial_delay, max=self.max_delay, multiplier=self.multiplier,
                       jitter=self.jitter, max_attempts=self.max_attempts or None)


@attrs.frozen(kw_only=True)
class ServiceSettings:
    """Running for months under systemd: run time, health, statistics, shutdown."""

    SECTION: ClassVar[str] = "service"

    max_seconds: float = setting(0.0, "end the run after this long; 0 = run until stopped", "s",
                                 lo=0, hi=10 ** 9)
    stall_seconds: float = setting(10.0, "a thread that shows no progress for this long is stalled: no "
                                         "more WATCHDOG=1, so systemd restarts the service", "s",
                                   lo=0.1, hi=3600)
    stats_interval: float = setting(300.0, "log a statistics line this often; 0 = never", "s", lo=0, hi=86400)
    stop_timeout: float = setting(5.0, "bound on ending the session gracefully on SIGTERM (keep it under "
                                       "the unit's TimeoutStopSec)", "s", lo=0.1, hi=600)
    usage_log: str = setting("", "append one JSON line per response (normalized and raw token usage) and a "
                                 "session total to this file, for billing reconciliation; empty = off")


@attrs.frozen(kw_only=True)
class WakeSettings:
    """Wake word: no session until the kiosk is addressed (optional extra rtedge[wake])."""

    SECTION: ClassVar[str] = "wake"

    word: str = setting("", "open a session only after this wake word: okay_nabu, alexa, hey_jarvis, "
                            "hey_mycroft or a microWakeWord .json path; empty = always in session")
    idle_close_s: float = setting(8.0, "close the session after this long with no speech and no response",
                                  "s", lo=0.5, hi=3600)
    keep_warm: bool = setting(False, "connect the next session ahead of time (a wake does not wait for the "
                                     "handshake)")
    pre_roll_ms: int = setting(1000, "how far before the detection the end of the wake phrase is looked for "
                                     "(the command is sent from there)", "ms", lo=0, hi=2000)


@attrs.frozen(kw_only=True)
class LoggingSettings:
    """Log lines, transcripts and the live status line."""

    SECTION: ClassVar[str] = "logging"

    level: str = setting("info", "least severe messages logged",
                         choices=("debug", "info", "warning", "error"))
    format: str = setting("auto", "auto (journal when stderr is the journal, else human), human, journal "
                                  "(<N> priority prefixes, no timestamps) or json (one object per line)",
                          choices=("auto", "human", "journal", "json"))
    transcripts: bool = setting(True, "log what the user and the assistant said (false on kiosks that must "
                                      "not keep speech in the journal)")
    status_line: bool = setting(True, "redraw a live status line on a terminal")


SECTIONS: dict[str, type[Any]] = {cls.SECTION: cls for cls in (
    ProviderSettings, SessionSettings, AudioSettings, LocalVadSettings, ReconnectSettings, ServiceSettings,
    WakeSettings, LoggingSettings)}

#: other RTEDGE_* variables rtedge reads (not settings; never warned about)
OTHER_VARIABLES = frozenset({"RTEDGE_CONFIG", "RTEDGE_CODEC", "RTEDGE_AUDIO_DEBUG", "RTEDGE_LIVE",
                             "RTEDGE_TRACE_WIRE"})


def env_name(key: str) -> str:
    """``audio.mic_rate`` -> ``RTEDGE_AUDIO_MIC_RATE``."""
    return "RTEDGE_" + key.replace(".", "_").upper()


def all_keys() -> dict[str, attrs.Attribute[Any]]:
    """Every setting, ``section.key`` -> its attrs field, in documentation order."""
    return {f"{name}.{f.name}": f for name, cls in SECTIONS.items() for f in attrs.fields(cls)}


@attrs.frozen(kw_only=True)
class Config:
    """The effective settings of a run, and where each came from.

    Attributes:
        origin: ``section.key`` -> ``"default"``, ``"PATH:LINE"``, ``"environment NAME"`` or ``"--flag"``.
        path: the config file read, or None.
    """

    provider: ProviderSettings = attrs.field(factory=ProviderSettings)
    session: SessionSettings = attrs.field(factory=SessionSettings)
    audio: AudioSettings = attrs.field(factory=AudioSettings)
    vad: LocalVadSettings = attrs.field(factory=LocalVadSettings)
    reconnect: ReconnectSettings = attrs.field(factory=ReconnectSettings)
    service: ServiceSettings = attrs.field(factory=ServiceSettings)
    wake: WakeSettings = attrs.field(factory=WakeSettings)
    logging: LoggingSettings = attrs.field(factory=LoggingSettings)
    origin: Mapping[str, str] = attrs.field(factory=dict, eq=False, repr=False)
    path: str | None = None

    def get(self, key: str) -> Any:
        """The value of ``section.key``."""
        section, _, name = key.partition(".")
        return getattr(getattr(self, section), name)

    def where(self, key: str) -> str:
        """Where ``section.key`` was set, for messages (``rtedge.toml:7``, ``--mic``...)."""
        return self.origin.get(key, "default")


# ------------------------------------------------------------------------------------------------ secrets
@attrs.frozen(repr=False)
class Secret:
    """An API key.  ``repr()``/``str()`` name its source, never its value (read ``.value``)."""

    value: str
    source: str

    def __repr__(self) -> str:
        return f"<Secret from {self.source}>"

    __str__ = __repr__


def is_loose(mode: int) -> bool:
    """Whether a key file with this ``st_mode`` is open to group or others (it should be 0600 or 0400)."""
    return bool(mode & 0o077)


def read_key_file(path: str) -> str:
    """The API key from a file (its first line, stripped); warns when group or others can read it.

    Raises:
        ConfigError: the file cannot be read or is empty (the message names the file, never the key).
    """
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as fh:
            key = fh.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"cannot read API key file {path}: {reason}") from None
    if is_loose(st.st_mode):
        log.warning("API key file %s is readable by group/others; chmod 600 it", path)
    if not key:
        raise ConfigError(f"API key file {path} is empty")
    return key


def resolve_api_key(provider: ProviderSettings, environ: Mapping[str, str] | None = None, *,
                    where: str | None = None) -> Secret | None:
    """The API key: ``provider.api_key_file``, then ``$CREDENTIALS_DIRECTORY/api-key``, then the
    provider's variable (``OPENAI_API_KEY``); None when there is none (fine for a loopback URL).
    ``where``: where ``provider.api_key_file`` was set (``Config.where``), named in its errors.

    Raises:
        ConfigError: a named key file (or the credential) cannot be read, or the provider is unknown.
    """
    env = os.environ if environ is None else environ
    if provider.api_key_file:
        try:
            return Secret(read_key_file(provider.api_key_file), provider.api_key_file)
        except ConfigError as exc:
            if where is None:
                raise
            raise ConfigError(f"{where}: {exc}") from None
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds and os.path.exists(os.path.join(creds, "api-key")):
        return Secret(read_key_file(os.path.join(creds, "api-key")), "$CREDENTIALS_DIRECTORY/api-key")
    var = get_dialect(provider.name).api_key_env
    if var and env.get(var):
        return Secret(env[var].strip(), f"${var}")
    return None


def is_finite(spec: str) -> bool:
    """True when an ``audio.mic`` spec names a source that ends (a WAV file, a raw file or stdin)."""
    return spec.split(":", 1)[0] in ("wav", "raw")


def is_sound_card(spec: str) -> bool:
    """True when an ``audio.mic``/``audio.speaker`` spec names a PortAudio device (no file, pipe, null)."""
    return not (spec.split(":", 1)[0] in ("wav", "raw") or spec == "null")
