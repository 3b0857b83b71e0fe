"""``rtedge run`` and ``rtedge check-config``: a voice session as a service.

Theory of operation
-------------------
:func:`cmd_run` builds the :class:`~rtedge.app.settings.Config` (command line >
``RTEDGE_*`` > file > defaults), routes output through a
:class:`~rtedge.app.logs.Console` and hands over to :class:`Service`, which owns
the main thread:

1. ``STATUS=connecting``; build the devices; connect (retried with the
   reconnect backoff when ``reconnect.retry_first_connect`` is on).
2. The :class:`~rtedge.voice.agent.VoiceAgent` runs on a thread of its own
   (``rtedge-agent``) while the main thread loops every 50 ms: it sends
   ``READY=1`` once the session is configured and both devices deliver
   frames, ``STATUS=`` whenever the state changes, the statistics line every
   ``service.stats_interval``, and applies a reload.
3. Signal handlers only set flags and wake the loop: SIGTERM/SIGINT end the
   run (``STOPPING=1``, agent and devices stopped, session closed within
   ``service.stop_timeout``, exit 0); SIGHUP sends ``RELOADING=1``, re-reads
   the config and re-sends ``session.update`` on the same connection, then
   ``READY=1``.
4. The ``rtedge-watchdog`` thread pings systemd only while the client's
   threads, the devices and this loop show progress (:mod:`rtedge.app.service`).

The exit code says why the run ended (:mod:`rtedge.app.exit_codes`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .exit_codes import (
    EXIT_AUDIO,
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_TURN_FAILED,
    DeviceFailure,
    GaveUpError,
    exit_code_for,
)
from .logs import LEVELS, Console, logging_to, pick_format
from .settings import Config, Secret, load_config, resolve_api_key
from ..errors import (
    AudioError,
    ConfigError,
    ConnectionClosed,
    DeadlineExceeded,
    HandshakeError,
    LocalProtocolError,
    RtEdgeError,
    ServerError,
    TransportError,
)
from ..transport._lifecycle import LinkState
from .service import (
    Health,
    Notifier,
    Watchdog,
    client_probes,
    describe_state,
    device_probe,
    monotonic_usec,
    session_numbers,
    stats_line,
    status_text,
    tick_probe,
)

log = logging.getLogger("rtedge")

#: argparse destination -> setting, for flags that set one directly
FLAG_KEYS = {
    "provider": "provider.name", "url": "provider.url", "model": "provider.model",
    "api_key_file": "provider.api_key_file", "ca_certs": "provider.ca_certs",
    "instructions": "session.instructions", "mic": "audio.mic", "speaker": "audio.speaker",
    "barge_in": "vad.barge_in", "echo_guard": "vad.echo_guard", "max_seconds": "service.max_seconds",
    "wake_word": "wake.word",
    "log_format": "logging.format", "log_level": "logging.level",
}


def overrides_from_args(args: argparse.Namespace) -> dict[str, tuple[Any, str]]:
    """The command line's settings: ``--set KEY=VALUE`` first, then the specific flags.

    Raises:
        ConfigError: a malformed ``--set``, or flags that contradict each other.
    """
    out: dict[str, tuple[Any, str]] = {}
    for item in getattr(args, "set", None) or ():
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. --set audio.mic=USB")
        out[key.strip()] = (value, f"--set {key.strip()}")
    for dest, key in FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            out[key] = (value, "--" + dest.replace("_", "-"))
    if getattr(args, "input", None) and getattr(args, "mic", None):
        raise ConfigError("give --input or --mic, not both")
    if getattr(args, "input", None):
        out["audio.mic"] = ("wav:" + args.input, "--input")
    if getattr(args, "output", None):
        out["audio.speaker"] = ("wav:" + args.output, "--output")
    if getattr(args, "vad_gate", None) is not None:
        out["vad.gate"] = (args.vad_gate == "on", "--vad-gate")
    if getattr(args, "manual", False):
        out["session.turn_detection"] = ("none", "--manual")
    if getattr(args, "debug", False):
        out["logging.level"] = ("debug", "--debug")
    return out


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Config:
    """The effective config for ``args``: ``--config`` (or ``$RTEDGE_CONFIG``), the environment, the flags."""
    env = os.environ if environ is None else environ
    path = getattr(args, "config", None) or env.get("RTEDGE_CONFIG") or None
    return load_config(path, env, overrides_from_args(args))


def log_error(exc: BaseException) -> None:
    """Log an error, one record per line (several config problems come as several lines)."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        log.error("%s", line)


def cmd_run(args: argparse.Namespace) -> int:
    """``rtedge run``; returns the exit code."""
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        with logging_to(Console(pick_format("auto"), False), "info"):
            log_error(exc)
            Notifier.from_env().notify("STATUS=configuration error (see the log)")
        return EXIT_CONFIG
    console = Console(pick_format(config.logging.format), config.logging.status_line,
                      stdout_is_audio=config.audio.speaker.strip() == "raw:-")
    with logging_to(console, config.logging.level):
        try:
            key = resolve_api_key(config.provider)
            if key is not None:
                console.redact.secrets.append(key.value)
            require_key(config, key)
            if getattr(args, "loop", False) and not config.audio.mic.startswith("wav:"):
                raise ConfigError(f"--loop needs a WAV input (--input FILE or --mic wav:FILE), "
                                  f"not audio.mic = {config.audio.mic!r}")
            if args.fast:
                return run_fast(config, key, args, console)
            if config.wake.word:
                from .run_wake import run_wake

                return run_wake(config, key, args, console)
            return Service(config, args, console, key).run()
        except RtEdgeError as exc:
            log_error(exc)
            return exit_code_for(exc)


def endpoint_needing_key(config: Config) -> str | None:
    """The (redacted) endpoint URL when it needs an API key (a remote endpoint of a provider that takes
    one), else None: a loopback URL needs none."""
    from ..protocol.dialects import get_dialect
    from ..protocol.dialects.base import redact_url
    from ..transport.client import _is_loopback

    dialect = get_dialect(config.provider.name)
    url = dialect.url(config.provider.model or None, config.provider.url or None)
    if not dialect.api_key_required or _is_loopback(url):
        return None
    return redact_url(url)


def no_key_message(config: Config) -> str:
    """What to do when no API key was found, in the command line's terms."""
    from ..protocol.dialects import get_dialect

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
    return {"model": p.model or None, "url": p.url or None, "api_key": key.value if key else None,
            "session": config.session.to_session_config(), "ca_certs": p.ca_certs or None,
            "connect_timeout": p.connect_timeout, "ping_interval": p.ping_interval,
            "ping_timeout": p.ping_timeout,
            "max_audio_queue_ms": float(p.max_audio_queue_ms), "reconnect": config.reconnect.to_backoff(),
            "max_session_seconds": p.max_session_seconds or None,
            "session_limit_s": (p.session_limit or "auto") if p.rollover else None}


def run_fast(config: Config, key: Secret | None, args: argparse.Namespace, console: Console) -> int:
    """``rtedge run --fast``: the --input WAV as fast as the link takes it, the answer into --output."""
    from ..audio.wavio import check_writable, read_wav

    if not args.input:
        raise ConfigError("--fast needs --input WAV")
    samples, rate = read_wav(args.input)
    if args.output:
        check_writable(args.output)  # before a session is opened (and billed) for nothing
    client = connect_logged(config, key, 1)
    with client:
        usage_log = open_usage_log(config, client)
        try:
            return stream_file(client, samples, rate, args, console.line,
                               max_seconds=config.service.max_seconds or 120.0)
        finally:
            if usage_log is not None:
                client.close()  # first, so that the total line counts every response
                usage_log.close()


def connect_logged(config: Config, key: Secret | None, attempt: int) -> Any:
    """:func:`rtedge.connect` with ``config``, its attempt and outcome logged at debug level (with
    :class:`~rtedge.app.debuglog.EventLog` hooked to the client)."""
    from .debuglog import EventLog, describe_connect, session_summary
    from ..transport.client import connect

    t0 = time.monotonic()
    log.debug("connecting to %s (attempt %d, %s)", describe_connect(config), attempt,
              "no API key" if key is None else f"API key from {key.source}")
    try:
        client = connect(config.provider.name, **connect_options(config, key))
    except (RtEdgeError, OSError) as exc:
        log.debug("connect attempt %d failed after %.0f ms: %s", attempt, (time.monotonic() - t0) * 1000, exc)
        raise
    log.debug("connected in %.0f ms; session confirmed: %s", (time.monotonic() - t0) * 1000,
              session_summary(client.session))
    EventLog(client)
    return client


def open_usage_log(config: Config, client: Any) -> Any:
    """The :class:`~rtedge.app.usage_log.UsageLog` of ``service.usage_log`` on ``client``, or None when off.

    Raises:
        ConfigError: the file cannot be opened for appending.
    """
    path = config.service.usage_log
    if not path:
        return None
    from .usage_log import UsageLog

    try:
        return UsageLog(client, path)
    except OSError as exc:
        raise ConfigError(f"service.usage_log: cannot open {path}: {exc.strerror or exc}") from None


def stream_file(client: Any, samples: Any, rate: int, args: argparse.Namespace, echo: Callable[[str], Any],
                max_seconds: float) -> int:
    """Send a recording as one turn (``run --fast``, ``demo``), print the turns and a summary."""
    import sys

    from .runner import stream_wav
    from ..audio.wavio import WavWriter

    writer = WavWriter(args.output, client.snapshot.output_format.rate) if args.output else None
    stop = threading.Event()
    restore = on_signals({signal.SIGINT: stop.set, signal.SIGTERM: stop.set})
    try:
        report = stream_wav(client, samples, rate, output=writer, realtime=not args.fast, manual=args.manual,
                            max_seconds=max_seconds, echo=echo, stop=stop)
    finally:
        restore()
        if writer is not None:
            writer.close()
    u = report.usage
    echo(f"summary: {len(report.turns)} turn(s), {report.input_seconds:.1f} s in, "
         f"{report.output_seconds:.1f} s out, tokens in {u.input_tokens} / out {u.output_tokens} / "
         f"total {u.total_tokens}")
    if client.stats.audio_dropped:
        print(f"rtedge: warning: {client.stats.audio_dropped_ms:.0f} ms of input audio was dropped "
              "(the link was slower than real time)", file=sys.stderr)
    failed = [t.index for t in report.turns if t.status == "failed"]
    if report.timed_out or stop.is_set():
        pass  # cut short: whether the server heard speech is unknown
    elif not report.turns:
        print("rtedge: note: the server heard no speech in the input", file=sys.stderr)
    if failed:
        print(f"rtedge: error: turn {', '.join(map(str, failed))} failed (see 'server error' above)",
              file=sys.stderr)
        return EXIT_TURN_FAILED
    if report.timed_out and not stop.is_set():
        sent = "" if report.input_sent else ", before all of the input was sent"
        print(f"rtedge: error: no complete answer within {max_seconds:g} s (--max-seconds){sent}",
              file=sys.stderr)
        return EXIT_TIMEOUT
    return EXIT_OK


def on_signals(handlers: Mapping[int, Callable[[], None]]) -> Callable[[], None]:
    """Install ``handlers`` (signal -> function of no arguments); returns a function restoring the old ones.

    A no-op off the main thread (Python delivers signals to the main thread only).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {sig: signal.signal(sig, lambda *_, fn=fn: fn()) for sig, fn in handlers.items()}

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    return restore


def build_devices(config: Config, loop: bool = False) -> tuple[Any, Any]:
    """The configured microphone and speaker, built (not started); ``loop`` repeats a WAV input.

    Raises:
        AudioError: a bad file spec (exit 2).
        DeviceFailure: a sound device that cannot be set up (exit 7: it may appear later).
    """
    from ..audio.devices import open_sink, open_source

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


def is_finite(spec: str) -> bool:
    """True when an ``audio.mic`` spec names a source that ends (a WAV file, a raw file or stdin)."""
    return spec.split(":", 1)[0] in ("wav", "raw")


def is_sound_card(spec: str) -> bool:
    """True when an ``audio.mic``/``audio.speaker`` spec names a PortAudio device (no file, pipe, null)."""
    return not (spec.split(":", 1)[0] in ("wav", "raw") or spec == "null")


def try_sound_cards(config: Config) -> None:
    """Open and close the configured sound cards once (devices are single-use, so the real ones are built
    afterwards).

    Raises:
        DeviceFailure: a card is missing, busy or refuses the format.
    """
    import numpy as np

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


class Service:
    """One ``rtedge run`` with devices: the main loop, sd_notify, signals, reload (see the module doc)."""

    def __init__(self, config: Config, args: argparse.Namespace, console: Console, key: Secret | None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.config, self.args, self.console, self.key = config, args, console, key
        self.environ = os.environ if environ is None else environ
        self.notifier = Notifier.from_env(self.environ)
        self.health = Health()
        self.watchdog = Watchdog(self.notifier, self.health)
        self._wake = threading.Event()
        self._stop_reason: str | None = None
        self._reload_requested = False
        self._main_tick = time.monotonic()
        self._attempt = 0
        self._agent_error: BaseException | None = None
        self._status = ""

    # ------------------------------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        """Connect, run until stopped, close; returns the exit code.  Raises RtEdgeError on failures
        before the session runs (the caller maps them to exit codes)."""
        s = self.config.service
        limit = s.stall_seconds + self.config.provider.connect_timeout
        self.health.add("main", tick_probe("main thread", lambda: self._main_tick, limit))
        restore = on_signals({signal.SIGTERM: self._request_stop, signal.SIGINT: self._request_stop,
                              signal.SIGHUP: self._request_reload})
        self.watchdog.start()
        try:
            self._set_status("connecting")
            if not self._wait_for_sound_cards():
                self.notifier.notify("STOPPING=1", "STATUS=stopping")
                return EXIT_OK
            mic, speaker = build_devices(self.config, loop=bool(getattr(self.args, "loop", False)))
            client = self._connect()
            if client is None:
                self.notifier.notify("STOPPING=1", "STATUS=stopping")
                return EXIT_OK
            usage_log = None
            try:
                usage_log = open_usage_log(self.config, client)
                return self._session(client, mic, speaker)
            finally:
                client.close(s.stop_timeout)
                if usage_log is not None:
                    usage_log.close()
        finally:
            self.watchdog.stop()
            restore()
            self.notifier.close()

    def _request_stop(self) -> None:
        self._stop_reason = self._stop_reason or "signal"
        self._wake.set()

    def _request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    def _connect(self) -> Any:
        """Connect; with ``reconnect.retry_first_connect`` retry recoverable failures with the backoff.
        Returns None when stopped meanwhile."""
        from ..transport.backoff import FATAL_HTTP_STATUSES

        backoff = self.config.reconnect.to_backoff() if self.config.reconnect.retry_first_connect else None
        attempt = 0
        while True:
            attempt += 1
            self._main_tick = time.monotonic()
            try:
                return connect_logged(self.config, self.key, attempt)
            except (TransportError, DeadlineExceeded) as exc:
                fatal = isinstance(exc, HandshakeError) and exc.status_code in FATAL_HTTP_STATUSES
                if backoff is None or fatal:
                    raise
                if backoff.exhausted(attempt + 1):
                    raise GaveUpError(f"gave up connecting after {attempt} attempts; last: {exc}") from None
                delay = backoff.delay(attempt, retry_after=getattr(exc, "retry_after", None))
                log.warning("cannot connect (%s); attempt %d in %.2f s", exc, attempt + 1, delay)
                # still starting: ask systemd for time for the wait and the next attempt (TimeoutStartSec)
                budget = delay + self.config.provider.connect_timeout + 30.0
                self.notifier.notify(f"EXTEND_TIMEOUT_USEC={int(budget * 1e6)}")
                self._set_status(f"connecting (attempt {attempt + 1})")
            if self._sleep(delay):
                return None

    def _wait_for_sound_cards(self) -> bool:
        """Open the configured sound cards once before connecting; with ``reconnect.retry_first_connect``
        wait (with the reconnect backoff) until they open: a USB card may appear after the service
        started.  False when stopped meanwhile.

        Raises:
            DeviceFailure: still failing after ``reconnect.max_attempts`` (or at once without the option).
        """
        a = self.config.audio
        if not is_sound_card(a.mic) and not is_sound_card(a.speaker):
            return True
        if not self.config.reconnect.retry_first_connect:
            try_sound_cards(self.config)  # a missing card fails now, before a (billed) session is opened
            return True
        backoff = self.config.reconnect.to_backoff()
        attempt = 0
        while True:
            attempt += 1
            self._main_tick = time.monotonic()
            try:
                try_sound_cards(self.config)
                return True
            except DeviceFailure as exc:
                if backoff is None or backoff.exhausted(attempt + 1):
                    raise DeviceFailure(f"gave up waiting for the sound card after {attempt} attempts: {exc}")
                delay = backoff.delay(attempt)
                log.warning("sound card not ready (%s); attempt %d in %.2f s", exc, attempt + 1, delay)
                self.notifier.notify(f"EXTEND_TIMEOUT_USEC={int((delay + 30.0) * 1e6)}")
                self._set_status(f"waiting for the sound card (attempt {attempt + 1})")
            if self._sleep(delay):
                return False

    def _sleep(self, seconds: float) -> bool:
        """Wait, keeping the main heartbeat; True when a stop was requested."""
        end = time.monotonic() + seconds
        while self._stop_reason is None and time.monotonic() < end:
            self._main_tick = time.monotonic()
            self._wake.wait(min(0.25, max(0.0, end - time.monotonic())))
            self._wake.clear()
        return self._stop_reason is not None

    # ------------------------------------------------------------------------------------------ the session
    def _session(self, client: Any, mic: Any, speaker: Any) -> int:
        from ..voice.agent import VoiceAgent
        from ..protocol import events as ev
        from .runner import TurnTracker

        v = self.config.vad
        agent = VoiceAgent(client, mic, speaker, barge_in=v.barge_in, echo_guard=v.echo_guard,  # type: ignore
                           vad_gate=v.to_vad_settings() if v.gate else False, echo_boost_db=v.echo_boost_db)
        tracker = TurnTracker(client, None, self._echo, keep_turns=1000)

        def on_event(event: Any) -> None:  # receiver thread: must not block
            if isinstance(event, ev.Reconnecting | ev.Reconnected):
                self._attempt = event.attempt if isinstance(event, ev.Reconnecting) else 0
                self._wake.set()

        client._add_event_hook(on_event)
        for name, probe in client_probes(client, self.config.service.stall_seconds).items():
            self.health.add(name, probe)
        until_input_ends = is_finite(self.config.audio.mic) and not getattr(self.args, "loop", False)
        thread = threading.Thread(target=self._agent_main, args=(agent, until_input_ends),
                                  name="rtedge-agent", daemon=True)
        devices = {"mic": mic, "speaker": speaker}
        thread.start()
        try:
            self._loop(client, agent, tracker, thread, devices)
        finally:
            self._shutdown(agent, thread)
        return self._finish(client, agent, tracker, devices)

    def _agent_main(self, agent: Any, until_input_ends: bool) -> None:
        try:
            agent.run(until_input_ends=until_input_ends)
        except BaseException as exc:  # reported by the main thread
            self._agent_error = exc
        finally:
            self._wake.set()

    def _loop(self, client: Any, agent: Any, tracker: Any, thread: threading.Thread,
              devices: dict[str, Any]) -> None:
        s = self.config.service
        max_seconds = s.max_seconds or (120.0 if getattr(self.args, "input", None) else 0.0)
        deadline = time.monotonic() + max_seconds if max_seconds else None
        stats_due = time.monotonic() + s.stats_interval if s.stats_interval else None
        ready = False
        while True:
            self._main_tick = now = time.monotonic()
            if self._stop_reason is not None:
                return
            if not thread.is_alive():
                if devices["mic"].finished.is_set() and self._agent_error is None and not client.closed:
                    self._stop_reason = "the input ended"
                return
            if deadline is not None and now >= deadline:
                self._stop_reason = "max_seconds"
                return
            if any(d.failed.is_set() for d in devices.values()):
                self._stop_reason = "device failed"
                return
            if self._reload_requested:
                self._reload_requested = False
                self._reload(client)
            if not ready and all(d.stats.frames > 0 for d in devices.values()):
                ready = True
                for name, device in devices.items():
                    self.health.add(name, device_probe(f"{name} ({device!r})", device, s.stall_seconds))
                self.notifier.notify("READY=1", "STATUS=ready", f"MAINPID={os.getpid()}")
                self._status = "ready"
                log.info("ready: session configured, audio open")
            if ready:
                numbers = session_numbers(client, agent, tracker, devices)
                state = describe_state(client, agent, self._attempt)
                stalled = self.watchdog.problems  # what keeps the watchdog from pinging, said in STATUS=
                if stalled:
                    state = "stalled: " + "; ".join(sorted(stalled.values()))
                self._set_status(status_text(state, numbers))
                if stats_due is not None and now >= stats_due:
                    stats_due = now + s.stats_interval
                    self.console.line(stats_line(numbers), event="stats", **numbers)
            self._wake.wait(0.05)
            self._wake.clear()

    def _set_status(self, text: str) -> None:
        if text != self._status:
            self._status = text
            self.notifier.notify(f"STATUS={text}")
            self.console.status(text)

    def _echo(self, text: str) -> None:
        if not self.config.logging.transcripts and text.startswith(("you: ", "assistant: ")):
            return
        self.console.line(text)

    def _shutdown(self, agent: Any, thread: threading.Thread) -> None:
        self.watchdog.stop()  # systemd stops watching once the service is stopping; so do the pings
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        self._status = "stopping"
        self.console.status("stopping")
        log.info("stopping (%s)", self._stop_reason or "the session ended")
        agent.stop()
        thread.join(self.config.service.stop_timeout)

    def _finish(self, client: Any, agent: Any, tracker: Any, devices: dict[str, Any]) -> int:
        """Summary line and exit code once the loop ended."""
        numbers = session_numbers(client, agent, tracker, devices)
        self.console.clear_status()
        self.console.line(stats_line(numbers), event="stats", **numbers)
        u = client.usage
        self.console.line(f"summary: {tracker.turns_started} turn(s), "
                          f"{agent.stats.interruptions} interruption(s), "
                          f"{agent.stats.seconds_not_sent:.1f} s of mic audio not sent (VAD gate), "
                          f"tokens in {u.input_tokens} / out {u.output_tokens} / total {u.total_tokens}")
        error = self._agent_error
        if error is not None and not isinstance(error, RtEdgeError):
            raise error
        if isinstance(error, AudioError) or self._stop_reason == "device failed":
            if error is not None and all(d.error is not error for d in devices.values()):
                log.error("%s", error)  # a device's own failure was logged once, by the device
            return EXIT_AUDIO
        if error is not None:
            log_error(error)
            return exit_code_for(error)
        code = self._link_exit(client)
        if code == EXIT_OK and tracker.turns_failed and is_finite(self.config.audio.mic):
            log.error("%d turn(s) failed", tracker.turns_failed)
            return EXIT_TURN_FAILED
        return code

    def _link_exit(self, client: Any) -> int:
        err = client.fatal_error
        if err is None:
            return EXIT_OK
        if client.link_state is LinkState.GAVE_UP and isinstance(err, ConnectionClosed):
            err = GaveUpError(str(err))
        log_error(err)
        return exit_code_for(err)

    # ------------------------------------------------------------------------------------------ reload
    def _reload(self, client: Any) -> None:
        """SIGHUP: re-read the config; re-send ``session.update`` on the same connection; apply log level."""
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", "STATUS=reloading")
        log.info("reloading the configuration")
        try:
            new = config_from_args(self.args, self.environ)
        except ConfigError as exc:
            log_error(exc)
            log.error("reload failed; keeping the running configuration")
            self.notifier.notify("READY=1", "STATUS=reload failed (see the log); running as before")
            return
        for key in sorted(_changed(self.config, new) - {"session", "logging"}):
            log.warning("%s changed; restart the service to apply it", key)
        try:
            client.update_session(new.session.to_session_config(), timeout=new.provider.connect_timeout)
        except (ServerError, DeadlineExceeded, ConnectionClosed, LocalProtocolError) as exc:
            log.error("reload: session.update failed: %s", exc)
        logging.getLogger("rtedge").setLevel(LEVELS[new.logging.level])
        self.config = attrs.evolve(self.config, session=new.session, logging=new.logging)
        self.notifier.notify("READY=1", f"STATUS={self._status}")
        log.info("configuration reloaded")


def _changed(old: Config, new: Config) -> set[str]:
    """Sections (or ``section.key`` outside session/logging) whose values differ."""
    out: set[str] = set()
    for section in ("provider", "session", "audio", "vad", "reconnect", "service", "logging"):
        a, b = getattr(old, section), getattr(new, section)
        if a != b:
            if section in ("session", "logging"):
                out.add(section)
            else:
                out.update(f"{section}.{f.name}" for f in attrs.fields(type(a))
                           if getattr(a, f.name) != getattr(b, f.name))
    return out


def cmd_check_config(args: argparse.Namespace) -> int:
    """``rtedge check-config``: the effective config with secrets redacted; exit 2 on errors."""
    import sys

    from .settings_load import render

    try:
        config = config_from_args(args)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"rtedge: error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        key, problem = resolve_api_key(config.provider), None
    except ConfigError as exc:
        key, problem = None, f"error: {exc}"
    if key is None and problem is None:
        problem = ("none found (fine: the endpoint is loopback)" if endpoint_needing_key(config) is None
                   else f"none found; {no_key_message(config).partition(': ')[2]}")
    sys.stdout.write(render(config, key, problem))
    if key is None and problem and not problem.startswith("error") and endpoint_needing_key(config):
        print(f"rtedge: warning: {no_key_message(config)}", file=sys.stderr)
    if problem and problem.startswith("error"):
        print(f"rtedge: error: {problem[len('error: '):]}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK
