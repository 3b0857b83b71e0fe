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
one ``.completed`` (or ``.failed``: that utterance comes with ``error`` set, and the next go on).  Server VAD is
turned off (``turn_detection: null``): the local gate decides the utterances,
and the transcriber still waits for each transcript before sending the next
utterance, so results come in order and one at a time.

A ``transcription.done`` that arrives while the utterance is still streaming
(the model hit its token limit) closes that utterance and starts a new one for
the rest of the speech.

Everything runs on the caller's thread (inside :meth:`Transcriber.transcribe`):
the source's thread only queues frames into a bounded backlog, and events are
read from the client's own inbox (``client.events()``); a ``"*"`` callback on
``rtedge-dispatch`` only rings the backlog's condition, so the caller waits for
frames and events at once, and callbacks (``on_delta``, ``on_utterance``) also
run on the caller's thread.  Every wait is bounded
(``done_timeout``); server ``error`` events raise :class:`~rtedge.errors.ServerError`
with the server's code; the source is stopped and an owned connection closed
(its threads joined) when the iteration ends for any reason.

Owns: the public ``Transcriber``: connection, source, the iteration.  Must not: run callbacks off the caller's
thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._transcription_run import _Backlog, _Run
from ._transcription_wire import _DIALECT_OF, RATE, TranscriberStats, Utterance, _OpenAIWire, _Wire
from ..audio.codec import Resampler
from ..audio.devices import AudioSource, WavSource
from ..audio.vad import VadGate, VadSettings
from ..errors import ConfigError
from ..protocol import events as ev
from ..protocol.config import SessionConfig
from ..protocol.dialects import get_dialect
from ..protocol.usage import Usage
from ..transport.backoff import Backoff
from ..transport.client import Client, connect

__all__ = ["RATE", "Transcriber", "TranscriberStats", "Utterance"]

log = logging.getLogger("rtedge")

_DEFAULT_VAD: Any = "default"


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

            asked = connect_options.pop("session", None)
            off = SessionConfig(turn_detection=None)
            connect_options["session"] = off if asked is None else asked.merged(off)
        for name, value in (("done_timeout", done_timeout), ("chunk_ms", chunk_ms), ("max_backlog_s", max_backlog_s)):
            if not value > 0:  # NaN too
                raise ConfigError(f"{name} must be positive, got {value!r}"
                                  + (" (--done-timeout)" if name == "done_timeout" else ""))
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
        self._backlog: _Backlog | None = None
        self._starting = False  # transcribe() is under way (before its run, connecting)
        self._stop_pending = False  # stop() came while it was
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
        if self.client is not None and not self.client.closed:
            return self
        client = connect(self._dialect_name, url=self.url, model=self.model, api_key=self._api_key,
                         **self._connect_options)
        try:
            client.on("*", self._on_event)
            self.client = client
        except BaseException:  # a KeyboardInterrupt now: the client nobody holds yet is closed
            client.close()
            raise
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
        handler included): the utterance in progress is finished and transcribed.  A stop while
        :meth:`transcribe` is still connecting ends it as soon as it starts; with no transcription
        under way it does nothing."""
        # no lock here (a signal handler may run while this thread holds it): the flag is set before the
        # backlog is read, and _run reads the flag after it publishes the backlog, so one of them sees it
        if self._starting:
            self._stop_pending = True
        backlog = self._backlog
        if backlog is not None:
            backlog.stop()

    @property
    def usage(self) -> Usage:
        """Token totals over every utterance so far."""
        return self._usage

    def _on_event(self, event: ev.ServerEvent) -> None:
        """``rtedge-dispatch``: the event is in the client's inbox; wake the running transcription."""
        backlog = self._backlog
        if backlog is not None:
            backlog.ring()

    # ------------------------------------------------------------------------------------------ transcribe
    def transcribe_file(self, path: str | Path) -> list[Utterance]:
        """Every utterance of a WAV file (any format ``read_wav`` reads, 8 to 48 kHz), read as fast as the
        server takes it."""
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
        if isinstance(source, str | Path):
            source = WavSource(source, rate=RATE, realtime=False)
        with self._lock:  # claimed before connecting: a second caller must not open (or share) a connection
            if self._starting:
                raise ConfigError("this Transcriber is already transcribing a source")
            self._stop_pending, self._starting = False, True
        owned = self.client is None or self.client.closed
        try:
            if owned:
                self.connect()
            yield from self._run(source)
        finally:
            try:
                if owned:
                    self.close()
            finally:
                self._starting = False  # after the close: a next caller must not find this call's client

    def _run(self, source: AudioSource) -> Iterator[Utterance]:
        client = self.client
        assert client is not None
        block = getattr(source, "realtime", True) is False
        frame_ms = source.frame_ms
        max_frames = 50 if block else max(1, int(self.max_backlog_s * 1000 / frame_ms))
        backlog = _Backlog(max_frames, block, self.stats)
        run = _Run(self, client, VadGate(RATE, self.vad) if self.vad is not None else None,
                   Resampler(source.rate, RATE) if source.rate != RATE else None)
        with self._lock:
            if self._backlog is not None:
                raise ConfigError("this Transcriber is already transcribing a source")
            self._backlog = backlog
            if self._stop_pending:  # stop() came while connecting
                backlog.stop()

        def on_frame(frame: np.ndarray) -> None:
            if backlog.ended or backlog.closed:
                return
            if source.finished.is_set():  # a file/pipe ended: what follows is padding silence
                backlog.end()
                return
            backlog.put_frame(frame)

        try:
            source.start(on_frame)
            yield from run.loop(backlog, source)
        finally:
            backlog.close()
            source.stop()
            with self._lock:
                self._backlog = None
            if self.client is not None:
                for _ in self.client.events(timeout=0):  # this run's, not read: not the next run's
                    pass
            if run.gen is not None:  # stopped mid-utterance: the server's generation would linger
                self.close()


