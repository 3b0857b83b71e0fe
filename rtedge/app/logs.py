"""Output of the ``rtedge`` command: log records, result lines and the live status line.

Three formats:

* ``human``: ``rtedge: warning: ...`` on stderr, result lines (transcripts, turns, statistics) on
  stdout (on stderr as well when stdout carries audio, ``--speaker raw:-``), and on a terminal a
  status line that is redrawn in place under them;
* ``journal``: for systemd's journal (chosen by ``auto`` when ``$JOURNAL_STREAM`` names stderr):
  every line starts with a ``<N>`` syslog priority and has no timestamp (the journal adds one);
* ``json``: one JSON object per line (``ts``, ``level``, ``msg`` and structured fields).

Secrets: :class:`RedactFilter` replaces any registered secret in every record, as a second line of
defence behind the code that never formats a key into a message.

Owns: log formats and the console's result and status lines.  Must not: write secrets (the redactor drops
them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

from ..audio import threadnames as _threadnames

#: syslog priorities (sd-daemon.h): <3> error, <4> warning, <5> notice, <6> info, <7> debug
PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

_lock = threading.RLock()  # one writer at a time, so the status line is never torn


def journal_stream_is_stderr(environ: dict[str, str] | None = None, stream: TextIO | None = None) -> bool:
    """True when ``$JOURNAL_STREAM`` (``DEV:INODE``) names the file stderr is connected to.

    That is systemd's documented test: a child whose stderr was redirected elsewhere inherits the
    variable but must not write journal prefixes.
    """
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat((stream or sys.stderr).fileno())
        return bool(value) and (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both of the first two
        return False


def pick_format(setting: str, environ: dict[str, str] | None = None) -> str:
    """``auto`` resolved: ``journal`` when stderr is the journal, else ``human``."""
    if setting != "auto":
        return setting
    return "journal" if journal_stream_is_stderr(environ) else "human"


class RedactFilter(logging.Filter):
    """Replaces registered secrets in log messages (and their arguments) with ``<redacted>``."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "<redacted>")
            record.msg, record.args = message, None
        return True

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<redacted>")
        return text


class Console:
    """Where everything the CLI prints goes, in the chosen format.

    Args:
        fmt: ``human``, ``journal`` or ``json``.
        status_line: draw the live status line (only ever on a terminal, only in ``human``).
        stdout_is_audio: stdout carries audio (``--speaker raw:-``): result lines go to stderr too, in
            every format, so that not one byte of text lands in the PCM stream.
    """

    def __init__(self, fmt: str = "human", status_line: bool = True, stdout_is_audio: bool = False) -> None:
        self.fmt = fmt
        self.stdout_is_audio = stdout_is_audio
        self.redact = RedactFilter()
        self._status = ""
        self._draw_status = status_line and fmt == "human" and _isatty(sys.stderr)

    # result lines: transcripts, turns, statistics, the summary (stdout, or stderr when stdout is audio)
    def line(self, text: str, level: int = logging.INFO, **fields: Any) -> None:
        """One result line on stdout, or on stderr when stdout carries audio (``fields`` become JSON
        members in ``json`` format)."""
        text = self.redact.scrub(text)
        if self.fmt == "json":
            out = json.dumps({"ts": _iso_now(), "level": logging.getLevelName(level).lower(), "msg": text,
                              **fields}, ensure_ascii=False, default=str)
        elif self.fmt == "journal":
            out = _prefixed(text, level)
        else:
            out = text
        self._write(sys.stderr if self.stdout_is_audio else sys.stdout, out)

    def record(self, text: str) -> None:
        """A formatted log record on stderr."""
        self._write(sys.stderr, text)

    def status(self, text: str) -> None:
        """Replace the live status line (a no-op unless drawing on a terminal)."""
        if not self._draw_status:
            return
        with _lock:
            self._status = text
            width = _width()
            sys.stderr.write("\r\033[K" + text[: width - 1])
            sys.stderr.flush()

    def clear_status(self) -> None:
        """Remove the status line for good (before the summary)."""
        with _lock:
            if self._draw_status and self._status:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()
            self._status = ""

    def _write(self, stream: TextIO, text: str) -> None:
        with _lock:
            redraw = self._draw_status and self._status
            if redraw:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()
            stream.write(text + "\n")
            stream.flush()
            if redraw:
                sys.stderr.write(self._status[: _width() - 1])
                sys.stderr.flush()


class ConsoleHandler(logging.Handler):
    """A logging handler that writes through a :class:`Console` in its format."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self.addFilter(console.redact)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and self.console.fmt != "json":
                message += "\n" + self.formatter_exc(record)
            if self.console.fmt == "json":
                # PortAudio's callback threads are named after their device
                thread = _threadnames.name_of(record.thread, record.threadName or "")
                obj = {"ts": _iso_now(record.created), "level": record.levelname.lower(),
                       "logger": record.name, "thread": thread, "msg": message}
                if record.exc_info:
                    obj["exc"] = self.formatter_exc(record)
                text = json.dumps(obj, ensure_ascii=False, default=str)
            elif self.console.fmt == "journal":
                text = _prefixed(message, record.levelno)
            else:
                text = f"rtedge: {record.levelname.lower()}: {message}"
            self.console.record(self.console.redact.scrub(text))
        except Exception:  # a broken pipe must not kill the caller
            self.handleError(record)

    @staticmethod
    def formatter_exc(record: logging.LogRecord) -> str:
        return logging.Formatter().formatException(record.exc_info) if record.exc_info else ""


@contextlib.contextmanager
def logging_to(console: Console, level: str) -> Iterator[None]:
    """Route the ``rtedge`` loggers through ``console`` at ``level`` for the duration; then restore."""
    logger = logging.getLogger("rtedge")
    handler = ConsoleHandler(console)
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(LEVELS.get(level, logging.INFO))
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _prefixed(text: str, level: int) -> str:
    prefix = f"<{PRIORITY.get(level, 6)}>"
    return "\n".join(prefix + line for line in text.splitlines() or [""])


def _iso_now(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _width() -> int:
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80
    return columns if columns >= 20 else 80  # a pseudo-terminal without a size reports 0
