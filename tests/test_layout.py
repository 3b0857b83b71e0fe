"""The package layout: the library never loads the application, and the old import paths still work, warning."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings

import pytest

from rtedge import _moved

from .conftest import REPO

PACKAGE = REPO / "rtedge"
LIBRARY = ("protocol", "audio", "transport", "voice", "testing")


def _imports(path) -> list[tuple[int, str]]:
    """Every module a file imports, anywhere in it (module level or inside a function), as absolute names."""
    package = list(path.relative_to(REPO).parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def test_no_library_module_imports_the_application():
    """Checked on the source, so an import inside a function or an error path counts too."""
    offenders = []
    for sub in LIBRARY:
        for path in sorted((PACKAGE / sub).rglob("*.py")):
            offenders += [f"{path.relative_to(REPO)}:{line}: {name}" for line, name in _imports(path)
                          if name == "rtedge.app" or name.startswith("rtedge.app.")]
    assert offenders == []


@pytest.mark.parametrize("statement", [
    "import rtedge.protocol",
    "import rtedge.voice",
    # every library module, loaded for real
    "import rtedge.voice.agent, rtedge.voice.tick, rtedge.voice.tools, rtedge.voice.transcriber, "
    "rtedge.voice.wake, rtedge.audio.devices, rtedge.audio.wavio, rtedge.transport.client, rtedge.testing",
])
def test_importing_the_library_loads_no_application_module(statement):
    code = f"import sys; {statement}; print(sorted(m for m in sys.modules if m.startswith('rtedge.app')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_file_list_shows_library_and_application_apart():
    """At the top only the package's entry points remain; everything else lives in a subpackage."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "_moved.py", "_version.py", "errors.py"]
    for old in _moved.MOVED:
        assert not (REPO / (old.replace(".", "/") + ".py")).exists(), old


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_an_old_import_path_warns_and_gives_the_same_module(old):
    code = (f"import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    import {old}\nexcept DeprecationWarning as w:\n    print(w)\nelse:\n    print('no warning')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{old} is deprecated") and _moved.MOVED[old] in out.stdout
    new = importlib.import_module(_moved.MOVED[old])
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is new and module.__spec__.name == _moved.MOVED[old]
    assert [w.category for w in caught] == [DeprecationWarning]


def test_the_readme_s_old_imports_still_run_and_point_at_the_importer(tmp_path):
    script = tmp_path / "old_user.py"
    script.write_text("from rtedge.agent import VoiceAgent\nfrom rtedge.tick import TickSession, TickSettings\n"
                      "from rtedge.tools import ToolRunner, tool\nimport rtedge\n"
                      "assert VoiceAgent is rtedge.VoiceAgent and TickSession is rtedge.TickSession\n"
                      "assert tool is rtedge.tool and ToolRunner is rtedge.ToolRunner\nprint('ran')\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0 and out.stdout == "ran\n", out.stderr
    # shown by default (the warning is attributed to the script, not to importlib)
    assert f"{script}:1: DeprecationWarning: rtedge.agent is deprecated" in out.stderr
    assert f"{script}:2: DeprecationWarning: rtedge.tick is deprecated" in out.stderr
