"""The barge-in policy (rtedge.protocol.interruption): one set of rules, checked without any I/O."""

from __future__ import annotations

import base64

import pytest

from rtedge.protocol import events as ev
from rtedge.protocol.interruption import (
    Cancel,
    Heard,
    Plan,
    Truncate,
    clamp_truncate_ms,
    cut_item,
    decide,
    heard_ms,
    local_onset_interrupts,
    server_cancels_on_speech,
    turn_detection,
)
from rtedge.protocol.session import Session

GA_AUTO = {"audio": {"input": {"turn_detection": {"type": "server_vad"}}}}
GA_NO_INTERRUPT = {"audio": {"input": {"turn_detection": {"type": "server_vad", "interrupt_response": False}}}}
FLAT_AUTO = {"turn_detection": {"type": "server_vad", "threshold": 0.5}}  # Qwen's flat session
MANUAL = {"audio": {"input": {"turn_detection": None}}}


def test_truncate_is_clamped_to_the_audio_received():
    plan = decide(Heard("item_1", 1, heard_ms=900.0, received_ms=400.0), response_active=False,
                  server_cancels=True, source="server")
    assert plan.truncate == Truncate("item_1", 1, 400)


def test_truncate_is_at_the_heard_ms_in_whole_ms():
    plan = decide(Heard("item_1", 0, heard_ms=250.9, received_ms=1000.0), response_active=False,
                  server_cancels=True, source="server")
    assert plan.truncate == Truncate("item_1", 0, 250) and plan.actions == [Truncate("item_1", 0, 250)]


@pytest.mark.parametrize("heard", [0.0, 0.9, -5.0])
def test_nothing_heard_sends_no_truncate(heard):
    plan = decide(Heard("item_1", 0, heard_ms=heard, received_ms=1000.0), response_active=False,
                  server_cancels=True, source="server")
    assert plan.truncate is None and plan.actions == []


def test_nothing_playing_sends_no_truncate_but_may_cancel():
    assert decide(None, response_active=True, server_cancels=False, source="server") == Plan(None, True)
    assert decide(None, response_active=False, server_cancels=False, source="app") == Plan(None, False)


@pytest.mark.parametrize("source", ["server", "local"])
def test_no_cancel_on_speech_when_the_server_cancels_by_itself(source):
    plan = decide(Heard("i", 0, 100.0, 200.0), response_active=True, server_cancels=True, source=source)
    assert plan.cancel is False and plan.actions == [Truncate("i", 0, 100)]


@pytest.mark.parametrize("source", ["server", "local", "app"])
def test_cancel_when_the_server_does_not_cancel_by_itself(source):
    plan = decide(Heard("i", 0, 100.0, 200.0), response_active=True, server_cancels=False, source=source)
    assert plan.actions == [Truncate("i", 0, 100), Cancel()]  # truncate first: it names the cut audio


def test_the_application_s_own_interrupt_always_cancels_an_active_response():
    assert decide(None, response_active=True, server_cancels=True, source="app").cancel is True


@pytest.mark.parametrize("server_cancels", [True, False])
@pytest.mark.parametrize("source", ["server", "local", "app"])
def test_no_cancel_when_no_response_is_active(server_cancels, source):
    assert decide(None, response_active=False, server_cancels=server_cancels, source=source).cancel is False


@pytest.mark.parametrize(("session", "expected"), [
    (GA_AUTO, True),  # interrupt_response defaults to true on the server
    (GA_NO_INTERRUPT, False),
    (FLAT_AUTO, True),  # flat dialects (Qwen) count too
    ({"turn_detection": {"type": "server_vad", "interrupt_response": False}}, False),
    (MANUAL, False),  # manual turns: no VAD, the client must cancel
    ({}, False),  # nothing known yet: cancel ourselves (a redundant cancel costs one error event)
    ({"audio": "garbage", "turn_detection": ["not", "a", "dict"]}, False),
])
def test_does_the_server_cancel_by_itself(session, expected):
    assert server_cancels_on_speech(session) is expected


@pytest.mark.parametrize(("mode", "session", "client_ends_turns", "expected"), [
    ("local", GA_AUTO, False, True),
    ("local", MANUAL, False, True),
    ("server", GA_AUTO, True, False),  # the server's speech_started comes
    ("server", FLAT_AUTO, True, False),
    ("server", MANUAL, True, True),  # none comes: the onset stands in for it
    ("server", MANUAL, False, False),  # the application ends turns: it decides when to cut
    ("off", MANUAL, True, False),
    ("off", GA_AUTO, False, False),
])
def test_which_local_onsets_interrupt(mode, session, client_ends_turns, expected):
    assert local_onset_interrupts(mode, session, client_ends_turns=client_ends_turns) is expected


def test_turn_detection_prefers_the_ga_shape_and_returns_a_copy():
    session = {"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}},
               "turn_detection": {"type": "server_vad"}}
    td = turn_detection(session)
    assert td == {"type": "semantic_vad"}
    assert td is not None
    td["type"] = "changed"
    assert session["audio"]["input"]["turn_detection"] == {"type": "semantic_vad"}


@pytest.mark.parametrize(("current", "head", "sounding", "expected"), [
    ("a", "a", False, "a"),  # the head is what was playing
    ("a", "b", True, "a"),  # a still sounds in the device: it is the one heard
    ("a", "b", False, "b"),  # a finished sounding, b is about to play
    (None, "b", False, "b"),  # nothing played yet: the queued item is cut before it starts
    ("a", None, True, "a"),  # queue dry between deltas while a streams in
    ("a", None, False, None),  # a played out, nothing queued: nothing is interrupted
    (None, None, True, None),
])
def test_which_item_a_barge_in_cuts(current, head, sounding, expected):
    assert cut_item(current, head, sounding=sounding) == expected


def test_heard_is_everything_handed_to_the_output():
    assert heard_ms(24000, 24000) == 1000.0 and heard_ms(120, 8000) == 15.0 and heard_ms(0, 16000) == 0.0


@pytest.mark.parametrize(("end", "received", "expected"), [(50.0, 40.0, 40), (-3.0, 40.0, 0), (12.7, 40.0, 12)])
def test_clamp(end, received, expected):
    assert clamp_truncate_ms(end, received) == expected


def _session_with_audio(ms: int) -> Session:
    s = Session("openai")
    s.receive_message('{"type": "session.created", "session": {"id": "s1"}}')
    s.receive_message('{"type": "response.created", "response": {"id": "r1"}}')
    pcm = b"\x00\x00" * (24 * ms)  # 24 kHz pcm16: 24 samples per ms
    s.receive_message('{"type": "response.output_audio.delta", "response_id": "r1", "item_id": "i1", '
                      f'"output_index": 0, "content_index": 0, "delta": "{base64.b64encode(pcm).decode()}"}}')
    return s


def test_the_session_clamps_with_the_same_rule():
    s = _session_with_audio(300)
    event = s.truncate_event("i1", 900.0)
    assert isinstance(event, ev.ConversationItemTruncate) and event.audio_end_ms == 300
    assert s.truncate_event("i1", 0.5) is None
    assert s.interrupt_response_on_speech() is server_cancels_on_speech(s.state.session)
