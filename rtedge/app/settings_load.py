"""Loading :class:`rtedge.app.settings.Config`: TOML with line numbers, ``RTEDGE_*`` variables, CLI overrides.

Also renders the effective config back as TOML (``rtedge check-config``).

Owns: reading settings from TOML, ``RTEDGE_*`` and the command line, and rendering them back.  Must not: be
imported by :mod:`rtedge.app.settings`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any

import attrs

from .settings import (OTHER_VARIABLES, SECTIONS, Config, Secret, all_keys, check_value, describe_kind,
                       env_name)
from ..audio import RATES_TEXT, SUPPORTED_RATES
from ..errors import ConfigError
from ..protocol.dialects import get_dialect
from ..protocol.dialects.base import check_ws_url, redact_url

log = logging.getLogger("rtedge")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_PART = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")


def key_lines(text: str) -> dict[str, int]:
    """1-based line of every table header (``"audio"``) and key (``"audio.mic"``) in TOML ``text``.

    A line scanner, not a parser: it follows ``[table]`` headers and dotted keys and skips the
    inside of multi-line strings, which is all that error messages need.
    """
    lines: dict[str, int] = {}
    table: list[str] = []
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if in_string is not None:
            if line.count(in_string) % 2:
                in_string = None
            continue
        header = _HEADER.match(line)
        if header:
            table = _split_key(header.group(1))
            lines.setdefault(".".join(table), number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault(".".join([*table, *_split_key(key.group(1))]), number)
        for quote in ('"""', "'''"):
            if line.count(quote) % 2:
                in_string = quote
    return lines


def _split_key(dotted: str) -> list[str]:
    parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", dotted)
    return [next(p for p in group if p) if any(group) else "" for group in parts]


def parse_text(field: attrs.Attribute[Any], text: str) -> Any:
    """A setting's value from a string (environment, ``--set``): ``"20"``, ``"true"``, ``"wav:a.wav"``.

    Raises:
        ConfigError: the text is not of the field's kind (no location in the message).
    """
    kind = field.metadata["kind"]
    raw = text.strip()
    try:
        if kind is bool:
            if raw.lower() in _TRUE | _FALSE:
                return raw.lower() in _TRUE
            raise ValueError
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError:
        unit = f" ({field.metadata['unit']})" if field.metadata.get("unit") else ""
        raise ConfigError(f"must be {describe_kind(field)}{unit}, got {text!r}") from None
    return text


def _at(origin: str, key: str) -> str:
    """Where a message points: ``origin: key``, or the origin alone when it already names the key
    (``--set vad.echo_boost_db``), so that no message says the key twice."""
    return origin if origin.endswith(" " + key) else f"{origin}: {key}"


class _Layers:
    """Collects values with their origins, and the errors, layer by layer."""

    def __init__(self) -> None:
        self.fields = all_keys()
        self.values: dict[str, Any] = {}
        self.origin: dict[str, str] = {}
        self.errors: list[str] = []

    def set(self, key: str, value: Any, origin: str) -> None:
        try:
            self.values[key] = check_value(self.fields[key], value)
            self.origin[key] = origin
        except ConfigError as exc:
            self.errors.append(f"{_at(origin, key)}: {exc}")

    def unknown(self, key: str, origin: str, what: str = "key") -> str:
        """The message for an unknown section or key, with the closest name of the same kind as a hint:
        ``provider.xyz`` is compared with the keys of ``[provider]`` only, a section with sections, and a
        key without a section (``--set mic=USB``) with the key names of every section."""
        section, dot, name = key.rpartition(".")
        if what == "section":
            close = difflib.get_close_matches(key, list(SECTIONS), n=1)
        elif dot and section in SECTIONS:
            names = [f.partition(".")[2] for f in self.fields if f.startswith(section + ".")]
            close = [f"{section}.{c}" for c in difflib.get_close_matches(name, names, n=1)]
        elif dot:
            close = difflib.get_close_matches(key, list(self.fields), n=1)
        else:
            by_name = {f.partition(".")[2]: f for f in self.fields}
            close = [by_name[c] for c in difflib.get_close_matches(key, list(by_name), n=1)]
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{_at(origin, key)}: unknown {what}{hint}"

    def read_file(self, path: str) -> None:
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
            text = raw.decode("utf-8")
            data = tomllib.loads(text)
        except OSError as exc:
            self.errors.append(f"{path}: cannot read the config file: {exc.strerror or exc}")
            return
        except UnicodeDecodeError as exc:
            self.errors.append(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})")
            return
        except tomllib.TOMLDecodeError as exc:
            self.errors.append(f"{path}: invalid TOML: {exc}")
            return
        lines = key_lines(text)

        def at(key: str) -> str:
            line = lines.get(key) or lines.get(key.partition(".")[0])
            return f"{path}:{line}" if line else path

        for section, table in data.items():
            if section not in SECTIONS:  # a key above every [section] is compared with the keys
                what = "section" if isinstance(table, dict) else "key outside any [section]"
                self.errors.append(self.unknown(section, at(section), what))
                continue
            if not isinstance(table, dict):
                self.errors.append(f"{at(section)}: {section}: must be a table ([{section}]), got {table!r}")
                continue
            for name, value in table.items():
                key = f"{section}.{name}"
                if key not in self.fields:
                    self.errors.append(self.unknown(key, at(key)))
                else:
                    self.set(key, value, at(key))

    def read_env(self, environ: Mapping[str, str]) -> None:
        by_name = {env_name(key): key for key in self.fields}
        for name in sorted(environ):
            if not name.startswith("RTEDGE_") or name in OTHER_VARIABLES:
                continue
            key = by_name.get(name)
            if key is None:
                close = difflib.get_close_matches(name, list(by_name), n=1)
                log.warning("ignoring environment variable %s: not an rtedge setting%s", name,
                            f" (did you mean {close[0]}?)" if close else "")
                continue
            self.parse_and_set(key, environ[name], f"environment {name}")

    def parse_and_set(self, key: str, text: str, origin: str) -> None:
        try:
            value = parse_text(self.fields[key], text)
        except ConfigError as exc:
            self.errors.append(f"{_at(origin, key)}: {exc}")
            return
        self.set(key, value, origin)

    def read_overrides(self, overrides: Mapping[str, tuple[Any, str]]) -> None:
        for key, (value, origin) in overrides.items():
            if key not in self.fields:
                self.errors.append(self.unknown(key, origin))
            elif isinstance(value, str) and self.fields[key].metadata["kind"] is not str:
                self.parse_and_set(key, value, origin)
            else:
                self.set(key, value, origin)


def load_config(path: str | None = None, environ: Mapping[str, str] | None = None,
                overrides: Mapping[str, tuple[Any, str]] | None = None) -> Config:
    """The effective config: defaults < ``path`` (TOML) < ``RTEDGE_*`` in ``environ`` < ``overrides``.

    Args:
        path: a TOML file, or None for none.
        environ: the environment (default ``os.environ``).
        overrides: ``section.key`` -> ``(value, origin)`` from the command line; string values are
            parsed like environment values (``"20"``, ``"true"``), others must have the field's type.

    Raises:
        ConfigError: every problem found, one per line, each naming the key and where it was set.
    """
    return build(path, os.environ if environ is None else environ, overrides or {})


def build(path: str | None, environ: Mapping[str, str], overrides: Mapping[str, tuple[Any, str]]) -> Config:
    """See :func:`load_config`."""
    layers = _Layers()
    if path:
        layers.read_file(path)
    layers.read_env(environ)
    layers.read_overrides(overrides)
    if layers.errors:
        raise ConfigError("\n".join(layers.errors))
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        prefix = name + "."
        sections[name] = cls(**{k[len(prefix):]: v for k, v in layers.values.items() if k.startswith(prefix)})
    config = Config(**sections, origin=dict(layers.origin), path=path)
    problems = cross_check(config)
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def _missing_path(path: str, reading: bool) -> str | None:
    """Why a file device's path cannot work (None when it can): a file (or named pipe) to read must be
    there, a file to write needs its directory."""
    if reading:
        return "a directory" if os.path.isdir(path) else None if os.path.exists(path) else "no such file"
    folder = os.path.dirname(os.path.abspath(path))
    return None if os.path.isdir(folder) else f"no such directory {folder}"


def cross_check(config: Config) -> list[str]:
    """Problems that involve more than one field or the outside world (unknown provider...)."""
    problems = []

    def problem(key: str, message: str) -> None:
        problems.append(f"{_at(config.where(key), key)}: {message}")

    try:
        get_dialect(config.provider.name)
    except ConfigError as exc:
        problem("provider.name", str(exc))
    url = config.provider.url
    if url:
        if config.provider.name == "azure" and url.lower().startswith(("https://", "http://")):
            url = "ws" + url[4:]  # the endpoint as the Azure portal shows it: the dialect makes it wss://
        try:
            check_ws_url(url)  # the scheme, a host, a port number (the messages redact the URL)
        except ConfigError as exc:
            problem("provider.url", str(exc).removeprefix("url "))
    ca_certs = config.provider.ca_certs
    if ca_certs and not (os.path.isfile(ca_certs) and os.access(ca_certs, os.R_OK)):
        found = "not a file" if os.path.isdir(ca_certs) else "cannot be read" if os.path.exists(ca_certs) \
            else "no such file"
        problem("provider.ca_certs", f"{ca_certs}: {found} (a PEM bundle of the CAs to trust for wss://)")
    audio = config.audio
    for key, rate in (("audio.mic_rate", audio.mic_rate), ("audio.speaker_rate", audio.speaker_rate)):
        if rate not in SUPPORTED_RATES:
            problem(key, f"{rate} Hz is not a rate the codec converts; use one of {RATES_TEXT}")
        elif rate * audio.frame_ms % 1000:
            problem("audio.frame_ms",
                    f"{audio.frame_ms} ms at {key} = {rate} Hz is not a whole number of samples")
    for key, spec in (("audio.mic", audio.mic), ("audio.speaker", audio.speaker)):
        kind, sep, rest = spec.partition(":")
        if sep and kind in ("wav", "raw") and not rest:
            problem(key, f"give a path after '{kind}:' ('raw:-' is stdin/stdout), got {spec!r}")
        elif sep and kind in ("wav", "raw") and rest != "-":
            reading = key == "audio.mic"
            missing = _missing_path(rest, reading)
            if missing:
                problem(key, f"cannot {'read' if reading else 'write'} {rest}: {missing}")
    rc = config.reconnect
    if rc.max_delay < rc.initial_delay:
        problem("reconnect.max_delay", f"must be >= reconnect.initial_delay ({rc.initial_delay:g} s)")
    word = config.wake.word
    if word:
        from ..voice.wake import model_name_problem  # lazy: numpy and the agent, only when a wake word is set

        if (why := model_name_problem(word)) is not None:
            problem("wake.word", why)
    return problems


def _show_url(url: str) -> str:
    return redact_url(url)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")  # (TOML refuses a raw DEL)


def render(config: Config, api_key: Secret | None, api_key_problem: str | None = None) -> str:
    """The effective config as TOML, each value commented with its origin; secrets redacted.

    The API key itself is never shown, only where it comes from; URL query values that look like
    secrets (``api-key=``, ``token=``) are replaced with ``***``.
    """
    out = ["# rtedge: effective configuration", "# precedence: command line > environment (RTEDGE_*) > "
           f"config file ({config.path or 'none'}) > defaults"]
    if api_key is not None:
        out.append(f"# api key: from {api_key.source} (redacted)")
    else:
        out.append(f"# api key: {api_key_problem or 'none found'}")
    for name, cls in SECTIONS.items():
        out.append("")
        out.append(f"[{name}]")
        for field in attrs.fields(cls):
            key = f"{name}.{field.name}"
            value = config.get(key)
            if key == "provider.url" and value:
                value = _show_url(value)
            line = f"{field.name} = {_toml_value(value)}"
            out.append(f"{line:<44} # {config.where(key)}")
    return "\n".join(out) + "\n"


#: argparse destination -> setting, for flags that set one directly
FLAG_KEYS = {
    "provider": "provider.name", "url": "provider.url", "model": "provider.model",
    "api_key_file": "provider.api_key_file", "ca_certs": "provider.ca_certs",
    "instructions": "session.instructions", "mic": "audio.mic", "speaker": "audio.speaker",
    "barge_in": "vad.barge_in", "echo_guard": "vad.echo_guard",
    "echo_tail_ms": "vad.echo_tail_ms", "max_seconds": "service.max_seconds",
    "wake_word": "wake.word",
    "log_format": "logging.format", "log_level": "logging.level",
}


def overrides_from_args(args: argparse.Namespace) -> dict[str, tuple[Any, str]]:
    """The command line's settings: ``--set KEY=VALUE`` first, then the specific flags.

    Raises:
        ConfigError: a malformed ``--set``, or flags that contradict each other.
    """
    out: dict[str, tuple[Any, str]] = {}
    for item in getattr(args, "set", None) or ():
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. --set audio.mic=USB")
        out[key.strip()] = (value, f"--set {key.strip()}")
    for dest, key in FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            out[key] = (value, "--" + dest.replace("_", "-"))
    if getattr(args, "input", None) and getattr(args, "mic", None):
        raise ConfigError("give --input or --mic, not both")
    if getattr(args, "input", None):
        out["audio.mic"] = ("wav:" + args.input, "--input")
    if getattr(args, "output", None) and getattr(args, "speaker", None):
        raise ConfigError("give --output or --speaker, not both")
    if getattr(args, "output", None) == "-":
        raise ConfigError("--output - is not supported (a WAV needs its length in the header): give a file, "
                          "or --speaker raw:- for raw PCM on stdout")
    if getattr(args, "output", None):
        out["audio.speaker"] = ("wav:" + args.output, "--output")
    if getattr(args, "vad_gate", None) is not None:
        out["vad.gate"] = (args.vad_gate == "on", "--vad-gate")
    if getattr(args, "manual", False):
        out["session.turn_detection"] = ("none", "--manual")
    if getattr(args, "debug", False):
        out["logging.level"] = ("debug", "--debug")
    return out


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Config:
    """The effective config for ``args``: ``--config`` (or ``$RTEDGE_CONFIG``), the environment, the flags."""
    env = os.environ if environ is None else environ
    path = getattr(args, "config", None) or env.get("RTEDGE_CONFIG") or None
    return load_config(path, env, overrides_from_args(args))
