"""A text turn in a plain synchronous script.

    python examples/text_turn.py                      # against a local server started here
    python examples/text_turn.py --url wss://api.openai.com/v1/realtime   # OPENAI_API_KEY from the environment
"""

from __future__ import annotations

import argparse
import queue

import rtedge
from rtedge.testing import RealtimeServer


def main(url: str | None) -> None:
    server = None if url else RealtimeServer(realtime=False, reply_text="Hello! How can I help?").start()
    try:
        session = rtedge.SessionConfig(instructions="Be brief.", output_modalities=("text",))
        with rtedge.connect("openai", url=url or server.url, session=session) as client:
            client.on("response.output_text.delta", lambda e: print(e.delta, end="", flush=True))
            # callbacks run in order on rtedge-dispatch: this one comes after every delta was printed
            # (client.wait_for() reads the inbox instead, and may return while they are still printing)
            finished: queue.Queue = queue.Queue()
            client.on("response.done", finished.put)
            client.send_text("Hi there!")
            done = finished.get(timeout=30)
            print(f"\n[{done.status}] tokens: {client.usage.total_tokens}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="realtime endpoint (default: a local server)")
    try:
        main(parser.parse_args().url)
    except rtedge.RtEdgeError as exc:  # one line, as the rtedge command says it
        raise SystemExit(f"error: {exc}") from None
