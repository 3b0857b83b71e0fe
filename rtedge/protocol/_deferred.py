"""Classes written as attrs classes but made on first use (start-up cost).

Making an attrs class costs about a millisecond of CPU (attrs compiles its methods), and rtedge has some
60 event classes of which a session sees a dozen or two.  A module declares such classes with the
decorator :meth:`Deferred.keep` (under ``TYPE_CHECKING`` it names ``attrs.frozen`` instead, so type
checkers see ordinary attrs classes); at run time each stays a plain template, unbound from the module's
namespace by :meth:`Deferred.unbind`, until first used: first access as a module attribute (the module's
``__getattr__`` calls :meth:`Deferred.make`) or a direct :meth:`Deferred.make`.  Bases are made before
their subclasses; a lock makes one class per name, whichever thread asks first.

Owns: the templates and their making.  Must not: import other rtedge modules.
"""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any

import attrs


class Deferred:
    """The deferred attrs classes (``attrs.frozen(kw_only=True)``) of one module."""

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
            cls: type = attrs.frozen(kw_only=True)(type(name, bases, namespace))
            self._namespace[name] = cls
            return cls
