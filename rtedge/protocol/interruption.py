"""The interruption (barge-in) policy: what to do when the user talks over the assistant.  Sans-IO.

Theory of operation
-------------------
When speech starts while the assistant is talking, a client must (1) stop the
sound, (2) tell the server how much of the answer the user really heard, so
the model does not "remember" words that were never played, and (3) stop the
answer unless the server stops it by itself.  Every rule of that decision is
here, once; the drivers only gather the facts and carry the result out:

* :class:`rtedge.voice.VoiceAgent` (real devices; its clock is
  :class:`rtedge.audio.playback.PlaybackBuffer`, which uses :func:`cut_item`
  and :func:`heard_ms`) and
* the tick engine (:mod:`rtedge.voice._tick_engine`, a sample cursor instead
  of a device)

both call :func:`decide`, and :class:`rtedge.protocol.session.Session` uses
:func:`clamp_truncate_ms` and :func:`server_cancels_on_speech` for the events
it offers to send.

The rules:

* **Which item was cut** (:func:`cut_item`): the item whose audio was handed
  out last if it is still sounding (or still streaming in) or is also the head
  of the queue; otherwise the head of the queue (audio about to play); nothing
  when neither.
* **How much was heard** (:func:`heard_ms`): everything handed to the output.
  A flush cannot reach into the device, so what it holds still plays out
  (measured through PulseAudio: subtracting the device latency truncated
  30-40 ms short).
* **Where to truncate** (:func:`clamp_truncate_ms`): ``conversation.item.truncate``
  for that item and content index at the heard ms, clamped to the audio
  received for it (the server rejects more), in whole ms; nothing when that
  leaves 0 ms (the server rejects a zero truncate of an unplayed item).
* **Whether to cancel**: ``response.cancel`` only when a response is active,
  and not when the cut came from speech (the server's VAD, or the local VAD,
  whose speech the server hears too) and the server cancels by itself on
  speech (:func:`server_cancels_on_speech`).  An explicit ``interrupt()`` by
  the application always cancels an active response.
* **Does the server cancel by itself**: its turn detection (GA
  ``audio.input.turn_detection`` or a flat dialect's ``turn_detection``) is on
  and its ``interrupt_response`` is not false (the server default is true).
  No turn detection known (manual turns, or nothing received yet): no, so the
  client cancels: a redundant cancel costs one error event, a missing one
  lets the answer run on.

Owns: those rules and the :class:`Truncate` / :class:`Cancel` actions.  Must not: do I/O, read a clock,
start threads, log, hold state between calls, or import numpy (it stays in :mod:`rtedge.protocol`).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import attrs

#: who noticed the barge-in: the server's VAD, the local VAD, or the application (``interrupt()``)
Source = Literal["server", "local", "app"]
#: sources that are speech the server hears too (so it may cancel by itself)
SPEECH_SOURCES: frozenset[str] = frozenset({"server", "local"})

K = TypeVar("K")


@attrs.frozen
class Truncate:
    """Action: send ``conversation.item.truncate`` (the client clamps it again to the audio it received on
    the wire and skips 0 ms)."""

    item_id: str
    content_index: int
    audio_end_ms: float


@attrs.frozen
class Cancel:
    """Action: send ``response.cancel`` (a response is active and the server will not cancel it itself)."""


@attrs.frozen
class Heard:
    """What the output had of the item that was cut, when it was cut.

    Attributes:
        item_id, content_index: the assistant item and content part.
        heard_ms: audio handed to the output (:func:`heard_ms`).
        received_ms: audio of that item received so far (at the output's rate).
    """

    item_id: str
    content_index: int
    heard_ms: float
    received_ms: float


@attrs.frozen
class Plan:
    """What one barge-in calls for."""

    truncate: Truncate | None
    cancel: bool

    @property
    def actions(self) -> list[Truncate | Cancel]:
        """The events to send, truncate first (it names audio of the response the cancel stops)."""
        out: list[Truncate | Cancel] = [] if self.truncate is None else [self.truncate]
        return out + [Cancel()] if self.cancel else out


def turn_detection(session: Mapping[str, Any]) -> dict[str, Any] | None:
    """The session's turn detection object (GA ``audio.input.turn_detection``, else a flat dialect's
    ``turn_detection``), or None (manual turns, or not known)."""
    audio = session.get("audio")
    audio_in = audio.get("input") if isinstance(audio, Mapping) else None
    td = audio_in.get("turn_detection") if isinstance(audio_in, Mapping) else None
    if not isinstance(td, Mapping):
        td = session.get("turn_detection")
    return dict(td) if isinstance(td, Mapping) else None


def server_cancels_on_speech(session: Mapping[str, Any]) -> bool:
    """True when the server cancels a running response by itself when speech starts."""
    return cancels_on_speech(turn_detection(session))


def cancels_on_speech(td: Mapping[str, Any] | None) -> bool:
    """:func:`server_cancels_on_speech` from a turn detection object already extracted."""
    return td is not None and td.get("interrupt_response", True) is not False


def local_onset_interrupts(mode: str, session: Mapping[str, Any], *, client_ends_turns: bool) -> bool:
    """Whether the local VAD's onset of speech interrupts what plays: in ``"local"`` mode always; in
    ``"server"`` mode when the client itself ends the turns of a session without turn detection (the
    server then sends no ``speech_started`` to act on; an application that commits turns itself decides
    when to interrupt); never in ``"off"`` mode."""
    return mode == "local" or (mode == "server" and client_ends_turns and turn_detection(session) is None)


def cut_item(current: K | None, head: K | None, *, sounding: bool) -> K | None:
    """The item a barge-in cuts short.

    Args:
        current: the item whose audio was handed to the output last, if any.
        head: the item at the head of the queue (about to play), if any.
        sounding: ``current`` is still being heard (the device still holds some of it) or its audio is
            still streaming in (its response is active and the queue just ran dry between deltas).
    """
    if head is not None:
        return current if current is not None and (head == current or sounding) else head
    return current if sounding else None


def heard_ms(handed_samples: int, rate: int) -> float:
    """Audio of an item the listener hears in the end: all of it that was handed to the output, in ms."""
    return 1000.0 * handed_samples / rate


def clamp_truncate_ms(audio_end_ms: object, received_ms: float) -> int:
    """The ``audio_end_ms`` to send: clamped to ``[0, received_ms]``, whole ms; 0 means send nothing.

    Raises:
        TypeError: ``audio_end_ms`` is not a number (a str, a bool).
        ValueError: ``audio_end_ms`` is NaN.
    """
    if isinstance(audio_end_ms, bool) or not isinstance(audio_end_ms, numbers.Real):
        raise TypeError(f"audio_end_ms must be a number of milliseconds, got {type(audio_end_ms).__name__}")
    value = float(audio_end_ms)
    if value != value:
        raise ValueError("audio_end_ms must be a number of milliseconds, got NaN")
    return int(min(max(value, 0.0), received_ms))


def decide(heard: Heard | None, *, response_active: bool, server_cancels: bool, source: Source | str) -> Plan:
    """The actions of one barge-in.

    Args:
        heard: the item cut short (from :func:`cut_item`), or None when nothing was playing.
        response_active: a response is still being generated.
        server_cancels: the server cancels on speech by itself (:func:`server_cancels_on_speech`).
        source: who noticed the barge-in (a value outside :data:`Source` counts as the application).
    """
    truncate = None
    if heard is not None:
        end = clamp_truncate_ms(heard.heard_ms, heard.received_ms)
        if end > 0:
            truncate = Truncate(heard.item_id, heard.content_index, end)
    cancel = response_active and not (server_cancels and source in SPEECH_SOURCES)
    return Plan(truncate, cancel)
