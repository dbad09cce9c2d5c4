"""A token bucket (messages per second, with a burst of one second's worth) and an
optional hourly cap, shared by every sending thread of one SMTP server."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        per_second: float,
        per_hour: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = per_second
        self.capacity = max(1.0, per_second)
        self.tokens = self.capacity
        self.per_hour = per_hour
        self.recent: collections.deque[float] = collections.deque()
        self.clock = clock
        self.sleep = sleep
        self.lock = threading.Lock()
        self.updated = clock()

    def _wait_time(self, now: float) -> float:
        wait = 0.0
        if self.rate > 0:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens < 1 - 1e-9:  # tolerance: float sums of refills fall just short
                wait = (1 - self.tokens) / self.rate
        if self.per_hour:
            while self.recent and now - self.recent[0] >= 3600:
                self.recent.popleft()
            if len(self.recent) >= self.per_hour:
                wait = max(wait, 3600 - (now - self.recent[0]))
        return wait

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for a slot; False if stop was set meanwhile."""
        while True:
            with self.lock:
                now = self.clock()
                wait = self._wait_time(now)
                if wait <= 0:
                    if self.rate > 0:
                        self.tokens -= 1
                    if self.per_hour:
                        self.recent.append(now)
                    return True
            if stop is not None and stop.is_set():
                return False
            self.sleep(min(wait, 0.5))
