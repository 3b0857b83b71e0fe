"""Running under systemd: sd_notify, a watchdog fed only by real progress, status and statistics.

Guarantees
----------
* :class:`Notifier` speaks the sd_notify protocol with the standard library
  only: one ``AF_UNIX`` datagram per message to ``$NOTIFY_SOCKET`` (a path, or
  ``@name`` for the abstract namespace).  Without the variable every call is a
  no-op, so the same code runs on a terminal.  A failed send is logged once and
  never raises.
* :class:`Watchdog` sends ``WATCHDOG=1`` every ``WATCHDOG_USEC / 2`` only while
  every registered probe reports progress (:class:`Health`).  The probes of a
  running voice session (:func:`client_probes`, :func:`device_probe`) cover
  the ``rtedge-sender`` loop, the ``rtedge-receiver`` (not stuck handling a
  message, and hearing from the server while the link is up), the
  ``rtedge-dispatch`` thread (not stuck in a callback) and the audio devices
  (frames still flowing).  When one stalls for ``stall_seconds`` the pings
  stop, a warning names the thread, and systemd restarts the service after
  ``WatchdogSec``; the pings resume if it recovers first.
* :func:`describe_state` turns the session into the words of ``STATUS=``:
  ``connecting``, ``ready``, ``listening``, ``speaking``,
  ``reconnecting (attempt N)``, ``stopping``.
* :func:`stats_line` is the periodic statistics line: turn latency p50/p95,
  reconnects, recycles, underruns, dropped audio, what the VAD gate saved, tokens.

Owns: the sd_notify protocol, the watchdog and its probes, and :class:`Service`, the main loop of ``rtedge
run`` with devices.  Must not: run user callbacks on the client's threads.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .exit_codes import EXIT_AUDIO, EXIT_OK, EXIT_TURN_FAILED, DeviceFailure, GaveUpError, exit_code_for
from .launch import (agent_options, build_devices, connect_logged, log_error, open_usage_log, run_limit,
                     transcript_filter, try_sound_cards)
from .logs import LEVELS, Console
from .runner import TurnTracker
from .settings import Config, Secret, SessionSettings, is_finite, is_sound_card
from .settings_load import config_from_args
from .signals import StopInterrupt, on_signals
from ..errors import (
    AudioError,
    ConfigError,
    ConnectionClosed,
    DeadlineExceeded,
    HandshakeError,
    LocalProtocolError,
    RtEdgeError,
    ServerError,
    TransportError,
)
from ..protocol import events as ev
from ..transport._lifecycle import LinkState
from ..transport.backoff import FATAL_HTTP_STATUSES
from ..voice.agent import VoiceAgent

log = logging.getLogger("rtedge")

Probe = Callable[[float], "str | None"]


class Notifier:
    """sd_notify(3) without libsystemd.

    Args:
        address: ``$NOTIFY_SOCKET``: an absolute path, or ``@name`` (abstract namespace); None or ""
            disables every call.
        watchdog_usec: ``$WATCHDOG_USEC`` as an int, or None.
    """

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address: str | None = None
        if address and address[0] == "@":
            self.address = "\0" + address[1:]
        elif address and address[0] == "/":
            self.address = address
        elif address:
            log.warning("ignoring NOTIFY_SOCKET=%r: not an absolute path or @abstract name", address)
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()  # guards _sock and _failed
        self._failed = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """From ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID`` (sd_watchdog_enabled rules:
        the watchdog is ours only when ``WATCHDOG_PID`` is unset or our pid)."""
        env = os.environ if environ is None else environ
        usec: int | None = None
        try:
            usec = int(env.get("WATCHDOG_USEC", "0")) or None
        except ValueError:
            log.warning("ignoring WATCHDOG_USEC=%r: not an integer", env.get("WATCHDOG_USEC"))
        pid = env.get("WATCHDOG_PID")
        if pid and pid != str(os.getpid()):
            usec = None
        return cls(env.get("NOTIFY_SOCKET"), usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None without a watchdog."""
        return None if not self.enabled or not self.watchdog_usec else self.watchdog_usec / 2e6

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``, ``"STATUS=listening"``...) as one datagram; True if sent."""
        if self.address is None:
            return False
        data = "\n".join(f.replace("\n", " ") for f in fields).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(data, self.address)
                return True
            except OSError as exc:
                if not self._failed:
                    log.warning("sd_notify to %s failed: %s", self.address.replace("\0", "@"), exc)
                self._failed = True
                return False

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds (``MONOTONIC_USEC=`` that goes with ``RELOADING=1``)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Health:
    """Named probes; each returns None while its part makes progress, else what is wrong."""

    def __init__(self) -> None:
        self._probes: dict[str, Probe] = {}
        self._lock = threading.Lock()

    def add(self, name: str, probe: Probe) -> None:
        with self._lock:
            self._probes[name] = probe

    def check(self, now: float | None = None) -> dict[str, str]:
        """Probe name -> what is wrong, for the probes reporting a problem now (empty: healthy).
        A probe that raises counts as a problem."""
        now = time.monotonic() if now is None else now
        with self._lock:
            probes = list(self._probes.items())
        found = {}
        for name, probe in probes:
            try:
                problem = probe(now)
            except Exception as exc:  # a probe bug must not look healthy
                problem = f"{name}: probe failed ({exc!r})"
            if problem:
                found[name] = problem
        return found

    def problems(self, now: float | None = None) -> list[str]:
        """What is wrong now, in words (empty: healthy)."""
        return list(self.check(now).values())


def tick_probe(name: str, last: Callable[[], float], limit: float) -> Probe:
    """Problem when the monotonic time ``last()`` is more than ``limit`` seconds old."""
    def probe(now: float) -> str | None:
        age = now - last()
        return f"{name}: no progress for {age:.1f} s" if age > limit else None
    return probe


def client_probes(client: Any, stall: float) -> dict[str, Probe]:
    """Probes of a :class:`rtedge.Client`'s three threads (see the module docstring)."""
    stats = client.stats
    opts = client._opts
    quiet_limit = opts["ping_interval"] + opts["ping_timeout"] + stall

    def busy(name: str, since: Callable[[], float], doing: str) -> Probe:
        def probe(now: float) -> str | None:
            t = since()
            return f"{name}: {doing} for {now - t:.1f} s" if t and now - t > stall else None
        return probe

    def receiver_quiet(now: float) -> str | None:
        if client.link_state is not LinkState.OPEN or opts["ping_interval"] <= 0:
            return None  # reconnecting is bounded by the backoff; without keepalive silence is normal
        age = now - stats.last_receive
        return f"rtedge-receiver: nothing from the server for {age:.1f} s" if age > quiet_limit else None

    def alive(now: float) -> str | None:
        if client.closed:
            return None
        dead = [t.name for t in client._threads if not t.is_alive()]
        return f"thread(s) ended unexpectedly: {', '.join(dead)}" if dead else None

    return {
        "sender": tick_probe("rtedge-sender", lambda: stats.sender_tick, stall),
        "receiver": busy("rtedge-receiver", lambda: stats.receive_busy_since, "stuck handling a message"),
        "receiver-quiet": receiver_quiet,
        "dispatcher": busy("rtedge-dispatch", lambda: stats.dispatch_busy_since, "stuck in a callback"),
        "threads": alive,
    }


def device_probe(name: str, device: Any, stall: float) -> Probe:
    """Problem when ``device.stats.frames`` has not moved for ``stall`` seconds, or the device failed.

    The probe remembers the last count it saw, so call it from one thread only (the watchdog).
    """
    last = [device.stats.frames, time.monotonic()]

    def probe(now: float) -> str | None:
        if device.failed.is_set():
            return f"{name}: failed ({device.error})"
        frames = device.stats.frames
        if frames != last[0]:
            last[0], last[1] = frames, now
            return None
        age = now - last[1]
        return f"{name}: no audio frames for {age:.1f} s" if age > stall else None
    return probe


class Watchdog:
    """A daemon thread (``rtedge-watchdog``) that pings systemd only while :class:`Health` is clean.

    Without a systemd watchdog it still checks once a second and logs stalls.
    """

    def __init__(self, notifier: Notifier, health: Health) -> None:
        self.notifier, self.health = notifier, health
        self.interval = notifier.watchdog_interval or 1.0
        self.pings = 0
        self.problems: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtedge-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(2.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def check(self) -> bool:
        """Probe once; ping when healthy.  Returns True when healthy.  A warning is logged when the set of
        stalled parts changes (not on every check of a long stall)."""
        problems = self.health.check()
        if problems and problems.keys() != self.problems.keys():
            log.warning("stalled, not pinging the watchdog: %s", "; ".join(problems.values()))
        elif not problems and self.problems:
            log.warning("recovered: all threads make progress again")
        self.problems = problems
        if not problems and self.notifier.watchdog_interval is not None:
            self.notifier.notify("WATCHDOG=1")
            self.pings += 1
        return not problems


def describe_state(client: Any, agent: Any, reconnect_attempt: int) -> str:
    """The session in one word (or two): the ``STATUS=`` vocabulary."""
    link = LinkState(client.link_state)
    if link in (LinkState.RECONNECTING, LinkState.RECYCLING):
        return f"reconnecting (attempt {reconnect_attempt})" if reconnect_attempt else "reconnecting"
    if link in (LinkState.CLOSED, LinkState.GAVE_UP):
        return "disconnected" if link is LinkState.CLOSED else "gave up reconnecting"
    if link in (LinkState.FINISHING, LinkState.CLOSING):
        return "closing"
    if link is LinkState.CONNECTING:
        return "connecting"
    if agent.playing() or client.snapshot.response.value == "active":
        return "speaking"
    return "listening"


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by nearest rank, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def device_faults(devices: dict[str, Any]) -> dict[str, int]:
    """The devices' ``underruns`` and ``overflows``, summed (a device without one counts 0)."""
    return {name: sum(getattr(d.stats, name, 0) for d in devices.values())
            for name in ("underruns", "overflows")}


def session_numbers(client: Any, agent: Any, tracker: Any, devices: dict[str, Any]) -> dict[str, Any]:
    """The counters of a running session, as JSON-friendly numbers (see :func:`stats_line`)."""
    latencies = [t.latency_ms for t in list(tracker.report.turns) if t.latency_ms is not None]
    usage = client.usage
    fmt = client.snapshot.input_format
    not_sent = agent.stats.seconds_not_sent
    return {
        "turns": tracker.turns_started,
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p95_ms": percentile(latencies, 0.95),
        "last_latency_ms": latencies[-1] if latencies else None,
        "reconnects": client.stats.reconnects,
        "recycles": client.stats.recycles,
        **device_faults(devices),
        "audio_dropped_ms": round(client.stats.audio_dropped_ms + client.stats.audio_dropped_outage_ms),
        "vad_seconds_not_sent": round(not_sent, 1),
        # base64 in JSON: 4 wire bytes per 3 audio bytes
        "vad_bytes_saved": int(not_sent * fmt.bytes_per_ms * 1000 * 4 / 3),
        "interruptions": agent.stats.interruptions,
        "tokens_in": usage.input_tokens,
        "tokens_out": usage.output_tokens,
        "tokens_total": usage.total_tokens,
    }


def stats_line(n: Mapping[str, Any]) -> str:
    """``stats: 12 turns, latency p50 410 ms / p95 820 ms, ...`` from :func:`session_numbers`."""
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f} ms"
    return (f"stats: {n['turns']} turns, latency p50 {ms(n['latency_p50_ms'])} / "
            f"p95 {ms(n['latency_p95_ms'])}, "
            f"{n['reconnects']} reconnects, {n['recycles']} recycles, {n['underruns']} underruns, "
            f"{n['overflows']} overflows, "
            f"{n['audio_dropped_ms']} ms audio dropped, {n['vad_seconds_not_sent']:.1f} s mic audio not sent "
            f"({n['vad_bytes_saved'] / 1e6:.2f} MB), {n['interruptions']} interruptions, "
            f"tokens in {n['tokens_in']} / out {n['tokens_out']} / total {n['tokens_total']}")


def status_text(state: str, n: Mapping[str, Any]) -> str:
    """``STATUS=`` and the terminal's status line: the state, then the last turn's latency and tokens."""
    parts = [state]
    if n["turns"]:
        last = n["last_latency_ms"]
        parts.append(f"{n['turns']} turns" + ("" if last is None else f", last {last:.0f} ms"))
        parts.append(f"{n['tokens_total']} tokens")
    if n["reconnects"]:
        parts.append(f"{n['reconnects']} reconnects")
    return " | ".join(parts)


class Service:
    """One ``rtedge run`` with devices: the main loop, sd_notify, signals, reload (see the module doc)."""

    def __init__(self, config: Config, args: argparse.Namespace, console: Console, key: Secret | None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.config, self.args, self.console, self.key = config, args, console, key
        self.environ = os.environ if environ is None else environ
        self.notifier = Notifier.from_env(self.environ)
        self.health = Health()
        self.watchdog = Watchdog(self.notifier, self.health)
        self._wake = threading.Event()
        self._stop_reason: str | None = None
        self._reload_requested = False
        self._main_tick = time.monotonic()
        self._attempt = 0
        self._agent_error: BaseException | None = None
        self._status = ""

    # ------------------------------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        """Connect, run until stopped, close; returns the exit code.  Raises RtEdgeError on failures
        before the session runs (the caller maps them to exit codes)."""
        s = self.config.service
        limit = s.stall_seconds + self.config.provider.connect_timeout
        self.health.add("main", tick_probe("main thread", lambda: self._main_tick, limit))
        restore = on_signals({signal.SIGTERM: self._request_stop, signal.SIGINT: self._request_stop,
                              signal.SIGHUP: self._request_reload})
        self.watchdog.start()
        try:
            self._set_status("connecting")
            if not self._wait_for_sound_cards():
                return self._stopped_while_starting()
            mic, speaker = build_devices(self.config, loop=bool(getattr(self.args, "loop", False)))
            client = self._connect()
            if client is None:
                return self._stopped_while_starting()
            usage_log = None
            try:
                usage_log = open_usage_log(self.config, client)
                return self._session(client, mic, speaker)
            finally:
                client.close(s.stop_timeout)
                if usage_log is not None:
                    usage_log.close()
        finally:
            self.watchdog.stop()
            restore()
            self.notifier.close()

    def _stopped_while_starting(self) -> int:
        """A stop signal came before the session ran (waiting for the network or the sound card)."""
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        log.info("stopping (%s) before the session started", self._stop_reason or "signal")
        return EXIT_OK

    def _request_stop(self) -> None:
        self._stop_reason = self._stop_reason or "signal"
        self._wake.set()

    def _request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    def _connect(self) -> Any:
        """Connect; with ``reconnect.retry_first_connect`` retry recoverable failures with the backoff.
        Returns None when stopped meanwhile."""
        backoff = self.config.reconnect.to_backoff() if self.config.reconnect.retry_first_connect else None
        attempt = 0
        while True:
            attempt += 1
            self._main_tick = time.monotonic()
            try:
                return connect_logged(self.config, self.key, attempt)
            except StopInterrupt:  # a stop while connecting: the attempt is abandoned (see connect_logged)
                log.debug("connect attempt %d abandoned: %s", attempt, self._stop_reason)
                return None
            except (TransportError, DeadlineExceeded) as exc:
                if self._stop_reason is not None:  # stopped while this attempt was under way: not a fault
                    log.debug("connect attempt %d ended after the stop: %s", attempt, exc)
                    return None
                fatal = isinstance(exc, HandshakeError) and exc.status_code in FATAL_HTTP_STATUSES
                if backoff is None or fatal:
                    raise
                if backoff.exhausted(attempt + 1):
                    raise GaveUpError(f"gave up connecting after {attempt} attempts; last: {exc}") from None
                delay = backoff.delay(attempt, retry_after=getattr(exc, "retry_after", None))
                log.warning("cannot connect (%s); attempt %d in %.2f s", exc, attempt + 1, delay)
                # still starting: ask systemd for time for the wait and the next attempt (TimeoutStartSec)
                budget = delay + self.config.provider.connect_timeout + 30.0
                self.notifier.notify(f"EXTEND_TIMEOUT_USEC={int(budget * 1e6)}")
                self._set_status(f"connecting (attempt {attempt + 1})")
            if self._sleep(delay):
                return None

    def _wait_for_sound_cards(self) -> bool:
        """Open the configured sound cards once before connecting; with ``reconnect.retry_first_connect``
        wait (with the reconnect backoff) until they open: a USB card may appear after the service
        started.  False when stopped meanwhile.

        Raises:
            DeviceFailure: still failing after ``reconnect.max_attempts`` (or at once without the option).
        """
        a = self.config.audio
        if not is_sound_card(a.mic) and not is_sound_card(a.speaker):
            return True
        if not self.config.reconnect.retry_first_connect:
            try_sound_cards(self.config)  # a missing card fails now, before a (billed) session is opened
            return True
        backoff = self.config.reconnect.to_backoff()
        attempt = 0
        while True:
            attempt += 1
            self._main_tick = time.monotonic()
            try:
                try_sound_cards(self.config)
                return True
            except DeviceFailure as exc:
                if backoff is None or backoff.exhausted(attempt + 1):
                    raise DeviceFailure(f"gave up waiting for the sound card after {attempt} attempts: {exc}")
                delay = backoff.delay(attempt)
                log.warning("sound card not ready (%s); attempt %d in %.2f s", exc, attempt + 1, delay)
                self.notifier.notify(f"EXTEND_TIMEOUT_USEC={int((delay + 30.0) * 1e6)}")
                self._set_status(f"waiting for the sound card (attempt {attempt + 1})")
            if self._sleep(delay):
                return False

    def _sleep(self, seconds: float) -> bool:
        """Wait, keeping the main heartbeat; True when a stop was requested."""
        end = time.monotonic() + seconds
        while self._stop_reason is None and time.monotonic() < end:
            self._main_tick = time.monotonic()
            self._wake.wait(min(0.25, max(0.0, end - time.monotonic())))
            self._wake.clear()
        return self._stop_reason is not None

    # ------------------------------------------------------------------------------------------ the session
    def _session(self, client: Any, mic: Any, speaker: Any) -> int:
        agent = VoiceAgent(client, mic, speaker, **agent_options(self.config))
        tracker = TurnTracker(client, None, self._echo, keep_turns=1000)

        def on_event(event: Any) -> None:  # receiver thread: must not block
            if isinstance(event, ev.Reconnecting | ev.Reconnected):
                self._attempt = event.attempt if isinstance(event, ev.Reconnecting) else 0
                self._wake.set()

        client._add_event_hook(on_event)
        for name, probe in client_probes(client, self.config.service.stall_seconds).items():
            self.health.add(name, probe)
        until_input_ends = is_finite(self.config.audio.mic) and not getattr(self.args, "loop", False)
        thread = threading.Thread(target=self._agent_main, args=(agent, until_input_ends),
                                  name="rtedge-agent", daemon=True)
        devices = {"mic": mic, "speaker": speaker}
        thread.start()
        try:
            self._loop(client, agent, tracker, thread, devices)
        finally:
            self._shutdown(agent, thread)
        return self._finish(client, agent, tracker, devices)

    def _agent_main(self, agent: Any, until_input_ends: bool) -> None:
        try:
            agent.run(until_input_ends=until_input_ends)
        except BaseException as exc:  # reported by the main thread
            self._agent_error = exc
        finally:
            self._wake.set()

    def _loop(self, client: Any, agent: Any, tracker: Any, thread: threading.Thread,
              devices: dict[str, Any]) -> None:
        s = self.config.service
        max_seconds = run_limit(self.config, bool(getattr(self.args, "input", None)))
        deadline = time.monotonic() + max_seconds if max_seconds else None
        stats_due = time.monotonic() + s.stats_interval if s.stats_interval else None
        ready = False
        while True:
            self._main_tick = now = time.monotonic()
            if self._stop_reason is not None:
                return
            if not thread.is_alive():
                if devices["mic"].finished.is_set() and self._agent_error is None and not client.closed:
                    self._stop_reason = "the input ended"
                return
            if deadline is not None and now >= deadline:
                self._stop_reason = "max_seconds"
                return
            if any(d.failed.is_set() for d in devices.values()):
                self._stop_reason = "device failed"
                return
            if self._reload_requested:
                self._reload_requested = False
                self._reload(client)
            if not ready and all(d.stats.frames > 0 for d in devices.values()):
                ready = True
                for name, device in devices.items():
                    self.health.add(name, device_probe(f"{name} ({device!r})", device, s.stall_seconds))
                self.notifier.notify("READY=1", "STATUS=ready", f"MAINPID={os.getpid()}")
                self._status = "ready"
                log.info("ready: session configured, audio open")
            if ready:
                numbers = session_numbers(client, agent, tracker, devices)
                state = describe_state(client, agent, self._attempt)
                stalled = self.watchdog.problems  # what keeps the watchdog from pinging, said in STATUS=
                if stalled:
                    state = "stalled: " + "; ".join(sorted(stalled.values()))
                self._set_status(status_text(state, numbers))
                if stats_due is not None and now >= stats_due:
                    stats_due = now + s.stats_interval
                    self.console.line(stats_line(numbers), event="stats", **numbers)
            self._wake.wait(0.05)
            self._wake.clear()

    def _set_status(self, text: str) -> None:
        if text != self._status:
            self._status = text
            self.notifier.notify(f"STATUS={text}")
            self.console.status(text)

    def _echo(self, text: str) -> None:
        transcript_filter(self.config, self.console.line)(text)  # the config a SIGHUP reload gave, if any

    def _shutdown(self, agent: Any, thread: threading.Thread) -> None:
        self.watchdog.stop()  # systemd stops watching once the service is stopping; so do the pings
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        self._status = "stopping"
        self.console.status("stopping")
        log.info("stopping (%s)", self._stop_reason or "the session ended")
        agent.stop()
        thread.join(self.config.service.stop_timeout)

    def _finish(self, client: Any, agent: Any, tracker: Any, devices: dict[str, Any]) -> int:
        """Summary line and exit code once the loop ended."""
        numbers = session_numbers(client, agent, tracker, devices)
        self.console.clear_status()
        self.console.line(stats_line(numbers), event="stats", **numbers)
        u = client.usage
        self.console.line(f"summary: {tracker.turns_started} turn(s), "
                          f"{agent.stats.interruptions} interruption(s), "
                          f"{agent.stats.seconds_not_sent:.1f} s of mic audio not sent (VAD gate, echo "
                          "guard), "
                          f"tokens in {u.input_tokens} / out {u.output_tokens} / total {u.total_tokens}")
        error = self._agent_error
        if error is not None and not isinstance(error, RtEdgeError):
            raise error
        if isinstance(error, AudioError) or self._stop_reason == "device failed":
            if error is not None and all(d.error is not error for d in devices.values()):
                log.error("%s", error)  # a device's own failure was logged once, by the device
            return EXIT_AUDIO
        if error is not None:
            log_error(error)
            return exit_code_for(error)
        code = self._link_exit(client)
        if code == EXIT_OK and tracker.turns_failed and is_finite(self.config.audio.mic):
            log.error("%d turn(s) failed", tracker.turns_failed)
            return EXIT_TURN_FAILED
        return code

    def _link_exit(self, client: Any) -> int:
        err = client.fatal_error
        if err is None:
            return EXIT_OK
        if client.link_state is LinkState.GAVE_UP and isinstance(err, ConnectionClosed) \
                and self.config.reconnect.enabled and str(err).startswith("gave up: "):
            # attempts failed: the client has said so ("giving up on the connection: ...", an error line)
            return exit_code_for(GaveUpError(str(err)))
        log_error(err)
        return exit_code_for(err)

    # ------------------------------------------------------------------------------------------ reload
    def _reload(self, client: Any) -> None:
        """SIGHUP: re-read the config; re-send ``session.update`` on the same connection; apply log level."""
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", "STATUS=reloading")
        log.info("reloading the configuration")
        try:
            new = config_from_args(self.args, self.environ)
        except ConfigError as exc:
            log_error(exc)
            log.error("reload failed; keeping the running configuration")
            self.notifier.notify("READY=1", "STATUS=reload failed (see the log); running as before")
            return
        for key in sorted(_changed(self.config, new) - {"session", "logging"}):
            log.warning("%s changed; restart the service to apply it", key)
        session = new.session
        update, stuck = reload_update(self.config.session, new.session, interrupt=new.vad.barge_in != "off",
                                      dialect=client.dialect, model=new.provider.model or None)
        for key in stuck:
            log.warning("session.%s was emptied: the server keeps its current value until a restart (no "
                        "update restores the server's default)", key)
        try:
            client.update_session(update, timeout=new.provider.connect_timeout)
        except (ServerError, DeadlineExceeded, ConnectionClosed, LocalProtocolError) as exc:
            log.error("reload: session.update failed: %s; the session keeps its previous settings", exc)
            session = self.config.session
        logging.getLogger("rtedge").setLevel(LEVELS[new.logging.level])
        self.config = attrs.evolve(self.config, session=session, logging=new.logging)
        if session is new.session:
            self.notifier.notify("READY=1", f"STATUS={self._status}")
            log.info("configuration reloaded")
        else:
            self.notifier.notify("READY=1", "STATUS=reload failed (see the log); running as before")


#: session settings whose empty value means "the server's default", which no update restores
_EMPTIED_STUCK = ("instructions", "voice", "noise_reduction")


def reload_update(old: SessionSettings, new: SessionSettings, *, interrupt: bool, dialect: Any,
                  model: str | None) -> tuple[Any, list[str]]:
    """The ``session.update`` of a SIGHUP reload from ``old`` to ``new`` (as the provider's dialect starts a
    session: :meth:`~rtedge.protocol.dialects.base.Dialect.initial_session`), and the settings emptied that
    it cannot reset.  An empty setting is left out of an update, so the server kept the value it had: an
    emptied ``transcription_model`` now turns transcription off (a transcription session gets its default
    model, as a fresh one would) and an emptied ``max_output_tokens`` lifts the bound where the provider
    can say so; the others are reported."""
    update = new.to_session_config(interrupt=interrupt)
    stuck = [key for key in _EMPTIED_STUCK if getattr(old, key) and not getattr(new, key)]
    if old.transcription_model and not new.transcription_model and dialect.answers:
        update = attrs.evolve(update, transcription=None)
    if old.max_output_tokens and not new.max_output_tokens:
        update = attrs.evolve(update, max_output_tokens="inf")
        if '"inf"' not in json.dumps(dialect.encode_session(update)):  # (DashScope has no "no bound")
            stuck.append("max_output_tokens")
    return dialect.initial_session(model, update), stuck


def _changed(old: Config, new: Config) -> set[str]:
    """Sections (or ``section.key`` outside session/logging) whose values differ."""
    out: set[str] = set()
    for section in ("provider", "session", "audio", "vad", "reconnect", "service", "logging"):
        a, b = getattr(old, section), getattr(new, section)
        if a != b:
            if section in ("session", "logging"):
                out.add(section)
            else:
                out.update(f"{section}.{f.name}" for f in attrs.fields(type(a))
                           if getattr(a, f.name) != getattr(b, f.name))
    return out
