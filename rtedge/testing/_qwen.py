"""The DashScope Qwen-Omni realtime dialect of the test server.

Theory of operation
-------------------
:class:`QwenServerSession` is the GA :class:`ServerSession` with a translator
on both sides (the common part in ``_dialect``), so the emulation (VAD,
responses, audio pacing, cancels, tools) is shared and only the wire differs:

* **In**: DashScope's client events.  ``session.update`` carries the *flat*
  session (``modalities``, ``voice``, ``input_audio_format``,
  ``output_audio_format``, ``turn_detection`` with DashScope's ranges,
  ``input_audio_transcription``, tools in the nested Chat-Completions shape,
  sampling parameters); it is validated here and folded into the GA-shaped
  config the shared code reads.  ``response.create`` takes ``modalities``.
  ``input_image_buffer.append`` (JPEG, at most 256 KB of base64, only after
  some audio: "Error append image before append audio.") and
  ``session.finish`` are DashScope's own.  Events DashScope does not have
  (truncate, retrieve, delete) are refused like any unknown type.
* **Out**: every GA event is rewritten before it is sent: beta names
  (``response.audio.delta``, ``response.audio_transcript.*``,
  ``response.text.*``), ``conversation.item.created`` instead of
  ``added``/``done``, the flat session with DashScope's defaults (voice
  Cherry, ``pcm16`` in at 16 kHz, ``pcm24`` out at 24 kHz, server VAD with
  threshold 0.5 and 800 ms of silence), usage with the plural keys
  (``input_tokens_details``) and no caching, no ``rate_limits.updated``, no
  ``obfuscation``, no input transcription deltas.

Knobs (on :class:`RealtimeServer`): ``finish_reply`` (``"finished"``: send
``session.finished`` then close 1000; ``"error"``: refuse ``session.finish``
as an unknown event type, as qwen3.5-omni-flash did; ``"none"``: ignore it),
``done_after_cancel`` (False: a client cancel ends the response without
``response.done``, as the qwen3.5 models do) and ``idle_cut_s`` /
``idle_close_code`` (close the connection after that long without input
audio; the live service cuts at about 300 s and its close code is not
documented).  Like the live qwen3-omni-flash model, models outside
qwen3.5 accept tools and never call them.

Owns: the DashScope dialect of the test server.  Must not: change the GA session's behaviour.
"""

from __future__ import annotations

import base64
import binascii
import copy
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from rtedge.testing._config import (
    ClientError,
    anything,
    boolean,
    enum,
    integer,
    invalid_value,
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

__all__ = ["DEFAULT_MODEL", "PATH", "QwenServerSession"]

PATH = "/api-ws/v1/realtime"
DEFAULT_MODEL = "qwen3-omni-flash-realtime"
INPUT_RATE = 16000
OUTPUT_RATE = 24000
#: what ``input_audio_transcription: {"model": null}`` transcribes with (newer sessions report this model)
DEFAULT_TRANSCRIPTION_MODEL = "qwen3-asr-flash-realtime"
MAX_IMAGE_BASE64 = 256 * 1024
#: Models that call tools (and offer semantic_vad); unknown models are treated as capable.
TOOL_MODELS = ("qwen3.5-omni-plus-realtime", "qwen3.5-omni-flash-realtime")
KNOWN_MODELS = TOOL_MODELS + ("qwen3-omni-flash-realtime", "qwen-omni-turbo-realtime")


def _base_model(model: str) -> str:
    for name in KNOWN_MODELS:
        if model == name or model.startswith(name + "-"):
            return name
    return ""


def calls_tools(model: str) -> bool:
    """Whether the emulated model calls tools (qwen3.5, or a model this table does not know)."""
    base = _base_model(model)
    return base in TOOL_MODELS or not base


def default_turn_detection() -> dict[str, Any]:
    """DashScope's server VAD defaults, as ``session.created`` shows them."""
    return {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 800,
            "create_response": True, "interrupt_response": True}


def _modalities(value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or not value or any(m not in ("text", "audio") for m in value):
        raise ClientError("invalid_value", f"Invalid modalities: {value!r}. Supported combinations are: "
                          "['text'] and ['text', 'audio'].", path)
    if "audio" in value and "text" not in value:
        raise ClientError("invalid_value", "Invalid modalities: ['audio']. Supported combinations are: "
                          "['text'] and ['text', 'audio'].", path)
    return ["text", "audio"] if "audio" in value else ["text"]


def _tool(value: Any, path: str) -> dict[str, Any]:
    tool = mapping(value, path)
    if "function" not in tool:
        raise ClientError("missing_required_parameter", f"Missing required parameter: '{path}.function'.",
                          f"{path}.function")
    enum("function")(tool.get("type", "function"), f"{path}.type")
    function = obj({"name": string, "description": string, "parameters": mapping},
                   required=("name",))(tool["function"], f"{path}.function")
    return {"type": "function", "function": function}


def _voice_or_null(value: Any, path: str) -> str | None:
    # null keeps the model's default voice: DashScope's own SDK (2.0.2) sends "voice": null from every
    # update_session() that names no voice, and public code doing so against the live service works
    # (Alibaba's ASR samples, third-party omni clients); an empty string stays an error (protocol notes 2.2)
    return None if value is None else voice_name(value, path)


def _transcription(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    # {"model": null} means "transcribe with the service's default model": the SDK sends it whenever
    # transcription is on and no model is named (enable_input_audio_transcription=True is its default)
    result = obj({"model": nullable(string), "language": nullable(string), "corpus": mapping},
                 required=("model",))(value, path)
    if result["model"] is None:
        result["model"] = DEFAULT_TRANSCRIPTION_MODEL
    return result


#: sample rates the SDK's AudioFormatConfig documents for ``session.audio.{input,output}.format``
_AUDIO_RATES = (8000, 16000, 24000, 48000)


def _rate(value: Any, path: str) -> int:
    rate: int = integer()(value, path)
    if rate not in _AUDIO_RATES:
        raise invalid_value(path, rate, [str(r) for r in _AUDIO_RATES])
    return rate


def _audio(value: Any, path: str) -> dict[str, Any]:
    """The newer ``session.audio`` config (SDK 2.0.2 ``input_audio_config``/``output_audio_config``):
    ``{"input": {"format": {"type": "pcm", "sample_rate": 16000}}, "output": {...}}`` (``sample_rate``,
    not OpenAI's ``rate``; protocol notes 2.2).  This server emulates raw PCM only; ``wav`` and other
    types are refused here as the emulation's limit, not the service's."""
    fmt = obj({"type": enum("pcm"), "sample_rate": _rate}, required=("type",))
    side = obj({"format": fmt})
    return obj({"input": side, "output": side})(value, path)


_NUMBER = number(-1e9, 1e9)
_SESSION_FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "modalities": _modalities,
    "voice": _voice_or_null,
    "instructions": string,
    "input_audio_format": enum("pcm16", "pcm"),
    "output_audio_format": enum("pcm24", "pcm16", "pcm"),
    "input_audio_transcription": _transcription,
    "turn_detection": anything,  # checked with the model in mind, below
    "tools": lambda value, path: [_tool(t, f"{path}[{i}]") for i, t in enumerate(_list(value, path))],
    "tool_choice": anything,
    "temperature": number(0.0, 2.0),
    "top_p": number(0.0, 1.0),
    "top_k": integer(0),
    "max_tokens": integer(1),
    "repetition_penalty": _NUMBER,
    "presence_penalty": number(-2.0, 2.0),
    "seed": integer(0),
    "smooth_output": nullable(boolean),
    "enable_search": boolean,
    "search_options": mapping,
    "audio": _audio,
    "sample_rate": _rate,  # sent with the SDK's transcription_params (ASR models)
}
#: What the server reports besides the fields above (accepted and echoed).
_ECHOED = ("temperature", "top_p", "top_k", "max_tokens", "repetition_penalty", "presence_penalty", "seed",
           "smooth_output", "enable_search", "search_options")


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ClientError("invalid_type", f"Invalid type for '{path}': expected an array.", path)
    return value


class QwenServerSession(DialectSession):
    """One connection speaking the DashScope dialect (see the module docstring)."""

    default_model = DEFAULT_MODEL
    #: the client events besides ``session.finish`` (answered as ``finish_reply`` says); beta event names out
    client_events = accepted_events(
        ("session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
         "input_image_buffer.append", "conversation.item.create", "response.create", "response.cancel"),
        {"input_image_buffer.append": ((), ("image",))},  # no image: the handler's own errors, in its order
    )
    renames = {
        "response.output_audio.delta": "response.audio.delta",
        "response.output_audio.done": "response.audio.done",
        "response.output_audio_transcript.delta": "response.audio_transcript.delta",
        "response.output_audio_transcript.done": "response.audio_transcript.done",
        "response.output_text.delta": "response.text.delta",
        "response.output_text.done": "response.text.done",
    }
    dropped = frozenset({"conversation.item.done", "rate_limits.updated",
                         "conversation.item.input_audio_transcription.delta"})

    def __init__(self, server: RealtimeServer, model: str, send: Callable[[str], None],
                 close: Callable[[int, str], None], name: str) -> None:
        super().__init__(server, model, send, close, name)
        cfg = self.config
        cfg["output_modalities"] = ["audio"]
        cfg["audio"]["input"]["format"] = {"type": "audio/pcm", "rate": INPUT_RATE}
        cfg["audio"]["input"]["turn_detection"] = default_turn_detection()
        cfg["audio"]["output"]["format"] = {"type": "audio/pcm", "rate": OUTPUT_RATE}
        base = _base_model(self.model)
        cfg["audio"]["output"]["voice"] = "Tina" if base in TOOL_MODELS else "Cherry"
        self.formats = {"input_audio_format": "pcm16",
                        "output_audio_format": "pcm16" if base.startswith("qwen-omni-turbo") else "pcm24"}
        self.extras: dict[str, Any] = {"temperature": 0.9, "top_p": 1.0, "max_tokens": 16384}
        self.input = InputBuffer(self._in_fmt(), self._turn_detection())
        self.session_end = self.deadline
        self.audio_seen = False
        self.images_pending = 0
        self.images_total = 0
        self.idle = False
        self._suppress_done = False
        self._touch()

    # -- the flat session ------------------------------------------------------

    def flat_session(self) -> dict[str, Any]:
        """The effective config in DashScope's flat shape (as ``session.created``/``updated`` show it)."""
        cfg = self.config
        tools = nested_tools(cfg["tools"])
        return {
            "id": cfg["id"], "object": "realtime.session", "model": self.model,
            "modalities": ["text", "audio"] if cfg["output_modalities"] == ["audio"] else ["text"],
            "instructions": cfg["instructions"], "voice": cfg["audio"]["output"]["voice"],
            **self.formats,
            "input_audio_transcription": copy.deepcopy(cfg["audio"]["input"]["transcription"]),
            "turn_detection": copy.deepcopy(cfg["audio"]["input"]["turn_detection"]),
            "tools": tools, "tool_choice": copy.deepcopy(cfg["tool_choice"]),
            **copy.deepcopy(self.extras),
        }

    def snapshot(self) -> dict[str, Any]:
        with self.cond:
            return self.flat_session()

    # -- out: GA events -> DashScope events --------------------------------------

    def _translate(self, event: dict[str, Any]) -> dict[str, Any] | None:
        kind = event["type"]
        out = super()._translate(event)
        if out is None or (kind == "response.done" and self._suppress_done):
            return None
        if kind in ("session.created", "session.updated"):
            out["session"] = self.flat_session()
        elif kind == "conversation.item.added":
            out["type"] = "conversation.item.created"
            out["item"] = _beta_item(out["item"])
        elif kind in ("response.output_item.added", "response.output_item.done"):
            out["item"] = _beta_item(out["item"])
        elif kind in ("response.created", "response.done"):
            out["response"] = _beta_response(out["response"], self.formats["output_audio_format"])
        elif kind == "conversation.item.input_audio_transcription.completed":
            out.pop("usage", None)
        return out

    # -- in: DashScope client events -----------------------------------------------

    def _dispatch(self, event: dict[str, Any]) -> None:
        if event.get("type") == "session.finish":  # no field check: DashScope's reply is the knob's
            self._on_session_finish(event)
            return
        super()._dispatch(event)

    def _on_session_update(self, event: dict[str, Any]) -> None:
        patch = obj(_SESSION_FIELDS)(event["session"], "session")
        cfg = copy.deepcopy(self.config)
        audio_in, audio_out = cfg["audio"]["input"], cfg["audio"]["output"]
        if "turn_detection" in patch:
            audio_in["turn_detection"] = self._vad(patch["turn_detection"])
        if "modalities" in patch:
            cfg["output_modalities"] = ["audio"] if "audio" in patch["modalities"] else ["text"]
        if patch.get("voice") is not None:
            audio_out["voice"] = patch["voice"]
        if "instructions" in patch:
            cfg["instructions"] = patch["instructions"]
        if "input_audio_transcription" in patch:
            audio_in["transcription"] = patch["input_audio_transcription"]
        if "tools" in patch:
            cfg["tools"] = [{"type": "function", **t["function"]} for t in patch["tools"]]
        if "tool_choice" in patch:
            cfg["tool_choice"] = patch["tool_choice"]
        self._check_voice(cfg)  # before the flat fields below change
        for key in ("input_audio_format", "output_audio_format"):
            if key in patch:
                self.formats[key] = patch[key]
        for side, conf in (patch.get("audio") or {}).items():
            rate = (conf.get("format") or {}).get("sample_rate")
            if rate is not None:
                cfg["audio"][side]["format"] = {"type": "audio/pcm", "rate": rate}
        self.extras.update((k, patch[k]) for k in _ECHOED if k in patch)
        self._apply_session(cfg)

    def _vad(self, value: Any) -> dict[str, Any] | None:
        path = "session.turn_detection"
        if value is None:
            return None
        mapping(value, path)
        kinds = ("server_vad", "semantic_vad") if calls_tools(self.model) else ("server_vad",)
        kind = enum(*kinds)(value.get("type", "server_vad"), f"{path}.type")
        fields = {"type": string, "threshold": number(-1.0, 1.0), "prefix_padding_ms": integer(0),
                  "silence_duration_ms": integer(200, 6000), "create_response": boolean,
                  "interrupt_response": boolean}
        if kind == "semantic_vad":
            fields["eagerness"] = enum("low", "medium", "high", "auto")
        result = default_turn_detection()
        result.update(obj(fields)(value, path))
        result["type"] = kind
        return result

    def _on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        super()._on_input_audio_buffer_append(event)
        self.audio_seen = True
        self._touch()

    def _on_input_image_buffer_append(self, event: dict[str, Any]) -> None:
        if not self.audio_seen:
            raise ClientError("", "Error append image before append audio.")
        image = event.get("image")
        if not isinstance(image, str):
            raise ClientError("invalid_value", "Invalid 'image'. Expected a base64-encoded JPEG.", "image")
        if len(image) > MAX_IMAGE_BASE64:
            raise ClientError("invalid_value", f"Image too large: {len(image)} bytes of base64, at most "
                              f"{MAX_IMAGE_BASE64} allowed.", "image")
        try:
            data = base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            data = b""
        if not data.startswith(b"\xff\xd8\xff"):
            raise ClientError("invalid_value", "Invalid 'image'. Expected a base64-encoded JPEG.", "image")
        self.images_pending += 1
        self.images_total += 1

    def _on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        super()._on_input_audio_buffer_commit(event)
        self.images_pending = 0  # images are committed with the audio

    def _on_response_create(self, event: dict[str, Any]) -> None:
        params = event.get("response")
        if params is not None:
            params = mapping(params, "response")
            # "instructions": null means "the session's": the SDK's create_response() sends it whenever no
            # instructions are given, as Alibaba's own omni demos call it (protocol notes 2.3, 2.6)
            ga = {k: v for k, v in params.items()
                  if k != "modalities" and not (k == "instructions" and v is None)}
            for key in ga:
                if key not in ("instructions",):
                    raise ClientError("unknown_parameter", f"Unknown parameter: 'response.{key}'.",
                                      f"response.{key}")
            if "modalities" in params:
                mods = _modalities(params["modalities"], "response.modalities")
                ga["output_modalities"] = ["audio"] if "audio" in mods else ["text"]
            validate_response_params(ga)
            event = {**event, "response": ga}
        super()._on_response_create(event)

    def _plan(self, resp: Any, params: dict[str, Any], context: Any, instructions: str,
              tools: list[dict[str, Any]]) -> Any:
        if not calls_tools(self.model):
            tools = []  # accepted, never called (seed report on qwen3-omni-flash-realtime)
        return super()._plan(resp, params, context, instructions, tools)

    def _finish_active(self, status: str, reason: str | None, error: dict[str, Any] | None = None) -> None:
        self._suppress_done = (status == "cancelled" and reason == "client_cancelled"
                               and not self.server.done_after_cancel)
        try:
            super()._finish_active(status, reason, error)
        finally:
            self._suppress_done = False

    # -- ending: session.finish and the idle cut ---------------------------------

    def _on_session_finish(self, event: dict[str, Any]) -> None:
        reply, kind = self.server.finish_reply, "session.finish"
        if reply == "error":
            raise invalid_value("type", kind, list(self.client_events))
        if reply != "finished":
            return
        if self.active is not None and self.stream is not None:
            self.stream.close()
            self.stream = None
            self.active = None
        self.emit({"type": "session.finished"})
        self.closing = True
        self.cond.notify_all()
        threading.Thread(target=self._close, args=(1000, "session finished"),
                         name=self._thread.name + "-finish", daemon=True).start()

    def _touch(self) -> None:
        """Input audio arrived (or the session started): push the idle cut back."""
        cut = self.server.idle_cut_s
        self.deadline = self.session_end if cut is None else min(self.session_end, time.monotonic() + cut)

    def _expire(self) -> bool:
        if time.monotonic() < self.session_end - 1e-3:  # the idle cut, not the session limit
            self.idle = True
            self.closing = True
            cut = self.server.idle_cut_s
            threading.Thread(target=self._close, args=(self.server.idle_close_code, f"idle for {cut:g} s"),
                             name=self._thread.name + "-idle", daemon=True).start()
            return False
        return super()._expire()


def _beta_item(item: dict[str, Any]) -> dict[str, Any]:
    """An assistant item's GA content types -> beta (``audio``/``text``)."""
    if item.get("role") != "assistant" or not isinstance(item.get("content"), list):
        return item
    return {**item, "content": beta_content(item["content"])}


def _beta_usage(usage: Any) -> Any:
    if not isinstance(usage, dict):
        return usage
    out = {k: usage[k] for k in ("total_tokens", "input_tokens", "output_tokens") if k in usage}
    for ga, beta in (("input_token_details", "input_tokens_details"),
                     ("output_token_details", "output_tokens_details")):
        details = usage.get(ga) or {}
        out[beta] = {key: details.get(key, 0) for key in ("text_tokens", "audio_tokens")}
    return out


def _beta_response(response: dict[str, Any], output_format: str) -> dict[str, Any]:
    """A GA response object -> DashScope's (``modalities``, ``voice``, format name, plural usage keys)."""
    out = {k: v for k, v in response.items() if k not in ("output_modalities", "audio", "usage", "output")}
    mods = response.get("output_modalities") or ["audio"]
    out["modalities"] = ["text", "audio"] if "audio" in mods else ["text"]
    out["voice"] = ((response.get("audio") or {}).get("output") or {}).get("voice")
    out["output_audio_format"] = output_format
    out["output"] = [_beta_item(item) for item in response.get("output") or []]
    out["usage"] = _beta_usage(response.get("usage"))
    return out
