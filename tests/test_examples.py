"""The examples run as a user would run them (against the local server they start themselves)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO


def run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_text_turn():
    # the text the callbacks print comes before the line printed once the response is done
    assert "Hello! How can I help?\n[completed] tokens:" in run("examples/text_turn.py")


def test_push_to_talk(tmp_path, speech_dir):
    out = run("examples/push_to_talk.py", str(speech_dir / "stop.wav"), str(tmp_path / "answer.wav"))
    assert "assistant: I heard you." in out and (tmp_path / "answer.wav").stat().st_size > 10000


def test_kiosk_with_files_as_devices(tmp_path, speech_dir):
    out = run("examples/kiosk.py", "--mic", f"wav:{speech_dir / 'stop.wav'}", "--speaker",
              f"wav:{tmp_path / 'kiosk.wav'}", "--seconds", "5")
    assert "assistant: I heard you." in out and "interruptions: 0" in out


def test_kiosk_hears_a_phrase_with_a_pause_as_one_turn(tmp_path):
    """The bundled phrase pauses at its comma: with the local server's 200 ms default the kiosk answered
    twice and interrupted its own first answer."""
    phrase = REPO / "rtedge" / "data" / "demo_phrase.wav"
    out = run("examples/kiosk.py", "--mic", f"wav:{phrase}", "--speaker", f"wav:{tmp_path / 'k.wav'}",
              "--seconds", "8")
    assert out.count("assistant: ") == 1 and "interruptions: 0" in out, out


def test_tick_simulation(tmp_path):
    out = run("examples/tick_simulation.py", "--out", str(tmp_path / "sim.wav"))
    assert 'tool call: set_lights {"room": "kitchen", "on": true}' in out and "[cut off after" in out
    assert (tmp_path / "sim.wav").stat().st_size > 100000 and (tmp_path / "sim.txt").read_text() in out


@pytest.mark.parametrize("script", ["text_turn.py", "push_to_talk.py", "kiosk.py"])
def test_help(script):
    assert "usage:" in run(f"examples/{script}", "--help")
