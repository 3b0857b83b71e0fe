"""Event classes are made on first use (start-up cost), and are then the one class for their name."""

from __future__ import annotations

import subprocess
import sys

import attrs

from rtedge.protocol import events as ev


def test_connect_path_imports_make_no_server_event_class() -> None:
    code = ("import rtedge.transport.client, rtedge.protocol.events as ev\n"
            "made = sorted(n for n in ev._LAZY.templates if n in vars(ev) and issubclass(ev._LAZY.templates[n], ev.ServerEvent))\n"
            "print(len(ev._LAZY.templates), made)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert int(out[0]) > 40
    assert out[1].strip() == "[]"


def test_encoding_makes_only_the_client_event_class_it_encodes() -> None:
    code = ("import rtedge.transport.client, rtedge.protocol.client_events as ce\n"
            "from rtedge.protocol import Session\n"
            "before = sorted(n for n in ce._LAZY.templates if n in vars(ce))\n"
            "s = Session('openai')\n"
            "text = s.send(ce.InputAudioBufferAppend(audio=bytes(4)))\n"
            "print(before, sorted(n for n in ce._LAZY.templates if n in vars(ce)), text)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ("[] ['InputAudioBufferAppend'] "
                           '{"type":"input_audio_buffer.append","audio":"AAAAAA=="}')


def test_access_decode_and_import_give_the_same_attrs_class() -> None:
    from rtedge.protocol.events import ResponseOutputAudioTranscriptDone

    event = ev.server_event_from_raw({"type": "response.output_audio_transcript.done", "transcript": "hi",
                                      "item_id": "it", "content_index": 1})
    assert type(event) is ResponseOutputAudioTranscriptDone is ev.ResponseOutputAudioTranscriptDone
    assert event == ResponseOutputAudioTranscriptDone(type=event.type, transcript="hi", item_id="it",
                                                     content_index=1)
    assert attrs.has(ResponseOutputAudioTranscriptDone)
    assert isinstance(event, ev._ContentEvent) and isinstance(event, ev.ServerEvent)
    assert (event.transcript, event.item_id, event.content_index) == ("hi", "it", 1)
    assert ev.server_event_class("response.output_audio_transcript.done") is ResponseOutputAudioTranscriptDone
    assert ev.server_event_class("no.such.type") is None
    assert "ResponseDone" in dir(ev)


def test_inherited_fields_and_members_survive() -> None:
    fields = [f.name for f in attrs.fields(ev.ResponseOutputAudioDelta)]
    assert fields[:3] == ["type", "event_id", "raw"] and "content_index" in fields and "_decoded" in fields
    delta = ev.ResponseOutputAudioDelta(type=ev.ResponseOutputAudioDelta.TYPE, delta="AAAA")
    assert delta.audio == b"\0\0\0" and delta.audio_nbytes == 3
    assert ev.ResponseDone(type="response.done", response={"id": "r"}).response_id == "r"
    try:
        delta.delta = "x"  # type: ignore[misc]
    except attrs.exceptions.FrozenInstanceError:
        pass
    else:
        raise AssertionError("events stay frozen")


def test_threads_racing_for_a_class_get_one() -> None:
    code = ("import threading, rtedge.protocol.events as ev\n"
            "got = []\n"
            "start = threading.Barrier(8)\n"
            "def grab():\n"
            "    start.wait()\n"
            "    got.append(ev.server_event_class('conversation.item.truncated'))\n"
            "    got.append(ev.ConversationItemTruncated)\n"
            "ts = [threading.Thread(target=grab) for _ in range(8)]\n"
            "[t.start() for t in ts]\n"
            "[t.join(30) for t in ts]\n"
            "print(len(got), len({id(c) for c in got}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["16", "1"]


def test_unknown_attribute_still_raises() -> None:
    try:
        ev.NoSuchEvent  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchEvent" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
    assert len(ev.SERVER_EVENT_TYPES) == len(ev.SERVER_EVENT_REGISTRY) > 40
    assert all(attrs.has(c) for c in ev.CLIENT_EVENT_TYPES)
