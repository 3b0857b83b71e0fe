"""The xAI Grok Voice dialect of the test server.

Theory of operation
-------------------
:class:`XaiServerSession` is the GA :class:`ServerSession` with a translator on
both sides, like the DashScope one (``_qwen``; the common part in
``_dialect``): the emulation (VAD, responses, audio pacing, cancels, tools) is
shared and only the wire differs.  What it emulates comes from the protocol
notes and from recorded xAI sessions:

* **In**: ``session.update`` carries ``voice`` and ``turn_detection`` at the
  top level and has no ``type`` (a ``type`` or ``output_modalities`` key is an
  ``unknown_parameter``, as is anything else xAI does not document), while the
  formats keep the GA ``audio.input/output.format`` objects.  PCM may be 8000,
  16000, 22050, 24000, 32000, 44100 or 48000 Hz; ``audio/pcmu``/``audio/pcma``
  are 8 kHz.  Turn detection is ``server_vad`` (threshold 0.1..0.9, default
  0.85, prefix 333 ms) or null (manual turns; ``{"type": null}`` too).
  ``conversation.item.truncate`` and ``.retrieve`` are refused like any
  unknown event type.  Text-only output is refused (the model always speaks).
  With ``turn_detection`` null a commit of speech is answered by itself, and
  a ``response.create`` that arrives while that answer runs is dropped
  silently (xAI does not report it).
* **Out**: GA event names, except text (``response.text.delta``/``.done``);
  a connection starts with ``session.created``, ``conversation.created`` and a
  ``ping``, and ``ping`` events follow every ``xai_ping_s`` seconds.  The
  session objects are xAI's (``session.created`` short, ``session.updated``
  long with both the flat and the ``audio`` fields, tools in the nested
  ``{"type": "function", "function": {...}}`` shape).  Responses have
  ``status_details: "unimplemented"`` and ``usage: {}``; ``response.done``
  carries ``response_id`` and the ``usage`` at its top level (no cached
  tokens, ``grok_tokens``, ``output_audio_seconds`` and
  ``billable_audio_seconds``, here the running session total of output audio
  in whole seconds).  Input transcription arrives as cumulative
  ``conversation.item.input_audio_transcription.updated`` events, then
  ``.completed``.  There is no ``conversation.item.done``, no
  ``rate_limits.updated`` and no ``obfuscation``; every event but
  ``session.created`` has a ``previous_item_id`` (mostly null) and audio deltas have ``ts`` and
  ``audio_duration_ms``.  Ids are UUIDs (the server's ``new_id`` in xai mode).

The emulated VAD maps xAI's threshold onto the energy detector's scale by
subtracting 0.35, so xAI's default 0.85 triggers like the GA default 0.5.

Owns: the xAI dialect of the test server.  Must not: change the GA session's behaviour.
"""

from __future__ import annotations

import base64
import copy
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rtedge.testing._config import (
    DEFAULT_INSTRUCTIONS,
    ClientError,
    anything,
    array,
    boolean,
    enum,
    integer,
    mapping,
    nullable,
    number,
    obj,
    string,
    validate_response_params,
)
from rtedge.testing._dialect import DialectSession, accepted_events, beta_content, nested_tools, voice_name
from rtedge.testing._input import InputBuffer

if TYPE_CHECKING:
    from rtedge.testing.server import RealtimeServer

__all__ = ["DEFAULT_MODEL", "XaiServerSession"]

DEFAULT_MODEL = "grok-voice-think-fast-1.0"
DEFAULT_VOICE = "ara"
PCM_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
#: what the emulated energy VAD gets: xAI's threshold minus this
THRESHOLD_SHIFT = 0.35


def default_turn_detection() -> dict[str, Any]:
    """xAI's server VAD defaults (the silence duration is not documented; 500 ms here)."""
    return {"type": "server_vad", "threshold": 0.85, "prefix_padding_ms": 333, "silence_duration_ms": 500,
            "create_response": True, "interrupt_response": True}


def _format(value: Any, path: str) -> dict[str, Any]:
    fmt = obj({"type": enum("audio/pcm", "audio/pcmu", "audio/pcma"), "rate": integer(1)})(value, path)
    kind = fmt.get("type", "audio/pcm")
    rate = fmt.get("rate", 24000 if kind == "audio/pcm" else 8000)
    allowed = PCM_RATES if kind == "audio/pcm" else (8000,)
    if rate not in allowed:
        raise ClientError("invalid_value", f"Invalid '{path}.rate': {rate}. Supported rates for {kind} are: "
                          + ", ".join(str(r) for r in allowed) + ".", f"{path}.rate")
    return {"type": kind, "rate": rate} if kind == "audio/pcm" else {"type": kind}


def _turn_detection(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    mapping(value, path)
    if value.get("type", "server_vad") is None:
        return None  # {"type": null}: manual turns, as session.created reports them
    enum("server_vad")(value.get("type", "server_vad"), f"{path}.type")
    patch = obj({"type": string, "threshold": number(0.1, 0.9), "prefix_padding_ms": integer(0),
                 "silence_duration_ms": integer(0), "create_response": boolean, "interrupt_response": boolean,
                 "idle_timeout_ms": nullable(integer(0))})(value, path)
    result = default_turn_detection()
    result.update(patch)
    return result


def _tool(value: Any, path: str) -> dict[str, Any]:
    mapping(value, path)
    if value.get("type", "function") != "function":  # web_search, x_search...: accepted, never called
        enum("web_search", "x_search", "file_search")(value.get("type"), f"{path}.type")
        return copy.deepcopy(value)
    tool = obj({"type": string, "name": string, "description": string, "parameters": mapping},
               required=("name",))(value, path)
    return {"type": "function", **{k: copy.deepcopy(v) for k, v in tool.items() if k != "type"}}


def _tool_choice(value: Any, path: str) -> Any:
    if isinstance(value, str):
        return enum("auto", "none", "required")(value, path)
    choice = mapping(value, path)
    enum("function")(choice.get("type"), f"{path}.type")
    return copy.deepcopy(choice)


def _max_output_tokens(value: Any, path: str) -> Any:
    return value if value == "inf" else integer(1)(value, path)


_TRANSCRIPTION = nullable(obj({"model": string, "language": nullable(string), "prompt": nullable(string)}))
_AUDIO = obj({
    "input": obj({"format": _format, "transcription": _TRANSCRIPTION, "noise_reduction": nullable(anything)}),
    "output": obj({"format": _format, "speed": number(0.25, 4.0)}),
})
_SESSION_FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "model": string,
    "instructions": string,
    "voice": voice_name,
    "turn_detection": _turn_detection,
    "audio": _AUDIO,
    "tools": array(_tool),
    "tool_choice": _tool_choice,
    "max_output_tokens": _max_output_tokens,
    "temperature": number(0.0, 2.0),
}


class XaiServerSession(DialectSession):
    """One connection speaking xAI's dialect (see the module docstring)."""

    default_model = DEFAULT_MODEL
    #: no ``conversation.item.truncate`` or ``.retrieve``: refused like any unknown type
    client_events = accepted_events((
        "session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
        "conversation.item.create", "conversation.item.delete", "response.create", "response.cancel",
    ))
    renames = {
        "response.output_text.delta": "response.text.delta",
        "response.output_text.done": "response.text.done",
        "conversation.item.input_audio_transcription.delta":
            "conversation.item.input_audio_transcription.updated",
    }
    dropped = frozenset({"conversation.item.done", "rate_limits.updated"})

    def __init__(self, server: RealtimeServer, model: str, send: Callable[[str], None],
                 close: Callable[[int, str], None], name: str) -> None:
        super().__init__(server, model, send, close, name)
        cfg = self.config
        cfg["id"] = server.new_id("sess")
        cfg["model"] = self.model
        if cfg["instructions"] == DEFAULT_INSTRUCTIONS:
            cfg["instructions"] = ""  # xAI starts without instructions
        cfg["audio"]["input"]["turn_detection"] = None  # session.created reports {"type": null}
        cfg["audio"]["output"]["voice"] = DEFAULT_VOICE
        self.input = InputBuffer(self._in_fmt(), self._turn_detection())
        self.billable_s = 0.0  # output audio of the session so far
        self.transcripts: dict[str, str] = {}  # cumulative input transcripts by item id
        self.auto_answer: str | None = None  # id of a response a manual commit started by itself
        self._pinger = threading.Thread(target=self._ping_loop, name=f"{name}-xping", daemon=True)

    # -- sessions ----------------------------------------------------------------

    def _xai_turn_detection(self) -> dict[str, Any]:
        td = self.config["audio"]["input"]["turn_detection"]
        return copy.deepcopy(td) if td else {"type": None}

    def created_session(self) -> dict[str, Any]:
        """The short session object of ``session.created``."""
        cfg = self.config
        return {"id": cfg["id"], "object": "realtime.session", "instructions": cfg["instructions"],
                "voice": cfg["audio"]["output"]["voice"], "modalities": ["audio"],
                "turn_detection": self._xai_turn_detection(), "tools": nested_tools(cfg["tools"]),
                "model": self.model}

    def full_session(self) -> dict[str, Any]:
        """The long session object of ``session.updated`` (flat and ``audio`` fields side by side, no
        ``voice``, no ``id``, no empty ``tools``: as recorded)."""
        cfg = self.config
        audio_in, audio_out = cfg["audio"]["input"], cfg["audio"]["output"]
        transcription = copy.deepcopy(audio_in["transcription"])
        out_audio = {"format": copy.deepcopy(audio_out["format"]), "transport": "json"}
        if audio_out.get("speed", 1.0) != 1.0:
            out_audio["speed"] = audio_out["speed"]
        tools = {"tools": nested_tools(cfg["tools"])} if cfg["tools"] else {}  # no empty list here, as xAI
        return {
            "instructions": cfg["instructions"], "enable_noise_suppression": True,
            "turn_detection": self._xai_turn_detection(), "model": self.model, **tools,
            "keep_context": False, "enable_phonetic_spelling": False,
            "input_audio_transcription": transcription, "modalities": ["audio"],
            "input_audio_format": "not specified", "output_audio_format": "not specified",
            "tool_choice": copy.deepcopy(cfg["tool_choice"]), "temperature": -1.0,
            "max_response_output_tokens": cfg["max_output_tokens"],
            "audio": {"input": {"format": copy.deepcopy(audio_in["format"]), "transport": "json",
                                **({"transcription": transcription} if transcription else {})},
                      "output": out_audio},
        }

    def snapshot(self) -> dict[str, Any]:
        """The ``session.updated`` object, plus the ``voice`` (which xAI does not report there)."""
        with self.cond:
            return {**self.full_session(), "voice": self.config["audio"]["output"]["voice"]}

    def _turn_detection(self) -> dict[str, Any] | None:
        td = self.config["audio"]["input"]["turn_detection"]
        if not td:
            return None
        return {**td, "threshold": td.get("threshold", 0.85) - THRESHOLD_SHIFT}

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        with self.cond:
            self.emit({"type": "session.created", "session": {}})
            self.emit({"type": "conversation.created",
                       "conversation": {"id": self.conversation_id, "object": "realtime.conversation"}})
            self._ping()
        self._thread.start()
        self._pinger.start()

    def close(self, timeout: float = 2.0) -> None:
        super().close(timeout)
        if self._pinger.is_alive() and self._pinger is not threading.current_thread():
            self._pinger.join(timeout)

    def _ping(self) -> None:
        self.emit({"type": "ping", "timestamp": int(time.time() * 1000)})

    def _ping_loop(self) -> None:
        every = self.server.xai_ping_s
        with self.cond:
            if every is None:
                return
            due = time.monotonic() + every
            while not self.closing:
                remaining = due - time.monotonic()
                if remaining > 0:
                    self.cond.wait(remaining)
                    continue
                self._ping()
                due += every

    # -- out: GA events -> xAI events ----------------------------------------------------

    def _translate(self, event: dict[str, Any]) -> dict[str, Any] | None:
        kind = event["type"]
        out = super()._translate(event)
        if out is None:
            return None
        if kind == "session.created":
            out["session"] = self.created_session()
        elif kind == "session.updated":
            out["session"] = self.full_session()
        elif kind in ("conversation.item.added", "response.output_item.added", "response.output_item.done"):
            out["item"] = _xai_item(out["item"], kind)
        elif kind == "response.created":
            out["response"] = _xai_response(out["response"])
        elif kind == "response.done":
            usage = self._usage(out["response"])
            out["response"] = _xai_response(out["response"])
            out["response_id"] = out["response"]["id"]
            out["usage"] = usage
        elif kind == "response.output_audio.delta":
            fmt = self._out_fmt()
            size = len(base64.b64decode(out.get("delta") or ""))
            out["audio_duration_ms"] = size // fmt.bytes_per_sample * 1000 // fmt.rate
            out["ts"] = int(time.time() * 1000)
        elif kind == "conversation.item.input_audio_transcription.delta":
            item_id = str(out.get("item_id"))
            text = self.transcripts.get(item_id, "") + str(out.pop("delta", ""))
            self.transcripts[item_id] = out["transcript"] = text
        elif kind == "conversation.item.input_audio_transcription.completed":
            self.transcripts.pop(str(out.get("item_id")), None)
            out.pop("usage", None)
        if kind != "session.created":
            out.setdefault("previous_item_id", None)
        return out

    def _usage(self, response: dict[str, Any]) -> dict[str, Any]:
        """The top-level usage of ``response.done``: GA counts in xAI's shape, audio seconds."""
        ga = response.get("usage") or {}
        resp = self.active if self.active is not None and self.active.id == response.get("id") else None
        seconds = sum(e.audio_ms() for e in resp.output) / 1000.0 if resp is not None else 0.0
        self.billable_s += seconds
        details = {}
        for key in ("input_token_details", "output_token_details"):
            got = ga.get(key) or {}
            details[key] = {"text_tokens": got.get("text_tokens", 0),
                            "audio_tokens": got.get("audio_tokens", 0), "grok_tokens": 0}
        return {"input_tokens": ga.get("input_tokens", 0),
                "input_token_details": details["input_token_details"],
                "output_tokens": ga.get("output_tokens", 0),
                "output_token_details": details["output_token_details"],
                "total_tokens": ga.get("total_tokens", 0), "output_audio_seconds": seconds,
                "billable_audio_seconds": int(self.billable_s)}

    # -- in: xAI client events ---------------------------------------------------------

    def _on_session_update(self, event: dict[str, Any]) -> None:
        patch = obj(_SESSION_FIELDS)(event["session"], "session")
        cfg = copy.deepcopy(self.config)
        audio_in, audio_out = cfg["audio"]["input"], cfg["audio"]["output"]
        if "voice" in patch:
            audio_out["voice"] = patch["voice"]
        if "turn_detection" in patch:
            audio_in["turn_detection"] = patch["turn_detection"]
        for key in ("instructions", "tools", "tool_choice", "max_output_tokens"):
            if key in patch:
                cfg[key] = patch[key]
        audio = patch.get("audio") or {}
        for side, target in (("input", audio_in), ("output", audio_out)):
            target.update(audio.get(side) or {})
        self._apply_session(cfg)

    def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        super()._on_input_audio_buffer_commit(event)
        if self.config["audio"]["input"]["turn_detection"] is None and self.active is None:
            self._start_response({})  # xAI answers a manual commit of speech by itself
            self.auto_answer = self.active.id if self.active is not None else None

    def _on_response_create(self, event: dict[str, Any]) -> None:
        params = validate_response_params(event.get("response"))
        if params.get("output_modalities") == ["text"]:
            raise ClientError("invalid_value", "Text-only output is not supported: the model always speaks.",
                              "response.output_modalities")
        if self.active is not None and self.active.id == self.auto_answer:
            return  # the commit was answered already: xAI drops this one without a word
        super()._on_response_create(event)


def _xai_item(item: dict[str, Any], kind: str) -> dict[str, Any]:
    """GA item -> xAI's: ``object``, assistant content types ``audio``/``text``, no content on added."""
    out = {"id": item.get("id"), "object": "realtime.item",
           **{k: v for k, v in item.items() if k not in ("id", "object")}}
    if out.get("role") == "assistant" and isinstance(out.get("content"), list):
        if kind == "response.output_item.added":
            out.pop("content")
        else:
            out["content"] = beta_content(out["content"])
    return out


def _xai_response(response: dict[str, Any]) -> dict[str, Any]:
    """GA response object -> xAI's (no modalities, format, conversation or metadata; usage empty)."""
    return {"id": response.get("id"), "object": "realtime.response",
            "output": [_xai_item(i, "response.done") for i in response.get("output") or []],
            "status": response.get("status"), "status_details": "unimplemented", "usage": {}}
