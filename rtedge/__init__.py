"""rtedge: a synchronous, thread-based realtime voice client for the edge.

Quick start::

    import rtedge

    with rtedge.connect("openai", session=rtedge.SessionConfig(instructions="Be brief.")) as client:
        client.send_text("Hello!")
        done = client.wait_for("response.done", timeout=30)

The public names (``rtedge.__all__``; what the README and ``examples/`` use):

* the client: :func:`connect`, :class:`Client`, :class:`LinkState` (``client.link_state``),
  :class:`Backoff` (the reconnect policy), :class:`RolloverTiming` / :class:`SeedBudget` (when a session
  rolls over to the next, and what it carries), :class:`Usage` (token totals);
* the session config: :class:`SessionConfig`, :class:`AudioFormat`, :class:`ServerVad`,
  :class:`SemanticVad`, :class:`Transcription`, :class:`FunctionTool`, :data:`UNSET` (a field not set);
* voice: :class:`VoiceAgent` (microphone + speaker + barge-in), :class:`WakeAgent` (a session only while
  addressed), :class:`TickSession` / :class:`TickSettings` / :class:`TickResult` (one call per tick),
  :func:`tool` / :class:`Tool` / :class:`ToolRunner` (function calling), :class:`Transcriber` /
  :class:`Utterance` (transcription sessions);
* the errors: :class:`RtEdgeError` and its subclasses.

Subpackages with their own documented names: :mod:`rtedge.audio.devices` (microphones, speakers, WAV and
raw-pipe devices), :mod:`rtedge.audio.wavio`, :mod:`rtedge.audio.codec`, :mod:`rtedge.protocol` (the
sans-IO core), :mod:`rtedge.testing` (a local server for your tests).  Everything else -- modules and
attributes with a leading underscore, the receiver-thread hooks among them -- is internal.

Names are imported lazily so that ``import rtedge.protocol`` stays free of
threads, sockets and numpy.

Owns: the public names (lazily imported) and the install of the old-path finder.  Must not: import a
subpackage at import time (``import rtedge.protocol`` must stay free of threads, sockets and numpy).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import _moved
from ._version import __version__

_moved.install()  # rtedge.agent, rtedge.tick, rtedge.tools...: old import paths, deprecated

_LAZY = {
    "connect": "rtedge.transport.client",
    "Client": "rtedge.transport.client",
    "LinkState": "rtedge.transport._lifecycle",
    "Backoff": "rtedge.transport.backoff",
    "RolloverTiming": "rtedge.protocol.reseed",
    "SeedBudget": "rtedge.protocol.reseed",
    "VoiceAgent": "rtedge.voice.agent",
    "WakeAgent": "rtedge.voice.wake",
    "Transcriber": "rtedge.voice.transcriber",
    "Utterance": "rtedge.voice.transcriber",
    "SessionConfig": "rtedge.protocol.config",
    "AudioFormat": "rtedge.protocol.config",
    "ServerVad": "rtedge.protocol.config",
    "SemanticVad": "rtedge.protocol.config",
    "Transcription": "rtedge.protocol.config",
    "FunctionTool": "rtedge.protocol.config",
    "tool": "rtedge.voice.tools",
    "Tool": "rtedge.voice.tools",
    "ToolRunner": "rtedge.voice.tools",
    "TickSession": "rtedge.voice.tick",
    "TickSettings": "rtedge.voice.tick",
    "TickResult": "rtedge.voice.tick",
    "UNSET": "rtedge.protocol._unset",
    "Usage": "rtedge.protocol.usage",
    "RtEdgeError": "rtedge.errors",
    "ProtocolError": "rtedge.errors",
    "LocalProtocolError": "rtedge.errors",
    "RemoteProtocolError": "rtedge.errors",
    "ServerError": "rtedge.errors",
    "TransportError": "rtedge.errors",
    "HandshakeError": "rtedge.errors",
    "ConnectionClosed": "rtedge.errors",
    "DeadlineExceeded": "rtedge.errors",
    "AudioError": "rtedge.errors",
    "BackpressureError": "rtedge.errors",
    "ConfigError": "rtedge.errors",
}

__all__ = ["__version__", *sorted(_LAZY)]

if TYPE_CHECKING:
    from .errors import (AudioError, BackpressureError, ConfigError, ConnectionClosed, DeadlineExceeded,
                         HandshakeError, LocalProtocolError, ProtocolError, RemoteProtocolError, RtEdgeError,
                         ServerError, TransportError)
    from .protocol._unset import UNSET
    from .protocol.reseed import RolloverTiming, SeedBudget
    from .protocol.config import AudioFormat, FunctionTool, SemanticVad, ServerVad, SessionConfig, Transcription
    from .protocol.usage import Usage
    from .voice.tick import TickResult, TickSession, TickSettings
    from .voice.tools import Tool, ToolRunner, tool
    from .voice.transcriber import Transcriber, Utterance
    from .transport._lifecycle import LinkState
    from .transport.backoff import Backoff
    from .voice.agent import VoiceAgent
    from .voice.wake import WakeAgent
    from .transport.client import Client, connect


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rtedge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
