"""Test helpers that are part of the public API: a local realtime server.

``RealtimeServer`` speaks the OpenAI Realtime GA protocol on loopback, with
knobs for scripted replies and faults; ``make_self_signed_cert`` and the SSL
context helpers make ``wss://`` tests easy.  The server works with plain JSON
dicts and never imports the client side of rtedge.

The server needs the ``websockets`` package: ``pip install 'rtedge[server]'``.

Owns: the local servers' public names.  Must not: be imported by the library.
"""

try:
    import websockets  # noqa: F401
except ModuleNotFoundError as exc:  # a plain install, without the extra
    raise ModuleNotFoundError(
        "rtedge.testing (the local realtime server behind 'rtedge demo' and 'rtedge serve') needs the "
        "websockets package: pip install 'rtedge[server]'",
        name="websockets",
    ) from exc

from rtedge.testing._record import AudioRecord
from rtedge.testing._response import Reply, Turn
from rtedge.testing._tls import client_ssl_context, make_self_signed_cert, server_ssl_context
from rtedge.testing.server import RealtimeServer
from rtedge.testing.vllm_server import VLLMServer

__all__ = [
    "AudioRecord",
    "RealtimeServer",
    "Reply",
    "Turn",
    "VLLMServer",
    "client_ssl_context",
    "make_self_signed_cert",
    "server_ssl_context",
]
