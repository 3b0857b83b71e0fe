"""From settings to running parts: the command line's settings, the API key check, the connection, the
devices and the usage log of ``rtedge run`` (shared by the plain run, the wake-word run and the service).

Owns: turning a :class:`~rtedge.app.settings.Config` into connect options, a connected client and built
devices, with the errors in the command line's terms.  Must not: run a session loop (that is
:mod:`rtedge.app.service`'s and :mod:`rtedge.app.run`'s) or install signal handlers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .debuglog import EventLog, describe_connect, session_summary
from .exit_codes import DeviceFailure
from .signals import stop_interrupts
from .settings import Config, Secret, is_sound_card
from .usage_log import UsageLog
from ..audio.devices import open_sink, open_source
from ..errors import AudioError, ConfigError, RtEdgeError
from ..protocol.dialects import get_dialect
from ..protocol.dialects.base import redact_url
from ..transport.client import connect

log = logging.getLogger("rtedge")


def log_error(exc: BaseException) -> None:
    """Log an error, one record per line (several config problems come as several lines)."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        log.error("%s", line)


def endpoint_needing_key(config: Config) -> str | None:
    """The (redacted) endpoint URL when it needs an API key (a remote endpoint of a provider that takes
    one), else None: a loopback URL needs none."""
    dialect = get_dialect(config.provider.name)
    url = dialect.url(config.provider.model or None, config.provider.url or None)
    return redact_url(url) if dialect.needs_key(url) else None


def session_warnings(config: Config) -> list[str]:
    """What the provider's dialect says about the ``[session]`` settings before anything is sent (as
    ``rtedge run`` would hear it on connecting): its warnings (a model it does not know...).

    Raises:
        ConfigError: a session the provider would reject (semantic_vad on a model without it, a
            turn_detection outside DashScope's ranges...), or a missing model the provider needs.
    """
    dialect = get_dialect(config.provider.name)
    model = config.provider.model or None
    dialect.url(model, config.provider.url or None)  # binds the model the URL names
    session = config.session.to_session_config(interrupt=config.vad.barge_in != "off")
    if dialect.needs_served_model(model, session):
        return []  # the model comes from the server (vLLM's /v1/models): checked when run connects
    session = dialect.initial_session(model, session)
    if session is None:
        return []
    warnings = dialect.check(session)
    dialect.encode_session(session)  # raises for a setting the provider's session has not (a transcription
    return warnings                  # session's voice...), as connecting would


def no_key_message(config: Config) -> str:
    """What to do when no API key was found, in the command line's terms."""
    var = get_dialect(config.provider.name).api_key_env
    env = f", or set ${var}" if var else ""
    return (f"no API key for {config.provider.name} ({endpoint_needing_key(config)}): give --api-key-file "
            f"FILE (provider.api_key_file), a systemd credential named api-key{env}")


def require_key(config: Config, key: Secret | None) -> None:
    """Raise ConfigError (exit 2) before connecting when the endpoint needs a key and there is none."""
    if key is None and endpoint_needing_key(config) is not None:
        raise ConfigError(no_key_message(config))


def connect_options(config: Config, key: Secret | None) -> dict[str, Any]:
    """Keyword arguments of :func:`rtedge.connect` for ``config``."""
    p = config.provider
    session = config.session.to_session_config(interrupt=config.vad.barge_in != "off")
    return {"model": p.model or None, "url": p.url or None, "api_key": key.value if key else None,
            "session": session, "ca_certs": p.ca_certs or None,
            "connect_timeout": p.connect_timeout, "ping_interval": p.ping_interval,
            "ping_timeout": p.ping_timeout,
            "max_audio_queue_ms": float(p.max_audio_queue_ms), "send_batch_ms": float(p.send_batch_ms),
            "reconnect": config.reconnect.to_backoff(),
            "max_session_seconds": p.max_session_seconds or None,
            "session_limit_s": (p.session_limit or "auto") if p.rollover else None}


def connect_logged(config: Config, key: Secret | None, attempt: int) -> Any:
    """:func:`rtedge.connect` with ``config``, its attempt and outcome logged at debug level (with
    :class:`~rtedge.app.debuglog.EventLog` hooked to the client).

    Raises:
        StopInterrupt: a stop signal came while connecting, under handlers installed with
            :func:`~rtedge.app.signals.on_signals` (the attempt is abandoned, nothing is left open)."""
    t0 = time.monotonic()
    log.debug("connecting to %s (attempt %d, %s)", describe_connect(config), attempt,
              "no API key" if key is None else f"API key from {key.source}")
    try:
        with stop_interrupts():  # a stop ends the attempt instead of waiting up to connect_timeout
            client = connect(config.provider.name, **connect_options(config, key))
    except (RtEdgeError, OSError) as exc:
        log.debug("connect attempt %d failed after %.0f ms: %s", attempt, (time.monotonic() - t0) * 1000, exc)
        raise
    log.debug("connected in %.0f ms; session confirmed: %s", (time.monotonic() - t0) * 1000,
              session_summary(client.session))
    EventLog(client)
    return client


def run_limit(config: Config, has_input: bool) -> float | None:
    """The bound on a run in seconds, None for none: ``service.max_seconds``, where 0 is no bound; left
    unset, a run with ``--input`` (a WAV sent once) is bounded at :data:`INPUT_LIMIT_S`, so that a server
    that never answers cannot hold it for ever."""
    seconds = config.service.max_seconds
    if not seconds and has_input and config.where("service.max_seconds") == "default":
        return INPUT_LIMIT_S
    return seconds or None


#: the bound on a run with ``--input`` when ``service.max_seconds`` is not set
INPUT_LIMIT_S = 120.0
#: "no bound" where a number of seconds is needed (a wait given math.inf overflows): 30 days, within
#: every platform's ``threading.TIMEOUT_MAX`` and 32-bit ``time_t``
UNBOUNDED_S = 30 * 86400.0


def transcript_filter(config: Config, line: Callable[[str], Any]) -> Callable[[str], Any]:
    """``line``, less the "you:" and "assistant:" lines when ``logging.transcripts`` is off (what people
    said stays out of the journal, whichever way ``rtedge run`` runs)."""
    if config.logging.transcripts:
        return line

    def echo(text: str) -> Any:
        if not text.startswith(("you: ", "assistant: ")):
            return line(text)
        return None
    return echo


def check_usage_log(config: Config) -> None:
    """Raise ConfigError (exit 2) before a session is opened (and billed) when ``service.usage_log`` cannot
    be opened for appending (the file is created when missing, as the log would create it)."""
    path = config.service.usage_log
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise ConfigError(f"service.usage_log ({config.where('service.usage_log')}): cannot open {path}: "
                          f"{exc.strerror or exc}") from None


def open_usage_log(config: Config, client: Any) -> Any:
    """The :class:`~rtedge.app.usage_log.UsageLog` of ``service.usage_log`` on ``client``, or None when off.

    Raises:
        ConfigError: the file cannot be opened for appending.
    """
    path = config.service.usage_log
    if not path:
        return None
    try:
        return UsageLog(client, path)
    except OSError as exc:
        raise ConfigError(f"service.usage_log: cannot open {path}: {exc.strerror or exc}") from None


def agent_options(config: Config) -> dict[str, Any]:
    """The keyword arguments of a :class:`~rtedge.voice.agent.VoiceAgent` that ``[vad]`` sets (barge-in,
    the echo guard and its tail, the VAD gate), and ``end_turns`` (acted on while the session has no turn
    detection, ``session.turn_detection = "none"``): what ``rtedge run`` passes to every session's agent."""
    v = config.vad
    return {"barge_in": v.barge_in, "echo_guard": v.echo_guard, "echo_boost_db": v.echo_boost_db,
            "echo_tail_s": v.echo_tail_ms / 1000, "vad_gate": v.to_vad_settings() if v.gate else False,
            # manual turns: nothing else ends a turn of a live microphone (the agent does, on the local VAD);
            # the agent checks the live session, so a SIGHUP reload to or from "none" takes effect too
            "end_turns": True}


def build_devices(config: Config, loop: bool = False) -> tuple[Any, Any]:
    """The configured microphone and speaker, built (not started); ``loop`` repeats a WAV input.

    Raises:
        AudioError: a bad file spec (exit 2).
        DeviceFailure: a sound device that cannot be set up (exit 7: it may appear later).
    """
    a = config.audio
    built = []
    mic_options = {"loop": True} if loop else {}
    for spec, opener, rate, extra in ((a.mic, open_source, a.mic_rate, mic_options),
                                      (a.speaker, open_sink, a.speaker_rate, {})):
        try:
            built.append(opener(spec, rate=rate, frame_ms=a.frame_ms, **extra))
        except AudioError as exc:
            if not is_sound_card(spec):
                raise
            raise DeviceFailure(str(exc)) from None
    return built[0], built[1]


def try_sound_cards(config: Config) -> None:
    """Open and close the configured sound cards once (devices are single-use, so the real ones are built
    afterwards).

    Raises:
        DeviceFailure: a card is missing, busy or refuses the format.
    """
    mic, speaker = build_devices(config)
    for device, spec, callback in ((mic, config.audio.mic, lambda frame: None),
                                   (speaker, config.audio.speaker, lambda n: np.zeros(n, np.int16))):
        if not is_sound_card(spec):
            device.stop()
            continue
        try:
            device.start(callback)
        except AudioError as exc:
            raise DeviceFailure(str(exc)) from None
        finally:
            device.stop()
