"""VoiceAgent under a storm: 10 ms microphone frames for ~20 s while the server produces barge-ins and
output-item insertions as fast as it can (thousands).  Every microphone frame must be handled whole (no
device callback error, no frame lost: counters prove it) and reach the server.

The storm is what broke the old thread model: the microphone thread walked the receiver's live
``output_items`` (to know whether an answer was still streaming) while the receiver inserted into it;
"OrderedDict mutated during iteration" was swallowed by the device's error handler and the frame was lost.
"""

from __future__ import annotations

import base64
import threading
import time

import pytest

import rtedge
from rtedge.voice.agent import VoiceAgent
from rtedge.audio.devices import NullSink, NullSource
from rtedge.testing import RealtimeServer

from ..conftest import wait_until

pytestmark = pytest.mark.usefixtures("no_thread_leak")

RATE = 24000
STORM_S = 16.0


def _storm(srv: RealtimeServer, stop: threading.Event, counts: dict[str, int]) -> None:
    """Barge-ins and item insertions, back to back: each round opens a response with an item and a
    little audio, inserts items of other responses after it, then speech starts and the response ends."""
    audio = base64.b64encode(bytes(960)).decode()
    k = 0
    while not stop.is_set():
        rid, item = f"resp_storm{k}", f"item_storm{k}"
        srv.send_event({"type": "response.created", "response": {
            "object": "realtime.response", "id": rid, "status": "in_progress", "output": []}})
        srv.send_event({"type": "response.output_item.added", "response_id": rid, "output_index": 0,
                        "item": {"id": item, "type": "message", "status": "in_progress", "role": "assistant",
                                 "content": []}})
        srv.send_event({"type": "response.output_audio.delta", "response_id": rid, "item_id": item,
                        "output_index": 0, "content_index": 0, "delta": audio})
        for j in range(4):
            srv.send_event({"type": "response.output_item.added", "response_id": f"resp_other{k}_{j}",
                            "output_index": 0, "item": {"id": f"item_other{k}_{j}", "type": "message",
                                                        "status": "completed", "role": "assistant", "content": []}})
        srv.send_event({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": f"in{k}"})
        srv.send_event({"type": "response.done", "response": {
            "object": "realtime.response", "id": rid, "status": "cancelled", "output": [],
            "status_details": {"type": "cancelled", "reason": "turn_detected"}}})
        counts["rounds"] = k = k + 1


def test_voice_agent_survives_a_barge_in_storm_without_losing_a_frame():
    session = rtedge.SessionConfig(output_modalities=("audio",))
    with RealtimeServer(realtime=False, keep_audio=False) as srv, \
            rtedge.connect(url=srv.url, session=session) as client:
        mic, speaker = NullSource(rate=RATE, frame_ms=10), NullSink(rate=RATE, frame_ms=10)
        agent = VoiceAgent(client, mic, speaker, vad_gate=False, echo_guard="off", barge_in="server")
        seen = {"speech_started": 0}

        def hook(event: rtedge.protocol.events.ServerEvent) -> None:
            if event.type == "input_audio_buffer.speech_started":
                seen["speech_started"] += 1
        client._add_event_hook(hook)
        stop, counts = threading.Event(), {"rounds": 0}
        storm = threading.Thread(target=_storm, args=(srv, stop, counts), name="test-storm", daemon=True)
        runner = threading.Thread(target=agent.run, kwargs={"max_seconds": STORM_S + 2}, name="test-agent-run",
                                  daemon=True)
        runner.start()
        assert wait_until(lambda: agent.stats.mic_frames > 10)
        storm.start()
        time.sleep(STORM_S)  # the storm's length (the conditions below are what the test waits on)
        stop.set()
        storm.join(10)
        runner.join(10)
        assert not runner.is_alive()
        assert client.wait_sent(0, timeout=10)
        sent_frames = agent.stats.frames_sent
        assert wait_until(lambda: sum(int(e["audio"].split()[0].lstrip("<")) for e in srv.received
                                      if e["type"] == "input_audio_buffer.append") == sent_frames * 480,
                          timeout=10)
    assert seen["speech_started"] >= 1000, counts  # thousands of barge-ins (as fast as the server goes)
    assert mic.stats.errors == 0 and speaker.stats.errors == 0  # no device callback raised
    assert client.stats.internal_errors == 0  # nor any of the agent's receiver-side hooks
    # every frame the microphone delivered was handled whole, and every one went out (gate off)
    assert agent.stats.mic_frames == mic.stats.frames == agent.stats.frames_done == sent_frames
    assert sent_frames >= (STORM_S * 100) * 0.5  # the microphone ran all along (late on a loaded machine)
    assert client.stats.audio_dropped == 0 and client.stats.audio_dropped_outage_ms == 0
