"""The local server in its own process, for the soak test: the client's memory is then measured alone.

Prints its port, then obeys one command per stdin line: ``drop`` (abort every connection, as a
network failure does) or ``clear`` (forget the records); it stops at end of input.
"""

from __future__ import annotations

import sys

from rtedge.testing import RealtimeServer


def main() -> None:
    server = RealtimeServer(realtime=False, keep_audio=False, seed=7).start()
    print(server.port, flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "drop":
                print(server.drop_connections(), flush=True)
            elif command == "clear":
                server.clear_records()
                print("ok", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
