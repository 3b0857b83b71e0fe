"""Function calling: the model calls a Python function, its result goes back, the model answers.

    python examples/tool_calling.py                                       # against a local server
    python examples/tool_calling.py --url wss://api.openai.com/v1/realtime --api-key-file ~/.openai-key

The handler runs on rtedge's ``rtedge-tools`` thread, never on the network threads, so a slow lookup
does not hold up audio or the keepalive.
"""

from __future__ import annotations

import argparse
from typing import Literal

import rtedge
from rtedge import ToolRunner, tool
from rtedge.app.settings import read_key_file
from rtedge.testing import RealtimeServer


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
    """Current weather for a city.

    Args:
        city: the city name, e.g. "Oslo".
        unit: temperature unit.
    """
    print(f"tool: get_weather(city={city!r}, unit={unit!r})")
    return {"city": city, "temperature": 12 if unit == "celsius" else 54, "unit": unit, "sky": "cloudy"}


def main(args: argparse.Namespace) -> None:
    server = None if args.url else RealtimeServer(reply_text="It is 12 degrees and cloudy in Oslo.",
                                                  tool_arguments='{"city": "Oslo"}').start()
    key = read_key_file(args.api_key_file) if args.api_key_file else None
    try:
        session = rtedge.SessionConfig(instructions="Use the tools you have. Be brief.",
                                       output_modalities=("text",))
        with rtedge.connect("openai", url=args.url or server.url, api_key=key, session=session) as client:
            with ToolRunner(client, [get_weather]) as runner:
                client.send_text(args.question)
                # the first response calls the tool; the runner answers it; the second one speaks
                answer = client.wait_for("response.output_text.done", timeout=30)
                print("assistant:", answer.text)
                client.wait_for("response.done", timeout=30)
                runner.wait_idle(timeout=10)
                for call in runner.history:
                    print(f"answered {call.name} -> {call.output}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="endpoint (default: a local test server)")
    parser.add_argument("--api-key-file", help="file with the API key (default: $OPENAI_API_KEY)")
    parser.add_argument("--question", default="How warm is it in Oslo?")
    try:
        main(parser.parse_args())
    except rtedge.RtEdgeError as exc:  # one line, as the rtedge command says it
        raise SystemExit(f"error: {exc}") from None
