"""No missed events by registration order, and an inbox bounded by bytes that counts only real losses."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

import rtedge
from rtedge.testing import RealtimeServer

from ..conftest import wait_until

README = Path(__file__).resolve().parents[2] / "README.md"
TEXT = rtedge.SessionConfig(output_modalities=("text",), turn_detection=None)


def _readme_snippet() -> str:
    code = re.search(r"## Use it from Python\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None
    return code.group(1)


def test_the_readme_snippet_as_written(capsys):
    """The README's first example, verbatim but for the local server's URL."""
    snippet = _readme_snippet()
    assert 'rtedge.connect("openai", session=session)' in snippet
    with RealtimeServer(realtime=False, reply_text="Hello from the kiosk.") as srv:
        exec(snippet.replace('rtedge.connect("openai", session=session)',  # noqa: S102
                             f'rtedge.connect("openai", url={srv.url!r}, session=session)'), {})
    out = capsys.readouterr().out
    assert "assistant: Hello from the kiosk." in out and "Usage(" in out


def test_a_callback_registered_after_connect_gets_what_it_missed_once():
    """README order (connect, then @client.on): session.updated already came; it is replayed once,
    before any later event of its type, to the first callback of that type only."""
    with RealtimeServer(realtime=False) as srv, rtedge.connect(url=srv.url, session=TEXT) as client:
        got: list[tuple[str, str]] = []
        done = threading.Event()

        @client.on("session.updated")
        def first(event):
            got.append(("first", event.type))

        client.on("session.updated", lambda e: got.append(("second", e.type)))
        client.update_session(instructions="Be terse.", timeout=5)
        client.on("rtedge.test.barrier", lambda e: done.set())
        srv.send_event({"type": "rtedge.test.barrier"})
        assert done.wait(5)
    # one replayed (the connect's), then the update's to both; the second never got the replay
    assert got == [("first", "session.updated"), ("first", "session.updated"), ("second", "session.updated")]


def test_connect_on_sees_everything_from_session_created():
    seen: list[str] = []
    with RealtimeServer(realtime=False) as srv:
        client = rtedge.connect(url=srv.url, session=TEXT, on={"session.created": seen.append,
                                                                "session.updated": [seen.append, seen.append]})
        client.close()
    assert [e.type for e in seen] == ["session.created", "session.updated", "session.updated"]


def _audio_turn(client: rtedge.Client) -> list[rtedge.protocol.events.ServerEvent]:
    """One spoken answer; the inbox's events from the request to response.done."""
    client.send_text("Tell me a story.")
    got = []
    for event in client.events(timeout=30):
        got.append(event)
        if event.type == "response.done":
            return got
    raise AssertionError("no response.done")


LONG = "Once upon a time there was a story that went on and on and on. " * 6


def test_callbacks_consuming_every_event_keep_the_inbox_small_and_nothing_counts_as_dropped():
    with RealtimeServer(realtime=False, reply_text=LONG) as srv:
        deltas: list[object] = []
        client = rtedge.connect(url=srv.url, inbox_bytes=64 * 1024,
                                on={"response.output_audio.delta": deltas.append, "*": lambda e: None})
        for _ in range(3):
            _audio_turn(client)
        assert wait_until(lambda: len(deltas) == sum(1 for e in srv.sent
                                                     if e["type"] == "response.output_audio.delta"))
        audio_bytes = sum(len(e.delta) for e in deltas)
        assert audio_bytes > 4 * 64 * 1024  # far more audio came than the inbox may hold
        assert client._log.nbytes <= 64 * 1024
        assert wait_until(lambda: client.stats.dispatch_busy_since == 0.0)
        assert client.stats.inbox_dropped == 0  # every event reached a callback
        kept = [e.event for e in client._log._log if e.event.type == "response.output_audio.delta"]
        assert kept and all(e.audio_dropped and e.delta == "" for e in kept)  # payloads released
        with pytest.raises(LookupError, match="inbox_audio=True"):
            kept[0].pcm()
        client.close()


def test_a_callback_finds_its_event_already_in_the_inbox():
    """Written guarantee: the receiver stores an event in the inbox before rtedge-dispatch runs a callback
    for it, so a callback (the transcriber's ring) that reads the inbox finds its own event there."""
    seen: list[rtedge.protocol.events.ServerEvent] = []  # drained from the inbox so far, kept alive
    missing: list[str] = []
    calls: list[str] = []

    def on_any(event: rtedge.protocol.events.ServerEvent) -> None:
        seen.extend(client.events(timeout=0))
        calls.append(event.type)
        if not any(e is event for e in reversed(seen)):
            missing.append(event.type)

    with RealtimeServer(realtime=False, reply_text=LONG) as srv:
        client = rtedge.connect(url=srv.url, session=TEXT)
        client.on("*", on_any)
        client.send_text("Tell me a story.")
        assert wait_until(lambda: "response.done" in calls, timeout=30)
        client.close()
    assert len(calls) > 20 and missing == []


def test_inbox_dropped_counts_events_nobody_got():
    with RealtimeServer(realtime=False, reply_text=LONG) as srv:
        client = rtedge.connect(url=srv.url, inbox_bytes=64 * 1024)  # no callbacks
        client.send_text("Tell me a story.")
        # nobody reads until the whole answer has arrived (a reader keeping pace would get every event)
        assert wait_until(lambda: any(e["type"] == "response.done" for e in srv.sent)
                          and client._log.seq >= len(srv.sent), timeout=30)
        assert client._log.nbytes <= 64 * 1024
        # every event is either still in the inbox or counted as dropped, once (the dispatcher reports
        # each one as it gets to it, before or after its eviction)
        assert wait_until(lambda: client.stats.inbox_dropped + len(client._log) == client._log.seq)
        assert client.stats.inbox_dropped > 0
        kept = len(client._log)
        assert sum(1 for _ in client.events(timeout=0.5)) == kept  # what is left is still readable
        client.close()


def test_inbox_audio_keeps_payloads_and_pcm_decodes_once():
    with RealtimeServer(realtime=False, reply_text="Hi there.") as srv:
        arrays: list[object] = []
        client = rtedge.connect(url=srv.url, inbox_audio=True,
                                on={"response.output_audio.delta": [lambda e: arrays.append(e.pcm()),
                                                                    lambda e: arrays.append(e.pcm())]})
        kept = [e for e in _audio_turn(client) if e.type == "response.output_audio.delta"]
        assert kept and not any(e.audio_dropped for e in kept)
        assert wait_until(lambda: len(arrays) == 2 * len(kept))
        assert all(a is b for a, b in zip(arrays[::2], arrays[1::2]))  # decoded once, shared
        assert kept[0].pcm() is arrays[0] and kept[0].pcm().dtype.name == "int16"
        assert kept[0].pcm().tobytes() == kept[0].audio
        client.close()


def test_a_server_cannot_mark_audio_as_dropped():
    from rtedge.protocol import Session

    s = Session("openai")
    event = s.receive_message('{"type":"response.output_audio.delta","delta":"AAAA","audio_dropped":true,'
                              '"_decoded":[1]}')
    assert not event.audio_dropped and event.audio == b"\x00\x00\x00"


def test_events_no_callback_wanted_are_counted_once_and_leave_no_trace():
    """An event the dispatcher reported undelivered, then evicted unread, is one loss, and the log keeps
    nothing about it (a kiosk with no callbacks for most types must not grow per event)."""
    from rtedge.protocol import events as ev
    from rtedge.transport._inbox import EventLog
    from rtedge.transport._workers import TransportStats

    stats = TransportStats()
    log = EventLog(maxlen=10, max_bytes=1 << 30, stats=stats)
    event = ev.server_event_from_raw({"type": "conversation.created", "conversation": {"id": "c"}})
    for i in range(1000):
        seq = log.append(event, 100)
        log.dispatched(seq, delivered=(i % 2 == 0))  # half of them reached a callback
    assert len(log) == 10
    assert stats.inbox_dropped == 495  # the undelivered among the 990 evicted
    assert not log._evicted_undecided


def test_kept_audio_deltas_share_their_recurring_strings_and_keep_everything_but_the_audio():
    import json

    from rtedge.protocol import Session
    from rtedge.transport import _inbox

    s = Session("openai")

    def delta(n: int) -> str:
        return json.dumps({"type": "response.output_audio.delta", "event_id": f"evt_{n}", "response_id": "resp_1",
                           "item_id": "item_1", "output_index": 0, "content_index": 0, "delta": "AAAA",
                           "extra": {"n": n}})

    a, b = (_inbox.strip_audio(s.receive_message(delta(n))) for n in (1, 2))
    assert a.audio_dropped and a.delta == "" and "delta" not in a.raw  # type: ignore[attr-defined]
    assert dict(a.raw) == {"type": "response.output_audio.delta", "event_id": "evt_1", "response_id": "resp_1",
                           "item_id": "item_1", "output_index": 0, "content_index": 0, "extra": {"n": 1}}
    assert a.item_id is b.item_id and a.response_id is b.response_id and a.type is b.type  # type: ignore[attr-defined]
    assert all(ka is kb for ka, kb in zip(a.raw, b.raw) if ka != "extra")  # one copy of each known key
    assert a.raw["item_id"] is a.item_id  # type: ignore[attr-defined]
    assert a.event_id == "evt_1" and b.event_id == "evt_2"
    for n in range(3 * _inbox._SHARED_MAX):  # a server sending ever new ids cannot grow the table
        _inbox.strip_audio(s.receive_message(delta(n).replace("item_1", f"item_{n}")))
    assert len(_inbox._SHARED) <= _inbox._SHARED_MAX


def test_consumed_events_are_kept_only_as_a_short_tail():
    """A reader that consumes every event leaves at most CONSUMED_TAIL behind its cursor, however large
    the inbox's own bounds, and nothing it read counts as dropped."""
    from rtedge.protocol import events as ev
    from rtedge.transport._inbox import CONSUMED_TAIL, EventLog
    from rtedge.transport._workers import TransportStats

    stats = TransportStats()
    log = EventLog(maxlen=100_000, max_bytes=1 << 40, stats=stats)
    event = ev.server_event_from_raw({"type": "conversation.created", "conversation": {"id": "c"}})
    for _ in range(3 * CONSUMED_TAIL):
        log.append(event, 100)
        assert log.consume(lambda e: True, timeout=0) is event
        assert len(log) <= CONSUMED_TAIL
    assert len(log) >= CONSUMED_TAIL - 1  # the tail is kept (rtedge's own waits look back into it)
    assert log.find(0, lambda e: True, timeout=0)[0] == log.seq - len(log) + 1  # the older ones are gone
    assert stats.inbox_dropped == 0
