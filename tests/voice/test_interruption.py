"""VoiceAgent and the tick engine follow the one barge-in policy (rtedge.protocol.interruption), no copy of it."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from rtedge.protocol import events as ev
from rtedge.protocol._state import ResponseState, SessionSnapshot
from rtedge.protocol.config import AudioFormat
from rtedge.protocol.interruption import Cancel, Truncate
from rtedge.transport._lifecycle import LinkState
from rtedge.voice._tick_engine import TickEngine
from rtedge.voice.agent import VoiceAgent
from rtedge.voice.tick import tick_format

REPO = Path(__file__).resolve().parents[2]
FLAT_AUTO = {"turn_detection": {"type": "server_vad", "prefix_padding_ms": 0}}  # a flat dialect (Qwen)
GA_MANUAL_CANCEL = {"audio": {"input": {"turn_detection": {"type": "server_vad", "prefix_padding_ms": 0,
                                                            "interrupt_response": False}}}}


@attrs.define
class FakeClient:
    """Records what the agent sends; its snapshot is whatever the test sets."""

    snapshot: SessionSnapshot
    link_state: LinkState = LinkState.OPEN
    sent: list[tuple[Any, ...]] = attrs.field(factory=list)

    def _add_audio_hook(self, hook: Callable[[ev.ResponseOutputAudioDelta], None]) -> None: ...
    def _add_event_hook(self, hook: Callable[[ev.ServerEvent], None]) -> None: ...

    def append_audio(self, pcm: Any, rate: int | None = None, **kwargs: Any) -> int:
        return 0

    def truncate(self, item_id: str, audio_end_ms: float, content_index: int = 0) -> bool:
        self.sent.append(("truncate", item_id, audio_end_ms, content_index))
        return True

    def cancel_response(self) -> bool:
        self.sent.append(("cancel",))
        return True


class Device:
    rate = 16000

    def start(self, callback: Any) -> None: ...
    def stop(self) -> None: ...


def _agent_playing(session: dict[str, Any], played_ms: int = 300, queued_ms: int = 200) -> tuple[VoiceAgent, FakeClient]:
    snap = SessionSnapshot(response=ResponseState.ACTIVE, response_id="r1", session=session,
                           streaming_item_id="i1")
    client = FakeClient(snap)
    agent = VoiceAgent(client, Device(), Device())  # type: ignore[arg-type]
    rate = agent.playback.rate
    agent.playback.push("i1", 2, np.ones(rate * (played_ms + queued_ms) // 1000, np.int16))
    agent.playback.pull(rate * played_ms // 1000)
    return agent, client


def test_agent_does_not_cancel_when_a_flat_dialect_s_server_cancels_by_itself():
    agent, client = _agent_playing(FLAT_AUTO)
    result = agent.interrupt("server")
    assert client.sent == [("truncate", "i1", 300, 2)]
    assert result.truncated and not result.cancelled


def test_agent_cancels_when_the_server_will_not_and_on_the_application_s_interrupt():
    agent, client = _agent_playing(GA_MANUAL_CANCEL)
    agent.interrupt("local")
    assert client.sent == [("truncate", "i1", 300, 2), ("cancel",)]
    agent2, client2 = _agent_playing(FLAT_AUTO)
    agent2.interrupt("app")
    assert client2.sent[-1] == ("cancel",)


def test_agent_sends_nothing_when_nothing_played_and_no_response_is_active():
    client = FakeClient(SessionSnapshot(session=GA_MANUAL_CANCEL))
    agent = VoiceAgent(client, Device(), Device())  # type: ignore[arg-type]
    result = agent.interrupt("server")
    assert client.sent == [] and result.position is None and agent.stats.interruptions == 0


def make(cls: type[ev.ServerEvent], **fields: object) -> ev.ServerEvent:
    return cls(type=cls.TYPE, raw={"type": cls.TYPE, **fields}, **fields)


def _engine_barge_in(session: dict[str, Any]) -> tuple[list[Truncate | Cancel], TickEngine]:
    engine = TickEngine(tick_format("ulaw8k"), 200, AudioFormat.pcmu(), session=session)
    engine.begin(0)
    engine.feed(make(ev.ResponseCreated, response={"id": "r1"}))
    engine.feed(make(ev.ResponseOutputAudioDelta, response_id="r1", item_id="i1", content_index=0,
                     delta=base64.b64encode(b"\x7f" * 1600).decode()))  # 200 ms of mu-law at 8 kHz
    return engine.feed(make(ev.InputAudioBufferSpeechStarted, audio_start_ms=120, item_id="u1")), engine


@pytest.mark.parametrize(("session", "at_ms", "cancels"), [
    (FLAT_AUTO, 120, False), (GA_MANUAL_CANCEL, 120, True),
    # turn detection not known: the client cancels (before, the engine assumed the server would); the onset
    # is taken with the default 300 ms prefix padding, clamped to the tick's end
    ({}, 200, True),
])
def test_engine_truncates_at_the_speech_onset_and_cancels_by_the_same_rule(session, at_ms, cancels):
    actions, engine = _engine_barge_in(session)
    assert actions[0] == Truncate("i1", 0, at_ms)
    assert (Cancel() in actions) is cancels and engine.stats.cancels == int(cancels)


def test_neither_driver_keeps_a_copy_of_the_policy():
    """The decision's own words appear only in the policy module."""
    for rel in ("rtedge/voice/agent.py", "rtedge/voice/_tick_engine.py", "rtedge/voice/tick.py",
                "rtedge/audio/playback.py", "rtedge/protocol/session.py", "rtedge/transport/client.py"):
        text = (REPO / rel).read_text()
        assert "interrupt_response\"" not in text and "\"interrupt_response" not in text, rel
        assert "turn_detection\")" not in text, rel  # reading the turn detection is the policy's too
