"""The ``rtedge`` command line: run, demo, serve, version.

Every command returns an exit code instead of raising; expected failures
(a missing file, a refused connection, a bad key) print one line on stderr.

Exit codes: 0 success, 1 unexpected failure, 2 bad usage or configuration,
3 authentication refused (HTTP 401/403), 4 connection failure, 5 timed out.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import (AudioError, ConfigError, DeadlineExceeded, HandshakeError, RtEdgeError, ServerError,
                     TransportError)

EXIT_OK, EXIT_FAIL, EXIT_CONFIG, EXIT_AUTH, EXIT_CONNECT, EXIT_TIMEOUT = 0, 1, 2, 3, 4, 5

log = logging.getLogger("rtedge")

EPILOG_RUN = """examples:
  rtedge run --url wss://api.openai.com/v1/realtime --api-key-file ~/.openai-key --input question.wav --output answer.wav
  rtedge run --url ws://127.0.0.1:8765/v1/realtime --input question.wav --output answer.wav --fast
  rtedge run --mic USB --speaker default --barge-in local --echo-guard half_duplex
  arecord -f S16_LE -r 16000 -c 1 -t raw | rtedge run --mic raw:- --speaker raw:- | aplay -f S16_LE -r 24000
"""
EPILOG_SERVE = """examples:
  rtedge serve --port 8765
  rtedge serve --port 8443 --tls-cert cert.pem --tls-key key.pem
"""
EPILOG_DEMO = """examples:
  rtedge demo                 # a spoken turn against the built-in local server, at real-time pace
  rtedge demo --output reply.wav --fast
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtedge", description="Realtime voice client for the edge.")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    run = sub.add_parser("run", help="a voice session: microphone (or WAV) in, speaker (or WAV) out",
                         epilog=EPILOG_RUN, formatter_class=fmt)
    _add_session_args(run)
    run.add_argument("--input", metavar="WAV", help="speak this 16-bit PCM WAV (any rate), paced like a mic")
    run.add_argument("--output", metavar="WAV", help="play the assistant's audio into this WAV (paced)")
    run.add_argument("--mic", metavar="DEVICE", help="microphone: a device name or index from 'rtedge devices', "
                     "or raw:- for s16le 16 kHz on stdin")
    run.add_argument("--speaker", metavar="DEVICE", help="speaker: a device name or index, raw:- for s16le "
                     "24 kHz on stdout, or null")
    run.add_argument("--barge-in", choices=("server", "local", "off"), default="server",
                     help="interrupt the assistant on the server's VAD (default) or the local VAD")
    run.add_argument("--echo-guard", choices=("half_duplex", "threshold", "off"), default="threshold",
                     help="keep the speaker's sound from counting as the user (default threshold; "
                          "off for an echo-cancelled source)")
    run.add_argument("--vad-gate", choices=("on", "off"), default="on",
                     help="send only speech (with pre-roll and trailing silence), not idle silence")
    _add_run_args(run)

    devices = sub.add_parser("devices", help="list audio devices (index, name, channels, default rate)")
    devices.set_defaults(command="devices")

    demo = sub.add_parser("demo", help="a full voice turn against the built-in local server (no key needed)",
                          epilog=EPILOG_DEMO, formatter_class=fmt)
    demo.add_argument("--output", metavar="WAV", help="write the assistant's audio here")
    demo.add_argument("--input", metavar="WAV", help="speak this WAV instead of the bundled phrase")
    _add_run_args(demo)

    serve = sub.add_parser("serve", help="run the local realtime test server", epilog=EPILOG_SERVE,
                           formatter_class=fmt)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    serve.add_argument("--tls-cert", metavar="PEM", help="serve wss:// with this certificate")
    serve.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    serve.add_argument("--api-key-file", metavar="FILE", help="require this key as a Bearer token")
    serve.add_argument("--reply-text", default=None, help="what the server's assistant says")

    sub.add_parser("version", help="print the version")
    return parser


def _add_session_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", default="openai", help="provider dialect (default openai)")
    p.add_argument("--url", help="WebSocket endpoint (default: the provider's)")
    p.add_argument("--model", help="model name (default: the provider's)")
    p.add_argument("--api-key-file", metavar="FILE", help="read the API key from FILE (never pass keys in argv)")
    p.add_argument("--instructions", help="system instructions for the session")
    p.add_argument("--ca-certs", metavar="PEM", help="trust this CA bundle for wss://")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fast", action="store_true", help="batch mode: send the --input WAV as fast as the link "
                   "takes it and write the answer to --output (no devices, no barge-in)")
    p.add_argument("--manual", action="store_true", help="no server VAD: commit and request the response")
    p.add_argument("--max-seconds", type=float, default=120.0, help="bound on the whole run (default 120)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rtedge`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="rtedge: %(levelname)s: %(message)s")
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": cmd_run, "demo": cmd_demo, "serve": cmd_serve, "version": cmd_version, "devices": cmd_devices,
    }
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        return 130
    except RtEdgeError as exc:
        return fail(exc)
    except OSError as exc:
        return fail(exc, EXIT_FAIL)


def fail(exc: BaseException, code: int | None = None) -> int:
    """Print a one-line error and return the exit code for it."""
    if code is None:
        code = exit_code_for(exc)
    print(f"rtedge: error: {exc}", file=sys.stderr)
    return code


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, HandshakeError) and exc.status_code in (401, 403):
        return EXIT_AUTH
    if isinstance(exc, ServerError) and exc.code in ("invalid_api_key", "insufficient_quota"):
        return EXIT_AUTH
    if isinstance(exc, ConfigError | AudioError | ServerError):
        return EXIT_CONFIG
    if isinstance(exc, DeadlineExceeded):
        return EXIT_TIMEOUT
    if isinstance(exc, TransportError):
        return EXIT_CONNECT
    return EXIT_FAIL


def read_key_file(path: str) -> str:
    """The API key from a file (first line, stripped); warns when others can read it."""
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as fh:
            key = fh.readline().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read API key file {path}: {exc.strerror or exc}") from None
    if st.st_mode & 0o077:
        log.warning("API key file %s is readable by group/others; chmod 600 it", path)
    if not key:
        raise ConfigError(f"API key file {path} is empty")
    return key


def cmd_version(args: argparse.Namespace) -> int:
    from .audio import codec

    print(f"rtedge {__version__} (codec backend: {codec.BACKEND})")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from .transport.client import connect
    from .protocol.config import SessionConfig

    if args.fast and not args.input:
        raise ConfigError("--fast needs --input WAV")
    if args.input and args.mic:
        raise ConfigError("give --input or --mic, not both")
    key = read_key_file(args.api_key_file) if args.api_key_file else None
    fields: dict[str, Any] = {}
    if args.instructions:
        fields["instructions"] = args.instructions
    if args.manual:
        fields["turn_detection"] = None
    if args.fast:
        from .wavio import read_wav

        samples, rate = read_wav(args.input)
    else:
        mic, speaker = _devices(args)
    client = connect(args.provider, url=args.url, model=args.model, api_key=key,
                     session=SessionConfig(**fields) if fields else None, ca_certs=args.ca_certs)
    with client:
        if args.fast:
            return _stream(client, samples, rate, args)
        return _run_agent(client, mic, speaker, args)


def _devices(args: argparse.Namespace) -> tuple[Any, Any]:
    """The source and sink that --input/--mic and --output/--speaker name (built, not started)."""
    from .audio.devices import open_sink, open_source

    mic = open_source(f"wav:{args.input}" if args.input else args.mic, rate=16000)
    speaker = open_sink(f"wav:{args.output}" if args.output else args.speaker, rate=24000)
    return mic, speaker


def _run_agent(client: Any, mic: Any, speaker: Any, args: argparse.Namespace) -> int:
    from .agent import VoiceAgent
    from .runner import TurnTracker

    agent = VoiceAgent(client, mic, speaker, barge_in=args.barge_in, echo_guard=args.echo_guard,
                       vad_gate=args.vad_gate == "on")
    tracker = TurnTracker(client, None, lambda s: print(s, flush=True))
    restore = _on_signals(agent._stop)
    try:
        agent.run(max_seconds=args.max_seconds, until_input_ends=bool(args.input))
    finally:
        restore()
    report = tracker.report
    u = client.usage
    print(f"summary: {len(report.turns)} turn(s), {agent.stats.interruptions} interruption(s), "
          f"{agent.stats.seconds_not_sent:.1f} s of mic audio not sent (VAD gate), "
          f"tokens in {u.input_tokens} / out {u.output_tokens} / total {u.total_tokens}", flush=True)
    if client.fatal_error is not None:
        return fail(client.fatal_error)
    return EXIT_OK


def cmd_devices(args: argparse.Namespace) -> int:
    from .audio.devices import list_devices

    infos = list_devices()
    if not infos:
        print("no audio devices found (is the user in group 'audio'? is ALSA configured?)")
    for d in infos:
        marks = ("*in" if d.default_input else "") + ("*out" if getattr(d, "default_output", False) else "")
        print(f"{d.index:3d}  {d.name:32s} in {d.max_input_channels:3d}  out {d.max_output_channels:3d}  "
              f"{d.default_rate} Hz  {marks}")
    return EXIT_OK


def _stream(client: Any, samples: Any, rate: int, args: argparse.Namespace) -> int:
    from .runner import stream_wav
    from .wavio import WavWriter

    writer = WavWriter(args.output, client.state.output_format.rate) if args.output else None
    stop = threading.Event()
    restore = _on_signals(stop)
    try:
        report = stream_wav(client, samples, rate, output=writer, realtime=not args.fast, manual=args.manual,
                            max_seconds=args.max_seconds, echo=lambda s: print(s, flush=True), stop=stop)
    finally:
        restore()
        if writer is not None:
            writer.close()
    u = report.usage
    print(f"summary: {len(report.turns)} turn(s), {report.input_seconds:.1f} s in, {report.output_seconds:.1f} s out, "
          f"tokens in {u.input_tokens} / out {u.output_tokens} / total {u.total_tokens}", flush=True)
    if client.stats.audio_dropped:
        print(f"rtedge: warning: {client.stats.audio_dropped_ms:.0f} ms of input audio was dropped "
              "(the link was slower than real time)", file=sys.stderr)
    if not report.turns:
        print("rtedge: note: the server heard no speech in the input", file=sys.stderr)
    if report.timed_out and not stop.is_set():
        print(f"rtedge: error: no complete answer within --max-seconds {args.max_seconds:g}", file=sys.stderr)
        return EXIT_TIMEOUT
    return EXIT_OK


def _on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM set ``stop``; returns a function that restores the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    return restore


def cmd_demo(args: argparse.Namespace) -> int:
    from .transport.client import connect
    from .protocol.config import ServerVad, SessionConfig, Transcription
    from .testing import RealtimeServer
    from .wavio import read_wav

    data = resources.files("rtedge") / "data"
    phrase = Path(args.input) if args.input else Path(str(data / "demo_phrase.wav"))
    samples, rate = read_wav(phrase)
    reply, reply_rate = read_wav(Path(str(data / "demo_reply.wav")))
    heard = None if args.input else "Turn on the kitchen lights, please."
    server = RealtimeServer(**demo_server_options(reply, reply_rate, heard, realtime=not args.fast))
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
            return _stream(client, samples, rate, args)


def demo_server_options(reply: Any, reply_rate: int, heard: str | None, realtime: bool) -> dict[str, Any]:
    """Options for the demo's local server: the bundled reply audio and the transcript of the phrase."""
    from .audio.codec import Resampler

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
    import ssl

    from .testing import RealtimeServer

    ctx = None
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
    if args.reply_text:
        options["reply_text"] = args.reply_text
    stop = threading.Event()
    restore = _on_signals(stop)
    try:
        with RealtimeServer(**options) as server:
            print(f"rtedge serve: listening on {server.url}", flush=True)
            stop.wait()
    finally:
        restore()
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
