"""The protocol core is sans-IO: importing it pulls in no socket, thread, clock, logging or numpy module."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_DIR = REPO_ROOT / "rtedge" / "protocol"
FORBIDDEN = ("socket", "threading", "time", "logging", "numpy", "websocket", "select", "ssl")

_PROBE = """
import json, sys
import attrs  # an allowed dependency; it imports threading itself
before = set(sys.modules)
import rtedge.protocol
after = set(sys.modules)
print(json.dumps({"before": sorted(before), "new": sorted(after - before),
                  "file": [rtedge.protocol.__file__]}))
"""


def _top(name: str) -> str:
    return name.split(".", 1)[0]


@pytest.fixture(scope="module")
def import_probe() -> dict[str, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r})\n{_PROBE}"],
        capture_output=True, text=True, timeout=60, cwd=str(REPO_ROOT),
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_probe_imports_this_checkout(import_probe: dict[str, list[str]]) -> None:
    # The probe must really have imported the protocol package (not failed silently or found nothing new).
    assert "rtedge.protocol" in import_probe["new"]
    assert "rtedge.protocol.session" in import_probe["new"]
    assert Path(import_probe["file"][0]).resolve() == PROTOCOL_DIR / "__init__.py"


@pytest.mark.parametrize("module", FORBIDDEN)
def test_import_rtedge_protocol_loads_no_io_module(import_probe: dict[str, list[str]], module: str) -> None:
    newly = sorted(name for name in import_probe["new"] if _top(name) == module)
    assert not newly, f"import rtedge.protocol imported {newly}"


def test_import_does_not_pull_transport_or_audio(import_probe: dict[str, list[str]]) -> None:
    # rtedge/__init__.py is lazy on purpose: the protocol import must not drag in the threaded parts.
    dragged = [name for name in import_probe["new"]
               if name.startswith(("rtedge.transport", "rtedge.audio"))]
    assert not dragged


def _protocol_files() -> list[Path]:
    return sorted(PROTOCOL_DIR.rglob("*.py"))


def test_protocol_files_found() -> None:
    names = {p.relative_to(PROTOCOL_DIR).as_posix() for p in _protocol_files()}
    assert {"__init__.py", "session.py", "wire.py", "_state.py", "dialects/openai.py"} <= names


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
              and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
              in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


@pytest.mark.parametrize("path", _protocol_files(), ids=lambda p: p.relative_to(PROTOCOL_DIR).as_posix())
def test_no_forbidden_import_in_source(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = [f"line {line}: {name}" for line, name in _imported_modules(tree) if _top(name) in FORBIDDEN]
    assert not bad, f"{path.name} imports {bad}"


def test_ast_scan_catches_forbidden_imports() -> None:
    # The scanner itself must see every import spelling it claims to catch.
    src = "import os\nimport threading\nfrom socket import socket\nimport logging.handlers\n" \
          "importlib.import_module('numpy')\nfrom . import time\n"
    names = {_top(name) for _, name in _imported_modules(ast.parse(src))}
    assert {"threading", "socket", "logging", "numpy"} <= names
    assert "time" not in names  # a relative ``from . import time`` is a sibling module, not the stdlib


def test_protocol_is_mypy_strict_clean(tmp_path: Path) -> None:
    # Strict typing of the protocol package itself (setup.cfg enables strict); errors in modules it
    # reaches through rtedge/__init__.py's type-checking imports (transport, audio) belong to those packages.
    pytest.importorskip("mypy")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--cache-dir", str(tmp_path),
         "rtedge/protocol"],
        capture_output=True, text=True, timeout=120, cwd=str(REPO_ROOT),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
