"""The options of :func:`rtedge.connect`: their defaults and their checks.

Owns: :data:`DEFAULTS` and :func:`connect_options`.  Must not: open anything (it only validates values; a
``ca_certs`` path is checked to name a file).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import ConfigError
from ..protocol.config import SessionConfig
from ..protocol.reseed import RolloverTiming, SeedBudget
from ._workers import SEND_BATCH_MS
from .backoff import Backoff

#: every option :func:`rtedge.connect` takes, with its default
DEFAULTS: dict[str, Any] = {
    "connect_timeout": 10.0,
    "ping_interval": 20.0,
    "ping_timeout": 10.0,
    "max_audio_queue_ms": 2000.0,
    "send_batch_ms": SEND_BATCH_MS,
    "inbox_size": 10000,
    "inbox_bytes": 2 * 1024 * 1024,
    "inbox_audio": False,
    "dispatch_bytes": 8 * 1024 * 1024,
    "ssl_context": None,
    "ca_certs": None,
    "on_error": None,
    "headers": None,
    "reconnect": Backoff(),
    "max_session_seconds": None,
    "session_limit_s": "auto",
    "rollover_timing": RolloverTiming(),
    "seed_budget": SeedBudget(),
    "finish_timeout": 2.0,
    "keepalive_audio_s": None,
}


def connect_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` over :data:`DEFAULTS`, checked.

    Raises:
        ConfigError: an unknown option or a value of the wrong kind.
    """
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown connect option(s) {unknown}; known: {sorted(DEFAULTS)}")
    opts = {**DEFAULTS, **options}
    if opts["ssl_context"] is not None and not isinstance(opts["ssl_context"], ssl.SSLContext):
        raise ConfigError("ssl_context must be an ssl.SSLContext")
    ca_certs = opts["ca_certs"]
    if ca_certs is not None and not (isinstance(ca_certs, str | os.PathLike) and os.path.isfile(ca_certs)):
        raise ConfigError(f"ca_certs must name a PEM file of the CAs to trust, got {ca_certs!r}"
                          + (" (no such file)" if isinstance(ca_certs, str | os.PathLike) else ""))
    _check_numbers(opts)
    if opts["headers"] is not None and not isinstance(opts["headers"], Mapping):
        raise ConfigError(f"headers must be a dict of str to str or None, got {type(opts['headers']).__name__}")
    if opts["reconnect"] is not None and not isinstance(opts["reconnect"], Backoff):
        raise ConfigError(f"reconnect must be a rtedge.Backoff or None, got {opts['reconnect']!r}")
    if opts["on_error"] is not None and not callable(opts["on_error"]):
        raise ConfigError(f"on_error must be a function fn(exc, event) or None, got {opts['on_error']!r}")
    keepalive = opts["keepalive_audio_s"]
    if keepalive is not None and (isinstance(keepalive, bool) or not isinstance(keepalive, int | float)
                                  or not keepalive > 0):
        raise ConfigError(f"keepalive_audio_s must be a number of seconds > 0 or None, got {keepalive!r}")
    _check_rollover_options(opts)
    return opts


def check_session(session: object, on: object) -> dict[str, list[Callable[[Any], Any]]]:
    """``connect()``'s ``session`` and ``on`` arguments, checked before anything opens; returns ``on`` as
    lists of callbacks by event type (an iterable of them, a generator too, is read once, here).

    Raises:
        TypeError: ``session`` is not a SessionConfig (a dict, say), or ``on`` is not a mapping of event
            types to callbacks (or iterables of them).
    """
    if session is not None and not isinstance(session, SessionConfig):
        raise TypeError(f"session must be a rtedge.SessionConfig (SessionConfig(instructions=...), or "
                        f"SessionConfig.from_kwargs(**fields)), got {type(session).__name__}")
    if on is None:
        return {}
    if not isinstance(on, Mapping):
        raise TypeError(f"on must map event types to callbacks, got {type(on).__name__}")
    out: dict[str, list[Callable[[Any], Any]]] = {}
    for event_type, fns in on.items():
        many = not callable(fns) and isinstance(fns, Iterable) and not isinstance(fns, str | bytes)
        out[event_type] = list(fns) if many else [fns]
        for fn in out[event_type]:
            if not callable(fn):
                raise TypeError(f"on[{event_type!r}]: a callback must be callable as fn(event), got {fn!r}")
    return out


#: a header name: an RFC 9110 token
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def checked_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` (the dialect's, the API key's included, and the ``headers`` option), checked.

    Raises:
        ConfigError: a name that is not a token, or a value that is not a string or holds a control
            character: a line break would end the header there and start another (an API key read from
            a file with its newline, or a header smuggled in).  The message never shows the value.
    """
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not set(name) <= _TOKEN:
            raise ConfigError(f"header name {name!r} is not a valid HTTP header name")
        if not isinstance(value, str):
            raise ConfigError(f"header {name!r} must be a str, got {type(value).__name__}")
        if any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in value):
            what = "a line break" if "\n" in value or "\r" in value else "a control character"
            hint = " (an API key read from a file with its newline? strip it)" \
                if name.lower() in ("authorization", "api-key", "x-api-key") else ""
            raise ConfigError(f"header {name!r} holds {what}{hint}")
    return headers


#: the largest ``send_batch_ms``: a batch of audio frames waits no longer than this to be sent
MAX_SEND_BATCH_MS = 1000.0
#: the numeric options: (smallest value, whether the smallest itself is allowed, what 0 means if allowed)
_NUMBERS: dict[str, tuple[float, bool, str]] = {
    "connect_timeout": (0, False, "s"),
    "ping_interval": (0, True, "s; 0 turns the keepalive off"),
    "ping_timeout": (0, False, "s"),
    "max_audio_queue_ms": (0, False, "ms"),
    "send_batch_ms": (0, True, "ms; 0 sends each append at once"),
    "inbox_size": (1, True, "events"),
    "inbox_bytes": (1, True, "bytes"),
    "dispatch_bytes": (65536, True, "bytes"),
    "finish_timeout": (0, True, "s"),
    "max_session_seconds": (0, True, "s; 0 or None: never"),
}


def checked_timeout(timeout: float | None, name: str = "timeout") -> float | None:
    """``timeout`` (seconds; None: no limit) as given.

    Raises:
        ValueError: negative or NaN (a NaN deadline never passes: the wait would hang for ever).
        TypeError: not a number."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{name} must be a number of seconds or None, got {type(timeout).__name__}")
    if not timeout >= 0:
        raise ValueError(f"{name} must be >= 0 seconds or None, got {timeout!r}")
    return timeout


def check_append(overflow: str, timeout: float | None) -> None:
    """``append_audio``'s ``overflow`` and ``timeout`` (ConfigError: an unknown overflow policy; as
    :func:`checked_timeout`)."""
    if overflow not in ("block", "drop_oldest"):
        raise ConfigError(f"overflow must be 'block' or 'drop_oldest', got {overflow!r}")
    checked_timeout(timeout)


def as_bytes(data: Any, what: str) -> bytes:
    """``data`` (bytes, bytearray or memoryview) as bytes, for ``what`` (``"append_encoded"``...).

    Raises:
        TypeError: anything else, a str or a numpy array included (samples go to ``append_audio``)."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    hint = " (samples go to append_audio)" if hasattr(data, "dtype") else ""
    raise TypeError(f"{what} takes bytes, got {type(data).__name__}{hint}")


def _check_numbers(opts: dict[str, Any]) -> None:
    """Each numeric option is a number in its range (a string or a negative timeout otherwise fails later,
    on a worker thread or deep in the socket layer, with a message that does not name the option)."""
    for name, (lo, inclusive, unit) in _NUMBERS.items():
        value = opts[name]
        if value is None and name == "max_session_seconds":
            continue
        integral = name in ("inbox_size", "inbox_bytes", "dispatch_bytes")
        kind = int if integral else int | float
        if (isinstance(value, bool) or not isinstance(value, kind) or value != value
                or not (value >= lo if inclusive else value > lo) or value == float("inf")):
            what = "an integer" if integral else "a finite number" if value == float("inf") else "a number"
            bound = f">= {lo:g}" if inclusive else f"> {lo:g}"
            raise ConfigError(f"{name} must be {what} {bound} ({unit}), got {value!r}")
    if opts["send_batch_ms"] > MAX_SEND_BATCH_MS:  # audio would reach the server that much late
        raise ConfigError(f"send_batch_ms must be <= {MAX_SEND_BATCH_MS:g} ms (a frame waits up to that long "
                          f"to be sent), got {opts['send_batch_ms']!r}")


def _check_rollover_options(opts: dict[str, Any]) -> None:
    limit = opts["session_limit_s"]
    if limit not in ("auto", None) and (isinstance(limit, bool) or not isinstance(limit, int | float)
                                        or not limit > 0):
        raise ConfigError(f"session_limit_s must be 'auto', a number of seconds > 0 or None, got {limit!r}")
    if not isinstance(opts["rollover_timing"], RolloverTiming):
        raise ConfigError("rollover_timing must be a rtedge.protocol.reseed.RolloverTiming")
    if not isinstance(opts["seed_budget"], SeedBudget):
        raise ConfigError("seed_budget must be a rtedge.protocol.reseed.SeedBudget")
