"""Shared fixtures: fixture paths, and a guard that no rtedge client thread outlives its test."""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rtedge.testing._base import time_scale

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SPEECH = SHARED / "fixtures" / "speech"
RECORDED = SHARED / "fixtures" / "recorded"

CLIENT_THREADS = ("rtedge-sender", "rtedge-receiver", "rtedge-dispatch", "rtedge-rollover",
                  "rtedge-receiver-draining")


def client_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in CLIENT_THREADS]


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` (times ``RTEDGE_TEST_TIME_SCALE``) passes;
    returns its last value."""
    deadline = time.monotonic() + timeout * time_scale()
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        threading.Event().wait(interval)


# ------------------------------------------------------------------------------------ the sole socket writer


class SocketAudit:
    """Records the thread of every write to and close of an rtedge socket (``RtWebSocket``): the HTTP
    upgrade (``connect``), every frame (``_send``: text, ping, pong, close) and the release
    (``shutdown``).  ``abort`` (shutdown(2), which only wakes a thread blocked on the socket) and
    reads (``read_bytes``) are recorded apart.  Installed for the whole session; every test checks its own
    records.

    The rule: every frame is written by ``rtedge-sender``.  The one other writer is ``rtedge-rollover``,
    which upgrades a rollover's next connection itself (so that the sender keeps sending meanwhile), and
    may release a socket that no frame ever went on (a failed upgrade, or one never handed over)."""

    WRITER = "rtedge-sender"
    UPGRADER = "rtedge-rollover"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, str], int] = {}
        self.violations: list[tuple[str, str]] = []
        self.framed: weakref.WeakSet[Any] = weakref.WeakSet()  # sockets at least one frame went on

    def record(self, op: str, sock: Any = None) -> None:
        name = threading.current_thread().name
        with self.lock:
            self.counts[(op, name)] = self.counts.get((op, name), 0) + 1
            if op == "write":
                self.framed.add(sock)
            allowed = op in ("abort", "read") or name == self.WRITER or (
                name == self.UPGRADER and (op == "upgrade" or (op == "close" and sock not in self.framed)))
            if not allowed:
                import traceback
                self.violations.append((f"{op} on {name}", "".join(traceback.format_stack(limit=12))))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from rtedge.transport._ws import RtWebSocket

        for op, method in (("upgrade", "connect"), ("write", "_send"), ("close", "shutdown"), ("abort", "abort"),
                           ("read", "read_bytes")):
            original = getattr(RtWebSocket, method)

            def wrapper(self, *args, _op=op, _original=original, **kwargs):
                audit.record(_op, self)
                return _original(self, *args, **kwargs)
            monkeypatch.setattr(RtWebSocket, method, wrapper)

    def total(self, op: str, thread: str | None = None) -> int:
        with self.lock:
            return sum(n for (o, t), n in self.counts.items() if o == op and thread in (None, t))


audit = SocketAudit()


# ------------------------------------------------------------------------ Hypothesis under emulation

EMULATED_EXAMPLES = (5, 10)  # divisor and floor of each property test's max_examples under emulation


def emulated_examples(n: int) -> int:
    """A property test's example budget in an emulated root: a fifth of ``n``, at least 10 (or ``n``)."""
    divisor, floor = EMULATED_EXAMPLES
    return min(n, max(floor, n // divisor))


def pytest_collection_modifyitems(config, items):
    """With ``RTEDGE_TEST_EMULATED=1`` (the ARM stage of CI, under qemu-user), every Hypothesis test runs
    :func:`emulated_examples` of its budget: the same properties, fewer random cases."""
    if os.environ.get("RTEDGE_TEST_EMULATED") != "1":
        return
    from hypothesis import settings  # lazy: only the emulated run rescales

    for item in items:
        test = getattr(item, "obj", None)
        if not hasattr(test, "_hypothesis_internal_use_settings"):  # not a Hypothesis test
            continue
        current = test._hypothesis_internal_use_settings
        test._hypothesis_internal_use_settings = settings(current,
                                                          max_examples=emulated_examples(current.max_examples))


@pytest.fixture(scope="session", autouse=True)
def _socket_audit_installed():
    with pytest.MonkeyPatch.context() as mp:
        audit.install(mp)
        yield audit


@pytest.fixture(autouse=True)
def _clock_faults_unsaid():
    """A device's clock fault is said once per process (rtedge.audio.clock): once per test here."""
    from rtedge.audio import clock

    clock.forget_reported()
    yield


@pytest.fixture(autouse=True)
def sole_socket_writer(_socket_audit_installed):
    """Every socket write and close made during the test happened on ``rtedge-sender`` (but for the
    rollover's upgrades: see :class:`SocketAudit`)."""
    with audit.lock:
        start = len(audit.violations)
    yield audit
    with audit.lock:
        new = audit.violations[start:]
    assert not new, f"socket written or closed off the sender thread: {new[0][0]}\n{new[0][1]}"


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


# ------------------------------------------------------------------------------------ openai-python's types


def _extra_keys(value: object, path: str = "$") -> list[str]:
    """Paths of keys that openai-python's models kept as *extra* (fields the SDK does not know)."""
    import pydantic

    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        found.extend(f"{path}.{key}" for key in (value.model_extra or {}))
        for name in type(value).model_fields:
            found.extend(_extra_keys(getattr(value, name), f"{path}.{name}"))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found.extend(_extra_keys(item, f"{path}[{i}]"))
    return found


@pytest.fixture(scope="session")
def validate_client_event() -> Callable[[str | dict[str, Any]], Any]:
    """Validate wire JSON (text or dict) as openai-python's ``RealtimeClientEvent``.

    The SDK's models allow extra keys, so a misplaced field (a beta-style ``session.voice``...)
    would pass plain validation; we also require that no level of the parsed model holds extras.
    Returns the parsed SDK model.
    """
    pydantic = pytest.importorskip("pydantic")
    realtime = pytest.importorskip("openai.types.realtime")
    adapter = pydantic.TypeAdapter(realtime.RealtimeClientEvent)

    def validate(wire: str | dict[str, Any]) -> Any:
        data = json.loads(wire) if isinstance(wire, str) else wire
        model = adapter.validate_python(data)
        assert model.type == data["type"], f"validated as {type(model).__name__}"
        extras = _extra_keys(model)
        assert not extras, f"keys openai-python does not know: {extras} in {data}"
        return model

    return validate
