"""``rtedge transcribe``: the command line of :class:`rtedge.voice.transcriber.Transcriber`.

Owns: ``rtedge transcribe``'s parser and command.  Must not: import numpy or the transport before the command
runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

from .debuglog import add_trace_arg
from .exit_codes import EXIT_TURN_FAILED, DeviceFailure, fail
from .settings import is_sound_card, read_key_file
from .signals import StopInterrupt, on_stop_signals, stop_interrupts
from ..errors import AudioError, ConfigError, RtEdgeError

__all__ = ["add_transcribe_parser", "cmd_transcribe"]

EPILOG = """examples:
  rtedge transcribe --url ws://gpu:8000/v1/realtime --input question.wav    # the model the server serves
  rtedge transcribe --url ws://gpu:8000 --model mistralai/Voxtral-Mini-4B-Realtime-2602 --mic USB
  rtedge serve --dialect vllm & rtedge transcribe --url ws://127.0.0.1:8765/v1/realtime --input in.wav
  rtedge transcribe --provider openai --input question.wav              # OPENAI_API_KEY, gpt-4o-mini-transcribe
  rtedge transcribe --provider openai --model gpt-4o-transcribe --url ws://127.0.0.1:8765/v1/realtime --input q.wav
"""


def add_transcribe_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``rtedge transcribe`` to the ``rtedge`` command's subparsers; returns its parser."""
    what = "speech to text over a realtime transcription session (vLLM, OpenAI), one line per utterance"
    p: argparse.ArgumentParser = subparsers.add_parser(
        "transcribe", help=what, description=what[:1].upper() + what[1:] + ".", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--provider", default="vllm", choices=("vllm", "openai"),
                   help="vllm (default) or openai (a realtime transcription session, ?intent=transcription)")
    p.add_argument("--url", help="the endpoint, ws://HOST:PORT/v1/realtime (required for vllm; openai: "
                   "default wss://api.openai.com/v1/realtime)")
    p.add_argument("--model", help="vllm: the model name the server serves (default: the one its /v1/models "
                   "lists); openai: the transcription model (default gpt-4o-mini-transcribe)")
    p.add_argument("--api-key-file", metavar="FILE", help="read the API key from FILE (default: the provider's "
                   "variable, VLLM_API_KEY or OPENAI_API_KEY)")
    p.add_argument("--ca-certs", metavar="PEM", help="trust this CA bundle for wss://")
    p.add_argument("--input", metavar="WAV", help="transcribe this WAV (PCM, float or G.711; 8 to 48 "
                   "kHz, any channels; - for standard input)")
    p.add_argument("--mic", metavar="DEVICE", help="transcribe a microphone (a name or index from 'rtedge devices', "
                   "or raw:- for s16le 16 kHz on stdin) until Ctrl-C (which finishes the utterance in "
                   "progress; a second Ctrl-C ends at once)")
    p.add_argument("--realtime", action="store_true", help="pace --input like a microphone (default: as fast "
                   "as the server takes it)")
    p.add_argument("--no-vad", action="store_true", help="send the whole input as one utterance")
    p.add_argument("--done-timeout", type=float, default=30.0,
                   help="seconds to wait for each utterance's transcript (default 30)")
    add_trace_arg(p)
    p.set_defaults(command="transcribe")
    return p


def _require_key(provider: str, model: str | None, url: str | None) -> None:
    """Raise ConfigError in the command line's terms when the endpoint needs a key and there is none (the
    library's own message names ``api_key=``)."""
    from ..protocol.dialects import get_dialect  # lazy: start-up cost, as in cmd_transcribe
    from ..protocol.dialects.base import redact_url  # lazy: start-up cost, as above
    from ..transport.endpoint import api_key_for  # lazy: start-up cost, as above

    dialect = get_dialect("openai-transcription" if provider == "openai" else provider)
    full = dialect.url(model, url)
    var = dialect.api_key_env
    if dialect.needs_key(full) and not api_key_for(dialect, None):
        raise ConfigError(f"no API key for {provider} ({redact_url(full)}): give --api-key-file FILE"
                          + (f" or set ${var}" if var else ""))


#: what the library logs that the command says itself: a server's error event (raised by the transcriber, printed
#: as the error line), and an utterance it could not transcribe (printed as a warning line); tests check both
_SAID_BY_THE_COMMAND = frozenset({"server error event: %s",
                                  "transcriber: the server could not transcribe %.2f-%.2f s: %s"})


def _not_said_by_the_command(record: logging.LogRecord) -> bool:
    """A logging filter: drops the records the command prints in its own words (else said twice)."""
    return record.msg not in _SAID_BY_THE_COMMAND


@contextlib.contextmanager
def _stops_end(tr: Any) -> Iterator[None]:
    """Within the block, Ctrl-C/SIGTERM ends ``tr``'s transcription (a Transcriber) once the utterance in
    progress is transcribed: ``tr.stop()`` on ``rtedge-transcribe-signal``, again until the block ends, so
    that a stop before the transcription began is not lost.  The handlers are restored on the way out."""
    stop, finished = threading.Event(), threading.Event()

    def watch() -> None:
        stop.wait()
        while not finished.is_set():
            tr.stop()
            finished.wait(0.1)

    restore = on_stop_signals(stop)
    watcher = threading.Thread(target=watch, name="rtedge-transcribe-signal", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        restore()
        finished.set()
        stop.set()
        watcher.join(1.0)


def _connected(tr: Any) -> bool:
    """Connect ``tr`` (a Transcriber); False, said on stderr, when a stop signal came meanwhile (it ends
    the connect at once rather than ``connect_timeout`` later, and is no connect failure)."""
    try:
        with stop_interrupts():
            tr.connect()
    except StopInterrupt:
        print("rtedge: stopped before the session started", file=sys.stderr, flush=True)
        return False
    return True


def cmd_transcribe(args: argparse.Namespace) -> int:
    """Run ``rtedge transcribe``: one ``[start-end] text`` line per utterance, then a usage summary.

    Returns the exit code (``rtedge.app.cli`` conventions); expected failures print one line on stderr.
    """
    # lazy: start-up cost of the CLI (numpy, websocket-client); `rtedge` imports this module for its parser
    from ..voice.transcriber import RATE, Transcriber
    from ..audio.devices import WavSource, open_source  # lazy: start-up cost (numpy), as above
    from ..audio.vad import VadSettings  # lazy: start-up cost (numpy), as above

    try:
        if bool(args.input) == bool(args.mic):
            raise ConfigError("give --input WAV or --mic DEVICE (one of them)")
        key = read_key_file(args.api_key_file) if args.api_key_file else None
        if key is None:
            _require_key(args.provider, args.model, args.url)
        options: dict[str, Any] = {"ca_certs": args.ca_certs} if args.ca_certs else {}
        tr = Transcriber(args.provider, url=args.url, model=args.model, api_key=key,
                         vad=None if args.no_vad else VadSettings(), done_timeout=args.done_timeout, **options)
        source = WavSource(args.input, rate=RATE, realtime=args.realtime) if args.input \
            else open_source(args.mic, rate=RATE)
        count = failed = 0
        rtedge_log = logging.getLogger("rtedge")
        rtedge_log.addFilter(_not_said_by_the_command)
        try:
            with _stops_end(tr):  # the close too: a stop while it runs is no kill
                try:
                    if not _connected(tr):
                        return 0
                    for utt in tr.transcribe(source):
                        if utt.error is not None:  # not a transcript: stdout carries transcripts only
                            failed += 1
                            print(f"rtedge: warning: {utt}", file=sys.stderr, flush=True)
                            continue
                        count += 1
                        print(utt, flush=True)
                finally:
                    tr.close()
        finally:
            rtedge_log.removeFilter(_not_said_by_the_command)
        u = tr.usage
        print(f"summary: {count} utterance(s){f' ({failed} more failed)' if failed else ''}, "
              f"{tr.stats.audio_sent_s:.1f} s of audio sent, "
              f"{tr.stats.audio_not_sent_s:.1f} s not sent (VAD gate), "
              f"tokens in {u.input_tokens} / out {u.output_tokens} / total {u.total_tokens}", flush=True)
        if count == 0 and not failed:
            print("rtedge: note: no speech was found in the input", file=sys.stderr)
        return EXIT_TURN_FAILED if failed else 0
    except RtEdgeError as exc:
        if isinstance(exc, AudioError) and args.mic and is_sound_card(args.mic):
            exc = DeviceFailure(str(exc))  # a missing or busy card: exit 7 as in `rtedge run` (it may appear)
        return fail(exc)
    except OSError as exc:
        return fail(exc, 1)


