"""Token usage as a value: parsed from any dialect's spelling, summed across responses.

Owns: token usage as a value.  Must not: do I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


def _int(value: object) -> int:
    """A token count: a non-negative JSON integer, else 0 (a negative count would corrupt the totals)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _details(raw: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    for key in keys:
        value = raw.get(key)
        if isinstance(value, Mapping):
            return value
    return {}


@attrs.frozen(kw_only=True)
class Usage:
    """Token counts of one response, or a sum of several.

    Cached tokens are a subset of input tokens (OpenAI bills every turn's whole
    conversation as input, mostly cached).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    input_image_tokens: int = 0
    cached_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0
    responses: int = 0

    @classmethod
    def from_raw(cls, raw: object) -> Usage:
        """Parse a ``usage`` object: GA (``input_token_details``), DashScope (``input_tokens_details``)
        or Chat-style (``prompt_tokens``/``completion_tokens``, vLLM). Missing numbers count as 0."""
        if not isinstance(raw, Mapping) or not raw:
            return cls()
        inp = _details(raw, "input_token_details", "input_tokens_details", "prompt_tokens_details")
        out = _details(raw, "output_token_details", "output_tokens_details", "completion_tokens_details")
        input_tokens = _int(raw.get("input_tokens")) or _int(raw.get("prompt_tokens"))
        output_tokens = _int(raw.get("output_tokens")) or _int(raw.get("completion_tokens"))
        return cls(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=_int(raw.get("total_tokens")) or input_tokens + output_tokens,
            input_text_tokens=_int(inp.get("text_tokens")),
            input_audio_tokens=_int(inp.get("audio_tokens")),
            input_image_tokens=_int(inp.get("image_tokens")),
            cached_tokens=_int(inp.get("cached_tokens")),
            output_text_tokens=_int(out.get("text_tokens")),
            output_audio_tokens=_int(out.get("audio_tokens")),
            responses=1,
        )

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        values = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in attrs.fields(Usage)}
        return Usage(**values)
