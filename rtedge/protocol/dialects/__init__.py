"""Wire dialects, by provider name."""

from __future__ import annotations

from ...errors import ConfigError
from .base import Dialect
from .openai import OpenAIDialect

_DIALECTS: dict[str, type[Dialect]] = {"openai": OpenAIDialect}


def get_dialect(provider: str) -> Dialect:
    """The dialect for a provider name (``"openai"``...); ConfigError names the known ones."""
    try:
        return _DIALECTS[provider]()
    except KeyError:
        raise ConfigError(f"unknown provider {provider!r}; known: {sorted(_DIALECTS)}") from None


def register_dialect(name: str, cls: type[Dialect]) -> None:
    """Make ``cls`` available under ``name`` (used by the provider modules)."""
    _DIALECTS[name] = cls


__all__ = ["Dialect", "OpenAIDialect", "get_dialect", "register_dialect"]
