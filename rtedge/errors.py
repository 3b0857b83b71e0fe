"""The whole rtedge exception tree, in one module.

::

    RtEdgeError
    ├── ProtocolError                 (abstract)
    │   ├── LocalProtocolError        you asked to send something illegal for the state
    │   └── RemoteProtocolError       the server sent malformed or illegal data
    ├── ServerError                   the server sent an ``error`` event
    ├── TransportError
    │   ├── HandshakeError            the HTTP upgrade failed (status code)
    │   └── ConnectionClosed          the socket is gone (code, reason)
    ├── DeadlineExceeded              also a TimeoutError
    ├── AudioError                    also a ValueError
    └── ConfigError                   also a ValueError

Recoverable server errors (``response_cancel_not_active``,
``conversation_already_has_active_response``) are delivered as events and log
lines, never raised.  Secrets never appear in any message built here.

Owns: every exception class rtedge raises.  Must not: import any other rtedge module.
"""

from __future__ import annotations

from typing import Any


class RtEdgeError(Exception):
    """Root of every exception rtedge raises on purpose."""


class ProtocolError(RtEdgeError):
    """A protocol rule was broken; see the two concrete subclasses."""

    def __new__(cls, *args: Any, **kwargs: Any) -> ProtocolError:
        if cls is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise LocalProtocolError or RemoteProtocolError")
        return super().__new__(cls, *args, **kwargs)


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol or the session state forbids."""


class RemoteProtocolError(ProtocolError):
    """The server sent something we cannot understand (not JSON, not an object, no ``type``).

    Attributes:
        raw: the offending message text, truncated to 200 characters.
    """

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw[:200]


class ServerError(RtEdgeError):
    """The server answered with an ``error`` event that the caller must see.

    Attributes:
        code: the provider's error code (``invalid_value``, ``session_expired``...) or None.
        message: the human-readable message from the server.
        event_id: the ``event_id`` of the client event that failed, when the server gave it.
        type: the error type (``invalid_request_error``, ``server_error``...) or None.
        param: the offending parameter path, when given.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        event_id: str | None = None,
        type: str | None = None,
        param: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.event_id = event_id
        self.type = type
        self.param = param
        detail = f" (code={code})" if code else ""
        where = f" [param {param}]" if param else ""
        super().__init__(f"server error{detail}: {message}{where}")


class TransportError(RtEdgeError):
    """The network connection failed."""


class HandshakeError(TransportError):
    """The WebSocket upgrade was refused.

    Attributes:
        status_code: the HTTP status (401, 403, 429, 500...) or None when no response came.
        retry_after: seconds from a ``Retry-After`` header, or None.
    """

    def __init__(self, message: str, status_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


def key_hint(sent: bool) -> str:
    """What to do about an HTTP 401/403 (a :class:`HandshakeError`'s message), by whether a key was sent."""
    if sent:
        return "the API key was refused: check it, and that it is for this provider"
    return ("no API key was given: pass api_key=, or set the provider's key variable such as OPENAI_API_KEY "
            "(rtedge run: provider.api_key_file; rtedge transcribe: --api-key-file)")


class ConnectionClosed(TransportError):
    """The connection is closed (by us, by the server, or by the network).

    Attributes:
        code: the WebSocket close code, or None when the socket broke without one.
        reason: the close reason text (may be empty).
    """

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class DeadlineExceeded(RtEdgeError, TimeoutError):
    """An operation did not finish within its timeout."""


class BackpressureError(DeadlineExceeded):
    """``append_audio`` could not queue all of its audio within its timeout (the link is slower than the
    producer, stalled, or down).  What was queued is sent; the rest was not taken.

    Attributes:
        queued_bytes: wire bytes of this call that were queued (they will be sent).
        not_queued_bytes: wire bytes of this call that were not queued.
        not_queued_ms: the same, in milliseconds of audio.
    """

    def __init__(self, message: str, queued_bytes: int, not_queued_bytes: int, not_queued_ms: float) -> None:
        super().__init__(message)
        self.queued_bytes = queued_bytes
        self.not_queued_bytes = not_queued_bytes
        self.not_queued_ms = not_queued_ms


class AudioError(RtEdgeError, ValueError):
    """Audio input had the wrong type, shape, rate or length, or a device failed."""


class ConfigError(RtEdgeError, ValueError):
    """A configuration value is invalid or not supported by the chosen provider/model."""


__all__ = [
    "AudioError",
    "BackpressureError",
    "ConfigError",
    "ConnectionClosed",
    "DeadlineExceeded",
    "HandshakeError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "RtEdgeError",
    "ServerError",
    "TransportError",
]
