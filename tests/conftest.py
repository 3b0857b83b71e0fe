"""Shared fixtures: fixture paths, and a guard that no rtedge client thread outlives its test."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SPEECH = SHARED / "fixtures" / "speech"
RECORDED = SHARED / "fixtures" / "recorded"

CLIENT_THREADS = ("rtedge-sender", "rtedge-receiver", "rtedge-dispatch")


def client_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in CLIENT_THREADS]


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        threading.Event().wait(interval)


@pytest.fixture
def no_thread_leak():
    """Fail the test if rtedge client threads are still alive shortly after it ends."""
    before = set(client_threads())
    yield
    assert wait_until(lambda: set(client_threads()) <= before, timeout=5.0), client_threads()


@pytest.fixture
def speech_dir() -> Path:
    if not SPEECH.is_dir():
        pytest.skip("../shared/fixtures/speech is not present")
    return SPEECH
