"""Where :func:`rtedge.connect` goes: the full URL, the API key and the session to open with.

Owns: :func:`endpoint` and :func:`api_key_for` (the one rule for a key from the environment, which the command
line's early key check reads too).  Must not: open anything but :func:`endpoint`'s question to a vLLM server
for the model it serves (when the dialect needs one and none was named), or log the key.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..errors import ConfigError
from ..protocol.config import SessionConfig
from ..protocol.dialects import Dialect

log = logging.getLogger("rtedge")


def api_key_for(dialect: Dialect, api_key: str | None) -> str | None:
    """``api_key``, else the dialect's environment variable (``OPENAI_API_KEY``...), else None."""
    return api_key or (os.environ.get(dialect.api_key_env) if dialect.api_key_env else None)


def endpoint(dialect: Dialect, model: str | None, url: str | None, api_key: str | None,
             session: SessionConfig | None, opts: dict[str, Any]) -> tuple[str, str | None, SessionConfig | None]:
    """The URL, the API key and the initial session of :func:`connect` (the served model asked for when
    the dialect needs it).

    Raises:
        ConfigError: no API key for a remote endpoint that needs one.
    """
    full_url = dialect.url(model, url)
    key = api_key_for(dialect, api_key)
    if dialect.needs_served_model(model, session):
        # lazy: start-up cost (urllib.request pulls in http.client, email and tempfile: ~20 ms, ~1 MB)
        from .models import served_model

        model = served_model(full_url, key, timeout=opts["connect_timeout"], ssl_context=opts["ssl_context"],
                             ca_certs=opts["ca_certs"])
    session = dialect.initial_session(model, session)
    # an empty config too: the model's warnings (one rtedge does not know) do not depend on a session
    for warning in dialect.check(session if session is not None else SessionConfig()):
        log.warning("%s", warning)
    if not key and dialect.needs_key(full_url):
        raise ConfigError(f"no API key for {dialect.name}: pass api_key= or set {dialect.api_key_env}")
    return full_url, key, session
