"""How many answers one requester gets for one IP: a token bucket per (source MAC, target IP).

A host asks for an IP about once a second (its kernel re-validating the entry), a prober a hundred times;
a flood asks thousands of times. Beyond the bucket the request is read and dropped, unanswered, so a flood
costs a parse, never a reply (no amplification toward the flooder, no send queue to fill). Other requesters
and other IPs keep their own buckets. Pure: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Key = tuple[bytes, bytes]  # (source MAC, target IP packed)


@dataclass
class ReplyLimiter:
    rate: float = 200.0  # answers per second, per requester and IP
    burst: float = 100.0
    capacity: int = 8192  # buckets kept; beyond, the idle ones are forgotten (a full bucket is no state)
    limited: int = 0  # requests left unanswered so far
    _buckets: dict[Key, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def allow(self, source: bytes, target: bytes, now: float) -> bool:
        key = (source, target)
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            self.limited += 1
            return False
        if key not in self._buckets and len(self._buckets) >= self.capacity:
            self._forget_idle(now)
        self._buckets[key] = (tokens - 1.0, now)
        return True

    def _forget_idle(self, now: float) -> None:
        """Drop the buckets that refilled (their requesters went quiet); if every one is busy, start over:
        forgetting errs toward answering."""
        refill = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}
        if len(self._buckets) >= self.capacity:
            self._buckets.clear()
