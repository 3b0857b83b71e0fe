"""rtedge's sans-IO protocol core.

This package performs no I/O and imports no socket, threading, time, logging
or numpy module (a test checks ``sys.modules``).  It turns events into wire
text and wire text into events, and keeps the session's state.

Owns: the sans-IO core's public names.  Must not: import sockets, threads, clocks, logging or numpy.
"""

from __future__ import annotations

from . import events, items
from ._state import ConnectionState, FunctionCall, InputBufferState, OutputItem, ResponseState, SessionState
from ._unset import UNSET, Unset, is_set
from .config import AudioFormat, FunctionTool, SemanticVad, ServerVad, SessionConfig, Transcription
from .dialects import Dialect, get_dialect
from .events import ClientEvent, ServerEvent
from .session import Session
from .usage import Usage
from .wire import from_wire, to_wire

__all__ = [
    "UNSET",
    "AudioFormat",
    "ClientEvent",
    "ConnectionState",
    "Dialect",
    "FunctionCall",
    "FunctionTool",
    "InputBufferState",
    "OutputItem",
    "ResponseState",
    "SemanticVad",
    "ServerEvent",
    "ServerVad",
    "Session",
    "SessionConfig",
    "SessionState",
    "Transcription",
    "Unset",
    "Usage",
    "events",
    "from_wire",
    "get_dialect",
    "is_set",
    "items",
    "to_wire",
]
