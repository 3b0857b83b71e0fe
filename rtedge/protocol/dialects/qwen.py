"""Alibaba DashScope / Model Studio Qwen-Omni realtime (``provider="qwen"``).

The wire family is OpenAI's *beta* realtime protocol with DashScope's own
extras, so this dialect translates both ways:

* **Session (client -> server)** is flat: top-level ``modalities``
  (``["text"]`` or ``["text", "audio"]``; ``["audio"]`` alone is rejected by
  the server, and here as :class:`ConfigError`), ``voice``, ``instructions``,
  ``input_audio_format``/``output_audio_format`` (format *names*, per model:
  16 kHz PCM in as ``"pcm16"``, 24 kHz PCM out as ``"pcm24"``, or ``"pcm16"``
  on ``qwen-omni-turbo-realtime``), ``turn_detection`` (``server_vad`` with
  threshold in [-1, 1] and ``silence_duration_ms`` in [200, 6000];
  ``semantic_vad`` on qwen3.5 only; ``null`` = manual turns),
  ``input_audio_transcription``, ``max_tokens`` and tools in the nested
  Chat-Completions shape ``{"type": "function", "function": {...}}``.
* **Events (server -> client)** use beta names; :meth:`QwenDialect.normalize`
  renames them to GA (``response.audio.delta`` -> ``response.output_audio.delta``,
  ``response.audio_transcript.*`` -> ``response.output_audio_transcript.*``,
  ``response.text.*`` -> ``response.output_text.*``; ``conversation.item.created``
  is kept) and rewrites the flat ``session`` object of ``session.created`` /
  ``session.updated`` into the nested GA shape, the plural usage keys
  (``input_tokens_details``) into GA's, and beta content types (``audio``,
  ``text``) of assistant items into ``output_audio``/``output_text``.  So the
  state machine and user code read one vocabulary.

Endpoints: ``QwenDialect(region="cn")`` (Beijing,
``wss://dashscope.aliyuncs.com/api-ws/v1/realtime``), ``region="intl"``
(Singapore, ``wss://dashscope-intl.aliyuncs.com/...``), and with
``workspace="<id>", workspace_endpoint=True`` the per-workspace host
(``wss://<id>.cn-beijing.maas.aliyuncs.com/...`` or
``wss://<id>.ap-southeast-1.maas.aliyuncs.com/...``).  ``workspace`` alone
sends the ``X-DashScope-WorkSpace`` header.  Any other endpoint: the
``url=`` argument of ``rtedge.connect``.  Each region needs its own key
(``DASHSCOPE_API_KEY``, sent as ``Authorization: Bearer``).

Per-model differences come from :data:`MODELS` (see :class:`ModelInfo`): a
request the model cannot honour raises :class:`ConfigError` (tools on a model
that never calls them, ``semantic_vad`` before qwen3.5); a model the table
does not know gets permissive defaults and a warning from :meth:`QwenDialect.check`.
The dialect instance is bound to its model by :meth:`QwenDialect.url` (or the
``model=`` argument), which ``rtedge.connect`` calls once per client.

Other quirks the client handles through this dialect: a cancelled response
may never get ``response.done`` (:attr:`QwenDialect.cancel_done_timeout`,
5 s); sessions end with ``session.finish`` -> ``session.finished`` (an
``error`` reply means "not supported by this model" and is fine); images
(``input_image_buffer.append``, JPEG) only after the first audio append.
The server also cuts a session after about 300 s without input audio
(WebSocket pings do not count): reconnect, or stream silence with the
``keepalive_audio_s`` connect option.

Owns: DashScope's wire shapes.  Must not: do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from ...errors import ConfigError
from .._unset import UNSET
from ..config import AudioFormat, FunctionTool, SemanticVad, ServerVad, SessionConfig, Transcription
from ..event_names import LEGACY_EVENT_TYPES
from .base import CAPABILITIES, Dialect, merge_extra, set_fields_dict, url_model

HOSTS = {"cn": "dashscope.aliyuncs.com", "intl": "dashscope-intl.aliyuncs.com"}
WORKSPACE_REGIONS = {"cn": "cn-beijing", "intl": "ap-southeast-1"}
PATH = "/api-ws/v1/realtime"

#: Input and output PCM rates (the format *names* do not say the rate; the direction does).
INPUT_RATE = 16000
OUTPUT_RATE = 24000
#: Format names that mean 16-bit mono PCM at the direction's rate.
PCM_NAMES = frozenset({"pcm16", "pcm24", "pcm"})

#: Capabilities that depend on the model (see MODELS), and GA features DashScope does not have.
_PER_MODEL = frozenset({"tools", "semantic_vad", "truncate", "session_finish"})
_NOT_DASHSCOPE = frozenset({"retrieve", "delete", "commit_final"})

THRESHOLD_RANGE = (-1.0, 1.0)
SILENCE_RANGE = (200, 6000)


@attrs.frozen(kw_only=True)
class ModelInfo:
    """What one Qwen-Omni realtime model supports.

    Attributes:
        tools: calls functions over the realtime API (qwen3.5 only; qwen3-omni-flash accepts tools and
            never calls them).
        semantic_vad: accepts ``turn_detection.type = "semantic_vad"``.
        truncate: accepts ``conversation.item.truncate`` (no omni model documents it).
        session_finish: ``session.finish`` is worth sending on close (an error reply is tolerated).
        input_format: the name for 16 kHz PCM input.
        output_format: the name for 24 kHz PCM output.
        voice: the default voice.
        known: False for the permissive defaults used for a model outside the table.
    """

    tools: bool = False
    semantic_vad: bool = False
    truncate: bool = False
    session_finish: bool = True
    input_format: str = "pcm16"
    output_format: str = "pcm24"
    voice: str = "Cherry"
    known: bool = True


#: The capability table.  Dated snapshots (``qwen3-omni-flash-realtime-2025-12-01``) use their base
#: model's row.  Sources: Alibaba's realtime docs and demos as of 2026; see the module docstring.
MODELS: dict[str, ModelInfo] = {
    "qwen-omni-turbo-realtime": ModelInfo(output_format="pcm16", voice="Chelsie"),
    "qwen3-omni-flash-realtime": ModelInfo(),
    "qwen3.5-omni-plus-realtime": ModelInfo(tools=True, semantic_vad=True, voice="Tina"),
    "qwen3.5-omni-flash-realtime": ModelInfo(tools=True, semantic_vad=True, voice="Tina"),
}
#: A model the table does not know: allow everything the family might do.
UNKNOWN_MODEL = ModelInfo(tools=True, semantic_vad=True, known=False)


def model_info(model: str) -> ModelInfo:
    """The table row for ``model`` (a dated snapshot matches its base name), or :data:`UNKNOWN_MODEL`."""
    if model in MODELS:
        return MODELS[model]
    base = max((name for name in MODELS if model.startswith(name + "-")), key=len, default=None)
    return MODELS[base] if base is not None else UNKNOWN_MODEL


_RENAMES = LEGACY_EVENT_TYPES  # DashScope sends the beta API's names
_ITEM_EVENTS = frozenset({"conversation.item.created", "conversation.item.added", "conversation.item.done",
                          "response.output_item.added", "response.output_item.done"})
_WORKSPACE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class QwenDialect(Dialect):
    """``wss://dashscope.aliyuncs.com/api-ws/v1/realtime?model=...`` with ``Authorization: Bearer``.

    Args:
        model: the model this dialect speaks for (``rtedge.connect(model=...)`` also sets it).
        region: ``"cn"`` (Beijing, the default) or ``"intl"`` (Singapore).
        workspace: a Model Studio workspace id, sent as ``X-DashScope-WorkSpace``.
        workspace_endpoint: use the per-workspace host ``<workspace>.<region>.maas.aliyuncs.com``.
        cancel_done_timeout: seconds to wait for ``response.done`` after a cancel before the client
            settles the response itself (qwen3.5 sends none after a cancel).
    """

    name = "qwen"
    default_model = "qwen3-omni-flash-realtime"
    default_url = f"wss://{HOSTS['cn']}{PATH}"
    api_key_env = "DASHSCOPE_API_KEY"
    default_input_format = AudioFormat.pcm(INPUT_RATE)
    default_output_format = AudioFormat.pcm(OUTPUT_RATE)
    session_limit_s: float | None = 7200.0  # DashScope Qwen-Omni realtime: 120 min

    def __init__(self, model: str | None = None, *, region: str = "cn", workspace: str | None = None,
                 workspace_endpoint: bool = False, cancel_done_timeout: float | None = 5.0) -> None:
        if region not in HOSTS:
            raise ConfigError(f"region must be one of {sorted(HOSTS)}, got {region!r}")
        if workspace is not None and not _WORKSPACE_ID.match(workspace):
            raise ConfigError(f"workspace must be a workspace id (letters, digits, '-', '_'), "
                              f"got {workspace!r}")
        if workspace_endpoint and workspace is None:
            raise ConfigError("workspace_endpoint=True needs workspace=<id>")
        if cancel_done_timeout is not None and not cancel_done_timeout > 0:
            raise ConfigError(f"cancel_done_timeout must be > 0 seconds or None, got {cancel_done_timeout!r}")
        self.region = region
        self.workspace = workspace
        self.cancel_done_timeout = cancel_done_timeout
        host = HOSTS[region]
        if workspace_endpoint:
            host = f"{workspace}.{WORKSPACE_REGIONS[region]}.maas.aliyuncs.com"
        self.default_url = f"wss://{host}{PATH}"
        self.model = ""
        self.info = UNKNOWN_MODEL
        self.bind_model(model or self.default_model)

    def __repr__(self) -> str:
        return f"<QwenDialect {self.model} region={self.region}>"

    # -- connection ------------------------------------------------------------------------------------
    def bind_model(self, model: str) -> None:
        """Speak for ``model``: its capabilities and format names come from :data:`MODELS`."""
        self.model = model
        self.info = model_info(model)
        caps = set(CAPABILITIES - _PER_MODEL - _NOT_DASHSCOPE) | {"input_image"}
        for name in sorted(_PER_MODEL):
            if getattr(self.info, name):
                caps.add(name)
        self.capabilities = frozenset(caps)

    def url(self, model: str | None, url: str | None = None) -> str:
        """The endpoint URL with ``?model=``; binds this dialect to the model the URL names."""
        full = super().url(model or (None if url_model(url) else self.model), url)  # (the URL's model binds)
        self.bind_model(url_model(full) or self.model)
        return full

    def headers(self, api_key: str | None) -> dict[str, str]:
        out = super().headers(api_key)
        if self.workspace:
            out["X-DashScope-WorkSpace"] = self.workspace
        return out

    # -- session ---------------------------------------------------------------------------------------
    def check(self, config: SessionConfig) -> list[str]:
        """Warnings for ``config`` on this model; raises ConfigError for what the server would reject."""
        self.encode_session(config)
        warnings = []
        if not self.info.known:
            warnings.append(f"model {self.model!r} is not in rtedge's Qwen capability table; assuming it "
                            "supports tools, semantic_vad and session.finish")
        td = config.turn_detection
        if isinstance(td, SemanticVad) and td.eagerness is not UNSET:
            warnings.append("DashScope does not document semantic_vad.eagerness; it is sent as given")
        return warnings

    def encode_session(self, config: SessionConfig) -> dict[str, Any]:
        """The flat DashScope session object (only the fields that are set)."""
        session: dict[str, Any] = {}
        if config.output_modalities is not UNSET:
            session["modalities"] = encode_modalities(config.output_modalities)
        if config.voice is not UNSET:
            session["voice"] = config.voice
        if config.instructions is not UNSET:
            session["instructions"] = config.instructions
        if config.input_format is not UNSET:
            session["input_audio_format"] = self._format_name(config.input_format, INPUT_RATE, "input")
        if config.output_format is not UNSET:
            session["output_audio_format"] = self._format_name(config.output_format, OUTPUT_RATE, "output")
        if config.transcription is not UNSET:
            session["input_audio_transcription"] = _transcription(config.transcription)
        if config.turn_detection is not UNSET:
            session["turn_detection"] = self._turn_detection(config.turn_detection)
        if config.noise_reduction not in (UNSET, None):
            raise ConfigError("DashScope omni sessions have no noise_reduction; leave it unset")
        if config.speed is not UNSET:
            raise ConfigError("DashScope omni sessions have no speed setting; leave it unset")
        if config.tools is not UNSET:
            if config.tools and not self.info.tools:
                raise ConfigError(
                    f"{self.model} does not call tools over the realtime API (it accepts them and never "
                    "calls them); use qwen3.5-omni-plus-realtime or qwen3.5-omni-flash-realtime, or "
                    "drop the tools")
            session["tools"] = [self.encode_tool(t) for t in config.tools]
        if config.tool_choice is not UNSET:
            session["tool_choice"] = _tool_choice(config.tool_choice)
        if isinstance(config.max_output_tokens, int):
            session["max_tokens"] = config.max_output_tokens
        merge_extra(session, config.extra)
        return session

    def _format_name(self, fmt: AudioFormat, rate: int, direction: str) -> str:
        if fmt.kind != "pcm" or fmt.rate != rate:
            raise ConfigError(f"DashScope omni {direction} audio is 16-bit PCM at {rate} Hz; got "
                              f"{fmt.kind} at {fmt.rate} Hz (rtedge resamples microphone audio for you)")
        return self.info.input_format if direction == "input" else self.info.output_format

    def _turn_detection(self, value: object) -> object:
        if value is None:
            return None
        if isinstance(value, ServerVad):
            if value.idle_timeout_ms is not UNSET:
                raise ConfigError("DashScope server_vad has no idle_timeout_ms; leave it unset")
            out = set_fields_dict(value)
        elif isinstance(value, SemanticVad):
            out = set_fields_dict(value)
        elif isinstance(value, Mapping):
            out = dict(value)
        else:
            raise ConfigError(f"turn_detection must be ServerVad, SemanticVad, a dict or None, got {value!r}")
        kind = out.pop("type", "server_vad")
        if kind == "semantic_vad" and not self.info.semantic_vad:
            raise ConfigError(f"{self.model} has no semantic_vad (qwen3.5-omni models only); use ServerVad")
        _check_range(out, "threshold", THRESHOLD_RANGE)
        _check_range(out, "silence_duration_ms", SILENCE_RANGE)
        return {"type": kind, **out}

    def encode_tool(self, tool: FunctionTool | Mapping[str, Any]) -> dict[str, Any]:
        """The Chat-Completions nested tool shape (GA-shaped dicts are nested too)."""
        if isinstance(tool, FunctionTool):
            return {"type": "function", "function": {
                "name": tool.name, "description": tool.description, "parameters": dict(tool.parameters)}}
        if tool.get("type", "function") == "function" and "function" not in tool and "name" in tool:
            return {"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}
        return dict(tool)

    def encode_response(self, response: Mapping[str, Any]) -> dict[str, Any]:
        """Per-response overrides: GA's ``output_modalities`` becomes DashScope's ``modalities``."""
        out = dict(response)
        if "output_modalities" in out:
            out["modalities"] = encode_modalities(out.pop("output_modalities"))
        return out

    # -- server events ---------------------------------------------------------------------------------
    def normalize(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Beta event names, the flat session, plural usage keys and beta content types -> GA spelling."""
        kind = raw.get("type")
        renamed = _RENAMES.get(kind) if isinstance(kind, str) else None
        if renamed is not None:
            return {**raw, "type": renamed}
        if kind in ("session.created", "session.updated") and isinstance(raw.get("session"), Mapping):
            return {**raw, "session": canonical_session(raw["session"])}
        if kind in ("response.created", "response.done") and isinstance(raw.get("response"), Mapping):
            return {**raw, "response": canonical_response(raw["response"])}
        if kind in _ITEM_EVENTS and isinstance(raw.get("item"), Mapping):
            return {**raw, "item": canonical_item(raw["item"])}
        return raw


# ---------------------------------------------------------------------------------------------- encoding


def encode_modalities(value: object) -> list[str]:
    """GA output modalities -> DashScope ``modalities`` (``["text"]`` or ``["text", "audio"]``)."""
    mods = [value] if isinstance(value, str) else list(value) if isinstance(value, list | tuple) else None
    if mods is None or not mods or any(m not in ("text", "audio") for m in mods):
        raise ConfigError(f"output_modalities must be ('text',) or ('text', 'audio'), got {value!r}")
    if "audio" not in mods:
        return ["text"]
    if "text" not in mods:
        raise ConfigError("DashScope rejects modalities ['audio'] alone: use ('text', 'audio') for spoken "
                          "replies (the text is the transcript) or ('text',)")
    return ["text", "audio"]


def _transcription(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, Transcription):
        return set_fields_dict(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise ConfigError(f"transcription must be Transcription, a dict or None, got {value!r}")


def _tool_choice(value: object) -> object:
    if isinstance(value, Mapping) and value.get("type") == "function" and "function" not in value:
        return {"type": "function", "function": {"name": value.get("name")}}
    return dict(value) if isinstance(value, Mapping) else value


def _check_range(fields: Mapping[str, Any], key: str, bounds: tuple[float, float]) -> None:
    value = fields.get(key)
    if value is None:
        return
    lo, hi = bounds
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(f"DashScope turn_detection.{key} must be in [{lo:g}, {hi:g}], got {value!r}")


# ---------------------------------------------------------------------------------------------- decoding

_FLAT_KEYS = frozenset({"modalities", "voice", "input_audio_format", "output_audio_format", "turn_detection",
                        "input_audio_transcription", "tools"})


def _format_object(value: object, rate: int) -> object:
    """A DashScope format (a name, or the newer ``{"type": "pcm", "sample_rate": N}``) -> GA format."""
    if isinstance(value, str):
        return {"type": "audio/pcm", "rate": rate} if value in PCM_NAMES else {"type": value}
    if isinstance(value, Mapping) and value.get("type") == "pcm":
        sample_rate = value.get("sample_rate", rate)
        return {"type": "audio/pcm", "rate": sample_rate if isinstance(sample_rate, int) else rate}
    return value


def canonical_session(flat: Mapping[str, Any]) -> dict[str, Any]:
    """A DashScope session object in the nested GA shape (unknown keys are kept as they are)."""
    out = {k: v for k, v in flat.items() if k not in _FLAT_KEYS}
    mods = flat.get("modalities")
    if isinstance(mods, list):
        out["output_modalities"] = ["audio"] if "audio" in mods else ["text"]
    audio = flat.get("audio")
    audio_in: dict[str, Any] = {}
    audio_out: dict[str, Any] = {}
    if isinstance(audio, Mapping):  # the newer nested spelling: audio.input.format.sample_rate
        for side, target, rate in (("input", audio_in, INPUT_RATE), ("output", audio_out, OUTPUT_RATE)):
            part = audio.get(side)
            if isinstance(part, Mapping):
                target.update(part)
                if "format" in part:
                    target["format"] = _format_object(part["format"], rate)
    if "input_audio_format" in flat:
        audio_in["format"] = _format_object(flat["input_audio_format"], INPUT_RATE)
    if "input_audio_transcription" in flat:
        audio_in["transcription"] = flat["input_audio_transcription"]
    if "turn_detection" in flat:
        audio_in["turn_detection"] = flat["turn_detection"]
    if "output_audio_format" in flat:
        audio_out["format"] = _format_object(flat["output_audio_format"], OUTPUT_RATE)
    if "voice" in flat:
        audio_out["voice"] = flat["voice"]
    if audio_in or audio_out:
        out["audio"] = {"input": audio_in, "output": audio_out}
    tools = flat.get("tools")
    if isinstance(tools, list):
        out["tools"] = [_flat_tool(t) for t in tools]
    elif "tools" in flat:
        out["tools"] = tools
    return out


def _flat_tool(tool: object) -> object:
    if isinstance(tool, Mapping) and isinstance(tool.get("function"), Mapping):
        return {"type": tool.get("type", "function"), **tool["function"]}
    return tool


def canonical_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """DashScope's ``input_tokens_details``/``output_tokens_details`` -> GA's ``*_token_details``."""
    out = dict(usage)
    for plural, singular in (("input_tokens_details", "input_token_details"),
                             ("output_tokens_details", "output_token_details")):
        if plural in out and singular not in out:
            out[singular] = out.pop(plural)
    return out


def canonical_response(response: Mapping[str, Any]) -> dict[str, Any]:
    """A response object with GA's ``output_modalities``, usage keys and item content types."""
    out = dict(response)
    if "modalities" in out and "output_modalities" not in out:
        mods = out.pop("modalities")
        out["output_modalities"] = ["audio"] if isinstance(mods, list) and "audio" in mods else mods
    if isinstance(out.get("usage"), Mapping):
        out["usage"] = canonical_usage(out["usage"])
    if isinstance(out.get("output"), list):
        out["output"] = [canonical_item(i) if isinstance(i, Mapping) else i for i in out["output"]]
    return out


def canonical_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item with GA content types: an assistant's beta ``audio``/``text`` parts become
    ``output_audio``/``output_text``."""
    content = item.get("content")
    if item.get("role") != "assistant" or not isinstance(content, list):
        return dict(item)
    parts = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") in ("audio", "text"):
            part = {**part, "type": "output_" + str(part["type"])}
        parts.append(part)
    return {**item, "content": parts}
