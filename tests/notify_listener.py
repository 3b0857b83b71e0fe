"""A test helper: the systemd side of sd_notify (``NOTIFY_SOCKET``), shared by the service tests and the
wake-word run's tests."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path


class NotifyListener:
    """The systemd side of sd_notify: a bound AF_UNIX datagram socket and the messages it received."""

    def __init__(self, tmp_path: Path, abstract: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"rtedge-test-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            path = str(tmp_path / "notify.sock")
            self.sock.bind(path)
            self.env_value = path
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="test-notify-listener", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.cond:
                self.messages.append((time.monotonic(), data.decode()))
                self.cond.notify_all()

    def wait_for(self, field: str, timeout: float = 15.0, after: float = 0.0) -> float:
        """Wait for a datagram with the line ``field`` (or starting with it, for ``STATUS=...``) received
        after monotonic time ``after``; returns when it arrived."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, text in self.messages:
                    lines = text.split("\n")
                    if t >= after and any(line == field or line.startswith(field) for line in lines):
                        return t
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no {field!r} within {timeout} s; got {self.texts()}"
                self.cond.wait(remaining)

    def texts(self) -> list[str]:
        with self.cond:
            return [text for _, text in self.messages]

    def times(self, field: str) -> list[float]:
        with self.cond:
            return [t for t, text in self.messages if field in text.split("\n")]

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self.sock.close()
