"""A device's sample clock checked against the monotonic clock.

A capture or playback device should move ``rate`` samples per second.  One that runs far faster (ALSA's
``file`` plugin on ``null``, a pipe fed from a file) floods the session: 437 MB of "playback" in 15 s, or
a microphone that delivers a minute of audio in a second.  :class:`ClockCheck` measures the device's pace
over a window that starts after a warm-up (PortAudio fills its buffers at start, which is not a clock
fault), warns once when it is more than :data:`TOLERANCE` off real time (or, before that, as soon as it is
:data:`MAX_LEAD_S` of audio ahead of real time), and from then on tells the caller how long to wait before the
next buffer so that a fast device is paced to real time.  A slow device
cannot be sped up: it is only reported.  A device's fast (or slow) clock is reported once per process:
opened again (``rtedge run`` checks a sound card, then opens it for the session; a failed stream is
reopened), the same fault is logged at debug level (and paced all the same).

:class:`ClockCheck` is not thread-safe: one device thread calls :meth:`ClockCheck.tick`.  The record of the
devices reported is (a lock).

Owns: checking a device's sample clock against the monotonic clock.  Must not: change the audio.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("rtedge.audio")

#: relative pace error that counts as a wrong clock (5 %: sound cards are within 0.01 %)
TOLERANCE = 0.05
#: seconds after the first buffer before measuring (buffer prefill at start is not a clock fault) ...
WARMUP_S = 0.5
#: ... or this much audio, whichever comes first (a prefill is a fraction of a second of audio)
WARMUP_AUDIO_S = 1.0
#: seconds of wall time the measurement spans ...
WINDOW_S = 1.5
#: ... or this much audio, whichever comes first (a file piped in moves minutes of audio in a second)
WINDOW_AUDIO_S = 2.0
#: while measuring, a device this much audio ahead of the time since its first buffer is fast at once (more
#: than any prefill): a file piped in is paced after 1 s of audio, not after the whole window's 3 s, which
#: a 2 s send queue could not hold
MAX_LEAD_S = 1.0

_reported: set[tuple[str, bool]] = set()  # (device as messages name it, fast) said already; a handful
_reported_lock = threading.Lock()


def _level(what: str, fast: bool) -> int:
    """WARNING the first time ``what``'s clock is said to be fast (or slow) in this process, DEBUG after."""
    with _reported_lock:
        if (what, fast) in _reported:
            return logging.DEBUG
        _reported.add((what, fast))
        return logging.WARNING


def forget_reported() -> None:
    """Say every device's clock fault again (tests; a long-running application that wants it)."""
    with _reported_lock:
        _reported.clear()


class ClockCheck:
    """Counts the samples a device moves and compares them with the time that passed.

    Args:
        what: the device, as log messages name it.
        rate: its nominal sample rate (Hz).
        clock: the time source (``time.monotonic``; replaceable in tests).
        pacing_text: what the warning about a fast clock says is done about it (a caller that paces the
            device itself says how).
    """

    def __init__(self, what: str, rate: int, clock: Callable[[], float] = time.monotonic, *,
                 pacing_text: str = "pacing it to real time") -> None:
        self.what, self.rate, self._clock, self._pacing_text = what, rate, clock, pacing_text
        self._first: float | None = None
        self._base_t: float | None = None
        self._base_n = 0
        self._n = 0
        #: measured samples per second divided by ``rate`` (None until measured)
        self.ratio: float | None = None
        #: True once the device was found fast: :meth:`tick` returns waits from then on
        self.pacing = False
        self._pace_t0 = 0.0
        self._pace_n = 0

    def lead_s(self, now: float) -> float:
        """Seconds of audio moved beyond the time since the first buffer (0 before the first)."""
        return 0.0 if self._first is None else self._n / self.rate - (now - self._first)

    def tick(self, samples: int) -> float:
        """Count ``samples`` just moved; returns seconds to wait before the next buffer (0 unless pacing)."""
        now = self._clock()
        self._n += samples
        if self._first is None:
            self._first = now
        if self.ratio is None:
            if self.lead_s(now) > MAX_LEAD_S:
                self._found_fast(now, (self._n / self.rate) / max(now - self._first, 1e-6),
                                 self._n / self.rate, now - self._first)
            else:
                self._measure(now)
        if not self.pacing:
            return 0.0
        self._pace_n += samples
        return max(0.0, self._pace_t0 + self._pace_n / self.rate - now)

    def _measure(self, now: float) -> None:
        assert self._first is not None
        if self._base_t is None:
            if now - self._first >= WARMUP_S or self._n / self.rate >= WARMUP_AUDIO_S:
                self._base_t, self._base_n = now, self._n
            return
        elapsed = now - self._base_t
        audio = (self._n - self._base_n) / self.rate
        if elapsed < WINDOW_S and audio < WINDOW_AUDIO_S:
            return
        self.ratio = audio / max(elapsed, 1e-6)
        if abs(self.ratio - 1.0) <= TOLERANCE:
            return
        if self.ratio > 1.0:
            self._found_fast(now, self.ratio, audio, elapsed)
        else:
            log.log(_level(self.what, False), "%s: the device clock runs at %.2fx real time (%.1f s of audio "
                    "in %.1f s); audio will lag", self.what, self.ratio, audio, elapsed)

    def _found_fast(self, now: float, ratio: float, audio: float, elapsed: float) -> None:
        """Pace from now on, and say so once."""
        self.ratio, self.pacing, self._pace_t0, self._pace_n = ratio, True, now, 0
        log.log(_level(self.what, True), "%s: the device clock runs at %.2fx real time (%.1f s of audio in "
                "%.1f s: an ALSA file/null plugin, or a pipe fed from a file?); %s",
                self.what, ratio, audio, elapsed, self._pacing_text)
