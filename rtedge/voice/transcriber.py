"""Speech to text over a realtime transcription endpoint (vLLM, OpenAI), utterance by utterance.

Theory of operation
-------------------
:class:`Transcriber` reads an audio source (a microphone, a WAV file, a pipe),
resamples it to the endpoint's 16 kHz, and runs the local VAD gate
(:class:`~rtedge.audio.vad.VadGate`) over it.  Each stretch of speech the gate
finds becomes one *utterance* on the wire::

    speech_started  ->  input_audio_buffer.commit           (start a generation)
    gated frames    ->  input_audio_buffer.append ...       (batched, ~100 ms each)
    speech_ended    ->  input_audio_buffer.commit final     (end of the audio)
                    <-  transcription.delta ...  transcription.done {text, usage}

vLLM runs one generation at a time per socket: a start commit while one runs
is ignored, and appends between the final commit and ``transcription.done``
are dropped.  So after a final commit the transcriber stops reading the source
until ``done`` arrives; the audio meanwhile waits in a bounded backlog (a file
source is simply paused; a microphone's frames are kept, up to
``max_backlog_s``, then dropped and counted).  No audio is lost to the
protocol and no utterance runs into the next.

OpenAI realtime transcription sessions (``provider="openai"``: the
``openai-transcription`` dialect, ``?intent=transcription``) carry the same
utterances with their own spelling: no start commit, appends, then a plain
``input_audio_buffer.commit`` (padded to the 100 ms the server requires),
answered by ``conversation.item.input_audio_transcription.delta`` events and
one ``.completed`` (or ``.failed``, raised as a ServerError).  Server VAD is
turned off (``turn_detection: null``): the local gate decides the utterances,
and the transcriber still waits for each transcript before sending the next
utterance, so results come in order and one at a time.

A ``transcription.done`` that arrives while the utterance is still streaming
(the model hit its token limit) closes that utterance and starts a new one for
the rest of the speech.

Everything runs on the caller's thread (inside :meth:`Transcriber.transcribe`):
the source's thread only queues frames and the client's receiver only queues
events, both into one condition-guarded inbox, so callbacks (``on_delta``,
``on_utterance``) also run on the caller's thread.  Every wait is bounded
(``done_timeout``); server ``error`` events raise :class:`~rtedge.errors.ServerError`
with the server's code; the source is stopped and an owned connection closed
(its threads joined) when the iteration ends for any reason.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import (AudioError, ConfigError, ConnectionClosed, DeadlineExceeded, HandshakeError, ServerError,
                     TransportError)
from ..protocol import events as ev
from ..protocol.usage import Usage

if TYPE_CHECKING:
    import numpy as np

    from ..audio.devices import AudioSource
    from ..audio.vad import VadGate, VadSettings
    from ..transport.backoff import Backoff
    from ..transport.client import Client

__all__ = ["Transcriber", "TranscriberStats", "Utterance"]

log = logging.getLogger("rtedge")

#: the endpoint's input rate (vLLM: PCM16 mono at 16 kHz)
RATE = 16000
_DEFAULT_VAD: Any = "default"
#: provider names the Transcriber accepts -> the dialect it speaks
_DIALECT_OF = {"vllm": "vllm", "openai": "openai-transcription", "openai-transcription": "openai-transcription"}


class _Wire:
    """How one utterance goes on the wire (vLLM's spelling; :class:`_OpenAIWire` overrides it)."""

    #: a commit starts a generation (vLLM) / commits need this many ms of audio (OpenAI)
    start_commit, min_commit_ms = True, 0

    def final(self) -> ev.ClientEvent:
        return ev.InputAudioBufferCommit(final=True)

    def delta(self, event: ev.ServerEvent) -> str | None:
        return event.delta if isinstance(event, ev.TranscriptionDelta) else None

    def done(self, event: ev.ServerEvent) -> tuple[str, Any] | None:
        return (event.text, event.usage) if isinstance(event, ev.TranscriptionDone) else None

    def failed(self, event: ev.ServerEvent) -> ServerError | None:
        return None


class _OpenAIWire(_Wire):
    """OpenAI transcription sessions: appends, a plain commit, ``...input_audio_transcription.*``."""

    start_commit, min_commit_ms = False, 100

    def final(self) -> ev.ClientEvent:
        return ev.InputAudioBufferCommit()

    def delta(self, event: ev.ServerEvent) -> str | None:
        return event.delta if isinstance(event, ev.InputAudioTranscriptionDelta) else None

    def done(self, event: ev.ServerEvent) -> tuple[str, Any] | None:
        if isinstance(event, ev.InputAudioTranscriptionCompleted):
            return event.transcript, event.usage
        return None

    def failed(self, event: ev.ServerEvent) -> ServerError | None:
        if not isinstance(event, ev.InputAudioTranscriptionFailed):
            return None
        err = event.error
        return ServerError(str(err.get("message") or "transcription failed"), code=err.get("code"),
                           type=err.get("type"), param=err.get("param"))


@attrs.frozen(kw_only=True)
class Utterance:
    """One transcribed stretch of speech.

    Attributes:
        text: the server's transcript (``transcription.done`` ``text``), stripped.
        start_s: where the speech starts, in seconds from the start of the source
            (the gate's first voiced frame; the audio sent begins ``pre_roll_ms`` earlier).
        end_s: where the speech ends (the gate's last voiced frame, or the end of the source).
        usage: the server's token counts for this utterance.
        truncated: the server ended the transcription before the speech ended (token limit);
            the rest of the speech is the next utterance, and audio the server had queued
            when it stopped is lost (vLLM drops it).
    """

    text: str
    start_s: float
    end_s: float
    usage: Usage = attrs.field(factory=Usage)
    truncated: bool = False

    def __str__(self) -> str:
        return f"[{self.start_s:.2f}-{self.end_s:.2f}] {self.text}"


@attrs.define
class TranscriberStats:
    """Counters over the transcriber's life (read them any time).

    Attributes:
        utterances: utterances transcribed.
        audio_sent_s: seconds of audio sent.
        audio_not_sent_s: seconds of audio the VAD gate kept off the wire (silence).
        frames_dropped: source frames dropped because the backlog was full (a live source only).
        reconnects: new connections after a lost one (only with ``reconnect=``).
        retried_utterances: utterances sent again on a new connection after an outage.
        lost_utterances: utterances lost to an outage (longer than ``max_retry_audio_s``).
    """

    utterances: int = 0
    audio_sent_s: float = 0.0
    audio_not_sent_s: float = 0.0
    frames_dropped: int = 0
    reconnects: int = 0
    retried_utterances: int = 0
    lost_utterances: int = 0


class _Inbox:
    """Frames from the source thread and events from the receiver, for the caller's thread."""

    def __init__(self, max_frames: int, block: bool, stats: TranscriberStats) -> None:
        self.cond = threading.Condition()
        self.frames: deque[np.ndarray] = deque()
        self.events: deque[tuple[Client, ev.ServerEvent]] = deque()
        self.ended = False  # the source reached its end
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

    def put_event(self, client: Client, event: ev.ServerEvent) -> None:
        with self.cond:
            self.events.append((client, event))
            self.cond.notify_all()

    def end(self) -> None:
        with self.cond:
            self.ended = True
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


class Transcriber:
    """Streaming speech to text, one utterance per stretch of speech (vLLM, or OpenAI transcription sessions).

    Use it as a context manager to keep one connection for several sources, or call
    :meth:`transcribe` / :meth:`transcribe_file` directly (each then opens and closes its own)::

        with rtedge.Transcriber(url="ws://gpu:8000/v1/realtime", model=MODEL) as tr:
            for utt in tr.transcribe("question.wav"):
                print(utt)                      # [0.42-1.87] turn on the kitchen lights

        tr = rtedge.Transcriber("openai", model="gpt-4o-transcribe")   # OPENAI_API_KEY
        tr.transcribe_file("question.wav")

    Args:
        provider: ``"vllm"`` or ``"openai"`` (an OpenAI realtime transcription session,
            ``?intent=transcription``).
        url: vLLM: the endpoint, ``ws://HOST:PORT/v1/realtime`` (a bare ``ws://HOST:PORT`` gets the
            path).  OpenAI: default ``wss://api.openai.com/v1/realtime``.
        model: vLLM: the model name the server serves (sent in ``session.update``); None asks the
            server (``GET /v1/models``) at each connection and takes the model it serves.  OpenAI: the
            transcription model (default ``gpt-4o-mini-transcribe``).
        api_key: for a server started with ``--api-key`` (default: ``VLLM_API_KEY``; OpenAI:
            ``OPENAI_API_KEY``).
        vad: :class:`~rtedge.audio.vad.VadSettings` for the local gate that splits utterances;
            None sends the whole source as one utterance (files only: a microphone never ends).
        on_utterance: ``fn(Utterance)`` for each result, on the iterating thread.
        on_delta: ``fn(text_so_far)`` as transcript deltas arrive, on the iterating thread.
        done_timeout: seconds to wait for an utterance's transcript after its final commit.
        chunk_ms: audio per append (vLLM's example sends 128 ms).
        max_backlog_s: audio a live source may queue while the server transcribes (then dropped).
        reconnect: None (default): a lost connection raises :class:`~rtedge.errors.ConnectionClosed`.
            A :class:`~rtedge.transport.backoff.Backoff`: open a new connection after that policy's
            delays and send the utterance in flight again from its start (its audio is kept, up to
            ``max_retry_audio_s``), so an outage loses no speech; a file source waits meanwhile.
        max_retry_audio_s: longest utterance kept for sending again after an outage.
        **connect_options: passed to :func:`rtedge.connect` (``connect_timeout``, ``ssl_context``,
            ``ca_certs``, ``headers``...); the client's own reconnect loop stays off (see ``reconnect``).
            OpenAI: a ``session=SessionConfig(...)`` (language, noise reduction, input format) is
            sent with ``turn_detection`` forced off.

    Raises:
        ConfigError: a provider other than vLLM or OpenAI, or invalid settings.
    """

    def __init__(
        self,
        provider: str = "vllm",
        *,
        url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        vad: VadSettings | None = _DEFAULT_VAD,
        on_utterance: Callable[[Utterance], None] | None = None,
        on_delta: Callable[[str], None] | None = None,
        done_timeout: float = 30.0,
        chunk_ms: int = 100,
        max_backlog_s: float = 30.0,
        reconnect: Backoff | None = None,
        max_retry_audio_s: float = 60.0,
        **connect_options: Any,
    ) -> None:
        from ..audio.vad import VadSettings
        from ..protocol.dialects import get_dialect

        if provider not in _DIALECT_OF:
            raise ConfigError(f"Transcriber speaks realtime transcription sessions: provider 'vllm' or "
                              f"'openai', not {provider!r}")
        self._dialect_name = _DIALECT_OF[provider]
        dialect = get_dialect(self._dialect_name)
        dialect.url(model, url)  # a missing/bad url fails here, not at the first utterance
        if not dialect.needs_served_model(model, None):
            dialect.initial_session(model, None)  # so does a bad model (none at all: asked of the server)
        self._wire = _Wire() if self._dialect_name == "vllm" else _OpenAIWire()
        if self._dialect_name != "vllm":  # the local gate decides the utterances, not server VAD
            from ..protocol.config import SessionConfig

            asked = connect_options.pop("session", None)
            off = SessionConfig(turn_detection=None)
            connect_options["session"] = off if asked is None else asked.merged(off)
        if done_timeout <= 0 or chunk_ms <= 0 or max_backlog_s <= 0:
            raise ConfigError("done_timeout, chunk_ms and max_backlog_s must be positive")
        self.provider, self.url, self.model = provider, url, model
        self.vad: VadSettings | None = VadSettings() if vad is _DEFAULT_VAD else vad
        self.on_utterance, self.on_delta = on_utterance, on_delta
        self.done_timeout, self.chunk_ms, self.max_backlog_s = float(done_timeout), int(chunk_ms), max_backlog_s
        self._api_key = api_key  # never logged
        self.reconnect, self.max_retry_audio_s = reconnect, float(max_retry_audio_s)
        self._connect_options = {**connect_options, "reconnect": None}
        self.client: Client | None = None
        self.stats = TranscriberStats()
        self._usage = Usage()
        self._inbox: _Inbox | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "connected" if self.client is not None and not self.client.closed else "idle"
        return f"<rtedge.Transcriber {self.provider} model={self.model!r} {state}>"

    # ------------------------------------------------------------------------------------------ connection
    def connect(self) -> Transcriber:
        """Open the connection now (otherwise :meth:`transcribe` opens one for itself).

        Raises:
            HandshakeError, TransportError, DeadlineExceeded, ConfigError: as :func:`rtedge.connect`.
        """
        from ..transport.client import connect

        if self.client is not None and not self.client.closed:
            return self
        client = connect(self._dialect_name, url=self.url, model=self.model, api_key=self._api_key,
                         **self._connect_options)
        client._add_event_hook(functools.partial(self._on_event, client))
        self.client = client
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Close the connection (threads joined; idempotent).  Use :meth:`stop` to end a transcription."""
        client, self.client = self.client, None
        if client is not None:
            client.close(timeout)

    def __enter__(self) -> Transcriber:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """End the current :meth:`transcribe` as if the source ended (from any thread, a signal
        handler included): the utterance in progress is finished and transcribed."""
        inbox = self._inbox
        if inbox is not None:
            inbox.end()

    @property
    def usage(self) -> Usage:
        """Token totals over every utterance so far."""
        return self._usage

    def _on_event(self, client: Client, event: ev.ServerEvent) -> None:
        """Receiver thread: hand the event to the running transcription (never blocks)."""
        inbox = self._inbox
        if inbox is not None:
            inbox.put_event(client, event)

    # ------------------------------------------------------------------------------------------ transcribe
    def transcribe_file(self, path: str | Path) -> list[Utterance]:
        """Every utterance of a 16-bit PCM WAV file (any rate), read as fast as the server takes it."""
        return list(self.transcribe(path))

    def transcribe(self, source: AudioSource | str | Path) -> Iterator[Utterance]:
        """Transcribe ``source`` utterance by utterance, as each ``transcription.done`` arrives.

        Args:
            source: an :class:`~rtedge.audio.devices.AudioSource` (``Microphone``, ``WavSource``...,
                not yet started; it is started and stopped here) or the path of a WAV file
                (read faster than real time).  A live source runs until :meth:`stop` or until
                the caller stops iterating.

        Raises:
            ServerError: the server sent an ``error`` (``code``: ``model_not_found``,
                ``invalid_audio``...).
            DeadlineExceeded: no ``transcription.done`` within ``done_timeout`` of an utterance's end.
            ConnectionClosed: the connection was lost (and no ``reconnect=`` policy was given).
            AudioError: the file cannot be read, or the source failed.
        """
        from ..audio.devices import WavSource

        if isinstance(source, str | Path):
            source = WavSource(source, rate=RATE, realtime=False)
        owned = self.client is None or self.client.closed
        if owned:
            self.connect()
        try:
            yield from self._run(source)
        finally:
            if owned:
                self.close()

    def _run(self, source: AudioSource) -> Iterator[Utterance]:
        from ..audio.codec import Resampler
        from ..audio.vad import VadGate

        client = self.client
        assert client is not None
        block = getattr(source, "realtime", True) is False
        frame_ms = source.frame_ms
        max_frames = 50 if block else max(1, int(self.max_backlog_s * 1000 / frame_ms))
        inbox = _Inbox(max_frames, block, self.stats)
        run = _Run(self, client, VadGate(RATE, self.vad) if self.vad is not None else None,
                   Resampler(source.rate, RATE) if source.rate != RATE else None)
        with self._lock:
            if self._inbox is not None:
                raise ConfigError("this Transcriber is already transcribing a source")
            self._inbox = inbox
        # events that arrived before the hook saw them (say model_not_found right after connect)
        for event in client.events(timeout=0):
            if not any(e is event for _, e in inbox.events):
                inbox.put_event(client, event)

        def on_frame(frame: np.ndarray) -> None:
            if inbox.ended or inbox.closed:
                return
            if source.finished.is_set():  # a file/pipe ended: what follows is padding silence
                inbox.end()
                return
            inbox.put_frame(frame)

        try:
            source.start(on_frame)
            yield from run.loop(inbox, source)
        finally:
            inbox.close()
            source.stop()
            with self._lock:
                self._inbox = None
            if self.client is not None:
                for _ in self.client.events(timeout=0):  # seen through the hook already
                    pass
            if run.gen is not None:  # stopped mid-utterance: the server's generation would linger
                self.close()


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
        self.last_speech = 0  # 16 kHz sample position of the last frame the gate counted as speech
        self.chunk = RATE * owner.chunk_ms // 1000
        if gate is not None:
            s = gate.settings
            self.frame = gate.frame_samples
            self.onset = max(1, _ceil_frames(s.min_speech_ms, s.frame_ms)) * self.frame
            self.hangover = _ceil_frames(s.hangover_ms, s.frame_ms) * self.frame
        else:
            self.frame = RATE * 20 // 1000
            self.onset = self.hangover = 0

    # -- the loop ------------------------------------------------------------------------------------------
    def loop(self, inbox: _Inbox, source: AudioSource) -> Iterator[Utterance]:
        while True:
            frames: list[np.ndarray] = []
            with inbox.cond:
                if not self.queue or self.finalizing:
                    inbox.cond.wait_for(lambda: bool(inbox.events) or (not self.finalizing and (
                        bool(inbox.frames) or inbox.ended)) or source.failed.is_set(), self._wait_time())
                events = list(inbox.events)
                inbox.events.clear()
                if not self.finalizing and not self.queue:
                    frames = list(inbox.frames)
                    inbox.frames.clear()
                    inbox.cond.notify_all()  # a paused file source may go on
                ended = inbox.ended and not inbox.frames
            for client, event in events:
                if client is self.client:  # not a late event of a connection replaced since
                    yield from self._on_event(event, inbox)
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
        import numpy as np

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
        if result.is_speech:
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
        import numpy as np

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
        gen.end = max(gen.start, self.last_speech - self.hangover)
        self._send_final()

    def _send_final(self) -> None:
        import numpy as np

        gen = self.gen
        assert gen is not None
        short = self.t._wire.min_commit_ms * RATE // 1000 - gen.sent_samples
        if short > 0:  # the server refuses a commit of less (OpenAI: 100 ms); silence makes it up
            self._append(np.zeros(short, dtype=np.int16))
        gen.final_sent_at = time.monotonic()
        self.finalizing = True
        self.client.send(self.t._wire.final())

    # -- events --------------------------------------------------------------------------------------------
    def _on_event(self, event: ev.ServerEvent, inbox: _Inbox) -> Iterator[Utterance]:
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
            raise failed
        elif isinstance(event, ev.Error):
            e = event.error
            raise ServerError(e.message, code=e.code, event_id=e.event_id, type=e.type, param=e.param)
        elif isinstance(event, ev.ConnectionLost | ev.GaveUp):
            if self.t.reconnect is None:
                error = self.client.fatal_error
                if isinstance(error, ServerError):
                    raise error
                detail = event.cause if isinstance(event, ev.GaveUp) else f"close {event.code} {event.reason}"
                raise ConnectionClosed(f"the transcription connection was lost ({detail.strip()})")
            self._reconnect(inbox, str(event.cause if isinstance(event, ev.GaveUp) else event.reason))

    def _on_done(self, text: str, raw_usage: Any) -> Iterator[Utterance]:
        gen = self.gen
        if gen is None:
            log.warning("transcriber: a transcript with no utterance in progress (ignored)")
            return
        truncated = gen.end is None  # the server stopped before the speech did
        end = gen.end if gen.end is not None else self.pos
        usage = Usage.from_raw(raw_usage)
        text = (text or "".join(gen.deltas)).strip()
        utt = Utterance(text=text, start_s=gen.start / RATE, end_s=end / RATE, usage=usage, truncated=truncated)
        self.gen, self.finalizing = None, False
        self.t._usage = self.t._usage + usage
        self.t.stats.utterances += 1
        if truncated and self.speech:
            self._flush_audio()  # audio sent until now belongs to the finished generation's queue
            self._start(self.pos)
        if self.t.on_utterance is not None:
            self.t.on_utterance(utt)
        yield utt

    # -- reconnecting --------------------------------------------------------------------------------------
    def _reconnect(self, inbox: _Inbox, cause: str) -> None:
        """A fresh connection (the old one's queued events die with it), then the utterance in flight again."""
        from ..transport.backoff import FATAL_HTTP_STATUSES

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
            with inbox.cond:
                if inbox.cond.wait_for(lambda: inbox.ended or inbox.closed, delay):
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

