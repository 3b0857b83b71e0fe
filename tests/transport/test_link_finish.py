"""close() on a dialect that ends sessions its own way walks open -> finishing (DashScope session.finish)."""

from __future__ import annotations

import logging
import time

import rtedge
from rtedge.testing import RealtimeServer
from rtedge.transport._lifecycle import LinkState

from ..faults.test_link_states import _walk


def test_finish_walks_finishing(caplog):
    """DashScope: close() ends the session the dialect's way first (open -> finishing -> closing)."""
    caplog.set_level(logging.DEBUG, logger="rtedge")
    with RealtimeServer(dialect="qwen") as srv:
        client = rtedge.connect("qwen", url=srv.url)
        t0 = time.monotonic()
        client.close(timeout=3.0)
        assert time.monotonic() - t0 < 4.0
    walked = _walk(caplog)
    assert ("open", "finish", "finishing") in walked
    assert ("finishing", "close", "closing") in walked or ("finishing", "ended", "closed") in walked
    assert client.link_state is LinkState.CLOSED
