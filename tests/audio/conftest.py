"""Fixtures for the codec tests: run every codec test against both backends.

Codec test modules declare ``pytestmark = pytest.mark.usefixtures("backend")``;
the ``"c"`` case is skipped only when the extension is not built.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from rtedge.audio import _codec_numpy, codec

REPO = Path(__file__).resolve().parents[2]
# ITU-T G.191 reference vectors live next to the checkout, never inside it.
G711_FIXTURES = REPO.parent / "shared" / "fixtures" / "g711"


def c_kernels() -> ModuleType | None:
    try:
        return importlib.import_module("rtedge.audio._codec")
    except ImportError:
        return None


def kernel_modules() -> dict[str, ModuleType | None]:
    return {"numpy": _codec_numpy, "c": c_kernels()}


@pytest.fixture(params=["numpy", "c"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point ``rtedge.audio.codec`` at one kernel module for the duration of a test."""
    mod = kernel_modules()[request.param]
    if mod is None:
        pytest.skip("the C extension rtedge.audio._codec is not built")
    monkeypatch.setattr(codec, "_impl", mod)
    monkeypatch.setattr(codec, "BACKEND", request.param)
    return str(request.param)


@pytest.fixture
def kernels() -> dict[str, ModuleType | None]:
    """Both kernel modules by backend name (``None`` for C when it is not built)."""
    return kernel_modules()


@pytest.fixture
def g711_dir() -> Path:
    return G711_FIXTURES


@pytest.fixture
def c_module() -> ModuleType:
    mod = c_kernels()
    if mod is None:
        pytest.skip("the C extension rtedge.audio._codec is not built")
    return mod
