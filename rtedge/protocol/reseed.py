"""What a fresh server session needs to continue a conversation, and when a session must be replaced.

After a reconnect, a proactive rollover, or any new session that should pick
up where the old one stopped, the new server session knows nothing.
:func:`history_items` turns the conversation items the old session reported
into items a client may create: user and assistant messages as text (audio
cannot be re-sent, so their transcripts stand in: the assistant's audio
transcript, the user's input transcription when the session has one), function calls and their
outputs as they were.  Items with nothing to say (audio without a
transcript) are skipped.

The token budget (:func:`seed_plan`)
------------------------------------
A conversation that ran for hours does not fit into a new session, and
re-seeding everything re-bills it on every turn.  :func:`seed_plan` keeps the
newest part verbatim and compresses the rest, by this rule:

1. Items are grouped into *units*: a ``function_call`` and its
   ``function_call_output`` (same ``call_id``) are one unit and are kept or
   dropped together (an output without its call is refused by the server);
   every other item is a unit of its own.
2. Cost is estimated, not tokenized: ``ceil(characters / 4) + 4`` tokens per
   item (English averages about four characters per token in OpenAI's and
   Qwen's tokenizers; the 4 covers the item's framing).
3. Walking from the newest unit backwards, units are kept verbatim while
   their total stays within ``max_tokens - summary_tokens`` and at most
   ``max_verbatim_items`` items.  The first unit that does not fit ends the
   verbatim part (nothing older is kept verbatim, so the kept part is always
   a contiguous tail).  When even the newest message alone does not fit, its
   text is clipped to fit, keeping its end (the newest words).
4. Older units become one ``system`` message, *"Summary of the earlier
   conversation"*, one line per item (``user: ...``, ``assistant: ...``,
   ``tool NAME(...) -> ...``), each line clipped to ``summary_line_chars``.
   Lines are dropped oldest first until the summary fits ``summary_tokens``.
   ``summary_tokens=0`` drops every older item instead.

Nothing is silent: the plan counts the items kept verbatim, summarized and
dropped, for the caller's event and log line.

Session limits
--------------
:func:`session_deadline` gives the wall-clock time a session ends: the
``expires_at`` the server stated in ``session.created`` (GA OpenAI, Azure)
when present, else the start time plus the dialect's limit
(:attr:`~rtedge.protocol.dialects.base.Dialect.session_limit_s`) or the
caller's override.  :class:`RolloverTiming` says, from the session's age and
whether the conversation is quiet, whether to replace it now.

Owns: what a new session is seeded with, and when a session must be replaced.  Must not: read a clock (times
are passed in).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from ..errors import ConfigError
from . import items as mk
from ._state import SessionState


def replay_item(item: Mapping[str, Any], state: SessionState | None = None) -> dict[str, Any] | None:
    """The creatable form of one reported item, or None when it cannot or need not be replayed."""
    kind = item.get("type")
    if kind == "message":
        text = mk.item_text(item)
        if not text and state is not None and isinstance(item.get("id"), str):
            out = state.output_items.get(item["id"])
            text = "".join(out.text.values()).strip() if out is not None else ""
            text = text or state.input_transcripts.get(item["id"], "").strip()
        role = item.get("role")
        if not text or role not in ("user", "assistant", "system"):
            return None
        return {"user": mk.user_text, "assistant": mk.assistant_text, "system": mk.system_text}[role](text)
    if kind == "function_call":
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            return None
        arguments = item.get("arguments")
        if state is not None and call_id in state.function_calls:
            arguments = state.function_calls[call_id].arguments
        return mk.function_call(call_id, name, arguments if isinstance(arguments, str) else "{}")
    if kind == "function_call_output":
        call_id, output = item.get("call_id"), item.get("output")
        if isinstance(call_id, str) and isinstance(output, str):
            return mk.function_call_output(call_id, output)
    return None


def history_items(state: SessionState, complete_only: bool = False) -> list[dict[str, Any]]:
    """The conversation so far, oldest first, as items to create in a new session
    (``complete_only``: without items the server is still generating, ``status: "in_progress"``)."""
    out = []
    for item in state.items.values():
        if complete_only and item.get("status") == "in_progress":
            continue
        replay = replay_item(item, state)
        if replay is not None:
            out.append(replay)
    return out


#: how many of a session's newest items may still expect their input transcript (an older user audio
#: item without one is taken never to get it, and is skipped like any audio without a transcript)
TRANSCRIPT_WINDOW = 4


def transcribes(session: Mapping[str, Any]) -> bool:
    """The session (canonical shape) transcribes user audio (``input_audio_transcription`` on)."""
    audio = session.get("audio")
    if isinstance(audio, dict) and isinstance(audio.get("input"), dict):
        return bool(audio["input"].get("transcription"))
    return bool(session.get("input_audio_transcription"))


def unsettled(state: SessionState) -> list[str]:
    """Ids of items whose replay is not final yet, oldest first: being generated
    (``status: "in_progress"``) or, when the session transcribes input, user audio among the newest
    :data:`TRANSCRIPT_WINDOW` items whose transcript has not arrived (completed or failed)."""
    out = []
    newest = list(state.items)[-TRANSCRIPT_WINDOW:] if transcribes(state.session) else []
    for key, item in state.items.items():
        if item.get("status") == "in_progress":
            out.append(key)
        elif key in newest and item.get("role") == "user" and key not in state.input_transcripts \
                and replay_item(item, state) is None \
                and any(part.get("type") == "input_audio" for part in item.get("content") or ()
                        if isinstance(part, dict)):
            out.append(key)
    return out


# ---------------------------------------------------------------------------------------------- budget

#: characters per token assumed by the estimate (see the module docstring)
CHARS_PER_TOKEN = 4
#: tokens added per item for its framing
ITEM_OVERHEAD_TOKENS = 4
SUMMARY_TITLE = "Summary of the earlier conversation (oldest first; the latest turns follow verbatim):"


@attrs.frozen(kw_only=True)
class SeedBudget:
    """How much conversation a new session is given (see the module docstring for the rule).

    Attributes:
        max_tokens: estimated tokens of everything seeded (verbatim items plus the summary).
        summary_tokens: the part of ``max_tokens`` reserved for the summary of older items;
            0 drops older items instead of summarizing them.
        max_verbatim_items: at most this many items are seeded verbatim.
        summary_line_chars: each summarized item is clipped to this many characters.
    """

    max_tokens: int = 4000
    summary_tokens: int = 800
    max_verbatim_items: int = 40
    summary_line_chars: int = 160

    def __attrs_post_init__(self) -> None:
        for name in ("max_tokens", "summary_tokens", "max_verbatim_items", "summary_line_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"SeedBudget.{name} must be an int >= 0, got {value!r}")
        if self.summary_tokens > self.max_tokens:
            raise ConfigError("SeedBudget.summary_tokens cannot exceed max_tokens")
        if self.summary_line_chars < 16:
            raise ConfigError("SeedBudget.summary_line_chars must be at least 16")


@attrs.frozen(kw_only=True)
class SeedPlan:
    """The items to create in a new session, oldest first, and what became of the rest.

    Attributes:
        items: the summary message (when there is one) followed by the verbatim tail.
        verbatim: history items seeded as they were (a clipped newest message counts here).
        summarized: older items represented by a line of the summary.
        dropped: items neither seeded nor summarized (over the budget).
        tokens: the estimated tokens of ``items``.
    """

    items: tuple[dict[str, Any], ...] = ()
    verbatim: int = 0
    summarized: int = 0
    dropped: int = 0
    tokens: int = 0


def estimate_tokens(item: Mapping[str, Any]) -> int:
    """The estimated token cost of one creatable item: its text (message text, call name and
    arguments, call output) at :data:`CHARS_PER_TOKEN`, plus :data:`ITEM_OVERHEAD_TOKENS`."""
    return math.ceil(len(_item_chars(item)) / CHARS_PER_TOKEN) + ITEM_OVERHEAD_TOKENS


def _item_chars(item: Mapping[str, Any]) -> str:
    kind = item.get("type")
    if kind == "message":
        return mk.item_text(item)
    if kind == "function_call":
        return f"{item.get('name', '')}{item.get('arguments', '')}"
    if kind == "function_call_output":
        return str(item.get("output", ""))
    return ""


def _units(history: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Items grouped so that a function call and its output stay together (oldest first)."""
    units: list[list[dict[str, Any]]] = []
    open_calls: dict[str, list[dict[str, Any]]] = {}
    for item in history:
        call_id = item.get("call_id")
        if item.get("type") == "function_call_output" and isinstance(call_id, str) and call_id in open_calls:
            open_calls.pop(call_id).append(item)
            continue
        unit = [item]
        units.append(unit)
        if item.get("type") == "function_call" and isinstance(call_id, str):
            open_calls[call_id] = unit
    return units


def _clip_tail(item: dict[str, Any], tokens: int) -> dict[str, Any] | None:
    """A message clipped to ``tokens`` keeping its end, or None when nothing would remain."""
    if item.get("type") != "message":
        return None
    room = (tokens - ITEM_OVERHEAD_TOKENS) * CHARS_PER_TOKEN - 1
    text = mk.item_text(item)
    if room < 8 or not text:
        return None
    clipped = "…" + text[-room:].lstrip()
    role = item.get("role")
    return {"user": mk.user_text, "assistant": mk.assistant_text}.get(str(role), mk.system_text)(clipped)


def _clip(text: str, chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: max(1, chars - 1)].rstrip() + "…"


def _summary_line(unit: list[dict[str, Any]], chars: int) -> str:
    """One line for a unit; a call and its output share the line's length equally."""
    share = (chars - len(unit) + 1) // len(unit)
    parts = []
    for item in unit:
        kind = item.get("type")
        if kind == "message":
            parts.append(_clip(f"{item.get('role')}: {mk.item_text(item)}", share))
        elif kind == "function_call":
            name = f"tool {item.get('name')}("
            parts.append(name + _clip(str(item.get("arguments", "")), max(1, share - len(name) - 1)) + ")")
        else:
            parts.append(_clip(f"-> {item.get('output', '')}", share))
    return _clip(" ".join(parts), chars)


def seed_plan(history: Sequence[dict[str, Any]], budget: SeedBudget | None = None) -> SeedPlan:
    """Apply the budget rule (module docstring) to creatable ``history`` items (oldest first)."""
    budget = budget or SeedBudget()
    units = _units(history)
    verbatim_room = budget.max_tokens - budget.summary_tokens
    kept: list[list[dict[str, Any]]] = []
    used = count = 0
    for unit in reversed(units):
        cost = sum(estimate_tokens(i) for i in unit)
        if used + cost <= verbatim_room and count + len(unit) <= budget.max_verbatim_items:
            kept.append(unit)
            used, count = used + cost, count + len(unit)
            continue
        if not kept and len(unit) == 1 and budget.max_verbatim_items:  # the newest message is too long
            short = _clip_tail(unit[0], verbatim_room)
            if short is not None:
                kept.append([short])
                used, count = estimate_tokens(short), 1
        break
    older = units[: len(units) - len(kept)]
    kept.reverse()
    verbatim_items = [item for unit in kept for item in unit]
    summary, summarized = _summary(older, budget)
    items = ([summary] if summary is not None else []) + verbatim_items
    total = sum(len(u) for u in units)
    summarized_items = sum(len(u) for u in older[len(older) - summarized:]) if summarized else 0
    return SeedPlan(items=tuple(items), verbatim=len(verbatim_items), summarized=summarized_items,
                    dropped=total - len(verbatim_items) - summarized_items,
                    tokens=sum(estimate_tokens(i) for i in items))


def _summary(older: list[list[dict[str, Any]]], budget: SeedBudget) -> tuple[dict[str, Any] | None, int]:
    """The summary message of the newest older units that fit, and how many units it covers."""
    if not older or budget.summary_tokens <= 0:
        return None, 0
    lines: list[str] = []
    size = len(SUMMARY_TITLE)
    limit = (budget.summary_tokens - ITEM_OVERHEAD_TOKENS) * CHARS_PER_TOKEN
    for unit in reversed(older):  # newest first, so that the oldest lines are the ones dropped
        line = _summary_line(unit, budget.summary_line_chars)
        if size + 1 + len(line) > limit:
            break
        lines.append(line)
        size += 1 + len(line)
    if not lines:
        return None, 0
    lines.reverse()
    return mk.system_text("\n".join([SUMMARY_TITLE, *lines])), len(lines)


# ---------------------------------------------------------------------------------------------- limits

def session_deadline(started_at: float, limit_s: float | None, session: Mapping[str, Any] | None = None
                     ) -> float | None:
    """The wall-clock time (epoch seconds) a session ends, or None when it has no limit.

    Args:
        started_at: when the session was created (epoch seconds, the client's clock).
        limit_s: the session's limit in seconds (the dialect's default or the caller's override);
            None or 0: no limit of our own.
        session: the ``session`` object of ``session.created``; its ``expires_at`` (epoch seconds,
            GA OpenAI and Azure) wins when it is a positive number, and caps ``limit_s``.
    """
    ours = started_at + limit_s if limit_s else None
    expires = session.get("expires_at") if session is not None else None
    if isinstance(expires, int | float) and not isinstance(expires, bool) and expires > 0:
        return float(expires) if ours is None else min(float(expires), ours)
    return ours


Decision = Literal["wait", "at_quiet", "now"]


@attrs.frozen(kw_only=True)
class RolloverTiming:
    """When to replace a session that has a deadline.

    From ``deadline - margin_s`` on, the session is replaced at the first quiet moment (no response
    active, no user speech); from ``deadline - force_s`` on, at once, quiet or not (a response
    still streaming then finishes on the old session, which keeps serving until it is done; a user
    turn committed there and not answered yet is answered there too).  Only user speech still in
    progress delays a forced switch, until ``deadline - force_s / 2`` at the latest: switching then
    would split the utterance between the sessions (its start in the old one, which never hears it
    end); once it ends, the old session answers it.

    Attributes:
        margin_s: how long before the deadline to start looking for a quiet moment.
        force_s: how long before the deadline to replace it regardless (< ``margin_s``).
    """

    margin_s: float = 120.0
    force_s: float = 20.0

    def __attrs_post_init__(self) -> None:
        if not 0 < self.force_s < self.margin_s:
            raise ConfigError(f"RolloverTiming needs 0 < force_s < margin_s, got {self.force_s}, {self.margin_s}")

    def scaled(self, limit_s: float) -> RolloverTiming:
        """These margins, shrunk for a short session (a test's 20 s lifetime): the margin is at most
        a quarter of the limit and the forced point at most a tenth."""
        margin = min(self.margin_s, limit_s / 4)
        return RolloverTiming(margin_s=margin, force_s=min(self.force_s, limit_s / 10, margin / 2))

    def decide(self, now: float, deadline: float | None, quiet: bool, speaking: bool = False) -> Decision:
        """``"now"``, ``"at_quiet"`` (now, since it is quiet) or ``"wait"``; ``speaking``: the user
        is speaking (see the class docstring)."""
        if deadline is None or now < deadline - self.margin_s:
            return "wait"
        if now >= deadline - self.force_s:
            return "now" if not speaking or now >= deadline - self.force_s / 2 else "wait"
        return "at_quiet" if quiet else "wait"
