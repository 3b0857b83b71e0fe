"""A kiosk: microphone in, speaker out, barge-in, until Ctrl-C.

    python examples/kiosk.py                                  # default devices, local server
    python examples/kiosk.py --mic USB --speaker default --url wss://api.openai.com/v1/realtime
    python examples/kiosk.py --mic wav:rtedge/data/demo_phrase.wav --speaker wav:answer.wav --seconds 10
                                                              # files as devices
"""

from __future__ import annotations

import argparse
import signal

import rtedge
from rtedge import VoiceAgent
from rtedge.audio.devices import open_sink, open_source
from rtedge.testing import RealtimeServer


def main(args: argparse.Namespace) -> None:
    server = None if args.url else RealtimeServer().start()
    try:
        session = rtedge.SessionConfig(instructions="You are a friendly kiosk. Keep answers short.",
                                       # 500 ms of silence ends a turn: a pause at a comma does not
                                       turn_detection=rtedge.ServerVad(silence_duration_ms=500))
        with rtedge.connect("openai", url=args.url or server.url, session=session) as client:
            client.on("response.output_audio_transcript.done", lambda e: print("assistant:", e.transcript))
            client.on("rtedge.reconnecting", lambda e: print(f"reconnecting ({e.cause})..."))
            mic = open_source(args.mic, rate=16000)
            speaker = open_sink(args.speaker, rate=24000)
            agent = VoiceAgent(client, mic, speaker, barge_in="server", echo_guard=args.echo_guard)
            signal.signal(signal.SIGINT, lambda *_: agent.stop())
            agent.run(max_seconds=args.seconds)
            print(f"interruptions: {agent.stats.interruptions}, "
                  f"mic audio not sent: {agent.stats.seconds_not_sent:.1f} s, tokens: {client.usage.total_tokens}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="realtime endpoint (default: a local server)")
    parser.add_argument("--mic", help="microphone spec (device name/index, wav:PATH, raw:-)")
    parser.add_argument("--speaker", help="speaker spec (device name/index, wav:PATH, raw:-, null)")
    parser.add_argument("--echo-guard", default="threshold", choices=("half_duplex", "threshold", "aec", "off"))
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    try:
        main(parser.parse_args())
    except rtedge.RtEdgeError as exc:  # one line, as the rtedge command says it
        raise SystemExit(f"error: {exc}") from None
