"""VoiceAgent: microphone in, speaker out, full duplex, and interruptions that behave.

Guarantees
----------
* Barge-in (server ``input_audio_buffer.speech_started``, or in
  ``barge_in="local"`` mode every local VAD onset while playing -- a new
  utterance right after the previous one included -- and the server's
  ``speech_started`` too, whichever comes first; ``"server"`` mode with
  ``end_turns`` in a session without turn detection, which sends no
  ``speech_started``, acts on the local onset) is handled on the thread
  that noticed it, never on the dispatcher, so a slow user callback cannot
  delay it:

  1. the playback buffer is flushed: the speaker's next pull gets silence,
     so sound stops within one device period;
  2. ``conversation.item.truncate`` is sent for the item that was playing,
     with its content index and ``audio_end_ms`` = audio the listener hears
     (everything handed to the device: the flush cannot take back what the
     device already holds), clamped by the client to audio received; nothing
     is sent when nothing was playing or nothing had been heard yet;
  3. ``response.cancel`` is sent only when a response is still active and
     the server is not cancelling it itself (``interrupt_response``).
     Late audio deltas of the interrupted response are dropped.

* The echo guard keeps the speaker's own sound from being taken for the
  user: ``"half_duplex"`` sends no microphone audio while playing and for
  the echo tail after it (barge-in by the local VAD only), ``"threshold"`` requires microphone audio during
  playback to beat a raised level, ``"aec"`` runs libspeexdsp's echo
  canceller between the microphone and the VAD gate, fed with what the
  speaker really played (every block handed to the device, silence included,
  aligned by the devices' latencies; see :mod:`rtedge.audio.aec`) and sends
  the cleaned audio; its gate boost while playing keeps the gate shut
  (:data:`rtedge.audio.aec.LEARNING_BOOST_DB`) until the filter has
  converged (again after a re-anchored alignment, unless the kept filter
  is shown to still match), then is
  :data:`rtedge.audio.aec.GATE_BOOST_DB`, or
  :data:`rtedge.audio.aec.RESIDUAL_BOOST_DB` while the canceller removes
  less than a linear echo path allows (``EchoCanceller.gate_boost``).
  ``"off"`` trusts an echo-cancelled source (PipeWire/PulseAudio
  ``module-echo-cancel``).  Every guard but ``"off"`` stays on for
  ``echo_tail_s`` of microphone audio after playback ends: the room's echo
  of the last sound reaches the microphone after the device has gone quiet.
* The VAD gate sends speech with its pre-roll and enough trailing silence for
  the server's VAD to end the turn, and nothing else; the bytes and seconds
  not sent are in :attr:`VoiceAgent.stats`.
* ``end_turns=True`` is for a session without turn detection (manual turns):
  the agent ends each turn itself when the local VAD hears the end of an
  utterance it sent (a finite source's paced silence closes the gate too):
  it commits the input and asks for a response.  Without it such a session is answered only when the
  application commits.
* ``run()`` blocks until :meth:`stop`, ``max_seconds``, the link ending
  (``client.link_state`` closing, closed or gave up), or (with
  ``until_input_ends``) a finite source has ended and its last turn is
  answered and played; devices are stopped and their threads joined on exit.
  An agent runs once, as its devices start once; a :meth:`stop` before
  ``run()`` makes it return at once (a signal that came first is not
  lost).  :meth:`close` (or leaving the ``with`` block) also detaches the
  agent from its client, so a new agent can drive the same client.
* Threads: the microphone thread, the speaker thread and the receiver
  (audio hook, event hook) read the client's session only through
  ``client.snapshot`` (an immutable value), never its live structures.
  ``_lock`` guards ``_cut``, ``_resampler``/``_resampler_key`` and
  ``_awaiting_response``/``_awaiting_expires``; the microphone thread alone owns ``_turn_samples``
  and writes ``_in_speech``.  Microphone audio goes out with
  ``overflow="drop_oldest"``: a stalled link drops the oldest queued audio
  (counted in ``client.stats.audio_dropped``), never the microphone callback.

Owns: ``VoiceAgent``: devices and client wired together, the echo guard, the VAD gate's use.  Must not: keep a
copy of the barge-in rules (:mod:`rtedge.protocol.interruption`) or read the client's live state (only
``client.snapshot``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs
import numpy as np

from ..audio import RATES_TEXT, SUPPORTED_RATES, codec
from ..audio.aec import EchoCanceller
from ..audio.playback import PlaybackBuffer, PlaybackPosition
from ..audio.vad import VadGate, VadSettings
from ..errors import ConfigError, ConnectionClosed, LocalProtocolError
from ..protocol import events as ev
from ..protocol import interruption
from ..protocol._state import InputBufferState, ResponseState, SessionSnapshot
from ..transport._lifecycle import ENDING, LinkState
from ..transport._workers import TransportStats

log = logging.getLogger("rtedge")

#: how many recent :class:`Interruption` records a VoiceAgent keeps
INTERRUPTION_WINDOW = 64

BargeIn = Literal["server", "local", "off"]
EchoGuard = Literal["half_duplex", "threshold", "aec", "off"]
#: default ``echo_tail_s``: the echo guard outlasts playback by the reverberation of a living room
ECHO_TAIL_S = 0.3
ECHO_GUARDS = ("half_duplex", "threshold", "aec", "off")
#: an answer awaited when a response ends must start within this many seconds of it, or is not coming
AWAIT_GRACE_S = 3.0


class AgentClient(Protocol):
    """What a VoiceAgent needs of its client (:class:`rtedge.Client` is one)."""

    @property
    def snapshot(self) -> SessionSnapshot: ...
    @property
    def link_state(self) -> LinkState: ...
    @property
    def stats(self) -> TransportStats: ...
    def _add_audio_hook(self, sink: Callable[[ev.ResponseOutputAudioDelta], None]) -> None: ...
    def _add_event_hook(self, hook: Callable[[ev.ServerEvent], None]) -> None: ...
    def _remove_hooks(self, *hooks: Callable[[Any], None]) -> None: ...
    def append_audio(self, pcm: Any, rate: int | None = None, *, timeout: float | None = ...,
                     overflow: Literal["block", "drop_oldest"] = ...) -> int: ...
    def truncate(self, item_id: str, audio_end_ms: float, content_index: int = 0) -> bool: ...
    def cancel_response(self) -> bool: ...
    def commit(self) -> str | None: ...
    def create_response(self, **overrides: Any) -> str | None: ...


class Microphone(Protocol):
    """A source of int16 mono frames (:class:`rtedge.audio.devices.AudioSource` is one).  It may have
    ``finished`` (a ``threading.Event``) when it can end (a file)."""

    rate: int
    def start(self, on_frame: Callable[[np.ndarray], None]) -> None: ...
    def stop(self) -> None: ...


class Speaker(Protocol):
    """A sink that pulls int16 mono frames (:class:`rtedge.audio.devices.AudioSink` is one).  It may
    have ``output_latency`` (seconds from a pull to the sound)."""

    rate: int
    def start(self, pull: Callable[[int], np.ndarray]) -> None: ...
    def stop(self) -> None: ...


@attrs.define(eq=False)
class AgentStats:
    """Counters of a VoiceAgent (read them; the agent writes them)."""

    mic_frames: int = 0
    #: mic frames fully handled (gated, guarded, queued or held back); equals mic_frames unless a frame
    #: failed half-way (the device then counts the error)
    frames_done: int = 0
    #: frames handed to the client and queued for the server (a frame the resampler primes with counts)
    frames_sent: int = 0
    #: frames the client dropped, not sent, because the link was down (reconnecting); never sent stale
    frames_dropped_outage: int = 0
    frames_held_back: int = 0  #: mic frames after which nothing went to the client (VAD gate or echo guard)
    #: microphone audio that has not gone to the client (VAD gate or echo guard): what came in less what went
    #: out, so a frame the gate holds as pre-roll and sends with the speech after it is not counted
    seconds_not_sent: float = 0.0
    #: barge-ins that cut something short (speech with nothing playing is not counted)
    interruptions: int = 0
    truncates: int = 0
    cancels: int = 0
    late_deltas_dropped: int = 0
    #: seconds from noticing barge-in to the playback buffer being empty, per interruption
    flush_latencies: deque[float] = attrs.field(factory=lambda: deque(maxlen=1000))


@attrs.frozen
class Interruption:
    """What one barge-in did."""

    source: str
    position: PlaybackPosition | None
    truncated: bool
    cancelled: bool


class VoiceAgent:
    """Drive a client with a microphone and a speaker.

    Args:
        client: a connected :class:`rtedge.Client`.
        mic: an :class:`rtedge.audio.devices.AudioSource` (``start(on_frame)``, ``stop()``, ``rate``).
        speaker: an :class:`rtedge.audio.devices.AudioSink` (``start(pull)``, ``stop()``, ``rate``,
            ``output_latency``).
        barge_in: ``"server"`` (on the server's ``speech_started``; with ``end_turns`` in a session without
            turn detection, which sends none, on the local VAD's onset), ``"local"`` (on the local VAD's
            onset while playing) or ``"off"`` (a server VAD that cancels answers on speech still does: a
            warning says so; set its ``interrupt_response`` to false).
        echo_guard: ``"half_duplex"``, ``"threshold"``, ``"aec"`` or ``"off"`` (see the module docstring).
        vad_gate: :class:`VadSettings` for the gate, True for the defaults, or False to stream every
            microphone frame (the gate then only serves the echo guard and local barge-in).
        echo_boost_db: how much louder than the adaptive noise floor mic audio must be, on top of the
            gate's threshold, to count as speech while the speaker plays (``"threshold"`` mode).
        echo_tail_s: the echo guard (every mode but ``"off"``) stays on for this much microphone audio
            after the speaker stops playing: the room's echo of the last sound (and the canceller's
            residual of it) reaches the microphone after the device has gone quiet (0 to 5 s).
        end_turns: with a session that has no turn detection (``turn_detection=None``), commit the input
            and ask for a response when the local VAD hears an utterance end (at least 100 ms of it sent);
            an answer still playing is interrupted first, unless ``barge_in="off"``.  Ignored while the
            session has turn detection (the server ends turns).

    Raises:
        ConfigError: an unknown policy name, ``echo_tail_s`` out of range, a device rate the codec does not
            convert (:data:`rtedge.audio.codec.SUPPORTED_RATES`), or ``"aec"`` where libspeexdsp is not
            built in.
    """

    def __init__(self, client: AgentClient, mic: Microphone, speaker: Speaker, *, barge_in: BargeIn = "server",
                 echo_guard: EchoGuard = "threshold", vad_gate: VadSettings | bool = True,
                 echo_boost_db: float = 15.0, echo_tail_s: float = ECHO_TAIL_S,
                 end_turns: bool = False) -> None:
        if barge_in not in ("server", "local", "off"):
            raise ConfigError(f"barge_in must be 'server', 'local' or 'off', got {barge_in!r}")
        if echo_guard not in ECHO_GUARDS:
            raise ConfigError(f"echo_guard must be one of {ECHO_GUARDS}, got {echo_guard!r}")
        if isinstance(echo_tail_s, bool) or not isinstance(echo_tail_s, int | float) or not 0 <= echo_tail_s <= 5:
            raise ConfigError(f"echo_tail_s must be a number of seconds in [0, 5], got {echo_tail_s!r}")
        for role, device in (("mic", mic), ("speaker", speaker)):  # else deaf or mute, an error per frame
            if device.rate not in SUPPORTED_RATES:
                raise ConfigError(f"{role}.rate {device.rate} Hz is not a rate the codec converts; open the "
                                  f"device at one of {RATES_TEXT}")
        if barge_in == "off" and interruption.server_cancels_on_speech(client.snapshot.session):
            log.warning("barge_in='off' turns off rtedge's barge-in only: this session's server VAD still cancels "
                        "an answer when the user speaks (turn_detection interrupt_response=false stops that)")
        self.client, self.mic, self.speaker = client, mic, speaker
        self.barge_in, self.echo_guard, self.echo_boost_db = barge_in, echo_guard, echo_boost_db
        self.echo_tail_s = float(echo_tail_s)
        self.end_turns = bool(end_turns)
        self._turn_samples = 0  # mic samples sent since the last commit (end_turns; mic thread only)
        self._in_speech = False  # the local VAD gate is in speech (mic thread writes)
        self._create_on_done = False  # end_turns: ask for the answer once the cancelled response is done
        self._tail_left = 0  # mic samples the echo guard still holds after playback (mic thread)
        self.gating = vad_gate is not False
        settings = vad_gate if isinstance(vad_gate, VadSettings) else VadSettings()
        self.gate = VadGate(mic.rate, settings)
        self.playback = PlaybackBuffer(speaker.rate, output_latency=getattr(speaker, "output_latency", 0.0))
        self.aec = EchoCanceller(mic.rate) if echo_guard == "aec" else None
        self.stats = AgentStats()
        #: the most recent interruptions (a window; ``stats.interruptions`` counts them all)
        self.interruptions: deque[Interruption] = deque(maxlen=INTERRUPTION_WINDOW)
        # guards _cut, _resampler, _resampler_key, _awaiting_response, _awaiting_expires
        self._lock = threading.Lock()
        self._cut: deque[str] = deque(maxlen=32)  # responses whose late audio is dropped
        self._resampler: codec.Resampler | None = None
        self._resampler_key: tuple[str, int] | None = None
        self._awaiting_response = False
        self._awaiting_expires: float | None = None  # monotonic; set by a response.done while awaiting
        self._stop = threading.Event()
        self._started = threading.Lock()  # taken by the one run() and never released
        self._closed = False
        client._add_audio_hook(self._on_audio)
        client._add_event_hook(self._on_event)

    # ------------------------------------------------------------------------------------------ lifecycle
    def run(self, *, max_seconds: float | None = None, until_input_ends: bool = False) -> None:
        """Stream until :meth:`stop`, ``max_seconds``, the connection ending, or (``until_input_ends``)
        a finite source ended and everything was answered and played.

        Raises:
            RuntimeError: the agent ran already (or is running), or is closed: make a new one, with new
                devices (they start once).
        """
        if self._closed:
            raise RuntimeError("this VoiceAgent is closed (detached from its client): make a new one")
        if not self._started.acquire(blocking=False):
            raise RuntimeError("this VoiceAgent has run already, or tried to (an agent and its devices start "
                               "once): make a new one with new devices")
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        ended_at: float | None = None
        try:  # a device that fails to start: the other is stopped all the same (stop() is idempotent)
            self.speaker.start(self.playback.pull if self.aec is None else self._pull_to_aec)
            self.playback.output_latency = getattr(self.speaker, "output_latency", 0.0)
            self.mic.start(self._on_frame)
            while not self._stop.wait(0.02):
                if LinkState(self.client.link_state) in ENDING or (
                        deadline is not None and time.monotonic() >= deadline):
                    return
                if until_input_ends and getattr(self.mic, "finished", threading.Event()).is_set():
                    ended_at = ended_at or time.monotonic()
                    if time.monotonic() - ended_at > 1.0 and self.idle():
                        return
        finally:
            self.mic.stop()
            self.speaker.stop()

    def playing(self) -> bool:
        """True while the speaker sounds, or an answer's audio is still streaming in (the buffer may
        run empty for a moment between deltas; the echo guard must not open in those gaps)."""
        if self.playback.is_playing():
            return True
        snap = self.client.snapshot
        if snap.response is not ResponseState.ACTIVE:
            return False
        item = snap.streaming_item_id
        return item is not None and self.playback.received_ms(item) > 0

    def idle(self) -> bool:
        """No turn awaiting a response, no response active, nothing playing, no speech in progress.  An
        answer not started ``AWAIT_GRACE_S`` after the response before it ended is no longer awaited."""
        snap = self.client.snapshot
        with self._lock:
            awaiting = self._awaiting_response and (
                self._awaiting_expires is None or time.monotonic() < self._awaiting_expires)
        return (not awaiting and snap.response is ResponseState.IDLE and not self.playing()
                and snap.input_buffer is not InputBufferState.SPEECH
                and not (self.end_turns and self._in_speech))

    def stop(self) -> None:
        """Make :meth:`run` return (from any thread, a signal handler included); before ``run()``, it will
        return at once."""
        self._stop.set()

    def close(self) -> None:
        """Stop, and detach from the client: no more audio into this agent's playback buffer, no barge-in
        from it, no microphone audio sent by it (a device thread still running until :meth:`run` returns is
        ignored).  The client stays open (close it yourself).  Idempotent."""
        self._closed = True
        self.stop()
        self.client._remove_hooks(self._on_audio, self._on_event)

    def __enter__(self) -> VoiceAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ microphone
    def _pull_to_aec(self, n: int) -> np.ndarray:
        """Speaker thread: the next ``n`` samples, also reported to the echo canceller as its reference."""
        out = self.playback.pull(n)
        assert self.aec is not None
        self.aec.played(out, self.playback.rate, self.playback.output_latency)
        return out

    def _on_frame(self, frame: np.ndarray) -> None:
        """Device thread: one microphone frame in."""
        if self._closed:  # close() from another thread: run() is stopping the devices
            return
        self.stats.mic_frames += 1
        playing = self.playing()
        guard = self._echo_held(playing, len(frame)) and self.echo_guard != "off"
        boost = self.echo_boost_db
        if self.aec is not None:
            frame = self.aec.process(frame, getattr(self.mic, "stream_latency", 0.0))
            boost = self.aec.gate_boost()
        self.gate.set_boost(boost if guard else 0.0)
        result = self.gate.process(frame)
        self._in_speech = result.is_speech  # end_turns: a finite source's last turn ends as the gate closes
        if (result.speech_started or result.speech_ended) and log.isEnabledFor(logging.DEBUG):
            floor = self.gate.noise_floor_dbfs
            log.debug("local VAD: speech %s (noise floor %s dBFS%s)", "started, gate opened"
                      if result.speech_started else "ended, gate closed",
                      "?" if floor is None else f"{floor:.1f}", ", assistant playing" if playing else "")
        if result.onset and playing and interruption.local_onset_interrupts(
                self.barge_in, self.client.snapshot.session, client_ends_turns=self.end_turns):
            self.interrupt("local")
        if guard and self.echo_guard == "half_duplex":  # deaf while playing and for the echo tail
            to_send: tuple[np.ndarray, ...] = ()
        elif self.gating or guard:
            to_send = result.frames if self.gating else ((frame,) if result.is_speech else ())
        else:
            to_send = (frame,)
        self._send(frame, to_send)
        if self.end_turns:
            self._turn_samples += sum(len(f) for f in to_send)
            if result.speech_ended:
                self._end_turn()

    def _echo_held(self, playing: bool, samples: int) -> bool:
        """Microphone thread: True while playing and for ``echo_tail_s`` of microphone audio after (counted
        in samples, so a late or bursty device thread does not shorten it)."""
        if playing:
            self._tail_left = round(self.echo_tail_s * self.mic.rate)
            return True
        held = self._tail_left > 0
        self._tail_left = max(0, self._tail_left - samples)
        return held

    def _send(self, frame: np.ndarray, frames: tuple[np.ndarray, ...]) -> None:
        if not frames:
            self.stats.frames_held_back += 1
        self.stats.seconds_not_sent += (len(frame) - sum(len(f) for f in frames)) / self.mic.rate
        try:
            for f in frames:
                dropped_ms = self.client.stats.audio_dropped_outage_ms
                queued = self.client.append_audio(f, self.mic.rate, overflow="drop_oldest")
                # 0 is also what a priming resampler returns; the outage counter tells the two apart
                if not queued and self.client.stats.audio_dropped_outage_ms > dropped_ms:
                    self.stats.frames_dropped_outage += 1
                else:
                    self.stats.frames_sent += 1
        except (ConnectionClosed, LocalProtocolError):
            self._stop.set()
        self.stats.frames_done += 1

    # ------------------------------------------------------------------------------------------ receiver side
    def _on_audio(self, event: ev.ResponseOutputAudioDelta) -> None:
        """Receiver thread: assistant audio into the playback buffer (decoded, at the speaker rate)."""
        if self._closed:  # the receiver may still hold the hook list it read before close() removed us
            return
        with self._lock:
            if event.response_id in self._cut:
                self.stats.late_deltas_dropped += 1
                return
            fmt = self.client.snapshot.output_format
            samples = event.pcm(fmt)
            if fmt.rate != self.playback.rate:
                key = (event.item_id, event.content_index)
                if self._resampler is None or self._resampler_key != key:
                    self._resampler, self._resampler_key = codec.Resampler(fmt.rate, self.playback.rate), key
                samples = self._resampler.process(samples)
        self.playback.push(event.item_id, event.content_index, samples)

    def _on_event(self, event: ev.ServerEvent) -> None:
        """Receiver thread: barge-in and turn bookkeeping."""
        if self._closed:  # as in _on_audio
            return
        if isinstance(event, ev.InputAudioBufferSpeechStarted) and self.barge_in != "off":
            self.interrupt("server")  # local mode too: the server's VAD cancels the answer either way
        elif isinstance(event, ev.InputAudioBufferCommitted):
            creates = self._server_creates_responses()
            if creates:  # else an answer this agent asked for (end_turns) may still be awaited
                with self._lock:
                    self._awaiting_response, self._awaiting_expires = True, None
        elif isinstance(event, ev.ResponseCreated):
            with self._lock:
                self._awaiting_response, self._awaiting_expires = False, None
        if isinstance(event, ev.ResponseDone):
            self._on_response_done()

    def _on_response_done(self) -> None:
        """Receiver thread: a response ended.  An answer still awaited must start within
        ``AWAIT_GRACE_S``, or it is not coming: a turn committed while this response ran that the server
        did not answer (its VAD neither interrupts nor queues), or a ``response.create`` it refused because
        this response was active.  (A create refused for another reason, with no response running, is
        still awaited: rtedge's own creates carry no parameters the server could refuse.)"""
        with self._lock:
            if self._awaiting_response:
                self._awaiting_expires = time.monotonic() + AWAIT_GRACE_S
        if self._create_on_done:
            self._create_on_done = False  # the answer end_turns asked for, after the cut one is done
            try:
                self.client.create_response()
            except (ConnectionClosed, LocalProtocolError):
                self._stop.set()

    def _end_turn(self) -> None:
        """Microphone thread, ``end_turns``: commit what was sent of the utterance and ask for an answer, when
        the session has no turn detection and 100 ms or more was sent (less is an empty or too short buffer
        to the server).  An answer still playing or streaming is interrupted first, and the new one asked
        for once the cut one is done (a create before that can be refused)."""
        samples, self._turn_samples = self._turn_samples, 0
        server_ends_turns = interruption.turn_detection(self.client.snapshot.session) is not None
        if samples < self.mic.rate // 10 or server_ends_turns:
            return
        if not self._answers():  # a transcription session: the commit is the whole turn
            self._commit_only()
            return
        try:
            busy = self.playing() or self.client.snapshot.response is not ResponseState.IDLE
            if busy and self.barge_in == "off":
                self.client.commit()  # answered with the next response the application asks for
                return
            with self._lock:
                self._awaiting_response, self._awaiting_expires = True, None
            self.client.commit()
            if busy:  # set before the cancel goes out: its response.done asks for the answer
                self._create_on_done = True
                cut = self.interrupt("local")
                if not cut.cancelled and self.client.snapshot.response is ResponseState.IDLE \
                        and self._create_on_done:  # nothing was cancelled: no response.done is coming
                    self._create_on_done = False
                    self.client.create_response()
            else:
                self.client.create_response()
        except (ConnectionClosed, LocalProtocolError):
            self._stop.set()

    def _answers(self) -> bool:
        """False for a transcription session (its dialect cannot create responses: no answers at all)."""
        dialect = getattr(self.client, "dialect", None)  # (an AgentClient need not say: then it answers)
        return dialect is None or bool(dialect.answers)

    def _commit_only(self) -> None:
        try:
            self.client.commit()
        except (ConnectionClosed, LocalProtocolError):
            self._stop.set()

    def _server_creates_responses(self) -> bool:
        if not self._answers():
            return False
        td = interruption.turn_detection(self.client.snapshot.session)
        return td is not None and td.get("create_response", True) is not False

    # ------------------------------------------------------------------------------------------ barge-in
    def interrupt(self, source: str = "app") -> Interruption:
        """Stop playback now, truncate what was playing at what was heard, cancel if needed (the rules:
        :mod:`rtedge.protocol.interruption`; ``source``: ``"server"``, ``"local"`` or anything else for the
        application)."""
        t0 = time.monotonic()
        snap = self.client.snapshot
        active = snap.response is ResponseState.ACTIVE
        with self._lock:
            already_cut = snap.response_id in self._cut
        streaming = snap.streaming_item_id if active and not already_cut else None
        position = self.playback.flush(streaming=streaming)
        self.stats.flush_latencies.append(time.monotonic() - t0)
        with self._lock:
            if active and snap.response_id:
                self._cut.append(snap.response_id)
            self._resampler = None
        heard = None if position is None else interruption.Heard(
            position.item_id, position.content_index, position.played_ms, position.received_ms)
        plan = interruption.decide(heard, response_active=active, source=source,
                                   server_cancels=interruption.server_cancels_on_speech(snap.session))
        truncated = cancelled = False
        try:
            if plan.truncate is not None:
                t = plan.truncate
                truncated = self.client.truncate(t.item_id, t.audio_end_ms, t.content_index)
            if plan.cancel:
                cancelled = self.client.cancel_response()
        except (ConnectionClosed, LocalProtocolError) as exc:
            log.debug("barge-in could not reach the server: %s", exc)
        if position is not None or cancelled:
            self.stats.interruptions += 1  # something was really cut short
        self.stats.truncates += int(truncated)
        self.stats.cancels += int(cancelled)
        result = Interruption(source, position, truncated, cancelled)
        self.interruptions.append(result)
        if position is not None:
            log.debug("barge-in (%s): playback stopped in %s after %.0f ms played of %.0f ms received; "
                      "truncate at %.0f ms: %s; cancel: %s", source, position.item_id, position.played_ms,
                      position.received_ms, plan.truncate.audio_end_ms if plan.truncate else 0.0,
                      "sent" if truncated else "not sent",
                      "sent" if cancelled else "no")
        else:
            log.debug("barge-in (%s): nothing was playing; cancel: %s", source, "sent" if cancelled else "no")
        return result


if TYPE_CHECKING:  # mypy checks that rtedge's own parts fit the seams
    from ..audio.devices import AudioSink, AudioSource
    from ..transport.client import Client

    def _client_fits(client: Client) -> AgentClient:
        return client

    def _mic_fits(mic: AudioSource) -> Microphone:
        return mic

    def _speaker_fits(speaker: AudioSink) -> Speaker:
        return speaker
