"""Wire dialects, by provider name.

Each provider module is imported only when its name is asked for, so a kiosk
that speaks one provider loads one dialect.

Owns: the dialect registry.  Must not: do I/O.
"""

from __future__ import annotations

import importlib

from ...errors import ConfigError
from .base import Dialect
from .openai import OpenAIDialect

#: provider name -> "module:Class" (modules under rtedge.protocol.dialects)
_DIALECTS: dict[str, str] = {
    "openai": "openai:OpenAIDialect",
    "openai-transcription": "openai_transcription:OpenAITranscriptionDialect",
    "azure": "azure:AzureDialect",
    "xai": "xai:XAIDialect",
    "qwen": "qwen:QwenDialect",
    "vllm": "vllm:VLLMDialect",
}
_EXTRA: dict[str, type[Dialect]] = {}


def get_dialect(provider: str) -> Dialect:
    """The dialect for a provider name (``"openai"``...); ConfigError names the known ones."""
    if provider in _EXTRA:
        return _EXTRA[provider]()
    spec = _DIALECTS.get(provider)
    if spec is None:
        raise ConfigError(f"unknown provider {provider!r}; known: {sorted({*_DIALECTS, *_EXTRA})}")
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ModuleNotFoundError:
        raise ConfigError(f"provider {provider!r} is not available in this version of rtedge") from None
    cls: type[Dialect] = getattr(module, class_name)
    return cls()


def register_dialect(name: str, cls: type[Dialect]) -> None:
    """Make ``cls`` available under ``name`` (for dialects outside rtedge)."""
    _EXTRA[name] = cls


def providers() -> list[str]:
    """Names of every known provider."""
    return sorted({*_DIALECTS, *_EXTRA})


__all__ = ["Dialect", "OpenAIDialect", "get_dialect", "providers", "register_dialect"]
