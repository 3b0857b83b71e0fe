"""The dialect hook object: one per wire family.

A dialect knows a provider's URL, headers, session shape and event names.  It
turns canonical client events into wire dicts (:meth:`Dialect.encode`) and
normalises wire dicts into the canonical OpenAI GA spelling
(:meth:`Dialect.normalize`), so that the state machine and user code only
ever see one vocabulary.  Dialects hold no per-connection state.

Owns: the dialect interface and the GA defaults.  Must not: do I/O.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from ...errors import ConfigError
from .._unset import UNSET
from ..config import AudioFormat, FunctionTool, SessionConfig
from .. import events as ev
from ..events import ClientEvent

#: Capabilities a dialect may have; the client checks them before sending.  ``response_create``,
#: ``item_create`` and ``input_clear`` are conversation features every GA-like dialect has (vLLM's
#: transcription endpoint has none); ``commit_final`` is vLLM's ``input_audio_buffer.commit`` ``final``.
CAPABILITIES = frozenset({"truncate", "retrieve", "delete", "session_finish", "tools", "response_cancel",
                          "response_create", "item_create", "input_clear", "commit_final"})


def set_fields_dict(value: Any) -> dict[str, Any]:
    """An attrs value as a dict of its set (non-UNSET) fields, in declaration order."""
    out: dict[str, Any] = {}
    for field in attrs.fields(type(value)):
        item = getattr(value, field.name)
        if item is not UNSET:
            out[field.name] = item
    return out


def url_model(url: str | None) -> str | None:
    """The model a URL names in its query (``?model=...``), or None."""
    return dict(parse_qsl(urlsplit(url or "").query)).get("model")


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query string unless already present."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for key, value in params.items():
        query.setdefault(key, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


class Dialect:
    """Base dialect: GA-shaped events, no URL.  Subclasses override the hooks they need."""

    name: str = "base"
    default_model: str = ""
    default_url: str = ""
    api_key_env: str = ""
    default_input_format: AudioFormat = AudioFormat.pcm(24000)
    default_output_format: AudioFormat = AudioFormat.pcm(24000)
    capabilities: frozenset[str] = CAPABILITIES - {"session_finish", "commit_final"}
    #: The server answers ``session.update`` with ``session.updated`` (vLLM sends nothing back):
    #: when False, ``connect()`` does not wait for a confirmation.
    acknowledges_session_update: bool = True
    #: ``connect()`` refuses a non-loopback URL without a key (self-hosted servers may run without one)
    api_key_required: bool = True
    #: Seconds to wait for ``response.done`` after a ``response.cancel`` before the client settles the
    #: response itself (a synthetic ``response.done``); None: the server always sends one.
    cancel_done_timeout: float | None = None
    #: The provider's maximum session length in seconds (it ends the session after it), the default
    #: for the client's rollover; None: no known limit.  ``session.created`` ``expires_at`` wins
    #: where the server states one (see :func:`rtedge.protocol.reseed.session_deadline`).
    session_limit_s: float | None = None

    @property
    def answers(self) -> bool:
        """The provider answers turns (False: a transcription session; its turn ends with its transcript)."""
        return "response_create" in self.capabilities

    # -- connection ------------------------------------------------------------------------------------
    def url(self, model: str | None, url: str | None = None) -> str:
        """The WebSocket URL for ``model`` (``url`` overrides the provider's endpoint)."""
        base = url or self.default_url
        if not base:
            raise ConfigError(f"the {self.name} dialect needs a url")
        check_ws_url(base)
        named = url_model(base)
        if model and named and named != model:  # (the URL's used to win without a word)
            raise ConfigError(f"two models: model={model!r} and the url's ?model={named}; give one")
        model = model or self.default_model
        return with_query(base, model=model) if model else base

    def needs_key(self, url: str) -> bool:
        """True when connecting to ``url`` needs an API key: the provider takes one and the host is not
        a loopback address (a local server runs without one)."""
        return self.api_key_required and not is_loopback(url)

    def headers(self, api_key: str | None) -> dict[str, str]:
        """HTTP headers for the upgrade request (the key goes here, never into the URL)."""
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def initial_session(self, model: str | None, session: SessionConfig | None) -> SessionConfig | None:
        """The session config ``connect()`` sends first (identity here; vLLM puts the model in it)."""
        return session

    def needs_served_model(self, model: str | None, session: SessionConfig | None) -> bool:
        """True when ``connect()`` must ask the server which model it serves (``GET /v1/models``) because
        neither ``model`` nor ``session`` names one and the protocol needs one (vLLM); False here."""
        return False

    # -- client events -----------------------------------------------------------------------------------
    def encode(self, event: ClientEvent) -> dict[str, Any]:
        """The wire dict for a client event."""
        kind = event.TYPE  # looked at before the class: event classes are made on first use (start-up)
        if not kind and isinstance(event, ev.RawClientEvent):
            return dict(event.data)
        out: dict[str, Any] = {"type": kind}
        if event.event_id is not UNSET:
            out["event_id"] = event.event_id
        if kind == "session.update" and isinstance(event, ev.SessionUpdate):
            out["session"] = self.encode_session(event.session)
        elif kind == "input_audio_buffer.append" and isinstance(event, ev.InputAudioBufferAppend):
            out["audio"] = base64.b64encode(event.audio).decode("ascii")
        elif kind == "input_image_buffer.append" and isinstance(event, ev.InputImageBufferAppend):
            out["image"] = base64.b64encode(event.image).decode("ascii")
        elif kind == "conversation.item.create" and isinstance(event, ev.ConversationItemCreate):
            out["item"] = self.encode_item(event.item)
            if event.previous_item_id is not UNSET:
                out["previous_item_id"] = event.previous_item_id
        elif kind == "conversation.item.truncate" and isinstance(event, ev.ConversationItemTruncate):
            out.update(item_id=event.item_id, content_index=event.content_index, audio_end_ms=event.audio_end_ms)
        elif kind == "conversation.item.retrieve" and isinstance(event, ev.ConversationItemRetrieve):
            out["item_id"] = event.item_id
        elif kind == "conversation.item.delete" and isinstance(event, ev.ConversationItemDelete):
            out["item_id"] = event.item_id
        elif kind == "response.create" and isinstance(event, ev.ResponseCreate):
            if event.response is not UNSET:
                out["response"] = self.encode_response(event.response)
        elif kind == "response.cancel" and isinstance(event, ev.ResponseCancel):
            if event.response_id is not UNSET:
                out["response_id"] = event.response_id
        return out

    def encode_session(self, config: SessionConfig) -> dict[str, Any]:
        raise NotImplementedError

    def check(self, config: SessionConfig) -> list[str]:
        """Warnings about ``config`` for this provider and model, as text for the caller to log
        (the protocol core logs nothing).  Raises ConfigError for what the provider would reject."""
        return []

    def encode_item(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return dict(item)

    def encode_response(self, response: Mapping[str, Any]) -> dict[str, Any]:
        return dict(response)

    def encode_tool(self, tool: FunctionTool | Mapping[str, Any]) -> dict[str, Any]:
        """GA's flat tool shape."""
        if isinstance(tool, FunctionTool):
            return {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.parameters),
            }
        return dict(tool)

    # -- server events -----------------------------------------------------------------------------------
    def normalize(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Rewrite a wire object into canonical GA spelling (identity here)."""
        return raw

    def session_formats(self, session: Mapping[str, Any]) -> tuple[AudioFormat | None, AudioFormat | None]:
        """Input and output formats of a canonical session object (None where it does not say)."""
        audio = session.get("audio")
        if not isinstance(audio, Mapping):
            return None, None
        return (_format_of(audio.get("input")), _format_of(audio.get("output")))


def _format_of(direction: object) -> AudioFormat | None:
    if not isinstance(direction, Mapping):
        return None
    fmt = direction.get("format")
    if not isinstance(fmt, Mapping):
        return None
    return parse_format(fmt)


def parse_format(fmt: Mapping[str, Any]) -> AudioFormat | None:
    """GA format object -> AudioFormat; None for an unknown type."""
    kind = fmt.get("type")
    if kind == "audio/pcm":
        rate = fmt.get("rate", 24000)
        return AudioFormat.pcm(rate if isinstance(rate, int) and rate > 0 else 24000)
    if kind == "audio/pcmu":
        return AudioFormat.pcmu()
    if kind == "audio/pcma":
        return AudioFormat.pcma()
    return None


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (``localhost`` or a loopback address): such an endpoint
    (the local test server) needs no API key, and a tick session can hold it in lock-step."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_ws_url(url: str) -> None:
    """Raise ConfigError unless ``url`` is a ``ws://`` or ``wss://`` URL with a host and, if any, a port
    number in 0-65535 (a malformed one failed later, deep in the socket layer, as a traceback).

    Raises:
        ConfigError: naming what is wrong, the URL redacted (:func:`redact_url`).
    """
    if not url.startswith(("ws://", "wss://")):
        raise ConfigError(f"url must start with ws:// or wss://, got {redact_url(url)!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:  # (with user:password@ the "port" may be part of the password: not shown)
        why = str(exc) if "@" not in url else ("a port that is not a number in 0-65535, or a user:password "
                                                "holding '/', '?', '#' or '[' (percent-encode it)")
        raise ConfigError(f"url {redact_url(url)!r} cannot be used: {why}") from None
    if not parts.hostname:
        raise ConfigError(f"url {redact_url(url)!r} names no host")


#: query parameters shown as they are in logged URLs (the ones the providers' endpoints name); every
#: other value may be a credential (``api-key``, ``token``, ``authorization``, ``password``, ``jwt``...)
SAFE_QUERY_KEYS = frozenset({"model", "intent", "api-version", "api_version", "deployment"})


def redact_url(url: str) -> str:
    """A URL safe to log: credentials before the host (``user:password@``), the value of every query
    parameter but :data:`SAFE_QUERY_KEYS` and any fragment are replaced with ``***``.  A URL that cannot
    be parsed keeps its scheme only."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        shown = _without_user_info(rest)
        if shown is None:
            return f"{scheme}://***"
        url = f"{scheme}://{shown}"
    try:
        parts = urlsplit(url)
    except ValueError:  # "ws://[::1" and the like: nothing after the scheme is shown
        return url.partition("://")[0] + "://***" if "://" in url else "***"
    if parts.query:
        query = [(k, v) if k.lower() in SAFE_QUERY_KEYS else (k if v else "***", "***")  # "?sk-..." alone too
                 for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        parts = parts._replace(query=urlencode(query, safe="*"))
    if parts.fragment:
        parts = parts._replace(fragment="***")
    return urlunsplit(parts)


#: a host and optional port: a DNS name or IPv4 address, or an IPv6 address in brackets
_HOST_PORT = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?")


def _authority(rest: str) -> str:
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def _without_user_info(rest: str) -> str | None:
    """``rest`` (after ``scheme://``) with any user info replaced by ``***``; None when no host can be
    told apart.  An "@" in the path, query or fragment is kept; a password holding "/", "?" or "#"
    (not percent-encoded) ends the standard authority early, so then the user info runs to the last "@"
    that a host follows."""
    authority = _authority(rest)
    if "@" in authority:
        return "***@" + rest[authority.rindex("@") + 1:]
    if _HOST_PORT.fullmatch(authority):
        return rest
    at = [i for i, c in enumerate(rest) if c == "@"]
    for i in reversed(at):
        if _HOST_PORT.fullmatch(_authority(rest[i + 1:])):
            return "***@" + rest[i + 1:]
    return None


def url_secrets(url: str) -> list[str]:
    """The values :func:`redact_url` hides in ``url`` (query values but the endpoints' own parameters) that
    look like credentials (8 characters or more: a short word such as ``true`` would be scrubbed out of
    every JSON line), for a log that must not echo them either (the wire trace: a server may quote its
    URL back)."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return []
    hidden = [v or k for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() not in SAFE_QUERY_KEYS]
    return [value for value in hidden if len(value) >= 8]


def merge_extra(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Deep-merge a config's ``extra`` into a session object being built (dicts merge, everything else
    replaces): every dialect's escape hatch for fields rtedge does not model."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge_extra(target[key], value)
        else:
            target[key] = value
