"""The tool-calling and transcription examples run as a user would run them (each starts its own local
server); the kiosk install script agrees with the unit file about every path."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import REPO


def run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_tool_calling():
    out = run("examples/tool_calling.py")
    assert "tool: get_weather(city='Oslo', unit='celsius')" in out
    assert "assistant: It is 12 degrees and cloudy in Oslo." in out
    assert 'answered get_weather -> {"city": "Oslo", "temperature": 12' in out


def test_transcription():
    out = run("examples/transcription.py", str(REPO / "rtedge" / "data" / "demo_phrase.wav"))
    assert re.search(r"^\[ *\d+\.\d\d- *\d+\.\d\d\] turn on the kitchen lights$", out, re.M), out
    assert "1 utterance(s)" in out


@pytest.mark.parametrize("script", ["tool_calling.py", "transcription.py"])
def test_help(script):
    assert "usage:" in run(f"examples/{script}", "--help")


def test_kiosk_install_script_matches_the_unit():
    script = (REPO / "examples" / "kiosk_service.sh").read_text()
    unit = (REPO / "systemd" / "rtedge.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+) run --config (\S+)$", unit, re.M)
    credential = re.search(r"^LoadCredential=api-key:(\S+)$", unit, re.M)
    assert exec_start and credential
    assert exec_start.group(1).replace("/bin/rtedge", "/bin/python") in script
    assert f"install -m 0644 systemd/rtedge.toml {exec_start.group(2)}" in script
    assert f"cat > {credential.group(1)}" in script
    assert subprocess.run(["bash", "-n", str(REPO / "examples" / "kiosk_service.sh")]).returncode == 0
    # the README's step 1, as the script says it runs it: the package lists are fetched, and the same extra
    readme = (REPO / "README.md").read_text()
    spec = re.search(r"sudo /opt/rtedge/venv/bin/pip install (\S+)", readme)
    assert spec and f"/opt/rtedge/venv/bin/pip install -q --upgrade {spec.group(1)}" in script
    assert script.index("apt-get update") < script.index("apt-get install")
