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
  reconnects, underruns, dropped audio, what the VAD gate saved, tokens.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..transport._lifecycle import LinkState

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
        "underruns": sum(getattr(d.stats, "underruns", 0) for d in devices.values()),
        "overflows": sum(getattr(d.stats, "overflows", 0) for d in devices.values()),
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
            f"{n['reconnects']} reconnects, {n['underruns']} underruns, {n['overflows']} overflows, "
            f"{n['audio_dropped_ms']} ms audio dropped, VAD gate saved {n['vad_seconds_not_sent']:.1f} s "
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
