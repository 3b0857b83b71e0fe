"""append_audio never loses audio silently: any length is queued completely or the call raises
(BackpressureError says how much was not queued); drop_oldest is an explicit, counted live-mic policy."""

from __future__ import annotations

import base64
import logging

import numpy as np
import pytest

import rtedge
from rtedge.errors import AudioError, BackpressureError, ConfigError
from rtedge.testing import RealtimeServer
from rtedge.audio.wavio import read_wav

from ..conftest import SPEECH, wait_until
from ..faults.proxy import FaultProxy

RATE = 24000
MANUAL = rtedge.SessionConfig(output_modalities=("text",), turn_detection=None)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """60 s of real speech at 24 kHz: the fixture phrases, end to end, repeated."""
    if not SPEECH.is_dir():
        pytest.skip("../shared/fixtures/speech is not present")
    parts = []
    for path in sorted(SPEECH.glob("*.wav")):
        samples, rate = read_wav(path)
        mono = samples if samples.ndim == 1 else samples[:, 0]
        n = int(len(mono) * RATE / rate)
        parts.append(np.interp(np.arange(n) * rate / RATE, np.arange(len(mono)), mono).astype(np.int16))
    one = np.concatenate(parts)
    return np.tile(one, 60 * RATE // len(one) + 1)[:60 * RATE]


def _received_audio(server: RealtimeServer) -> bytes:
    return b"".join(base64.b64decode(e["audio"]) for e in server.received
                    if e["type"] == "input_audio_buffer.append")


@pytest.mark.parametrize("seconds", [2.1, 10.0, 60.0])
def test_one_append_of_any_length_arrives_complete_and_commits(speech, seconds):
    pcm = speech[:int(seconds * RATE)]
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url, session=MANUAL) as client:
        queued = client.append_audio(pcm, rate=RATE)  # one call, far over max_audio_queue_ms (2 s)
        assert queued == pcm.nbytes
        client.commit()
        committed = client.wait_for("input_audio_buffer.committed", timeout=30)
        assert committed.type == "input_audio_buffer.committed"
        assert _received_audio(srv) == pcm.tobytes()
        assert not [e for e in srv.sent if e["type"] == "error"]
        assert client.stats.audio_dropped == 0 and client.stats.audio_dropped_ms == 0


def test_a_file_streamed_with_no_pacing_arrives_byte_for_byte(speech):
    """60 s in 10 ms frames, as fast as the loop runs: append_audio paces the producer by itself."""
    frame = RATE // 100
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url, session=MANUAL) as client:
        for i in range(0, len(speech), frame):
            client.append_audio(speech[i:i + frame], rate=RATE)
        client.commit()
        client.wait_for("input_audio_buffer.committed", timeout=30)
        assert _received_audio(srv) == speech.tobytes()
        assert client.stats.audio_dropped == 0


def test_a_stalled_link_raises_backpressure_with_what_was_not_queued(speech):
    with RealtimeServer(realtime=False) as srv:
        proxy = FaultProxy(srv.port).start()
        try:
            client = rtedge.connect(url=proxy.url, session=MANUAL, max_audio_queue_ms=500, ping_interval=0)
            proxy.pause(stall=True)  # nothing moves: socket buffers fill, then the send queue
            total = 0
            with pytest.raises(BackpressureError) as info:
                for _ in range(1000):  # 1000 s of audio at most: the queue fills long before
                    total += client.append_audio(speech[:RATE], rate=RATE, timeout=0.3)
            err = info.value
            assert 0 < err.not_queued_bytes <= RATE * 2 and err.queued_bytes + err.not_queued_bytes == RATE * 2
            assert err.not_queued_ms == pytest.approx(err.not_queued_bytes / 48)
            assert client.stats.audio_dropped == 0  # blocked, never dropped
            proxy.resume()
            client.commit()
            client.wait_for("input_audio_buffer.committed", timeout=30)
            # everything reported as queued arrived, in order; nothing else
            assert len(_received_audio(srv)) == total + err.queued_bytes
            client.close()
        finally:
            proxy.stop()


def test_drop_oldest_is_explicit_counted_and_logged_once_per_episode(speech, caplog):
    caplog.set_level(logging.WARNING, logger="rtedge")
    with RealtimeServer(realtime=False) as srv:
        proxy = FaultProxy(srv.port).start()
        try:
            client = rtedge.connect(url=proxy.url, session=MANUAL, max_audio_queue_ms=300, ping_interval=0)
            proxy.pause(stall=True)
            for _ in range(3000):  # 10 ms frames until the queue overflows (socket buffers first)
                client.append_audio(speech[:240], rate=RATE, overflow="drop_oldest")
                if client.stats.audio_dropped > 50:
                    break
            assert client.stats.audio_dropped > 50
            assert client.stats.audio_dropped_ms == pytest.approx(client.stats.audio_dropped * 10)
            proxy.resume()
            assert wait_until(lambda: client.wait_sent(0, timeout=0), timeout=10)
            assert wait_until(lambda: "drained" in caplog.records[-1].getMessage(), timeout=10)
            marks = ["start" if "dropping the oldest" in r.getMessage() else "end" for r in caplog.records
                     if "dropping the oldest" in r.getMessage() or "drained" in r.getMessage()]
            # one warning when an episode starts, one when it ends: never one per dropped frame.  How many
            # episodes depends on the machine (while the socket buffers still take a little, the queue can
            # drain between drops before the stall holds; a loaded machine sees more of that), so the bound
            # is relative: every episode dropped several frames.
            assert marks == ["start", "end"] * (len(marks) // 2) and len(marks) >= 2
            assert client.stats.audio_dropped > 5 * len(marks)
            client.close()
        finally:
            proxy.stop()


def test_overflow_must_be_a_known_policy():
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url) as client:
        with pytest.raises(ConfigError, match="overflow"):
            client.append_audio(np.zeros(240, np.int16), rate=RATE, overflow="drop_newest")  # type: ignore[arg-type]


def test_a_rate_of_0_is_refused_not_taken_for_the_session_rate():
    """``rate=None`` means the session's rate; a rate of 0 (a broken header, a bad variable) is an error,
    not a silent send of the samples as if they were at 24 kHz."""
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url, session=MANUAL) as client:
        for _ in range(2):
            with pytest.raises(AudioError, match="0 Hz"):
                client.append_audio(np.zeros(240, np.int16), rate=0)
        assert client.append_audio(np.zeros(240, np.int16)) == 480
        assert wait_until(lambda: len(_received_audio(srv)) == 480)


def test_wire_chunks_follow_a_change_of_input_format(speech):
    """The largest audio message is 200 ms of the format in force: after a switch to G.711 mid-session
    a long append goes out in 200 ms of mu-law (1600 bytes), not in the size worked out for PCM16."""
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url, session=MANUAL) as client:
        client.append_audio(speech[:RATE], rate=RATE)  # 1 s of PCM16 at 24 kHz: 200 ms = 9600 bytes
        client.update_session(input_format=rtedge.AudioFormat.pcmu(), timeout=10)
        assert client.state.input_format == rtedge.AudioFormat.pcmu()
        queued = client.append_audio(speech[:RATE], rate=RATE)  # 1 s again, now 8000 bytes of mu-law
        assert queued == 8000
        client.commit()
        client.wait_for("input_audio_buffer.committed", timeout=30)
        sizes = [len(base64.b64decode(e["audio"])) for e in srv.received if e["type"] == "input_audio_buffer.append"]
        assert sizes[:5] == [9600] * 5, sizes
        assert sizes[5:10] == [1600] * 5, sizes
        assert all(n < 1600 for n in sizes[10:]), sizes  # what commit flushes from the resampler
