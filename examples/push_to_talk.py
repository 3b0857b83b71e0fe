"""Push-to-talk without server VAD: append a recording, commit, ask for the answer, save it.

    python examples/push_to_talk.py rtedge/data/demo_phrase.wav answer.wav   # against a local server
    python examples/push_to_talk.py question.wav answer.wav --url wss://api.openai.com/v1/realtime
"""

from __future__ import annotations

import argparse

import rtedge
from rtedge.audio.convert import decode_pcm
from rtedge.audio.wavio import WavWriter, read_wav
from rtedge.testing import RealtimeServer


def main(question: str, answer: str, url: str | None) -> None:
    samples, rate = read_wav(question)
    server = None if url else RealtimeServer(realtime=False).start()
    try:
        session = rtedge.SessionConfig(turn_detection=None)  # sent as "turn_detection": null
        with rtedge.connect("openai", url=url or server.url, session=session) as client:
            fmt = client.state.output_format
            out = WavWriter(answer, fmt.rate)  # before the turn: a path that cannot be written costs nothing
            for i in range(0, len(samples), rate // 50):  # 20 ms frames, resampled to 24 kHz inside
                client.append_audio(samples[i:i + rate // 50], rate=rate)
                client.wait_sent(max_queued_ms=500, timeout=10)
            client.commit()
            client.create_response()
            for event in client.events(timeout=60):  # plain synchronous: read events in this thread
                if event.type == "response.output_audio.delta":
                    out.write(decode_pcm(event.audio, fmt))
                elif event.type == "response.output_audio_transcript.done":
                    print("assistant:", event.transcript)
                elif event.type == "response.done":
                    print(f"[{event.status}] {out.frames / out.rate:.1f} s of audio in {answer}; "
                          f"tokens {client.usage.total_tokens}")
                    break
            out.close()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question")
    parser.add_argument("answer")
    parser.add_argument("--url", help="realtime endpoint (default: a local server)")
    args = parser.parse_args()
    try:
        main(args.question, args.answer, args.url)
    except rtedge.RtEdgeError as exc:  # one line, as the rtedge command says it
        raise SystemExit(f"error: {exc}") from None
