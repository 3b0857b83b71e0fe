"""The public surface: ``import rtedge`` offers a small documented set, and every name the README and the
examples use exists at a current (not deprecated) path."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys

import pytest

import rtedge
from rtedge import _moved

from .conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "examples").glob("*.py"))]


def _python_sources(path) -> list[str]:
    text = path.read_text()
    if path.suffix == ".py":
        return [text]
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _used_names(source: str) -> set[tuple[str, str]]:
    """``(module, name)`` for every ``from rtedge... import name`` and every ``rtedge.a.b`` chain."""
    tree = ast.parse(source)
    used: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rtedge":
            used |= {(node.module or "", a.name) for a in node.names}
        elif isinstance(node, ast.Import):
            used |= {(a.name, "") for a in node.names if a.name.split(".")[0] == "rtedge"}
        elif isinstance(node, ast.Attribute):
            chain = ast.unparse(node)
            if re.fullmatch(r"rtedge(\.\w+)+", chain):
                module, _, name = chain.rpartition(".")
                used.add((module, name))
    return used


def _inline_imports(path) -> set[tuple[str, str]]:
    """Names quoted in prose: ``from rtedge.x import Y`` and classes such as ``rtedge.LinkState`` between
    backticks (lower-case ``rtedge.x`` in prose is an event type: ``rtedge.gave_up``)."""
    text = path.read_text()
    found = set(re.findall(r"`(rtedge(?:\.[a-z]\w*)*)\.([A-Z]\w*)", text))
    for module, names in re.findall(r"`from (rtedge[\w.]*) import ([\w, ]+)`", text):
        found |= {(module, n.strip()) for n in names.split(",")}
    return found


def _resolve(module: str, name: str) -> object:
    """What the name is: an attribute of the module, or a submodule."""
    try:
        obj: object = importlib.import_module(module)
    except ModuleNotFoundError:  # rtedge.a.b.Name used as an attribute chain: walk it
        head, _, attr = module.rpartition(".")
        obj = getattr(_resolve(head, ""), attr) if head else None
    if not name:
        return obj
    if hasattr(obj, name):
        return getattr(obj, name)
    return importlib.import_module(f"{module}.{name}")


USED = sorted({u for path in DOCS for src in _python_sources(path) for u in _used_names(src)}
              | {u for path in DOCS for u in _inline_imports(path)})


def test_the_docs_use_names_at_all():
    """The collector finds what it must (a broken regex would make the next test vacuous)."""
    assert ("rtedge", "VoiceAgent") in USED and ("rtedge", "connect") in USED
    assert ("rtedge.audio.devices", "Microphone") in USED and ("rtedge", "TickSession") in USED
    assert ("rtedge", "LinkState") in USED  # quoted in prose


@pytest.mark.parametrize(("module", "name"), USED, ids=[f"{m}:{n}" for m, n in USED])
def test_every_name_the_readme_and_examples_use_exists_at_a_current_path(module, name):
    assert module not in _moved.MOVED, f"{module} is a deprecated path: use {_moved.MOVED[module]}"
    assert _resolve(module, name) is not None


def test_the_top_level_names_are_the_documented_ones_and_import():
    doc = rtedge.__doc__ or ""
    for name in rtedge.__all__:
        assert not name.startswith("_") or name == "__version__"
        assert getattr(rtedge, name) is not None
    documented = set(re.findall(r":(?:func|class|data):`(\w+)`", doc))
    assert documented - {"RtEdgeError"} <= set(rtedge.__all__)
    errors = {n for n in rtedge.__all__ if isinstance(getattr(rtedge, n), type)
              and issubclass(getattr(rtedge, n), rtedge.RtEdgeError)}
    assert set(rtedge.__all__) - {"__version__"} == documented | errors  # every name is documented
    assert "RtEdgeError" in documented
    assert dir(rtedge) == sorted(rtedge.__all__)


def test_every_top_level_name_the_readme_and_examples_use_is_offered():
    top = {name for module, name in USED if module == "rtedge" and name}
    assert top <= set(rtedge.__all__)


def test_no_internal_name_is_offered():
    for name in rtedge.__all__:
        obj = getattr(rtedge, name)
        assert not getattr(obj, "__name__", "x").startswith("_"), name
    with pytest.raises(AttributeError):
        rtedge.Session  # noqa: B018 - the sans-IO core is rtedge.protocol's, not a top-level name


def test_the_receiver_thread_hooks_are_internal():
    """They run code on the receiver thread: not offered as public methods."""
    from rtedge.transport.client import Client

    assert not hasattr(Client, "add_audio_sink") and not hasattr(Client, "add_event_hook")
    assert hasattr(Client, "_add_audio_hook") and hasattr(Client, "_add_event_hook")


def test_audio_sink_names_only_the_device_class():
    from rtedge.audio import devices
    from rtedge.transport import client

    assert isinstance(devices.AudioSink, type) and hasattr(devices.AudioSink, "start")
    assert not hasattr(client, "AudioSink") and hasattr(client, "AudioDeltaHook")


def test_the_examples_warn_about_nothing_deprecated():
    for path in sorted((REPO / "examples").glob("*.py")):
        tree = ast.parse(path.read_text())
        imports = [ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        out = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", "\n".join(imports)],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
        assert out.returncode == 0, f"{path.name}: {out.stderr[-500:]}"
