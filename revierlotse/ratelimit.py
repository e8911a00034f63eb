"""Per-sender rate limit: at most N messages in any 60-second window.

In-process and exact (a sliding window of timestamps per sender). Memory stays
bounded: a sender's entry is dropped once its window is empty. With several Rasa
replicas each replica counts on its own (sticky sessions keep a sender on one).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Deque, Dict, Hashable

WINDOW_SECONDS = 60.0


class RateLimiter:
    """`allow(sender)` is False once `per_minute` messages arrived within the window."""

    def __init__(self, per_minute: int, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.window = window
        self.clock = clock
        self._hits: Dict[Hashable, Deque[float]] = {}
        self._next_sweep = 0.0

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def allow(self, sender: Hashable) -> bool:
        if not self.enabled:
            return True
        now = self.clock()
        self._sweep(now)
        hits = self._hits.setdefault(sender, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.per_minute:
            return False
        hits.append(now)
        return True

    def tracked_senders(self) -> int:
        return len(self._hits)

    def _sweep(self, now: float) -> None:
        """Forget senders whose last message left the window (at most once a window)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window
        cutoff = now - self.window
        for sender in [s for s, hits in self._hits.items() if not hits or hits[-1] <= cutoff]:
            del self._hits[sender]
