"""Python functions as JSON tools: the schema from a function's type hints and docstring, the model's
arguments converted back for the call (Enum values to members, missing ``Optional`` ones to None), and the
result as the output text.

Owns: those conversions (pure functions).  Must not: run a handler, hold a connection, or start threads
(:mod:`rtedge.voice.tools` does that).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs

from ..errors import ConfigError

__all__ = ["error_output", "output_text", "parse_docstring", "schema_from_function"]


def _type_schema(hint: Any, where: str) -> dict[str, Any]:
    """The JSON schema for one type hint (``where`` names the parameter, for errors)."""
    if hint is inspect.Parameter.empty or hint is Any or hint is object:
        return {}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        schema = _type_schema(args[0], where)
        text = next((a for a in args[1:] if isinstance(a, str)), None)
        return {**schema, "description": text} if text else schema
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _type_schema(rest[0], where)
        return {"anyOf": [_type_schema(a, where) for a in rest]}
    if origin is Literal:
        return _enum_schema(list(args), where)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_schema([m.value for m in hint], where)
    simple = {str: "string", bool: "boolean", int: "integer", float: "number"}
    if hint in simple:
        return {"type": simple[hint]}
    sequences = (list, set, frozenset, Sequence, collections.abc.Set, collections.abc.MutableSequence)
    if hint in (list, tuple, set, frozenset) or origin in sequences:
        return {"type": "array", "items": _type_schema(args[0], where)} if args else {"type": "array"}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0], where)}
        return {"type": "array", "prefixItems": [_type_schema(a, where) for a in args],
                "minItems": len(args), "maxItems": len(args)}
    if hint is dict or origin in (dict, Mapping, collections.abc.Mapping, collections.abc.MutableMapping):
        if len(args) == 2 and args[1] is not Any:
            return {"type": "object", "additionalProperties": _type_schema(args[1], where)}
        return {"type": "object"}
    raise ConfigError(f"cannot build a JSON schema for {where}: type {hint!r} is not supported "
                      "(use str, int, float, bool, Literal, an Enum, list, dict or Optional of those, "
                      "or give the tool an explicit parameters= schema)")


def _enum_schema(values: list[Any], where: str) -> dict[str, Any]:
    kinds = {type(v) for v in values}
    names = {str: "string", bool: "boolean", int: "integer", float: "number"}
    if not values or not kinds <= set(names):
        raise ConfigError(f"{where}: enum values must be str, int, float or bool, got {values!r}")
    schema: dict[str, Any] = {"enum": list(values)}
    if len(kinds) == 1:
        schema = {"type": names[kinds.pop()], **schema}
    return schema


def _is_optional(hint: Any) -> bool:
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Returns|Return|Yields|Raises|Examples?|Notes?|"
                      r"Attributes|See Also|Warnings?)\s*:\s*$")


_ARG_LINE = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The first paragraph (joined into one line) and the Google-style ``Args:`` descriptions."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line):
            break
        summary.append(line.strip())
    params: dict[str, str] = {}
    in_args, indent, current = False, -1, None
    for line in lines:
        section = _SECTION.match(line)
        if section:
            in_args = section.group(1) in ("Args", "Arguments", "Parameters", "Params")
            indent, current = -1, None
            continue
        if not in_args or not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        if indent < 0:
            indent = width
        if width < indent:  # dedented: the section ended
            in_args = False
            continue
        match = _ARG_LINE.match(line) if width == indent else None
        if match:
            current = match.group(1)
            params[current] = match.group(2).strip()
        elif current is not None:  # a continuation line
            params[current] = f"{params[current]} {line.strip()}".strip()
    return " ".join(summary), params


def _parameter_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The evaluated type hints of ``fn``'s parameters (its return annotation may name a local class)."""
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except NameError:
        annotations = {k: v for k, v in getattr(fn, "__annotations__", {}).items() if k != "return"}
        namespace = getattr(fn, "__globals__", {})
        holder = types.SimpleNamespace(__annotations__=annotations, __globals__=namespace)
        return typing.get_type_hints(holder, include_extras=True)


def schema_from_function(fn: Callable[..., Any]) -> tuple[str, dict[str, Any]]:
    """The description and the JSON schema of ``fn``'s parameters (see the module docstring)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot read the signature of {fn!r}: {exc}") from None
    try:
        hints = _parameter_hints(fn)
    except (NameError, TypeError, AttributeError) as exc:  # an unresolvable forward reference, typically
        raise ConfigError(f"cannot resolve the type hints of {fn!r}: {exc}") from None
    description, docs = parse_docstring(inspect.getdoc(fn))
    properties: dict[str, Any] = {}
    required: list[str] = []
    open_ended = False
    for name, param in signature.parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            open_ended = True
            continue
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            raise ConfigError(f"tool {getattr(fn, '__name__', fn)!r}: parameter {name!r} cannot be passed "
                              "by name (tools are called with keyword arguments)")
        hint = hints.get(name, param.annotation)
        schema = _type_schema(hint, f"parameter {name!r} of {getattr(fn, '__name__', fn)!r}")
        if name in docs and docs[name] and "description" not in schema:
            schema = {**schema, "description": docs[name]}
        properties[name] = schema
        if param.default is inspect.Parameter.empty and not _is_optional(hint):
            required.append(name)
    parameters: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if not open_ended:
        parameters["additionalProperties"] = False
    return description, parameters


def _convert(fn: Callable[..., Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as the function wants them: Enum values to members, missing Optionals to None."""
    out = dict(arguments)
    try:
        hints = _parameter_hints(fn)
        signature = inspect.signature(fn)
    except (NameError, TypeError, AttributeError, ValueError):
        return out
    for name, param in signature.parameters.items():
        hint = hints.get(name)
        if typing.get_origin(hint) is typing.Annotated:
            hint = typing.get_args(hint)[0]
        if name not in out:
            if param.default is inspect.Parameter.empty and hint is not None and _is_optional(hint):
                out[name] = None
            continue
        rest = [a for a in typing.get_args(hint) if a is not type(None)] if _is_optional(hint) else [hint]
        target = rest[0] if len(rest) == 1 else None
        if isinstance(target, type) and issubclass(target, enum.Enum) and out[name] is not None:
            out[name] = target(out[name])
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if attrs.has(type(value)):
        return attrs.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def output_text(result: Any) -> str:
    """A handler's return value as the output string: ``str`` as is, anything else as JSON."""
    if isinstance(result, str):
        return result
    return json.dumps(result, default=_jsonable, ensure_ascii=False)


def error_output(message: str) -> str:
    """The output that tells the model a call failed: ``{"error": message}``."""
    return json.dumps({"error": message}, ensure_ascii=False)
