"""A loudspeaker and a microphone in one simulated room, paced in real time: devices for a VoiceAgent.

:class:`RoomDevices` gives a :class:`~rtedge.voice.agent.VoiceAgent` a speaker (:attr:`RoomDevices.speaker`:
pulls the agent's playback in ``frame_ms`` blocks at ``speaker_rate``, reports ``output_latency``) and a
microphone (:attr:`RoomDevices.mic`: delivers ``frame_ms`` frames at ``rate``), both driven by one named,
paced thread, so the agent runs its real device path (speaker thread -> echo canceller reference,
microphone thread -> canceller -> VAD gate -> barge-in) against a room it cannot see into.

What the speaker is handed sounds ``output_latency`` later, through an optionally saturating loudspeaker
(:func:`rtedge.testing.room.loudspeaker`, ``drive``), a synthetic room
(:func:`rtedge.testing.room.room_impulse_response`, ``rt60_s``, attenuated by ``echo_db``) and, with
``ppm``, a playback clock running that many parts per million faster than the capture clock (windowed-sinc
interpolation, independent of the canceller's own).  The microphone hears that echo, the near-end speech
queued with :meth:`RoomDevices.speak`, and white noise at ``noise_dbfs``.

Timeline: microphone samples are numbered from 0 in delivery order.  :meth:`RoomDevices.speak` returns the
number of the sample at which the queued speech begins; after each frame the agent has handled,
``on_frame_done(count)`` (if set) is called on the room's thread with the number of samples delivered so
far, so a rig can tell, in audio time, which frame made the agent act.

Owns: a paced speaker/microphone pair through a simulated room.  Must not: be imported by the library.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from ..audio.codec import Resampler
from . import room

__all__ = ["RoomDevices", "RoomMicrophone", "RoomSpeaker"]

_TAPS = 32  # windowed-sinc interpolator of the drifting playback clock


class RoomSpeaker:
    """The room's loudspeaker, as a VoiceAgent sees it (``rate``, ``frame_ms``, ``output_latency``)."""

    def __init__(self, room_: RoomDevices, rate: int, frame_ms: int, output_latency: float) -> None:
        self.room, self.rate, self.frame_ms, self.output_latency = room_, rate, frame_ms, output_latency
        self.pull: Callable[[int], np.ndarray] | None = None

    def start(self, pull: Callable[[int], np.ndarray]) -> None:
        """Take the agent's pull function; the room starts once both devices are started."""
        self.pull = pull
        self.room.start()

    def stop(self) -> None:
        """Stop the room (joins its thread; idempotent)."""
        self.room.stop()


class RoomMicrophone:
    """The room's microphone, as a VoiceAgent sees it (``rate``, ``frame_ms``, ``stream_latency`` 0: a
    frame is delivered the moment its last sample is captured)."""

    stream_latency = 0.0

    def __init__(self, room_: RoomDevices, rate: int, frame_ms: int) -> None:
        self.room, self.rate, self.frame_ms = room_, rate, frame_ms
        self.on_frame: Callable[[np.ndarray], None] | None = None

    def start(self, on_frame: Callable[[np.ndarray], None]) -> None:
        """Take the agent's frame callback; the room starts once both devices are started."""
        self.on_frame = on_frame
        self.room.start()

    def stop(self) -> None:
        """Stop the room (joins its thread; idempotent)."""
        self.room.stop()


class RoomDevices:
    """A speaker and a microphone in one simulated room, driven by one paced thread (``rtedge-room``).

    Args:
        rate: microphone rate (Hz); the room is simulated at this rate.
        speaker_rate: the speaker's rate (Hz): what the agent's playback is pulled at.
        frame_ms: device period of both sides.
        output_latency: seconds from a pull to the sound leaving the loudspeaker.
        rt60_s: reverberation time of the synthetic room (its impulse response has unit energy).
        echo_db: gain (dB) of the acoustic path from the loudspeaker to the microphone.
        drive: loudspeaker saturation (``tanh`` drive; 0 = linear).
        ppm: how much faster the playback clock runs than the capture clock.
        noise_dbfs: white noise at the microphone (RMS dBFS).
        seed: seeds the room's impulse response and the noise.
    """

    def __init__(self, *, rate: int = 16000, speaker_rate: int = 24000, frame_ms: int = 20,
                 output_latency: float = 0.04, rt60_s: float = 0.2, echo_db: float = -5.0, drive: float = 0.0,
                 ppm: float = 0.0, noise_dbfs: float = -65.0, seed: int = 0) -> None:
        self.rate, self.frame = rate, rate * frame_ms // 1000
        self.period = frame_ms / 1000.0
        self.speaker = RoomSpeaker(self, speaker_rate, frame_ms, output_latency)
        self.mic = RoomMicrophone(self, rate, frame_ms)
        self.rir = room.room_impulse_response(rate, rt60_s, seed=seed) * 10 ** (echo_db / 20)
        self.drive, self.ratio = drive, 1.0 + ppm * 1e-6
        self.noise = 32768.0 * 10 ** (noise_dbfs / 20)
        #: called on the room's thread after each delivered frame, with the samples delivered so far
        self.on_frame_done: Callable[[int], None] | None = None
        self._rng = np.random.default_rng(seed)
        self._resampler = Resampler(speaker_rate, rate)
        self._speaker_block = speaker_rate * frame_ms // 1000
        self._lead = round(output_latency * rate)  # mic samples from a pull to its sound
        self._stream = np.zeros(0)  # loudspeaker output (room rate, playback clock) from _stream_base on
        self._stream_base = 0
        self._sound = np.zeros(len(self.rir) - 1 + self.frame)  # what sounded lately, capture clock
        self._lock = threading.Lock()  # guards _near and _count
        self._near = np.zeros(0)
        self._count = 0  # microphone samples built so far
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------ rig side
    def speak(self, samples: np.ndarray) -> int:
        """Queue near-end speech (int16 or float at ``rate``) after any still queued; returns the number
        of the microphone sample at which it begins."""
        with self._lock:
            start = self._count + len(self._near)
            self._near = np.concatenate([self._near, np.asarray(samples, dtype=np.float64)])
        return start

    def near_pending(self) -> bool:
        """True while queued near-end speech has not all reached the microphone."""
        with self._lock:
            return len(self._near) > 0

    @property
    def samples_delivered(self) -> int:
        """Microphone samples built so far (the frame being delivered included)."""
        with self._lock:
            return self._count

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the paced thread once both devices have been started (called by them)."""
        if self.speaker.pull is not None and self.mic.on_frame is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rtedge-room", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the paced thread and join it (from any thread but the room's own)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    # ------------------------------------------------------------------------------------ room thread
    def _run(self) -> None:
        t0, k = time.monotonic(), 0
        while not self._stop.wait(max(0.0, t0 + k * self.period - time.monotonic())):
            with self._lock:
                first = self._count
                near, self._near = self._near[:self.frame], self._near[self.frame:]
                self._count += self.frame
            frame = self._echo(first) + self._rng.normal(0.0, self.noise, self.frame)
            frame[:len(near)] += near
            assert self.mic.on_frame is not None
            self.mic.on_frame(room.to_int16(frame))
            if self.on_frame_done is not None:
                self.on_frame_done(first + self.frame)
            k += 1

    def _echo(self, first: int) -> np.ndarray:
        """The echo in microphone samples ``first .. first + frame``: what the loudspeaker sounded then,
        through the room.  The speaker is first handed what sounds ``output_latency`` after this frame."""
        self._fill(int(np.ceil((first + self.frame) * self.ratio)))
        pos = (first + np.arange(self.frame) - self._lead) * self.ratio
        sounded = self._at(pos)
        self._sound = np.concatenate([self._sound[self.frame:], sounded])
        keep = max(0, int(np.floor(pos[0])) - _TAPS - self._stream_base)
        self._stream, self._stream_base = self._stream[keep:], self._stream_base + keep
        return np.convolve(self._sound, self.rir, mode="valid")

    def _fill(self, upto: int) -> None:
        """Pull speaker blocks until the loudspeaker stream holds sample ``upto`` (playback clock)."""
        assert self.speaker.pull is not None
        while self._stream_base + len(self._stream) <= upto:
            block = self._resampler.process(self.speaker.pull(self._speaker_block))
            out = room.loudspeaker(block, self.drive)
            self._stream = np.concatenate([self._stream, out])

    def _at(self, pos: np.ndarray) -> np.ndarray:
        """The loudspeaker stream at playback-clock positions ``pos`` (silence before it began)."""
        if self.ratio == 1.0:
            idx = np.round(pos).astype(np.intp) - self._stream_base
            return np.where(idx >= 0, self._stream[np.clip(idx, 0, None)], 0.0)
        return room.sample_at(self._stream, pos - self._stream_base, _TAPS)
