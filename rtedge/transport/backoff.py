"""The reconnect policy as a frozen value (in the spirit of urllib3's ``Retry``).

Owns: the reconnect policy value.  Must not: sleep (the link does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ..errors import ConfigError

if TYPE_CHECKING:
    import random

#: Close codes worth a reconnect (the set openai-python uses): going away, no status, abnormal,
#: internal error, service restart, try again later, TLS failure.
RECOVERABLE_CLOSE_CODES = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1015})

#: Server error codes that end the session (the server closes right after): when one arrives
#: mid-session, the close that follows is fatal whatever its code.
SESSION_ENDING_ERROR_CODES = frozenset({"invalid_api_key", "insufficient_quota", "beta_api_shape_disabled",
                                        "model_not_found"})

#: Server error codes after which reconnecting cannot help: the session-ending ones, and configuration
#: errors when they answer the session config of a new session (mid-session, e.g. for a bad
#: ``session.update`` or truncate, they leave the session open and say nothing about the next one).
FATAL_ERROR_CODES = SESSION_ENDING_ERROR_CODES | frozenset({"unknown_parameter", "invalid_value", "invalid_type",
                                                            "integer_below_min_value"})

#: HTTP statuses at the handshake after which reconnecting cannot help.
FATAL_HTTP_STATUSES = frozenset({400, 401, 403, 404})


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ConfigError(f"Backoff.{attribute.name} must be >= 0, got {value}")


@attrs.frozen(kw_only=True)
class Backoff:
    """How long to wait before reconnect attempt N.

    Attributes:
        initial: delay before the first attempt, in seconds.
        max: upper bound of any delay, in seconds.
        multiplier: growth per attempt (delay = initial * multiplier ** (attempt - 1)).
        jitter: fraction of the delay taken off at random (0.25: between 75 % and 100 %),
            so a fleet of kiosks does not reconnect in lockstep.
        max_attempts: give up after this many failed attempts in a row; None retries forever.
    """

    initial: float = attrs.field(default=0.5, validator=_positive)
    max: float = attrs.field(default=30.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    jitter: float = attrs.field(default=0.25, validator=_positive)
    max_attempts: int | None = 12

    def __attrs_post_init__(self) -> None:
        if self.jitter > 1:
            raise ConfigError(f"Backoff.jitter must be in [0, 1], got {self.jitter}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError(f"Backoff.max_attempts must be >= 1 or None, got {self.max_attempts}")

    def delay(self, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before ``attempt`` (1-based); a server's ``Retry-After`` wins when longer."""
        import random  # lazy: start-up cost (only a reconnect needs it; about 0.5 MB and 2 ms at import)

        base = min(self.max, self.initial * self.multiplier ** max(0, attempt - 1))
        wait = base * (1.0 - self.jitter * (rng or random).random())
        if retry_after is not None:
            wait = max(wait, min(retry_after, max(self.max, retry_after)))
        return wait

    def exhausted(self, attempt: int) -> bool:
        """True when ``attempt`` (1-based) is beyond ``max_attempts``."""
        return self.max_attempts is not None and attempt > self.max_attempts


NO_RECONNECT = None
