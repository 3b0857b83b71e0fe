"""``rtedge run --wake-word NAME|PATH.json``: listen offline, open one session per wake phrase.

The devices are opened once; a :class:`~rtedge.voice.wake.WakeAgent` keeps them and holds a session
(connect, converse, close after ``wake.idle_close_s`` of silence) per wake phrase.  Each session's
transcripts are printed like ``rtedge run``'s (unless ``logging.transcripts`` is off); ``wake:`` lines say
when a session opens and closes, and ``service.usage_log`` gets each session's responses and total.
Every ``service.stats_interval`` a ``stats:`` line counts wakes, sessions, turns and the devices' underruns
and overflows.  SIGTERM/SIGINT end the run after the current session is closed.  With a microphone that ends
(``--input``, ``--mic wav:PATH`` or ``raw:``, without ``--loop``) the run ends when it has been heard and its
last session closed.

Under systemd it is a service as the plain run is: ``READY=1`` once it listens, ``WATCHDOG=1`` while the
microphone delivers frames and the agent runs, ``STOPPING=1`` when it stops.  SIGHUP cannot re-read the
settings here (it is logged, and the run goes on).  A connect that fails for good (the key refused: exit 3;
the endpoint or the session refused: exit 2) ends the run with that exit code; any other failure is logged
and the next wake phrase tries again.

Owns: ``rtedge run`` with a wake word.  Must not: duplicate the plain run's setup (it comes from
:mod:`rtedge.app.launch` and :mod:`rtedge.app.service`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from .exit_codes import EXIT_AUTH, EXIT_CONFIG, EXIT_OK, exit_code_for
from .launch import agent_options, build_devices, connect_logged, open_usage_log, transcript_filter
from .logs import Console
from .runner import TurnTracker
from .service import Health, Notifier, Watchdog, device_faults, device_probe
from .settings import Config, Secret, is_finite
from .signals import on_signals
from ..errors import RtEdgeError
from ..voice.wake import WakeAgent

#: under this much listening the detector's CPU figure is mostly its warm-up (its first seconds cost several
#: times the steady figure), and the summary says so
WARM_S = 30.0

log = logging.getLogger("rtedge")


class _Sessions:
    """What ``rtedge run`` keeps per wake session: the turn tracker, the usage log, and a connect failure
    that ends the run (its exit code)."""

    def __init__(self, config: Config, key: Secret | None, console: Console) -> None:
        self.config, self.key, self.console = config, key, console
        self.trackers: list[TurnTracker] = []  # of the sessions still open (a kiosk holds thousands a year)
        self.opened = 0
        self.turns_closed = 0  #: turns of the sessions already closed
        self._turns_lock = threading.Lock()  # trackers and turns_closed move together (the stats line reads)
        self.usage_logs: list[tuple[Any, Any]] = []  # (client, its usage log), until the session closed
        self.fatal: RtEdgeError | None = None
        self.stop: Any = lambda: None  # the agent's stop, once it exists

    def open(self) -> Any:
        """The WakeAgent's connect: a connected client, its turns printed and its usage logged."""
        try:
            client = connect_logged(self.config, self.key, self.opened + 1)
        except RtEdgeError as exc:
            if exit_code_for(exc) in (EXIT_AUTH, EXIT_CONFIG) and self.fatal is None:
                self.fatal = exc  # the next wake phrase would fail the same way
                self.stop()
            raise
        try:
            usage = open_usage_log(self.config, client)  # (checked before the run; the disk may differ now)
        except RtEdgeError as exc:
            client.close()  # nobody would hold it: a live, billed session
            self.fatal = self.fatal or exc
            self.stop()
            raise
        if usage is not None:
            self.usage_logs.append((client, usage))
        tracker = TurnTracker(client, None, transcript_filter(self.config, self.console.line), keep_turns=100)
        with self._turns_lock:
            self.trackers.append(tracker)
        self.opened += 1
        return client

    @property
    def turns(self) -> int:
        with self._turns_lock:
            return self.turns_closed + sum(t.turns_started for t in self.trackers)

    def closed(self, number: int) -> None:
        """A session closed: its usage log writes the session's total."""
        self.console.line(f"wake: session {number} closed")
        for client, usage in [pair for pair in self.usage_logs if pair[0].closed]:
            usage.close()
            self.usage_logs.remove((client, usage))
        for tracker in [t for t in self.trackers if t.client.closed]:  # its client and turns are let go
            tracker.detach()
            with self._turns_lock:
                self.turns_closed += tracker.turns_started
                self.trackers.remove(tracker)

    def close_logs(self) -> None:
        for client, usage in self.usage_logs:
            client.close()
            usage.close()
        self.usage_logs.clear()


def run_wake(config: Config, key: Secret | None, args: argparse.Namespace, console: Console) -> int:
    """Run until stopped (or until a file or pipe microphone ended); returns the exit code.

    Raises:
        ConfigError: the wake word cannot be loaded (e.g. the ``wake`` extra is not installed).
        RtEdgeError: devices that cannot open.
    """
    w = config.wake
    loop = bool(getattr(args, "loop", False))
    mic, speaker = build_devices(config, loop=loop)
    sessions = _Sessions(config, key, console)
    agent = WakeAgent(sessions.open, mic, speaker, wake=w.word, idle_close_s=w.idle_close_s,
                      keep_warm=w.keep_warm, pre_roll_ms=w.pre_roll_ms,
                      on_wake=lambda n: console.line("wake: heard the wake word"),
                      on_open=lambda n: console.line(f"wake: session {n} opened"),
                      on_close=sessions.closed, **agent_options(config))
    sessions.stop = agent.stop
    finite = is_finite(config.audio.mic) and not loop  # --mic wav:/raw: as --input: it kept listening
    runner = threading.Thread(target=agent.run, name="rtedge-wake-main", daemon=True,
                              kwargs={"max_seconds": config.service.max_seconds or None,
                                      "until_input_ends": finite})
    devices = {"mic": mic, "speaker": speaker}
    try:
        _supervise(config, agent, runner, devices, console,
                   lambda: wake_numbers(agent, sessions.turns, devices))
    finally:
        sessions.close_logs()
    turns = sessions.turns
    s = agent.stats
    short = " (a short run: mostly the detector's warm-up)" if s.listened_s < WARM_S else ""
    console.line(f"summary: {s.wakes} wake(s), {s.sessions} session(s), {turns} turn(s), "
                 f"detector {100 * s.detector_cpu:.2f} % of a core over {s.listened_s:.1f} s listened{short}")
    return EXIT_OK if sessions.fatal is None else exit_code_for(sessions.fatal)


def wake_numbers(agent: WakeAgent, turns: int, devices: dict[str, Any]) -> dict[str, Any]:
    """The counters of a wake run, as JSON-friendly numbers (see :func:`wake_stats_line`)."""
    s = agent.stats
    return {"wakes": s.wakes, "sessions": s.sessions, "connect_failures": s.connect_failures, "turns": turns,
            "listened_s": round(s.listened_s, 1), "detector_cpu_pct": round(100 * s.detector_cpu, 2),
            **device_faults(devices)}


def wake_stats_line(n: dict[str, Any]) -> str:
    """``stats: 3 wakes, 3 sessions (0 connects failed), 5 turns, ...`` from :func:`wake_numbers`."""
    return (f"stats: {n['wakes']} wakes, {n['sessions']} sessions ({n['connect_failures']} connects failed), "
            f"{n['turns']} turns, {n['listened_s']:.1f} s listened (detector "
            f"{n['detector_cpu_pct']:.2f} % of a core), {n['underruns']} underruns, "
            f"{n['overflows']} overflows")


def _supervise(config: Config, agent: WakeAgent, runner: threading.Thread, devices: dict[str, Any],
               console: Console, numbers: Callable[[], dict[str, Any]]) -> None:
    """Main thread: run ``runner`` (the agent) with signal handlers, sd_notify and the watchdog (fed while
    the devices move frames and the agent runs), and a ``stats:`` line of ``numbers()`` every
    ``service.stats_interval``."""
    interval = config.service.stats_interval
    notifier = Notifier.from_env()
    health = Health()
    for name, device in devices.items():
        health.add(name, device_probe(f"{name} ({device!r})", device, config.service.stall_seconds))
    health.add("wake", lambda now: None if runner.is_alive() else "the wake agent ended")
    watchdog = Watchdog(notifier, health)
    hangups: list[int] = []
    restore = on_signals({signal.SIGTERM: agent.stop, signal.SIGINT: agent.stop,
                          signal.SIGHUP: lambda: hangups.append(1)})
    try:
        console.line(f"wake: listening for {agent.detector.phrase!r}")
        runner.start()
        notifier.notify("READY=1", f"STATUS=listening for {agent.detector.phrase!r}",
                        f"MAINPID={os.getpid()}")
        watchdog.start()
        stats_due = time.monotonic() + interval if interval else None
        while runner.is_alive():
            runner.join(0.2)
            if stats_due is not None and time.monotonic() >= stats_due:
                stats_due = time.monotonic() + interval
                n = numbers()
                console.line(wake_stats_line(n), event="stats", **n)
            if hangups:
                hangups.clear()
                log.warning("SIGHUP: settings cannot be re-read with a wake word (wake.word); restart to "
                            "apply changed settings")
    finally:
        watchdog.stop()
        notifier.notify("STOPPING=1", "STATUS=stopping")
        restore()
