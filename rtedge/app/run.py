"""``rtedge run`` and ``rtedge check-config``: a voice session as a service.

Theory of operation
-------------------
:func:`cmd_run` builds the :class:`~rtedge.app.settings.Config` (command line >
``RTEDGE_*`` > file > defaults), routes output through a
:class:`~rtedge.app.logs.Console` and hands over to :class:`~rtedge.app.service.Service`, which owns
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

Owns: ``rtedge run`` (the plain and ``--fast`` runs, handing the device run to the service) and ``rtedge
check-config``.  Must not: hold the service loop (:mod:`rtedge.app.service`) or the setup shared with it
(:mod:`rtedge.app.launch`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from .exit_codes import EXIT_CONFIG, EXIT_OK, EXIT_TIMEOUT, EXIT_TURN_FAILED, exit_code_for
from .launch import (check_usage_log, connect_logged, endpoint_needing_key, log_error, no_key_message,
                     open_usage_log, require_key, run_limit, session_warnings, transcript_filter, UNBOUNDED_S)
from .logs import Console, logging_to, pick_format
from .run_wake import run_wake
from .runner import stream_wav
from .service import Notifier, Service
from .settings import Config, Secret, resolve_api_key
from .settings_load import config_from_args, render
from .signals import on_signals
from ..audio import SUPPORTED_RATES, file_rate_problem
from ..audio.wavio import WavWriter, check_writable, read_wav
from ..errors import AudioError, ConfigError, RtEdgeError

log = logging.getLogger("rtedge")


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
            key = resolve_api_key(config.provider, where=config.where("provider.api_key_file"))
            if key is not None:
                console.redact.secrets.append(key.value)
            if config.provider.name == "vllm":  # (it failed on the default turn_detection it cannot take)
                raise ConfigError("rtedge run holds conversations; vLLM's realtime endpoint only "
                                  "transcribes: use rtedge transcribe --url ... (rtedge transcribe --help)")
            require_key(config, key)
            check_usage_log(config)
            if getattr(args, "loop", False) and not config.audio.mic.startswith("wav:"):
                raise ConfigError(f"--loop needs a WAV input (--input FILE or --mic wav:FILE), "
                                  f"not audio.mic = {config.audio.mic!r}")
            if args.fast:
                return run_fast(config, key, args, console)
            if config.wake.word:
                return run_wake(config, key, args, console)
            return Service(config, args, console, key).run()
        except RtEdgeError as exc:
            log_error(exc)
            return exit_code_for(exc)


def run_fast(config: Config, key: Secret | None, args: argparse.Namespace, console: Console) -> int:
    """``rtedge run --fast``: the --input WAV as fast as the link takes it, the answer into --output."""
    if not args.input:
        raise ConfigError("--fast needs --input WAV")
    if getattr(args, "loop", False):
        raise ConfigError("--loop does not go with --fast (one turn, sent as fast as the link takes it); "
                          "drop one of them")
    for flag, dest in (("--wake-word", "wake_word"), ("--speaker", "speaker")):
        if getattr(args, dest, None):  # (they were ignored: the answer goes to --output, if anywhere)
            raise ConfigError(f"{flag} does not go with --fast (one turn, its answer into --output); drop "
                              "one of them")
    samples, rate = read_input_wav(args.input)
    if args.output:
        check_writable(args.output)  # before a session is opened (and billed) for nothing
    client = connect_logged(config, key, 1)
    with client:
        usage_log = open_usage_log(config, client)
        try:
            return stream_file(client, samples, rate, args, transcript_filter(config, console.line),
                               max_seconds=run_limit(config, True) or UNBOUNDED_S,
                               manual=config.session.turn_detection == "none")
        finally:
            if usage_log is not None:
                client.close()  # first, so that the total line counts every response
                usage_log.close()


def read_input_wav(path: str) -> tuple[Any, int]:
    """A WAV file to send as one turn, refused before any session is opened when its rate is not one the
    resampler takes (it failed on the first append, with a session already open, and without the file's name).

    Raises:
        AudioError: the file cannot be read, or its rate is not supported.
    """
    samples, rate = read_wav(path)
    if rate not in SUPPORTED_RATES:
        raise AudioError(file_rate_problem(path, rate))
    return samples, rate


def stream_file(client: Any, samples: Any, rate: int, args: argparse.Namespace, echo: Callable[[str], Any],
                max_seconds: float, manual: bool = False) -> int:
    """Send a recording as one turn (``run --fast``, ``demo``), print the turns and a summary; ``manual``
    (the session has no turn detection: ``--manual`` or the settings' ``turn_detection = "none"``): commit
    it and ask for the answer."""
    writer = WavWriter(args.output, client.snapshot.output_format.rate) if args.output else None
    stop = threading.Event()
    restore = on_signals({signal.SIGINT: stop.set, signal.SIGTERM: stop.set})
    try:
        report = stream_wav(client, samples, rate, output=writer, realtime=not args.fast, manual=manual,
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
    elif args.fast and len(report.turns) > 1 and any(t.status == "cancelled" for t in report.turns):
        print(f"rtedge: note: the input held {len(report.turns)} turns; sent at once (--fast), each cancelled "
              "the answer before it (server VAD): drop --fast to send it at the pace of speech", file=sys.stderr)
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


def cmd_check_config(args: argparse.Namespace) -> int:
    """``rtedge check-config``: the effective config with secrets redacted; exit 2 on errors."""
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"rtedge: error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        warnings, session_problem = session_warnings(config), None
    except ConfigError as exc:
        warnings, session_problem = [], str(exc)
    try:
        key, problem = resolve_api_key(config.provider, where=config.where("provider.api_key_file")), None
    except ConfigError as exc:
        key, problem = None, f"error: {exc}"
    if key is None and problem is None:
        problem = ("none found (fine: the endpoint is loopback)" if endpoint_needing_key(config) is None
                   else f"none found; {no_key_message(config).partition(': ')[2]}")
    sys.stdout.write(render(config, key, problem))
    if key is None and problem and not problem.startswith("error") and endpoint_needing_key(config):
        print(f"rtedge: warning: {no_key_message(config)}", file=sys.stderr)
    for warning in warnings:
        print(f"rtedge: warning: {warning}", file=sys.stderr)
    if session_problem is not None:
        print(f"rtedge: error: {session_problem}", file=sys.stderr)
    if problem and problem.startswith("error"):
        print(f"rtedge: error: {problem[len('error: '):]}", file=sys.stderr)
    return EXIT_CONFIG if session_problem is not None or (problem and problem.startswith("error")) else EXIT_OK
