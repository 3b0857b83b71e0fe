"""Names for threads rtedge runs code on but did not create.

PortAudio calls a device's callback on a thread it made; Python names such a thread ``Dummy-N`` the
first time anything asks (a log record does).  The device registers its callback thread here under the
device's name (``rtedge-mic-callback``) and removes it when the stream closes; a log handler asks
:func:`name_of` for a record's thread.  Nothing is renamed: a foreign thread's ``threading`` object
lives for the rest of the process, so a name on it would outlive the stream.

Owns: the registry of foreign threads' names.  Must not: import anything but the standard library.
"""

from __future__ import annotations

import threading

_names: dict[int, str] = {}  # thread ident -> name; one entry per open stream
_lock = threading.Lock()


def register(ident: int, name: str) -> None:
    """The thread ``ident`` (``threading.get_ident()``) runs ``name``'s callbacks from now on."""
    with _lock:
        _names[ident] = name


def unregister(ident: int | None) -> None:
    """The thread ``ident`` no longer runs rtedge's callbacks (its stream closed)."""
    if ident is not None:
        with _lock:
            _names.pop(ident, None)


def name_of(ident: int | None, default: str) -> str:
    """The registered name of thread ``ident``, else ``default`` (e.g. the record's ``threadName``)."""
    if ident is None:
        return default
    return _names.get(ident, default)
