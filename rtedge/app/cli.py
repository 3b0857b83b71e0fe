"""The ``rtedge`` command line: run, demo, serve, devices, transcribe, check-config, doctor, version.

Every command returns an exit code instead of raising; expected failures
(a missing file, a refused connection, a bad key) print one line on stderr.

Exit codes (see :mod:`rtedge.app.exit_codes`): 0 clean end, 1 unexpected failure,
2 configuration or bad input, 3 authentication refused or fatal provider
error, 4 connection failure, 5 timed out, 6 gave up reconnecting, 7 audio
device failure, 8 a turn failed, 9 ``doctor`` found problems.  The systemd
unit does not restart on 2 and 3.

Owns: the argument parser and the dispatch to each command.  Must not: load numpy or the transport before a
command needs them (``rtedge --help`` stays fast).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from .exit_codes import (
    EXIT_AUDIO,
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_CONNECT,
    EXIT_DOCTOR,
    EXIT_FAIL,
    EXIT_GAVE_UP,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_TURN_FAILED,
    exit_code_for,
    fail,
)
from .._version import __version__
from .debuglog import add_trace_arg, start_trace, stop_trace
from .settings import read_key_file
from .signals import on_stop_signals
from .transcribe import add_transcribe_parser, cmd_transcribe
from ..errors import ConfigError, RtEdgeError
from ..protocol.config import ServerVad, SessionConfig, Transcription

__all__ = [
    "EXIT_AUDIO", "EXIT_AUTH", "EXIT_CONFIG", "EXIT_CONNECT", "EXIT_DOCTOR", "EXIT_FAIL", "EXIT_GAVE_UP",
    "EXIT_OK", "EXIT_TIMEOUT", "EXIT_TURN_FAILED", "build_parser", "exit_code_for", "fail", "main",
    "read_key_file",
]

log = logging.getLogger("rtedge")

EPILOG_RUN = """examples:
  rtedge run --config /etc/rtedge/rtedge.toml           # what the systemd unit runs
  rtedge run --config kiosk.toml --debug --trace-wire /tmp/wire.jsonl   # a misbehaving kiosk
  rtedge run --mic USB --speaker default --barge-in local --echo-guard half_duplex
  rtedge run --url wss://api.openai.com/v1/realtime --api-key-file ~/.openai-key \\
      --input question.wav --output answer.wav
  rtedge run --url ws://127.0.0.1:8765/v1/realtime --input question.wav --output answer.wav --fast
  rtedge run --config kiosk.toml --set session.voice=marin --log-format json
  arecord -f S16_LE -r 16000 -c 1 -t raw | rtedge run --mic raw:- --speaker raw:- | aplay -f S16_LE -r 24000

settings: command line > environment (RTEDGE_<SECTION>_<KEY>, e.g. RTEDGE_AUDIO_MIC) > --config file
  > defaults; 'rtedge check-config' shows the result.
API key: --api-key-file, $CREDENTIALS_DIRECTORY/api-key, or $OPENAI_API_KEY (never in argv).
signals: SIGTERM/SIGINT end the session gracefully (exit 0); SIGHUP re-reads the config and re-sends
  session.update on the same connection.
exit codes: 0 clean, 1 bug, 2 config, 3 auth/fatal provider error, 4 connect, 5 timeout,
  6 gave up reconnecting, 7 audio device, 8 a turn failed (runs that end with their input).
"""
EPILOG_SERVE = """examples:
  rtedge serve --port 8765
  rtedge serve --port 8443 --tls-cert cert.pem --tls-key key.pem
  rtedge --debug serve        # also log each event received and sent (audio counted, never shown)
  rtedge serve --dialect xai --port 8765
      # then: rtedge run --provider xai --url ws://127.0.0.1:8765/v1/realtime
  rtedge serve --dialect qwen --reply-text "Ni hao."
  rtedge serve --dialect vllm --reply-text "turn on the lights"
      # then: rtedge transcribe --url ws://127.0.0.1:8765/v1/realtime --input in.wav
      # (no --model needed: it takes the model the server lists at /v1/models, as with vllm serve)

dialects and their paths: openai and xai /v1/realtime, azure /openai/v1/realtime (the key may come as
  api-key), qwen /api-ws/v1/realtime (DashScope), vllm /v1/realtime (transcription only: --reply-text is
  the transcript of every utterance); any other path is answered 404, as the real services do.
  The second line printed names the model each dialect serves.
"""
EPILOG_DEMO = """examples:
  rtedge demo                 # a spoken turn against the built-in local server, at real-time pace
  rtedge demo --output reply.wav --fast
"""
EPILOG_DEVICES = """examples:
  rtedge devices              # then: rtedge run --mic "USB Audio" --speaker 2
"""
EPILOG_CHECK = """examples:
  rtedge check-config --config /etc/rtedge/rtedge.toml
  RTEDGE_AUDIO_MIC=null rtedge check-config --config kiosk.toml --set service.stats_interval=60

Prints the effective settings as TOML, each with where it came from; the API key only by its source.
Exit 0 when valid, 2 with one line per problem (file:line: key: what is wrong) otherwise.
"""
EPILOG_DOCTOR = """examples:
  rtedge doctor                                   # codec, PortAudio, devices, audio group, config, endpoint
  rtedge doctor --config /etc/rtedge/rtedge.toml --no-network

Exit 0 when every check passed, 9 when a check FAILed (each says what to fix).
"""
EPILOG_VERSION = """examples:
  rtedge version
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``rtedge`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="rtedge", description="Realtime voice client for the edge.")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run_parser(sub)
    _add_demo_parser(sub)
    _add_serve_parser(sub)
    _command(sub, "devices", "list audio devices (index, name, channels, default rate)", EPILOG_DEVICES)
    add_transcribe_parser(sub)
    check = _command(sub, "check-config", "print the effective configuration (secrets redacted); "
                                          "exit 2 on errors", EPILOG_CHECK)
    _add_config_args(check)
    _add_session_args(check)
    doctor = _command(sub, "doctor", "check the install and say what to fix", EPILOG_DOCTOR)
    _add_config_args(doctor)
    _add_session_args(doctor)
    doctor.add_argument("--no-network", action="store_true", help="skip the endpoint reachability check")
    _command(sub, "version", "print the version", EPILOG_VERSION)
    return parser


def _command(sub: Any, name: str, help: str, epilog: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=help[:1].upper() + help[1:] + ".", epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return p


def _add_run_parser(sub: Any) -> None:
    run = _command(sub, "run", "a voice session: microphone (or WAV) in, speaker (or WAV) out", EPILOG_RUN)
    _add_config_args(run)
    _add_session_args(run)
    run.add_argument("--input", metavar="WAV", help="speak this WAV (PCM, float or G.711; 8 to 48 kHz, any "
                     "channels; - for standard input), paced like a mic")
    run.add_argument("--output", metavar="WAV", help="play the assistant's audio into this WAV (paced)")
    run.add_argument("--mic", metavar="DEVICE", help="audio.mic: a device name or index from "
                     "'rtedge devices', wav:PATH, raw:- for s16le 16 kHz on stdin, or null")
    run.add_argument("--speaker", metavar="DEVICE", help="audio.speaker: a device name or index, raw:- "
                     "for s16le 24 kHz on stdout, wav:PATH, or null")
    run.add_argument("--barge-in", choices=("server", "local", "off"),
                     help="vad.barge_in: interrupt the assistant on the server's VAD (default), the "
                          "local VAD, or never (off)")
    run.add_argument("--echo-guard", choices=("half_duplex", "threshold", "aec", "off"),
                     help="vad.echo_guard: keep the speaker's sound from counting as the user (default "
                          "threshold; aec: libspeexdsp echo canceller; off for an echo-cancelled source)")
    run.add_argument("--echo-tail-ms", type=int, metavar="MS",
                     help="vad.echo_tail_ms: the echo guard stays on this long after playback ends, for the "
                          "room's echo of the last sound (default 300)")
    run.add_argument("--wake-word", metavar="NAME|PATH.json",
                     help="wake.word: open a session only after this wake word (okay_nabu, alexa, hey_jarvis, "
                          "hey_mycroft, or a microWakeWord JSON); needs rtedge[wake]")
    run.add_argument("--vad-gate", choices=("on", "off"),
                     help="vad.gate: send only speech (with pre-roll and trailing silence), not idle silence")
    run.add_argument("--fast", action="store_true", help="batch mode: send the --input WAV as fast as the "
                     "link takes it and write the answer to --output (no devices, no barge-in)")
    run.add_argument("--loop", action="store_true", help="play the --input (or --mic wav:) file over and "
                     "over; without it the run ends, exit 0, once the file or stdin has ended and the last "
                     "turn is answered")
    run.add_argument("--manual", action="store_true", help="no server VAD: rtedge commits each turn and asks "
                     "for the answer (--fast: at the end of the input; else when the local VAD hears the "
                     "speech end)")
    run.add_argument("--max-seconds", type=float, help="service.max_seconds: bound on the whole run "
                     "(0: none; default: until stopped, or 120 with --input)")
    add_trace_arg(run)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="TOML", help="settings file (default: $RTEDGE_CONFIG, else none)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append",
                   help="set any setting, e.g. --set reconnect.max_attempts=0 (repeatable)")
    p.add_argument("--log-format", choices=("auto", "human", "journal", "json"),
                   help="logging.format (auto: journal under systemd, else human)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="logging.level")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="log debug messages "
                   "(logging.level = debug)")


def _add_session_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", help="provider.name: provider dialect (default openai)")
    p.add_argument("--url", help="provider.url: WebSocket endpoint (default: the provider's)")
    p.add_argument("--model", help="provider.model: model name (default: the provider's)")
    p.add_argument("--api-key-file", metavar="FILE", help="provider.api_key_file: read the API key from FILE "
                   "(never pass keys in argv)")
    p.add_argument("--instructions", help="session.instructions: system instructions for the session")
    p.add_argument("--ca-certs", metavar="PEM", help="provider.ca_certs: trust this CA bundle for wss://")


def _add_demo_parser(sub: Any) -> None:
    demo = _command(sub, "demo", "a full voice turn against the built-in local server (no key needed)",
                    EPILOG_DEMO)
    demo.add_argument("--output", metavar="WAV", help="write the assistant's audio here")
    demo.add_argument("--input", metavar="WAV", help="speak this WAV instead of the bundled phrase")
    demo.add_argument("--fast", action="store_true", help="send the phrase as fast as the link takes it")
    demo.add_argument("--max-seconds", type=positive_seconds, default=120.0,
                      help="bound on the whole run (default 120)")
    add_trace_arg(demo)


SERVE_DIALECTS = ("openai", "azure", "xai", "qwen", "vllm")


def _add_serve_parser(sub: Any) -> None:
    serve = _command(sub, "serve", "run the local realtime test server", EPILOG_SERVE)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=port_number, default=8765,
                       help="port (default 8765; 0 picks a free one)")
    serve.add_argument("--tls-cert", metavar="PEM", help="serve wss:// with this certificate")
    serve.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    serve.add_argument("--dialect", choices=SERVE_DIALECTS, default="openai",
                       help="the provider protocol to speak (default openai)")
    serve.add_argument("--api-key-file", metavar="FILE", help="require this key (as a Bearer token, or an "
                       "api-key header)")
    serve.add_argument("--reply-text", default=None, help="what the server's assistant says (vllm: the "
                                                          "transcript of every utterance)")


def port_number(text: str) -> int:
    """argparse type of a TCP port: 1-65535, or 0 for any free port."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535, or 0 for any free port)")
    return value


def positive_seconds(text: str) -> float:
    """argparse type of a bound in seconds that must be above 0 (0 would end the run before it starts)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a number of seconds > 0")
    return value


class _LowerLevelFormatter(logging.Formatter):
    """``rtedge: warning: ...``, as the lines the commands print themselves (and ``rtedge run``'s log) read."""

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord(record.__dict__)  # a copy: other handlers see the record unchanged
        record.levelname = record.levelname.lower()
        return super().format(record)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rtedge`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(_LowerLevelFormatter("rtedge: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, handlers=[handler])
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _lazy("run", "cmd_run"), "check-config": _lazy("run", "cmd_check_config"),
        "doctor": _lazy("doctor", "cmd_doctor"), "demo": cmd_demo, "serve": cmd_serve,
        "version": cmd_version, "devices": cmd_devices,
    }
    commands["transcribe"] = cmd_transcribe
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    try:
        if getattr(args, "trace_wire", None):
            start_trace(args.trace_wire)
        return commands[args.command](args)
    except KeyboardInterrupt:
        return 130
    except RtEdgeError as exc:
        return fail(exc)
    except OSError as exc:
        return fail(exc, EXIT_FAIL)
    finally:
        stop_trace()


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        target = importlib.import_module(f".{module}", __package__)
        fn: Callable[[argparse.Namespace], int] = getattr(target, name)
        return fn(args)
    return command


def cmd_version(args: argparse.Namespace) -> int:
    # lazy: start-up cost of the CLI (numpy, websocket-client): only the command that runs loads it
    from ..audio import codec

    print(f"rtedge {__version__} (codec backend: {codec.BACKEND})")
    return EXIT_OK


def cmd_devices(args: argparse.Namespace) -> int:
    # lazy: start-up cost of the CLI (numpy, websocket-client): only the command that runs loads it
    from ..audio.devices import list_devices

    infos = list_devices()
    if not infos:
        print("no audio devices found (is the user in group 'audio'? is ALSA configured?)")
    for d in infos:
        marks = ("*in" if d.default_input else "") + ("*out" if getattr(d, "default_output", False) else "")
        print(f"{d.index:3d}  {d.name:32s} in {d.max_input_channels:3d}  out {d.max_output_channels:3d}  "
              f"{d.default_rate} Hz  {marks}")
    return EXIT_OK


def local_server(command: str) -> Any:
    """``rtedge.testing`` (the local server), or a one-line ``ConfigError`` naming the extra to install."""
    try:
        # lazy: optional dependency (websockets, the [server] extra): a missing one gets a one-line error
        from .. import testing
    except ModuleNotFoundError as exc:
        if exc.name != "websockets":
            raise
        raise ConfigError(
            f"rtedge {command} runs a local server that needs the websockets package: "
            "pip install 'rtedge[server]'"
        ) from None
    return testing


def cmd_demo(args: argparse.Namespace) -> int:
    RealtimeServer = local_server("demo").RealtimeServer
    # lazy: start-up cost of the CLI (numpy, websocket-client): only the command that runs loads it
    from .run import read_input_wav, stream_file
    from ..transport.client import connect
    from ..audio.wavio import check_writable, read_wav

    data = resources.files("rtedge") / "data"
    phrase = Path(args.input) if args.input else Path(str(data / "demo_phrase.wav"))
    samples, rate = read_input_wav(str(phrase))
    if args.output:
        check_writable(args.output)
    reply, reply_rate = read_wav(Path(str(data / "demo_reply.wav")))
    heard = None if args.input else "Turn on the kitchen lights, please."
    server = RealtimeServer(**demo_server_options(reply, reply_rate, heard, realtime=not args.fast))
    # the in-process server's connection log ('server listening', 'connection open'...) is not the demo's
    # output ('rtedge serve' shows it); --debug keeps it
    server_log = logging.getLogger("rtedge.testing.websockets")
    saved_level = server_log.level
    if not args.debug:
        server_log.setLevel(logging.WARNING)
    try:
        with server:
            print(f"rtedge demo: local realtime server at {server.url}", flush=True)
            print(f"rtedge demo: speaking {phrase.name} ({len(samples) / rate:.1f} s at {rate} Hz)", flush=True)
            t0 = time.monotonic()
            # 500 ms of silence ends a turn, so the comma pause in the phrase does not split it
            session = SessionConfig(instructions="You are a helpful kiosk.",
                                    turn_detection=ServerVad(silence_duration_ms=500),
                                    transcription=Transcription(model="gpt-4o-mini-transcribe"))
            client = connect("openai", url=server.url, session=session)
            print(f"rtedge demo: connected in {(time.monotonic() - t0) * 1000:.0f} ms", flush=True)
            with client:
                return stream_file(client, samples, rate, args, lambda s: print(s, flush=True), args.max_seconds)
    finally:
        server_log.setLevel(saved_level)


def demo_server_options(reply: Any, reply_rate: int, heard: str | None, realtime: bool) -> dict[str, Any]:
    """Options for the demo's local server: the bundled reply audio and the transcript of the phrase."""
    # lazy: start-up cost of the CLI (numpy, websocket-client): only the command that runs loads it
    from ..audio.codec import Resampler

    if reply_rate != 24000:
        rs = Resampler(reply_rate, 24000)
        reply = __import__("numpy").concatenate([rs.process(reply), rs.flush()])
    text = "Okay. The kitchen lights are on."

    def responder(*_: Any, **__: Any) -> tuple[str, Any]:
        return text, reply

    options: dict[str, Any] = {"responder": responder, "realtime": realtime}
    if heard is not None:
        options["input_transcript"] = heard
    return options


def cmd_serve(args: argparse.Namespace) -> int:
    testing = local_server("serve")
    RealtimeServer, VLLMServer = testing.RealtimeServer, testing.VLLMServer

    ctx = None
    if args.tls_key and not args.tls_cert:  # (it served plain ws:// without a word)
        raise ConfigError("--tls-key needs --tls-cert")
    if args.tls_cert:
        if not args.tls_key:
            raise ConfigError("--tls-cert needs --tls-key")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the TLS certificate/key: {exc}") from None
    options: dict[str, Any] = {"host": args.host, "port": args.port, "ssl_context": ctx}
    if args.api_key_file:
        options["api_key"] = read_key_file(args.api_key_file)
    dialect = getattr(args, "dialect", "openai")
    server: Any
    if dialect == "vllm":
        server = VLLMServer(**options, transcript=args.reply_text or None)
    else:
        if args.reply_text:
            options["reply_text"] = args.reply_text
        server = RealtimeServer(**options, dialect=dialect)
    try:
        server.start()
    except OSError as exc:  # the port is taken, the address is not this machine's, or no such host
        dns = isinstance(exc, socket.gaierror) or (exc.errno or 0) < 0  # (EAI_* codes are negative)
        why = "no such host" if dns else os.strerror(exc.errno) if exc.errno else str(exc)
        hint = ("--host must be an address of this machine" if dns or exc.errno == errno.EADDRNOTAVAIL
                else "another --port, or 0 for a free one")
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {why} ({hint})") from None
    stop = threading.Event()
    restore = on_stop_signals(stop)
    try:
        with server:
            print(f"rtedge serve: listening on {server.url}", flush=True)
            print(f"rtedge serve: {served_models_line(server, dialect)}", flush=True)
            stop.wait()
    finally:
        restore()
    return EXIT_OK


def served_models_line(server: Any, dialect: str) -> str:
    """Which model a local server serves, in the words a client needs."""
    if dialect == "vllm":
        return (f"vllm dialect, serving {', '.join(server.models)} (listed at /v1/models; rtedge transcribe "
                "takes it when given no --model)")
    # lazy: optional dependency (websockets, the [server] extra): a missing one gets a one-line error
    from ..testing import _qwen, _xai

    model = {"qwen": _qwen.DEFAULT_MODEL, "xai": _xai.DEFAULT_MODEL}.get(dialect, server.default_model)
    return f"{dialect} dialect, model {model} (when the URL names none with ?model=)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
