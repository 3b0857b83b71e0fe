"""The import paths of modules that moved into subpackages, kept for one release with a DeprecationWarning.

``import rtedge.agent`` (or ``from rtedge.tick import TickSession``) still works: a finder on
``sys.meta_path`` answers for the old name with the module at its new home -- the very same module object,
so classes, ``isinstance`` checks and monkeypatching behave as before; an old module whose names now live in
two modules (:data:`GATHERED`) gives one that imports them all -- and the first import of an old
name warns, the warning pointing at the line that imported it.  Nothing lives at the old path on disk, so the file
list shows only the new layout.  The finder is installed by ``rtedge/__init__.py`` and answers for the names
in :data:`MOVED` only.

Owns: the old -> new name table.  Must not: import any of the modules it names before one is asked for.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

# the old public module paths (the private ones, with a leading underscore, moved without an alias)
MOVED = {
    "rtedge.agent": "rtedge.voice.agent",
    "rtedge.tick": "rtedge.voice.tick",
    "rtedge.tools": "rtedge.voice.tools",
    "rtedge.transcriber": "rtedge.voice.transcriber",
    "rtedge.wake": "rtedge.voice.wake",
    "rtedge.wavio": "rtedge.audio.wavio",
    "rtedge.wiretrace": "rtedge.transport.wiretrace",
    "rtedge.cli": "rtedge.app.cli",
    "rtedge.config": "rtedge.app.settings",
    "rtedge.runner": "rtedge.app.runner",
    "rtedge.service": "rtedge.app.service",
    "rtedge.usage_log": "rtedge.app.usage_log",
}
#: old modules whose names now live in more than one module: (the module that gathers them, which the old
#: name gives, and the other homes the warning names besides the one in :data:`MOVED`)
GATHERED = {
    "rtedge.config": ("rtedge.app._old_config", "load_config from rtedge.app.settings_load"),
}


class _AliasLoader:
    """Loads an old name as the module at its new home (imported if needed), warning once.  (The loader
    protocol, without ``importlib.abc``: importing that pulls in importlib.resources, tempfile, shutil,
    bz2 and lzma, about 10 ms and 0.5 MB at every ``import rtedge``.)"""

    def __init__(self, new: str, gathered: tuple[str, str] | None = None) -> None:
        self.new = new
        self.load, self.also = gathered or (new, "")
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        also = f", {self.also}" if self.also else ""
        warnings.warn(f"{spec.name} is deprecated and will be removed in the next release: import {self.new}"
                      f"{also} (or the names rtedge itself offers, such as rtedge.VoiceAgent)",
                      DeprecationWarning, stacklevel=2)  # warnings skips importlib's own frames
        module = importlib.import_module(self.load)
        self._spec = module.__spec__
        return module

    def load_module(self, fullname: str) -> ModuleType:
        """The legacy loader method (part of the protocol type checkers know); imports call the two others."""
        return importlib.import_module(fullname)

    def exec_module(self, module: ModuleType) -> None:
        # the import machinery stamped the old name's spec on the module: give it its own back
        module.__spec__ = self._spec


class MovedFinder:
    """Finds the old names of :data:`MOVED` (and only those): a meta path finder (the protocol, see
    :class:`_AliasLoader`)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new, GATHERED.get(fullname)))


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedFinder())
