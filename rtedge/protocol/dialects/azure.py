"""Azure OpenAI realtime (GA): the OpenAI GA wire protocol on an Azure resource.

Connection
----------
URL: ``wss://<resource>.openai.azure.com/openai/v1/realtime?model=<deployment>``.  The
``model`` query names your *deployment*, not the underlying model, so there is no default:
pass ``model=`` (or put ``?model=`` in the URL).  The resource comes from, in order:

* ``url=``: a full ``wss://`` URL is used as given (``model`` is added when missing); an
  endpoint as the Azure portal shows it (``https://<resource>.openai.azure.com/``, or a
  ``cognitiveservices.azure.com`` host) gets ``wss://`` and the ``/openai/v1/realtime`` path;
* the ``resource`` option of :class:`AzureDialect` (the resource name, or its host name).

Authentication, always in a header (never in the URL; a URL carrying ``api-key`` is
refused):

* an API key (``api_key=`` or ``AZURE_OPENAI_API_KEY``) is sent as ``api-key: <key>``;
* a Microsoft Entra ID access token (scope ``https://ai.azure.com/.default``) is sent as
  ``Authorization: Bearer <token>`` when the value passed starts with ``"Bearer "``
  (``api_key="Bearer " + token``), or always when the dialect's ``auth`` is ``"entra"``.

With :func:`rtedge.connect`::

    rtedge.connect("azure", url="https://contoso.openai.azure.com", model="my-realtime")
    rtedge.connect("azure", url="https://contoso.openai.azure.com", model="my-realtime",
                   api_key="Bearer " + credential.get_token("https://ai.azure.com/.default").token)

A fixed resource, or Entra tokens by default, are options of the dialect, which ``connect``
also takes in place of a provider name (or register a configured subclass under a name)::

    rtedge.connect(AzureDialect(resource="contoso", auth="entra"), model="my-realtime", api_key=token)

    class ContosoAzure(AzureDialect):
        resource = "contoso"

    register_dialect("contoso", ContosoAzure)

Events, session shape and capabilities are the OpenAI GA dialect's.

Owns: Azure's URL and headers over the GA wire.  Must not: do I/O.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ...errors import ConfigError
from .base import check_ws_url, redact_url, with_query
from .openai import OpenAIDialect

AzureAuth = Literal["api-key", "entra"]

#: Path of the GA realtime endpoint on an Azure OpenAI resource.
GA_PATH = "/openai/v1/realtime"

_BEARER = "bearer "


class AzureDialect(OpenAIDialect):
    """Azure OpenAI GA realtime: ``api-key`` header (or an Entra bearer token), deployment as ``model``.

    Args:
        resource: the Azure resource name (``"contoso"``) or host (``"contoso.openai.azure.com"``);
            used when no ``url`` is given.
        auth: ``"api-key"`` (default: a value starting with ``"Bearer "`` is still sent as a bearer
            token) or ``"entra"`` (the value is always an Entra access token).
    """

    name = "azure"
    default_model = ""  # the deployment name: there is no sensible default
    default_url = ""
    api_key_env = "AZURE_OPENAI_API_KEY"
    session_limit_s: float | None = 1800.0  # Azure OpenAI realtime: 30 min

    resource: str | None = None
    auth: AzureAuth = "api-key"

    def __init__(self, resource: str | None = None, auth: AzureAuth | None = None) -> None:
        if resource is not None:
            self.resource = resource
        if auth is not None:
            self.auth = auth
        if self.auth not in ("api-key", "entra"):
            raise ConfigError(f"azure auth must be 'api-key' or 'entra', got {self.auth!r}")

    def __repr__(self) -> str:
        return f"AzureDialect(resource={self.resource!r}, auth={self.auth!r})"

    # -- connection ------------------------------------------------------------------------------------
    def url(self, model: str | None, url: str | None = None) -> str:
        """The realtime URL for a deployment (``model``) on the resource (``url`` overrides it)."""
        base = _endpoint_url(url) if url else self._resource_url()
        query = dict(parse_qsl(urlsplit(base).query, keep_blank_values=True))
        if any("key" in name.lower() or "token" in name.lower() for name in query):
            raise ConfigError(f"put the key in api_key=, not in the URL ({redact_url(base)!r}): "
                              "rtedge sends secrets in headers only")
        model = model or self.default_model
        if not model and "model" not in query and "deployment" not in query:
            raise ConfigError("the azure dialect needs model=<your deployment name> (command line: --model, "
                              "provider.model)")
        return with_query(base, model=model) if model else base

    def _resource_url(self) -> str:
        resource = (self.resource or "").strip()
        if not resource:
            raise ConfigError("the azure dialect needs url=https://<resource>.openai.azure.com or an "
                              "AzureDialect(resource=...) (command line: --url, provider.url)")
        if "://" in resource:
            return _endpoint_url(resource)
        host = resource if "." in resource else f"{resource}.openai.azure.com"
        return f"wss://{host}{GA_PATH}"

    def headers(self, api_key: str | None) -> dict[str, str]:
        """``api-key: <key>``, or ``Authorization: Bearer <token>`` for an Entra ID token."""
        if not api_key:
            return {}
        if api_key[: len(_BEARER)].lower() == _BEARER:
            return {"Authorization": f"Bearer {api_key[len(_BEARER):].strip()}"}
        if self.auth == "entra":
            return {"Authorization": f"Bearer {api_key}"}
        return {"api-key": api_key}


def _endpoint_url(url: str) -> str:
    """A ``wss://`` realtime URL from a realtime URL or a resource endpoint (``https://...``)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise ConfigError(f"azure url {redact_url(url)!r} cannot be used: {exc}") from None
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ConfigError(f"azure url must be a wss:// URL or an https:// endpoint, got {redact_url(url)!r}")
    path = parts.path.rstrip("/")
    if path in ("", "/openai", "/openai/v1"):
        path = GA_PATH
    full = urlunsplit(parts._replace(scheme=scheme, path=path))
    check_ws_url(full)
    return full
