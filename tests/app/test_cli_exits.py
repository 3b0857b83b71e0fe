"""Exit codes and messages a newcomer meets first: failed turns, doctor, ports, hints, the missing key."""

from __future__ import annotations

import socket
import subprocess
import sys
import wave

import numpy as np
import pytest

from rtedge.app.cli import (
    EXIT_CONFIG,
    EXIT_DOCTOR,
    EXIT_FAIL,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_TURN_FAILED,
    build_parser,
    main,
)
from rtedge.testing import RealtimeServer

pytestmark = pytest.mark.usefixtures("no_thread_leak")


def _tone_wav(path, seconds: float = 0.6, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes((8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes())


@pytest.fixture
def no_key_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "CREDENTIALS_DIRECTORY", "RTEDGE_CONFIG", "DASHSCOPE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_a_run_whose_turn_failed_exits_8(tmp_path, capsys):
    def broken(*_, **__):
        raise RuntimeError("model exploded")

    src = tmp_path / "in.wav"
    _tone_wav(src)
    with RealtimeServer(realtime=False, responder=broken) as srv:
        code = main(["run", "--url", srv.url, "--input", str(src), "--fast", "--manual"])
    captured = capsys.readouterr()
    assert "turn 1: failed" in captured.out
    assert code == EXIT_TURN_FAILED, captured.err
    assert "rtedge: error: turn 1 failed" in captured.err


def test_a_completed_turn_still_exits_0(tmp_path, capsys):
    src = tmp_path / "in.wav"
    _tone_wav(src)
    with RealtimeServer(realtime=False) as srv:
        assert main(["run", "--url", srv.url, "--input", str(src), "--fast", "--manual"]) == EXIT_OK


def test_doctor_problems_have_their_own_documented_code(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[audio]\nmic_rate = 1\n")
    code = main(["doctor", "--config", str(bad), "--no-network"])
    assert code == EXIT_DOCTOR and code != EXIT_FAIL  # 1 means "a bug" in the exit-code table
    assert "problem(s) to fix" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    assert f"{EXIT_DOCTOR} when a check FAILed" in capsys.readouterr().out
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert f"| {EXIT_DOCTOR} | `rtedge doctor` found problems" in readme
    assert f"| {EXIT_TURN_FAILED} | a turn failed" in readme


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_serve_validates_the_port_when_parsing(port, capsys):
    with pytest.raises(SystemExit) as info:
        main(["serve", "--port", port])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "not a port number" in err and "Traceback" not in err and "OverflowError" not in err


@pytest.mark.parametrize("dialect", ["openai", "vllm"])
def test_serve_on_a_port_in_use_is_a_one_line_error_not_a_bug(dialect, capsys):
    """Exit 1 means a bug (systemd restarts it); a port another program holds is the --port flag's problem."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--port", str(port), "--dialect", dialect])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_CONFIG
    assert err == [f"rtedge: error: cannot listen on 127.0.0.1:{port}: Address already in use (another --port, "
                   "or 0 for a free one)"]


@pytest.mark.parametrize("value", ["0", "-5", "nan", "soon"])
def test_demo_refuses_a_bound_that_ends_it_before_it_starts(value, capsys):
    """``--max-seconds 0`` timed out at once (exit 5, 'no complete answer within 0 s'); ``run`` reads 0
    as its default instead, so for the demo it is refused when parsing."""
    with pytest.raises(SystemExit) as info:
        main(["demo", "--max-seconds", value])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--max-seconds" in err and "Traceback" not in err


def test_serve_on_an_address_not_of_this_machine_says_so(capsys):
    with socket.socket() as probe:
        try:
            probe.bind(("192.0.2.1", 0))
        except OSError:
            pass
        else:
            pytest.skip("this machine binds addresses it does not have (net.ipv4.ip_nonlocal_bind)")
    code = main(["serve", "--host", "192.0.2.1", "--port", "0"])  # TEST-NET-1: no machine has it
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_CONFIG
    assert err == ["rtedge: error: cannot listen on 192.0.2.1:0: Cannot assign requested address (--host must be "
                   "an address of this machine)"]


def test_serve_on_a_host_that_does_not_resolve_says_so(capsys, monkeypatch):
    """A name lookup's failure (negative EAI_* codes) read "Unknown error -2 (another --port, ...)"."""
    from rtedge.testing import server as server_module

    def unresolved(self):  # what binding a host name that does not resolve raises (no DNS query here)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(server_module.RealtimeServer, "start", unresolved)
    assert main(["serve", "--host", "kiosk.invalid", "--port", "0"]) == EXIT_CONFIG
    assert capsys.readouterr().err.strip().splitlines() == [
        "rtedge: error: cannot listen on kiosk.invalid:0: no such host (--host must be an address of this "
        "machine)"]


def test_serve_with_a_key_and_no_certificate_is_refused(capsys):
    """--tls-key without --tls-cert served plain ws:// without a word."""
    assert main(["serve", "--tls-key", "key.pem", "--port", "0"]) == EXIT_CONFIG
    assert "--tls-key needs --tls-cert" in capsys.readouterr().err


def test_serve_accepts_0_and_65535():
    parser = build_parser()
    assert parser.parse_args(["serve", "--port", "0"]).port == 0
    assert parser.parse_args(["serve", "--port", "65535"]).port == 65535


@pytest.mark.parametrize("setting, hint", [
    ("provider.xyz=1", None),                 # nothing close among [provider]'s keys: no hint at all
    ("provider.moddel=x", "provider.model"),
    ("audio.mic_rat=16000", "audio.mic_rate"),
    ("mic=USB", "audio.mic"),                 # a bare key: the section it belongs to
])
def test_unknown_key_hint_suggests_keys_of_that_section(setting, hint, capsys, no_key_env):
    assert main(["check-config", "--set", setting]) == EXIT_CONFIG
    err = capsys.readouterr().err
    key = setting.partition("=")[0]
    assert f"{key}: unknown key" in err
    if hint is None:
        assert "did you mean" not in err, err
    else:
        assert f"(did you mean {hint}?)" in err, err


def test_unknown_section_hint_suggests_a_section(tmp_path, capsys, no_key_env):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[provder]\nname = 'openai'\n")
    assert main(["check-config", "--config", str(cfg)]) == EXIT_CONFIG
    assert "provder: unknown section (did you mean provider?)" in capsys.readouterr().err


def test_the_no_key_message_names_the_command_line_options(tmp_path, capsys, no_key_env):
    src = tmp_path / "in.wav"
    _tone_wav(src)
    code = main(["run", "--input", str(src), "--fast"])  # the provider's default URL: not loopback
    err = capsys.readouterr().err
    assert code == EXIT_CONFIG
    assert "--api-key-file" in err and "OPENAI_API_KEY" in err and "api_key=" not in err
    assert len(err.strip().splitlines()) == 1


def test_check_config_says_the_default_url_needs_a_key(capsys, no_key_env):
    assert main(["check-config"]) == EXIT_OK
    captured = capsys.readouterr()
    assert "loopback" not in captured.out
    assert "# api key: none found; give --api-key-file" in captured.out
    assert "rtedge: warning: no API key for openai (wss://api.openai.com" in captured.err
    assert main(["check-config", "--url", "ws://127.0.0.1:8765/v1/realtime"]) == EXIT_OK
    captured = capsys.readouterr()
    assert "none found (fine: the endpoint is loopback)" in captured.out and not captured.err


def test_demo_cut_short_does_not_claim_the_server_heard_no_speech(capsys):
    code = main(["demo", "--max-seconds", "0.5"])
    err = capsys.readouterr().err
    assert code == EXIT_TIMEOUT
    assert "heard no speech" not in err
    assert "no complete answer within 0.5 s (--max-seconds), before all of the input was sent" in err


def test_fast_run_answered_before_the_bound_is_not_a_timeout(tmp_path, capsys):
    """--fast waits a further second for a turn the server may still find; a --max-seconds ending inside that
    wait reported 'no complete answer' (exit 5) after the turn had completed."""
    src = tmp_path / "in.wav"
    _tone_wav(src)
    with RealtimeServer(realtime=False) as srv:
        code = main(["run", "--url", srv.url, "--input", str(src), "--fast", "--manual", "--max-seconds", "1"])
    captured = capsys.readouterr()
    assert "turn 1: completed" in captured.out
    assert code == EXIT_OK, captured.err
    assert "no complete answer" not in captured.err


def test_a_wrong_path_is_a_configuration_error_that_systemd_does_not_restart(tmp_path, capsys):
    """HTTP 404 at the handshake exited 4 ("could not connect"), which the unit restarts for ever; no restart
    fixes a wrong URL, so it is exit 2 like every other configuration error."""
    src = tmp_path / "in.wav"
    _tone_wav(src)
    with RealtimeServer(realtime=False) as srv:
        wrong = srv.url.replace("/v1/realtime", "/v1/realtim")
        assert wrong != srv.url
        code = main(["run", "--url", wrong, "--input", str(src), "--fast", "--manual"])
    err = capsys.readouterr().err
    assert code == EXIT_CONFIG, err
    assert "HTTP 404 (no realtime endpoint at this path: check the URL)" in err
    from pathlib import Path

    unit = (Path(__file__).parents[2] / "systemd" / "rtedge.service").read_text()
    prevented = next(line for line in unit.splitlines() if line.startswith("RestartPreventExitStatus="))
    assert str(EXIT_CONFIG) in prevented.partition("=")[2].split()


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_ca_bundle_that_is_not_there_is_a_configuration_error(command, tmp_path, capsys, no_key_env):
    """provider.ca_certs naming no file passed check-config, and run failed only on connecting to a wss://
    endpoint (exit 4, restarted for ever), or never with ws://."""
    missing = tmp_path / "ca.pem"
    src = tmp_path / "in.wav"
    _tone_wav(src)
    args = [command, "--url", "ws://127.0.0.1:9/v1/realtime", "--ca-certs", str(missing)]
    code = main(args + (["--input", str(src), "--fast"] if command == "run" else []))
    err = capsys.readouterr().err
    assert code == EXIT_CONFIG, err
    assert f"provider.ca_certs: {missing}: no such file (a PEM bundle of the CAs to trust for wss://)" in err
    assert main(["check-config", "--ca-certs", str(tmp_path)]) == EXIT_CONFIG
    assert f"{tmp_path}: not a file" in capsys.readouterr().err
    missing.write_text("-----BEGIN CERTIFICATE-----\n")
    assert main(["check-config", "--url", "ws://127.0.0.1:9/v1/realtime", "--ca-certs", str(missing)]) == EXIT_OK


@pytest.mark.parametrize("setting", ["audio.mic_rate=30000", "audio.speaker_rate=12000"])
def test_a_device_rate_the_codec_does_not_convert_is_refused_by_check_config(setting, capsys, no_key_env):
    """check-config said OK, and run then sent nothing (mic) or played nothing (speaker), an error a frame."""
    assert main(["check-config", "--set", setting]) == EXIT_CONFIG
    key, _, rate = setting.partition("=")
    assert f"{key}: {rate} Hz is not a rate the codec converts; use one of 8000, 11025" in capsys.readouterr().err


def test_check_config_refuses_a_url_run_could_not_use(capsys, no_key_env):
    assert main(["check-config", "--url", "ws://127.0.0.1:abc/v1/realtime"]) == EXIT_CONFIG
    assert ("--url: provider.url: 'ws://127.0.0.1:abc/v1/realtime' cannot be used: Port could not be cast to "
            "integer value as 'abc'") in capsys.readouterr().err


def test_run_fast_with_several_utterances_ends_after_the_last_answer(tmp_path, speech_dir):
    """--fast sends a recording at once; with several utterances in it the run stopped waiting while the server
    was still reading them, closed the output file under a callback (a traceback on rtedge-dispatch), printed
    a turn after the summary and lost its answer.  It waits for the last answer and says why turns were
    cancelled."""
    from rtedge.audio.wavio import read_wav

    parts = []
    for name in ("turn_on_the_kitchen_lights.wav", "whats_the_weather_tomorrow.wav", "stop.wav",
                 "set_a_timer_for_ten_minutes.wav"):
        samples, rate = read_wav(speech_dir / name)
        assert rate == 16000
        parts += [samples, np.zeros(rate // 2, dtype=np.int16)]
    src = tmp_path / "three.wav"
    with wave.open(str(src), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.concatenate(parts).astype("<i2").tobytes())
    out = tmp_path / "answers.wav"
    with RealtimeServer() as srv:  # the run in a process of its own, as a user runs it (the race needs it)
        child = subprocess.run([sys.executable, "-m", "rtedge", "run", "--url", srv.url, "--input", str(src),
                                "--output", str(out), "--fast"], capture_output=True, text=True, timeout=60)
    assert child.returncode == EXIT_OK, child.stderr
    assert "Traceback" not in child.stderr and "raised on" not in child.stderr
    lines = child.stdout.splitlines()
    turns = [line for line in lines if line.startswith("turn ")]
    assert len(turns) == 4 and turns[-1].startswith("turn 4: completed"), lines
    assert lines[-1].startswith("summary: 4 turn(s)")  # nothing after the summary
    assert "the input held 4 turns; sent at once (--fast)" in child.stderr
    with wave.open(str(out)) as w:
        assert w.getnframes() > 0  # the last answer's audio is in the file


@pytest.mark.parametrize("error, code", [
    (dict(type="server_error", code=None), 4),  # the server failed: a restart may help
    (dict(type="invalid_request_error", code="processing_error"), 4),  # vLLM's failed model run
    (dict(type="invalid_request_error", code="rate_limit_exceeded"), 4),
    (dict(type="invalid_request_error", code="invalid_value"), 2),  # answers what was asked: fix the config
    (dict(type=None, code="model_not_found"), 2),
    (dict(type="invalid_request_error", code="invalid_api_key"), 3),
])
def test_server_errors_exit_by_whether_trying_again_can_help(error, code):
    from rtedge.app.exit_codes import exit_code_for
    from rtedge.errors import ServerError

    assert exit_code_for(ServerError("x", **error)) == code


@pytest.mark.parametrize(("argv", "has_input", "expected"), [
    ([], True, 120.0),  # a WAV sent once: bounded unless said otherwise
    ([], False, None),
    (["--set", "service.max_seconds=0"], True, None),  # "0: none" was read as "unset": 120 s, no warning
    (["--max-seconds", "0"], True, None),
    (["--max-seconds", "30"], True, 30.0),
    (["--max-seconds", "30"], False, 30.0),
])
def test_max_seconds_0_lifts_the_input_runs_bound(no_key_env, argv, has_input, expected):
    from rtedge.app.launch import run_limit
    from rtedge.app.settings_load import config_from_args

    args = build_parser().parse_args(["run", "--url", "ws://127.0.0.1:9/v1/realtime", *argv])
    assert run_limit(config_from_args(args, environ={}), has_input) == expected


def test_fast_run_keeps_transcripts_out_of_the_log_when_told(tmp_path, capsys):
    src = tmp_path / "in.wav"
    _tone_wav(src)
    with RealtimeServer(realtime=False, input_transcript="secret words", reply_text="private answer") as srv:
        code = main(["run", "--url", srv.url, "--input", str(src), "--fast", "--manual", "--set",
                     "logging.transcripts=false", "--set", "session.transcription_model=whisper-1"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK and "turn 1: completed" in out
    assert "secret words" not in out + err and "private answer" not in out + err


def test_check_config_refuses_what_run_refuses_and_takes_what_azure_takes(no_key_env, capsys):
    """check-config passed settings that rtedge run then refused (a transcription session's voice), and
    refused the Azure endpoint as its own error message tells the user to give it (https://...)."""
    assert main(["check-config", "--provider", "openai-transcription", "--set", "session.voice=marin"]) \
        == EXIT_CONFIG
    assert "a transcription session has only input settings; not supported: voice" in capsys.readouterr().err
    assert main(["check-config", "--provider", "azure", "--url", "https://contoso.openai.azure.com",
                 "--model", "my-realtime"]) == EXIT_OK
    assert "wss://contoso.openai.azure.com/openai/v1/realtime?model=my-realtime" in capsys.readouterr().err
    assert main(["check-config", "--provider", "openai", "--url", "https://api.example"]) == EXIT_CONFIG


def test_doctor_reports_a_missing_endpoint_as_a_failed_check(no_key_env, capsys):
    """An endpoint the provider cannot make (Azure without a URL) stopped doctor midway with exit 2."""
    assert main(["doctor", "--provider", "azure"]) == EXIT_DOCTOR
    out = capsys.readouterr().out
    assert "FAIL  endpoint: the azure dialect needs url=" in out
    assert out.rstrip().endswith("problem(s) to fix")


@pytest.mark.parametrize(("argv", "message"), [
    (["--output", "a.wav", "--speaker", "null"], "give --output or --speaker, not both"),
    (["--output", "-"], "--output - is not supported"),  # it wrote a file named "-"
    (["--fast", "--speaker", "raw:-"], "--speaker does not go with --fast"),  # stdout stayed empty
    (["--fast", "--wake-word", "alexa"], "--wake-word does not go with --fast"),
    (["--fast", "--model", "bar", "--url", "ws://127.0.0.1:9/v1/realtime?model=foo"],
     "two models: model='bar' and the url's ?model=foo; give one"),  # the URL's won without a word
])
def test_flags_that_contradict_each_other_are_refused_not_ignored(tmp_path, capsys, monkeypatch, argv,
                                                                   message):
    monkeypatch.chdir(tmp_path)
    _tone_wav(tmp_path / "in.wav")
    url = [] if "--url" in argv else ["--url", "ws://127.0.0.1:9/v1/realtime"]  # never reached
    assert main(["run", *url, "--input", "in.wav", *argv]) == EXIT_CONFIG
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]  # nothing written


def test_transcribe_says_what_to_do_with_a_wav_at_a_rate_it_does_not_convert(tmp_path, capsys):
    """It said "Resampler: unsupported src_rate 12000 Hz"; rtedge run named the file and the fix."""
    src = tmp_path / "in.wav"
    _tone_wav(src, rate=12000)
    assert main(["transcribe", "--url", "ws://127.0.0.1:9/v1/realtime", "--model", "m", "--input",
                 str(src)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"{src}: 12000 Hz is not a rate rtedge converts; resample it to one of 8000, " in err


def test_run_with_the_vllm_provider_points_to_transcribe(tmp_path, capsys):
    """It failed with "the vllm provider takes only a model in session.update; not supported:
    turn_detection", whatever the settings: rtedge transcribe is the command for vLLM."""
    _tone_wav(tmp_path / "in.wav")
    assert main(["run", "--provider", "vllm", "--url", "ws://127.0.0.1:9/v1/realtime", "--input",
                 str(tmp_path / "in.wav"), "--fast"]) == EXIT_CONFIG
    assert "use rtedge transcribe" in capsys.readouterr().err


def test_fast_run_without_a_bound_completes(tmp_path, capsys):
    """--max-seconds 0 (no bound) with --fast gave the waits an infinite timeout, which threading refuses:
    a traceback, exit 1."""
    src = tmp_path / "in.wav"
    _tone_wav(src)
    with RealtimeServer(realtime=False) as srv:
        code = main(["run", "--url", srv.url, "--input", str(src), "--fast", "--manual", "--max-seconds",
                     "0"])
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    assert "turn 1: completed" in captured.out


def test_a_wake_session_whose_usage_log_fails_is_closed_and_ends_the_run(monkeypatch, no_key_env):
    """A usage log that could not be opened once the wake session had connected left that client open (a
    live, billed session nobody held) and each later wake phrase opened another."""
    from rtedge.app import run_wake
    from rtedge.app.logs import Console
    from rtedge.app.settings_load import config_from_args
    from rtedge.errors import ConfigError

    from ..conftest import client_threads, wait_until

    def unwritable(config, client):
        raise ConfigError("service.usage_log: cannot open /gone/usage.jsonl: No such file or directory")

    monkeypatch.setattr(run_wake, "open_usage_log", unwritable)
    with RealtimeServer(realtime=False) as srv:
        config = config_from_args(build_parser().parse_args(["run", "--url", srv.url]), environ={})
        sessions = run_wake._Sessions(config, None, Console("text", False))
        stopped: list[bool] = []
        sessions.stop = lambda: stopped.append(True)
        with pytest.raises(ConfigError):
            sessions.open()
        assert wait_until(lambda: client_threads() == [], timeout=5), client_threads()
        assert wait_until(lambda: srv.close_codes == [1000])  # ended, not dropped
    assert stopped == [True] and isinstance(sessions.fatal, ConfigError)


def test_a_closed_wake_session_is_let_go(no_key_env):
    """The wake run kept every session's tracker, and with it the closed client, for the life of the kiosk."""
    from rtedge.app import run_wake
    from rtedge.app.logs import Console
    from rtedge.app.settings_load import config_from_args

    with RealtimeServer(realtime=False) as srv:
        config = config_from_args(build_parser().parse_args(["run", "--url", srv.url]), environ={})
        sessions = run_wake._Sessions(config, None, Console("text", False))
        for number in (1, 2):
            client = sessions.open()
            client.close()
            sessions.closed(number)
            assert sessions.trackers == [] and sessions.opened == number
    assert sessions.turns == 0
