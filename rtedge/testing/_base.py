"""What every local test server shares: lifecycle sugar and the records that tests wait on.

A subclass provides ``start()``/``stop()`` and fills the fields below; every
record list is guarded by the ``_records`` condition, which is notified on each
append, so :meth:`RecordingServer.wait_for_received` blocks instead of polling.

``RTEDGE_TEST_TIME_SCALE`` (a number, default 1) multiplies every wait's timeout: for slow machines
such as an ARM root under qemu-user emulation, 5-20 times slower than the hardware.  It lengthens only
how long a wait may take before it fails, never what it waits for.

Owns: what every test server shares.  Must not: speak a dialect.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

S = TypeVar("S", bound="RecordingServer")


def time_scale() -> float:
    """``RTEDGE_TEST_TIME_SCALE`` (>= 1), the factor on every test wait's timeout; 1 when unset."""
    raw = os.environ.get("RTEDGE_TEST_TIME_SCALE", "1")
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"RTEDGE_TEST_TIME_SCALE must be a number >= 1, not {raw!r}") from None
    if not scale >= 1:
        raise ValueError(f"RTEDGE_TEST_TIME_SCALE must be a number >= 1, not {raw!r}")
    return scale


class RecordingServer:
    """Base of :class:`RealtimeServer` and :class:`VLLMServer`."""

    _records: threading.Condition  # guards the three record lists
    _received: list[dict[str, Any]]
    _sent: list[dict[str, Any]]
    _handshakes: list[dict[str, Any]]
    _conns: list[Any]  # accepted connections, guarded by ``_records``
    _stopped: threading.Event
    _port: int
    _bound_port: int

    def start(self: S) -> S:
        raise NotImplementedError

    def stop(self, timeout: float = 5.0) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        raise NotImplementedError

    def serve_forever(self) -> None:
        """Start if needed and block until :meth:`stop` is called (or Ctrl-C)."""
        self.start()
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self: S) -> S:
        return self.start()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped.is_set() else "serving" if self._bound_port else "not started"
        dialect = getattr(self, "dialect", None)
        named = f" {dialect}" if dialect is not None else ""
        return f"<{type(self).__name__}{named} {self.url} {state}>"

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`; kept after :meth:`stop`)."""
        return self._bound_port or self._port

    @property
    def connection_count(self) -> int:
        """WebSocket connections accepted so far (refused handshakes not included)."""
        with self._records:
            return len(self._conns)

    @property
    def received(self) -> list[dict[str, Any]]:
        """Every client event received (parsed JSON), in order, across connections."""
        with self._records:
            return list(self._received)

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Every server event sent, in order, across connections."""
        with self._records:
            return list(self._sent)

    @property
    def handshakes(self) -> list[dict[str, Any]]:
        """Every handshake attempt: ``{"path": ..., "headers": {lower-case name: value}}``."""
        with self._records:
            return list(self._handshakes)

    def _wait(self, records: list[dict[str, Any]], kind: str, timeout: float,
              where: Callable[[dict[str, Any]], bool] | None, nth: int, what: str) -> dict[str, Any]:
        scale = time_scale()
        deadline = time.monotonic() + timeout * scale
        scanned, matches = 0, 0
        with self._records:
            while True:
                for event in records[scanned:]:
                    if event.get("type") == kind and (where is None or where(event)):
                        matches += 1
                        if matches == nth:
                            return event
                scanned = len(records)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = sorted({str(e.get("type")) for e in records})
                    within = f"{timeout * scale:g} s" + (f" ({timeout:g} s x RTEDGE_TEST_TIME_SCALE {scale:g})"
                                                         if scale != 1 else "")
                    raise TimeoutError(f"no {what} {kind!r} (#{nth}) within {within}; types seen: {seen}")
                self._records.wait(remaining)

    def wait_for_received(self, kind: str, timeout: float = 5.0, *,
                          where: Callable[[dict[str, Any]], bool] | None = None, nth: int = 1) -> dict[str, Any]:
        """Wait until the ``nth`` client event of type ``kind`` (matching ``where``) has arrived.

        Args:
            kind: Client event type, e.g. ``"response.create"``.
            timeout: Seconds to wait.
            where: Optional predicate on the event.
            nth: Which match to return (1 = the first ever recorded).

        Returns:
            The event dict.

        Raises:
            TimeoutError: It did not arrive in time.
        """
        return self._wait(self._received, kind, timeout, where, nth, "client event")

    def wait_for_sent(self, kind: str, timeout: float = 5.0, *,
                      where: Callable[[dict[str, Any]], bool] | None = None, nth: int = 1) -> dict[str, Any]:
        """Like :meth:`wait_for_received`, for events the server has sent."""
        return self._wait(self._sent, kind, timeout, where, nth, "server event")
