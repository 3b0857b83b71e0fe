"""One transcription in progress: the audio path (resampled to 16 kHz, the VAD gate, ~100 ms appends), the
generations on the wire, the transcripts coming back, and a reconnect mid-utterance.

Everything here runs on the caller's thread inside :meth:`rtedge.voice.transcriber.Transcriber.transcribe`
(see that module for the theory of operation); the source's thread only queues frames in the
:class:`_Backlog`.  Events are read from the client's own inbox (``client.events()``); the backlog's
condition only learns that one is there, so that one wait covers both.

Owns: the run's state (:class:`_Run`) and the frame backlog.  Must not: call user code on another thread,
keep a copy of the client's events, or block without a bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from ._transcription_wire import RATE, TranscriberStats, Utterance
from ..audio.devices import AudioSource
from ..audio.vad import VadGate
from ..errors import AudioError, ConnectionClosed, DeadlineExceeded, HandshakeError, ServerError, TransportError
from ..protocol import events as ev
from ..protocol.usage import Usage
from ..transport.backoff import FATAL_HTTP_STATUSES
from ..transport.client import Client

if TYPE_CHECKING:
    from .transcriber import Transcriber

log = logging.getLogger("rtedge")


class _Backlog:
    """Frames from the source thread for the caller's thread, and the news that events wait in the
    client's inbox: one condition, so the caller waits for either at once.

    Not an event queue: the events stay in the client's inbox (:class:`~rtedge.transport._inbox.EventLog`,
    bounded and counted there), which wakes no other condition than its own.  :meth:`ring` is called
    from ``rtedge-dispatch``, which runs a callback only after the event is in that inbox, so a ring is
    never ahead of its event.
    """

    def __init__(self, max_frames: int, block: bool, stats: TranscriberStats) -> None:
        self.cond = threading.Condition()
        self.frames: deque[np.ndarray] = deque()
        self.rung = True  # events came into the client's inbox since the caller read it (at first: maybe)
        self.ended = False  # the source reached its end, or stop() was called
        self.stopped = False  # stop() was called
        self.closed = False  # the consumer is gone: producers stop waiting
        self._max, self._block, self._stats = max_frames, block, stats
        self._warned = False

    def put_frame(self, frame: np.ndarray) -> None:
        with self.cond:
            if self._block:  # a file: pause the source until the consumer catches up
                self.cond.wait_for(lambda: len(self.frames) < self._max or self.closed)
            elif len(self.frames) >= self._max:  # live audio: never block the device
                self._stats.frames_dropped += 1
                if not self._warned:
                    self._warned = True
                    log.warning("transcriber: backlog full, dropping microphone audio (the server is slow)")
                return
            if not self.closed:
                self.frames.append(frame)
                self.cond.notify_all()

    def ring(self) -> None:
        """An event is in the client's inbox (``rtedge-dispatch``; never blocks for long)."""
        with self.cond:
            self.rung = True
            self.cond.notify_all()

    def end(self) -> None:
        """The source ended (its file or pipe ran out): what is under way is still finished."""
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def stop(self) -> None:
        """The caller asked to stop (:meth:`Transcriber.stop`): as :meth:`end`, and no reconnect waits on."""
        with self.cond:
            self.ended = self.stopped = True
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


@attrs.define
class _Generation:
    """The utterance the server is transcribing now."""

    start: int  # first voiced sample (16 kHz samples from the start of the source)
    end: int | None = None  # last voiced sample, once the speech ended
    final_sent_at: float | None = None  # monotonic time of the final commit
    deltas: list[str] = attrs.field(factory=list)
    #: audio sent so far, to send again on a new connection (None once longer than max_retry_audio_s)
    audio: list[np.ndarray] | None = attrs.field(factory=list)
    audio_samples: int = 0
    sent_samples: int = 0  # 16 kHz samples appended on the current connection


def _ceil_frames(ms: int, frame_ms: int) -> int:
    return -(-ms // frame_ms)


class _Run:
    """The state of one :meth:`Transcriber.transcribe` (caller's thread only)."""

    def __init__(self, owner: Transcriber, client: Client, gate: VadGate | None, resampler: Any) -> None:
        self.t, self.client, self.gate, self.resampler = owner, client, gate, resampler
        self.pos = 0  # 16 kHz samples fed to the gate
        self.pending: Any = None  # resampled samples short of a gate frame
        self.queue: deque[np.ndarray] = deque()  # gate frames waiting (while a final commit awaits done)
        self.out: list[np.ndarray] = []  # gated audio not yet appended
        self.out_samples = 0
        self.gen: _Generation | None = None  # the generation the server runs now
        self.finalizing = False  # final commit sent; reading paused until done
        self.speech = False  # the gate (or vad=None) is in an utterance
        self.last_speech = 0  # 16 kHz sample position of the end of the last voiced frame of the speech
        self.chunk = RATE * owner.chunk_ms // 1000
        if gate is not None:
            s = gate.settings
            self.frame = gate.frame_samples
            self.onset = max(1, _ceil_frames(s.min_speech_ms, s.frame_ms)) * self.frame
        else:
            self.frame = RATE * 20 // 1000
            self.onset = 0

    # -- the loop ------------------------------------------------------------------------------------------
    def loop(self, backlog: _Backlog, source: AudioSource) -> Iterator[Utterance]:
        while True:
            frames: list[np.ndarray] = []
            with backlog.cond:
                if not self.queue or self.finalizing:
                    backlog.cond.wait_for(lambda: backlog.rung or (not self.finalizing and (
                        bool(backlog.frames) or backlog.ended)) or source.failed.is_set(), self._wait_time())
                backlog.rung = False  # the inbox is read below, every round (what came before the ring too)
                if not self.finalizing and not self.queue:
                    frames = list(backlog.frames)
                    backlog.frames.clear()
                    backlog.cond.notify_all()  # a paused file source may go on
                ended = backlog.ended and not backlog.frames
            events = 0
            client = self.client
            for event in client.events(timeout=0):
                events += 1
                yield from self._on_event(event, backlog)
                if client is not self.client:  # reconnected: the old connection's late events are moot
                    break
            if source.failed.is_set():
                raise source.error or AudioError(f"{source!r} failed")
            for frame in frames:
                self._split(frame)
            while self.queue and not self.finalizing:  # one utterance at a time: stop at a final commit
                self._gate_frame(self.queue.popleft())
            if self.finalizing and self.gen is not None and self.gen.final_sent_at is not None \
                    and time.monotonic() - self.gen.final_sent_at > self.t.done_timeout:
                raise DeadlineExceeded(f"no transcription.done within {self.t.done_timeout:g} s after the end "
                                       "of an utterance (is the server overloaded, or the model wrong?)")
            if ended and not self.finalizing and not self.queue and not events:
                if self.speech or self.gen is not None:
                    self._end_speech()
                    continue
                return

    def _wait_time(self) -> float:
        if self.finalizing and self.gen is not None and self.gen.final_sent_at is not None:
            return max(0.0, self.gen.final_sent_at + self.t.done_timeout - time.monotonic()) + 0.01
        return 1.0

    # -- audio ---------------------------------------------------------------------------------------------
    def _split(self, frame: np.ndarray) -> None:
        """One source frame: resampled to 16 kHz and cut into gate frames (queued)."""
        x = self.resampler.process(frame) if self.resampler is not None else frame
        if self.pending is not None and len(self.pending):
            x = np.concatenate([self.pending, x])
        n = len(x) // self.frame * self.frame
        self.pending = x[n:]
        self.queue.extend(x[k:k + self.frame] for k in range(0, n, self.frame))

    def _gate_frame(self, frame: np.ndarray) -> None:
        self.pos += len(frame)
        if self.gate is None:
            if not self.speech:
                self.speech = True
                self._start(self.pos - len(frame))
            self.last_speech = self.pos
            self._send_audio([frame])
            return
        result = self.gate.process(frame)
        if result.speech_started:
            self.speech = True
            self._start(self.pos - self.onset)
        if result.is_speech and self.gate.unvoiced_frames == 0:  # not a hangover frame
            self.last_speech = self.pos
        if result.frames:
            self._send_audio(list(result.frames))
        if result.speech_ended:
            self._end_speech()
        self.t.stats.audio_not_sent_s = self.gate.stats.seconds_not_sent

    def _start(self, start: int) -> _Generation:
        """Speech began at sample ``start``: start a generation."""
        gen = self.gen = _Generation(start=max(0, start))
        if self.t._wire.start_commit:
            self.client.send(ev.InputAudioBufferCommit())
        return gen

    def _send_audio(self, frames: list[np.ndarray]) -> None:
        if self.gen is None:
            return
        self.out.extend(frames)
        self.out_samples += sum(len(f) for f in frames)
        if self.out_samples >= self.chunk:
            self._flush_audio()

    def _flush_audio(self) -> None:
        if not self.out:
            return
        data = np.concatenate(self.out)
        self.out, self.out_samples = [], 0
        self._append(data)

    def _append(self, data: np.ndarray) -> None:
        gen = self.gen
        if gen is not None:
            gen.sent_samples += len(data)
        if gen is not None and gen.audio is not None:  # kept to send again after a reconnect
            gen.audio.append(data)
            gen.audio_samples += len(data)
            if gen.audio_samples > self.t.max_retry_audio_s * RATE:
                gen.audio = None
        if not self.client.wait_sent(max_queued_ms=500.0, timeout=self.t.done_timeout):
            raise DeadlineExceeded(f"the connection did not take the audio within {self.t.done_timeout:g} s")
        self.client.append_audio(data, rate=RATE)
        self.t.stats.audio_sent_s += len(data) / RATE

    def _end_speech(self) -> None:
        """The speech ended (or the source did): send the final commit."""
        self.speech = False
        gen = self.gen
        if gen is None:
            return
        if self.pending is not None and len(self.pending) and self.gate is None:
            self.out.append(self.pending)  # vad=None: the file's last partial frame belongs to it
            self.pending = None
        self._flush_audio()
        gen.end = max(gen.start, self.last_speech)  # stopped mid-speech too: no hangover to take off
        self._send_final()

    def _send_final(self) -> None:
        gen = self.gen
        assert gen is not None
        short = self.t._wire.min_commit_ms * RATE // 1000 - gen.sent_samples
        if short > 0:  # the server refuses a commit of less (OpenAI: 100 ms); silence makes it up
            self._append(np.zeros(short, dtype=np.int16))
        gen.final_sent_at = time.monotonic()
        self.finalizing = True
        self.client.send(self.t._wire.final())

    # -- events --------------------------------------------------------------------------------------------
    def _on_event(self, event: ev.ServerEvent, backlog: _Backlog) -> Iterator[Utterance]:
        wire = self.t._wire
        delta, done, failed = wire.delta(event), wire.done(event), wire.failed(event)
        if delta is not None:
            if self.gen is not None:
                self.gen.deltas.append(delta)
                if self.t.on_delta is not None:
                    self.t.on_delta("".join(self.gen.deltas).strip())
        elif done is not None:
            yield from self._on_done(*done)
        elif failed is not None:
            yield from self._on_done("", None, failed)
        elif isinstance(event, ev.Error):
            e = event.error
            raise ServerError(e.message, code=e.code, event_id=e.event_id, type=e.type, param=e.param)
        elif isinstance(event, ev.ConnectionLost | ev.GaveUp):
            if self.t.reconnect is None:
                error = self.client.fatal_error
                if isinstance(error, ServerError):
                    raise error
                if isinstance(event, ev.GaveUp):
                    detail = event.cause
                else:  # no close code when the socket broke or the stream ended
                    detail = f"close {event.code} {event.reason}" if event.code is not None else event.reason
                raise ConnectionClosed(f"the transcription connection was lost ({detail.strip()})")
            self._reconnect(backlog, str(event.cause if isinstance(event, ev.GaveUp) else event.reason))

    def _on_done(self, text: str, raw_usage: Any, failed: ServerError | None = None) -> Iterator[Utterance]:
        gen = self.gen
        if gen is None:
            log.warning("transcriber: a transcript with no utterance in progress (ignored)")
            return
        truncated = gen.end is None  # the server stopped before the speech did
        end = gen.end if gen.end is not None else self.pos
        usage = Usage.from_raw(raw_usage)
        text = (text or "".join(gen.deltas)).strip()
        utt = Utterance(text=text, start_s=gen.start / RATE, end_s=end / RATE, usage=usage, truncated=truncated,
                        error=None if failed is None else failed.message)
        self.gen, self.finalizing = None, False
        self.t._usage = self.t._usage + usage
        if failed is None:
            self.t.stats.utterances += 1
        else:
            self.t.stats.failed_utterances += 1
            log.warning("transcriber: the server could not transcribe %.2f-%.2f s: %s", utt.start_s, utt.end_s, failed)
        if truncated and self.speech:
            self._flush_audio()  # audio sent until now belongs to the finished generation's queue
            self._start(self.pos)
        if self.t.on_utterance is not None:
            self.t.on_utterance(utt)
        yield utt

    # -- reconnecting --------------------------------------------------------------------------------------
    def _reconnect(self, backlog: _Backlog, cause: str) -> None:
        """A fresh connection (the old one's queued events die with it), then the utterance in flight again."""
        backoff = self.t.reconnect
        assert backoff is not None
        self.t.close()
        attempt = 0
        while True:
            attempt += 1
            if backoff.exhausted(attempt):
                raise ConnectionClosed(f"gave up reconnecting after {attempt - 1} attempts; last: {cause}")
            delay = backoff.delay(attempt)
            log.warning("transcriber: connection lost (%s); reconnecting in %.2f s (attempt %d)",
                        cause or "no reason", delay, attempt)
            with backlog.cond:
                if backlog.cond.wait_for(lambda: backlog.stopped or backlog.closed, delay):  # (not at a
                    # file's end: its last utterance is still to be transcribed on the new connection)
                    raise ConnectionClosed(f"stopped while reconnecting; last: {cause}")
            try:
                self.t.connect()
                break
            except HandshakeError as exc:
                if exc.status_code in FATAL_HTTP_STATUSES:
                    raise
                cause = str(exc)
            except (TransportError, DeadlineExceeded) as exc:
                cause = str(exc)
        assert self.t.client is not None
        self.client = self.t.client
        self.t.stats.reconnects += 1
        gen = self.gen
        self.gen, self.finalizing = None, False
        if gen is None:
            if self.speech:
                self._start(self.pos)
            return
        if gen.audio is None:
            self.t.stats.lost_utterances += 1
            log.warning("transcriber: the utterance from %.2f s was too long to send again; lost", gen.start / RATE)
            if self.speech:
                self._start(self.pos)
            return
        self.t.stats.retried_utterances += 1
        self._start(gen.start).end = gen.end
        for data in gen.audio:
            self._append(data)
        if gen.end is not None:
            self._send_final()
