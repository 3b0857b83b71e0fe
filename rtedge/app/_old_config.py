"""What the old ``rtedge.config`` offered, for that deprecated path only: the settings schema of
:mod:`rtedge.app.settings` and :func:`~rtedge.app.settings_load.load_config`, which lived beside it then.

``import rtedge.config`` (see ``rtedge/_moved.py``) loads this module, with a DeprecationWarning naming
the new homes; nothing in rtedge imports it.

Owns: the old ``rtedge.config`` name list.  Must not: define anything (every name is the one at its new
home), or be imported by rtedge.
"""

from __future__ import annotations

from .settings import (SECTIONS, AudioSettings, Config, LocalVadSettings, LoggingSettings, ProviderSettings,
                       ReconnectSettings, Secret, ServiceSettings, SessionSettings, WakeSettings, read_key_file,
                       resolve_api_key)
from .settings_load import load_config

# the old module's __all__, as it was
__all__ = [
    "AudioSettings", "Config", "LocalVadSettings", "LoggingSettings", "ProviderSettings", "ReconnectSettings",
    "Secret", "ServiceSettings", "SessionSettings", "WakeSettings", "SECTIONS", "load_config", "read_key_file",
    "resolve_api_key",
]
