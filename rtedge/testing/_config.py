"""Session configuration for the test server: GA defaults, validation, merging.

Theory of operation
-------------------
The server keeps one *effective* session config per connection, a plain dict
in exactly the shape (and key order) the real GA server sends in
``session.created`` / ``session.updated``.

A ``session.update`` is handled in two steps:

1. :func:`validate_session` walks the client's ``session`` object against a
   small declarative schema and returns a *normalized patch* (only the keys the
   client sent, with leaf objects such as ``turn_detection`` completed with
   their defaults).  Any problem raises :class:`ClientError` carrying the
   server's error code, message and ``param`` path, and the update is then
   discarded whole, as the real server does.
2. :func:`merge_session` applies the patch: omitted keys stay as they were,
   ``null`` clears the nullable objects (``turn_detection``, ``transcription``,
   ``noise_reduction``), ``""`` clears ``instructions`` and ``[]`` clears
   ``tools``.

Error messages follow the wording of the real server ("Unknown parameter:
'session.voice'.", "Invalid type for '...': expected a boolean, but got null
instead.", "... Expected a value >= 24000, but got 16000 instead.").

Owns: the test server's session config: defaults, validation, merging.  Must not: do I/O.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping, Sequence

#: the GA server's default instructions (what session.created reports)
DEFAULT_INSTRUCTIONS = (
    "You are a helpful, witty, and friendly AI. Your voice and personality should be warm and engaging. "
    "Talk quickly. You should always call a function if you can."
)

__all__ = [
    "ClientError",
    "DEFAULT_INSTRUCTIONS",
    "VOICES",
    "default_session",
    "default_turn_detection",
    "invalid_value",
    "merge_session",
    "validate_modalities",
    "validate_response_params",
    "validate_session",
]

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
FORMAT_TYPES = ("audio/pcm", "audio/pcmu", "audio/pcma")
PCM_RATE = 24000

Validator = Callable[[Any, str], Any]
ObjValidator = Callable[[Any, str], "dict[str, Any]"]
StrValidator = Callable[[Any, str], str]


class ClientError(Exception):
    """A client event the server refuses; becomes an ``error`` server event.

    Args:
        code: The ``error.code`` (may be ``None``, as some real errors are).
        message: The ``error.message``.
        param: The ``error.param`` path, or ``None``.
        error_type: The ``error.type``; ``invalid_request_error`` by default.
    """

    def __init__(
        self,
        code: str | None,
        message: str,
        param: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.error_type = error_type


# ---------------------------------------------------------------------------
# defaults


def default_turn_detection(kind: str = "server_vad") -> dict[str, Any]:
    """The turn_detection object the server fills in for ``{"type": kind}``."""
    if kind == "semantic_vad":
        return {"type": kind, "eagerness": "auto", "create_response": True, "interrupt_response": True}
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }


def default_session(model: str, session_id: str, expires_at: int, instructions: str) -> dict[str, Any]:
    """The effective config a fresh GA session reports in ``session.created``.

    Args:
        model: The model named in the connection URL.
        session_id: A ``sess_...`` id.
        expires_at: Unix time at which the session ends.
        instructions: The server's default instructions.

    Returns:
        A new dict, in the key order of the real server.
    """
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": instructions,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": PCM_RATE},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": default_turn_detection(),
            },
            "output": {"format": {"type": "audio/pcm", "rate": PCM_RATE}, "voice": "alloy", "speed": 1.0},
        },
        "include": None,
    }


# ---------------------------------------------------------------------------
# primitive validators (each returns the normalized value or raises)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _type_error(path: str, expected: str, value: Any) -> ClientError:
    return ClientError(
        "invalid_type",
        f"Invalid type for '{path}': expected {expected}, but got {_kind(value)} instead.",
        path,
    )


def _quote_list(values: Sequence[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def invalid_value(path: str, value: Any, allowed: Sequence[str]) -> ClientError:
    """The real server's error for a value outside an enum."""
    return ClientError(
        "invalid_value",
        f"Invalid value: '{value}'. Supported values are: {_quote_list(allowed)}.",
        path,
    )


def string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _type_error(path, "a string", value)
    return value


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(path, "a boolean", value)
    return value


def integer(lo: int | None = None, hi: int | None = None) -> Validator:
    def check(value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(path, "an integer", value)
        if lo is not None and value < lo:
            raise ClientError(
                "integer_below_min_value",
                f"Invalid '{path}': integer below minimum value. "
                f"Expected a value >= {lo}, but got {value} instead.",
                path,
            )
        if hi is not None and value > hi:
            raise ClientError(
                "integer_above_max_value",
                f"Invalid '{path}': integer above maximum value. "
                f"Expected a value <= {hi}, but got {value} instead.",
                path,
            )
        return value

    return check


def number(lo: float, hi: float) -> Validator:
    def check(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(path, "a number", value)
        if value < lo:
            raise ClientError(
                "decimal_below_min_value",
                f"Invalid '{path}': decimal below minimum value. "
                f"Expected a value >= {lo}, but got {value} instead.",
                path,
            )
        if value > hi:
            raise ClientError(
                "decimal_above_max_value",
                f"Invalid '{path}': decimal above maximum value. "
                f"Expected a value <= {hi}, but got {value} instead.",
                path,
            )
        return float(value)

    return check


def enum(*allowed: str) -> StrValidator:
    def check(value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise _type_error(path, "a string", value)
        if value not in allowed:
            raise invalid_value(path, value, allowed)
        return value

    return check


def nullable(inner: Validator) -> Validator:
    def check(value: Any, path: str) -> Any:
        return None if value is None else inner(value, path)

    return check


def anything(value: Any, path: str) -> Any:
    return copy.deepcopy(value)


def array(inner: Validator) -> Validator:
    def check(value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise _type_error(path, "an array", value)
        return [inner(v, f"{path}[{i}]") for i, v in enumerate(value)]

    return check


def mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _type_error(path, "an object", value)
    return dict(value)


def obj(fields: Mapping[str, Validator], required: Sequence[str] = ()) -> ObjValidator:
    """An object with known keys: unknown keys -> ``unknown_parameter``."""

    def check(value: Any, path: str) -> dict[str, Any]:
        mapping(value, path)
        for key in required:
            if key not in value:
                raise ClientError(
                    "missing_required_parameter",
                    f"Missing required parameter: '{path}.{key}'.",
                    f"{path}.{key}",
                )
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key not in fields:
                raise ClientError("unknown_parameter", f"Unknown parameter: '{path}.{key}'.", f"{path}.{key}")
            out[key] = fields[key](item, f"{path}.{key}")
        return out

    return check


# ---------------------------------------------------------------------------
# the GA session schema


def _audio_format(value: Any, path: str) -> dict[str, Any]:
    fmt = obj({"type": enum(*FORMAT_TYPES), "rate": integer(PCM_RATE, PCM_RATE)})(value, path)
    kind = fmt.get("type", "audio/pcm")
    if kind == "audio/pcm":
        return {"type": kind, "rate": PCM_RATE}
    return {"type": kind}


def _turn_detection(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    mapping(value, path)
    kind = enum("server_vad", "semantic_vad")(value.get("type", "server_vad"), f"{path}.type")
    common: dict[str, Validator] = {
        "type": string,
        "create_response": boolean,
        "interrupt_response": boolean,
    }
    if kind == "server_vad":
        fields = dict(
            common,
            threshold=number(0.0, 1.0),
            prefix_padding_ms=integer(0),
            silence_duration_ms=integer(0),
            idle_timeout_ms=nullable(integer(0)),
        )
    else:
        fields = dict(common, eagerness=enum("low", "medium", "high", "auto"))
    patch = obj(fields)(value, path)
    result = default_turn_detection(kind)
    result.update(patch)
    return result


def _transcription(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    patch = obj(
        {
            "model": string,
            "language": nullable(string),
            "prompt": nullable(string),
            "delay": enum("minimal", "low", "medium", "high", "xhigh"),
            "keywords": array(string),
            "languages": array(string),
        }
    )(value, path)
    result: dict[str, Any] = {"model": "whisper-1", "language": None, "prompt": None}
    result.update(patch)
    return result


def _noise_reduction(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    patch = obj({"type": enum("near_field", "far_field"), "strength": number(0.0, 1.0)})(value, path)
    return {"type": patch.get("type", "near_field"), **{k: v for k, v in patch.items() if k != "type"}}


def _voice(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return obj({"id": string}, required=("id",))(value, path)
    name = string(value, path)
    if not name:
        raise invalid_value(path, value, VOICES)
    return name


def _max_output_tokens(value: Any, path: str) -> Any:
    if value == "inf":
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(path, "an integer or 'inf'", value)
    if not 1 <= value <= 4096:
        raise ClientError(
            "invalid_value",
            f"Invalid 'max_output_tokens': expected a value between 1 and 4096 or 'inf', got {value}.",
            path,
        )
    return value


def _tool(value: Any, path: str) -> dict[str, Any]:
    mapping(value, path)
    if value.get("type", "function") == "mcp":
        return dict(anything(value, path))
    tool = obj(
        {"type": enum("function", "mcp"), "name": string, "description": string, "parameters": mapping},
        required=("name",),
    )(value, path)
    return {"type": "function", **{k: copy.deepcopy(v) for k, v in tool.items() if k != "type"}}


def _tool_choice(value: Any, path: str) -> Any:
    if isinstance(value, str):
        return enum("auto", "none", "required")(value, path)
    choice = mapping(value, path)
    enum("function", "mcp")(choice.get("type"), f"{path}.type")
    return copy.deepcopy(choice)


def _truncation(value: Any, path: str) -> Any:
    if isinstance(value, str):
        return enum("auto", "disabled")(value, path)
    trunc = mapping(value, path)
    enum("retention_ratio")(trunc.get("type"), f"{path}.type")
    number(0.0, 1.0)(trunc.get("retention_ratio"), f"{path}.retention_ratio")
    return copy.deepcopy(trunc)


def validate_modalities(value: Any, path: str) -> list[str]:
    """``output_modalities``: exactly one of ``["audio"]`` or ``["text"]``."""
    mods = array(enum("text", "audio"))(value, path)
    if len(set(mods)) != 1:
        raise ClientError(
            "invalid_value",
            f"Invalid modalities: {mods}. Supported combinations are: ['text'] and ['audio'].",
            path,
        )
    return [mods[0]]


_AUDIO = obj(
    {
        "input": obj(
            {
                "format": _audio_format,
                "transcription": _transcription,
                "noise_reduction": _noise_reduction,
                "turn_detection": _turn_detection,
            }
        ),
        "output": obj({"format": _audio_format, "voice": _voice, "speed": number(0.25, 1.5)}),
    }
)

_SESSION_FIELDS: dict[str, Validator] = {
    "type": enum("realtime"),
    "model": string,
    "output_modalities": validate_modalities,
    "instructions": string,
    "max_output_tokens": _max_output_tokens,
    "audio": _AUDIO,
    "tools": array(_tool),
    "tool_choice": _tool_choice,
    "tracing": nullable(anything),
    "truncation": _truncation,
    "prompt": nullable(mapping),
    "include": nullable(array(enum("item.input_audio_transcription.logprobs"))),
    "parallel_tool_calls": boolean,
    "reasoning": mapping,
}


def validate_session(session: Any) -> dict[str, Any]:
    """Check a ``session.update``'s ``session`` object.

    Args:
        session: The ``session`` value as the client sent it.

    Returns:
        A normalized patch holding only the keys the client sent.

    Raises:
        ClientError: The first problem found, as the real server reports it.
    """
    if session is None:
        raise ClientError("missing_required_parameter", "Missing required parameter: 'session'.", "session")
    return obj(_SESSION_FIELDS, required=("type",))(session, "session")


def merge_session(current: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a normalized patch to the effective config.

    Args:
        current: The effective config (not modified).
        patch: A result of :func:`validate_session`.

    Returns:
        The new effective config.
    """
    merged = copy.deepcopy(current)
    for key, value in patch.items():
        if key in ("type", "model", "parallel_tool_calls", "reasoning"):
            continue  # fixed by the URL, or accepted and not echoed
        if key == "audio":
            for side in ("input", "output"):
                for leaf, leaf_value in value.get(side, {}).items():
                    merged["audio"][side][leaf] = copy.deepcopy(leaf_value)
            continue
        merged[key] = copy.deepcopy(value)
    return merged


def _conversation_mode(value: Any, path: str) -> str:
    return enum("auto", "none")(value, path)


def _metadata(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    meta = mapping(value, path)
    if len(meta) > 16:
        raise ClientError("invalid_value", f"Invalid '{path}': expected at most 16 key/value pairs.", path)
    for key, item in meta.items():
        string(item, f"{path}.{key}")
    return dict(meta)


_RESPONSE_FIELDS: dict[str, Validator] = {
    "conversation": _conversation_mode,
    "input": array(mapping),
    "instructions": string,
    "max_output_tokens": _max_output_tokens,
    "metadata": _metadata,
    "output_modalities": validate_modalities,
    "audio": obj({"output": obj({"format": _audio_format, "voice": _voice})}),
    "tools": array(_tool),
    "tool_choice": _tool_choice,
    "prompt": nullable(mapping),
    "parallel_tool_calls": boolean,
    "reasoning": mapping,
}


def validate_response_params(params: Any) -> dict[str, Any]:
    """Check the optional ``response`` object of ``response.create``.

    Args:
        params: The value the client sent, or ``None`` when absent.

    Returns:
        The normalized overrides (empty when none were given).

    Raises:
        ClientError: The first problem found.
    """
    if params is None:
        return {}
    return obj(_RESPONSE_FIELDS)(params, "response")
