"""Make-before-break session rollover against the local server's session lifetime.

The long form (a 10-minute paced conversation with a 20 s lifetime, and a 1,000-rollover soak) is
``benchmarks/rollover.py``; these are the short forms the suite runs.
"""

from __future__ import annotations

import hashlib
import threading
import time

import numpy as np
import pytest

import rtedge
from rtedge.protocol.config import Transcription
from rtedge.protocol.reseed import RolloverTiming
from rtedge.testing import RealtimeServer
from rtedge.transport import LinkState, _ws
from rtedge.audio.wavio import read_wav

from ..conftest import audit, wait_until
from .conftest import close_bounded, fd_count, open_client, record

FRAME = 480  # 20 ms at 24 kHz


def _speech(speech_dir) -> np.ndarray:
    from rtedge.audio.codec import Resampler

    samples, rate = read_wav(speech_dir / "turn_on_the_kitchen_lights.wav")
    r = Resampler(rate, 24000)
    return np.concatenate([r.process(samples), r.flush()]).astype(np.int16)


class PacedMic:
    """Appends 20 ms frames in real time on its own thread: speech, then ``gap_s`` of silence, again;
    keeps the SHA-256 and count of every sample it appended."""

    def __init__(self, client: rtedge.Client, speech: np.ndarray, gap_s: float) -> None:
        silence = np.zeros(int(gap_s * 24000), np.int16)
        self.loop = np.concatenate([speech, silence])
        self.client, self.hash, self.samples = client, hashlib.sha256(), 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="test-mic", daemon=True)

    def _run(self) -> None:
        t0, k = time.monotonic(), 0
        while not self.stop.is_set():
            start = (k * FRAME) % (len(self.loop) - FRAME)
            frame = self.loop[start:start + FRAME].copy()
            frame[0] = k % 64 - 32  # frames differ (below the VAD threshold): a swap changes the checksum
            self.client.append_audio(frame, rate=24000)
            self.hash.update(frame.astype("<i2").tobytes())
            self.samples += FRAME
            k += 1
            self.stop.wait(max(0.0, t0 + k * 0.02 - time.monotonic()))

    def __enter__(self) -> PacedMic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def _texts(items: list[dict]) -> list[str]:
    from rtedge.protocol.items import item_text

    return [item_text(i) for i in items if i.get("type") == "message" and item_text(i)]


def _configure(server: RealtimeServer, **knobs: object) -> None:
    for name, value in knobs.items():
        setattr(server, name, value)


def _seeded_in_order(server, rollovers: int) -> bool:
    """Each of the first ``rollovers`` new sessions holds its old session's conversation (as text, in order)."""
    texts = [_texts(server.conversation(i)) for i in range(min(rollovers + 1, len(server.audio_records)))]
    return len(texts) == rollovers + 1 and all(after[:len(before)] == before
                                               for before, after in zip(texts, texts[1:]))


def test_paced_conversation_rolls_over_without_losing_a_sample(server, speech_dir):
    n = iter(range(1000))
    _configure(server, realtime=True, session_duration_s=6.0, reply_text="Okay, done.",
               input_transcript=lambda audio, rate: f"request {next(n)}")
    session = rtedge.SessionConfig(instructions="Be brief.", transcription=Transcription(model="whisper-1"))
    client, timeline = open_client(server.url, session=session, ping_interval=0.5, ping_timeout=0.5)
    with PacedMic(client, _speech(speech_dir), gap_s=2.0) as mic:
        t_third, _ = timeline.wait("rtedge.session_rollover", nth=3, timeout=30)
        timeline.wait("response.done", after=t_third, timeout=10)
    assert wait_until(lambda: sum(r.samples for r in server.audio_records) >= mic.samples, timeout=5)
    # an old session that still owed an answer or a transcript at its switch gives it, ends, and only then is
    # its end copied to the new session: wait for every new session to hold its old one's conversation (closing
    # the client first would leave the last copy unsent, which is not what this test is about)
    assert wait_until(lambda: _seeded_in_order(server, len(timeline.of("rtedge.session_rollover"))), timeout=10)
    records = server.audio_records
    rollovers = timeline.of("rtedge.session_rollover")
    done = timeline.of("response.done")
    stats = client.stats
    close_bounded(client)
    conversations = [server.conversation(i) for i in range(len(records))]
    # (an old session still giving an answer or a transcript when close() came is closed by it: wait)
    assert wait_until(lambda: None not in server.close_codes[:len(rollovers)], timeout=5)
    codes = server.close_codes
    expired = [e for e in server.sent if e["type"] == "error" and e["error"]["code"] == "session_expired"]
    # every microphone sample arrived exactly once, across the sessions, in order
    assert sum(r.samples for r in records) == mic.samples
    assert hashlib.sha256(b"".join(r.audio().astype("<i2").tobytes() for r in records)).hexdigest() \
        == mic.hash.hexdigest()
    assert all(r.samples > 0 for r in records[:len(rollovers)])
    # the provider's limit was never hit, no response was cut, the old sessions were closed by us (1000)
    assert not expired and stats.sessions_expired == 0 and stats.reconnects == 0
    assert len(rollovers) >= 3 and stats.rollovers == len(rollovers)
    assert done and all(d.status == "completed" for d in done)
    assert set(codes[:len(rollovers)]) == {1000}
    # each new session was seeded with the conversation so far (the old session's, as text, in order)
    for i, rollover in enumerate(rollovers):
        assert rollover.old_session_id != rollover.new_session_id
        before, after = _texts(conversations[i]), _texts(conversations[i + 1])
        assert after[:len(before)] == before and rollover.seeded_items > 0
    record("rollover: paced conversation, 6 s lifetime",
           f"{len(rollovers)} rollovers, {mic.samples} samples received once (sha256 equal), "
           f"{len(done)} responses completed, no session_expired")


def test_forced_rollover_lets_the_old_response_finish(server):
    # a paced 3 s answer from 3.8 s before the deadline: still streaming when the rollover starts
    # (deadline - 3 s) and at the forced point (deadline - 2 s), so the switch happens mid-response;
    # the answer goes on on the old session, which ends after it (and before the server's limit)
    _configure(server, realtime=True, session_duration_s=6.0,
               responder=lambda turn: ("One two three four.", np.full(72000, 300, np.int16)))
    client, timeline = open_client(server.url, session=rtedge.SessionConfig(turn_detection=None),
                                   ping_interval=0.2, ping_timeout=0.5,
                                   rollover_timing=RolloverTiming(margin_s=3.0, force_s=2.0))
    assert client._deadline is not None
    assert wait_until(lambda: time.time() >= client._deadline - 3.8, timeout=5)
    client.send_text("Count")
    t_roll, rollover = timeline.wait("rtedge.session_rollover", timeout=10)
    assert rollover.forced
    done = client.wait_for("response.done", timeout=10)
    t_done = next(t for t, e in timeline.entries if e is done)
    sent = sum(len(e["delta"]) for e in server.sent if e["type"] == "response.output_audio.delta")
    got = sum(len(e.delta) for e in timeline.of("response.output_audio.delta"))
    assert wait_until(lambda: server.close_codes[0] == 1000, timeout=5)
    server.responder = None
    client.send_text("Again")
    text = client.wait_for("response.done", timeout=10)
    close_bounded(client)
    assert t_roll < t_done and done.status == "completed"
    assert got == sent > 0  # every audio delta of the old session's answer was delivered
    assert text.status == "completed"
    assert server.conversation(1)[-2]["role"] == "user"  # the next turn went to the new session
    record("rollover forced mid-response", "the answer finished on the old session, then it was closed 1000")


def test_qwen_old_session_ends_with_session_finish(server):
    client, timeline = open_client(f"ws://127.0.0.1:{server.port}/api-ws/v1/realtime", provider="qwen",
                                   session=None, ping_interval=0.2, ping_timeout=0.5, session_limit_s=2.0)
    assert client.dialect.name == "qwen"
    client.send_text("Hi")
    client.wait_for("response.done", timeout=5)
    timeline.wait("rtedge.session_rollover", timeout=10)
    assert wait_until(lambda: server.close_codes[0] == 1000, timeout=5)
    finished = [e for e in server.sent if e["type"] == "session.finished"]
    close_bounded(client)
    assert [e["type"] for e in server.received].count("session.finish") >= 1 and finished


def test_a_failed_rollover_keeps_the_old_session_and_retries(server):
    server.session_duration_s = 8.0
    client, timeline = open_client(server.url, ping_interval=0.2, ping_timeout=0.5,
                                   rollover_timing=RolloverTiming(margin_s=6.0, force_s=1.0))
    server.handshake_status = 503  # the next connection is refused
    assert wait_until(lambda: client.stats.rollover_failures >= 1, timeout=10)
    assert client.link_state is LinkState.OPEN and server.active_connections == 1
    server.handshake_status = None
    timeline.wait("rtedge.session_rollover", timeout=10)
    client.send_text("Still there?")
    assert client.wait_for("response.done", timeout=5).status == "completed"
    assert client.stats.reconnects == 0
    close_bounded(client)


class _HeldUpgrade:
    """``WsConnection.open`` that, on ``rtedge-rollover``, waits until released before it connects."""

    def __init__(self, monkeypatch) -> None:
        self.reached, self.release, self.threads = threading.Event(), threading.Event(), []
        original = _ws.WsConnection.open

        def held(*args, **kwargs):
            self.threads.append(threading.current_thread().name)
            if threading.current_thread().name == "rtedge-rollover":
                self.reached.set()
                assert self.release.wait(10)
            return original(*args, **kwargs)
        monkeypatch.setattr(_ws.WsConnection, "open", held)


def test_the_sender_keeps_sending_while_the_next_connection_upgrades(server, monkeypatch):
    """The rollover's HTTP upgrade runs on rtedge-rollover, not on the sender: audio appended while it
    waits reaches the old session; then the sender writes every frame on the new socket."""
    held = _HeldUpgrade(monkeypatch)
    upgrades = audit.total("upgrade", "rtedge-rollover")
    client, timeline = open_client(server.url, session=rtedge.SessionConfig(turn_detection=None),
                                   ping_interval=0.2, ping_timeout=5.0, session_limit_s=20.0,
                                   rollover_timing=RolloverTiming(margin_s=19.5, force_s=1.0))
    assert held.reached.wait(10) and client.link_state is LinkState.ROLLING_OVER
    before = server.audio_records[0].samples
    for _ in range(5):
        client.append_audio(np.full(FRAME, 7, np.int16), rate=24000)
    assert wait_until(lambda: server.audio_records[0].samples >= before + 5 * FRAME, timeout=5)
    client.clear_input()  # (uncommitted manual-turn audio would hold the switch until the forced point)
    held.release.set()
    timeline.wait("rtedge.session_rollover", timeout=10)
    client.append_audio(np.full(FRAME, 9, np.int16), rate=24000)
    assert wait_until(lambda: len(server.audio_records) == 2 and server.audio_records[1].samples == FRAME,
                      timeout=5)
    assert held.threads == ["rtedge-sender", "rtedge-rollover"]
    assert audit.total("upgrade", "rtedge-rollover") == upgrades + 1
    close_bounded(client)


def test_close_during_the_next_connections_upgrade(server, monkeypatch):
    held = _HeldUpgrade(monkeypatch)
    client, _ = open_client(server.url, ping_interval=0.2, ping_timeout=5.0, session_limit_s=20.0,
                            rollover_timing=RolloverTiming(margin_s=19.5, force_s=1.0))
    assert held.reached.wait(10)
    threading.Timer(0.3, held.release.set).start()  # the upgrade goes on after close() began
    close_bounded(client)
    assert client.link_state is LinkState.CLOSED and client.stats.rollovers == 0
    assert wait_until(lambda: server.active_connections == 0, timeout=5)  # the late connection released


def test_session_expired_anyway_is_recovered_and_counted(server):
    server.session_duration_s = 1.0
    client, timeline = open_client(server.url, session_limit_s=None, ping_interval=0.2, ping_timeout=0.5)
    timeline.wait("rtedge.reconnected", timeout=10)
    assert client.stats.sessions_expired == 1 and client.stats.rollovers == 0
    server.session_duration_s = 3600.0
    close_bounded(client)


def _rolling_over_with_a_response(server):
    """A client whose rollover has its new session ready but waits: a 4 s answer is streaming."""
    _configure(server, realtime=True, responder=lambda turn: ("Long answer.", np.full(96000, 300, np.int16)))
    client, timeline = open_client(server.url, session=rtedge.SessionConfig(turn_detection=None),
                                   ping_interval=0.1, ping_timeout=0.5, session_limit_s=20.0,
                                   rollover_timing=RolloverTiming(margin_s=19.5, force_s=1.0))
    client.send_text("Talk")
    client.wait_for("response.created", timeout=5)
    assert wait_until(lambda: client.link_state is LinkState.ROLLING_OVER and server.connection_count == 2,
                      timeout=5)
    return client, timeline


def test_close_while_rolling_over(server):
    client, _ = _rolling_over_with_a_response(server)
    close_bounded(client)
    assert client.link_state is LinkState.CLOSED and client.stats.rollovers == 0


def test_old_session_lost_while_rolling_over_reconnects(server):
    client, timeline = _rolling_over_with_a_response(server)
    server.close_connections(1011, "internal error", connection=0)
    timeline.wait("rtedge.reconnected", timeout=10)
    assert client.stats.reconnects == 1 and client.stats.rollovers == 0
    assert wait_until(lambda: server.active_connections == 1, timeout=5)  # the prepared one was dropped
    server.responder = None
    client.send_text("Again")
    assert client.wait_for("response.done", timeout=10)
    close_bounded(client)


def test_rollover_soak_leaves_nothing_behind(server):
    """Short lifetimes back to back: threads and descriptors flat (the 1,000-rollover soak with RSS is
    ``benchmarks/rollover.py --soak``)."""
    server.session_duration_s = 1.0
    client, timeline = open_client(server.url, ping_interval=0.05, ping_timeout=2.0, session_limit_s=0.8,
                                   rollover_timing=RolloverTiming(margin_s=0.3, force_s=0.1))
    timeline.wait("rtedge.session_rollover", nth=2, timeout=10)
    threads, fds = len(threading.enumerate()), fd_count()
    timeline.wait("rtedge.session_rollover", nth=22, timeout=30)
    assert wait_until(lambda: len(threading.enumerate()) <= threads and fd_count() <= fds, timeout=5)
    assert client.stats.sessions_expired == 0 and client.stats.reconnects == 0
    close_bounded(client)


def test_a_transcription_session_rolls_over_without_items(server):
    client, timeline = open_client(server.url, provider="openai-transcription", ping_interval=0.1,
                                   ping_timeout=0.5, session=rtedge.SessionConfig(turn_detection=None),
                                   session_limit_s=1.0)
    _, rollover = timeline.wait("rtedge.session_rollover", timeout=10)
    assert rollover.seeded_items == 0
    client.append_audio(np.full(4800, 1000, np.int16), rate=24000)
    client.commit()
    assert client.wait_for("conversation.item.input_audio_transcription.completed", timeout=5).transcript
    assert [s["type"] for s in server.sessions[:2]] == ["transcription", "transcription"]
    assert server.sessions[1]["audio"]["input"]["turn_detection"] is None  # the config went over
    close_bounded(client)


class SwitchedMic:
    """Paced 20 ms frames on a thread, loud while ``loud`` is set (server VAD hears speech), else
    near-silent; SHA-256 and count of every sample appended."""

    def __init__(self, client: rtedge.Client) -> None:
        self.client, self.hash, self.samples = client, hashlib.sha256(), 0
        self.loud, self.stop = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="test-mic", daemon=True)

    def _run(self) -> None:
        t0, k = time.monotonic(), 0
        while not self.stop.is_set():
            frame = np.full(FRAME, 4000 if self.loud.is_set() else 0, np.int16)
            frame[0] = k % 64 - 32  # every frame differs: a swap or a repeat changes the checksum
            self.client.append_audio(frame, rate=24000)
            self.hash.update(frame.astype("<i2").tobytes())
            self.samples += FRAME
            k += 1
            self.stop.wait(max(0.0, t0 + k * 0.02 - time.monotonic()))

    def __enter__(self) -> SwitchedMic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.mark.parametrize("speech_ends", ["before", "after"])
def test_forced_rollover_with_a_turn_in_flight_answers_it_once(server, speech_ends):
    """The switch is forced while a user turn is in flight: server VAD committed it (``before``: 0.5 s
    before the forced point, deadline - 3 s) or the user still speaks at the forced point (``after``:
    the switch waits for the end of the utterance, so it is not split), and its transcript and answer
    are still to come (the server's latency, 1 s; the answer ends 1 s before the deadline at the latest).  The turn is answered exactly once, before the old session ends; the
    new session gets the turn and its answer as items; every microphone sample reaches exactly one
    session; the provider's limit is never hit."""
    _configure(server, realtime=True, session_duration_s=10.0, transcript_delay=1.0, vad_response_delay=1.0,
               input_transcript="turn on the lights",
               responder=lambda turn: ("Lights on.", np.full(9600, 300, np.int16)))
    session = rtedge.SessionConfig(instructions="Be brief.", transcription=Transcription(model="whisper-1"),
                                   turn_detection=rtedge.ServerVad(silence_duration_ms=200))
    client, timeline = open_client(server.url, session=session, ping_interval=0.2, ping_timeout=2.0,
                                   rollover_timing=RolloverTiming(margin_s=5.0, force_s=3.0))
    server.session_duration_s = 3600.0  # (the next session: no second rollover during the test)
    deadline = client._deadline
    assert deadline is not None
    quiet_at = deadline - (3.7 if speech_ends == "before" else 2.7)  # the forced point: deadline - 3 s
    with SwitchedMic(client) as mic:
        # speech from before the rollover starts (deadline - 5 s) keeps the moment from being quiet
        assert wait_until(lambda: time.time() >= deadline - 5.5, timeout=10)
        mic.loud.set()
        assert wait_until(lambda: time.time() >= quiet_at and server.connection_count == 2, timeout=5)
        mic.loud.clear()  # server VAD ends the turn 0.2 s later
        t_stopped, _ = timeline.wait("input_audio_buffer.speech_stopped", timeout=5)
        t_roll, rollover = timeline.wait("rtedge.session_rollover", timeout=5)
        t_created, _ = timeline.wait("response.created", timeout=5)
        done = client.wait_for("response.done", timeout=5)
        assert wait_until(lambda: server.close_codes[:1] == [1000], timeout=5)
        assert wait_until(lambda: _texts(server.conversation(1))[-2:] == ["turn on the lights", "Lights on."],
                          timeout=5), _texts(server.conversation(1))
    assert wait_until(lambda: sum(r.samples for r in server.audio_records) >= mic.samples, timeout=5)
    records = server.audio_records
    stats = client.stats
    close_bounded(client)
    # the scenario: the switch was forced, the turn was answered after it (and, "before", it ended
    # well before; "after": its end is what the switch waited for, within a frame or two)
    assert rollover.forced and t_roll < t_created
    assert t_stopped < t_roll or speech_ends == "after"
    # answered exactly once, by the old session (the user's audio is there), completely
    assert done.status == "completed"
    assert len(timeline.of("response.done")) == 1
    assert [e["type"] for e in server.sent].count("response.created") == 1
    assert _texts(server.conversation(0))[-2:] == ["turn on the lights", "Lights on."]
    assert "response.create" not in [e["type"] for e in server.received]
    # every microphone sample arrived exactly once, across the two sessions, in order
    assert len(records) == 2 and all(r.samples > 0 for r in records)
    assert sum(r.samples for r in records) == mic.samples
    assert hashlib.sha256(b"".join(r.audio().astype("<i2").tobytes() for r in records)).hexdigest() \
        == mic.hash.hexdigest()
    # the provider's limit was never hit
    expired = [e for e in server.sent if e["type"] == "error" and e["error"]["code"] == "session_expired"]
    assert not expired and stats.sessions_expired == 0 and stats.reconnects == 0
    record(f"rollover forced with a turn in flight (speech ends {speech_ends} the forced point)",
           "the old session answered the turn once, then ended; the new one holds turn and answer")


def test_an_old_session_answer_still_streaming_at_its_limit_is_cancelled_not_expired(server):
    """A switch forced mid-answer, the answer longer than what is left of the old session: it is
    cancelled just before the limit (response.done says cancelled), the old session closed 1000,
    and the provider never ends it with session_expired."""
    _configure(server, realtime=True, session_duration_s=6.0,
               responder=lambda turn: ("A very long answer.", np.full(10 * 24000, 300, np.int16)))
    client, timeline = open_client(server.url, session=rtedge.SessionConfig(turn_detection=None),
                                   ping_interval=0.2, ping_timeout=0.5,
                                   rollover_timing=RolloverTiming(margin_s=3.0, force_s=2.0))
    server.session_duration_s = 3600.0  # (the next session)
    assert client._deadline is not None
    assert wait_until(lambda: time.time() >= client._deadline - 3.8, timeout=5)
    client.send_text("Talk")
    _, rollover = timeline.wait("rtedge.session_rollover", timeout=10)
    done = client.wait_for("response.done", timeout=10)
    assert wait_until(lambda: server.close_codes[:1] == [1000], timeout=5)
    stats = client.stats
    close_bounded(client)
    assert rollover.forced and done.status == "cancelled"
    assert "response.cancel" in [e["type"] for e in server.received]
    expired = [e for e in server.sent if e["type"] == "error" and e["error"]["code"] == "session_expired"]
    assert not expired and stats.sessions_expired == 0 and stats.reconnects == 0
    record("rollover: old session's answer streaming at its limit",
           "cancelled just before the limit, closed 1000, no session_expired")


def test_the_next_sessions_limit_runs_from_its_creation_not_from_the_switch(server):
    """The next session is created when the rollover starts and may wait long for the switch (here a
    long answer holds it until the forced point): its deadline, from a limit without ``expires_at``,
    counts from its creation, or the provider would end it before the client expects."""
    _configure(server, realtime=True, announce_expiry=False,
               responder=lambda turn: ("A long answer.", np.full(10 * 24000, 300, np.int16)))
    client, timeline = open_client(server.url, session=rtedge.SessionConfig(turn_detection=None),
                                   ping_interval=0.2, ping_timeout=2.0, session_limit_s=8.0,
                                   rollover_timing=RolloverTiming(margin_s=7.5, force_s=1.0))
    client.send_text("Talk")
    client.wait_for("response.created", timeout=5)
    assert wait_until(lambda: server.connection_count == 2, timeout=5)
    created = time.time()  # (just after the next session's session.created)
    t_roll, rollover = timeline.wait("rtedge.session_rollover", timeout=10)
    deadline = client._deadline
    close_bounded(client)
    assert rollover.forced and time.monotonic() - t_roll < 5
    # (from the switch, about 7 s after the creation, it would be about created + 15 s)
    assert deadline is not None and created + 7.0 < deadline < created + 8.5
