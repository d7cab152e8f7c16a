"""``TikTokRetryPolicy``: how often and how long the TikTok client retries, as data.

Named apart from the Klaviyo client's ``RetryPolicy`` on purpose: the two
clients retry different failures on different budgets, and one name for two
classes is how the wrong one gets imported.
"""

from __future__ import annotations

from dataclasses import dataclass

from .exceptions import TikTokNetworkError, TikTokRateLimitError, TikTokServerError


@dataclass(frozen=True)
class TikTokRetryPolicy:
    """TikTok's published protocol: wait max(Retry-After, min(base*2^n + jitter, cap)), re-signing each try.

    Parameters:
        max_rate_limited(int), max_server(int), max_network(int): retries per kind of failure.
        backoff_base(float), backoff_max(float), jitter(float): seconds.
        max_wait(float | None): the longest single wait (seconds) the client sleeps through.
    """

    max_rate_limited: int = 5
    max_server: int = 3
    max_network: int = 3
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    jitter: float = 0.5
    #: Longest single wait the client sleeps through. A longer one (a ``Retry-After: 120``)
    #: is raised to the caller instead, with ``retry_after`` set, so that a worker can
    #: retry later rather than sleep in its slot. None: no cap (scripts).
    max_wait: float | None = None

    def wait_for(self, exc: BaseException, attempt: int, jitter: float) -> float:
        """Seconds before retry number ``attempt`` (1-based): max(Retry-After, capped backoff + jitter)."""
        backoff = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)) + jitter
        return max(getattr(exc, "retry_after", None) or 0, backoff)

    def budget(self, exc: BaseException) -> int:
        if isinstance(exc, TikTokRateLimitError):
            return self.max_rate_limited
        if isinstance(exc, TikTokServerError):
            return self.max_server
        if isinstance(exc, TikTokNetworkError):
            return self.max_network
        return 0
