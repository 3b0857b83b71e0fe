"""Packaging of the optional C extension: the install works with and without a compiler.

These tests build real wheels from a copy of the source tree (about 5-15 s each).
With setuptools >= 74 in the running environment they build offline
(``--no-build-isolation``); otherwise pip fetches the build backend.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SMOKE = """
import numpy as np
import rtedge.audio.codec as c
x = np.arange(-32768, 32768, 7, dtype=np.int16)
assert np.array_equal(c.ulaw_decode(c.ulaw_encode(x))[:3], c.ulaw_decode(c.ulaw_encode(x[:3])))
r = c.Resampler(48000, 16000)
y = r.process(np.zeros(960, np.int16))
assert y.dtype == np.int16 and y.size == 320
print(c.BACKEND)
"""


def _python(code: str, env_extra: dict[str, str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RTEDGE_CODEC")}
    env.update(env_extra)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_env_var_forces_the_numpy_twin(tmp_path: Path) -> None:
    assert _python(SMOKE, {"PYTHONPATH": str(REPO), "RTEDGE_CODEC": "numpy"}, tmp_path) == "numpy"


def _source_copy(dest: Path) -> Path:
    src = dest / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    shutil.copytree(
        REPO / "rtedge",
        src / "rtedge",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "*.egg-info"),
    )
    return src


def _build_wheel(tmp_path: Path, env_extra: dict[str, str]) -> tuple[Path, str]:
    src = _source_copy(tmp_path)
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", str(out), str(src)]
    try:
        offline = int(importlib.metadata.version("setuptools").split(".")[0]) >= 74
    except importlib.metadata.PackageNotFoundError:
        offline = False
    if offline:
        cmd.insert(4, "--no-build-isolation")
    env = dict(os.environ)
    env.update(env_extra)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    log = done.stdout + done.stderr
    if done.returncode != 0 and not offline and "setuptools" in log and "satisf" in log:
        pytest.skip("cannot fetch setuptools>=74 for an isolated build (offline?)")
    assert done.returncode == 0, log[-3000:]
    wheels = list(out.glob("rtedge-*.whl"))
    assert len(wheels) == 1, log[-2000:]
    return wheels[0], log


def _install_and_run(tmp_path: Path, wheel: Path) -> str:
    site = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return _python(SMOKE, {"PYTHONPATH": str(site)}, tmp_path)


def _import_log(tmp_path: Path) -> list[str]:
    """stderr lines of importing the codec from the wheel installed by ``_install_and_run``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RTEDGE_CODEC")}
    env["PYTHONPATH"] = str(tmp_path / "site")
    done = subprocess.run([sys.executable, "-c", "import rtedge.audio.codec"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_install_without_a_compiler_falls_back_to_numpy(tmp_path: Path) -> None:
    # a compiler that does not exist: the optional extension fails, the install must not
    wheel, log = _build_wheel(
        tmp_path, {"CC": str(tmp_path / "no-such-cc"), "LDSHARED": str(tmp_path / "no-such-cc")}
    )
    names = zipfile.ZipFile(wheel).namelist()
    assert "rtedge/audio/codec.py" in names and "rtedge/audio/_codec_numpy.py" in names
    assert not [n for n in names if n.startswith("rtedge/audio/_codec") and n.endswith((".so", ".pyd"))]
    assert _install_and_run(tmp_path, wheel) == "numpy"
    # the fallback says so in exactly one log line, naming what to install
    log = _import_log(tmp_path)
    assert len(log) == 1 and "numpy twin" in log[0] and "gcc" in log[0], log


def test_install_with_a_compiler_builds_the_extension(tmp_path: Path) -> None:
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler on this machine")
    wheel, _ = _build_wheel(tmp_path, {})
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if n.startswith("rtedge/audio/_codec") and n.endswith((".so", ".pyd"))]
    assert _install_and_run(tmp_path, wheel) == "c"
    assert _import_log(tmp_path) == []


def test_benchmark_quick_smoke(tmp_path: Path) -> None:
    """benchmarks/codec.py --quick runs and prints one table covering every task."""
    env = {k: v for k, v in os.environ.items() if k != "RTEDGE_CODEC"}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "codec.py"), "--quick", "--seconds", "0.5"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    tasks = {row.split("|")[1].strip() for row in rows[1:]}
    for op in ("ulaw encode", "ulaw decode", "alaw encode", "alaw decode"):
        assert f"G.711 {op}" in tasks
    for pair in ("48k->16k", "44.1k->16k", "24k->16k", "16k->24k", "8k->16k", "16k->8k"):
        assert f"resample {pair}" in tasks
    ours = [row for row in rows if "rtedge (numpy)" in row and "resample" in row]
    assert len(ours) == 6
    for row in ours:  # the measured rejection of our default filter is in the table
        assert float(row.split("|")[3]) <= -96.0
