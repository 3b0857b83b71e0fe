"""VoiceAgent(echo_guard="aec") with a microphone that hears its own loudspeaker through a simulated room.

One paced thread plays the agent's speaker (pulling 20 ms at 24 kHz; the sound leaves 40 ms later)
and feeds its microphone (16 kHz) with that sound through a synthetic room, the user's queued speech
and noise.  The answer of the local server must play through without a single local barge-in, and
the user speaking over it must barge in.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
import pytest

import rtedge
from rtedge.voice.agent import VoiceAgent
from rtedge.audio import aec as aec_mod
from rtedge.audio.codec import Resampler
from rtedge.testing import RealtimeServer, room
from rtedge.audio.wavio import read_wav

from ..conftest import wait_until

pytestmark = [pytest.mark.usefixtures("no_thread_leak"),
              pytest.mark.skipif(not aec_mod.available(), reason="rtedge.audio._aec is not built")]

LONG_ANSWER = "Once upon a time there was a very long story that kept going and going. " * 3


class RoomLoop:
    """A speaker and a microphone in one simulated room, driven by one paced thread."""

    def __init__(self, out_latency: float = 0.04) -> None:
        self.speaker, self.mic = _Sink(self, out_latency), _Source(self)
        self.rir = room.room_impulse_response(16000, 0.2, seed=9) * 0.35
        self._sound = np.zeros(len(self.rir) + 320)  # what the loudspeaker emitted lately, 16 kHz
        self._delay: deque[np.ndarray] = deque([np.zeros(320)] * round(out_latency / 0.02))
        self._near: deque[np.ndarray] = deque()
        self._rs = Resampler(24000, 16000)
        self._noise = np.random.default_rng(4)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def speak(self, samples: np.ndarray) -> None:
        for i in range(0, len(samples), 320):
            self._near.append(np.pad(samples[i:i + 320], (0, max(0, 320 - len(samples[i:i + 320])))))

    def start(self) -> None:
        if self.speaker.pull is not None and self.mic.on_frame is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="test-room", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _run(self) -> None:
        t0, k = time.monotonic(), 0
        while not self._stop.wait(max(0.0, t0 + k * 0.02 - time.monotonic())):
            played = self._rs.process(self.speaker.pull(480))  # 20 ms at 24 kHz -> 320 at 16 kHz
            self._delay.append(played.astype(np.float64))
            self._sound = np.concatenate([self._sound[320:], self._delay.popleft()])
            echo = np.convolve(self._sound, self.rir, mode="valid")[-320:]
            near = self._near.popleft() if self._near else np.zeros(320)
            frame = echo + near + self._noise.normal(0, 15, 320)
            self.mic.on_frame(room.to_int16(frame))
            k += 1


class _Sink:
    rate, frame_ms = 24000, 20

    def __init__(self, loop: RoomLoop, latency: float) -> None:
        self.loop, self.output_latency, self.pull = loop, latency, None

    def start(self, pull) -> None:
        self.pull = pull
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()


class _Source:
    rate, frame_ms, stream_latency = 16000, 20, 0.0

    def __init__(self, loop: RoomLoop) -> None:
        self.loop, self.on_frame = loop, None

    def start(self, on_frame) -> None:
        self.on_frame = on_frame
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()


def test_aec_plays_the_answer_without_false_barge_in_and_the_user_still_barges_in(speech_dir):
    phrase, _ = read_wav(speech_dir / "stop.wav")
    near = room.to_int16(room.scale_to(phrase, -26.0, active=np.abs(phrase) > 300))
    session = rtedge.SessionConfig(turn_detection=None)
    with RealtimeServer(reply_text=LONG_ANSWER, seed=21) as srv, \
            rtedge.connect(url=srv.url, session=session) as client:
        loop = RoomLoop()
        agent = VoiceAgent(client, loop.mic, loop.speaker, barge_in="local", echo_guard="aec")
        runner = threading.Thread(target=agent.run, kwargs={"max_seconds": 60}, name="test-agent-run",
                                  daemon=True)
        runner.start()
        client.create_response()
        # 7 s of the answer through the room: the canceller converges, nothing barges in
        assert wait_until(lambda: agent.playback.stats.played_samples > 7 * 24000, timeout=30)
        assert not agent.interruptions and agent.aec.converged
        # the attenuation is a smoothed recent figure: on a loaded machine the room loop's frames come in
        # bursts and it dips, so wait for it rather than sample it once
        assert wait_until(lambda: agent.aec.attenuation_db > 20.0, timeout=10), agent.aec.attenuation_db
        loop.speak(near)
        assert wait_until(lambda: agent.stats.interruptions >= 1, timeout=5)
        got = agent.interruptions[0]
        assert got.source == "local" and got.truncated and got.cancelled
        agent.stop()
        runner.join(5)
    assert agent.aec.stats.realigns == 0
