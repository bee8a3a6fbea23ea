"""When to try a failed message again: exponential backoff with jitter, and when to give up."""

import random
from dataclasses import dataclass

MICROS = 1_000_000


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 5.0
    cap_s: float = 1800.0
    give_up_s: float = 72 * 3600.0
    """Counted from ``pending_since``; the last attempt falls at this age."""

    def delay_s(self, attempt: int, *, retry_after_s: float | None = None) -> float:
        """The wait after failed attempt ``attempt`` (1-based): base·2^(n-1), capped, times a
        random 0.75–1 so many messages failing together do not retry in lockstep (each wait
        still grows: 0.75·2 > 1). A receiver's Retry-After wins up to the cap."""
        backoff = min(self.cap_s, self.base_s * 2.0 ** min(max(attempt - 1, 0), 62))
        delay = backoff * random.uniform(0.75, 1.0)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.cap_s))
        return delay

    def next_attempt_at(
        self, *, attempt: int, pending_since: int, now: int, retry_after_s: float | None = None
    ) -> int | None:
        """The time (epoch µs) of the next attempt, or None when it is time to give up."""
        deadline = pending_since + int(self.give_up_s * MICROS)
        if now >= deadline:
            return None
        delay = int(self.delay_s(attempt, retry_after_s=retry_after_s) * MICROS)
        return min(now + delay, deadline)
