"""PortAudio devices: :class:`Microphone`, :class:`Speaker`, :func:`list_devices`.

Import them from :mod:`rtedge.audio.devices`.  PyAudio is imported inside
:func:`load_pyaudio` only, so importing this module needs no sound system.

Guarantees
----------
* PortAudio's process-wide calls (initialise, terminate, enumerate, open,
  close) are not thread-safe; here they all run under one lock, which the
  audio callbacks never take.
* A running device owns one PortAudio handle (one ``pyaudio.PyAudio()``) and
  one watcher thread, ``rtedge-mic`` or ``rtedge-speaker``: after ``start()``
  only the watcher opens, reopens and closes the stream.  ``on_frame`` and
  ``pull`` run on PortAudio's callback thread.
* The watcher reopens a stream that stopped by itself (device error, USB
  device unplugged) or stopped calling back for ``stall_timeout`` seconds,
  with exponential backoff, at most ``max_reopen_attempts`` times in a row;
  then it sets ``failed``.  Every wait is cut short by ``stop()``.  Each
  attempt starts a fresh PortAudio handle; PortAudio rescans devices only
  when no handle is open in the process, so a replugged device shows up once
  every device using it has let go.
* Best effort: libasound's and libjack's stderr messages ("cannot find card
  '0'", "jack server is not running") are silenced through ``ctypes`` before
  PortAudio starts; set ``RTEDGE_AUDIO_DEBUG=1`` to keep them.  PortAudio's own
  ``Expression ... failed`` lines cannot be silenced from Python.

Owns: the PortAudio microphone and speaker, their streams and reopening.  Must not: import PyAudio before a
PortAudio device is used.
"""

from __future__ import annotations

import ctypes as c
import ctypes.util
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from ..errors import AudioError
from . import codec
from . import threadnames as _threadnames
from .clock import ClockCheck
from ._device import STOP_TIMEOUT, AudioSink, AudioSource, OnFrame, Pull, _Device

log = logging.getLogger("rtedge.audio")

# PortAudio ABI constants (portaudio.h), so the callbacks need no pyaudio lookups.
INPUT_OVERFLOW = 0x2  # paInputOverflow
OUTPUT_UNDERFLOW = 0x4  # paOutputUnderflow
PA_CONTINUE = 0  # paContinue

#: a stream callback after the wrapper: (in_data, frame_count, status_flags) -> out_data
StreamCallback = Callable[[Any, int, int], Any]

#: device rates tried after the wanted rate and the device's default one
HARDWARE_RATES = (48000, 44100, 32000, 16000, 24000, 22050, 11025, 8000)

_LOCK = threading.RLock()
_handles = 0  # PortAudio handles open in this module (tests check it drops back to 0)
_quieted = False
_keep_alive: list[Any] = []  # ctypes callbacks must outlive the libraries' use of them


def _ignore_message(*_args: Any) -> None:
    return None


def quiet_audio_libs() -> None:
    """Send libasound and libjack messages to a no-op handler (once; best effort)."""
    global _quieted
    if _quieted or os.environ.get("RTEDGE_AUDIO_DEBUG"):
        return
    _quieted = True
    # A ctypes callback needs a libffi trampoline; where that is refused (systemd's
    # MemoryDenyWriteExecute on some builds) the messages simply stay.
    for lib_name, soname, setters, argtypes in (
        ("asound", "libasound.so.2", ("snd_lib_error_set_handler",),
         (c.c_char_p, c.c_int, c.c_char_p, c.c_int, c.c_char_p)),
        ("jack", "libjack.so.0", ("jack_set_error_function", "jack_set_info_function"), (c.c_char_p,)),
    ):
        try:
            try:
                lib = c.CDLL(soname)
            except OSError:
                found = ctypes.util.find_library(lib_name)
                if not found:
                    continue
                lib = c.CDLL(found)
            handler = c.CFUNCTYPE(None, *argtypes)(_ignore_message)
            for setter in setters:
                getattr(lib, setter)(handler)
            _keep_alive.append(handler)
        except (OSError, AttributeError, MemoryError) as exc:
            log.debug("could not silence %s messages: %s", lib_name, exc)


def load_pyaudio() -> Any:
    """Import and return the ``pyaudio`` module.

    Raises:
        AudioError: PyAudio (or its PortAudio library) is not installed.
    """
    try:
        # lazy: optional dependency (PyAudio): only the PortAudio devices need it
        import pyaudio
    except ImportError as exc:
        raise AudioError(
            f"PyAudio is not available ({exc}); install it with 'pip install pyaudio' "
            "(on Debian/Raspberry Pi OS first 'apt install portaudio19-dev')"
        ) from None
    quiet_audio_libs()
    return pyaudio


def open_portaudio() -> Any:
    """A new ``pyaudio.PyAudio()`` handle; release it with :func:`close_portaudio`.

    Raises:
        AudioError: PyAudio is missing or PortAudio failed to initialise.
    """
    global _handles
    pyaudio = load_pyaudio()
    with _LOCK:
        try:
            pa = pyaudio.PyAudio()
        except OSError as exc:
            raise AudioError(f"PortAudio failed to initialise: {exc}") from None
        _handles += 1
    return pa


def close_portaudio(pa: Any) -> None:
    """Terminate a handle: closes its streams; the last one also frees ALSA's cached config."""
    global _handles
    with _LOCK:
        try:
            pa.terminate()
        finally:
            _handles -= 1


def open_handles() -> int:
    """How many PortAudio handles rtedge holds open now (0 when no PortAudio device runs)."""
    return _handles


@attrs.frozen(kw_only=True)
class DeviceInfo:
    """One PortAudio device, as :func:`list_devices` reports it."""

    #: PortAudio's index (valid until PortAudio rescans; names are stabler)
    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    #: the device's default sample rate in Hz
    default_rate: int
    #: "ALSA", "JACK Audio Connection Kit", "OSS"...
    host_api: str = ""
    default_input: bool = False
    default_output: bool = False

    def channels(self, output: bool) -> int:
        """Maximum channel count in one direction."""
        return self.max_output_channels if output else self.max_input_channels

    def describe(self) -> str:
        return f"[{self.index}] {self.name!r} (in {self.max_input_channels}, out {self.max_output_channels})"


def _default_index(getter: Callable[[], dict[str, Any]]) -> int | None:
    try:
        return int(getter()["index"])
    except (OSError, KeyError, ValueError):
        return None


def device_infos(pa: Any) -> list[DeviceInfo]:
    """Every device an open PortAudio handle knows."""
    with _LOCK:
        default_in = _default_index(pa.get_default_input_device_info)
        default_out = _default_index(pa.get_default_output_device_info)
        infos = []
        for i in range(pa.get_device_count()):
            d = pa.get_device_info_by_index(i)
            name = d["name"]
            try:
                host = str(pa.get_host_api_info_by_index(d["hostApi"])["name"])
            except (OSError, KeyError):
                host = ""
            infos.append(
                DeviceInfo(
                    index=i,
                    name=name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name),
                    max_input_channels=int(d["maxInputChannels"]),
                    max_output_channels=int(d["maxOutputChannels"]),
                    default_rate=round(float(d["defaultSampleRate"])),
                    host_api=host,
                    default_input=i == default_in,
                    default_output=i == default_out,
                )
            )
    return infos


def describe_devices(infos: list[DeviceInfo]) -> str:
    """"available devices: [0] 'x' (in 2, out 0), ..." for error messages."""
    if not infos:
        return "PortAudio found no audio devices (is ALSA configured, is the user in the 'audio' group?)"
    return "available devices: " + ", ".join(d.describe() for d in infos)


def resolve_device(infos: list[DeviceInfo], spec: str | int | None, *, output: bool) -> DeviceInfo:
    """The device ``spec`` names: None = the default, an int = an index, a str = a name.

    A name matches exactly, then case-insensitively, then as a unique substring
    among devices with channels in the wanted direction ("USB" finds
    "USB PnP Sound Device: Audio (hw:1,0)").

    Raises:
        AudioError: no such device, an ambiguous name, or no channels in the
            wanted direction; the message lists the devices.
    """
    kind = "output" if output else "input"
    if spec is None:
        found = [d for d in infos if (d.default_output if output else d.default_input)]
        if not found:
            raise AudioError(f"no default {kind} device; {describe_devices(infos)}")
    elif isinstance(spec, int) and not isinstance(spec, bool):
        found = [d for d in infos if d.index == spec]
        if not found:
            raise AudioError(f"no audio device with index {spec}; {describe_devices(infos)}")
    elif isinstance(spec, str):
        low = spec.lower()
        found = [d for d in infos if d.name == spec] or [d for d in infos if d.name.lower() == low]
        found = found or [d for d in infos if low in d.name.lower() and d.channels(output) > 0]
        if not found:
            raise AudioError(f"no audio {kind} device named {spec!r}; {describe_devices(infos)}")
        if len(found) > 1:
            names = ", ".join(d.describe() for d in found)
            raise AudioError(f"audio device name {spec!r} is ambiguous: {names}; "
                             "give the full name or the index")
    else:
        raise AudioError(f"audio device must be a name, an index or None, got {type(spec).__name__}")
    if found[0].channels(output) <= 0:
        raise AudioError(f"audio device {found[0].describe()} has no {kind} channels (missing or busy?); "
                         + describe_devices(infos))
    return found[0]


def choose_format(
    pa: Any, info: DeviceInfo, *, output: bool, rates: list[int], channels: int
) -> tuple[int, int]:
    """The first (rate, channels) PortAudio accepts for 16-bit PCM on ``info``.

    Rates are tried in order; for each, ``channels`` then the other of 1 and 2.

    Raises:
        AudioError: none is supported.
    """
    pyaudio = load_pyaudio()
    chans = [c for c in dict.fromkeys((channels, 3 - channels)) if c <= info.channels(output)]
    side = "output" if output else "input"
    with _LOCK:
        for rate in rates:
            for ch in chans:
                fmt = {f"{side}_device": info.index, f"{side}_channels": ch}
                try:
                    pa.is_format_supported(rate, **fmt, **{f"{side}_format": pyaudio.paInt16})
                except ValueError:
                    continue
                return rate, ch
    raise AudioError(f"{side} device {info.describe()} supports none of the rates {rates} Hz "
                     f"with {chans} channel(s) as 16-bit PCM")


def list_devices() -> list[DeviceInfo]:
    """Every PortAudio device: index, name, input/output channels, default rate, defaults.

    libasound/libjack chatter on stderr is silenced (best effort).

    Raises:
        AudioError: PyAudio is not installed or PortAudio fails to start.
    """
    pa = open_portaudio()
    try:
        return device_infos(pa)
    finally:
        close_portaudio(pa)


# --------------------------------------------------------------------------- devices


class _PortAudioDevice(_Device):
    """One PortAudio callback stream, opened by ``start()``, watched and reopened by a named thread."""

    _output = False
    _thread_name = ""
    #: how often the watcher checks the stream (seconds)
    POLL_INTERVAL = 0.1

    def _setup(
        self,
        device: str | int | None,
        channels: int,
        device_rate: int | None,
        stall_timeout: float,
        max_reopen_attempts: int,
        reopen_backoff: tuple[float, float],
    ) -> None:
        what = type(self).__name__
        for name, value in (("rate", self.rate), ("device_rate", device_rate)):
            if value is not None and value not in codec.SUPPORTED_RATES:
                raise AudioError(f"{what}: {name} must be one of {codec.SUPPORTED_RATES}, got {value!r}")
        if channels not in (1, 2):
            raise AudioError(f"{what}: channels must be 1 or 2, got {channels!r}")
        self.device = device
        self.channels = channels
        self.device_rate = device_rate
        self.stall_timeout = stall_timeout
        self.max_reopen_attempts = max_reopen_attempts
        self.reopen_backoff = reopen_backoff
        #: the open stream's device, rate, channel count and PortAudio latency (seconds)
        self.device_info: DeviceInfo | None = None
        self.stream_rate = 0
        self.stream_channels = 0
        self.stream_latency = 0.0
        self._thread: threading.Thread | None = None
        self._pa: Any = None
        self._stream: Any = None
        self._last_callback = 0.0
        self._callback_ident: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.device!r}, rate={self.rate})"

    def _make_callback(self, device_rate: int, device_channels: int) -> StreamCallback:
        """Fresh conversion state for a new stream: returns ``cb(in_data, frame_count, status)``."""
        raise NotImplementedError

    def _start_stream(self) -> None:
        """Open the stream here (errors raise), then start the watcher thread."""
        try:
            self._open()
        except BaseException:
            self._release_start()
            raise
        self._thread = threading.Thread(target=self._watch, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the stream and join the watcher (idempotent, bounded).

        From the stream's own callback it does not wait: the watcher closes the
        stream once the callback has returned.
        """
        self._stop_event.set()
        t = self._thread
        if t is None or t is threading.current_thread() or threading.get_ident() == self._callback_ident:
            return
        t.join(STOP_TIMEOUT)
        if t.is_alive():
            log.warning("%r: the audio stream did not close within %.1f s", self, STOP_TIMEOUT)

    def _candidate_rates(self, info: DeviceInfo) -> list[int]:
        if self.device_rate is not None:
            return [self.device_rate]
        default = [info.default_rate] if info.default_rate in codec.SUPPORTED_RATES else []
        return list(dict.fromkeys([self.rate, *default, *HARDWARE_RATES]))

    def _open(self) -> None:
        """Resolve the device, pick a format and start a stream; leaves nothing open on failure."""
        pa = open_portaudio()
        try:
            info = resolve_device(device_infos(pa), self.device, output=self._output)
            rate, channels = choose_format(
                pa, info, output=self._output, rates=self._candidate_rates(info), channels=self.channels
            )
            self._stream = self._open_stream(pa, info, rate, channels)
        except BaseException:
            close_portaudio(pa)
            raise
        self._pa, self.device_info, self.stream_rate, self.stream_channels = pa, info, rate, channels

    def _open_stream(self, pa: Any, info: DeviceInfo, rate: int, channels: int) -> Any:
        inner = self._make_callback(rate, channels)
        clock = ClockCheck(repr(self), rate)  # a device far faster than real time is paced (see .clock)

        def callback(in_data: Any, frame_count: int, _time_info: Any, status: int) -> tuple[Any, int]:
            self._last_callback = time.monotonic()
            ident = threading.get_ident()
            if ident != self._callback_ident:  # PortAudio's thread: log lines name it after the device
                self._callback_ident = ident
                _threadnames.register(ident, f"{self._thread_name}-callback")
            try:
                out = inner(in_data, frame_count, status), PA_CONTINUE
            except Exception:  # noqa: BLE001 - an escaping exception would abort the stream
                self._callback_failed("the audio callback failed")
                out = (bytes(2 * channels * frame_count) if self._output else None), PA_CONTINUE
            wait = clock.tick(frame_count)
            if wait > 0:
                self._stop_event.wait(wait)
            return out

        side = "output" if self._output else "input"
        with _LOCK:
            try:
                stream = pa.open(
                    format=load_pyaudio().paInt16, channels=channels, rate=rate,
                    input=not self._output, output=self._output,
                    frames_per_buffer=max(1, rate * self.frame_ms // 1000),
                    stream_callback=callback, start=False, **{f"{side}_device_index": info.index},
                )
            except (OSError, ValueError) as exc:
                raise AudioError(f"cannot open {side} device {info.describe()} at {rate} Hz: {exc}") from None
            try:
                latency = stream.get_output_latency() if self._output else stream.get_input_latency()
                self.stream_latency = float(latency)
                self._last_callback = time.monotonic()
                stream.start_stream()
            except (OSError, ValueError) as exc:
                stream.close()
                raise AudioError(f"cannot start {side} device {info.describe()}: {exc}") from None
        log.debug("%r: opened %r at %d Hz, %d channel(s)", self, info.name, rate, channels)
        return stream

    def _close(self) -> None:
        stream, pa = self._stream, self._pa
        self._stream = self._pa = None
        with _LOCK:
            if stream is not None:
                try:
                    stream.close()
                except (OSError, ValueError) as exc:
                    log.debug("%r: closing the stream failed: %s", self, exc)
            if pa is not None:
                close_portaudio(pa)
        if stream is not None:  # its callbacks are over: a reopened stream's thread registers anew
            _threadnames.unregister(self._callback_ident)
            self._callback_ident = None

    def _problem(self) -> str | None:
        """Why the open stream needs reopening, or None."""
        try:
            if not self._stream.is_active():
                return "the audio stream stopped (device error or unplugged?)"
        except (OSError, ValueError) as exc:
            return f"the audio stream failed: {exc}"
        silent = time.monotonic() - self._last_callback
        return f"no audio callback for {silent:.1f} s" if silent > self.stall_timeout else None

    def _watch(self) -> None:
        try:
            while not self._stop_event.wait(self.POLL_INTERVAL):
                problem = self._problem()
                if problem is None:
                    continue
                self.stats.errors += 1
                log.warning("%r: %s; reopening", self, problem)
                self._close()
                if not self._reopen():
                    return
        except Exception:  # a bug here must not leave a stream open without its watcher
            self.stats.errors += 1
            log.exception("%r: the audio watcher failed", self)
        finally:
            self._close()

    def _reopen(self) -> bool:
        """Reopen with backoff: True once open, False when stopped or out of attempts."""
        delay, max_delay = self.reopen_backoff
        last: AudioError | None = None
        for attempt in range(1, self.max_reopen_attempts + 1):
            if self._stop_event.wait(delay):
                return False
            self.stats.reopen_attempts += 1
            try:
                self._open()
            except AudioError as exc:
                last = exc
                log.warning("%r: reopen attempt %d/%d failed: %s",
                            self, attempt, self.max_reopen_attempts, exc)
                delay = min(delay * 2, max_delay)
                continue
            self.stats.reopens += 1
            log.info("%r: reopened after %d attempt(s)", self, attempt)
            return True
        self._fail(AudioError(f"{self!r}: gave up after {self.max_reopen_attempts} reopen attempts; "
                              f"last error: {last}"))
        return False


class Microphone(_PortAudioDevice, AudioSource):
    """PortAudio capture in callback mode, delivering int16 mono frames at ``rate``.

    The device opens at ``device_rate`` if given, else at ``rate`` if it
    supports it, else at its default rate or another usual hardware rate, and
    the audio is converted with :class:`~rtedge.audio.codec.Resampler`; stereo
    is mixed to mono.  Input overflows are counted in ``stats.overflows``, not
    fatal.  ``on_frame`` runs on PortAudio's callback thread.

    A stream that stops by itself or stops calling back for ``stall_timeout``
    seconds is reopened by the ``rtedge-mic`` thread, waiting between
    attempts from ``reopen_backoff[0]`` doubling up to ``reopen_backoff[1]``
    seconds; after ``max_reopen_attempts`` failures in a row it sets
    ``failed`` and ``error`` and gives up.  ``stats.reopen_attempts`` and
    ``stats.reopens`` count them.

    Args:
        device: PortAudio device name (exact, case-insensitive, or a unique
            substring), index, or None for the default input device.
        channels: channels to open, 1 or 2 (the other is tried if refused).
        device_rate: force the rate the device is opened at.
    """

    _output = False
    _thread_name = "rtedge-mic"

    def __init__(
        self,
        device: str | int | None = None,
        *,
        rate: int = 16000,
        channels: int = 1,
        frame_ms: int = 20,
        device_rate: int | None = None,
        stall_timeout: float = 2.0,
        max_reopen_attempts: int = 10,
        reopen_backoff: tuple[float, float] = (0.1, 2.0),
    ) -> None:
        AudioSource.__init__(self, rate, frame_ms)
        self._setup(device, channels, device_rate, stall_timeout, max_reopen_attempts, reopen_backoff)

    def start(self, on_frame: OnFrame) -> None:
        """Open the device and begin calling ``on_frame`` from PortAudio's thread.

        Raises:
            AudioError: PyAudio is missing, the device is unknown (the message
                lists the devices) or cannot be opened, or it was started before.
        """
        self._claim_start()
        self._on_frame = on_frame
        self._start_stream()

    def _make_callback(self, device_rate: int, device_channels: int) -> StreamCallback:
        return _Capture(self, device_rate, device_channels).callback


class _Capture:
    """Per-stream capture state: device buffers -> mono -> ``rate`` -> exact frames."""

    def __init__(self, mic: Microphone, device_rate: int, device_channels: int) -> None:
        self.mic = mic
        self.stereo = device_channels == 2
        self.resampler = None if device_rate == mic.rate else codec.Resampler(device_rate, mic.rate)
        self.pending = np.zeros(0, dtype=np.int16)

    def callback(self, in_data: Any, _frame_count: int, status: int) -> None:
        mic = self.mic
        if status & INPUT_OVERFLOW:
            mic.stats.overflows += 1
        x = np.frombuffer(in_data, dtype="<i2").astype(np.int16, copy=False)
        if self.stereo:
            x = codec.stereo_to_mono(x[: len(x) // 2 * 2])
        if self.resampler is not None:
            x = self.resampler.process(x)
        if len(self.pending):
            x = np.concatenate([self.pending, x])
        n, k = mic.frame_samples, 0
        while len(x) - k >= n:
            mic._deliver(x[k : k + n].copy())
            k += n
        self.pending = x[k:].copy()


class Speaker(_PortAudioDevice, AudioSink):
    """PortAudio playback in callback mode, pulling int16 mono audio at ``rate``.

    The device opens like the :class:`Microphone` (``device_rate``, else
    ``rate``, else its default or a usual hardware rate); when the rates
    differ, audio pulled ``frame_samples`` at a time is converted with
    :class:`~rtedge.audio.codec.Resampler`.  A stereo device gets the signal on
    both channels.  Underruns are counted in ``stats.underruns``.  ``pull``
    runs on PortAudio's callback thread.  Failed streams are reopened like the
    microphone's, by the ``rtedge-speaker`` thread.
    """

    _output = True
    _thread_name = "rtedge-speaker"

    def __init__(
        self,
        device: str | int | None = None,
        *,
        rate: int = 24000,
        channels: int = 1,
        frame_ms: int = 20,
        device_rate: int | None = None,
        stall_timeout: float = 2.0,
        max_reopen_attempts: int = 10,
        reopen_backoff: tuple[float, float] = (0.1, 2.0),
    ) -> None:
        AudioSink.__init__(self, rate, frame_ms)
        self._setup(device, channels, device_rate, stall_timeout, max_reopen_attempts, reopen_backoff)
        self._resampler_delay = 0.0  # in device samples, for the open stream

    def start(self, pull: Pull) -> None:
        """Open the device and begin calling ``pull`` from PortAudio's thread.

        Raises:
            AudioError: PyAudio is missing, the device is unknown (the message
                lists the devices) or cannot be opened, or it was started before.
        """
        self._claim_start()
        self._pull = pull
        self._start_stream()

    @property
    def output_latency(self) -> float:
        """PortAudio's output latency of the open stream plus the resampler's delay (0 before start)."""
        if not self.stream_rate:
            return 0.0
        return self.stream_latency + self._resampler_delay / self.stream_rate

    def _make_callback(self, device_rate: int, device_channels: int) -> StreamCallback:
        playback = _Playback(self, device_rate, device_channels)
        self._resampler_delay = playback.resampler.delay if playback.resampler else 0.0
        return playback.callback


class _Playback:
    """Per-stream playback state: ``pull`` at ``rate`` -> device rate -> device channels."""

    def __init__(self, spk: Speaker, device_rate: int, device_channels: int) -> None:
        self.spk = spk
        self.stereo = device_channels == 2
        self.resampler = None if device_rate == spk.rate else codec.Resampler(spk.rate, device_rate)
        self.pending = np.zeros(0, dtype=np.int16)

    def callback(self, _in_data: Any, frame_count: int, status: int) -> bytes:
        spk = self.spk
        if status & OUTPUT_UNDERFLOW:
            spk.stats.underruns += 1
        if self.resampler is None:
            y = spk._pull_exact(frame_count)
        else:
            parts, have = [self.pending], len(self.pending)
            while have < frame_count:
                parts.append(self.resampler.process(spk._pull_exact(spk.frame_samples)))
                have += len(parts[-1])
            buf = np.concatenate(parts)
            y, self.pending = buf[:frame_count], buf[frame_count:].copy()
        if self.stereo:
            y = np.repeat(y, 2)
        return y.astype("<i2", copy=False).tobytes()
