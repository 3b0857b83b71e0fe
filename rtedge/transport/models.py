"""Ask a server which models it serves (``GET /v1/models``, as vLLM and OpenAI-compatible servers answer).

Used when a vLLM session names no model: vLLM refuses audio until ``session.update`` names one, and its
own ``/v1/models`` says which one it serves, so the client takes that (the first, when there are several,
with a note in the log).

Owns: asking a server for its models.  Must not: keep a connection open.
"""

from __future__ import annotations

import json
import logging
import ssl
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, HandshakeError, TransportError, key_hint
from ..protocol.dialects.base import redact_url
from .options import checked_headers

log = logging.getLogger("rtedge.transport")


def models_url(ws_url: str) -> str:
    """``ws[s]://host:port/...`` -> ``http[s]://host:port/v1/models``.  A ``user:password@`` before the host
    is left out, as the WebSocket handshake leaves it out (it would else be looked up as part of the host
    name, password included)."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((scheme, netloc, "/v1/models", "", ""))


def served_models(ws_url: str, api_key: str | None = None, *, timeout: float = 10.0,
                  ssl_context: ssl.SSLContext | None = None, ca_certs: str | None = None) -> list[str]:
    """The model ids the server at ``ws_url`` lists, in its order.

    Raises:
        TransportError: the server could not be reached (refused, unreachable, timed out, HTTP 429 or 5xx:
            most likely not up yet, so a service retries or restarts as for any connection that fails).
        HandshakeError: the server refused the key (HTTP 401/403, ``status_code`` set).
        ConfigError: the server answered, but no list can be had from it (an HTTP error, not JSON, no
            model listed); the message says to name a model instead.
    """
    url = models_url(ws_url)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if api_key:  # checked first: http.client's own refusal of a bad value shows the value, key included
        auth = checked_headers({"Authorization": f"Bearer {api_key}"})["Authorization"]
        request.add_header("Authorization", auth)
    context = ssl_context
    if context is None and url.startswith("https:"):
        context = ssl.create_default_context(cafile=ca_certs)
    shown = redact_url(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            body = json.loads(response.read(1 << 20))
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:  # busy, or a proxy before a server still loading: retried
            raise TransportError(f"no model named, and {shown} answered HTTP {exc.code}: is the server up "
                                 "(still loading)? Else name the model it serves (model=, --model)") from None
        if exc.code in (401, 403):  # the key, not the model: as a refused handshake (exit 3)
            hint = key_hint(bool(api_key))
            raise HandshakeError(f"{shown} refused: HTTP {exc.code} ({hint})", exc.code) from None
        raise ConfigError(f"no model named, and {shown} answered HTTP {exc.code}: name the model the "
                          "server serves (model=, --model)") from None
    except OSError as exc:  # refused, unreachable, timed out: most likely the server is not up (yet)
        reason = getattr(exc, "reason", exc)
        raise TransportError(f"no model named, and {shown} could not be read ({reason}): is the server running "
                          "at that address? Else name the model it serves (model=, --model)") from None
    except ValueError as exc:
        raise ConfigError(f"no model named, and {shown} could not be read ({exc}): name the model the "
                          "server serves (model=, --model)") from None
    data = body.get("data") if isinstance(body, dict) else None
    ids = [m["id"] for m in data or () if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]]
    if not ids:
        raise ConfigError(f"no model named, and {shown} lists none: name the model (model=, --model)")
    return ids


def served_model(ws_url: str, api_key: str | None = None, **options: object) -> str:
    """The model to use when none is named: the first one :func:`served_models` lists."""
    ids = served_models(ws_url, api_key, **options)  # type: ignore[arg-type]
    if len(ids) > 1:
        log.info("the server serves %d models (%s); using the first", len(ids), ", ".join(ids))
    log.debug("no model named: using %s, the model %s serves", ids[0], redact_url(models_url(ws_url)))
    return ids[0]
