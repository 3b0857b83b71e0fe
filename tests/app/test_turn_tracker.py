"""The run's turn tracker in a transcription session: a transcript ends its own item's turn, and the turns
waiting for one are bounded."""

from __future__ import annotations

import logging
import types

from rtedge.app.runner import MAX_UNTRANSCRIBED, TurnTracker
from rtedge.protocol import events as ev

COMPLETED = "conversation.item.input_audio_transcription.completed"


class _Client:
    """What a TurnTracker reads of a client: on/off and whether its dialect answers turns."""

    def __init__(self) -> None:
        self.dialect = types.SimpleNamespace(answers=False)
        self.handlers: list[object] = []

    def on(self, name: str, handler: object) -> None:
        self.handlers.append(handler)

    def off(self, name: str, handler: object) -> None:
        self.handlers.remove(handler)


def _tracker() -> tuple[TurnTracker, list[str]]:
    lines: list[str] = []
    return TurnTracker(_Client(), None, lines.append), lines  # type: ignore[arg-type]


def _event(kind: str, **fields: object) -> ev.ServerEvent:
    return ev.server_event_from_raw({"type": kind, **fields})


def _committed(tracker: TurnTracker, item_id: str) -> None:
    tracker._handle(_event("input_audio_buffer.speech_stopped", item_id=item_id))
    tracker._handle(_event("input_audio_buffer.committed", item_id=item_id))


def test_a_transcript_ends_the_turn_of_its_item_not_the_latest():
    tracker, lines = _tracker()
    _committed(tracker, "item_a")
    _committed(tracker, "item_b")
    assert tracker.turns_started == 2  # speech_stopped and committed of one item are one turn
    tracker._handle(_event(COMPLETED, item_id="item_b", transcript="second"))
    first, second = tracker.report.turns
    assert (first.status, second.status) == ("", "completed")
    assert tracker.pending_turn is first
    tracker._handle(_event("conversation.item.input_audio_transcription.failed", item_id="item_a",
                           error={"message": "x"}))
    assert first.status == "failed" and tracker.pending_turn is None
    assert tracker.responses_done == 2 and tracker.turns_failed == 1
    assert [line.split(":")[0] for line in lines if line.startswith("turn")] == ["turn 2", "turn 1"]


def test_a_turn_ended_without_an_item_takes_the_id_of_the_commit_that_follows():
    tracker, _ = _tracker()
    tracker.mark_turn_end()  # a manual run marks its turn before it sends the commit
    tracker._handle(_event("input_audio_buffer.committed", item_id="item_a"))
    assert tracker.turns_started == 1 and list(tracker.untranscribed) == ["item_a"]
    tracker._handle(_event(COMPLETED, item_id="item_a", transcript="hi"))
    assert tracker.report.turns[0].status == "completed" and tracker.pending_turn is None


def test_turns_that_never_get_a_transcript_are_bounded(caplog):
    tracker, _ = _tracker()
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        for i in range(MAX_UNTRANSCRIBED + 6):
            _committed(tracker, f"item_{i}")
    assert len(tracker.untranscribed) == MAX_UNTRANSCRIBED
    assert tracker.turns_failed == 6 and tracker.responses_done == 6
    assert [t.status for t in tracker.report.turns[:7]] == ["failed"] * 6 + [""]
    assert "turn 1: no transcript came" in caplog.text


def test_a_late_transcript_of_a_turn_given_up_on_ends_no_other_turn():
    tracker, _ = _tracker()
    for i in range(MAX_UNTRANSCRIBED + 1):
        _committed(tracker, f"item_{i}")
    assert tracker.report.turns[0].status == "failed" and tracker.responses_done == 1
    tracker._handle(_event(COMPLETED, item_id="item_0", transcript="late"))  # the turn given up on
    assert [t.status for t in tracker.report.turns[:2]] == ["failed", ""]
    assert tracker.responses_done == 1
    tracker._handle(_event(COMPLETED, item_id="item_1", transcript="on time"))
    assert tracker.report.turns[1].status == "completed" and tracker.responses_done == 2


def test_a_provider_whose_transcript_ids_do_not_match_still_ends_its_turns_in_order():
    tracker, _ = _tracker()
    _committed(tracker, "item_a")
    _committed(tracker, "item_b")
    tracker._handle(_event(COMPLETED, item_id="other_1", transcript="first"))
    assert [t.status for t in tracker.report.turns] == ["completed", ""]
