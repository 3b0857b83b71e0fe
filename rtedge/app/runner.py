"""Stream a recording through a session and collect what came back (used by ``rtedge run`` and ``demo``).

The input is sent in 20 ms frames, paced at real time by default, followed
by trailing silence so that the server's VAD can end the turn.  The run is
over once the input has ended and every committed turn has its
``response.done`` (a transcription session's turn: its transcript, or its
failure), or with nothing heard after a short grace period, or when
``max_seconds`` runs out.

Owns: streaming a recording as turns and the turn tracker.  Must not: install signal handlers or read
settings.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from ..protocol import events as ev
from ..protocol.usage import Usage
from ..transport.client import Client
from ..audio.wavio import WavWriter
from ..voice._transcription_wire import one_line

FRAME_MS = 20
#: a transcription session's turns kept waiting for their transcript; beyond, the oldest counts as failed
MAX_UNTRANSCRIBED = 64

log = logging.getLogger("rtedge")


@attrs.define(eq=False)
class Turn:
    """One user turn and the response to it."""

    index: int
    ended_at: float  #: monotonic time the user's turn ended (speech stopped or commit sent)
    first_output_at: float | None = None
    response_id: str = ""
    status: str = ""
    transcript: str = ""
    user_transcript: str = ""
    audio_ms: float = 0.0
    usage: Usage = attrs.field(factory=Usage)

    @property
    def latency_ms(self) -> float | None:
        """Milliseconds from the end of the user's turn to the first output of the response."""
        return None if self.first_output_at is None else (self.first_output_at - self.ended_at) * 1000.0


@attrs.define(eq=False)
class RunReport:
    turns: list[Turn] = attrs.field(factory=list)
    input_seconds: float = 0.0
    output_seconds: float = 0.0
    timed_out: bool = False
    input_sent: bool = False  #: every frame of the input (and its trailing silence) was appended
    usage: Usage = attrs.field(factory=Usage)


class TurnTracker:
    """Callbacks (dispatcher thread) that assemble turns, print transcripts and per-turn summaries."""

    def __init__(self, client: Client, writer: WavWriter | None, echo: Callable[[str], None],
                 keep_turns: int | None = None) -> None:
        self.client, self.writer, self.echo = client, writer, echo
        self.report = RunReport()
        self.cond = threading.Condition(threading.RLock())  # guards report.turns, the counters below, detached
        #: turns seen so far; ``report.turns`` keeps only the last ``keep_turns`` (a service runs for months)
        self.turns_started = 0
        self.keep_turns = keep_turns
        self.responses_done = 0
        self.turns_failed = 0  #: turns whose response ended with status ``failed``
        self.pending_turn: Turn | None = None
        #: a transcription session's turns waiting for their transcript, by item id (oldest first)
        self.untranscribed: dict[str, Turn] = {}
        #: the items of turns given up on (MAX_UNTRANSCRIBED): a transcript of one ends no other turn
        self.given_up: collections.deque[str] = collections.deque(maxlen=MAX_UNTRANSCRIBED)
        self.current: Turn | None = None
        self.speaking = False  #: the server's VAD heard speech start and not yet stop
        self.last_change = time.monotonic()  #: when a turn last began, ended or was answered
        self.detached = False  #: after detach(): events are ignored (the writer may be closed)
        self.answers = client.dialect.answers  #: see Dialect.answers
        for name in _TRACKED:
            client.on(name, self._handle)

    def detach(self) -> None:
        """Stop tracking: later events are ignored and the writer is no longer written (it may be closed
        once this returns: a delta being written meanwhile finishes first)."""
        for name in _TRACKED:
            self.client.off(name, self._handle)
        with self.cond:
            self.detached = True

    def mark_turn_end(self, item_id: str = "") -> None:
        """A user turn ended (its audio is committed as item ``item_id``, when known).

        A session that answers has one turn pending its response.  A transcription session has one per
        item awaiting its transcript: the next turn may be committed before the last one's transcript."""
        with self.cond:
            if not self.answers:  # a turn ended without an item id ("") takes the id that comes next
                if item_id not in self.untranscribed:
                    turn = self.untranscribed.pop("", None) if item_id else None
                    self.untranscribed[item_id] = turn or self._new_turn()
                    if len(self.untranscribed) > MAX_UNTRANSCRIBED:  # bounded: a kiosk runs for months
                        oldest = next(iter(self.untranscribed))
                        self.given_up.append(oldest)
                        self._never_transcribed(self.untranscribed.pop(oldest))
                self._newest_untranscribed_pending()
            elif self.pending_turn is None:
                self.pending_turn = self._new_turn()

    def _newest_untranscribed_pending(self) -> None:
        """A transcription session's ``pending_turn``: the newest turn waiting for its transcript."""
        self.pending_turn = next(reversed(self.untranscribed.values()), None)

    def _never_transcribed(self, turn: Turn) -> None:
        log.warning("turn %d: no transcript came while %d later turns ended; counted as failed",
                    turn.index, MAX_UNTRANSCRIBED)
        turn.status = "failed"
        self.turns_failed += 1
        self.responses_done += 1

    def _new_turn(self) -> Turn:
        self.turns_started += 1
        turn = Turn(index=self.turns_started, ended_at=time.monotonic())
        self.report.turns.append(turn)
        if self.keep_turns is not None and len(self.report.turns) > self.keep_turns:
            del self.report.turns[0]
        return turn

    def _handle(self, event: ev.ServerEvent) -> None:
        with self.cond:  # (reentrant) detach() waits for a handler under way; none prints or writes after it
            if not self.detached:
                self._handle_locked(event)

    def _handle_locked(self, event: ev.ServerEvent) -> None:
        if isinstance(event, ev.InputAudioBufferSpeechStarted):
            with self.cond:
                self.speaking, self.last_change = True, time.monotonic()
        elif isinstance(event, ev.InputAudioBufferSpeechStopped | ev.InputAudioBufferCommitted):
            with self.cond:
                self.speaking, self.last_change = False, time.monotonic()
            self.mark_turn_end(event.item_id)
        elif isinstance(event, ev.ResponseCreated):
            with self.cond:
                self.current, self.pending_turn = self.pending_turn, None
                if self.current is not None:
                    self.current.response_id = event.response_id
        elif isinstance(event, ev.ResponseOutputAudioDelta | ev.ResponseOutputTextDelta):
            self._output(event)
        elif isinstance(event, ev.ResponseOutputAudioTranscriptDone | ev.ResponseOutputTextDone):
            text = event.transcript if isinstance(event, ev.ResponseOutputAudioTranscriptDone) else event.text
            self.echo(f"assistant: {one_line(text)}")
            if self.current is not None:
                self.current.transcript = text
        elif isinstance(event, ev.InputAudioTranscriptionCompleted | ev.InputAudioTranscriptionFailed):
            if isinstance(event, ev.InputAudioTranscriptionCompleted):
                self.echo(f"you: {one_line(event.transcript.strip())}")
            else:
                self.echo(one_line(f"you: (transcription failed: {event.error.get('message', '?')})"))
            if not self.answers:
                self._transcribed(event)
        elif isinstance(event, ev.ResponseDone):
            self._done(event)
        elif isinstance(event, ev.Error):
            error = event.error
            self.echo(one_line(f"server error: {error.code or error.type}: {error.message}"))

    def _output(self, event: ev.ResponseOutputAudioDelta | ev.ResponseOutputTextDelta) -> None:
        turn = self.current
        if turn is not None and turn.first_output_at is None:
            turn.first_output_at = time.monotonic()
        if isinstance(event, ev.ResponseOutputAudioDelta):
            fmt = self.client.snapshot.output_format
            samples = event.pcm(fmt)
            if turn is not None:
                turn.audio_ms += 1000.0 * len(samples) / fmt.rate
            self.report.output_seconds += len(samples) / fmt.rate
            if self.writer is not None:
                self.writer.write(samples)

    def _done(self, event: ev.ResponseDone) -> None:
        usage = self.client.state.usage_by_response.get(event.response_id, Usage())
        with self.cond:
            turn = self.current
            if turn is not None:
                turn.status, turn.usage = event.status, usage
                self.turns_failed += event.status == "failed"
                self.echo(format_turn(turn))
            self.current = None
            self.responses_done += 1
            self.last_change = time.monotonic()
            self.cond.notify_all()

    def _transcribed(self, event: ev.InputAudioTranscriptionCompleted
                     | ev.InputAudioTranscriptionFailed) -> None:
        """A transcription session: the transcript is the turn's answer (there is no response); it ends
        the turn of its item, else the oldest turn waiting (a provider whose ids do not match: turns in
        order), but never a turn for the transcript of one given up on."""
        ok = isinstance(event, ev.InputAudioTranscriptionCompleted)
        with self.cond:
            turn = self.untranscribed.pop(event.item_id, None)
            if turn is None and event.item_id in self.given_up:
                self.given_up.remove(event.item_id)
                return  # that turn is already counted (as failed)
            if turn is None and self.untranscribed:
                turn = self.untranscribed.pop(next(iter(self.untranscribed)))
            self._newest_untranscribed_pending()
            if turn is not None:
                turn.status = "completed" if ok else "failed"
                if ok:
                    turn.usage = Usage.from_raw(event.usage)  # type: ignore[union-attr]
                self.turns_failed += turn.status == "failed"
                self.echo(format_turn(turn))
            self.responses_done += 1
            self.last_change = time.monotonic()
            self.cond.notify_all()

    def wait_answered(self, deadline: float, grace: float, settle: float = 0.0,
                      stop: threading.Event | None = None) -> bool:
        """Wait until every turn has its response (in a transcription session: its transcript) (True), or
        the deadline passes or ``stop`` is set (False; True when every turn so far is answered then).
        ``settle``: and no turn began for that long since the last answer (input sent faster than real time:
        the server's VAD may still be reading it, and another turn may follow)."""
        quiet_until = time.monotonic() + grace
        with self.cond:
            while True:
                turns = self.turns_started
                answered = (turns and self.responses_done >= turns and self.current is None
                            and self.pending_turn is None and not self.speaking)
                now = time.monotonic()
                if answered and (now >= self.last_change + settle or now >= deadline):
                    return True  # at the deadline, every turn so far answered: no turn was cut short
                if not turns and now >= quiet_until and self.client.snapshot.input_buffer.value != "speech":
                    return True
                if now >= deadline or self.client.closed or (stop is not None and stop.is_set()):
                    return False
                self.cond.wait(min(0.1, deadline - now))


#: the events a TurnTracker follows
_TRACKED = ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
            "response.created", "response.output_audio.delta", "response.output_text.delta",
            "response.output_audio_transcript.done", "response.output_text.done", "response.done",
            "conversation.item.input_audio_transcription.completed",
            "conversation.item.input_audio_transcription.failed", "error")


def format_turn(turn: Turn) -> str:
    lat = "-" if turn.latency_ms is None else f"{turn.latency_ms:.0f} ms"
    u = turn.usage
    return (f"turn {turn.index}: {turn.status or '?'}, latency {lat}, {turn.audio_ms / 1000:.1f} s audio, "
            f"tokens in {u.input_tokens} / out {u.output_tokens}")


def stream_wav(
    client: Client,
    samples: np.ndarray,
    rate: int,
    *,
    output: WavWriter | None = None,
    realtime: bool = True,
    manual: bool = False,
    max_seconds: float = 120.0,
    trailing_silence_ms: int = 800,
    echo: Callable[[str], Any] = print,
    stop: threading.Event | None = None,
) -> RunReport:
    """Send ``samples`` (int16 mono at ``rate``) as a user turn and wait for the answer(s).

    Args:
        manual: commit and ask for a response after the input (for sessions without server VAD).
        max_seconds: bound on the whole run; the report says ``timed_out`` when it was hit.
    """
    stop = stop or threading.Event()
    tracker = TurnTracker(client, output, echo)
    deadline = time.monotonic() + max_seconds
    frame = rate * FRAME_MS // 1000
    padded = np.concatenate([samples, np.zeros(rate * trailing_silence_ms // 1000, dtype=np.int16)])
    start, sent = time.monotonic(), 0
    for i, offset in enumerate(range(0, len(padded), frame)):
        if stop.is_set() or time.monotonic() >= deadline or client.closed:
            break
        client.append_audio(padded[offset:offset + frame], rate)
        sent = offset + frame
        tracker.report.input_sent = sent >= len(padded)
        if realtime:
            stop.wait(max(0.0, start + (i + 1) * FRAME_MS / 1000 - time.monotonic()))
        else:  # as fast as the link takes it, never faster than the send queue drains
            client.wait_sent(max_queued_ms=500, timeout=max(0.0, deadline - time.monotonic()))
    tracker.report.input_seconds = min(sent, len(samples)) / rate
    if manual and not client.closed and not stop.is_set():
        tracker.mark_turn_end()
        client.commit()
        if tracker.answers:  # (a transcription session: the commit is the whole turn)
            client.create_response()
    client.wait_sent(0, timeout=max(0.0, deadline - time.monotonic()))
    answered = tracker.wait_answered(deadline, grace=1.5, settle=0.0 if realtime else 1.0, stop=stop)
    tracker.detach()  # nothing printed or written after this returns (the caller closes the writer)
    tracker.report.timed_out = not answered
    tracker.report.usage = client.usage
    return tracker.report
