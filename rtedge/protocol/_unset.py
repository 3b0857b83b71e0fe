"""The UNSET sentinel: "this field was never set", which is not the same as None (JSON null).

Owns: the UNSET sentinel.  Must not: import anything.
"""

from __future__ import annotations

import enum
from typing import Final, Literal, TypeVar


class _UnsetType(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


#: A field left at UNSET is absent from the wire; a field set to None is sent as ``null``.
UNSET: Final = _UnsetType.UNSET
Unset = Literal[_UnsetType.UNSET]

T = TypeVar("T")


def is_set(value: object) -> bool:
    """True when ``value`` is anything but UNSET (None counts as set: it means null)."""
    return value is not UNSET
