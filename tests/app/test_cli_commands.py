"""Every subcommand has --help with examples; doctor says what to fix; exit codes of the first connection."""

from __future__ import annotations

import contextlib
import re
import socket

import pytest

from rtedge.app.cli import EXIT_AUDIO, EXIT_CONNECT, EXIT_DOCTOR, EXIT_GAVE_UP, EXIT_OK, build_parser, main
from rtedge.testing import RealtimeServer

from ..conftest import REPO

pytestmark = pytest.mark.usefixtures("no_thread_leak")

COMMANDS = ["run", "demo", "serve", "devices", "check-config", "doctor", "version"]


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return list(action.choices)


def test_every_command_is_there():
    names = subcommands()
    assert set(COMMANDS) <= set(names)
    try:
        import rtedge.voice.transcriber  # noqa: F401  (another part of rtedge; wired when present)
    except ModuleNotFoundError:
        return
    assert "transcribe" in names


@pytest.mark.parametrize("command", subcommands())
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"rtedge {command}" in out
    # a description under the usage, as the command list gives it
    assert out.split("\n\n")[1].strip().endswith(".") and not out.split("\n\n")[1].startswith("options:")
    # an example continued on the next line keeps its backslash (a bare one in the source joins the lines)
    assert "      --" not in "".join(line for line in out.splitlines() if line.startswith("  rtedge"))


def test_debug_before_or_after_the_command(tmp_path, capsys):
    assert main(["--debug", "check-config"]) == EXIT_OK
    assert 'level = "debug"' in capsys.readouterr().out
    assert main(["check-config", "--debug"]) == EXIT_OK
    assert 'level = "debug"' in capsys.readouterr().out
    assert main(["check-config"]) == EXIT_OK
    assert 'level = "info"' in capsys.readouterr().out


def test_doctor_reports_each_check(capsys):
    with RealtimeServer() as srv:
        code = main(["doctor", "--url", srv.url, "--set", "audio.mic=null", "--set", "audio.speaker=null"])
    out = capsys.readouterr().out
    for needle in ("codec backend", "PortAudio", "config: valid", "API key", "reachable (TCP in"):
        assert needle in out, out
    assert all(line.split()[0] in ("ok", "warn", "FAIL", "all", "1", "2", "3") for line in out.splitlines())
    assert code == (EXIT_DOCTOR if "FAIL" in out else EXIT_OK)


def test_doctor_says_what_to_fix(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[audio]\nmic_rate = 1\n")
    assert main(["doctor", "--config", str(bad), "--no-network"]) == EXIT_DOCTOR
    assert f"FAIL  config: {bad}:2: audio.mic_rate" in capsys.readouterr().out
    assert main(["doctor", "--url", "ws://127.0.0.1:9/v1/realtime", "--set", "audio.mic=null",
                 "--set", "audio.speaker=null"]) == EXIT_DOCTOR
    out = capsys.readouterr().out
    assert "FAIL  endpoint ws://127.0.0.1:9/v1/realtime" in out and "check the network" in out


def test_first_connection_fails_fast_or_retries_then_gives_up(capsys, tmp_path, monkeypatch):
    url = "ws://127.0.0.1:9/v1/realtime"  # nothing listens on the discard port
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(tmp_path / "notify"))
    systemd.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    assert main(["run", "--url", url, "--mic", "null", "--speaker", "null"]) == EXIT_CONNECT
    assert "rtedge: error:" in capsys.readouterr().err
    code = main(["run", "--url", url, "--mic", "null", "--speaker", "null",
                 "--set", "reconnect.retry_first_connect=1", "--set", "reconnect.max_attempts=2",
                 "--set", "reconnect.initial_delay=0.01"])
    err = capsys.readouterr().err
    assert code == EXIT_GAVE_UP
    assert "attempt 2 in" in err and "gave up connecting after 2 attempts" in err
    messages = []
    systemd.settimeout(0.2)
    with contextlib.suppress(TimeoutError):
        while True:
            messages.append(systemd.recv(4096).decode())
    systemd.close()
    # still starting while it retries: systemd is asked for more time than TimeoutStartSec
    assert any(re.fullmatch(r"EXTEND_TIMEOUT_USEC=\d+", m) for m in messages), messages
    assert "STATUS=connecting (attempt 2)" in messages


def test_doctor_checks_the_units_key_file(tmp_path, monkeypatch, capsys):
    import rtedge.app.doctor as doctor

    key = tmp_path / "api-key"
    key.write_text("sk-doctor-SECRET")
    monkeypatch.setattr(doctor, "UNIT_CREDENTIAL", str(key))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    args = ["doctor", "--no-network", "--set", "audio.mic=null", "--set", "audio.speaker=null"]
    key.chmod(0o644)
    main(args)
    assert f"warn  API key: {key} is readable by group/others: chmod 600" in capsys.readouterr().out
    key.chmod(0o600)
    main(args)
    out = capsys.readouterr().out
    assert f"ok    API key: {key} is there for the systemd unit" in out and "sk-doctor-SECRET" not in out


def test_doctor_warns_about_a_loose_api_key_file(tmp_path, capsys):
    """provider.api_key_file readable by others was 'ok' (only the unit's credential was checked)."""
    key = tmp_path / "my.key"
    key.write_text("sk-doctor-SECRET")
    args = ["doctor", "--no-network", "--api-key-file", str(key), "--set", "audio.mic=null",
            "--set", "audio.speaker=null"]
    key.chmod(0o644)
    main(args)
    assert f"warn  API key: {key} is readable by group/others: chmod 600 {key}" in capsys.readouterr().out
    key.chmod(0o600)
    main(args)
    out = capsys.readouterr().out
    assert f"ok    API key: from {key} (not shown)" in out and "sk-doctor-SECRET" not in out


def test_doctor_checks_what_the_config_asks_of_the_install(monkeypatch, capsys):
    """echo_guard = aec without the libspeexdsp extension, or a wake word without the extra, passed doctor and
    then failed rtedge run (exit 2)."""
    import rtedge.audio.aec as aec
    import rtedge.voice.wake as wake

    args = ["doctor", "--no-network", "--url", "ws://127.0.0.1:9/v1/realtime", "--set", "audio.mic=null",
            "--set", "audio.speaker=null", "--set", "vad.echo_guard=aec", "--set", "wake.word=okay_nabu"]
    monkeypatch.setattr(aec, "available", lambda: True)
    monkeypatch.setattr(wake, "available", lambda: True)
    assert main(args) == EXIT_OK
    out = capsys.readouterr().out
    assert "ok    echo canceller: libspeexdsp extension built" in out and "ok    wake word: the wake extra" in out
    monkeypatch.setattr(aec, "available", lambda: False)
    monkeypatch.setattr(wake, "available", lambda: False)
    assert main(args) == EXIT_DOCTOR
    out = capsys.readouterr().out
    assert f"FAIL  vad.echo_guard = aec: {aec.UNAVAILABLE}" in out
    assert f"FAIL  wake.word = 'okay_nabu': {wake.UNAVAILABLE}" in out
    assert main(args[:-4]) == EXIT_OK  # not asked for: not checked
    assert "echo canceller" not in capsys.readouterr().out


def test_doctor_does_not_ask_for_a_key_a_loopback_endpoint_does_not_need(tmp_path, monkeypatch, capsys):
    """check-config says 'none found (fine: the endpoint is loopback)'; doctor warned about it."""
    import rtedge.app.doctor as doctor

    monkeypatch.setattr(doctor, "UNIT_CREDENTIAL", str(tmp_path / "no-such-key"))
    for name in ("OPENAI_API_KEY", "CREDENTIALS_DIRECTORY", "RTEDGE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    args = ["doctor", "--no-network", "--set", "audio.mic=null", "--set", "audio.speaker=null"]
    main([*args, "--url", "ws://127.0.0.1:8765/v1/realtime"])
    assert "ok    API key: none found, none needed" in capsys.readouterr().out
    main(args)  # the provider's own endpoint
    assert "warn  API key: none found; put it in a file" in capsys.readouterr().out


def test_missing_sound_card_exits_7_at_once_or_after_waiting(capsys):
    # no PortAudio device has this name; the file/null specs around it are not sound cards
    args = ["run", "--url", "ws://127.0.0.1:9/v1/realtime", "--mic", "no-such-card-xyz", "--speaker", "null"]
    assert main([*args, "--set", "reconnect.retry_first_connect=1", "--set", "reconnect.max_attempts=2",
                 "--set", "reconnect.initial_delay=0.01"]) == EXIT_AUDIO
    err = capsys.readouterr().err
    assert "sound card not ready" in err and "attempt 2 in" in err
    assert ("gave up waiting for the sound card after 2 attempts: "
            "no audio input device named 'no-such-card-xyz'") in err
    with RealtimeServer() as srv:  # without waiting: the session starts, the card fails to open, exit 7
        assert main(["run", "--url", srv.url, "--mic", "no-such-card-xyz", "--speaker", "null"]) == EXIT_AUDIO
    assert "rtedge: error: no audio input device named 'no-such-card-xyz'" in capsys.readouterr().err


# a plain install, without the [server] extra: websockets cannot be imported
_NO_WEBSOCKETS = """
import sys
sys.modules["websockets"] = None  # import websockets -> ModuleNotFoundError, as without the package
from rtedge.app.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("argv", [["demo", "--fast"], ["serve", "--port", "0"]])
def test_local_server_without_websockets_names_the_extra(argv):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _NO_WEBSOCKETS, *argv], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"rtedge {argv[0]}" in lines[0] and "pip install 'rtedge[server]'" in lines[0]


def test_the_demo_prints_its_turn_and_nothing_on_stderr():
    """The in-process server's connection log ('rtedge: info: server listening'...) is not the demo's
    output; with --debug it is there, with the events the server received and sent."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "rtedge", "demo", "--fast"], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.returncode == 0 and "summary: 1 turn(s)" in done.stdout
    assert done.stderr == ""
    debug = subprocess.run([sys.executable, "-m", "rtedge", "--debug", "demo", "--fast"], capture_output=True,
                           text=True, timeout=60, cwd=REPO)
    assert debug.returncode == 0 and "server listening" in debug.stderr
    assert "received input_audio_buffer.append" in debug.stderr  # the server's own event lines


def test_log_lines_and_printed_lines_read_alike(tmp_path):
    """'rtedge: warning: ...' from the log (a key file others can read) as from the command's own lines
    (the log said 'rtedge: WARNING: ...' beside them)."""
    import subprocess
    import sys

    key = tmp_path / "key"
    key.write_text("sk-not-a-real-key\n")
    key.chmod(0o644)
    done = subprocess.run([sys.executable, "-m", "rtedge", "check-config", "--api-key-file", str(key)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0
    assert f"rtedge: warning: API key file {key} is readable by group/others" in done.stderr
    assert "WARNING" not in done.stderr and "sk-not-a-real-key" not in done.stdout + done.stderr


def test_doctor_flags_a_missing_server_extra(monkeypatch, capsys):
    import sys

    import rtedge.app.doctor as doctor

    assert doctor.check_server_extra()[0] == "ok"
    monkeypatch.setitem(sys.modules, "websockets", None)
    level, message = doctor.check_server_extra()
    assert level == "warn" and "pip install 'rtedge[server]'" in message
