"""Shared helpers for the protocol tests.

Recorded sessions live outside the repository, in ``../shared/fixtures/recorded``
(relative to the repo root): real OpenAI GA and xAI WebSocket sessions, stored as YAML
``interactions: [{kind, direction: sent|received, data: <event JSON>}]``.  Tests that
need them receive a ``recording`` parameter and are skipped when the folder is absent.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDED_DIR = REPO_ROOT.parent / "shared" / "fixtures" / "recorded"
PROVIDERS = ("openai", "xai")


@attrs.frozen
class Recording:
    """One recorded session: its provider, file name and WebSocket messages in order."""

    provider: str
    name: str
    messages: tuple[tuple[str, dict[str, Any]], ...]

    def received(self) -> Iterator[dict[str, Any]]:
        return (data for direction, data in self.messages if direction == "received")

    def sent(self) -> Iterator[dict[str, Any]]:
        return (data for direction, data in self.messages if direction == "sent")

    def received_of(self, type_: str) -> list[dict[str, Any]]:
        return [data for data in self.received() if data.get("type") == type_]

    def sent_of(self, type_: str) -> list[dict[str, Any]]:
        return [data for data in self.sent() if data.get("type") == type_]


@functools.lru_cache(maxsize=None)
def _load(provider: str, path: Path) -> Recording:
    """Parse a recording once per test run (tests must not mutate the message dicts)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 (a safe loader)
    messages = []
    for interaction in doc.get("interactions") or ():
        # Some recordings hold only an HTTP exchange (WebRTC side-band SDP): no WebSocket messages.
        if interaction.get("kind") != "message" or interaction.get("direction") not in ("sent", "received"):
            continue
        data = interaction["data"]
        assert isinstance(data, dict), f"{path.name}: a message whose data is not an object"
        messages.append((interaction["direction"], data))
    return Recording(provider=provider, name=path.stem, messages=tuple(messages))


def recording_paths(*providers: str) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for provider in providers:
        folder = RECORDED_DIR / provider
        if folder.is_dir():
            out.extend((provider, path) for path in sorted(folder.glob("*.yaml")))
    return out


def _parametrize_recordings(metafunc: pytest.Metafunc, argname: str, providers: tuple[str, ...]) -> None:
    paths = recording_paths(*providers)
    if not paths:
        metafunc.parametrize(argname, [pytest.param(None, marks=pytest.mark.skip(
            reason=f"recorded fixtures not found at {RECORDED_DIR} (../shared/fixtures/recorded)"))])
        return
    params = []
    for provider, path in paths:
        rec = _load(provider, path)
        marks = () if rec.messages else (pytest.mark.skip(reason=f"{path.name} holds no WebSocket messages"),)
        params.append(pytest.param(rec, id=f"{provider}/{path.stem}", marks=marks))
    metafunc.parametrize(argname, params)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``recording``: every recorded session; ``openai_recording``: OpenAI's only."""
    if "recording" in metafunc.fixturenames:
        _parametrize_recordings(metafunc, "recording", PROVIDERS)
    if "openai_recording" in metafunc.fixturenames:
        _parametrize_recordings(metafunc, "openai_recording", ("openai",))


