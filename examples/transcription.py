"""Speech to text, one line per utterance, over a realtime transcription endpoint (vLLM).

    python examples/transcription.py rtedge/data/demo_phrase.wav                # against a local test server
    python examples/transcription.py question.wav --url ws://gpu:8000/v1/realtime   # the model it serves
    python examples/transcription.py --mic USB --url ws://gpu:8000/v1/realtime --model NAME   # until Ctrl-C

The local VAD gate cuts the audio into utterances and sends only speech; ``rtedge transcribe`` is the
same as a command.
"""

from __future__ import annotations

import argparse
import signal

import rtedge
from rtedge.audio.devices import open_source
from rtedge.testing import VLLMServer
from rtedge.voice.transcriber import RATE, Transcriber, Utterance


def show(utterance: Utterance) -> None:
    print(f"[{utterance.start_s:6.2f}-{utterance.end_s:6.2f}] {utterance.text}", flush=True)


def main(args: argparse.Namespace) -> None:
    server = None
    if not args.url:  # a local stand-in for vLLM that "hears" one fixed sentence
        server = VLLMServer(transcript="turn on the kitchen lights",
                            **({"models": [args.model]} if args.model else {})).start()
    try:
        transcriber = Transcriber(url=args.url or server.url, model=args.model, on_utterance=show)
        if args.mic:
            signal.signal(signal.SIGINT, lambda *_: transcriber.stop())
            for _ in transcriber.transcribe(open_source(args.mic, rate=RATE)):
                pass
        else:
            transcriber.transcribe_file(args.wav)
        print(f"{transcriber.stats.utterances} utterance(s), {transcriber.stats.audio_sent_s:.1f} s sent, "
              f"{transcriber.stats.audio_not_sent_s:.1f} s of silence not sent")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wav", nargs="?", help="a 16-bit PCM WAV file (any rate)")
    parser.add_argument("--mic", help="a microphone instead: a device name or index ('rtedge devices')")
    parser.add_argument("--url", help="endpoint (default: a local test server)")
    parser.add_argument("--model", help="the served model (default: the one the server serves, GET /v1/models)")
    parsed = parser.parse_args()
    if bool(parsed.wav) == bool(parsed.mic):
        parser.error("give a WAV file or --mic")
    try:
        main(parsed)
    except rtedge.RtEdgeError as exc:  # one line, as the rtedge command says it
        raise SystemExit(f"error: {exc}") from None
