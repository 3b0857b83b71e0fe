"""vLLM's realtime transcription endpoint (``vllm serve`` with a realtime ASR model).

Not a conversation API: the socket carries speech in and text out, one utterance
at a time.  The wire facts this dialect encodes:

* ``ws://host:port/v1/realtime`` with no query: the model is named in
  ``session.update``, at the **top level** (``{"type": "session.update",
  "model": "..."}``), and the server sends no ``session.updated`` back
  (:attr:`acknowledges_session_update` is False, so ``connect()`` does not wait).
* ``Authorization: Bearer <key>`` when the server runs with ``--api-key``
  (``VLLM_API_KEY`` by default); a bad key is a 401 at the handshake.
* Input is PCM16 mono at **16 kHz**.
* ``input_audio_buffer.commit`` *starts* a generation; appends follow;
  ``input_audio_buffer.commit`` with ``"final": true`` ends the utterance
  (:class:`~rtedge.protocol.events.InputAudioBufferCommit` ``final=True``).
  The server streams ``transcription.delta`` and ends with
  ``transcription.done`` (``text`` and Chat-style ``usage``).  A start commit
  while a generation runs is ignored by the server, and appends between the
  final commit and ``transcription.done`` are dropped, so wait for ``done``.
* ``session.created`` is ``{"type", "id": "sess-...", "created"}``: no
  ``session`` object and no ``event_id`` (normalised into a ``session``
  object here); errors are ``{"type": "error", "error": "<message>",
  "code": "<code>"}`` (normalised into the GA error object).
* No ``response.*``, ``conversation.*`` or ``input_audio_buffer.clear``: the
  server answers them with ``unknown_event``, so the session refuses them
  locally (capabilities are empty but ``commit_final``).

Client events are sent without ``event_id``: the server never echoes one and its
request models log every field they do not know.

Owns: vLLM's transcription wire shapes.  Must not: do I/O.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ...errors import ConfigError
from .._unset import UNSET
from ..config import AudioFormat, SessionConfig, Transcription
from ..events import (
    ClientEvent,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    RawClientEvent,
    SessionUpdate,
)
from .base import Dialect, check_ws_url

#: The path vLLM serves the endpoint on (used when the URL gives no path).
REALTIME_PATH = "/v1/realtime"
#: Input format: PCM16 mono at 16 kHz.
INPUT_FORMAT = AudioFormat.pcm(16000)


def _model_of(config: SessionConfig) -> str | None:
    """The model a config names: ``extra["model"]``, else ``transcription.model``."""
    model = config.extra.get("model")
    if isinstance(model, str) and model:
        return model
    tr = config.transcription
    if isinstance(tr, Transcription) and isinstance(tr.model, str) and tr.model:
        return tr.model
    if isinstance(tr, Mapping) and isinstance(tr.get("model"), str) and tr["model"]:
        return str(tr["model"])
    return None


class VLLMDialect(Dialect):
    """``ws://host:port/v1/realtime``; the model goes in ``session.update``."""

    name = "vllm"
    default_model = ""
    default_url = ""
    api_key_env = "VLLM_API_KEY"
    default_input_format = INPUT_FORMAT
    default_output_format = INPUT_FORMAT  # no audio comes back; kept equal for the byte accounting
    capabilities: frozenset[str] = frozenset({"commit_final"})
    acknowledges_session_update = False
    api_key_required = False  # `vllm serve` runs without --api-key unless told otherwise

    # -- connection ------------------------------------------------------------------------------------
    def url(self, model: str | None, url: str | None = None) -> str:
        """``url`` as given (no ``?model=``); a bare ``ws://host:port`` gets ``/v1/realtime``."""
        if not url:
            raise ConfigError("the vllm provider needs url='ws://HOST:PORT/v1/realtime', the vLLM server "
                              "(command line: --url, provider.url)")
        check_ws_url(url)
        parts = urlsplit(url)
        if parts.path in ("", "/"):
            parts = parts._replace(path=REALTIME_PATH)
        return urlunsplit(parts)

    def needs_served_model(self, model: str | None, session: SessionConfig | None) -> bool:
        """True when neither ``model`` nor ``session`` names a model: the connection then asks the server
        (``GET /v1/models``, what vLLM itself answers) and uses the model it serves."""
        return not model and (session is None or _model_of(session) is None)

    def initial_session(self, model: str | None, session: SessionConfig | None) -> SessionConfig | None:
        """The ``session.update`` that names ``model`` (vLLM refuses audio until one arrives).

        Raises:
            ConfigError: no model at all, or ``model`` disagrees with the one in ``session``.
        """
        named = _model_of(session) if session is not None else None
        if model and named and model != named:
            raise ConfigError(f"model={model!r} disagrees with the session's model {named!r}")
        if not (model or named):
            raise ConfigError("the vllm provider needs model= (the name the vLLM server serves, "
                              "e.g. 'mistralai/Voxtral-Mini-4B-Realtime-2602')")
        if named:
            return session
        extra = SessionConfig(extra={"model": model})
        return extra if session is None else session.merged(extra)

    # -- client events -----------------------------------------------------------------------------------
    def encode(self, event: ClientEvent) -> dict[str, Any]:
        if isinstance(event, RawClientEvent):
            return dict(event.data)
        if isinstance(event, SessionUpdate):
            return {"type": event.TYPE, **self.encode_session(event.session)}
        out: dict[str, Any] = {"type": event.TYPE}
        if isinstance(event, InputAudioBufferAppend):
            out["audio"] = base64.b64encode(event.audio).decode("ascii")
        elif isinstance(event, InputAudioBufferCommit) and event.final is not UNSET:
            out["final"] = bool(event.final)
        return out

    def encode_session(self, config: SessionConfig) -> dict[str, Any]:
        """The top-level fields of ``session.update``: ``model``, then ``extra`` verbatim.

        Raises:
            ConfigError: no model, or a field vLLM has no use for (voice, tools, turn detection...).
        """
        model = _model_of(config)
        if model is None:
            raise ConfigError("the vllm provider needs a model in session.update: "
                              "SessionConfig(extra={'model': NAME}) or connect(model=NAME)")
        unsupported = sorted(k for k in config.set_fields() if k not in ("input_format", "transcription"))
        tr = config.transcription
        if isinstance(tr, Transcription) and (tr.language is not UNSET or tr.prompt is not UNSET):
            unsupported.append("transcription.language/prompt (put fork extensions in extra=)")
        if config.input_format is not UNSET and config.input_format != INPUT_FORMAT:
            unsupported.append(f"input_format {config.input_format} (vLLM takes PCM16 at 16000 Hz)")
        if unsupported:
            raise ConfigError(f"the vllm provider takes only a model in session.update; not supported: "
                              f"{', '.join(unsupported)}")
        return {"model": model, **{k: v for k, v in config.extra.items() if k != "model"}}

    # -- server events -----------------------------------------------------------------------------------
    def normalize(self, raw: dict[str, Any]) -> dict[str, Any]:
        kind = raw.get("type")
        if kind == "session.created" and not isinstance(raw.get("session"), Mapping):
            session = {k: raw[k] for k in ("id", "created") if k in raw}
            return {**raw, "session": {"object": "realtime.session", **session}}
        if kind == "error" and not isinstance(raw.get("error"), Mapping):
            message = raw.get("error")
            code = raw.get("code")
            error = {"type": "vllm_error", "code": code if isinstance(code, str) else None,
                     "message": "" if message is None else str(message), "param": None, "event_id": None}
            return {**raw, "error": error}
        return raw

    def session_formats(self, session: Mapping[str, Any]) -> tuple[AudioFormat | None, AudioFormat | None]:
        return INPUT_FORMAT, None


__all__ = ["INPUT_FORMAT", "REALTIME_PATH", "VLLMDialect"]
