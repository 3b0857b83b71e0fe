"""VoiceAgent against the local server: barge-in, the played clock, the echo guard, the VAD gate."""

from __future__ import annotations

import base64
import logging
import threading
from collections import deque
from collections.abc import Callable

import numpy as np
import pytest

import rtedge
from rtedge.voice.agent import VoiceAgent
from rtedge.audio.devices import NullSink, WavSink, WavSource
from rtedge.errors import ConfigError
from rtedge.protocol._state import ResponseState
from rtedge.testing import RealtimeServer
from rtedge.audio.wavio import read_wav

from ..conftest import wait_until

pytestmark = pytest.mark.usefixtures("no_thread_leak")

LONG_ANSWER = "Once upon a time there was a very long story that kept going and going. " * 3
FRAME_MS = 20


class ScriptedMic:
    """A paced microphone: silence, plus whatever the test queues with ``speak``."""

    def __init__(self, rate: int = 16000) -> None:
        self.rate, self.frame_ms = rate, FRAME_MS
        self.n = rate * FRAME_MS // 1000
        self.finished = threading.Event()
        self._queue: deque[np.ndarray] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def speak(self, samples: np.ndarray) -> None:
        for i in range(0, len(samples), self.n):
            chunk = samples[i:i + self.n]
            self._queue.append(np.pad(chunk, (0, self.n - len(chunk))))

    def start(self, on_frame) -> None:
        def run() -> None:
            import time
            t0 = time.monotonic()
            k = 0
            while not self._stop.wait(max(0.0, t0 + k * FRAME_MS / 1000 - time.monotonic())):
                on_frame(self._queue.popleft() if self._queue else np.zeros(self.n, np.int16))
                k += 1

        self._thread = threading.Thread(target=run, name="rtedge-mic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)


@pytest.fixture
def phrase(speech_dir) -> np.ndarray:
    samples, rate = read_wav(speech_dir / "stop.wav")
    assert rate == 16000
    return samples


def _agent_thread(agent: VoiceAgent, **kwargs) -> threading.Thread:
    t = threading.Thread(target=agent.run, kwargs=kwargs, name="test-agent-run", daemon=True)
    t.start()
    return t


def _interrupt_a_long_answer(srv: RealtimeServer, client: rtedge.Client, mic: ScriptedMic, agent: VoiceAgent,
                             phrase: np.ndarray, heard_samples: int) -> None:
    """Ask for a long story, let ``heard_samples`` of it play, then speak over it (a short next answer)."""
    client.send_text("Tell me a long story.")
    assert wait_until(lambda: agent.playback.stats.played_samples > heard_samples, timeout=10)
    srv.reply_text = "Okay."
    mic.speak(phrase)
    assert wait_until(lambda: agent.stats.interruptions >= 1, timeout=10)


def test_barge_in_mid_answer_truncates_at_the_played_clock(tmp_path, phrase, caplog):
    caplog.set_level(logging.DEBUG, logger="rtedge")
    with RealtimeServer(reply_text=LONG_ANSWER, seed=3) as srv, rtedge.connect(url=srv.url) as client:
        mic, speaker = ScriptedMic(), WavSink(tmp_path / "out.wav", rate=24000)
        agent = VoiceAgent(client, mic, speaker)
        runner = _agent_thread(agent, max_seconds=30)
        client.send_text("Tell me a long story.")
        assert wait_until(lambda: agent.playback.stats.played_samples > 24000, timeout=10)  # 1 s heard
        srv.reply_text = "Okay."  # the next turn's answer
        mic.speak(phrase)
        assert wait_until(lambda: agent.stats.interruptions >= 1, timeout=10)
        interruption = agent.interruptions[0]
        assert interruption.source == "server" and interruption.truncated and not interruption.cancelled
        truncate = srv.wait_for_received("conversation.item.truncate", timeout=5)
        first = srv.wait_for_sent("response.output_item.added")["item"]["id"]
        assert truncate["item_id"] == first and truncate["content_index"] == 0
        # audio_end_ms is the played clock (WavSink: no output latency) within one device period
        assert abs(truncate["audio_end_ms"] - interruption.position.played_ms) <= FRAME_MS
        assert 1000 - FRAME_MS <= truncate["audio_end_ms"] < 10000
        # not one more sample of the interrupted item reached the speaker after the flush
        assert agent.playback.played_ms(first) == interruption.position.played_ms
        # the server cancelled by itself (interrupt_response): no cancel from us, no error
        cancelled = srv.wait_for_sent("response.done", timeout=5)
        assert cancelled["response"]["status"] == "cancelled"
        # the next turn (the phrase that interrupted) gets its answer
        srv.wait_for_sent("response.done", nth=2, timeout=15)
        agent.stop()
        runner.join(5)
    assert not [e for e in srv.received if e["type"] == "response.cancel"]
    assert not [e for e in srv.sent if e["type"] == "error"]
    # --debug shows the decision with the numbers behind it
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("barge-in (server)")]
    p = interruption.position
    assert said == [f"barge-in (server): playback stopped in {first} after {p.played_ms:.0f} ms played of "
                    f"{p.received_ms:.0f} ms received; truncate at {p.played_ms:.0f} ms: sent; cancel: no"]


def test_barge_in_does_not_wait_for_a_blocked_dispatcher(phrase):
    """The guarantee: barge-in runs on the thread that noticed it, never on the dispatcher, so a user
    callback that blocks for the whole answer delays neither the flush nor the truncate."""
    release, blocked = threading.Event(), threading.Event()

    def stuck(_event) -> None:  # a user callback that hangs (a slow HTTP call, a lock held elsewhere)
        blocked.set()
        release.wait(30)

    with RealtimeServer(reply_text=LONG_ANSWER, seed=3) as srv, rtedge.connect(url=srv.url) as client:
        client.on("response.created", stuck)
        mic = ScriptedMic()
        agent = VoiceAgent(client, mic, NullSink(rate=24000))
        runner = _agent_thread(agent, max_seconds=30)
        try:
            client.send_text("Tell me a long story.")
            assert blocked.wait(10)
            assert wait_until(lambda: agent.playback.stats.played_samples > 12000, timeout=10)
            mic.speak(phrase)
            assert wait_until(lambda: agent.stats.interruptions >= 1, timeout=10)
            assert not release.is_set() and agent.interruptions[0].truncated
            truncate = srv.wait_for_received("conversation.item.truncate", timeout=5)
            first = srv.wait_for_sent("response.output_item.added")["item"]["id"]
            assert truncate["item_id"] == first and truncate["audio_end_ms"] > 0
            # flushed while the callback still hangs: not one more sample of the cut item was played
            assert agent.playback.played_ms(first) == agent.interruptions[0].position.played_ms
        finally:
            release.set()
            agent.stop()
            runner.join(5)


def test_late_deltas_of_a_cut_response_never_reach_the_speaker(phrase):
    with RealtimeServer(reply_text=LONG_ANSWER, seed=3) as srv, rtedge.connect(url=srv.url) as client:
        mic = ScriptedMic()
        agent = VoiceAgent(client, mic, NullSink(rate=24000))
        runner = _agent_thread(agent, max_seconds=30)
        _interrupt_a_long_answer(srv, client, mic, agent, phrase, heard_samples=12000)
        cut = srv.wait_for_sent("response.created")["response"]["id"]
        item = srv.wait_for_sent("response.output_item.added")["item"]["id"]
        played, received = agent.playback.played_ms(item), agent.playback.received_ms(item)
        dropped = agent.stats.late_deltas_dropped
        late = {"type": "response.output_audio.delta", "response_id": cut, "item_id": item,
                "output_index": 0, "content_index": 0, "delta": base64.b64encode(bytes(4800)).decode()}
        for _ in range(3):  # 300 ms of a response the listener already cut off
            srv.send_event(dict(late))
        assert wait_until(lambda: agent.stats.late_deltas_dropped >= dropped + 3, timeout=5)
        assert agent.playback.received_ms(item) == received and agent.playback.played_ms(item) == played
        agent.stop()
        runner.join(5)


def test_barge_in_before_anything_played_sends_no_truncate(phrase):
    with RealtimeServer(reply_text=LONG_ANSWER, response_delay=1.5, seed=4) as srv, \
            rtedge.connect(url=srv.url) as client:
        mic = ScriptedMic()
        agent = VoiceAgent(client, mic, NullSink(rate=24000))
        runner = _agent_thread(agent, max_seconds=30)
        client.send_text("Tell me a long story.")
        srv.wait_for_sent("response.created", timeout=5)
        srv.reply_text, srv.response_delay = "Okay.", 0.0
        mic.speak(phrase)  # speech starts while the answer has not produced audio yet
        assert wait_until(lambda: len(agent.interruptions) >= 1, timeout=10)
        assert agent.interruptions[0].truncated is False
        srv.wait_for_sent("response.done", nth=2, timeout=15)
        agent.stop()
        runner.join(5)
    assert not [e for e in srv.received if e["type"] in ("conversation.item.truncate", "response.cancel")]
    assert not [e for e in srv.sent if e["type"] == "error"]


def test_speech_after_the_answer_finished_interrupts_nothing(phrase):
    with RealtimeServer(reply_text="Done.", seed=5) as srv, rtedge.connect(url=srv.url) as client:
        mic = ScriptedMic()
        agent = VoiceAgent(client, mic, NullSink(rate=24000))
        runner = _agent_thread(agent, max_seconds=30)
        client.send_text("Say done.")
        srv.wait_for_sent("response.done", timeout=10)
        assert wait_until(lambda: not agent.playback.is_playing(), timeout=10)
        mic.speak(phrase)
        srv.wait_for_sent("input_audio_buffer.speech_started", timeout=10)
        srv.wait_for_sent("response.done", nth=2, timeout=15)
        agent.stop()
        runner.join(5)
    assert agent.interruptions and agent.stats.interruptions == 0
    assert all(i.position is None and not i.truncated and not i.cancelled for i in agent.interruptions)
    assert not [e for e in srv.received if e["type"] in ("conversation.item.truncate", "response.cancel")]


def test_local_barge_in_with_manual_turns_cancels_and_truncates(phrase):
    session = rtedge.SessionConfig(turn_detection=None)
    with RealtimeServer(reply_text=LONG_ANSWER, seed=6) as srv, \
            rtedge.connect(url=srv.url, session=session) as client:
        mic = ScriptedMic()
        agent = VoiceAgent(client, mic, NullSink(rate=24000), barge_in="local", echo_guard="off")
        runner = _agent_thread(agent, max_seconds=30)
        client.create_response()
        assert wait_until(lambda: agent.playback.stats.played_samples > 12000, timeout=10)
        mic.speak(phrase)
        assert wait_until(lambda: agent.stats.interruptions >= 1, timeout=10)
        got = agent.interruptions[0]
        assert got.source == "local" and got.truncated and got.cancelled  # no server VAD: we must cancel
        done = srv.wait_for_sent("response.done", timeout=5)
        assert done["response"]["status"] == "cancelled"
        agent.stop()
        runner.join(5)
    assert len([e for e in srv.received if e["type"] == "response.cancel"]) == 1
    assert not [e for e in srv.sent if e["type"] == "error"]


def test_half_duplex_sends_no_mic_audio_while_playing(phrase):
    with RealtimeServer(reply_text=LONG_ANSWER, seed=7) as srv, rtedge.connect(url=srv.url) as client:
        mic = ScriptedMic()
        agent = VoiceAgent(client, mic, NullSink(rate=24000), echo_guard="half_duplex", barge_in="server")
        runner = _agent_thread(agent, max_seconds=30)
        client.send_text("Tell me a long story.")
        assert wait_until(lambda: agent.playback.stats.played_samples > 12000, timeout=10)
        before = len([e for e in srv.received if e["type"] == "input_audio_buffer.append"])
        # loud enough to pass the "threshold" guard: only half-duplex keeps it from the server
        echo = (np.sin(np.arange(8000) / 3) * 6000).astype(np.int16)
        mic.speak(echo)
        assert wait_until(lambda: mic._queue == deque(), timeout=5)
        assert agent.playing()
        after = len([e for e in srv.received if e["type"] == "input_audio_buffer.append"])
        assert after == before
        assert agent.stats.interruptions == 0
        agent.stop()
        runner.join(5)


def test_vad_gate_sends_speech_not_idle_silence(tmp_path, speech_dir):
    with RealtimeServer(realtime=False, seed=8) as srv, rtedge.connect(url=srv.url) as client:
        mic = WavSource(speech_dir / "turn_on_the_kitchen_lights.wav", realtime=True)
        agent = VoiceAgent(client, mic, NullSink(rate=24000))
        agent.run(max_seconds=30, until_input_ends=True)
        assert srv.wait_for_sent("response.done", timeout=5)["response"]["status"] == "completed"
    gate = agent.gate.stats
    assert gate.frames_in == gate.frames_sent + gate.frames_not_sent
    assert agent.stats.seconds_not_sent > 0.5  # the silence after the phrase was not streamed
    assert client.usage.responses == 1


@pytest.mark.parametrize("frame_ms", [5, 20])
def test_audio_not_sent_is_what_came_in_less_what_went_out(speech_dir, frame_ms):
    """The summary's "mic audio not sent" counted every frame the gate held as pre-roll, though the gate
    sent it with the speech after it: 4.1 s "not sent" of a 4.0 s file at 5 ms frames."""
    import base64

    with RealtimeServer(realtime=False, seed=8) as srv, rtedge.connect(url=srv.url) as client:
        mic = WavSource(speech_dir / "turn_on_the_kitchen_lights.wav", realtime=True, frame_ms=frame_ms)
        agent = VoiceAgent(client, mic, NullSink(rate=24000))
        agent.run(max_seconds=30, until_input_ends=True)
        assert srv.wait_for_sent("response.done", timeout=5)["response"]["status"] == "completed"
        rate = client.snapshot.input_format.rate
        sent_s = sum(len(base64.b64decode(e["audio"])) // 2 for e in srv.received
                     if e["type"] == "input_audio_buffer.append") / rate
    heard_s = agent.stats.mic_frames * frame_ms / 1000
    assert 0.5 < agent.stats.seconds_not_sent < heard_s - 1.0  # the silence went, the phrase did not
    # the resampler's priming shifts a few ms between what went in and what went on the wire
    assert agent.stats.seconds_not_sent == pytest.approx(heard_s - sent_s, abs=0.03)


def test_bad_policy_names():
    class Dummy:
        rate, frame_ms, output_latency = 16000, 20, 0.0

        def _add_audio_hook(self, sink):
            pass

        def _add_event_hook(self, hook):
            pass

    with pytest.raises(ConfigError):
        VoiceAgent(Dummy(), Dummy(), Dummy(), barge_in="sometimes")
    with pytest.raises(ConfigError):
        VoiceAgent(Dummy(), Dummy(), Dummy(), echo_guard="maybe")
    for tail in (-0.1, 6.0, True, "0.3"):
        with pytest.raises(ConfigError):
            VoiceAgent(Dummy(), Dummy(), Dummy(), echo_tail_s=tail)
    # a device rate the codec does not convert ran the whole session deaf (mic) or mute (speaker), an
    # error logged per frame
    odd = Dummy()
    odd.rate = 96000
    with pytest.raises(ConfigError, match=r"mic.rate 96000 Hz is not a rate the codec converts"):
        VoiceAgent(Dummy(), odd, Dummy())
    odd.rate = 12000
    with pytest.raises(ConfigError, match=r"speaker.rate 12000 Hz .* one of 8000, 11025, 16000"):
        VoiceAgent(Dummy(), Dummy(), odd)


def _play_an_answer_over_quiet(agent: VoiceAgent, seed: int) -> Callable[[float, int], None]:
    """Settle the gate on quiet (about -70 dBFS: its floor goes to its lowest, -60), play a 200 ms answer
    while the microphone hears quiet, and wait until it has played; returns ``frames(rms, count)``, which
    feeds ``count`` 20 ms microphone frames of noise at ``rms``."""
    rng = np.random.default_rng(seed)

    def frames(rms: float, count: int) -> None:
        for _ in range(count):
            agent._on_frame(np.round(rng.normal(0, rms, 320)).astype(np.int16))

    frames(10, 50)
    agent.playback.push("item_answer", 0, np.full(24000 // 5, 1000, np.int16))
    while agent.playback.pull(480).any():
        frames(10, 1)
    assert wait_until(lambda: not agent.playing(), timeout=5)
    return frames


def test_the_echo_guard_outlasts_playback_by_the_rooms_echo_tail():
    """The room still echoes the last sound after the speaker has gone quiet: that tail must not open the
    gate (the boost used to drop the moment playback ended, and the echo canceller's residual of a loud
    last syllable opened it: the answer's own end sent to the server as speech).  Once ``echo_tail_s`` of
    microphone audio has passed, the same level opens the gate unboosted."""
    with RealtimeServer(seed=13) as srv, rtedge.connect(url=srv.url) as client:
        agent = VoiceAgent(client, ScriptedMic(), NullSink(rate=24000), barge_in="local")
        frames = _play_an_answer_over_quiet(agent, seed=1)
        # -44 dBFS: above the plain threshold (-48), below the boosted one (-33)
        frames(200, 5)
        assert agent.gate.stats.speech_segments == 0 and not agent.gate.is_open
        frames(10, 15)  # 300 ms more: the default tail (0.3 s) is over
        frames(200, 5)
        assert agent.gate.stats.speech_segments == 1
        assert agent.stats.interruptions == 0  # nothing was playing


def test_half_duplex_stays_deaf_for_the_echo_tail_after_playback():
    """half_duplex sends nothing while playing and nothing during the echo tail either (a loud last
    syllable's echo would otherwise go to the server as speech); after the tail the user is heard."""
    with RealtimeServer(seed=13) as srv, rtedge.connect(url=srv.url) as client:
        agent = VoiceAgent(client, ScriptedMic(), NullSink(rate=24000), echo_guard="half_duplex")
        frames = _play_an_answer_over_quiet(agent, seed=2)
        sent = agent.stats.frames_sent
        frames(3000, 10)  # -20 dBFS, as loud as the answer's echo: 200 ms, inside the 300 ms tail
        assert agent.stats.frames_sent == sent
        frames(10, 10)  # the tail is over
        frames(3000, 10)  # the user speaks: heard
        assert agent.stats.frames_sent > sent


@pytest.mark.parametrize("gap_ms", [100, 200, 300, 500, 700, 900, 1100, 1300, 1500, 2000])
def test_local_barge_in_catches_speech_right_after_the_previous_utterance(phrase, gap_ms):
    """The user's turn ends, the answer starts, the user speaks again ``gap_ms`` after the end of the
    first utterance: the gate is still in hangover/trailing, and barge-in must fire all the same."""
    session = rtedge.SessionConfig(turn_detection=None)
    with RealtimeServer(seed=11) as srv, rtedge.connect(url=srv.url, session=session) as client:
        agent = VoiceAgent(client, ScriptedMic(), NullSink(rate=24000), barge_in="local")
        n = 320
        voiced = np.nonzero(np.abs(phrase) > 2000)[0]
        word = phrase[voiced[0]:voiced[-1]]
        quiet = np.random.default_rng(gap_ms).normal(0, 20, 16000 * 3).astype(np.int16)
        gap = gap_ms * 16
        x = np.concatenate([quiet[:16000], word, quiet[:gap], word, quiet])
        second = 16000 + len(word) + gap
        answer_at = second - min(gap // 2, 1600)  # the answer starts playing in the gap
        frames = [x[i:i + n] for i in range(0, len(x) - n, n)]
        for k, frame in enumerate(frames):
            if k * n <= answer_at < (k + 1) * n:
                agent.playback.push("item_answer", 0, np.full(24000 * 5, 1000, np.int16))
            agent._on_frame(frame)
            if agent.interruptions:
                break
        assert agent.interruptions, f"no barge-in for speech {gap_ms} ms after the previous utterance"
        hit_ms = k * 20
        assert second / 16 <= hit_ms + 20 <= second / 16 + 200
        assert agent.interruptions[0].source == "local" and agent.interruptions[0].position is not None
        assert not agent.playback.is_playing()


def test_local_mode_also_acts_on_the_servers_speech_started(phrase):
    """Audio the local gate did not take for an onset (here: appended by the app) still barges in when
    the server's VAD hears it, since the server cancels the answer by itself."""
    with RealtimeServer(reply_text=LONG_ANSWER, seed=12) as srv, rtedge.connect(url=srv.url) as client:
        mic = ScriptedMic()
        agent = VoiceAgent(client, mic, NullSink(rate=24000), barge_in="local", echo_guard="half_duplex")
        runner = _agent_thread(agent, max_seconds=30)
        client.send_text("Tell me a long story.")
        assert wait_until(lambda: agent.playback.stats.played_samples > 12000, timeout=10)
        audio = np.concatenate([phrase, np.zeros(16000, np.int16)])
        for i in range(0, len(audio), 1600):  # paced like a device, 100 ms at a time
            client.append_audio(audio[i:i + 1600], 16000)
            if wait_until(lambda: agent.stats.interruptions >= 1, timeout=0.1):
                break
        assert wait_until(lambda: agent.stats.interruptions >= 1, timeout=10)
        got = agent.interruptions[0]
        assert got.source == "server" and got.truncated and not got.cancelled
        agent.stop()
        runner.join(5)
    assert len([e for e in srv.received if e["type"] == "conversation.item.truncate"]) == 1


def test_an_agent_runs_once_and_a_stop_before_run_is_not_lost():
    """A second run() (at the same time, or after the first) is refused by name; it used to start the
    single-use devices again and fail on a device thread, or return at once with nothing said."""
    with RealtimeServer() as srv, rtedge.connect(url=srv.url) as client:
        early = VoiceAgent(client, ScriptedMic(), NullSink(rate=24000))
        early.stop()  # e.g. a signal that came before run()
        early.run(max_seconds=30)  # returns at once
        assert early.stats.mic_frames < 10
        early.close()
        agent = VoiceAgent(client, ScriptedMic(), NullSink(rate=24000))
        runner = _agent_thread(agent, max_seconds=30)
        assert wait_until(lambda: agent.stats.mic_frames >= 10, timeout=10)
        with pytest.raises(RuntimeError, match="has run already"):
            agent.run(max_seconds=1)
        agent.stop()
        runner.join(5)
        assert not runner.is_alive()
        with pytest.raises(RuntimeError, match="has run already.* make a new one with new devices"):
            agent.run(max_seconds=1)


def test_a_closed_agent_is_detached_and_a_new_one_drives_the_same_client(phrase):
    """Two agents made one after the other on one client: the first, closed, no longer takes audio into its
    buffer or barges in (both used to push audio and send truncates)."""
    with RealtimeServer(reply_text=LONG_ANSWER, seed=6) as srv, rtedge.connect(url=srv.url) as client:
        with VoiceAgent(client, ScriptedMic(), NullSink(rate=24000)) as first:
            pass
        with pytest.raises(RuntimeError, match="closed"):
            first.run(max_seconds=1)
        mic = ScriptedMic()
        second = VoiceAgent(client, mic, NullSink(rate=24000))
        runner = _agent_thread(second, max_seconds=30)
        _interrupt_a_long_answer(srv, client, mic, second, phrase, heard_samples=24000)
        srv.wait_for_sent("response.done", nth=2, timeout=15)
        second.close()
        runner.join(5)
    assert first.playback.stats.pushed_samples == 0 and first.stats.interruptions == 0
    assert len([e for e in srv.received if e["type"] == "conversation.item.truncate"]) == 1


def test_a_closed_agent_ignores_what_a_device_thread_still_hands_it():
    """close() from another thread returns before run() has stopped the devices: a microphone frame
    arriving in between was still appended for the closed agent."""
    with RealtimeServer() as srv, rtedge.connect(url=srv.url) as client:
        agent = VoiceAgent(client, ScriptedMic(), NullSink(rate=24000), vad_gate=False)
        agent._on_frame(np.full(320, 1000, np.int16))
        assert agent.stats.mic_frames == agent.stats.frames_done == 1
        agent.close()
        agent._on_frame(np.full(320, 1000, np.int16))  # as the mic thread would, before run() stops it
        assert agent.stats.mic_frames == agent.stats.frames_done == 1


@pytest.mark.parametrize("turn_detection, warned", [
    ({"type": "server_vad"}, True),  # interrupt_response defaults to true
    ({"type": "server_vad", "interrupt_response": False}, False),
    (None, False),  # manual turns: nothing cancels on speech
])
def test_barge_in_off_warns_when_the_server_still_cancels_on_speech(turn_detection, warned, caplog):
    session = rtedge.SessionConfig(turn_detection=turn_detection)
    with RealtimeServer() as srv, rtedge.connect(url=srv.url, session=session) as client:
        caplog.set_level(logging.WARNING, logger="rtedge")
        with VoiceAgent(client, ScriptedMic(), NullSink(rate=24000), barge_in="off"):
            pass
        with VoiceAgent(client, ScriptedMic(), NullSink(rate=24000), barge_in="server"):
            pass
    said = [r.getMessage() for r in caplog.records if "barge_in='off'" in r.getMessage()]
    assert len(said) == (1 if warned else 0)


def test_frames_made_during_an_outage_are_counted_as_dropped_not_sent():
    """While the link is down the client drops the microphone's audio (never sent stale); the agent's
    ``frames_sent`` used to count those frames as sent."""
    fast = rtedge.Backoff(initial=0.05, max=0.2, multiplier=2.0, jitter=0.0, max_attempts=None)
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url, reconnect=fast) as client:
        agent = VoiceAgent(client, ScriptedMic(), NullSink(rate=24000), vad_gate=False, echo_guard="off")
        runner = _agent_thread(agent, max_seconds=30)
        assert wait_until(lambda: agent.stats.frames_sent >= 10, timeout=10)
        srv.handshake_status = 503
        srv.drop_connections()
        assert wait_until(lambda: client.stats.audio_dropped_outage_ms >= 200, timeout=10)
        sent_during = agent.stats.frames_sent
        # (the agent's own count: the client's also holds what was queued at the cut, so its 400 ms could
        # come with only 9 of the agent's frames dropped on a loaded machine)
        assert wait_until(lambda: agent.stats.frames_dropped_outage >= 10, timeout=10)
        assert agent.stats.frames_sent - sent_during <= 1  # at most the frame in flight as the link dropped
        srv.handshake_status = None
        assert wait_until(lambda: agent.stats.frames_sent >= sent_during + 10, timeout=10)
        agent.stop()
        runner.join(5)
        assert not runner.is_alive()
    stats = agent.stats
    assert stats.frames_sent + stats.frames_dropped_outage == stats.frames_done == stats.mic_frames
    # the client counted at least the agent's dropped frames (it also drops what was queued at the cut)
    assert client.stats.audio_dropped_outage_ms >= stats.frames_dropped_outage * FRAME_MS


@pytest.mark.parametrize("how", ["stop", "max_seconds", "link_closed"])
def test_run_returns_with_its_device_threads_joined(how):
    """However run() ends, the devices it started are stopped and their threads joined before it
    returns (no wait afterwards)."""
    from rtedge.audio.devices import NullSource

    def device_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name in ("rtedge-mic", "rtedge-speaker")]

    before = device_threads()
    with RealtimeServer() as srv, rtedge.connect(url=srv.url) as client:
        agent = VoiceAgent(client, NullSource(rate=16000), NullSink(rate=24000))
        runner = _agent_thread(agent, max_seconds=0.5 if how == "max_seconds" else 30)
        assert wait_until(lambda: agent.stats.mic_frames >= 3, timeout=10)
        assert sorted(device_threads()) == sorted([*before, "rtedge-mic", "rtedge-speaker"])
        if how == "stop":
            agent.stop()
        elif how == "link_closed":
            client.close()
        runner.join(10)
        assert not runner.is_alive()
        assert device_threads() == before


def test_a_stalled_link_drops_the_oldest_audio_and_never_blocks_the_microphone():
    """The sender hangs (a stalled link): the agent's appends use ``overflow="drop_oldest"``, so the
    microphone's frames keep being handled at their pace, the queue stays at its bound and the excess
    is counted in ``client.stats.audio_dropped``."""
    release = threading.Event()
    with RealtimeServer(realtime=False) as srv, \
            rtedge.connect(url=srv.url, max_audio_queue_ms=200, ping_interval=0) as client:
        agent = VoiceAgent(client, ScriptedMic(), NullSink(rate=24000), vad_gate=False, echo_guard="off")
        runner = _agent_thread(agent, max_seconds=30)
        try:
            assert wait_until(lambda: agent.stats.frames_sent >= 5, timeout=10)
            client._sendq.submit(lambda: release.wait(30))  # the sender is stuck from here on
            done = agent.stats.frames_done
            # 60 frames (1.2 s) handled while nothing goes out: the microphone never waited for room
            assert wait_until(lambda: agent.stats.frames_done >= done + 60, timeout=10)
            assert client.stats.audio_dropped >= 1
            assert not release.is_set() and agent.stats.mic_frames - agent.stats.frames_done <= 1
        finally:
            release.set()
        received = len(srv.received)
        assert wait_until(lambda: len(srv.received) > received + 5, timeout=10)  # and the link goes on
        agent.stop()
        runner.join(5)
        assert not runner.is_alive()


@pytest.mark.parametrize("end_turns", [True, False])
def test_manual_turns_are_ended_by_the_local_vad_when_asked(phrase, end_turns):
    """A session without turn detection: with end_turns the agent commits each utterance it sent and asks
    for the answer; without, it leaves that to the application (it commits nothing)."""
    session = rtedge.SessionConfig(turn_detection=None)
    with RealtimeServer(reply_text="Okay.", seed=8) as srv, \
            rtedge.connect(url=srv.url, session=session) as client:
        mic = ScriptedMic()
        agent = VoiceAgent(client, mic, NullSink(rate=24000), end_turns=end_turns)
        runner = _agent_thread(agent, max_seconds=30)
        for _ in range(2):
            mic.speak(np.concatenate([phrase, np.zeros(8000, np.int16)]))
        if end_turns:
            done = srv.wait_for_sent("response.done", nth=2, timeout=15)
            assert done["response"]["status"] == "completed"
        else:
            assert wait_until(lambda: agent.stats.mic_frames > 2 * len(phrase) // 320 + 60, timeout=15)
        agent.stop()
        runner.join(5)
        kinds = [e["type"] for e in srv.received]
    assert kinds.count("input_audio_buffer.commit") == kinds.count("response.create") == (2 if end_turns else 0)
    assert not [e for e in srv.sent if e["type"] == "error"]


def test_a_manual_turn_interrupts_an_answer_still_playing_and_asks_after_the_cut(phrase):
    """end_turns with an answer whose audio all arrived (response done) but still plays: the new turn was
    answered behind it, nothing truncated; now the playing answer is cut at what was heard first."""
    session = rtedge.SessionConfig(turn_detection=None)
    with RealtimeServer(realtime=False, reply_text=LONG_ANSWER, seed=9) as srv, \
            rtedge.connect(url=srv.url, session=session) as client:
        mic = ScriptedMic()
        agent = VoiceAgent(client, mic, NullSink(rate=24000), echo_guard="off", end_turns=True)
        runner = _agent_thread(agent, max_seconds=30)
        client.create_response()
        srv.wait_for_sent("response.done", timeout=10)
        assert wait_until(lambda: agent.playback.stats.played_samples > 12000, timeout=10)
        assert agent.playing() and client.snapshot.response is ResponseState.IDLE
        srv.reply_text = "Okay."
        mic.speak(np.concatenate([phrase, np.zeros(8000, np.int16)]))
        done = srv.wait_for_sent("response.done", nth=2, timeout=15)
        assert done["response"]["status"] == "completed"
        agent.stop()
        runner.join(5)
    kinds = [e["type"] for e in srv.received]
    assert agent.stats.interruptions == 1 and kinds.count("conversation.item.truncate") == 1
    assert kinds.index("conversation.item.truncate") < len(kinds) - 1 - kinds[::-1].index("response.create")
    assert not [e for e in srv.sent if e["type"] == "error"]


def test_a_turn_the_server_does_not_answer_is_not_awaited_forever(phrase):
    """A turn committed while an answer runs, with a server VAD that neither interrupts nor (so) answers
    it: the agent awaited its answer forever, so ``run(until_input_ends=True)`` ran to ``max_seconds``.
    Now the wait ends a grace period after the running answer is done."""
    td = rtedge.ServerVad(interrupt_response=False)
    with RealtimeServer(reply_text="Once upon a time there was a story.", seed=10) as srv, \
            rtedge.connect(url=srv.url, session=rtedge.SessionConfig(turn_detection=td)) as client:
        mic = ScriptedMic()
        agent = VoiceAgent(client, mic, NullSink(rate=24000), barge_in="off", echo_guard="off")
        runner = _agent_thread(agent, max_seconds=40, until_input_ends=True)
        client.create_response()
        srv.wait_for_sent("response.created", timeout=10)
        mic.speak(phrase)
        srv.wait_for_sent("input_audio_buffer.committed", timeout=15)
        assert client.snapshot.response is ResponseState.ACTIVE  # the turn ended while the answer ran
        mic.finished.set()
        runner.join(20)
        ended = not runner.is_alive()
        agent.stop()
        runner.join(5)
    assert ended, "run() still awaited an answer the server never started"
    assert [e["type"] for e in srv.sent].count("response.created") == 1
    assert not [e for e in srv.sent if e["type"] == "error"]


@pytest.mark.parametrize("barge_in", ["server", "local"])
def test_without_turn_detection_the_user_cuts_the_answer_when_speech_starts(phrase, barge_in):
    """No turn detection, so no server speech_started: barge_in="server" (the default) cut a playing answer
    only once the user's turn ended (a second or more after speaking began); it now cuts at the local VAD's
    onset, as "local" does: the truncate goes out before the user's turn is committed."""
    session = rtedge.SessionConfig(turn_detection=None)
    with RealtimeServer(reply_text=LONG_ANSWER, seed=12) as srv, \
            rtedge.connect(url=srv.url, session=session) as client:
        mic = ScriptedMic()
        agent = VoiceAgent(client, mic, NullSink(rate=24000), echo_guard="off", barge_in=barge_in,
                           end_turns=True)
        runner = _agent_thread(agent, max_seconds=30)
        client.create_response()
        assert wait_until(lambda: agent.playback.stats.played_samples > 24000, timeout=10)
        srv.reply_text = "Okay."
        mic.speak(np.concatenate([phrase, np.zeros(8000, np.int16)]))
        srv.wait_for_sent("response.done", nth=2, timeout=15)
        agent.stop()
        runner.join(5)
    kinds = [e["type"] for e in srv.received]
    assert kinds.count("conversation.item.truncate") == 1 and kinds.count("input_audio_buffer.commit") == 1
    assert kinds.index("conversation.item.truncate") < kinds.index("input_audio_buffer.commit")
    assert agent.interruptions[0].source == "local" and agent.stats.interruptions == 1
    assert not [e for e in srv.sent if e["type"] == "error"]
