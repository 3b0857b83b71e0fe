"""Truncation on a real, real-time-paced PortAudio sink: what the flush reports is what was heard.

A private PulseAudio daemon (no sound card) runs a 16 kHz null sink; PortAudio plays into it through
alsa-lib's ``pulse`` plugin, and ``parec`` records the sink's monitor, which is what a listener next to the
loudspeaker hears.  Each barge-in flushes a long tone part-way; the tone's length in the recording must
match ``PlaybackPosition.played_ms`` (the truncate's ``audio_end_ms``) within 5 ms, unless PortAudio flagged
an underrun during the burst (the callback came late on a loaded machine): on recovery the device may discard
what it held, so such a burst may be shorter by up to that much per underrun, never longer.  The null sink
runs with ``norewinds=1``: at the end of an underrun PulseAudio otherwise rewinds the sink 10 ms to play the
new audio at once, and the monitor, which has already handed the rewound span to ``parec``, drops the
re-rendered audio: the recording lost up to 10 ms that a sound card would have played (CI once heard
1054 ms for a truncate of 1060 ms, with no underrun that PortAudio could flag).  Skipped where
``pulseaudio``/``parec``, the ALSA pulse plugin or PyAudio are missing (``apt-get install pulseaudio
pulseaudio-utils libasound2-plugins``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rtedge.audio.playback import PlaybackBuffer

STOCK_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
PULSE_PLUGIN = [Path(p) for p in ("/usr/lib/x86_64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so",
                                  "/usr/lib/aarch64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so",
                                  "/usr/lib/arm-linux-gnueabihf/alsa-lib/libasound_module_pcm_pulse.so")]
SINK_RATE = 16000


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.002) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def _pulse_missing() -> str | None:
    for tool in ("pulseaudio", "parec", "pactl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not any(p.exists() for p in PULSE_PLUGIN):
        return "the ALSA pulse plugin (libasound2-plugins) is not installed"
    if not STOCK_ALSA_CONF.exists():
        return f"{STOCK_ALSA_CONF} not found"
    return None


class Pulse:
    """A private PulseAudio daemon with one null sink ``spk``; ALSA PCM ``rt_pa_spk`` plays into it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "native"
        self.env = {"PULSE_SERVER": f"unix:{self.socket}", "XDG_RUNTIME_DIR": str(root / "run"),
                    "HOME": str(root / "home")}
        (root / "run").mkdir(mode=0o700)
        (root / "home").mkdir()
        self.conf = root / "asound-pulse.conf"
        self.conf.write_text('pcm.rt_pa_spk { type pulse device "spk" }\nctl.rt_pa_spk { type pulse }\n')
        self.proc = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
             f"--log-target=file:{root / 'pulse.log'}",
             "-L", f"module-native-protocol-unix auth-anonymous=1 socket={self.socket}",
             "-L", f"module-null-sink sink_name=spk rate={SINK_RATE} channels=1 format=s16le norewinds=1"],
            env={**os.environ, **self.env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ready(self) -> bool:
        done = subprocess.run(["pactl", "list", "short", "sinks"], env={**os.environ, **self.env},
                              capture_output=True, text=True, timeout=10)
        return done.returncode == 0 and "spk" in done.stdout

    def record_monitor(self, path: Path) -> subprocess.Popen[bytes]:
        with open(path, "wb") as out:
            return subprocess.Popen(["parec", "-d", "spk.monitor", f"--rate={SINK_RATE}", "--channels=1",
                                     "--format=s16le", "--raw", "--latency-msec=10"],
                                    env={**os.environ, **self.env}, stdout=out)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def pulse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pulse]:
    reason = _pulse_missing()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("pyaudio")
    p = Pulse(tmp_path)
    try:
        if not wait_until(p.ready, timeout=10, interval=0.1):
            pytest.skip("the private PulseAudio daemon did not start")
        for key, value in p.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("ALSA_CONFIG_PATH", f"{STOCK_ALSA_CONF}:{p.conf}")
        yield p
    finally:
        p.close()


def _tone(rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds))
    return (np.sin(2 * np.pi * 500 * t / rate) * 10000).astype(np.int16)


def _bursts_ms(x: np.ndarray, rate: int) -> list[float]:
    """Tone heard in each burst of the recording, in ms (bursts are >= 100 ms of silence apart).

    Only tone counts: a gap that the sound server filled with silence inside a burst (the client was
    late under load) is not audio the listener heard, so each burst is the sum of its loud runs."""
    w = 17  # a sample is loud when |x| peaks within +-8 samples (a 500 Hz tone peaks every 16)
    env = np.lib.stride_tricks.sliding_window_view(np.abs(np.pad(x.astype(np.int32), w // 2)), w).max(axis=1)
    loud = np.nonzero(env > 3000)[0]
    if not len(loud):
        return []
    splits = np.nonzero(np.diff(loud) > rate // 10)[0]
    bursts = np.split(loud, splits + 1)
    out = []
    for idx in bursts:
        runs = np.split(idx, np.nonzero(np.diff(idx) > 1)[0] + 1)
        out.append(1000.0 * sum(max(0, len(r) - (w - 1)) for r in runs) / rate)
    return out


@pytest.mark.parametrize("rate", [16000, 24000])
def test_flush_reports_what_the_sink_really_played(pulse, tmp_path, rate):
    from rtedge.audio.devices import Speaker

    recording = tmp_path / "monitor.raw"
    rec = pulse.record_monitor(recording)
    spk = Speaker("rt_pa_spk", rate=rate, device_rate=SINK_RATE)
    pb = PlaybackBuffer(rate)
    reported: list[float] = []
    underruns: list[int] = []  # underflows PortAudio flagged during each burst (the client was late)
    try:
        spk.start(pb.pull)
        pb.output_latency = spk.output_latency
        assert spk.output_latency > 0.010  # the device holds audio: the old subtraction would be wrong
        # the stream settles on silence first, as a speaker does long before the first answer
        assert wait_until(lambda: pb.stats.silence_samples > rate // 2, timeout=10)
        for k, cut_ms in enumerate((300, 470, 650, 810, 1020)):
            before = spk.stats.underruns
            pb.push(f"item_{k}", 0, _tone(rate, 3.0))
            assert wait_until(lambda: pb.played_ms(f"item_{k}") >= cut_ms, timeout=10)
            pos = pb.flush()
            assert pos is not None and pos.item_id == f"item_{k}"
            reported.append(pos.played_ms)
            assert wait_until(lambda: pb.stats.silence_samples > 0 and not pb.is_playing(), timeout=5)
            silence = pb.stats.silence_samples
            assert wait_until(lambda: pb.stats.silence_samples > silence + rate // 4, timeout=5)
            underruns.append(spk.stats.underruns - before)
    finally:
        spk.stop()
        # the monitor records on: once 0.2 s more has reached the file, the last burst's tail is in it
        size = recording.stat().st_size
        wait_until(lambda: recording.stat().st_size >= size + SINK_RATE * 2 // 5, timeout=5)
        rec.terminate()
        rec.wait(5)
    heard = _bursts_ms(np.fromfile(recording, dtype="<i2"), SINK_RATE)
    assert len(heard) == len(reported), (heard, reported)
    latency_ms = 1000.0 * spk.output_latency
    for h, r, u in zip(heard, reported, underruns):
        # never more heard than the truncate says; a device that kept up played exactly that, and one that
        # under-ran (its callback came late: a loaded machine) may have discarded at most what it held
        # at each underrun when it recovered; PortAudio flags each one, so the bound is stated, not guessed
        assert h <= r + 5.0, f"heard {h:.1f} ms, truncate says only {r:.1f} ms"
        assert h >= r - 5.0 - u * latency_ms, (
            f"heard {h:.1f} ms, truncate says {r:.1f} ms ({u} underruns flagged, {latency_ms:.0f} ms held)")
    assert len(heard) == len(underruns)
