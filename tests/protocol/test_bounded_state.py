"""Per-turn state is bounded: a session of thousands of turns keeps a window of items, output items,
function calls and usage records; totals are running sums; re-seeding replays the window."""

from __future__ import annotations

import base64
import json
import tracemalloc
from typing import Any

import numpy as np

from rtedge.audio import playback as pb
from rtedge.protocol import Session, Usage, _state
from rtedge.protocol.reseed import history_items

USAGE = {"total_tokens": 10, "input_tokens": 6, "output_tokens": 4}


def feed(session: Session, /, **payload: Any) -> None:
    session.receive_message(json.dumps(payload))
    list(session.events())


def turn(session: Session, k: int) -> None:
    rid, out, user, call = f"resp_{k}", f"item_out{k}", f"item_user{k}", f"call_{k}"
    feed(session, type="conversation.item.added", event_id="e", item={
        "id": user, "type": "message", "role": "user", "content": [{"type": "input_text", "text": f"hi {k}"}]})
    feed(session, type="response.created", event_id="e", response={"id": rid, "status": "in_progress"})
    feed(session, type="response.output_item.added", event_id="e", response_id=rid, output_index=0,
         item={"id": out, "type": "message", "role": "assistant", "status": "in_progress", "content": []})
    feed(session, type="response.output_audio.delta", event_id="e", response_id=rid, item_id=out,
         output_index=0, content_index=0, delta=base64.b64encode(bytes(480)).decode())
    feed(session, type="response.output_item.added", event_id="e", response_id=rid, output_index=1,
         item={"id": f"fc{k}", "type": "function_call", "call_id": call, "name": "f", "arguments": ""})
    feed(session, type="conversation.item.added", event_id="e", item={
        "id": out, "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": f"ok {k}"}]})
    feed(session, type="response.done", event_id="e",
         response={"id": rid, "status": "completed", "output": [], "usage": USAGE})


def _opened() -> Session:
    s = Session("openai")
    feed(s, type="session.created", event_id="e", session={"id": "sess_1", "type": "realtime"})
    return s


def test_thousands_of_turns_keep_windows_and_running_totals():
    s = _opened()
    for k in range(2000):
        turn(s, k)
    st = s.state
    assert len(st.items) == _state.ITEM_WINDOW
    assert len(st.output_items) == _state.OUTPUT_ITEM_WINDOW
    assert len(st.function_calls) == _state.CALL_WINDOW
    assert len(st.usage_by_response) == _state.USAGE_WINDOW
    assert st.usage.total_tokens == 2000 * 10 and st.usage.responses == 2000  # the sum never forgets
    assert list(st.usage_by_response)[-1] == "resp_1999" and "resp_0" not in st.usage_by_response
    assert st.audio_received_ms("item_out1999") == 10.0  # the current item is in the window
    # re-seeding replays the window: the newest items, in order
    history = history_items(st)
    assert history[-1]["content"][0]["text"] == "ok 1999" and len(history) <= _state.ITEM_WINDOW
    snap = st.snapshot()
    assert snap.usage == st.usage and snap.last_response_usage == ("resp_1999", Usage.from_raw(USAGE))


def test_memory_is_flat_per_turn():
    """Allocations that survive a turn stop growing once the windows are full."""
    s = _opened()
    for k in range(300):
        turn(s, k)
    tracemalloc.start()
    try:
        for k in range(300, 600):
            turn(s, k)
        first, _ = tracemalloc.get_traced_memory()
        for k in range(600, 1200):
            turn(s, k)
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert second - first < 64 * 1024, (first, second)  # 600 more turns: no per-turn growth


def test_playback_forgets_old_items():
    buf = pb.PlaybackBuffer(24000)
    for k in range(1000):
        buf.push(f"item{k}", 0, np.ones(240, np.int16))
        buf.pull(240)
    assert len(buf._received) <= pb.ITEM_WINDOW and len(buf._handed) <= pb.ITEM_WINDOW
    assert buf.received_ms("item999") == 10.0
