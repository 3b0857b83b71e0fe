"""The seeding budget rule, the session deadline and the rollover timing (protocol/reseed.py)."""

from __future__ import annotations

import pytest

from rtedge.errors import ConfigError
from rtedge.protocol import items as mk
from rtedge.protocol.dialects import get_dialect
from rtedge.protocol.reseed import (SUMMARY_TITLE, RolloverTiming, SeedBudget, estimate_tokens, seed_plan,
                                    session_deadline)


def _turns(n: int, words: int = 5) -> list[dict]:
    out = []
    for i in range(n):
        out.append(mk.user_text(f"question {i} " + "word " * words))
        out.append(mk.assistant_text(f"answer {i} " + "word " * words))
    return out


def test_small_history_is_seeded_verbatim() -> None:
    history = _turns(3)
    plan = seed_plan(history)
    assert list(plan.items) == history
    assert (plan.verbatim, plan.summarized, plan.dropped) == (6, 0, 0)
    assert plan.tokens == sum(estimate_tokens(i) for i in history)


def test_estimate_is_chars_over_four_plus_framing() -> None:
    assert estimate_tokens(mk.user_text("x" * 40)) == 10 + 4
    assert estimate_tokens(mk.function_call("c1", "get_time", "{}")) == 3 + 4   # "get_time{}" = 10 chars
    assert estimate_tokens(mk.function_call_output("c1", "y" * 9)) == 3 + 4


def test_long_history_keeps_the_newest_tail_and_summarizes_the_rest() -> None:
    history = _turns(200, words=20)  # ~30 tokens per item, 400 items
    budget = SeedBudget(max_tokens=1000, summary_tokens=300)
    plan = seed_plan(history, budget)
    summary, *tail = plan.items
    assert summary["role"] == "system" and mk.item_text(summary).startswith(SUMMARY_TITLE)
    assert tail == history[len(history) - len(tail):]  # a contiguous newest tail, unchanged
    assert sum(estimate_tokens(i) for i in tail) <= 700
    assert plan.tokens <= budget.max_tokens
    assert plan.verbatim == len(tail) and plan.verbatim + plan.summarized + plan.dropped == 400
    assert plan.summarized > 0 and plan.dropped > 0
    lines = mk.item_text(summary).split("\n")
    # the summary covers the items right before the tail, in order, oldest dropped first
    first_verbatim = len(history) - len(tail)
    before = history[first_verbatim - 1]
    assert lines[-1].startswith(f"{before['role']}: {mk.item_text(before)[:40]}")
    assert len(lines) - 1 == plan.summarized  # one line per summarized item (no calls here)
    assert all(len(line) <= budget.summary_line_chars for line in lines[1:])


def test_summary_tokens_zero_drops_older_items() -> None:
    history = _turns(50, words=20)
    plan = seed_plan(history, SeedBudget(max_tokens=300, summary_tokens=0))
    assert all(i["role"] != "system" for i in plan.items)
    assert plan.summarized == 0 and plan.dropped == 100 - plan.verbatim > 0


def test_max_verbatim_items_caps_the_tail() -> None:
    plan = seed_plan(_turns(20), SeedBudget(max_verbatim_items=6))
    assert plan.verbatim == 6 and plan.items[-1] == _turns(20)[-1]


def test_a_function_call_and_its_output_stay_together() -> None:
    call = mk.function_call("call_1", "lookup", '{"q": "' + "z" * 200 + '"}')
    output = mk.function_call_output("call_1", "result")
    history = [*_turns(2), call, output, mk.assistant_text("It is done.")]
    # room for the last message and the output, not for the call: the pair must not be split
    room = estimate_tokens(history[-1]) + estimate_tokens(output) + 2
    plan = seed_plan(history, SeedBudget(max_tokens=room + 200, summary_tokens=200))
    tail = [i for i in plan.items if i.get("role") != "system"]
    assert tail == [history[-1]]
    summary = mk.item_text(plan.items[0])
    assert "tool lookup(" in summary and "-> result" in summary  # one line for the pair


def test_a_newest_message_longer_than_the_budget_is_clipped_keeping_its_end() -> None:
    text = "start " + "middle " * 500 + "the very end"
    plan = seed_plan([mk.user_text(text)], SeedBudget(max_tokens=100, summary_tokens=0))
    (item,) = plan.items
    clipped = mk.item_text(item)
    assert clipped.endswith("the very end") and clipped.startswith("…") and "start" not in clipped
    assert estimate_tokens(item) <= 100 and plan.verbatim == 1 and plan.dropped == 0


def test_budget_validation() -> None:
    with pytest.raises(ConfigError):
        SeedBudget(max_tokens=100, summary_tokens=200)
    with pytest.raises(ConfigError):
        SeedBudget(max_tokens=-1)
    with pytest.raises(ConfigError):
        RolloverTiming(margin_s=10, force_s=10)


def test_dialect_limits() -> None:
    limits = {name: get_dialect(name).session_limit_s for name in ("openai", "azure", "xai", "qwen", "vllm")}
    assert limits == {"openai": 3600.0, "azure": 1800.0, "xai": 3600.0, "qwen": 7200.0, "vllm": None}


def test_session_deadline_prefers_expires_at() -> None:
    assert session_deadline(1000.0, 3600.0) == 4600.0
    assert session_deadline(1000.0, None) is None
    assert session_deadline(1000.0, 3600.0, {"expires_at": 2000}) == 2000.0
    assert session_deadline(1000.0, 60.0, {"expires_at": 2000}) == 1060.0  # a shorter override wins
    assert session_deadline(1000.0, None, {"expires_at": 2000}) == 2000.0
    assert session_deadline(1000.0, 30.0, {"expires_at": 0}) == 1030.0  # 0/absent: not stated


def test_rollover_timing() -> None:
    timing = RolloverTiming(margin_s=120, force_s=20)
    deadline = 10_000.0
    assert timing.decide(deadline - 200, deadline, quiet=True) == "wait"
    assert timing.decide(deadline - 100, deadline, quiet=False) == "wait"
    assert timing.decide(deadline - 100, deadline, quiet=True) == "at_quiet"
    assert timing.decide(deadline - 10, deadline, quiet=False) == "now"
    assert timing.decide(deadline, None, quiet=True) == "wait"
    short = timing.scaled(20.0)
    assert short.margin_s == 5.0 and 0 < short.force_s <= 2.0
    assert short.decide(deadline - 4, deadline, quiet=True) == "at_quiet"


def _user_audio(item_id: str) -> dict:
    return {"id": item_id, "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}]}


def test_unsettled_items_are_the_ones_still_generated_or_awaiting_their_transcript() -> None:
    from rtedge.protocol import events as ev
    from rtedge.protocol._state import SessionState
    from rtedge.protocol.reseed import TRANSCRIPT_WINDOW, replay_item, transcribes, unsettled

    state = SessionState(session={"audio": {"input": {"transcription": {"model": "whisper-1"}}}})
    assert transcribes(state.session) and not transcribes({"audio": {"input": {"transcription": None}}})
    state.items["old"] = _user_audio("old")  # never transcribed, and soon out of the window
    for k in range(TRANSCRIPT_WINDOW - 2):
        state.items[f"a{k}"] = {"id": f"a{k}", "type": "message", "role": "assistant", "status": "completed",
                                "content": [{"type": "output_text", "text": "ok"}]}
    state.items["turn"] = _user_audio("turn")
    state.items["answer"] = {"id": "answer", "type": "message", "role": "assistant", "status": "in_progress",
                             "content": []}
    assert unsettled(state) == ["turn", "answer"]  # "old" is past the window: it never gets a transcript
    state.on_event(ev.InputAudioTranscriptionCompleted(
        type="conversation.item.input_audio_transcription.completed", item_id="turn", transcript="lights on"))
    assert unsettled(state) == ["answer"] and replay_item(state.items["turn"], state) == mk.user_text("lights on")
    state.items["next"] = _user_audio("next")
    state.on_event(ev.InputAudioTranscriptionFailed(
        type="conversation.item.input_audio_transcription.failed", item_id="next"))
    assert unsettled(state) == ["answer"] and replay_item(state.items["next"], state) is None
    state.session = {}  # no transcription: audio without a transcript is never awaited
    state.items["answer"]["status"] = "completed"
    state.items["last"] = _user_audio("last")
    assert unsettled(state) == []
