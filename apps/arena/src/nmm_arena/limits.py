"""Sliding-window limits kept in memory: votes per session per minute, new sessions per address per hour.

Memory is bounded by the callers that acted within one window: a key whose events have all aged
out is dropped at the next sweep. Limits start afresh when the server restarts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimit:
    """At most `limit` events per key within `window` seconds (`limit` 0: no limit)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 0 or window <= 0:
            raise ValueError(f"a limit needs limit >= 0 and window > 0, got {limit}, {window}")
        self.limit, self.window = limit, window
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = clock() + window

    def allow(self, key: str) -> bool:
        """Record an event for `key` and say whether it is within the limit (a refused one is not recorded)."""
        if self.limit == 0:
            return True
        now = self._clock()
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True

    def _sweep(self, now: float) -> None:
        self._events = {k: q for k, q in self._events.items() if q and q[-1] > now - self.window}
        self._next_sweep = now + self.window

    def __len__(self) -> int:
        return len(self._events)
