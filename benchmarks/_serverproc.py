"""A local server in a child process, so its event loop does not share the benchmark's interpreter (GIL).

The child is this same benchmark script run with ``--serve``: it prints the server's URL, serves until its
stdin closes, then prints one JSON line of totals and exits.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


class ServerProcess:
    def __init__(self, script: str) -> None:
        self.proc = subprocess.Popen([sys.executable, script, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("ws://"):
            raise RuntimeError(f"server did not start: {self.url!r}")

    def finish(self) -> Any:
        """Tell the server to stop; the JSON totals it printed."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        line = self.proc.stdout.readline()
        self.proc.wait(30)
        return json.loads(line)
