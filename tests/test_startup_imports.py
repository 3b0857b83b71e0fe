"""What the client's import path must not pull in (start-up CPU and memory on a small board)."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_client_path_imports_none_of_the_heavy_stdlib_modules():
    loaded = _modules_after("import rtedge, rtedge.transport.client")
    # importlib.abc pulls in importlib.resources, tempfile, shutil, bz2 and lzma; random is for reconnects
    assert not loaded & {"importlib.abc", "importlib.resources", "tempfile", "shutil", "random", "numpy"}


def test_old_module_paths_still_resolve_without_importlib_abc():
    loaded = _modules_after("import warnings\nwarnings.simplefilter('ignore')\nimport rtedge.wavio, rtedge.audio.wavio\n"
                            "assert rtedge.wavio is rtedge.audio.wavio")
    assert "importlib.abc" not in loaded


def test_backoff_jitter_still_random():
    from rtedge.transport.backoff import Backoff

    b = Backoff(initial=1.0, jitter=0.5)
    delays = {b.delay(1) for _ in range(20)}
    assert len(delays) > 1 and all(0.5 <= d <= 1.0 for d in delays)
