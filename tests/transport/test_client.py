"""The client against the local GA server on loopback (plain and TLS), through its three threads."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import websockets.sync.server

import rtedge
from rtedge.errors import (ConfigError, ConnectionClosed, DeadlineExceeded, HandshakeError, LocalProtocolError,
                           ServerError)
from rtedge.protocol import events as ev
from rtedge.protocol._state import ResponseState
from rtedge.testing import RealtimeServer, VLLMServer, make_self_signed_cert
from rtedge.testing._tls import client_ssl_context, server_ssl_context
from rtedge.audio.wavio import read_wav

from ..conftest import client_threads, wait_until

pytestmark = pytest.mark.usefixtures("no_thread_leak")


@pytest.fixture
def server():
    with RealtimeServer(realtime=False, seed=1) as srv:
        yield srv


@pytest.fixture
def client(server):
    with rtedge.connect(url=server.url, session=rtedge.SessionConfig(output_modalities=("text",))) as c:
        yield c


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


def _text_turn(c: rtedge.Client, text: str = "Hello there") -> ev.ResponseDone:
    c.send_text(text)
    done = c.wait_for("response.done", timeout=10)
    assert isinstance(done, ev.ResponseDone)
    return done


# ------------------------------------------------------------------------------------------------ turns


def test_connect_waits_for_confirmed_config_and_text_turn(server, client):
    # connect() returned: the requested config is already the server's effective config
    assert client.session["output_modalities"] == ["text"]
    assert client.is_loopback  # the local server: the tick engine's "auto" sync picks its barrier from this
    done = _text_turn(client)
    assert done.status == "completed"
    assert client.state.response is ResponseState.IDLE
    reply = client.state.output_items[done.response["output"][0]["id"]]
    assert reply.text[0] == "I heard you."
    # usage in the client equals what the server reported
    reported = server.wait_for_sent("response.done")["response"]["usage"]
    assert client.usage.total_tokens == reported["total_tokens"] > 0
    assert client.usage.responses == 1
    # what we sent, in order, as the server saw it
    kinds = [e["type"] for e in server.received]
    assert kinds == ["session.update", "conversation.item.create", "response.create"]


def test_tls_text_turn(tls_files):
    cert, key = tls_files
    with RealtimeServer(realtime=False, ssl_context=server_ssl_context(cert, key)) as srv:
        assert srv.url.startswith("wss://")
        with rtedge.connect(url=srv.url, ssl_context=client_ssl_context(cert)) as c:
            assert _text_turn(c).status == "completed"
        # without trusting the certificate the handshake fails with a clear transport error
        with pytest.raises(rtedge.TransportError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            rtedge.connect(url=srv.url)


def test_audio_turn_via_server_vad(server, speech_dir):
    samples, rate = read_wav(speech_dir / "turn_on_the_kitchen_lights.wav")
    transcripts: list[str] = []
    with rtedge.connect(url=server.url) as c:
        c.on("response.output_audio_transcript.done", lambda e: transcripts.append(e.transcript))
        for i in range(0, len(samples), rate // 50):  # 20 ms frames at 16 kHz, resampled to 24 kHz
            c.append_audio(samples[i:i + rate // 50], rate=rate)
        c.append_audio(np.zeros(rate, dtype=np.int16), rate=rate)  # trailing silence ends the turn
        started = c.wait_for("input_audio_buffer.speech_started", timeout=10)
        stopped = c.wait_for("input_audio_buffer.speech_stopped", timeout=10)
        done = c.wait_for("response.done", timeout=10)
        # espeak pads 0.3 s of silence before the phrase; the server reports the onset minus its
        # 300 ms prefix padding, so the start lands near 0 and well before the end of the phrase
        assert 0 <= started.audio_start_ms <= 600
        assert stopped.audio_end_ms > started.audio_start_ms + 1000
        assert done.status == "completed"
        item_id = done.response["output"][0]["id"]
        assert c.state.audio_received_ms(item_id) > 100
        assert wait_until(lambda: transcripts == ["I heard you."])
    # every byte we appended reached the server as 24 kHz PCM16
    appended = sum(len(e["audio"]) for e in server.received if e["type"] == "input_audio_buffer.append")
    assert appended > 0
    expected_ms = (len(samples) + rate) * 1000 / rate
    sent_ms = c.state.input_bytes_sent / 48
    assert abs(sent_ms - expected_ms) < 20


def test_function_call_round():
    weather = rtedge.FunctionTool(name="get_weather", description="Weather for a city",
                                  parameters={"type": "object", "properties": {"city": {"type": "string"}},
                                              "required": ["city"]})
    with RealtimeServer(realtime=False, tool_arguments='{"city": "Oslo"}') as srv:
        session = rtedge.SessionConfig(tools=[weather], output_modalities=("text",))
        with rtedge.connect(url=srv.url, session=session) as c:
            c.send_text("Weather in Oslo?")
            args = c.wait_for("response.function_call_arguments.done", timeout=10)
            assert args.name == "get_weather" and json.loads(args.arguments) == {"city": "Oslo"}
            c.wait_for("response.done", timeout=10)
            call = c.state.function_calls[args.call_id]
            assert call.done and call.arguments == args.arguments  # assembled from the deltas
            c.send(ev.ConversationItemCreate(item=rtedge.protocol.items.function_call_output(args.call_id, "sunny")))
            c.create_response()
            done = c.wait_for("response.done", timeout=10)
            assert done.response["output"][0]["type"] == "message"
        sent = [e["type"] for e in srv.received]
        assert sent[-2:] == ["conversation.item.create", "response.create"]


# ------------------------------------------------------------------------------------------------ cancel, truncate


def test_cancel_response_only_when_active():
    with RealtimeServer(realtime=True, reply_text="a long answer " * 20) as srv:
        with rtedge.connect(url=srv.url) as c:
            assert c.cancel_response() is False  # nothing active: nothing sent
            with pytest.raises(LocalProtocolError):
                c.send(ev.ResponseCancel())
            c.create_response()
            c.wait_for("response.output_audio.delta", timeout=10)
            assert c.cancel_response() is True
            assert c.cancel_response() is False  # already cancelling
            done = c.wait_for("response.done", timeout=10)
            assert done.status == "cancelled"
            assert c.cancel_response() is False
        cancels = [e for e in srv.received if e["type"] == "response.cancel"]
        assert len(cancels) == 1
        assert not any(e["type"] == "error" for e in srv.sent)


def test_truncate_clamps_to_audio_received_and_skips_zero():
    with RealtimeServer(realtime=False, reply_text="Short.") as srv:
        with rtedge.connect(url=srv.url) as c:
            c.create_response()
            done = c.wait_for("response.done", timeout=10)
            item_id = done.response["output"][0]["id"]
            received = c.state.audio_received_ms(item_id)
            assert received > 0
            assert c.truncate(item_id, 0) is False  # nothing heard: no truncate
            assert c.truncate("item_unknown", 500) is False
            assert c.truncate(item_id, received + 5000) is True  # clamped, never beyond what we got
            truncated = c.wait_for("conversation.item.truncated", timeout=10)
            assert truncated.audio_end_ms == int(received)
            assert not any(e["type"] == "error" for e in srv.sent)
        sent = [e for e in srv.received if e["type"] == "conversation.item.truncate"]
        assert len(sent) == 1 and sent[0]["content_index"] == 0 and sent[0]["audio_end_ms"] == int(received)


def test_a_second_truncate_is_clamped_to_the_first():
    """Truncating the same item again, to more than the first truncate kept, drew the server's
    "Audio content of 500ms is already shorter than 1000ms" error."""
    with RealtimeServer(realtime=False, reply_text="A longer answer with some audio in it.") as srv:
        with rtedge.connect(url=srv.url) as c:
            c.create_response()
            done = c.wait_for("response.done", timeout=10)
            item_id = done.response["output"][0]["id"]
            assert c.state.audio_received_ms(item_id) > 1000
            assert c.truncate(item_id, 800) and c.truncate(item_id, 500) and c.truncate(item_id, 1000)
            assert c.wait_for("conversation.item.truncated", timeout=10)
            answered = {"conversation.item.truncated", "error"}
            assert wait_until(lambda: len([e for e in srv.sent if e["type"] in answered]) == 3)
            errors = [e for e in srv.sent if e["type"] == "error"]
            assert errors == []
        sent = [e["audio_end_ms"] for e in srv.received if e["type"] == "conversation.item.truncate"]
        assert sent == [800, 500, 500]


def test_explicit_null_turn_detection_confirmed(server):
    with rtedge.connect(url=server.url, session=rtedge.SessionConfig(turn_detection=None)) as c:
        assert c.session["audio"]["input"]["turn_detection"] is None
    update = server.received[0]
    assert update["session"]["audio"]["input"] == {"turn_detection": None}
    assert server.sessions[-1]["audio"]["input"]["turn_detection"] is None


# ------------------------------------------------------------------------------------------------ errors


def test_rejected_config_raises_server_error(server):
    bad = rtedge.SessionConfig(input_format=rtedge.AudioFormat.pcm(16000))  # GA accepts 24 kHz only
    with pytest.raises(ServerError) as info:
        rtedge.connect(url=server.url, session=bad)
    assert info.value.code == "integer_below_min_value"
    assert info.value.event_id == server.received[0]["event_id"]
    assert client_threads() == [] or wait_until(lambda: client_threads() == [])


def test_server_error_events_are_delivered_not_raised(client):
    errors: list[ev.Error] = []
    client.on("error", errors.append)
    client.send({"type": "conversation.item.delete", "item_id": "item_nope"})
    err = client.wait_for("error", timeout=5)
    assert isinstance(err, ev.Error) and err.error.code
    assert wait_until(lambda: len(errors) == 1)
    assert _text_turn(client).status == "completed"  # the session goes on


def test_handshake_401():
    with RealtimeServer(api_key="sk-right") as srv:
        with pytest.raises(HandshakeError) as info:
            rtedge.connect(url=srv.url, api_key="sk-wrong-secret")
        assert info.value.status_code == 401
        assert "sk-wrong-secret" not in str(info.value)
        assert "HTTP 401 (the API key was refused" in str(info.value)
        with pytest.raises(HandshakeError, match=r"HTTP 401 \(no API key was given: pass api_key=") as info:
            rtedge.connect(url=srv.url)  # loopback: connect does not insist on a key
        # each command's own way to give one (rtedge transcribe's read "provider.api_key_file", a run setting)
        assert "(rtedge run: provider.api_key_file; rtedge transcribe: --api-key-file)" in str(info.value)
        with rtedge.connect(url=srv.url, api_key="sk-right") as c:
            assert "sk-right" not in repr(c)
        assert srv.handshakes[-1]["headers"]["authorization"] == "Bearer sk-right"


def test_a_wrong_path_says_to_check_the_url():
    with RealtimeServer() as srv:
        with pytest.raises(HandshakeError, match=r"refused: HTTP 404 \(no realtime endpoint at this path: check "
                                                 r"the URL\)") as info:
            rtedge.connect(url=srv.url.replace("/v1/realtime", "/v1/realtim"), reconnect=None)
        assert info.value.status_code == 404


def test_refused_connection_and_bad_options():
    with pytest.raises(rtedge.TransportError, match="refused"):
        rtedge.connect(url="ws://127.0.0.1:9/v1/realtime", connect_timeout=2)
    with pytest.raises(ConfigError, match="unknown connect option"):
        rtedge.connect(url="ws://127.0.0.1:9/v1/realtime", conect_timeout=2)
    with pytest.raises(ConfigError, match="API key"):
        rtedge.connect(url="wss://realtime.invalid/v1/realtime")


@pytest.mark.parametrize("option, value, message", [
    ("ping_interval", "20", "ping_interval must be a number >= 0"),
    ("connect_timeout", -1, "connect_timeout must be a number > 0"),
    ("ping_timeout", float("nan"), "ping_timeout must be a number > 0"),
    ("max_audio_queue_ms", 0, "max_audio_queue_ms must be a number > 0"),
    ("send_batch_ms", -1, "send_batch_ms must be a number >= 0"),
    ("send_batch_ms", 5000, "send_batch_ms must be <= 1000 ms"),
    ("inbox_size", 0, "inbox_size must be an integer >= 1"),
    ("inbox_bytes", 1.5, "inbox_bytes must be an integer >= 1"),
    ("finish_timeout", True, "finish_timeout must be a number >= 0"),
    ("max_session_seconds", -5, "max_session_seconds must be a number >= 0"),
    ("reconnect", 5, "reconnect must be a rtedge.Backoff or None"),
    ("on_error", "log", "on_error must be a function"),
    ("ca_certs", "/no/such/ca.pem", r"ca_certs must name a PEM file of the CAs to trust, got '/no/such/ca.pem' "
                                    r"\(no such file\)"),
    ("ca_certs", 5, "ca_certs must name a PEM file"),
])
def test_a_bad_option_value_is_a_config_error_naming_it(option, value, message):
    """Checked before anything opens (a string ``ping_interval`` used to kill the sender thread with a
    TypeError, a negative ``connect_timeout`` came back as the socket layer's ValueError)."""
    threads = client_threads()
    with pytest.raises(ConfigError, match=message):
        rtedge.connect(url="ws://127.0.0.1:9/v1/realtime", **{option: value})
    assert client_threads() == threads


@pytest.mark.parametrize("options, message", [
    ({"api_key": "sk-from-a-file\n"}, "header 'Authorization' holds a line break (an API key read from a file"),
    ({"api_key": "sk-x\r\nX-Smuggled: 1"}, "header 'Authorization' holds a line break"),
    ({"headers": {"X-Trace": "a\r\nX-Smuggled: 1"}}, "header 'X-Trace' holds a line break"),
    ({"headers": {"X-Trace": "a\x00"}}, "header 'X-Trace' holds a control character"),
    ({"headers": {"Bad Name": "1"}}, "header name 'Bad Name' is not a valid HTTP header name"),
    ({"headers": {"X-Count": 5}}, "header 'X-Count' must be a str, got int"),
    ({"headers": [("X-A", "1")]}, "headers must be a dict of str to str or None, got list"),
])
def test_a_header_that_would_break_the_request_is_refused_without_showing_it(server, options, message):
    """An API key with its file's newline failed as 'Connection to remote host was lost'; one with CR LF
    inside sent a second header of the caller's making.  Refused before connecting, the value unshown."""
    with pytest.raises(ConfigError) as info:
        rtedge.connect(url=server.url, **options)
    assert message in str(info.value)
    assert "sk-" not in str(info.value) and "Smuggled" not in str(info.value)
    assert server.handshakes == []


def test_a_key_with_a_newline_is_refused_before_the_model_lookup_shows_it():
    with VLLMServer() as srv:  # no model named: /v1/models is asked first, with the key
        with pytest.raises(ConfigError, match="holds a line break") as info:
            rtedge.connect("vllm", url=srv.url, api_key="sk-secret\n")
    assert "sk-secret" not in str(info.value)


def test_connect_timeout_when_server_is_silent():
    def silent(ws):
        for _ in ws:  # never sends session.created
            pass

    with websockets.sync.server.serve(silent, "127.0.0.1", 0) as srv:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = f"ws://127.0.0.1:{srv.socket.getsockname()[1]}/v1/realtime"
        t0 = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            rtedge.connect(url=url, connect_timeout=0.5)
        assert time.monotonic() - t0 < 3.0
        srv.shutdown()


# ------------------------------------------------------------------------------------------------ callbacks, threads


def test_callbacks_run_on_dispatcher_and_errors_go_to_on_error(server):
    seen: list[tuple[str, str]] = []
    failures: list[tuple[BaseException, str]] = []
    with rtedge.connect(url=server.url, on_error=lambda exc, e: failures.append((exc, e.type))) as c:
        @c.on("response.created")
        def boom(event):
            raise RuntimeError("callback bug")

        c.on("*", lambda e: seen.append((e.type, threading.current_thread().name)))
        _text_turn(c)
        assert wait_until(lambda: ("response.done", "rtedge-dispatch") in seen)
    assert {name for _, name in seen} == {"rtedge-dispatch"}
    assert len(failures) == 1 and isinstance(failures[0][0], RuntimeError) and failures[0][1] == "response.created"
    assert c.stats.callback_errors == 1


@pytest.mark.parametrize("exit_exc", [SystemExit, KeyboardInterrupt])
def test_a_callback_calling_sys_exit_does_not_end_dispatch(server, exit_exc, caplog):
    """``sys.exit()`` in a callback ended rtedge-dispatch in silence: no log, no on_error, no count, and no
    callback ever ran again while the link stayed up.  It is a callback error like any other."""
    failures: list[BaseException] = []
    later: list[str] = []
    with rtedge.connect(url=server.url, on_error=lambda exc, e: failures.append(exc),
                        session=rtedge.SessionConfig(output_modalities=("text",))) as c:
        @c.on("response.created")
        def leave(event):
            raise exit_exc()

        c.on("response.done", lambda e: later.append(threading.current_thread().name))
        for _ in range(2):
            _text_turn(c)
        assert wait_until(lambda: len(later) == 2)
        assert "rtedge-dispatch" in client_threads()
    assert later == ["rtedge-dispatch"] * 2
    assert [type(f) for f in failures] == [exit_exc, exit_exc] and c.stats.callback_errors == 2
    assert "callback 'leave' raised on response.created" in caplog.text


def test_slow_callback_does_not_delay_receiver(server):
    release = threading.Event()
    with rtedge.connect(url=server.url) as c:
        c.on("response.created", lambda e: release.wait(10))  # blocks the dispatcher only
        c.create_response()
        done = c.wait_for("response.done", timeout=5)  # the receiver kept reading
        assert done.status == "completed"
        assert c.state.response is ResponseState.IDLE
        assert c.stats.last_receive > 0
        release.set()


def test_a_blocked_callback_cannot_grow_memory_without_bound(server, caplog):
    """Events waiting for a blocked callback piled up without limit (0.6 MB a turn of audio); past
    ``dispatch_bytes`` the oldest are dropped, counted and logged once, the receiver never waits, and
    callbacks resume once the blocked one returns."""
    release = threading.Event()
    done: list[str] = []
    bound = 160 * 1024  # an answer's audio is about 57 KB: room for a dispatcher a turn or two late (a busy
    # machine), not for six answers behind a blocked callback
    with rtedge.connect(url=server.url, dispatch_bytes=bound) as c:
        c.on("response.done", lambda e: done.append(e.response["id"]))
        c.on("response.output_audio.delta", lambda e: None)
        for turn in range(1, 4):  # callbacks that keep up lose nothing
            _text_turn(c)
            # each turn's callbacks ran before the next turn: a dispatcher that a loaded machine starved for
            # three turns (171 KB of audio) would be past the bound without any callback blocking
            assert wait_until(lambda: len(done) == turn, timeout=20), (done, c.stats.callback_events_dropped)
        assert c.stats.callback_events_dropped == 0
        c.on("response.created", lambda e: release.wait(10))
        for _ in range(6):  # audio answers: tens of KB of deltas each, behind a blocked callback
            _text_turn(c)
        assert c.stats.callback_events_dropped > 0
        assert c._dispatcher._queued_bytes <= bound
        behind = f"callbacks are more than {bound} bytes of events behind"
        drops = [r for r in caplog.records if behind in r.getMessage()]
        assert len(drops) == 1  # once per episode
        release.set()
        last = _text_turn(c)  # after the blocked callback returned: delivered again
        assert wait_until(lambda: last.response["id"] in done)
    assert len(done) < 3 + 7  # some response.done events were among those dropped for the blocked callback


def test_close_from_inside_callback(server):
    closed = threading.Event()
    c = rtedge.connect(url=server.url)

    def on_done(event):
        c.close()
        closed.set()

    c.on("response.done", on_done)
    c.create_response()
    assert closed.wait(10)
    assert wait_until(lambda: client_threads() == [])
    with pytest.raises(ConnectionClosed):
        c.send_text("too late")
    c.close()  # idempotent


def test_close_is_bounded_and_joins_threads(server):
    c = rtedge.connect(url=server.url)
    assert sorted(client_threads()) == ["rtedge-dispatch", "rtedge-receiver", "rtedge-sender"]
    t0 = time.monotonic()
    c.close(timeout=2.0)
    assert time.monotonic() - t0 < 2.5
    assert client_threads() == []
    assert server.wait_for_sent("session.created")  # the server saw a clean session


def test_server_closing_ends_events_and_threads(server):
    client = rtedge.connect(url=server.url, reconnect=None)
    server.close_connections(1001, "going away")
    lost = client.wait_for("rtedge.connection_lost", timeout=5)
    assert lost.code == 1001 and lost.reason == "going away"
    client.wait_for("rtedge.gave_up", timeout=5)  # reconnect=None: the first loss is final
    assert client.closed
    with pytest.raises(ConnectionClosed):
        client.create_response()
    client.close()


def test_events_iterator_and_wait_for_share_the_inbox(client):
    client.send_text("hi")
    types = []
    for event in client.events(timeout=5):
        types.append(event.type)
        if event.type == "response.done":
            break
    assert types[0] == "session.created"  # the inbox keeps events from the start
    assert "response.created" in types and types.index("response.created") < types.index("response.done")
    with pytest.raises(DeadlineExceeded):
        client.wait_for("response.done", timeout=0.2)  # already consumed above


def test_wait_for_star_takes_the_next_event_of_any_type(client):
    """``"*"`` means every event in :meth:`wait_for` as it does in :meth:`on` (it used to match none and
    run into its timeout)."""
    assert client.wait_for("*", timeout=5).type == "session.created"  # the inbox's oldest unread
    client.wait_for("session.updated", timeout=5)
    client.send_text("hi")
    assert client.wait_for("*", timeout=5).type == "conversation.item.added"


def test_internal_error_on_a_message_does_not_deafen_the_receiver(server, client, monkeypatch, caplog):
    session = client._session
    original = session.receive_event  # the receiver parses off the lock, then accounts here
    calls = {"n": 0}

    def flaky(event):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug in rtedge")
        return original(event)

    monkeypatch.setattr(session, "receive_event", flaky)
    server.send_event({"type": "conversation.created", "conversation": {"id": "conv_1"}})
    assert wait_until(lambda: client.stats.internal_errors == 1)
    # the receiver counts, then logs: wait for the line too
    assert wait_until(lambda: "internal error while handling a server message" in caplog.text)
    assert _text_turn(client).status == "completed"  # the receiver is still reading


def test_a_misspelt_event_type_is_warned_once_with_the_name_meant(client, caplog):
    """``on("respons.done")`` was accepted in silence and never called; it still registers (a server may send
    types newer than rtedge) but the log names the type it resembles, once per client."""
    calls: list[ev.ServerEvent] = []
    with caplog.at_level("WARNING", logger="rtedge"):
        client.on("respons.done", calls.append)
        client.on("respons.done", calls.append)
        with pytest.raises(DeadlineExceeded):
            client.wait_for("respons.done", timeout=0.05)
    warnings = [r.getMessage() for r in caplog.records if "respons.done" in r.getMessage()]
    assert warnings == ["'respons.done' is not an event type rtedge knows (did you mean 'response.done'?); it is "
                        "matched only if a server sends that exact type"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="rtedge"):
        for known in ("response.done", "*", "rtedge.gave_up", "response.mcp_call.completed", "response.audio.delta",
                      "bench.marker"):
            client.off(known, calls.append)
    # known types, "*", types rtedge passes through untyped, and a server's own namespace: no warning
    assert not caplog.records
    with caplog.at_level("WARNING", logger="rtedge"):
        client.on("done", calls.append)
        client.on("response.finished", calls.append)
    assert [r.getMessage().partition(" is ")[0] for r in caplog.records] == ["'done'", "'response.finished'"]
    with pytest.raises(TypeError, match="event_type must be a str"):
        client.on(ev.ResponseDone, calls.append)  # the class, not its type


def test_a_beta_event_name_means_its_ga_name(server):
    """DashScope's documents (and the beta API) name ``response.audio.delta``; rtedge renames it on arrival,
    so a callback under the beta name never ran.  It now means the GA type."""
    deltas: list[ev.ServerEvent] = []
    with rtedge.connect(url=server.url) as c:
        c.on("response.audio.delta", deltas.append)
        c.send_text("hello")
        transcript = c.wait_for("response.audio_transcript.done", timeout=10)
        assert transcript.type == "response.output_audio_transcript.done"
        c.wait_for("response.done", timeout=10)
        assert wait_until(lambda: len(deltas) > 0)
    assert {d.type for d in deltas} == {"response.output_audio.delta"}


def test_nan_and_objects_are_refused_on_the_callers_thread(server, client):
    """NaN went on the wire as the bare word ``NaN`` (not JSON: the server refuses the message, and a wire
    trace file stops being JSON lines); it is refused before sending, naming the event."""
    with pytest.raises(ValueError, match=r"response.create: .*\(NaN and infinity cannot be sent\)"):
        client.create_response(max_output_tokens=float("nan"))
    with pytest.raises(ValueError, match=r"send\('session.update' event\)"):
        client.send({"type": "session.update", "session": {"temperature": float("inf")}})
    with pytest.raises(TypeError, match=r"send\('x' event\): Object of type object is not JSON serializable"):
        client.send({"type": "x", "o": object()})
    assert _text_turn(client).status == "completed"  # nothing half-sent: the session goes on
    kinds = [e["type"] for e in server.received]
    assert kinds == ["session.update", "conversation.item.create", "response.create"]


@pytest.mark.parametrize("url, message", [
    ("ws://[::1/v1/realtime", "url 'ws://***' cannot be used: Invalid IPv6 URL"),
    ("ws://127.0.0.1:abc/v1/realtime", "cannot be used: Port could not be cast to integer value as 'abc'"),
    ("ws://127.0.0.1:99999/v1/realtime", "cannot be used: Port out of range 0-65535"),
    ("ws:///v1/realtime", "url 'ws:///v1/realtime' names no host"),
    ("ws://user:pw@127.0.0.1:abc/v1/realtime", "url 'ws://***@127.0.0.1:abc/v1/realtime' cannot be used"),
    # a password holding '/': urlsplit reads part of it as the port; neither is shown
    ("ws://user:p/w@127.0.0.1/v1/realtime", "url 'ws://***@127.0.0.1/v1/realtime' cannot be used: a port that"),
])
@pytest.mark.parametrize("provider", ["openai", "vllm", "openai-transcription"])
def test_a_malformed_url_is_a_config_error_not_a_traceback(provider, url, message):
    """These failed in the socket layer or urllib as ValueError or http.client.InvalidURL tracebacks (exit 1),
    after check-config had accepted them; the message keeps a password out."""
    with pytest.raises(ConfigError) as info:
        rtedge.connect(provider, url=url, model="m", api_key="k")
    assert message in str(info.value)
    assert "pw" not in str(info.value)
    with pytest.raises(ConfigError, match=r"azure url 'wss://\*\*\*' cannot be used: Invalid IPv6 URL"):
        rtedge.connect("azure", url="wss://[::1/openai/v1/realtime", model="m", api_key="k")


def test_bad_arguments_are_refused_where_they_are_given(server, client):
    """Each of these failed later, elsewhere or with a message about Python rather than the argument: a
    callback 5 raised TypeError on rtedge-dispatch at every event, session={...} an AttributeError inside
    connect, truncate(item, NaN) 'cannot convert float NaN to integer'."""
    with pytest.raises(TypeError, match=r"a callback must be callable as fn\(event\), got 5"):
        client.on("response.done", 5)
    with pytest.raises(TypeError, match="session must be a rtedge.SessionConfig .* got dict"):
        rtedge.connect(url=server.url, session={"instructions": "x"})
    with pytest.raises(TypeError, match=r"on\['response.done'\]: a callback must be callable"):
        rtedge.connect(url=server.url, on={"response.done": [print, 5]})
    done = _text_turn(client)
    item = done.response["output"][0]["id"]
    with pytest.raises(ValueError, match="audio_end_ms must be a number of milliseconds, got NaN"):
        client.truncate(item, float("nan"))
    for bad in ("300", True, None):
        with pytest.raises(TypeError, match="audio_end_ms must be a number of milliseconds"):
            client.truncate(item, bad)
    assert server.connection_count == 1  # the refused connects opened nothing


def test_off_removes_one_registration_and_takes_a_bound_method(client):
    """``off("response.done", self.on_done)`` removed nothing: each ``self.on_done`` is a new bound method
    and the match was by identity.  It also removed every registration of a callback at once."""
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def on_done(self, event: ev.ServerEvent) -> None:
            self.n += 1

    counter = Counter()
    client.on("response.done", counter.on_done)
    client.on("response.done", counter.on_done)
    _text_turn(client)
    assert wait_until(lambda: counter.n == 2, timeout=5)
    client.off("response.done", counter.on_done)  # one of the two
    _text_turn(client)
    assert wait_until(lambda: counter.n == 3, timeout=5)
    client.off("response.done", counter.on_done)
    client.off("response.done", counter.on_done)  # not registered any more: nothing happens
    _text_turn(client)
    done: list[ev.ServerEvent] = []
    client.on("response.done", done.append)  # gets the turn's response.done replayed only if nobody took it
    assert wait_until(lambda: len(done) == 1, timeout=5)
    assert counter.n == 3


def test_off_tells_equal_callables_apart(client):
    """Callables equal by value (dataclass instances) are different registrations: off(a) removes a."""
    import dataclasses

    @dataclasses.dataclass
    class Tally:
        seen: list[str]

        def __call__(self, event: ev.ServerEvent) -> None:
            self.seen.append(event.type)

    a, b = Tally([]), Tally([])
    assert a == b and a is not b
    client.on("response.done", a)
    client.on("response.done", b)
    client.off("response.done", a)
    _text_turn(client)
    assert wait_until(lambda: b.seen == ["response.done"], timeout=5)
    assert a.seen == []


def test_connection_lost_says_whether_this_side_closed_it(server):
    """Every session ends with ``rtedge.connection_lost``, close() included, which read as a loss to a callback
    that logged or alerted on it; ``by_client`` now tells the two apart."""
    lost: list[ev.ConnectionLost] = []
    c = rtedge.connect(url=server.url, on={"rtedge.connection_lost": lost.append})
    try:
        server.drop_connections()
        assert wait_until(lambda: len(lost) == 1, timeout=10)
        assert lost[0].by_client is False
        c.wait_for("rtedge.reconnected", timeout=10)
    finally:
        c.close()
    assert wait_until(lambda: len(lost) == 2, timeout=5)
    assert lost[1].by_client is True


def test_a_send_after_the_link_gave_up_says_so_in_words(server):
    """The error read "the link is gave_up" (the state's value pasted into a sentence)."""
    c = rtedge.connect(url=server.url, reconnect=None)
    server.close_connections(1011)
    c.wait_for("rtedge.gave_up", timeout=5)
    with pytest.raises(ConnectionClosed, match=r"^the link gave up \(client.fatal_error says why\)$"):
        c.send_text("too late")
    c.close()


def test_a_text_that_is_not_a_str_and_a_negative_timeout_are_refused_here(server):
    """send_text(None) sent a message with a null text; wait_for(timeout=-1) waited, then said
    "within -1 s"."""
    with rtedge.connect(url=server.url) as c:
        with pytest.raises(TypeError, match="must be a str, got NoneType"):
            c.send_text(None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout must be >= 0"):
            c.wait_for("response.done", timeout=-1)
    assert not [e for e in server.received if e["type"] == "conversation.item.create"]


@pytest.mark.parametrize("bad", [-1, float("nan")])
def test_every_wait_refuses_a_negative_or_nan_timeout_before_acting(server, bad):
    """wait_for(timeout=nan) waited for ever (a NaN deadline never passes); update_session(timeout=-5)
    sent the update, then said "within -5.0 s"; events(timeout=-1) yielded nothing; append_audio and
    wait_sent took them."""
    with rtedge.connect(url=server.url) as c:
        calls = {"wait_for": lambda: c.wait_for("response.done", timeout=bad),
                 "events": lambda: next(c.events(timeout=bad)),
                 "update_session": lambda: c.update_session(instructions="x", timeout=bad),
                 "append_audio": lambda: c.append_audio(np.zeros(480, np.int16), 24000, timeout=bad),
                 "wait_sent": lambda: c.wait_sent(timeout=bad)}
        for name, call in calls.items():
            with pytest.raises(ValueError, match="timeout must be >= 0 seconds or None"):
                call()
        with pytest.raises(TypeError, match="timeout must be a number"):
            c.wait_for("response.done", timeout="5")  # type: ignore[arg-type]
    assert server.received == []  # nothing sent by the refused calls (connect() sent no session either)


def test_an_infinite_connect_option_is_refused_by_name():
    """connect_timeout=inf failed deep in the socket layer: OverflowError: timestamp out of range."""
    with pytest.raises(ConfigError, match="connect_timeout must be a finite number > 0"):
        rtedge.connect(url="ws://127.0.0.1:9/v1/realtime", connect_timeout=float("inf"))


def test_encoded_audio_and_images_must_be_bytes(server):
    """append_encoded("abcd") and append_image("abc") failed with "string argument without an encoding",
    append_encoded(array) with "the truth value of an array is ambiguous"."""
    with rtedge.connect(url=server.url) as c:
        with pytest.raises(TypeError, match="append_encoded takes bytes, got str"):
            c.append_encoded("abcd")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"takes bytes, got ndarray \(samples go to append_audio"):
            c.append_encoded(np.zeros(4, np.int16))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="append_image takes bytes, got str"):
            c.append_image("abc")  # type: ignore[arg-type]
        assert c.append_encoded(bytearray(4)) == 4 and c.append_encoded(memoryview(b"\0\0")) == 2
        assert c.wait_sent(timeout=5)
        server.wait_for_received("input_audio_buffer.append", nth=2)  # sent is not yet received
    assert [e["type"] for e in server.received] == ["input_audio_buffer.append"] * 2


def test_a_session_update_never_confirmed_is_named_in_the_timeout(monkeypatch):
    """A server that sent session.created and never session.updated: connect() said "no frame from the
    server in time", though frames had come; it names what it waited for."""
    from rtedge.testing import _session

    monkeypatch.setattr(_session.ServerSession, "_on_session_update", lambda self, event: None)
    with RealtimeServer(realtime=False) as srv:
        with pytest.raises(DeadlineExceeded, match=r"no session\.updated from the server in time"):
            rtedge.connect(url=srv.url, session=rtedge.SessionConfig(instructions="hi"), connect_timeout=0.5)
