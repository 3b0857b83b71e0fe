"""Classes written as attrs classes but made on first use (start-up cost).

Making an attrs class costs about a millisecond of CPU (attrs compiles its methods), and rtedge has some
60 event classes of which a session sees a dozen or two.  A module declares such classes with the
decorator :meth:`Deferred.keep` (under ``TYPE_CHECKING`` it names ``attrs.frozen`` instead, so type
checkers see ordinary attrs classes); at run time each stays a plain template, unbound from the module's
namespace by :meth:`Deferred.unbind`, until first used: first access as a module attribute (the module's
``__getattr__`` calls :meth:`Deferred.make`) or a direct :meth:`Deferred.make`.  Bases are made before
their subclasses; a lock makes one class per name, whichever thread asks first.

:class:`EventMethods` is the other half of the cost: ``__eq__``, ``__hash__`` and ``__repr__`` written
once for every event class (made with ``eq=False, repr=False``) instead of compiled per class.

Owns: the templates and their making; the events' shared methods.  Must not: import other rtedge modules.
"""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any, ClassVar

import attrs


class EventMethods:
    """``__eq__``, ``__hash__`` and ``__repr__`` as attrs writes them for a frozen class (fields with
    ``eq``/``repr`` only, equal only to the same class), for attrs classes made with ``eq=False, repr=False``."""

    __slots__ = ()
    __attrs_attrs__: ClassVar[tuple[attrs.Attribute[Any], ...]]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, a.name) == getattr(other, a.name) for a in self.__attrs_attrs__ if a.eq)

    def __hash__(self) -> int:
        return hash((self.__class__, *(getattr(self, a.name) for a in self.__attrs_attrs__ if a.eq)))

    def __repr__(self) -> str:
        fields = ", ".join(f"{a.name}={getattr(self, a.name)!r}" for a in self.__attrs_attrs__ if a.repr)
        return f"{self.__class__.__qualname__}({fields})"


class Deferred:
    """The deferred attrs classes of one module: ``attrs.frozen(kw_only=True, eq=False, repr=False)``, so
    their bases give them :class:`EventMethods`."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self._namespace = namespace  # the module's globals: made classes are bound there
        #: the classes not made yet, as written (plain classes), by name
        self.templates: dict[str, type] = {}
        self._lock = _thread.RLock()

    def keep(self, *, kw_only: bool) -> Callable[[type], type]:
        """The class decorator: keeps the class as a template (``kw_only`` as ``attrs.frozen``'s)."""
        def keep_template(cls: type) -> type:
            self.templates[cls.__name__] = cls
            return cls
        return keep_template

    def unbind(self) -> None:
        """At the end of the module: its deferred names are bound once their class is made."""
        for name in self.templates:
            del self._namespace[name]

    def make(self, name: str) -> type:
        """The attrs class ``name``, made from its template on first use."""
        with self._lock:
            made = self._namespace.get(name)
            if made is not None:
                return made  # type: ignore[no-any-return]
            template = self.templates[name]
            bases = tuple(self.make(b.__name__) if self.templates.get(b.__name__) is b else b
                          for b in template.__bases__)
            namespace = {k: v for k, v in vars(template).items() if k not in ("__dict__", "__weakref__")}
            cls: type = attrs.frozen(kw_only=True, eq=False, repr=False)(type(name, bases, namespace))
            self._namespace[name] = cls
            return cls
