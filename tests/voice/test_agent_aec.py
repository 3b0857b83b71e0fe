"""VoiceAgent(echo_guard="aec") with a microphone that hears its own loudspeaker through a simulated room.

``rtedge.testing.room_devices.RoomDevices``: one paced thread plays the agent's speaker (pulling 20 ms at
24 kHz; the sound leaves 40 ms later) and feeds its microphone (16 kHz) with that sound through a
synthetic room (optionally a saturating loudspeaker and a drifting playback clock), the user's queued
speech and noise.  The answer of the local server must play through without a single local barge-in,
and the user speaking over it must barge in.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import rtedge
from rtedge.protocol import ResponseState
from rtedge.voice.agent import VoiceAgent
from rtedge.audio import aec as aec_mod
from rtedge.testing import RealtimeServer, room
from rtedge.testing.room_devices import RoomDevices
from rtedge.audio.wavio import read_wav

from ..conftest import wait_until

pytestmark = [pytest.mark.usefixtures("no_thread_leak"),
              pytest.mark.skipif(not aec_mod.available(), reason="rtedge.audio._aec is not built")]

LONG_ANSWER = "Once upon a time there was a very long story that kept going and going. " * 3


def test_aec_plays_the_answer_without_false_barge_in_and_the_user_still_barges_in(speech_dir):
    phrase, _ = read_wav(speech_dir / "stop.wav")
    near = room.to_int16(room.scale_to(phrase, -26.0, active=np.abs(phrase) > 300))
    session = rtedge.SessionConfig(turn_detection=None)
    with RealtimeServer(reply_text=LONG_ANSWER * 3, seed=21) as srv, \
            rtedge.connect(url=srv.url, session=session) as client:
        loop = RoomDevices(rt60_s=0.2, echo_db=-9.1, noise_dbfs=-67.0, seed=9)
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
        assert agent.playing()  # the answer (40-50 s) outlasts both waits: the user speaks over it
        loop.speak(near)
        assert wait_until(lambda: agent.stats.interruptions >= 1, timeout=5)
        got = agent.interruptions[0]
        assert got.source == "local" and got.truncated and got.cancelled
        agent.stop()
        runner.join(5)
    assert agent.aec.stats.realigns == 0


def _barge_ins_at(agent: VoiceAgent, devices: RoomDevices) -> list[int]:
    """The microphone sample count after which each new barge-in was seen (filled on the room's thread)."""
    marks: list[int] = []

    def done(count: int) -> None:
        if agent.stats.interruptions > len(marks):
            marks.append(count)

    devices.on_frame_done = done
    return marks


@pytest.mark.parametrize("drive, ppm", [(0.0, 0.0), (2.0, 50.0)], ids=["linear", "nonlinear+drift"])
def test_double_talk_over_each_answer_barges_in_and_the_echo_alone_never_does(speech_dir, drive, ppm):
    """A handful of trials through the real agent: each answer plays alone for a while (no barge-in may
    come from its echo), then the user talks over it; the barge-in must come, from the local VAD, after
    the user's first sample, and cut the answer (flush + truncate + cancel)."""
    names = ("stop.wav", "turn_on_the_kitchen_lights.wav", "whats_the_weather_tomorrow.wav")
    phrases = [read_wav(speech_dir / n)[0] for n in names]
    phrases = [room.to_int16(room.scale_to(p, -30.0, active=np.abs(p) > 300)) for p in phrases]
    session = rtedge.SessionConfig(turn_detection=None)
    with RealtimeServer(reply_text=LONG_ANSWER, seed=22, keep_audio=False) as srv, \
            rtedge.connect(url=srv.url, session=session) as client:
        devices = RoomDevices(rt60_s=0.25, drive=drive, ppm=ppm, seed=5)
        agent = VoiceAgent(client, devices.mic, devices.speaker, barge_in="local", echo_guard="aec")
        marks = _barge_ins_at(agent, devices)
        runner = threading.Thread(target=agent.run, kwargs={"max_seconds": 120}, name="test-agent-run",
                                  daemon=True)
        runner.start()
        try:
            for trial, (phrase, lead_s) in enumerate(zip(phrases, (4.0, 1.0, 2.5))):
                assert wait_until(lambda: client.snapshot.response is ResponseState.IDLE and not agent.playing(),
                                  timeout=20)
                before = agent.playback.stats.played_samples
                client.create_response()
                # the echo alone (the first answer also lets the filter converge)
                assert wait_until(lambda: agent.playback.stats.played_samples - before > lead_s * 24000,
                                  timeout=30)
                assert agent.stats.interruptions == trial, "the answer's own echo barged in"
                assert agent.aec is not None and wait_until(lambda: agent.aec.converged, timeout=20)
                assert agent.stats.interruptions == trial
                start = devices.speak(phrase) + int(np.nonzero(np.abs(phrase) > 1000)[0][0])
                assert wait_until(lambda: agent.stats.interruptions == trial + 1, timeout=10), f"trial {trial}"
                assert wait_until(lambda: len(marks) == trial + 1, timeout=5)
                assert marks[trial] > start, "barged in before the user spoke"
                got = agent.interruptions[-1]
                assert got.source == "local" and got.truncated and got.cancelled
                assert wait_until(lambda: not devices.near_pending(), timeout=10)
        finally:
            agent.stop()
            runner.join(5)
    assert not runner.is_alive()
    assert agent.stats.interruptions == len(phrases)
