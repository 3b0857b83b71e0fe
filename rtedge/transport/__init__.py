"""The threaded transport: the only layer with sockets and threads."""

from __future__ import annotations

from .client import Client, connect

__all__ = ["Client", "connect"]
