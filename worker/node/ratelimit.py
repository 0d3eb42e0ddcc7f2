"""Per-consumer spacing of rate-limited tasks (`rate_limit='10/s'`)."""

from __future__ import annotations

import time


class RateLimiter:
    """Per-consumer spacing of tasks that have a `rate_limit`: each of the node's N
    consumers starts a given task at most rate/N times a second, so the node as a whole
    keeps the rate without the consumers talking to each other."""

    def __init__(self, share: float = 1.0, default: str | None = None) -> None:
        self.share = share
        self.default = default
        self._next: dict[str, float] = {}
        self._rates: dict[object, float | None] = {}

    def wait(self, name: str, rate_limit: object) -> None:
        rate_limit = rate_limit or self.default
        if not rate_limit:
            return
        if rate_limit not in self._rates:
            from qmulti.routing import parse_rate

            try:
                self._rates[rate_limit] = parse_rate(rate_limit)  # type: ignore[arg-type]
            except Exception:
                self._rates[rate_limit] = None
        rate = self._rates[rate_limit]
        if not rate:
            return
        interval = 1.0 / (rate * self.share)
        now = time.monotonic()
        start = max(now, self._next.get(name, now))
        self._next[name] = start + interval
        if start > now:
            time.sleep(start - now)
