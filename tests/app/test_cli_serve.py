"""``rtedge serve`` as a newcomer uses it: it names the model it serves, its help's examples work as
written, the vLLM dialect lists its model at /v1/models and clients that name none use it, wrong paths get
404 like the real services."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest
import websocket

import rtedge
from rtedge.app.cli import EXIT_AUTH, EXIT_CONNECT, EXIT_OK, build_parser, main
from rtedge.app.exit_codes import exit_code_for
from rtedge.errors import ConfigError, HandshakeError, TransportError
from rtedge.testing import RealtimeServer
from rtedge.testing.vllm_server import DEFAULT_MODEL, VLLMServer
from rtedge.transport.models import models_url, served_models

pytestmark = pytest.mark.usefixtures("no_thread_leak")
REPO = Path(__file__).parents[2]


def _serve(*args: str) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "rtedge", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    first, second = proc.stdout.readline(), proc.stdout.readline()
    return proc, first.split()[-1], second


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("dialect, model", [("openai", "gpt-realtime"), ("xai", "grok-voice-think-fast-1.0"),
                                            ("qwen", "qwen3-omni-flash-realtime"), ("vllm", DEFAULT_MODEL)])
def test_serve_names_the_model_each_dialect_serves(dialect, model):
    proc, url, line = _serve("--dialect", dialect)
    try:
        assert url.startswith("ws://127.0.0.1:")
        assert line.startswith(f"rtedge serve: {dialect} dialect") and model in line, line
    finally:
        _stop(proc)


def test_the_help_examples_of_serve_and_transcribe_work_as_written(tmp_path, capsys, speech_dir):
    for command in ("serve", "transcribe"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        for example in re.findall(r"rtedge transcribe [^\n#]*", text):
            assert "--model NAME" not in example, example
    # the serve help's pair, run as printed (with a real speech file and the server's port)
    proc, url, _ = _serve("--dialect", "vllm", "--reply-text", "turn on the lights")
    try:
        speech = speech_dir / "turn_on_the_kitchen_lights.wav"
        code = main(["transcribe", "--url", url, "--input", str(speech)])
    finally:
        _stop(proc)
    assert code == EXIT_OK
    assert "turn on the lights" in capsys.readouterr().out
    assert "--model NAME" not in (REPO / "README.md").read_text()


def test_vllm_server_lists_its_models_and_a_client_without_a_model_uses_it():
    with VLLMServer(models=("org/first-model", "org/second")) as srv:
        listing = json.load(urllib.request.urlopen(srv.url.replace("ws://", "http://").replace(
            "/v1/realtime", "/v1/models"), timeout=5))
        assert [m["id"] for m in listing["data"]] == ["org/first-model", "org/second"]
        assert served_models(srv.url) == ["org/first-model", "org/second"]
        with rtedge.connect("vllm", url=srv.url) as client:  # no model named
            assert client.wait_sent(0, timeout=5)
            update = srv.wait_for_received("session.update", timeout=5)
        assert update["model"] == "org/first-model"


def test_a_model_list_that_cannot_be_had_says_to_name_the_model():
    with pytest.raises(TransportError, match="name the model") as refused:
        served_models("ws://127.0.0.1:9/v1/realtime", timeout=2)
    # nothing listens there: the likelier fix is starting the server, so that comes first; and it is a
    # connection failure (exit 4, retried, restarted by systemd), not a configuration error (exit 2)
    assert not isinstance(refused.value, ConfigError)
    assert exit_code_for(refused.value) == EXIT_CONNECT
    assert "(Connection refused" in str(refused.value) or "([Errno 111]" in str(refused.value)
    assert "is the server running at that address?" in str(refused.value)
    with VLLMServer(api_key="k") as srv:
        # the key, not the model, is the problem: exit 3 as for a refused handshake (it said "name the model")
        with pytest.raises(HandshakeError, match=r"refused: HTTP 401 \(no API key was given: pass api_key=") as info:
            served_models(srv.url)
        assert info.value.status_code == 401 and exit_code_for(info.value) == EXIT_AUTH
        with pytest.raises(HandshakeError, match=r"refused: HTTP 401 \(the API key was refused"):
            served_models(srv.url, "wrong")
        assert served_models(srv.url, "k") == [DEFAULT_MODEL]


@pytest.mark.parametrize("dialect, good", [("openai", "/v1/realtime"), ("xai", "/v1/realtime"),
                                           ("qwen", "/api-ws/v1/realtime"), ("azure", "/openai/v1/realtime")])
def test_test_servers_answer_404_for_any_other_path(dialect, good):
    with RealtimeServer(dialect=dialect) as srv:
        base = f"ws://127.0.0.1:{srv.port}"
        for path in ("/wrong", "/", "/v1/realtimex", "/v2/realtime"):
            with pytest.raises(websocket.WebSocketBadStatusException) as info:
                websocket.create_connection(base + path, timeout=5)
            assert info.value.status_code == 404, path
        assert srv.connection_count == 0
        ws = websocket.create_connection(base + good + "?model=m", timeout=5)
        ws.close()


def test_a_wav_for_the_transcribe_example(tmp_path):
    """The serve epilog's 'in.wav' can be any WAV: a plain one works."""
    path = tmp_path / "in.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.zeros(1600, "<i2").tobytes())
    assert build_parser().parse_args(["transcribe", "--url", "ws://x:1", "--input", str(path)]).model is None


def test_a_password_in_the_url_is_not_looked_up_as_a_host_name():
    """``ws://user:secret@host:port/...``: the model lookup asked DNS for ``user:secret@host`` (the password
    left the machine, and the lookup failed).  It asks the host, as the WebSocket handshake does."""
    with VLLMServer() as srv:
        with_credentials = srv.url.replace("ws://", "ws://user:s3cret@")
        assert models_url(with_credentials) == f"http://127.0.0.1:{srv.port}/v1/models"
        assert served_models(with_credentials) == [DEFAULT_MODEL]


@pytest.mark.parametrize("status", [429, 502, 503])
def test_a_model_list_from_a_server_still_loading_is_a_connection_failure(status):
    """A proxy before a vLLM still loading answers 502/503 (or 429 when busy): exit 2 never restarted it."""
    import http.server
    import threading

    class Loading(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            self.send_error(status)

        def log_message(self, *args):
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Loading) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, name="test-http", daemon=True)
        thread.start()
        try:
            with pytest.raises(TransportError, match=f"answered HTTP {status}: is the server up") as info:
                served_models(f"ws://127.0.0.1:{httpd.server_address[1]}/v1/realtime", timeout=5)
        finally:
            httpd.shutdown()
            thread.join(5)
    assert not isinstance(info.value, ConfigError) and exit_code_for(info.value) == EXIT_CONNECT
