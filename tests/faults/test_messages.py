"""Hostile and odd messages from the server: malformed JSON, unknown types, a 16 MiB frame, and an
``error`` event for every code the protocol notes list."""

from __future__ import annotations

import time

import pytest

from rtedge.errors import DeadlineExceeded, ServerError
from rtedge.protocol import events as ev

from .conftest import close_bounded, open_client, record, text_turn


def test_malformed_messages_are_counted_and_skipped(server, caplog):
    client, timeline = open_client(server.url)
    deep = '{"type":"x","a":' + "[" * 100_000 + "]" * 100_000 + "}"  # json.loads: RecursionError
    bad = ["{not json", "[1, 2, 3]", "null", '"a string"', '{"type": 5}', '{"no_type": true}', "", "{" * 10_000, deep]
    for text in bad:
        server.send_raw(text)
    server.send_raw(b"\x00\x01binary")  # binary frames are ignored (with a warning), not parsed
    text_turn(client)  # everything after the junk still arrives, in order, and the session works
    assert client.stats.malformed_messages == len(bad)
    assert timeline.of("rtedge.connection_lost") == [] and client.link_state == "open"
    assert sum("malformed message" in r.getMessage() for r in caplog.records) == len(bad)
    close_bounded(client)
    record("malformed JSON (9 kinds, one nested 100,000 deep) and a binary frame",
           f"skipped, counted (stats.malformed_messages = {len(bad)}), logged; session stays up")


def test_unknown_event_types_pass_through(server):
    client, timeline = open_client(server.url)
    server.send_event({"type": "response.hologram.delta", "delta": "?", "nested": {"a": [1, 2]}})
    server.send_event({"type": "rtedge.gave_up", "cause": "spoofed by the server"})  # not ours
    server.send_event({"type": "", "x": 1})
    unknown = client.wait_for("response.hologram.delta", timeout=5)
    assert isinstance(unknown, ev.UnknownServerEvent) and unknown.raw["nested"] == {"a": [1, 2]}
    _, spoof = timeline.wait("wire:rtedge.gave_up")  # renamed: on("rtedge.gave_up") cannot be spoofed
    assert isinstance(spoof, ev.UnknownServerEvent) and spoof.raw["type"] == "rtedge.gave_up"
    with pytest.raises(DeadlineExceeded):
        client.wait_for("rtedge.gave_up", timeout=0.2)
    text_turn(client)
    assert client.link_state == "open" and client.fatal_error is None and client.stats.malformed_messages == 0
    close_bounded(client)
    record("unknown event types (incl. a spoofed rtedge.* type)",
           "passed through as UnknownServerEvent; session and link state unaffected")


def test_16_mib_text_frame(server):
    client, timeline = open_client(server.url, connect_timeout=10.0)
    size = 16 * 1024 * 1024
    t0 = time.monotonic()
    server.send_event({"type": "response.hologram.delta", "delta": "x" * size})
    big = client.wait_for("response.hologram.delta", timeout=30)
    elapsed = time.monotonic() - t0
    assert len(big.raw["delta"]) == size
    del big
    text_turn(client)
    assert client.stats.bytes_received > size and timeline.of("rtedge.connection_lost") == []
    close_bounded(client)
    record("16 MiB text frame", f"received and parsed in {elapsed:.2f} s; session stays up")


#: every error code in the protocol notes (section 1.8), plus the other codes rtedge treats as fatal
ERROR_CODES = ["session_expired", "beta_api_shape_disabled", "input_audio_buffer_commit_empty",
               "response_cancel_not_active", "conversation_already_has_active_response", "cannot_update_voice",
               "unknown_parameter", "invalid_value", "invalid_type", "integer_below_min_value",
               "invalid_api_key", "insufficient_quota", "model_not_found"]
#: codes after which the server ends the session and a new one cannot help, with the close that
#: follows (4000 and 3000 as the live API and the local server do; 1011 and 1001 are recoverable codes
#: on their own, so these two show that the error, not the close code, decides)
GIVE_UP = {"beta_api_shape_disabled": 4000, "invalid_api_key": 3000, "insufficient_quota": 1011,
           "model_not_found": 1001}


def _error(code: str) -> dict:
    kind = "server_error" if code == "server_error" else "invalid_request_error"
    return {"type": "error", "error": {"type": kind, "code": code, "message": f"test error {code}", "param": None,
                                       "event_id": None}}


@pytest.mark.parametrize("code", ERROR_CODES)
def test_error_event_for_every_code(server, code):
    client, timeline = open_client(server.url)
    server.send_event(_error(code))
    err = client.wait_for("error", timeout=5)
    assert isinstance(err, ev.Error) and err.error.code == code
    text_turn(client)  # an error event alone never ends the session
    assert client.link_state == "open" and timeline.of("rtedge.connection_lost") == []
    t0 = time.monotonic()
    if code in GIVE_UP:  # the live server closes right after these
        server.close_connections(GIVE_UP[code], f"invalid_request_error.{code}")
        timeline.wait("rtedge.gave_up", after=t0)
        assert isinstance(client.fatal_error, ServerError) and client.fatal_error.code == code
        assert timeline.of("rtedge.reconnecting") == [] and server.connection_count == 1
        outcome = f"session stays up; with close {GIVE_UP[code]}: gave_up, no reconnect"
    else:
        if code == "session_expired":
            server.close_connections(1001, "session expired")
        else:  # a later network blip must still be recovered from (a configuration error mid-session
            # used to make it fatal)
            server.drop_connections()
        timeline.wait("rtedge.reconnected", after=t0)
        assert client.fatal_error is None
        text_turn(client)
        outcome = "session stays up; a later close " + ("1001" if code == "session_expired" else "(RST)") + \
            " is recovered from"
    close_bounded(client)
    record(f"error event {code}", outcome)
