"""``rtedge run --wake-word NAME|PATH.json``: listen offline, open one session per wake phrase.

The devices are opened once; a :class:`~rtedge.voice.wake.WakeAgent` keeps them and holds a session
(connect, converse, close after ``wake.idle_close_s`` of silence) per wake phrase.  Each session's
transcripts are printed like ``rtedge run``'s; ``wake:`` lines say when a session opens and closes.
SIGTERM/SIGINT end the run after the current session is closed.  With a microphone that ends (``--input``,
``--mic wav:PATH`` or ``raw:``, without ``--loop``) the run ends when it has been heard and its last session
closed.

Owns: ``rtedge run`` with a wake word.  Must not: duplicate the plain run's setup (it comes from
:mod:`rtedge.app.launch`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from .launch import agent_options, build_devices, connect_options
from .signals import on_signals
from .exit_codes import EXIT_OK
from .logs import Console
from .runner import TurnTracker
from .settings import Config, Secret, is_finite
from ..transport.client import connect
from ..voice.wake import WakeAgent

#: under this much listening the detector's CPU figure is mostly its warm-up (its first seconds cost several
#: times the steady figure), and the summary says so
WARM_S = 30.0

log = logging.getLogger("rtedge")


def run_wake(config: Config, key: Secret | None, args: argparse.Namespace, console: Console) -> int:
    """Run until stopped (or until a file or pipe microphone ended); returns the exit code.

    Raises:
        ConfigError: the wake word cannot be loaded (e.g. the ``wake`` extra is not installed).
        RtEdgeError: devices that cannot open.
    """
    w = config.wake
    loop = bool(getattr(args, "loop", False))
    mic, speaker = build_devices(config, loop=loop)
    trackers: list[Any] = []

    def open_session() -> Any:
        client = connect(**connect_options(config, key))
        trackers.append(TurnTracker(client, None, console.line, keep_turns=100))
        return client

    agent = WakeAgent(open_session, mic, speaker, wake=w.word, idle_close_s=w.idle_close_s,
                      keep_warm=w.keep_warm, pre_roll_ms=w.pre_roll_ms,
                      on_wake=lambda n: console.line(f"wake: session {n} opened"),
                      on_close=lambda n: console.line(f"wake: session {n} closed"), **agent_options(config))
    restore = on_signals({signal.SIGTERM: agent.stop, signal.SIGINT: agent.stop})
    finite = is_finite(config.audio.mic) and not loop  # --mic wav:/raw: as --input: it kept listening
    max_seconds = config.service.max_seconds or None
    try:
        console.line(f"wake: listening for {agent.detector.phrase!r}")
        runner = threading.Thread(target=agent.run, name="rtedge-wake-main", daemon=True,
                                  kwargs={"max_seconds": max_seconds, "until_input_ends": finite})
        runner.start()
        while runner.is_alive():
            runner.join(0.2)
    finally:
        restore()
    turns = sum(t.turns_started for t in trackers)
    s = agent.stats
    short = " (a short run: mostly the detector's warm-up)" if s.listened_s < WARM_S else ""
    console.line(f"summary: {s.wakes} wake(s), {s.sessions} session(s), {turns} turn(s), "
                 f"detector {100 * s.detector_cpu:.2f} % of a core over {s.listened_s:.1f} s listened{short}")
    return EXIT_OK
