"""Synthesized speech for rigs and tests: espeak-ng through sox, 16-bit mono at any rate.

Needs the ``espeak-ng`` and ``sox`` programs (Debian/Pi OS packages of the same names);
:func:`available` says whether they are here.  Output is deterministic for given arguments
(``sox -D``: no dither).

Owns: synthesized speech for rigs.  Must not: be imported by the library.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np

__all__ = ["VOICES", "available", "synthesize"]

#: espeak-ng voices with variants, for varied test speakers
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+f2", "en-us+m3", "en-gb-scotland", "en-029+f4",
          "en-gb-x-rp+m5", "en-us-nyc", "en-us+f5", "en-gb+m7", "en-us+klatt")


def available() -> bool:
    """True when espeak-ng and sox are installed."""
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def synthesize(text: str, *, voice: str = "en-us", speed: int = 160, pitch: int = 50, rate: int = 16000,
               gap_ms: int = 0) -> np.ndarray:
    """``text`` spoken by espeak-ng (``voice``, ``speed`` in words per minute, ``pitch`` 0-99) as int16
    mono at ``rate``.  Raises RuntimeError when the programs are missing or fail."""
    if not available():
        raise RuntimeError("synthesize needs espeak-ng and sox (apt-get install espeak-ng sox)")
    tts = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-g",
                          str(max(0, gap_ms // 10)), "--stdout", text],
                         capture_output=True, timeout=60, check=False)
    if tts.returncode != 0 or not tts.stdout:
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}: {tts.stderr.decode(errors='replace')}")
    conv = subprocess.run(["sox", "-D", "-t", "wav", "-", "-t", "raw", "-r", str(rate), "-e", "signed",
                           "-b", "16", "-c", "1", "-L", "-"], input=tts.stdout, capture_output=True,
                          timeout=60, check=False)
    if conv.returncode != 0:
        raise RuntimeError(f"sox failed: {conv.stderr.decode(errors='replace')}")
    return np.frombuffer(conv.stdout, dtype="<i2").astype(np.int16)


#: sentences an assistant might say (far-end material for echo rigs)
ANSWERS = (
    "The weather tomorrow will be sunny with a light breeze from the west.",
    "I have set a timer for ten minutes, starting now.",
    "Here is a recipe for a simple tomato soup that takes about twenty minutes.",
    "The kitchen lights are on, and the living room lights are dimmed to half.",
    "Your next appointment is at three o'clock with the dentist on Main Street.",
    "The train to the city leaves from platform two in eight minutes.",
    "I added milk, eggs and bread to your shopping list.",
    "It is currently seventeen degrees outside, with a chance of rain this evening.",
)


def answer(seconds: float, *, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """``seconds`` of assistant-like speech: :data:`ANSWERS` in varied :data:`VOICES` and speeds, with
    0.2-0.9 s pauses between sentences (int16 at ``rate``; seeded)."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    total = int(seconds * rate)
    while sum(len(p) for p in parts) < total:
        parts.append(synthesize(ANSWERS[int(rng.integers(len(ANSWERS)))], rate=rate,
                                voice=VOICES[int(rng.integers(len(VOICES)))], speed=int(rng.integers(140, 190))))
        parts.append(np.zeros(int(rng.integers(2, 10)) * rate // 10, dtype=np.int16))
    return np.concatenate(parts)[:total]
