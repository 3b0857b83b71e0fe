"""Exit codes of the ``rtedge`` command, and which error maps to which.

======  ==========================================================================  =====================
code    meaning                                                                     systemd restarts it?
======  ==========================================================================  =====================
0       clean end (SIGTERM/SIGINT, ``max_seconds``, the input file ended)           no
1       unexpected failure (a bug: please report it)                                yes
2       configuration error (config file, flag, variable, input file,               no
        a session config the server rejected, HTTP 400/404 at the
        handshake: a wrong URL, path or header)
3       authentication refused or fatal provider error (HTTP 401/403,               no
        ``invalid_api_key``, ``insufficient_quota``)
4       could not connect, lost the connection with                                 yes
        ``reconnect.enabled = false``, the server ended the session (a
        clean close, not reconnected), or the server failed (an ``error``
        of type ``server_error``, or a code in ``SERVER_FAULT_CODES``)
5       timed out (no complete answer within ``--max-seconds``)                     yes
6       gave up reconnecting (``reconnect.max_attempts`` failed in a row)           yes
7       audio device failure (missing, busy, or gave up reopening)                  yes
8       a turn failed (``response.done`` with status ``failed``) in a run           yes
        that ends with its input (``--input``, ``--fast``, ``wav:``/``raw:``);
        ``transcribe``: the server could not transcribe an utterance
9       ``rtedge doctor`` found problems to fix (each printed as ``FAIL``)          n/a
======  ==========================================================================  =====================

The unit file's ``RestartPreventExitStatus=2 3`` follows this table.

Owns: the exit codes, the error -> code map, and the one-line error report (:func:`fail`).  Must not: import
the commands.
"""

from __future__ import annotations

import sys

from ..errors import (
    AudioError,
    ConfigError,
    ConnectionClosed,
    DeadlineExceeded,
    HandshakeError,
    ServerError,
    TransportError,
)

EXIT_OK, EXIT_FAIL, EXIT_CONFIG, EXIT_AUTH, EXIT_CONNECT, EXIT_TIMEOUT = 0, 1, 2, 3, 4, 5
EXIT_GAVE_UP, EXIT_AUDIO, EXIT_TURN_FAILED, EXIT_DOCTOR = 6, 7, 8, 9

#: handshake statuses that mean "this URL, path or header is wrong": no restart will fix them (the
#: reconnect loop does not retry them either, see :data:`rtedge.transport.backoff.FATAL_HTTP_STATUSES`)
CONFIG_HTTP_STATUSES = frozenset({400, 404})

#: server error codes that mean "your credentials or account", not "your config"
AUTH_ERROR_CODES = frozenset({"invalid_api_key", "insufficient_quota"})

#: server error codes that mean "the server failed, or is busy": trying again later may work (exit 4), where
#: other server errors answer what was asked (exit 2).  vLLM reports a failed model run as processing_error.
SERVER_FAULT_CODES = frozenset({"server_error", "internal_error", "processing_error", "rate_limit_exceeded"})


class GaveUpError(ConnectionClosed):
    """Reconnecting (or retrying the first connection) stopped after ``reconnect.max_attempts``."""


class DeviceFailure(AudioError):
    """An audio device could not be opened or failed for good (not a bad file name: exit 7)."""


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error (see the module docstring)."""
    if isinstance(exc, HandshakeError) and exc.status_code in (401, 403):
        return EXIT_AUTH
    if isinstance(exc, ServerError) and exc.code in AUTH_ERROR_CODES:
        return EXIT_AUTH
    if isinstance(exc, HandshakeError) and exc.status_code in CONFIG_HTTP_STATUSES:
        return EXIT_CONFIG
    if isinstance(exc, GaveUpError):
        return EXIT_GAVE_UP
    if isinstance(exc, DeviceFailure):
        return EXIT_AUDIO
    if isinstance(exc, ServerError) and (exc.type == "server_error" or exc.code in SERVER_FAULT_CODES):
        return EXIT_CONNECT
    if isinstance(exc, ConfigError | AudioError | ServerError):
        return EXIT_CONFIG
    if isinstance(exc, DeadlineExceeded):
        return EXIT_TIMEOUT
    if isinstance(exc, TransportError):
        return EXIT_CONNECT
    return EXIT_FAIL


def fail(exc: BaseException, code: int | None = None) -> int:
    """Print the error (one ``rtedge: error:`` line per line of its message) and return its exit code."""
    if code is None:
        code = exit_code_for(exc)
    for line in str(exc).splitlines() or [type(exc).__name__]:
        print(f"rtedge: error: {line}", file=sys.stderr)
    return code
