"""Rate limits as a state of the CRM, not a failure of a message.

A 429 (or a spent budget, see :mod:`closedloop.writeback.pipedrive`) says the CRM is busy for a while,
whichever lead asked. So the worker remembers until when each CRM is held back
(:class:`CrmThrottle`) and calls it for no other message before then; the leads that still needed it
are re-queued for after the wait, and that wait never counts as a failed attempt
(:mod:`closedloop.writeback.queue`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from closedloop.crm.errors import CrmApiRetryableError

__all__ = ["DEFAULT_WAIT_SECONDS", "CrmRateLimitedError", "CrmThrottle", "is_rate_limit"]

# A 429 without Retry-After: HubSpot's window is 10 s, Pipedrive's 2 s.
DEFAULT_WAIT_SECONDS = 10.0


def is_rate_limit(error: Exception) -> bool:
    """A 429 from the CRM, or a budget the CRM said was spent: wait, then try again."""
    return isinstance(error, CrmApiRetryableError) and error.status == 429


class CrmRateLimitedError(CrmApiRetryableError):
    """A lead's write-back stopped only at rate limits: these CRMs were busy, nothing else failed.

    Parameters
    ----------
    waits
        CRM name -> seconds it asked to wait (or is still held back for).
    """

    code = "crm_rate_limited"

    def __init__(self, waits: Mapping[str, float]) -> None:
        self.waits = dict(waits)
        # The soonest a retry can write something: a CRM still busy then is waited for again.
        super().__init__(
            f"rate-limited by {', '.join(sorted(self.waits))}",
            status=429,
            retry_after=min(self.waits.values()),
        )


class CrmThrottle:
    """Until when each CRM is held back (epoch ms), for every message a warm worker handles."""

    def __init__(self) -> None:
        self._until: dict[str, int] = {}

    def hold(self, crm: str, seconds: float | None, *, now: int) -> float:
        """Hold ``crm`` back for ``seconds`` (:data:`DEFAULT_WAIT_SECONDS` when the CRM did not say);
        return the wait."""
        wait = DEFAULT_WAIT_SECONDS if seconds is None else max(0.0, seconds)
        self._until[crm] = max(self._until.get(crm, 0), now + math.ceil(wait * 1000))
        return wait

    def wait(self, crm: str, *, now: int) -> float | None:
        """Seconds ``crm`` is still held back at ``now``; ``None`` when it may be called."""
        until = self._until.get(crm)
        if until is None or until <= now:
            return None
        return (until - now) / 1000
