"""``rtedge serve --dialect ...``: the local server speaks every provider's protocol.

Each dialect's server runs in its own process (started together, so the whole test costs about one
interpreter start); a client of that provider connects to the URL the command prints, does one turn
(vLLM: one utterance), and SIGTERM ends the server with exit 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import rtedge
from rtedge.app.cli import main
from rtedge.protocol import events as ev

pytestmark = [pytest.mark.usefixtures("no_thread_leak"), pytest.mark.timeout(60)]

PATHS = {"openai": "/v1/realtime", "azure": "/openai/v1/realtime", "xai": "/v1/realtime",
         "qwen": "/api-ws/v1/realtime", "vllm": "/v1/realtime"}
MODELS = {"openai": None, "azure": "my-deployment", "xai": None, "qwen": None,
          "vllm": "mistralai/Voxtral-Mini-4B-Realtime-2602"}


def _start(dialect: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "rtedge", "serve", "--dialect", dialect, "--port", "0",
                             "--reply-text", f"hello from {dialect}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _turn(dialect: str, url: str) -> str:
    with rtedge.connect(dialect, url=url, model=MODELS[dialect], api_key="k") as client:
        if dialect == "vllm":
            client.send(ev.InputAudioBufferCommit())
            client.append_audio(np.full(8000, 1000, dtype=np.int16), rate=16000)
            client.send(ev.InputAudioBufferCommit(final=True))
            done = client.wait_for("transcription.done", timeout=10)
            assert isinstance(done, ev.TranscriptionDone)
            return done.text
        client.send_text("hi")
        done = client.wait_for("response.done", timeout=10)
        assert done.status == "completed"
        item = client.state.output_items[done.response["output"][0]["id"]]
        return item.text[0]


def test_serve_speaks_every_dialect() -> None:
    procs = {dialect: _start(dialect) for dialect in PATHS}
    try:
        urls = {}
        for dialect, proc in procs.items():
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("rtedge serve: listening on ws://127.0.0.1:"), (dialect, line)
            urls[dialect] = line.split()[-1]
            assert urls[dialect].endswith(PATHS[dialect]), (dialect, line)
        with ThreadPoolExecutor(len(urls)) as pool:  # the servers speak at real-time pace
            said = dict(zip(urls, pool.map(_turn, urls, urls.values())))
        assert said == {dialect: f"hello from {dialect}" for dialect in PATHS}
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for dialect, proc in procs.items():
            assert proc.wait(timeout=10) == 0, dialect
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def test_serve_help_names_the_dialects(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--dialect {openai,azure,xai,qwen,vllm}" in out and "rtedge serve --dialect xai" in out
    with pytest.raises(SystemExit) as info:
        main(["serve", "--dialect", "gemini"])
    assert info.value.code == 2
