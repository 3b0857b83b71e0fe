"""Signal handlers of the ``rtedge`` commands: one installer for all of them.

Inside :func:`stop_interrupts` (a wait with nothing to finish gracefully, such as connecting), a stop
signal also raises :class:`StopInterrupt` on the main thread after its handler ran, so the wait ends early
instead of running out its timeout.

Owns: installing and restoring SIGINT/SIGTERM/SIGHUP handlers.  Must not: do anything in a handler but
call the function it was given (Python runs handlers on the main thread, between bytecodes) or raise
KeyboardInterrupt (for a second stop signal; :class:`StopInterrupt` inside :func:`stop_interrupts`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Mapping

#: the stop signals (the others, such as SIGHUP, never interrupt)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_armed = [False]  # inside a stop_interrupts() block that has not raised yet; main thread only


class StopInterrupt(KeyboardInterrupt):
    """A stop signal arrived inside :func:`stop_interrupts`; its handler has run (the stop is recorded)."""


@contextlib.contextmanager
def stop_interrupts() -> Iterator[None]:
    """Within the block, the first stop signal (SIGINT, SIGTERM) raises :class:`StopInterrupt` on the main
    thread once its handler has run (later ones only run their handler, so that the clean-up the exception
    sets off is not interrupted in turn).  Meant for one call such as :func:`rtedge.connect`, which on a
    KeyboardInterrupt aborts the attempt in progress and joins its thread (within about 50 ms, except in a
    name lookup or an attempt through a proxy: see :mod:`rtedge.transport._dial`).  The
    exception can land anywhere in the block: keep the block to the one call.
    A no-op off the main thread (signals are delivered to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outer, _armed[0] = _armed[0], True
    try:
        yield
    finally:
        _armed[0] = outer


def on_signals(handlers: Mapping[int, Callable[[], None]]) -> Callable[[], None]:
    """Install ``handlers`` (signal -> function of no arguments); returns a function restoring the old ones.

    A no-op off the main thread (Python delivers signals to the main thread only).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {sig: signal.signal(sig, lambda *_, fn=fn, sig=sig: _run(sig, fn)) for sig, fn in handlers.items()}

    def restore() -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    return restore


def _run(sig: int, fn: Callable[[], None]) -> None:
    fn()
    if _armed[0] and sig in STOP_SIGNALS:
        _armed[0] = False
        raise StopInterrupt(signal.Signals(sig).name)


def on_stop_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGINT and SIGTERM set ``stop``; a second one, once ``stop`` is set, raises KeyboardInterrupt on the
    main thread (the command ends at once, exit 130: for a stop that waits on a server, or arrives while
    connecting).  Returns a function restoring the old handlers."""
    def request() -> None:
        if stop.is_set():
            raise KeyboardInterrupt("stopped twice")
        stop.set()

    return on_signals({signal.SIGINT: request, signal.SIGTERM: request})
