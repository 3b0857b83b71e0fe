"""Live checks against real providers: opt-in with RTEDGE_LIVE=1 and the provider's key; skipped otherwise.

    RTEDGE_LIVE=1 OPENAI_API_KEY=... .venv/bin/python -m pytest tests/live -q
"""

from __future__ import annotations

import os

import pytest

import rtedge

LIVE = os.environ.get("RTEDGE_LIVE") == "1"


def _need(env: str) -> None:
    if not LIVE:
        pytest.skip("live tests are opt-in: set RTEDGE_LIVE=1")
    if not os.environ.get(env):
        pytest.skip(f"{env} is not set")


def test_openai_text_turn_and_null_turn_detection():
    _need("OPENAI_API_KEY")
    session = rtedge.SessionConfig(turn_detection=None, output_modalities=("text",), instructions="Answer in one word.")
    with rtedge.connect("openai", session=session, connect_timeout=20) as client:
        assert client.session["audio"]["input"]["turn_detection"] is None  # the server confirmed the null
        client.send_text("Say hello.")
        done = client.wait_for("response.done", timeout=60)
        assert done.status == "completed"
        assert client.usage.total_tokens > 0
        assert client.cancel_response() is False  # nothing active: nothing sent


def test_qwen_session_ends_gracefully():
    _need("DASHSCOPE_API_KEY")
    model = os.environ.get("RTEDGE_LIVE_QWEN_MODEL", "qwen3-omni-flash-realtime")
    with rtedge.connect("qwen", model=model, connect_timeout=20) as client:
        client.send_text("Say hello.")
        assert client.wait_for("response.done", timeout=60).status == "completed"
    assert client.closed
