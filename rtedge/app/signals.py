"""Signal handlers of the ``rtedge`` commands: one installer for all of them.

Owns: installing and restoring SIGINT/SIGTERM/SIGHUP handlers.  Must not: do anything in a handler but
call the function it was given (Python runs handlers on the main thread, between bytecodes) or, for a
second stop signal, raise KeyboardInterrupt.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping


def on_signals(handlers: Mapping[int, Callable[[], None]]) -> Callable[[], None]:
    """Install ``handlers`` (signal -> function of no arguments); returns a function restoring the old ones.

    A no-op off the main thread (Python delivers signals to the main thread only).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {sig: signal.signal(sig, lambda *_, fn=fn: fn()) for sig, fn in handlers.items()}

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    return restore


def on_stop_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGINT and SIGTERM set ``stop``; a second one, once ``stop`` is set, raises KeyboardInterrupt on the
    main thread (the command ends at once, exit 130: for a stop that waits on a server, or arrives while
    connecting).  Returns a function restoring the old handlers."""
    def request() -> None:
        if stop.is_set():
            raise KeyboardInterrupt("stopped twice")
        stop.set()

    return on_signals({signal.SIGINT: request, signal.SIGTERM: request})
