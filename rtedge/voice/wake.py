"""Wake word: no session until the kiosk is addressed, and no word of the command lost.

Theory of operation
-------------------
:class:`WakeWordDetector` runs a microWakeWord model (the optional extra
``rtedge[wake]``: the ``pymicro-wakeword`` wheel, which ships ``okay_nabu``,
``alexa``, ``hey_jarvis`` and ``hey_mycroft`` and a TensorFlow Lite runtime)
on 10 ms chunks of 16 kHz audio; other microphone rates are resampled.  A
custom model is given by the path of its microWakeWord JSON (the ``.tflite``
named in it lies beside it).  Where the extra is not installed -- there is no
wheel for 32-bit ARM -- building a detector raises :class:`ConfigError` with
one line saying so.

:class:`WakeAgent` owns the microphone and the speaker for its whole life and
alternates two phases:

* **listening** -- no session is open; every microphone frame goes to the
  detector and the VAD gate (and into a short ring of the last ``pre_roll_ms``);
* **in session** -- on a detection the ``on_wake`` hook runs, a client is
  connected (or the one kept warm is taken, ``keep_warm=True``), and a
  :class:`~rtedge.voice.agent.VoiceAgent` drives it with the same devices.  The
  detector fires 140-260 ms after the phrase ends, and a command spoken
  without a pause starts in there, so the audio sent starts where the phrase
  ended: at the start of the latest quiet stretch (>= 60 ms below the gate's
  threshold) within ``pre_roll_ms`` before the detection, or, when the
  command ran straight on, :data:`DETECTION_LATENCY_MS` before it (some
  of the phrase's end rather than a lost word).  That audio and everything
  after it is buffered while the connection opens and handed to the agent
  first, in order, on the microphone thread: nothing said after the wake
  phrase is lost.  The buffer is bounded (``max_buffer_s``); audio
  beyond it is dropped oldest first, counted and logged.  One VAD gate sees
  the whole microphone stream, listening included, and each session's agent
  uses it: a command that follows the wake phrase without a pause finds the
  gate open with the room's noise floor (a gate created at the wake would
  take the speech itself for its floor and cut the command).  After
  ``idle_close_s`` with no speech (local gate shut, server buffer idle) and
  no response, the session is closed gracefully, ``on_close`` runs and
  listening resumes.

Threads: the devices' threads call in; the thread calling :meth:`WakeAgent.run`
connects, runs the hooks and closes sessions; each session's agent runs on a
thread named ``rtedge-wake-session``; ``keep_warm`` connects ahead on
``rtedge-wake-warm``.  All are joined before :meth:`run` returns.

Owns: ``WakeAgent``: wake-word detection and one voice session per wake.  Must not: send microphone audio to a
server before the wake word.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from .agent import VoiceAgent
from ..audio.codec import Resampler
from ..audio.vad import VadGate, VadSettings
from ..errors import ConfigError, RtEdgeError

__all__ = ["BUILTIN_MODELS", "WakeAgent", "WakeStats", "WakeWordDetector", "available"]

log = logging.getLogger("rtedge")

#: models inside the pymicro-wakeword wheel
BUILTIN_MODELS = ("okay_nabu", "alexa", "hey_jarvis", "hey_mycroft")
RATE = 16000
#: look-back when the command ran straight on (the detector fires 140-260 ms after the phrase ends on
#: espeak-ng voices, later inside continuous speech)
DETECTION_LATENCY_MS = 400
_QUIET_MS = 60  # a quiet stretch this long marks the end of the wake phrase
_CHUNK = 160  # 10 ms: the feature front end's step
#: why the wake word cannot run here (the extra is not installed)
UNAVAILABLE = ("the wake word needs the optional extra: pip install 'rtedge[wake]' (pymicro-wakeword has "
               "wheels for x86_64 and aarch64 with glibc >= 2.35, none for 32-bit ARM)")


def _library() -> Any:
    """The pymicro_wakeword module, or ConfigError (one line) when it cannot load here."""
    try:
        return importlib.import_module("pymicro_wakeword")
    except (ImportError, OSError) as exc:
        raise ConfigError(f"{UNAVAILABLE}; importing it failed: {type(exc).__name__}") from None


def available() -> bool:
    """True when the ``wake`` extra is installed and loads here."""
    try:
        _library()
    except ConfigError:
        return False
    return True


def model_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a wake word model (not a built-in name nor a ``.json`` path), or None.
    Whether the file loads is :class:`WakeWordDetector`'s to find out."""
    if name in BUILTIN_MODELS or name.endswith(".json"):
        return None
    return (f"must be one of {', '.join(map(repr, BUILTIN_MODELS))} or the path of a microWakeWord .json, "
            f"got {name!r}")


class WakeWordDetector:
    """A streaming microWakeWord detector.

    Args:
        model: a built-in name (:data:`BUILTIN_MODELS`) or the path of a microWakeWord JSON file.
        rate: sample rate of the audio given to :meth:`process` (resampled to 16 kHz when different).
        refractory_s: after a detection, the next one may come only this much later.
        cutoff: probability (0..1) above which the model's averaged output is a detection; None keeps
            the model's own (0.85 for ``okay_nabu``).  Lower detects more in broadband noise and wakes
            falsely more often: measure with ``benchmarks/wake.py`` before changing it.

    Raises:
        ConfigError: the extra is missing, the model is unknown or its files cannot be loaded.
    """

    def __init__(self, model: str | Path, *, rate: int = RATE, refractory_s: float = 1.5,
                 cutoff: float | None = None) -> None:
        lib = _library()
        name = str(model)
        try:
            if name in BUILTIN_MODELS:
                self._mww = lib.MicroWakeWord.from_builtin(lib.Model(name))
            elif name.endswith(".json"):
                if not Path(name).is_file():
                    raise ConfigError(f"wake word model {name!r}: no such file")
                self._mww = lib.MicroWakeWord.from_config(Path(name))
            else:
                raise ConfigError(f"wake word {model_name_problem(name)}")
        except ConfigError:
            raise
        except KeyError as exc:  # a JSON that is not a microWakeWord model's (KeyError: 'micro')
            raise ConfigError(f"wake word model {name!r} cannot be loaded: no {exc} key; is it a "
                              "microWakeWord model's JSON (with the .tflite it names beside it)?") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"wake word model {name!r} cannot be loaded: {exc}") from None
        if cutoff is not None:
            if not 0.0 < cutoff < 1.0:
                raise ConfigError(f"wake word cutoff must be in (0, 1), got {cutoff!r}")
            self._mww.probability_cutoff = float(cutoff)
        self.phrase = str(self._mww.wake_word)
        self.rate, self.refractory = rate, int(refractory_s * rate)
        self._features = lib.MicroWakeWordFeatures()
        self._resampler = Resampler(rate, RATE) if rate != RATE else None
        self._pending = np.zeros(0, dtype=np.int16)
        self._position = 0  # samples (at ``rate``) given to process() so far
        self._quiet_until = 0
        self.detections = 0

    def __repr__(self) -> str:
        return f"WakeWordDetector({self.phrase!r}, rate={self.rate})"

    def process(self, samples: np.ndarray) -> list[int]:
        """Feed int16 mono audio at ``rate``; returns the stream positions (samples since the start,
        at ``rate``) at which the wake phrase was detected in it (usually none, at most one)."""
        start = self._position
        self._position += len(samples)
        x = self._resampler.process(samples) if self._resampler is not None else samples
        data = np.concatenate([self._pending, x]) if self._pending.size else x
        n = len(data) // _CHUNK * _CHUNK
        found = []
        # one call per block: the front end steps 10 ms at a time and yields one feature row per step
        for k, features in enumerate(self._features.process_streaming(data[:n].tobytes())):
            if not self._mww.process_streaming(features):
                continue
            at = start + round(((k + 1) * _CHUNK - len(self._pending)) * self.rate / RATE)
            if at >= self._quiet_until:
                found.append(at)
                self.detections += 1
                self._quiet_until = at + self.refractory
        self._pending = np.array(data[n:])
        return found

    def reset(self) -> None:
        """Forget the audio heard so far (the stream position goes on)."""
        self._mww.reset()
        self._features.reset()
        self._pending = np.zeros(0, dtype=np.int16)
        if self._resampler is not None:
            self._resampler.reset()

    def close(self) -> None:
        self._mww.close()


@attrs.define(eq=False)
class WakeStats:
    """Counters of a WakeAgent (read them; the agent writes them)."""

    wakes: int = 0  #: detections that opened (or tried to open) a session
    sessions: int = 0  #: sessions opened
    connect_failures: int = 0
    buffered_seconds: float = 0.0  #: audio held while connecting, summed over sessions
    dropped_seconds: float = 0.0  #: audio dropped because the connect outlasted ``max_buffer_s``
    #: process time the detector spent per second of audio listened to (a fraction of one core); its first
    #: seconds cost several times the steady figure (warm-up), so read it over a long run
    detector_cpu: float = 0.0
    listened_s: float = 0.0  #: seconds of audio the detector listened to (outside sessions)


class _Tap:
    """The devices as a VoiceAgent sees them during one session (the real ones keep running)."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.rate, self.frame_ms = device.rate, getattr(device, "frame_ms", 20)
        self.callback: Any = None
        self.finished = getattr(device, "finished", threading.Event())

    def __getattr__(self, name: str) -> Any:  # output_latency, stream_latency, stats...
        return getattr(self.device, name)

    def start(self, callback: Any) -> None:
        self.callback = callback

    def stop(self) -> None:
        self.callback = None


_LISTEN, _WAKING, _SESSION = "listening", "waking", "session"


class WakeAgent:
    """Listen for a wake word; hold a voice session only while addressed.

    Args:
        connect: returns a connected :class:`rtedge.Client` (called once per session, on the thread
            running :meth:`run`, or ahead of time on ``rtedge-wake-warm`` with ``keep_warm``).
        mic, speaker: the devices (as for :class:`~rtedge.voice.agent.VoiceAgent`); started once by :meth:`run`.
        wake: a :class:`WakeWordDetector`, or a model name / JSON path to build one.
        idle_close_s: close the session after this long with no speech and no response.
        keep_warm: connect the next session ahead of time, so a wake does not wait for the handshake.
        pre_roll_ms: how far before the detection the end of the wake phrase is looked for (the audio
            sent starts there; see the module docstring).
        max_buffer_s: bound of the audio held while connecting.
        on_wake, on_open, on_close: optional hooks (an earcon, an LED), called on the thread running
            :meth:`run` with the session number: at the detection, once the session's client is connected
            (after the detection: a connect that fails calls neither ``on_open`` nor ``on_close``), and
            when it has closed.
        agent_options: keyword arguments for each session's VoiceAgent (``barge_in``, ``echo_guard``...).

    Raises:
        ConfigError: the wake word cannot be loaded (the message says why), or bad settings.
    """

    def __init__(self, connect: Callable[[], Any], mic: Any, speaker: Any, *, wake: WakeWordDetector | str | Path,
                 idle_close_s: float = 8.0, keep_warm: bool = False, pre_roll_ms: int = 1000,
                 max_buffer_s: float = 30.0, on_wake: Callable[[int], Any] | None = None,
                 on_open: Callable[[int], Any] | None = None, on_close: Callable[[int], Any] | None = None,
                 **agent_options: Any) -> None:
        if not 0.5 <= idle_close_s <= 3600:
            raise ConfigError(f"idle_close_s must be in [0.5, 3600], got {idle_close_s!r}")
        if not 0 <= pre_roll_ms <= 2000:
            raise ConfigError(f"pre_roll_ms must be in [0, 2000], got {pre_roll_ms!r}")
        self.detector = wake if isinstance(wake, WakeWordDetector) else WakeWordDetector(wake, rate=mic.rate)
        self.connect, self.mic, self.speaker = connect, mic, speaker
        self.idle_close_s, self.keep_warm = idle_close_s, keep_warm
        self.on_wake, self.on_open, self.on_close = on_wake, on_open, on_close
        self.agent_options = agent_options
        self.stats = WakeStats()
        self.agent: Any = None  #: the current session's VoiceAgent (None while listening)
        self._mic_tap, self._spk_tap = _Tap(mic), _Tap(speaker)
        gate = agent_options.get("vad_gate", True)
        self.gate = VadGate(mic.rate, gate if isinstance(gate, VadSettings) else VadSettings())
        self._lock = threading.Lock()  # guards _state, _buffer, _ring
        self._state = _LISTEN
        self._ring: deque[tuple[np.ndarray, bool]] = deque()  # (frame, voiced) before a detection
        self._ring_samples, self._pre_roll = 0, mic.rate * pre_roll_ms // 1000
        self._buffer: deque[np.ndarray] = deque()
        self._buffer_samples, self._max_buffer = 0, int(max_buffer_s * mic.rate)
        self._woken = threading.Event()
        self._stop = threading.Event()
        self._cpu = 0.0
        self._warm: Any = None
        self._warm_thread: threading.Thread | None = None

    @property
    def state(self) -> str:
        """``"listening"``, ``"waking"`` (connecting) or ``"session"``."""
        return self._state

    def stop(self) -> None:
        """Make :meth:`run` return (from any thread)."""
        self._stop.set()
        self._woken.set()

    # ------------------------------------------------------------------------------------------ main loop
    def run(self, *, max_seconds: float | None = None, until_input_ends: bool = False) -> None:
        """Listen and hold sessions until :meth:`stop`, ``max_seconds``, or (``until_input_ends``) a finite
        microphone ended and its last session closed."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.speaker.start(self._pull)
        self.mic.start(self._on_frame)
        try:
            if self.keep_warm:
                self._warm_up()
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    return
                if until_input_ends and self.mic.finished.is_set() and self._state == _LISTEN:
                    return
                if self._woken.wait(0.05) and not self._stop.is_set():
                    self._woken.clear()
                    self._session(deadline, until_input_ends)
        finally:
            self.mic.stop()
            self.speaker.stop()
            self._close_warm()

    def _session(self, deadline: float | None, until_input_ends: bool) -> None:
        number = self.stats.sessions + 1
        self._hook(self.on_wake, number)
        client = self._take_client()
        if client is None:
            self._back_to_listening()
            return
        self.stats.sessions = number
        self._hook(self.on_open, number)
        agent = VoiceAgent(client, self._mic_tap, self._spk_tap, **self.agent_options)
        agent.gate = self.gate  # the gate that has been following the room while listening
        thread = threading.Thread(target=agent.run, name="rtedge-wake-session", daemon=True)
        self.agent = agent
        thread.start()
        with self._lock:  # the mic thread hands the buffer to the agent before the next live frame
            self._state = _SESSION
        try:
            self._hold(agent, client, deadline, until_input_ends)
        finally:
            agent.stop()
            thread.join(10)
            client.close()
            self.agent = None
            self._back_to_listening()
            self._hook(self.on_close, number)
            if self.keep_warm and not self._stop.is_set():
                self._warm_up()

    def _hold(self, agent: Any, client: Any, deadline: float | None, until_input_ends: bool) -> None:
        """Until the session has been idle for ``idle_close_s`` (or the link ended, or a stop)."""
        quiet_since = time.monotonic()
        while not self._stop.wait(0.05) and not client.closed:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            with self._lock:
                pending = bool(self._buffer)
            if pending or agent.gate.is_open or not agent.idle():
                quiet_since = now
            elif now - quiet_since >= self.idle_close_s:
                log.info("wake: closing session %d after %.1f s without speech", self.stats.sessions,
                         self.idle_close_s)
                return
            if until_input_ends and self.mic.finished.is_set() and now - quiet_since >= 1.0:
                return

    def _back_to_listening(self) -> None:
        with self._lock:
            self._state = _LISTEN
            self._buffer.clear()
            self._buffer_samples = 0
            self._ring.clear()
            self._ring_samples = 0
            self.detector.reset()

    def _hook(self, hook: Callable[[int], Any] | None, number: int) -> None:
        if hook is None:
            return
        try:
            hook(number)
        except Exception:  # a hook must not stop the kiosk
            log.exception("wake: a hook raised")

    # ------------------------------------------------------------------------------------------ clients
    def _take_client(self) -> Any:
        warm = self._take_warm()
        if warm is not None:
            return warm
        try:
            return self.connect()
        except RtEdgeError as exc:
            self.stats.connect_failures += 1
            log.error("wake: could not connect: %s", exc)
            return None

    def _warm_up(self) -> None:
        def connect() -> None:
            try:
                self._warm = self.connect()
            except RtEdgeError as exc:
                self.stats.connect_failures += 1
                log.warning("wake: could not connect ahead: %s", exc)

        self._warm_thread = threading.Thread(target=connect, name="rtedge-wake-warm", daemon=True)
        self._warm_thread.start()

    def _take_warm(self) -> Any:
        if self._warm_thread is not None:
            self._warm_thread.join()
            self._warm_thread = None
        client, self._warm = self._warm, None
        if client is not None and client.closed:
            return None
        return client

    def _close_warm(self) -> None:
        client = self._take_warm()
        if client is not None:
            client.close()

    # ------------------------------------------------------------------------------------------ devices
    def _pull(self, n: int) -> np.ndarray:
        """Speaker thread: the session's audio, silence while listening."""
        pull = self._spk_tap.callback
        return pull(n) if pull is not None else np.zeros(n, dtype=np.int16)

    def _on_frame(self, frame: np.ndarray) -> None:
        """Microphone thread."""
        deliver = self._mic_tap.callback
        with self._lock:
            state = self._state
            if state == _WAKING or (state == _SESSION and deliver is None):
                self._hold_frame(frame)  # still connecting, or the agent has not started its mic yet
                return
            held = list(self._buffer)
            self._buffer.clear()
            self._buffer_samples = 0
        if state == _SESSION:
            for f in (*held, frame):
                deliver(f)
            return
        self._listen(frame)

    def _listen(self, frame: np.ndarray) -> None:
        t0 = time.thread_time()
        hits = self.detector.process(frame)
        self._cpu += time.thread_time() - t0
        self.gate.process(frame)  # output unused: it only follows the noise floor and the speech state
        self.stats.listened_s += len(frame) / self.mic.rate
        self.stats.detector_cpu = self._cpu / self.stats.listened_s
        with self._lock:
            self._ring.append((frame, self._voiced(frame)))
            self._ring_samples += len(frame)
            while self._ring_samples - len(self._ring[0][0]) >= self._pre_roll + len(frame):
                self._ring_samples -= len(self._ring.popleft()[0])
            if not hits:
                return
            audio = self._after_phrase(self.detector._position - hits[0])
            self._ring.clear()
            self._ring_samples = 0
            self._state = _WAKING
            self.stats.wakes += 1
            self._buffer.clear()
            self._buffer_samples = 0
            self._hold_frame(audio)
        log.info("wake: %r heard", self.detector.phrase)
        self._woken.set()

    def _voiced(self, frame: np.ndarray) -> bool:
        floor = self.gate.noise_floor_dbfs
        wide = frame.astype(np.int64)
        power = int(np.dot(wide, wide)) / max(1, len(frame)) / 32768.0 ** 2
        return floor is not None and power > 10 ** ((floor + self.gate.settings.threshold_db) / 10)

    def _after_phrase(self, late: int) -> np.ndarray:
        """The ring's audio from the end of the wake phrase on; ``late``: samples of the ring after the
        detection point (see the module docstring).  The lock is held."""
        frames = list(self._ring)
        audio = np.concatenate([f for f, _ in frames])
        quiet_needed = self.mic.rate * _QUIET_MS // 1000
        ends = np.cumsum([len(f) for f, _ in frames])
        run, start = 0, None
        for i in range(len(frames) - 1, -1, -1):  # the latest quiet stretch, newest first
            if not frames[i][1]:
                run += len(frames[i][0])
                start = int(ends[i] - len(frames[i][0]))
            elif run >= quiet_needed:
                break
            else:
                run, start = 0, None
        if start is not None and run >= quiet_needed:
            return audio[start:]
        back = late + self.mic.rate * DETECTION_LATENCY_MS // 1000
        return audio[-min(len(audio), back):]

    def _hold_frame(self, frame: np.ndarray) -> None:
        """Keep audio for the session being opened (the lock is held)."""
        if not len(frame):
            return
        self._buffer.append(frame)
        self._buffer_samples += len(frame)
        self.stats.buffered_seconds += len(frame) / self.mic.rate
        while self._buffer_samples > self._max_buffer:
            lost = self._buffer.popleft()
            self._buffer_samples -= len(lost)
            self.stats.dropped_seconds += len(lost) / self.mic.rate
            log.warning("wake: connecting took longer than max_buffer_s; dropped %.2f s of audio",
                        len(lost) / self.mic.rate)
