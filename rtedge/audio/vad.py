"""A local voice-activity gate: stream speech to the server, not hours of idle silence.

Theory of operation
-------------------
Realtime providers bill input audio by duration, so a kiosk that streams its
microphone all day pays for silence.  :class:`VadGate` sits between the
microphone and ``Client.append_audio``: it passes speech, a little audio
before it (the *pre-roll*) and enough silence after it for the **server's**
VAD to see the turn end, and drops everything else.  Turn-taking stays on the
server; the gate only decides what is worth sending.

Input of any length is cut into analysis frames of ``frame_ms`` (a remainder
waits for the next call), so the output depends only on the concatenated
input, never on how it was chunked.  Each frame gets a level in dBFS
(``10*log10(mean(x**2) / 32768**2)``, computed from exact integer sums) and a
verdict:

* ``"energy"`` (default, numpy only): *voiced* when the level exceeds the
  noise floor by ``threshold_db`` (+ the current boost).
* ``"webrtc"`` / ``"silero"`` (optional packages): voiced when the model says
  speech *and* the level exceeds the noise floor by ``MODEL_MARGIN_DB`` plus
  the boost (webrtcvad calls loud stationary noise speech; this stops it from
  holding the gate open).  The model runs on its own window (webrtcvad:
  ``frame_ms`` at 8/16/32/48 kHz; silero: 32 ms at 8/16 kHz), fed through a
  streaming :class:`~rtedge.audio.codec.Resampler` when the rate needs it; a
  frame takes the verdict of the latest completed window.

**Noise floor** (all backends, energy only).  Seeded by the first frame (never
below ``floor_dbfs``), then smoothed in dB over background frames, those below
the floor plus ``threshold_db``: it falls with a time constant of
``FLOOR_DOWN_S`` and rises with ``FLOOR_UP_S``.  Louder frames never move it,
whatever the boost, so echo that the boost hides does not drag the floor up.
A floor that is wrong because the room got louder by more than
``threshold_db`` (a fan switched on) would keep the gate open for ever; so
when no frame came near the floor for ``relearn_ms``, the floor jumps to the
quietest frame of that stretch (the gate then closes after its hangover and
trailing period).

**States.**  CLOSED: frames go into a ring holding the pre-roll plus the
onset frames.  After ``min_speech_ms`` of consecutive voiced frames the gate
opens (``speech_started``): the ring is flushed, so the first sent sample lies
about ``pre_roll_ms`` before the first voiced frame.  SPEECH: every frame is
sent; speech lasts ``hangover_ms`` past the last voiced frame (bridging pauses
between words).  TRAILING: ``trailing_ms`` more of audio is sent, then the gate
closes (``speech_ended``).  ``min_speech_ms`` of voiced frames during TRAILING
returns to SPEECH without a new ``speech_started``, so the flags always pair.
After the last voiced frame ``hangover_ms + trailing_ms`` of audio are sent,
comfortably more than a server VAD's ``silence_duration_ms`` (200-500 ms).

**Onsets.**  Barge-in needs every new utterance, not only those that open the
gate: speech that starts 100 ms to 1 s after the previous one finds the gate
still in SPEECH (hangover) or TRAILING.  ``onset`` is raised whenever a run of
``min_speech_ms`` voiced frames completes after an unvoiced frame, in any
state (so every ``speech_started`` is also an onset, and a new word after a
pause is one too).

The gate is a pure object: no threads, clock, I/O or randomness.  Feed it from
one thread (it is not locked); the same input always gives the same output.

Owns: the local VAD gate: speech with pre-roll and hangover.  Must not: send anything itself.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import os
from collections import deque
from typing import Any, Protocol

import attrs
import numpy as np

from ..errors import AudioError, ConfigError
from . import RATES_TEXT
from .codec import SUPPORTED_RATES, AudioTypeError, Resampler

__all__ = [
    "BACKENDS",
    "FLOOR_DOWN_S",
    "FLOOR_UP_S",
    "MODEL_MARGIN_DB",
    "GateResult",
    "GateStats",
    "VadGate",
    "VadSettings",
    "available_backends",
]

#: Names accepted by ``VadSettings.backend``.
BACKENDS = ("energy", "webrtc", "silero")
#: Time constant (s) of the noise floor falling toward quieter background.
FLOOR_DOWN_S = 0.08
#: Time constant (s) of the noise floor rising toward louder background.
FLOOR_UP_S = 2.0
#: Model backends: a frame the model calls speech also needs this many dB above the noise floor
#: (+ boost), so stationary noise that webrtcvad calls speech cannot hold the gate open.
MODEL_MARGIN_DB = 3.0

_SILENCE_DB = -120.0  # level given to an all-zero frame (log of 0 is -inf)
_FULL_SCALE_SQ = 32768.0 * 32768.0
_WEBRTC_RATES = (8000, 16000, 32000, 48000)
_WEBRTC_HINT = "install it with: pip install webrtcvad-wheels  (or: pip install 'rtedge[vad]')"
_SILERO_HINT = ("install it without torch with: pip install onnxruntime && pip install --no-deps silero-vad  "
                "(the gate calls the bundled silero_vad.onnx through onnxruntime)")


# --------------------------------------------------------------------------- settings


def _int_in(lo: int, hi: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(f"VadSettings.{attribute.name} must be an int in [{lo}, {hi}], got {value!r}")

    return check


def _float_in(lo: float, hi: float) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ConfigError(f"VadSettings.{attribute.name} must be a number in [{lo}, {hi}], got {value!r}")

    return check


def _backend(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in BACKENDS:
        raise ConfigError(f"VadSettings.backend must be one of {BACKENDS}, got {value!r}")


@attrs.frozen(kw_only=True)
class VadSettings:
    """How the local gate decides what to send.  Invalid values raise :class:`ConfigError`.

    Attributes:
        backend: ``"energy"`` (numpy only), ``"webrtc"`` (package ``webrtcvad-wheels``) or
            ``"silero"`` (``onnxruntime`` plus the ``silero-vad`` wheel's ONNX model).
        frame_ms: analysis frame length in milliseconds (webrtc: 10, 20 or 30).
        pre_roll_ms: audio sent from before the first voiced frame, in ms (like the server's
            ``prefix_padding_ms``).
        hangover_ms: speech continues this many ms after the last voiced frame (bridges short pauses).
        trailing_ms: silence still sent after speech ends, in ms, so that the server's VAD
            (``silence_duration_ms`` 200-500) can end the turn.
        threshold_db: energy backend: a frame is voiced when its level exceeds the adaptive
            noise floor by this many dB.  All backends: only frames below floor + this adapt the floor.
        min_speech_ms: consecutive voiced audio (ms) needed to open the gate (rejects clicks).
        floor_dbfs: lowest noise floor in dBFS (the floor never adapts below it; digital silence).
        boost_db: extra threshold in dB above the noise floor (the echo guard raises it with
            :meth:`VadGate.set_boost` while the speaker plays).  Model backends need a frame
            ``MODEL_MARGIN_DB + boost_db`` above the floor besides the model's verdict.
        relearn_ms: when no frame came within ``threshold_db`` of the floor for this long (ms),
            the floor jumps to the quietest frame of that stretch (the background got louder).
        webrtc_mode: webrtcvad aggressiveness, 0 (lenient) to 3 (strict).
        silero_threshold: silero speech probability (0..1) at or above which a window is speech.
    """

    backend: str = attrs.field(default="energy", validator=_backend)
    frame_ms: int = attrs.field(default=20, validator=_int_in(5, 100))
    pre_roll_ms: int = attrs.field(default=300, validator=_int_in(0, 10_000))
    hangover_ms: int = attrs.field(default=300, validator=_int_in(0, 10_000))
    trailing_ms: int = attrs.field(default=700, validator=_int_in(0, 10_000))
    threshold_db: float = attrs.field(default=12.0, validator=_float_in(0.0, 90.0))
    min_speech_ms: int = attrs.field(default=60, validator=_int_in(0, 10_000))
    floor_dbfs: float = attrs.field(default=-60.0, validator=_float_in(-110.0, 0.0))
    boost_db: float = attrs.field(default=0.0, validator=_float_in(0.0, 90.0))
    relearn_ms: int = attrs.field(default=4000, validator=_int_in(100, 600_000))
    webrtc_mode: int = attrs.field(default=3, validator=_int_in(0, 3))
    silero_threshold: float = attrs.field(default=0.5, validator=_float_in(0.0, 1.0))


@attrs.frozen(eq=False)
class GateResult:
    """What one :meth:`VadGate.process` call produced.

    Attributes:
        frames: int16 frames of ``frame_ms`` to send now, in order (the pre-roll is flushed at
            onset).  With chunks longer than a frame a call may span several gate events; the
            flags below are then OR-ed and ``frames`` may join audio from both sides of a gap.
        speech_started: the gate opened in this call.
        speech_ended: the trailing period finished in this call (the turn is over for the gate).
        is_speech: the gate is in speech (onset seen, hangover not expired) after this call.
        onset: ``min_speech_ms`` of voiced frames after an unvoiced one completed in this call,
            whatever the state (a new utterance; what local barge-in acts on).
    """

    frames: tuple[np.ndarray, ...]
    speech_started: bool
    speech_ended: bool
    is_speech: bool
    onset: bool = False

    @property
    def samples(self) -> np.ndarray:
        """All of ``frames`` as one int16 array (empty when nothing is to be sent)."""
        return np.concatenate(self.frames) if self.frames else np.zeros(0, dtype=np.int16)


@attrs.frozen(kw_only=True)
class GateStats:
    """Counters since the gate was created (``reset()`` keeps them).

    ``frames_sent + frames_not_sent == frames_in`` always; frames still held as pre-roll count
    as not sent until an onset flushes them.  A remainder shorter than a frame is not counted.

    Attributes:
        frames_in: analysis frames received.
        frames_sent: frames returned for sending.
        frames_not_sent: ``frames_in - frames_sent``.
        bytes_not_sent: audio kept off the wire, in bytes of int16 at the gate's rate.
        seconds_not_sent: the same in seconds.
        speech_segments: times the gate opened.
    """

    frames_in: int
    frames_sent: int
    frames_not_sent: int
    bytes_not_sent: int
    seconds_not_sent: float
    speech_segments: int


# --------------------------------------------------------------------------- optional backends


def available_backends() -> tuple[str, ...]:
    """The backends whose packages are importable here (``"energy"`` always is)."""
    found = ["energy"]
    if _find("webrtcvad") is not None:
        found.append("webrtc")
    if _find("onnxruntime") is not None and _silero_model_path() is not None:
        found.append("silero")
    return tuple(found)


def _find(name: str) -> Any:
    """The import spec of a top-level module without importing it (None when absent)."""
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):  # ValueError: a half-imported or stubbed-out module
        return None


def _silero_model_path() -> str | None:
    # find_spec on a top-level package does not import it: silero_vad's __init__ needs torch.
    spec = _find("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "silero_vad.onnx")
    return path if os.path.isfile(path) else None


@functools.lru_cache(maxsize=1)
def _silero_session() -> Any:
    """One shared onnxruntime session (stateless: the recurrent state is passed in and out)."""
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError:
        raise ConfigError(f"VAD backend 'silero' needs onnxruntime; {_SILERO_HINT}") from None
    path = _silero_model_path()
    if path is None:
        raise ConfigError(f"VAD backend 'silero' needs the silero-vad wheel's model file; {_SILERO_HINT}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # a Pi has 4 cores and the audio threads need them
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


class _Model(Protocol):
    rate: int
    window: int

    def is_speech(self, window: np.ndarray) -> bool: ...

    def reset(self) -> None: ...


class _WebrtcModel:
    """webrtcvad on ``window`` samples (10/20/30 ms) at 8/16/32/48 kHz."""

    def __init__(self, rate: int, frame_ms: int, mode: int) -> None:
        try:
            self._module = importlib.import_module("webrtcvad")
        except ImportError:
            raise ConfigError(f"VAD backend 'webrtc' needs webrtcvad; {_WEBRTC_HINT}") from None
        if frame_ms not in (10, 20, 30):
            raise ConfigError(f"VAD backend 'webrtc' needs frame_ms 10, 20 or 30, got {frame_ms}")
        self.rate, self.window, self._mode = rate, rate * frame_ms // 1000, mode
        self.reset()

    def is_speech(self, window: np.ndarray) -> bool:
        return bool(self._vad.is_speech(window.astype("<i2", copy=False).tobytes(), self.rate))

    def reset(self) -> None:
        self._vad = self._module.Vad(self._mode)


class _SileroModel:
    """Silero VAD (ONNX) on 32 ms windows at 8 or 16 kHz, with its 64/32-sample context."""

    def __init__(self, rate: int, threshold: float) -> None:
        self._session = _silero_session()
        self.rate, self.window, self._threshold = rate, 512 if rate == 16000 else 256, threshold
        self._sr = np.array(rate, dtype=np.int64)
        self._context_len = 64 if rate == 16000 else 32
        self._state: np.ndarray
        self._context: np.ndarray
        self.probability = 0.0  #: speech probability of the latest window
        self.reset()

    def is_speech(self, window: np.ndarray) -> bool:
        x = np.concatenate([self._context, window.astype(np.float32) / np.float32(32768.0)])[None, :]
        out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = x[0, -self._context_len:]
        self.probability = float(out[0, 0])
        return self.probability >= self._threshold

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(self._context_len, dtype=np.float32)
        self.probability = 0.0


class _ModelFeed:
    """Resamples gate frames to the model's rate, cuts model windows, keeps the latest verdict."""

    def __init__(self, model: _Model, rate: int) -> None:
        self._model = model
        self._resampler = Resampler(rate, model.rate) if rate != model.rate else None
        self._buf: np.ndarray
        self._verdict = False
        self.reset()

    def feed(self, frame: np.ndarray) -> bool:
        x = self._resampler.process(frame) if self._resampler is not None else frame
        buf = np.concatenate([self._buf, x]) if self._buf.size else x
        w = self._model.window
        done = len(buf) // w
        for i in range(done):
            self._verdict = self._model.is_speech(buf[i * w:(i + 1) * w])
        self._buf = buf[done * w:].copy()
        return self._verdict

    def reset(self) -> None:
        if self._resampler is not None:
            self._resampler.reset()
        self._model.reset()
        self._buf = np.zeros(0, dtype=np.int16)
        self._verdict = False


def _make_feed(settings: VadSettings, rate: int) -> _ModelFeed | None:
    """The model stage for ``settings.backend`` (None for energy); ConfigError when unavailable."""
    if settings.backend == "energy":
        return None
    native = _WEBRTC_RATES if settings.backend == "webrtc" else (8000, 16000)
    model_rate = rate if rate in native else 16000
    if model_rate != rate and rate not in SUPPORTED_RATES:
        raise ConfigError(f"VAD backend {settings.backend!r} cannot resample {rate} Hz; "
                          f"use one of {RATES_TEXT}")
    model: _Model
    if settings.backend == "webrtc":
        model = _WebrtcModel(model_rate, settings.frame_ms, settings.webrtc_mode)
    else:
        model = _SileroModel(model_rate, settings.silero_threshold)
    return _ModelFeed(model, rate)


# --------------------------------------------------------------------------- the gate


def _as_pcm16(frame: Any) -> np.ndarray:
    """1-D int16 samples from an int16 array or little-endian PCM16 bytes; AudioError otherwise."""
    if isinstance(frame, np.ndarray):
        if frame.dtype != np.int16:
            raise AudioTypeError(f"VadGate.process: samples must be int16, got dtype {frame.dtype.name}")
        if frame.ndim != 1:
            raise AudioError(f"VadGate.process: samples must be 1-D mono, got shape {frame.shape}")
        return frame
    if isinstance(frame, bytes | bytearray | memoryview):
        data = memoryview(frame).cast("B")
        if data.nbytes % 2:
            raise AudioError(f"VadGate.process: PCM16 needs an even byte count, got {data.nbytes}")
        return np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)
    raise AudioTypeError(f"VadGate.process: expected an int16 numpy array or PCM16 bytes, "
                         f"got {type(frame).__name__}")


def _levels_db(frames: np.ndarray) -> list[float]:
    """Level of each row in dBFS; exact integer sums make it independent of chunking."""
    wide = frames.astype(np.int64)
    sums = np.einsum("ij,ij->i", wide, wide)
    n = frames.shape[1]
    return [10.0 * math.log10(int(s) / n / _FULL_SCALE_SQ) if s else _SILENCE_DB for s in sums]


def _frames_of(ms: int, frame_ms: int) -> int:
    return -(-ms // frame_ms)  # ceil: never less than asked for


_CLOSED, _SPEECH, _TRAILING = "closed", "speech", "trailing"


class VadGate:
    """Decides, frame by frame, which microphone audio is worth sending.

    Args:
        rate: sample rate of the audio given to :meth:`process`, in Hz; ``rate * frame_ms``
            must be a whole number of samples per frame.
        settings: the :class:`VadSettings`.

    Raises:
        AudioError: ``rate`` is not a positive int.
        ConfigError: the frame length is not a whole number of samples, or an optional
            backend is not installed (the message says what to install) or cannot run at ``rate``.
    """

    def __init__(self, rate: int, settings: VadSettings = VadSettings()) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
            raise AudioError(f"VadGate: rate must be a positive int (Hz), got {rate!r}")
        self.rate, self.settings = int(rate), settings
        fm = settings.frame_ms
        if self.rate * fm % 1000:
            raise ConfigError(f"VadGate: {fm} ms at {self.rate} Hz is not a whole number of samples; "
                              "choose another frame_ms")
        self.frame_samples = self.rate * fm // 1000
        self._onset = max(1, _frames_of(settings.min_speech_ms, fm))
        self._pre_roll = _frames_of(settings.pre_roll_ms, fm)
        self._hangover = _frames_of(settings.hangover_ms, fm)
        self._trailing = _frames_of(settings.trailing_ms, fm)
        self._relearn = max(1, _frames_of(settings.relearn_ms, fm))
        self._down = 1.0 - math.exp(-fm / 1000.0 / FLOOR_DOWN_S)
        self._up = 1.0 - math.exp(-fm / 1000.0 / FLOOR_UP_S)
        self._feed = _make_feed(settings, self.rate)
        self._boost = float(settings.boost_db)
        self._frames_in = self._frames_sent = self._segments = 0
        self.reset()

    def __repr__(self) -> str:
        floor = "unset" if self._floor is None else f"{self._floor:.1f} dBFS"
        return (f"VadGate({self.rate}, backend={self.settings.backend!r}) "
                f"[{self._state}, floor {floor}, boost {self._boost:g} dB]")

    def reset(self) -> None:
        """Forget the audio: pending samples, pre-roll, speech state, noise floor, model state.

        The boost and the :attr:`stats` counters are kept.  No ``speech_ended`` is reported
        for a segment cut short by a reset.
        """
        self._pending = np.zeros(0, dtype=np.int16)
        self._ring: deque[np.ndarray] = deque(maxlen=self._pre_roll + self._onset)
        self._state = _CLOSED
        self._floor: float | None = None
        self._run = 0  # consecutive voiced frames while not in speech
        self._vrun = 0  # consecutive voiced frames, any state (onsets)
        self._gap = 0  # unvoiced frames since the last voiced one, in speech
        self._trail = 0  # trailing frames sent so far
        self._loud, self._loud_min = 0, math.inf  # relearn: frames away from the floor, their minimum
        if self._feed is not None:
            self._feed.reset()

    def set_boost(self, db: float) -> None:
        """Raise the threshold by ``db`` (>= 0) from the next frame on; 0 restores it.

        The echo guard calls this while the speaker plays, so that the bot's own voice coming
        back through the microphone does not open the gate.  Raises ConfigError when negative.
        """
        if isinstance(db, bool) or not isinstance(db, int | float) or not 0.0 <= db <= 90.0:
            raise ConfigError(f"VadGate.set_boost: db must be a number in [0, 90], got {db!r}")
        self._boost = float(db)

    @property
    def boost_db(self) -> float:
        """The current extra threshold in dB."""
        return self._boost

    @property
    def noise_floor_dbfs(self) -> float | None:
        """The adaptive noise floor in dBFS (None before the first frame)."""
        return self._floor

    @property
    def is_speech(self) -> bool:
        """True in speech (onset seen, hangover not expired)."""
        return self._state == _SPEECH

    @property
    def unvoiced_frames(self) -> int:
        """In speech: the frames since the last voiced one (the hangover so far); 0 otherwise."""
        return self._gap if self._state == _SPEECH else 0

    @property
    def is_open(self) -> bool:
        """True while frames are being sent (speech, hangover or trailing)."""
        return self._state != _CLOSED

    @property
    def stats(self) -> GateStats:
        """A snapshot of the counters (see :class:`GateStats`)."""
        not_sent = self._frames_in - self._frames_sent
        return GateStats(frames_in=self._frames_in, frames_sent=self._frames_sent, frames_not_sent=not_sent,
                         bytes_not_sent=not_sent * self.frame_samples * 2,
                         seconds_not_sent=not_sent * self.settings.frame_ms / 1000.0,
                         speech_segments=self._segments)

    def process(self, frame: Any) -> GateResult:
        """Feed microphone audio; get back what to send now.

        Args:
            frame: int16 mono samples at ``rate``, any length (1-D ndarray, or little-endian
                PCM16 bytes).  Samples short of a whole frame wait for the next call.

        Returns:
            A :class:`GateResult`; its frames are copies, owned by the caller.

        Raises:
            AudioError: wrong type, dtype (also a TypeError) or shape; the gate is unchanged.
        """
        x = _as_pcm16(frame)
        data = np.concatenate([self._pending, x]) if self._pending.size else x
        n = len(data) // self.frame_samples
        block = np.array(data[:n * self.frame_samples]).reshape(n, self.frame_samples)
        self._pending = np.array(data[n * self.frame_samples:])
        out: list[np.ndarray] = []
        started = ended = onset = False
        for row, level in zip(block, _levels_db(block) if n else []):
            voiced = self._voiced(row, level)
            self._vrun = self._vrun + 1 if voiced else 0
            onset = onset or self._vrun == self._onset
            s, e = self._step(row, voiced, out)
            started, ended = started or s, ended or e
        self._frames_in += n
        self._frames_sent += len(out)
        return GateResult(tuple(out), started, ended, self.is_speech, onset)

    # -- per frame ---------------------------------------------------------------

    def _voiced(self, frame: np.ndarray, level: float) -> bool:
        """Classify one frame and adapt the noise floor (see the module docstring)."""
        s = self.settings
        model = self._feed.feed(frame) if self._feed is not None else None
        if self._floor is None:
            self._floor = max(level, s.floor_dbfs)
        floor = self._floor
        base = floor + s.threshold_db
        if model is None:
            voiced = level > base + self._boost
        else:
            voiced = model and level > floor + MODEL_MARGIN_DB + self._boost
        if level < base:  # background: track it, fast down, slow up
            self._loud, self._loud_min = 0, math.inf
            rate = self._down if level < floor else self._up
            self._floor = max(s.floor_dbfs, floor + rate * (max(level, s.floor_dbfs) - floor))
        else:
            self._loud, self._loud_min = self._loud + 1, min(self._loud_min, level)
            if self._loud >= self._relearn:  # nothing came near the floor for relearn_ms
                self._floor = max(s.floor_dbfs, self._loud_min)
                self._loud, self._loud_min = 0, math.inf
        return voiced

    def _step(self, frame: np.ndarray, voiced: bool, out: list[np.ndarray]) -> tuple[bool, bool]:
        """Advance the state machine by one frame; append what to send.  Returns (started, ended)."""
        if self._state == _CLOSED:
            self._ring.append(frame)
            self._run = self._run + 1 if voiced else 0
            if self._run < self._onset:
                return False, False
            out.extend(self._ring)
            self._ring.clear()
            self._state, self._gap, self._run = _SPEECH, 0, 0
            self._segments += 1
            return True, False
        if self._state == _SPEECH:
            self._gap = 0 if voiced else self._gap + 1
            if self._gap <= self._hangover:
                out.append(frame)
                return False, False
            self._state, self._trail, self._run = _TRAILING, 0, 0
            if self._trailing == 0:  # nothing to trail: this frame becomes pre-roll
                self._state = _CLOSED
                self._ring.append(frame)
                return False, True
        else:  # trailing
            self._run = self._run + 1 if voiced else 0
            if self._run >= self._onset:
                self._state, self._gap, self._run = _SPEECH, 0, 0
                out.append(frame)
                return False, False
        out.append(frame)
        self._trail += 1
        if self._trail >= self._trailing:
            self._state = _CLOSED  # the voiced run so far (already sent) carries over to the onset count
            return False, True
        return False, False
