"""A JSONL usage log per session, for billing reconciliation.

Attach a :class:`UsageLog` to a connected client and every response's token usage is
appended to a file as one JSON object per line, in the normalized shape of
:class:`rtedge.Usage` (the same for every provider) next to the provider's own usage
object; closing the log appends one session-total line::

    with rtedge.connect("qwen", model="qwen3.5-omni-flash-realtime") as client, \\
            UsageLog(client, "/var/lib/rtedge/usage.jsonl"):
        ...

Lines (``ts`` is UTC ISO 8601 with milliseconds; ``usage`` holds ``input_tokens``,
``output_tokens``, ``total_tokens``, ``input_text_tokens``, ``input_audio_tokens``,
``input_image_tokens``, ``cached_tokens``, ``output_text_tokens``, ``output_audio_tokens``)::

    {"kind": "response", "ts": ..., "provider": "openai", "model": "gpt-realtime",
     "session_id": "sess_...", "response_id": "resp_...", "status": "completed",
     "usage": {...}, "raw_usage": {... as the provider sent it ...}}
    {"kind": "transcription", ... "response_id": null, "status": "completed", ...}   (per utterance of a
                                                                                 transcription session)
    {"kind": "input_transcription", ..., "item_id": "item_...", ...}   (the user's audio transcribed in a
                                                                       session that answers)
    {"kind": "session", "ts": ..., "provider": ..., "model": ..., "session_ids": [...],
     "started": ..., "seconds": 12.3, "responses": 4, "usage": {...totals...}}

* ``raw_usage`` is the usage object the provider sent, with every field in it: ``response.usage``
  (OpenAI, Azure, DashScope), the top level of ``response.done`` (xAI, with
  ``output_audio_seconds`` and ``billable_audio_seconds``), ``transcription.done`` (vLLM's
  ``prompt_tokens``/``completion_tokens``) or, in OpenAI's transcription sessions,
  ``conversation.item.input_audio_transcription.completed`` (tokens, or ``{"type": "duration", ...}``).
  In a session that answers, OpenAI bills the transcription of the user's audio apart and reports it on
  that same event: it is logged as ``input_transcription``, and is not in the session line's total
  (:attr:`rtedge.Client.usage` counts responses there).  One spelling
  differs from the wire: DashScope's ``input_tokens_details``/``output_tokens_details`` appear as
  ``input_token_details``/``output_token_details``, because rtedge's dialect renames them on receipt
  (values unchanged).
* A ``response.done`` that rtedge made itself (a cancel the server never confirmed, a lost
  connection) is logged with ``"synthetic": true``, zero usage and ``raw_usage`` null: the
  provider reported nothing for it, which is worth knowing when the invoice disagrees.
* ``session_id`` is the provider's session of that response; after a reconnect it changes
  and the session line lists every one.  The session line's ``usage`` is
  :attr:`rtedge.Client.usage` (the client's totals across reconnects); it equals the sum of
  the response lines when the log was attached right after ``connect``.

Lines are written by the client's dispatcher thread (``rtedge-dispatch``) and flushed one by
one (``fsync=True`` also syncs each to the disk), so a crash loses at most the line being
written.  The file is opened in append mode: one file can collect many sessions.

Owns: the JSONL usage log.  Must not: block the dispatcher (it only appends a line per response).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import parse_qs, urlsplit

import attrs

from ..protocol import events as ev
from ..protocol.usage import Usage

if TYPE_CHECKING:
    from ..transport.client import Client

__all__ = ["UsageLog", "usage_fields"]

log = logging.getLogger("rtedge")

_EVENTS = ("session.created", "response.done", "transcription.done",
           "conversation.item.input_audio_transcription.completed")


def usage_fields(usage: Usage) -> dict[str, int]:
    """The normalized counts of ``usage`` as a dict (``responses`` left out)."""
    return {f.name: getattr(usage, f.name) for f in attrs.fields(Usage) if f.name != "responses"}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _configured_model(client: Any) -> str | None:
    """The model the client asked for: the URL's ``model`` query, else the one in its session (vLLM)."""
    named = parse_qs(urlsplit(str(getattr(client, "_url", "") or "")).query).get("model")
    if named:
        return named[0]
    extra = getattr(getattr(client, "_requested", None), "extra", None)
    if isinstance(extra, Mapping) and isinstance(extra.get("model"), str):
        return str(extra["model"])
    return None


class UsageLog:
    """Append one JSON line per response (and a session total on :meth:`close`) to ``path``.

    Args:
        client: a connected :class:`rtedge.Client` (any provider).
        path: the JSONL file (created if missing, appended to otherwise).
        model: the model name to log (default: what the server reports, else the one asked for;
            an Azure deployment name for Azure).
        extra: fields added to every line (a device name, a customer id...).
        fsync: also ``os.fsync`` after each line (slower; survives power loss).
        close_timeout: on :meth:`close`, how long to wait for response lines still on their way
            through the dispatcher before the total is written.

    Raises:
        OSError: the file cannot be opened.

    Attributes:
        lines: lines written so far.
        usage: the sum of the usage logged so far (response and transcription lines).
    """

    def __init__(self, client: Client, path: str | os.PathLike[str], *, model: str | None = None,
                 extra: Mapping[str, Any] | None = None, fsync: bool = False,
                 close_timeout: float = 2.0) -> None:
        self.client = client
        self.path = os.fspath(path)
        self.fsync = fsync
        self.close_timeout = close_timeout
        self.extra = dict(extra or {})
        self.lines = 0
        self.usage = Usage()
        self._model = model
        self._reported_model: str | None = None
        self._session_ids: list[str] = []
        state = client.snapshot
        if state.session_id:
            self._session_ids.append(state.session_id)
        reported = state.session.get("model") if isinstance(state.session, Mapping) else None
        self._reported_model = reported if isinstance(reported, str) and reported else None
        self._baseline = client.usage  # what the client counted before the log was attached
        self._started = _now()
        self._t0 = time.monotonic()
        self._cond = threading.Condition()
        self._file: TextIO | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._callback = self._on_event
        for kind in _EVENTS:
            client.on(kind, self._callback)

    def __repr__(self) -> str:
        return f"<rtedge.UsageLog {self.path!r} {self.lines} line(s){' closed' if self.closed else ''}>"

    def __enter__(self) -> UsageLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._file is None

    @property
    def model(self) -> str | None:
        """The model name the lines carry."""
        return self._model or self._reported_model or _configured_model(self.client)

    # ------------------------------------------------------------------------------------------ events
    def _on_event(self, event: ev.ServerEvent) -> None:
        """On ``rtedge-dispatch``: one line per response or transcription."""
        if isinstance(event, ev.SessionCreated):
            sid, model = event.session.get("id"), event.session.get("model")
            if isinstance(sid, str) and sid and sid not in self._session_ids:
                self._session_ids.append(sid)
            if isinstance(model, str) and model:
                self._reported_model = model
            return
        if isinstance(event, ev.ResponseDone):
            line = self._response_line(event)
        elif isinstance(event, ev.TranscriptionDone | ev.InputAudioTranscriptionCompleted):
            raw = dict(event.usage) if isinstance(event.usage, Mapping) else None
            if isinstance(event, ev.InputAudioTranscriptionCompleted) and self.client.dialect.answers:
                if raw is None:
                    return
                line = self._line("input_transcription", None, "completed", Usage.from_raw(raw), raw)
                line["item_id"] = event.item_id
                line.pop("_usage")
                self._write(line)  # billed apart: not in the session's total (client.usage)
                return
            line = self._line("transcription", None, "completed", Usage.from_raw(raw), raw)
        else:
            return
        self._write(line, line.pop("_usage"))

    def _response_line(self, event: ev.ResponseDone) -> dict[str, Any]:
        response, raw = event.response, event.raw
        if raw.get("rtedge_synthetic"):
            line = self._line("response", event.response_id, event.status, Usage(), None)
            line["synthetic"] = True
            return line
        top = raw.get("usage")  # xAI reports usage at the top level of response.done
        raw_usage: Any = dict(top) if isinstance(top, Mapping) and top else response.get("usage")
        usage = Usage.from_raw(response.get("usage"))
        if not usage.responses:
            usage = Usage.from_raw(top)
        return self._line("response", event.response_id, event.status, usage,
                          dict(raw_usage) if isinstance(raw_usage, Mapping) else None)

    def _line(self, kind: str, response_id: str | None, status: str, usage: Usage,
              raw_usage: dict[str, Any] | None) -> dict[str, Any]:
        return {"kind": kind, "ts": _now(), "provider": self.client.dialect.name, "model": self.model,
                "session_id": self._session_ids[-1] if self._session_ids else None,
                "response_id": response_id, "status": status, "usage": usage_fields(usage),
                "raw_usage": raw_usage, **self.extra, "_usage": usage}

    def _write(self, line: dict[str, Any], usage: Usage | None = None) -> None:
        text = json.dumps(line, ensure_ascii=False, default=str) + "\n"
        with self._cond:
            if self._file is None:
                return
            try:
                self._file.write(text)
                self._file.flush()
                if self.fsync:
                    os.fsync(self._file.fileno())
            except OSError as exc:  # a full disk must not take the session down
                log.error("usage log %s: cannot write: %s", self.path, exc)
                return
            self.lines += 1
            if usage is not None and usage.responses:
                self.usage = self.usage + usage
            self._cond.notify_all()

    # ------------------------------------------------------------------------------------------ close
    def close(self, timeout: float | None = None) -> None:
        """Write the session-total line and close the file (idempotent).

        Response lines still queued in the client's dispatcher are waited for, up to
        ``timeout`` (default: ``close_timeout``), so that the total matches the lines above it.
        """
        if self.closed:
            return
        wait = self.close_timeout if timeout is None else timeout
        with self._cond:
            self._cond.wait_for(lambda: self._baseline + self.usage == self.client.usage, wait)
        for kind in _EVENTS:
            self.client.off(kind, self._callback)
        total = self.client.usage
        self._write({"kind": "session", "ts": _now(), "provider": self.client.dialect.name,
                     "model": self.model, "session_ids": list(self._session_ids), "started": self._started,
                     "seconds": round(time.monotonic() - self._t0, 3), "responses": total.responses,
                     "usage": usage_fields(total), **self.extra})
        with self._cond:
            file, self._file = self._file, None
        if file is not None:
            file.close()
