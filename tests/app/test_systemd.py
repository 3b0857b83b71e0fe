"""The shipped unit file: ``systemd-analyze verify`` is silent, ``security --offline`` scores <= 1.5,
and its restart policy matches rtedge's exit codes."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from rtedge.app.exit_codes import EXIT_AUTH, EXIT_CONFIG
from rtedge.app.settings import ServiceSettings

from ..conftest import REPO

UNIT = REPO / "systemd" / "rtedge.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (.ci/setup "
                                                           "installs the 'systemd' package)")


def settings() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


@pytest.fixture
def checkable_unit(tmp_path):
    """A copy whose ExecStart names a binary that exists here (verify checks that it is executable)."""
    text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", UNIT.read_text(), flags=re.M)
    path = tmp_path / "rtedge.service"
    path.write_text(text)
    return path


@needs_analyze
def test_verify_prints_nothing(checkable_unit):
    # unknown keys are only warnings with exit code 0, so any output at all fails the test
    proc = subprocess.run([ANALYZE, "verify", "--man=no", str(checkable_unit)], capture_output=True,
                          text=True, timeout=60, cwd=checkable_unit.parent)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@needs_analyze
def test_verify_would_catch_a_typo(tmp_path, checkable_unit):
    bad = tmp_path / "bad" / "rtedge.service"
    bad.parent.mkdir()
    bad.write_text(checkable_unit.read_text().replace("WatchdogSec=", "WatchdogSecs="))
    proc = subprocess.run([ANALYZE, "verify", "--man=no", str(bad)], capture_output=True, text=True,
                          timeout=60, cwd=bad.parent)
    # rc stays 0 for an unknown key: only the output shows it, hence the empty-output check above
    assert proc.returncode == 0 and "Unknown key 'WatchdogSecs'" in proc.stderr


@needs_analyze
def test_security_exposure_is_at_most_1_5(checkable_unit):
    # --threshold is exposure x 10: 15 fails anything above 1.5
    proc = subprocess.run([ANALYZE, "security", "--offline=yes", "--threshold=15", "--no-pager",
                           str(checkable_unit)], capture_output=True, text=True, timeout=60,
                          cwd=checkable_unit.parent)
    match = re.search(r"Overall exposure level for rtedge\.service: (\d+\.\d)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= 1.5 and proc.returncode == 0, proc.stdout


def test_unit_runs_as_a_notify_service_with_a_watchdog_and_restart_policy():
    s = settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] == ["30s"] and s["Restart"] == ["on-failure"]
    assert s["StartLimitIntervalSec"] and s["StartLimitBurst"]
    assert sorted(int(c) for c in s["RestartPreventExitStatus"][0].split()) == [EXIT_CONFIG, EXIT_AUTH]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert float(s["TimeoutStopSec"][0].rstrip("s")) > ServiceSettings().stop_timeout
    # a stall must be noticed well within the watchdog period
    assert ServiceSettings().stall_seconds < float(s["WatchdogSec"][0].rstrip("s"))


def test_unit_identity_secrets_and_device_access():
    s = settings()
    assert s["DynamicUser"] == ["yes"] and s["SupplementaryGroups"] == ["audio"]
    assert s["LoadCredential"] == ["api-key:/etc/rtedge/api-key"]
    exec_start = s["ExecStart"][0]
    assert exec_start.endswith("rtedge run --config /etc/rtedge/rtedge.toml")
    assert "key" not in exec_start.lower() and not any("KEY" in e for e in s.get("Environment", []))
    assert s["DeviceAllow"] == ["char-alsa rw"] and s["PrivateDevices"] == ["no"]
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
