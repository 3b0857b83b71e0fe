"""Settings: precedence (CLI > RTEDGE_* > file > defaults), every error path with its file line,
the API key's sources and its redaction, ``rtedge check-config``, and the example config."""

from __future__ import annotations

import logging
import tomllib

import attrs
import pytest

from rtedge import SemanticVad, ServerVad, Transcription
from rtedge.app.settings_load import key_lines, load_config, render
from rtedge.app.cli import EXIT_CONFIG, EXIT_OK, main
from rtedge.app.settings import (Config, ProviderSettings, Secret, SessionSettings, all_keys, env_name,
                                 resolve_api_key)
from rtedge.errors import ConfigError

from ..conftest import REPO

KEY = "sk-test-SECRET-abcdef0123456789"


def write(tmp_path, text: str, name: str = "rtedge.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(path, environ=None, overrides=None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(str(path) if path else None, environ or {}, overrides or {})
    return str(info.value).splitlines()


# ---------------------------------------------------------------------------------------------- precedence
def test_defaults_without_file_environment_or_flags():
    config = load_config(None, {}, {})
    assert config == Config()
    assert all(config.where(key) == "default" for key in all_keys())


def test_precedence_cli_over_environment_over_file_over_defaults(tmp_path):
    path = write(tmp_path, '[audio]\nmic = "file-mic"\nspeaker = "file-speaker"\nmic_rate = 48000\n'
                           '[service]\nstats_interval = 60\n')
    env = {"RTEDGE_AUDIO_MIC": "env-mic", "RTEDGE_AUDIO_SPEAKER": "env-speaker"}
    config = load_config(str(path), env, {"audio.mic": ("cli-mic", "--mic")})
    assert config.audio.mic == "cli-mic" and config.where("audio.mic") == "--mic"
    assert config.audio.speaker == "env-speaker"
    assert config.where("audio.speaker") == "environment RTEDGE_AUDIO_SPEAKER"
    assert config.audio.mic_rate == 48000 and config.where("audio.mic_rate") == f"{path}:4"
    assert config.service.stats_interval == 60.0 and isinstance(config.service.stats_interval, float)
    assert config.audio.frame_ms == 20 and config.where("audio.frame_ms") == "default"


def test_strings_from_environment_and_set_are_parsed_by_type():
    env = {"RTEDGE_VAD_GATE": "off", "RTEDGE_RECONNECT_MAX_ATTEMPTS": "0",
           "RTEDGE_SERVICE_STALL_SECONDS": "2.5"}
    config = load_config(None, env, {"logging.transcripts": ("no", "--set logging.transcripts"),
                                     "provider.ping_interval": ("0", "--set provider.ping_interval")})
    assert config.vad.gate is False and config.reconnect.max_attempts == 0
    assert config.service.stall_seconds == 2.5
    assert config.logging.transcripts is False and config.provider.ping_interval == 0.0
    assert config.reconnect.to_backoff().max_attempts is None  # 0 = never give up


def test_main_applies_flags_over_set_and_config(tmp_path, capsys):
    path = write(tmp_path, '[vad]\nbarge_in = "off"\n[audio]\nmic = "null"\n')
    wav = REPO / "rtedge" / "data" / "demo_phrase.wav"
    code = main(["check-config", "--config", str(path), "--set", f"audio.mic=wav:{wav}", "--set",
                 "vad.echo_guard=off", "--url", "ws://127.0.0.1:1/v1/realtime"])
    out = tomllib.loads(capsys.readouterr().out)
    assert code == EXIT_OK
    assert out["audio"]["mic"] == f"wav:{wav}" and out["vad"]["barge_in"] == "off"
    assert out["vad"]["echo_guard"] == "off" and out["provider"]["url"] == "ws://127.0.0.1:1/v1/realtime"


def test_unknown_rtedge_variables_only_warn(caplog):
    env = {"RTEDGE_AUDIO_MICS": "x", "RTEDGE_CODEC": "numpy", "RTEDGE_AUDIO_DEBUG": "1",
           "RTEDGE_CONFIG": "/x", "RTEDGE_LIVE": "1"}
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        load_config(None, env, {})
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "RTEDGE_AUDIO_MICS" in warned[0] and "RTEDGE_AUDIO_MIC?" in warned[0]


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("text, expected", [
    ('[audio]\n\nmics = "x"\n', "{p}:3: audio.mics: unknown key (did you mean audio.mic?)"),
    ('[audoi]\nmic = "x"\n', "{p}:1: audoi: unknown section (did you mean audio?)"),
    ('audio = 3\n', "{p}:1: audio: must be a table ([audio]), got 3"),
    # a key above every section: it was "unknown section", with no hint
    ('mic = "USB"\n', "{p}:1: mic: unknown key outside any [section] (did you mean audio.mic?)"),
    ('[audio]\nmic_rate = "16000"\n', "{p}:2: audio.mic_rate: must be an integer in [8000, 48000] (Hz), "
                                      "got '16000'"),
    ('[audio]\nmic_rate = 16000.0\n', "{p}:2: audio.mic_rate: must be an integer"),
    ('[audio]\nmic_rate = 4000\n',
     "{p}:2: audio.mic_rate: must be an integer in [8000, 48000] (Hz), got 4000"),
    ('[vad]\ngate = 1\n', "{p}:2: vad.gate: must be true or false, got 1"),
    ('[reconnect]\nmax_attempts = true\n', "{p}:2: reconnect.max_attempts: must be an integer"),
    ('[vad]\nbarge_in = "sometimes"\n', "{p}:2: vad.barge_in: must be one of 'server', 'local', 'off', "
                                        "got 'sometimes'"),
    ('[provider]\nping_interval = nan\n', "{p}:2: provider.ping_interval: must be a number in [0, 3600] (s)"),
    ('[audio.extra]\nx = 1\n', "{p}:1: audio.extra: unknown key"),
    ('[session]\ninstructions = """\nmic = 3\n"""\nvoic = "x"\n', "{p}:5: session.voic: unknown key"),
    ('provider.name = "nope"\n', "{p}:1: provider.name: unknown provider 'nope'"),
    ('[provider]\nurl = "https://x/v1?api-key=SEKRIT"\n', "{p}:2: provider.url: must start with ws:// or "
                                                          "wss://, got 'https://x/v1?api-key=***'"),
    ('[audio]\nmic_rate = 44100\nframe_ms = 15\n',
     "{p}:3: audio.frame_ms: 15 ms at audio.mic_rate = 44100 Hz is not a whole number of samples"),
    ('[reconnect]\ninitial_delay = 5\nmax_delay = 1\n', "{p}:3: reconnect.max_delay: must be >= "
                                                        "reconnect.initial_delay (5 s)"),
    ('[audio]\nmic = \n', "{p}: invalid TOML: Invalid value (at line 2, column 7)"),
    ('[audio]\n\nspeaker = "wav:"\n', "{p}:3: audio.speaker: give a path after 'wav:' ('raw:-' is "
                                     "stdin/stdout), got 'wav:'"),
    ('[audio]\nmic = "raw:"\n', "{p}:2: audio.mic: give a path after 'raw:'"),
    ('[wake]\nword = "hey_kiosk"\n', "{p}:2: wake.word: must be one of 'okay_nabu', 'alexa', 'hey_jarvis', "
                                    "'hey_mycroft' or the path of a microWakeWord .json, got 'hey_kiosk'"),
])
def test_file_errors_name_the_key_and_the_line(tmp_path, text, expected):
    path = write(tmp_path, text)
    errors = errors_of(path)
    assert len(errors) == 1 and errors[0].startswith(expected.format(p=path)), errors
    assert "SEKRIT" not in errors[0]


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(tmp_path, '[audio]\nmic_rate = "x"\nspeaker_rate = "y"\n[nope]\n')
    errors = errors_of(path, {"RTEDGE_AUDIO_FRAME_MS": "ten"}, {"vad.gate": ("maybe", "--set vad.gate")})
    assert [e.split(": ")[0] for e in errors] == [f"{path}:2", f"{path}:3", f"{path}:4",
                                                  "environment RTEDGE_AUDIO_FRAME_MS", "--set vad.gate"]


def test_file_problems_that_are_not_toml(tmp_path):
    assert errors_of(tmp_path / "missing.toml") == [
        f"{tmp_path / 'missing.toml'}: cannot read the config file: No such file or directory"]
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[session]\ninstructions = "caf\xe9"\n')
    assert "not UTF-8 text" in errors_of(latin)[0]


def test_environment_and_command_line_errors_name_their_source(tmp_path):
    assert errors_of(None, {"RTEDGE_SERVICE_STALL_SECONDS": "soon"}) == [
        "environment RTEDGE_SERVICE_STALL_SECONDS: service.stall_seconds: "
        "must be a number in [0.1, 3600] (s), got 'soon'"]
    assert errors_of(None, {}, {"audio.mick": ("x", "--set audio.mick")}) == [
        "--set audio.mick: unknown key (did you mean audio.mic?)"]
    assert errors_of(None, {}, {"vad.echo_boost_db": ("500", "--set vad.echo_boost_db")}) == [
        "--set vad.echo_boost_db: must be a number in [0, 90] (dB), got 500.0"]  # the key said once
    assert errors_of(None, {}, {"service.max_seconds": (-1.0, "--max-seconds")})[0].startswith(
        "--max-seconds: service.max_seconds: must be a number in [0, 1e+09] (s), got -1.0")


def test_bad_set_syntax_and_conflicting_flags(capsys):
    assert main(["check-config", "--set", "audio.mic"]) == EXIT_CONFIG
    assert "rtedge: error: --set audio.mic: expected KEY=VALUE" in capsys.readouterr().err
    assert main(["run", "--input", "a.wav", "--mic", "null"]) == EXIT_CONFIG
    assert "give --input or --mic, not both" in capsys.readouterr().err


def test_settings_classes_validate_on_their_own():
    with pytest.raises(ConfigError, match=r"audio.frame_ms: must be an integer in \[5, 100\] \(ms\), got 0"):
        attrs.evolve(Config().audio, frame_ms=0)


def test_key_lines_follow_tables_dotted_keys_and_skip_multiline_strings():
    text = '# c\n[a]\nx = 1\n"y" = 2\nb.c = 3\ns = """\nz = 4\n"""\n[ d ]  # t\ne=5\n'
    assert key_lines(text) == {"a": 2, "a.x": 3, "a.y": 4, "a.b.c": 5, "a.s": 6, "d": 9, "d.e": 10}


def test_session_settings_become_a_session_config():
    assert SessionSettings().to_session_config().turn_detection == ServerVad(
        threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)
    cfg = SessionSettings(turn_detection="semantic_vad", eagerness="low", transcription_model="m",
                          transcription_language="de", noise_reduction="off", max_output_tokens=100,
                          instructions="hi", voice="marin").to_session_config()
    assert cfg.turn_detection == SemanticVad(eagerness="low") and cfg.noise_reduction is None
    assert cfg.transcription == Transcription(model="m", language="de") and cfg.max_output_tokens == 100
    assert SessionSettings(turn_detection="none").to_session_config().turn_detection is None


# ---------------------------------------------------------------------------------------------- secrets
def test_api_key_sources_in_order(tmp_path, caplog):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "-file\n")
    key_file.chmod(0o600)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "api-key").write_text(KEY + "-cred")
    env = {"CREDENTIALS_DIRECTORY": str(creds), "OPENAI_API_KEY": KEY + "-env"}
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        assert resolve_api_key(ProviderSettings(api_key_file=str(key_file)), env).value == KEY + "-file"
    assert not caplog.records  # 0600: no warning
    cred = resolve_api_key(ProviderSettings(), env)
    assert cred.value == KEY + "-cred" and cred.source == "$CREDENTIALS_DIRECTORY/api-key"
    assert resolve_api_key(ProviderSettings(), {"OPENAI_API_KEY": KEY}).source == "$OPENAI_API_KEY"
    assert resolve_api_key(ProviderSettings(), {}) is None
    assert KEY not in repr(cred) + str(cred) + repr(Secret(KEY, "x"))


def test_key_file_problems(tmp_path, caplog):
    open_file = tmp_path / "shared-key"
    open_file.write_text(KEY)
    open_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        resolve_api_key(ProviderSettings(api_key_file=str(open_file)), {})
    assert "readable by group/others; chmod 600" in caplog.text and KEY not in caplog.text
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        resolve_api_key(ProviderSettings(api_key_file=str(empty)), {})
    with pytest.raises(ConfigError, match="cannot read API key file .*: No such file"):
        resolve_api_key(ProviderSettings(api_key_file=str(tmp_path / "none")), {})


# ---------------------------------------------------------------------------------------------- check-config
def test_check_config_prints_valid_toml_with_origins_and_no_secrets(tmp_path, capsys, monkeypatch):
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    key_file.chmod(0o600)
    path = write(tmp_path, f'[provider]\nurl = "wss://example.com/v1/realtime?api-key={KEY}"\n'
                           f'api_key_file = "{key_file}"\n')
    monkeypatch.setenv("RTEDGE_SERVICE_STATS_INTERVAL", "60")
    monkeypatch.setenv("OPENAI_API_KEY", KEY + "-env")
    assert main(["check-config", "--config", str(path), "--set", "audio.mic=null"]) == EXIT_OK
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err
    parsed = tomllib.loads(captured.out)
    assert parsed["provider"]["url"] == "wss://example.com/v1/realtime?api-key=***"
    assert parsed["service"]["stats_interval"] == 60.0 and parsed["audio"]["mic"] == "null"
    assert set(parsed) == {"provider", "session", "audio", "vad", "reconnect", "service", "wake", "logging"}
    lines = captured.out.splitlines()
    assert f"# api key: from {key_file} (redacted)" in lines
    assert any(line.startswith("url = ") and line.endswith(f"# {path}:2") for line in lines)
    assert any(line.startswith("stats_interval = ")
               and line.endswith("# environment RTEDGE_SERVICE_STATS_INTERVAL") for line in lines)
    assert any(line.startswith("mic = ") and line.endswith("# --set audio.mic") for line in lines)


def test_check_config_errors_exit_2_one_line_each(tmp_path, capsys):
    path = write(tmp_path, '[audio]\nmic_rate = "x"\n[service]\nstall_seconds = -1\n')
    assert main(["check-config", "--config", str(path)]) == EXIT_CONFIG
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"rtedge: error: {path}:2: audio.mic_rate: must be an integer in [8000, 48000] (Hz), got 'x'",
        f"rtedge: error: {path}:4: service.stall_seconds: must be a number in [0.1, 3600] (s), got -1"]


def test_check_config_unreadable_key_file_is_an_error(tmp_path, capsys):
    assert main(["check-config", "--api-key-file", str(tmp_path / "nope")]) == EXIT_CONFIG
    captured = capsys.readouterr()
    assert "# api key: error: --api-key-file: cannot read API key file" in captured.out
    assert captured.err.startswith("rtedge: error: --api-key-file: cannot read API key file")


def test_check_config_asks_the_providers_dialect_about_the_session(tmp_path, capsys):
    """What rtedge run refuses before sending anything (exit 2), check-config refuses too; the dialect's
    warnings are shown.  Loopback URLs: no key needed, nothing is connected."""
    url = "ws://127.0.0.1:9/api-ws/v1/realtime"
    refused = write(tmp_path, '[provider]\nname = "qwen"\n[session]\nturn_detection = "semantic_vad"\n')
    assert main(["check-config", "--config", str(refused), "--url", url]) == EXIT_CONFIG
    captured = capsys.readouterr()
    assert "turn_detection" in captured.out  # the effective settings are still printed
    assert captured.err.splitlines() == ["rtedge: error: qwen3-omni-flash-realtime has no semantic_vad "
                                         "(qwen3.5-omni models only); use ServerVad"]
    assert main(["check-config", "--provider", "qwen", "--model", "qwen9-omni-realtime", "--url", url]) == EXIT_OK
    assert "rtedge: warning: model 'qwen9-omni-realtime' is not in rtedge's Qwen capability table" in (
        capsys.readouterr().err)
    assert main(["check-config", "--config", str(REPO / "systemd" / "rtedge.toml"), "--provider", "qwen",
                 "--url", url]) == EXIT_OK
    assert capsys.readouterr().err == ""


def test_render_names_the_key_source_only():
    text = render(load_config(None, {}, {}), Secret(KEY, "$CREDENTIALS_DIRECTORY/api-key"))
    assert KEY not in text and "# api key: from $CREDENTIALS_DIRECTORY/api-key (redacted)" in text


# ---------------------------------------------------------------------------------------------- the example
def test_example_config_is_valid_and_documents_every_key():
    path = REPO / "systemd" / "rtedge.toml"
    config = load_config(str(path), {}, {})
    text = path.read_text()
    lines, where = text.splitlines(), key_lines(text)
    for key in all_keys():
        assert key in where, f"{key} is missing from systemd/rtedge.toml"
        assert lines[where[key] - 2].startswith("#"), f"{key} has no comment above it"
        assert config.where(key) == f"{path}:{where[key]}"
    assert config.reconnect.retry_first_connect is True  # a kiosk may boot before its network
    assert config.service.stop_timeout < 15  # the unit's TimeoutStopSec


def test_file_devices_that_cannot_work_are_refused_by_check_config(tmp_path, capsys):
    """A wav: microphone that does not exist, or a speaker file in a missing directory, passed check-config
    and then failed rtedge run (exit 2)."""
    url = ["--url", "ws://127.0.0.1:1/v1/realtime"]
    missing, out = tmp_path / "nope.wav", tmp_path / "no" / "out.wav"
    assert main(["check-config", "--set", f"audio.mic=wav:{missing}", "--set", f"audio.speaker=wav:{out}",
                 *url]) == 2
    err = capsys.readouterr().err
    assert f"audio.mic: cannot read {missing}: no such file" in err
    assert f"audio.speaker: cannot write {out}: no such directory {tmp_path / 'no'}" in err
    (tmp_path / "in.raw").write_bytes(b"")
    assert main(["check-config", "--set", f"audio.mic=raw:{tmp_path / 'in.raw'}", "--set",
                 "audio.speaker=raw:-", *url]) == 0


def test_an_unreadable_key_file_is_named_with_where_it_was_set(tmp_path, capsys):
    path = write(tmp_path, f'[provider]\napi_key_file = "{tmp_path / "none"}"\n')
    assert main(["check-config", "--config", str(path)]) == EXIT_CONFIG
    assert f"# api key: error: {path}:2: cannot read API key file {tmp_path / 'none'}" in capsys.readouterr().out
    assert main(["run", "--config", str(path), "--mic", "null", "--speaker", "null"]) == 2
    assert f"error: {path}:2: cannot read API key file" in capsys.readouterr().err


def test_the_provider_setting_names_every_provider():
    """Its doc said "openai; more register themselves": the example config named no other provider."""
    from rtedge.protocol.dialects import _DIALECTS  # the built-in ones (a test may register more)

    doc = all_keys()["provider.name"].metadata["doc"]
    text = (REPO / "systemd" / "rtedge.toml").read_text()
    assert all(name in doc.split(": ", 1)[1].split(", ") for name in _DIALECTS), doc
    assert f"# {doc}\n" in text


def test_every_setting_is_documented_with_a_variable_name():
    for key, field in all_keys().items():
        assert field.metadata["doc"], key
        assert env_name(key) == "RTEDGE_" + key.upper().replace(".", "_")


def test_echo_tail_reaches_every_session_agent(tmp_path):
    """``[vad] echo_tail_ms`` (or ``--echo-tail-ms``) is what each ``rtedge run`` session's VoiceAgent gets
    as ``echo_tail_s``, with the other [vad] keys, all under VoiceAgent's own parameter names."""
    import inspect

    from rtedge.app.cli import build_parser
    from rtedge.app.launch import agent_options
    from rtedge.app.settings_load import config_from_args
    from rtedge.voice.agent import VoiceAgent

    path = write(tmp_path, '[vad]\necho_tail_ms = 450\necho_guard = "half_duplex"\ngate = false\n')
    options = agent_options(load_config(path, {}, {}))
    assert options["echo_tail_s"] == 0.45 and options["echo_guard"] == "half_duplex"
    assert options["vad_gate"] is False
    assert set(options) <= set(inspect.signature(VoiceAgent).parameters)
    args = build_parser().parse_args(["run", "--config", str(path), "--echo-tail-ms", "700"])
    assert agent_options(config_from_args(args, {}))["echo_tail_s"] == 0.7  # the flag beats the file
    assert errors_of(write(tmp_path, "[vad]\necho_tail_ms = 9000\n", "big.toml")) == [
        f"{tmp_path / 'big.toml'}:2: vad.echo_tail_ms: must be an integer in [0, 5000] (ms), got 9000"]


def test_the_settings_repr_hides_a_credential_in_the_url():
    """repr(config) (in a traceback, a debugger, a log) showed provider.url as given."""
    shown = repr(ProviderSettings(url="wss://h.example/v1/realtime?authorization=S3CR3T&model=m"))
    assert "S3CR3T" not in shown and "authorization=***&model=m" in shown


def test_rendered_config_reads_back_with_control_characters_in_a_string(tmp_path):
    """check-config printed a DEL in instructions raw: its output did not read back ("Illegal character")."""
    conf = tmp_path / "in.toml"
    conf.write_text('[session]\ninstructions = "a\\u007Fb\\tc\\u0001d"\n')
    text = render(load_config(str(conf), {}, {}), None)
    again = tmp_path / "out.toml"
    again.write_text(text)
    assert load_config(str(again), {}, {}).session.instructions == "a\x7fb\tc\x01d"
