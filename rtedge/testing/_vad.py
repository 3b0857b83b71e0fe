"""An energy-based stand-in for the server's voice activity detection.

Theory of operation
-------------------
Audio is analysed in 20 ms frames (any remainder waits for the next append).
A frame is *voiced* when its RMS level exceeds a threshold derived from the
session's ``threshold`` (0..1): ``level_dbfs = -70 + 60 * threshold``, so the
default 0.5 means -40 dBFS, 0 accepts nearly anything above digital silence
and 1 needs a near full-scale signal.  While in speech the threshold drops by
6 dB (hysteresis), so soft word endings do not split an utterance.

* Speech **starts** once ``ONSET_FRAMES`` consecutive voiced frames are seen.
  The reported ``audio_start_ms`` is the onset minus ``prefix_padding_ms``
  (never before the first sample the buffer still holds), which is how the
  real server describes it: the start of the audio handed to the model.
* Speech **stops** after ``silence_duration_ms`` without a voiced frame;
  ``audio_end_ms`` is the end of that silence (the real server also includes
  the silence duration).

All positions are sample counts since the start of the session's input audio;
the caller converts them to milliseconds.  The detector holds no audio itself.

Owns: the test server's energy VAD.  Must not: do I/O.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

__all__ = ["EnergyVad", "VadEvent"]

FRAME_MS = 20
ONSET_FRAMES = 3
SEMANTIC_SILENCE_MS = {"low": 1200, "medium": 700, "auto": 700, "high": 400}


class VadEvent:
    """A speech boundary: ``kind`` is ``"start"`` or ``"stop"``; ``sample`` its position."""

    __slots__ = ("kind", "sample")

    def __init__(self, kind: str, sample: int) -> None:
        self.kind = kind
        self.sample = sample

    def __repr__(self) -> str:
        return f"VadEvent({self.kind!r}, {self.sample})"


class EnergyVad:
    """Frame-based speech start/stop detection.

    Args:
        turn_detection: The session's normalized ``turn_detection`` object.
        rate: Sample rate of the audio fed to :meth:`feed`.
    """

    def __init__(self, turn_detection: Mapping[str, Any], rate: int) -> None:
        self.rate = rate
        self.frame = rate * FRAME_MS // 1000
        threshold = float(turn_detection.get("threshold", 0.5))
        self.level = 32768.0 * 10 ** ((-70.0 + 60.0 * threshold) / 20.0)
        self.prefix = int(turn_detection.get("prefix_padding_ms", 300)) * rate // 1000
        if turn_detection.get("type") == "semantic_vad":
            silence_ms = SEMANTIC_SILENCE_MS[str(turn_detection.get("eagerness", "auto"))]
        else:
            silence_ms = int(turn_detection.get("silence_duration_ms", 200))
        self.silence_frames = max(1, math.ceil(silence_ms / FRAME_MS))
        self.reset(0)

    def reset(self, position: int) -> None:
        """Forget any speech in progress; analysis resumes at ``position``."""
        self.position = position  # first sample of the next frame
        self.floor = position  # audio before this is no longer in the buffer
        self.pending = np.zeros(0, dtype=np.int16)
        self.in_speech = False
        self.run = 0  # consecutive voiced frames (onset) or unvoiced frames (in speech)

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        """Analyse newly appended samples.

        Args:
            samples: int16 samples continuing the stream.

        Returns:
            The speech boundaries found, in order.
        """
        data = np.concatenate([self.pending, samples]) if self.pending.size else samples
        events: list[VadEvent] = []
        usable = data.size - data.size % self.frame
        frames = data[:usable].astype(np.float64).reshape(-1, self.frame)
        levels = np.sqrt(np.mean(frames * frames, axis=1)) if usable else np.zeros(0)
        for level in levels:
            event = self._step(float(level))
            self.position += self.frame
            if event is not None:
                events.append(event)
        self.pending = data[usable:].copy()
        return events

    def _step(self, level: float) -> VadEvent | None:
        if not self.in_speech:
            self.run = self.run + 1 if level > self.level else 0
            if self.run >= ONSET_FRAMES:
                onset = self.position + self.frame - self.run * self.frame
                self.in_speech, self.run = True, 0
                return VadEvent("start", max(self.floor, onset - self.prefix))
            return None
        self.run = self.run + 1 if level <= self.level / 2 else 0
        if self.run >= self.silence_frames:
            self.in_speech, self.run = False, 0
            return VadEvent("stop", self.position + self.frame)
        return None
