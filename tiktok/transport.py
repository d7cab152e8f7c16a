"""The TikTok client's wire: signed API calls with retries, and unsigned token-host calls.

Each API attempt is stamped and signed afresh (TikTok rejects timestamps older
than five minutes, so a retry must never reuse the first signature). The JSON
body is serialised once and those bytes are both signed and sent. Retries follow
a ``TikTokRetryPolicy``: rate limits, server errors and network failures, each
on its own budget, and a wait longer than ``max_wait`` is raised, not slept.

Nothing here logs a URL, a body or a token: token-host URLs carry the app
secret, and exceptions name only the path.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from urllib.parse import urlencode

import requests
import tenacity
from requests.adapters import HTTPAdapter

from .envelope import read_envelope
from .exceptions import TikTokAPIError, TikTokAuthError, TikTokNetworkError
from .retry import TikTokRetryPolicy
from .signing import encode_body, sign

log = logging.getLogger("tiktok.client")


class Transport:
    """Requests for one app (key and secret) to one API host and one token host."""

    def __init__(self, app_key: str, app_secret: str, base_url: str, auth_base_url: str, timeout: float,
                 retry: TikTokRetryPolicy, sleep=time.sleep, clock=time.time, rate_limiter=None,
                 limiter_timeout: float | None = None):
        self.app_key = app_key
        #: ``acquire(bucket, timeout)`` before every API call, the bucket being the path (TikTok limits
        #: per API); None: no limiter, TikTok's 429s are the only brake.
        self.rate_limiter = rate_limiter
        self.limiter_timeout = limiter_timeout
        self._app_secret = app_secret
        self.base_url = base_url.rstrip("/")
        self.auth_base_url = auth_base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry
        self._sleep = sleep
        self._clock = clock
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=4, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Content-Type": "application/json", "User-Agent": "ksync/0.1"})

    def __repr__(self) -> str:
        return f"Transport(app_key={self.app_key!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self.session.close()

    def call(self, method: str, path: str, query: dict, body: dict | None, access_token: str,
             shop_cipher: str | None, shop_scoped: bool = True) -> dict:
        """One API call, retried per the policy; the ``data`` of its envelope."""
        counts: Counter = Counter()
        waits: dict[int, float] = {}

        def planned_wait(state: tenacity.RetryCallState) -> float:
            if state.attempt_number not in waits:
                waits[state.attempt_number] = self.retry.wait_for(state.outcome.exception(), state.attempt_number,
                                                                  random.uniform(0, self.retry.jitter))
            return waits[state.attempt_number]

        def stop(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception()
            counts[type(exc)] += 1
            if counts[type(exc)] > self.retry.budget(exc):
                return True
            return self.retry.max_wait is not None and planned_wait(state) > self.retry.max_wait

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception()
            log.warning("tiktok %s retry %d after %s", path, state.attempt_number, exc.message,
                        extra={"fields": {"code": exc.code}})

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, TikTokAPIError) and e.retriable),
            stop=stop, wait=planned_wait, sleep=self._sleep, before_sleep=before_sleep, reraise=True)
        return retrying(self._send_once, method, path, query, body, access_token,
                        shop_cipher if shop_scoped else None, shop_scoped)

    def _send_once(self, method: str, path: str, query: dict, body: dict | None, access_token: str,
                   shop_cipher: str | None, shop_scoped: bool) -> dict:
        if self.rate_limiter is not None:
            self.rate_limiter.acquire(path, timeout=self.limiter_timeout)
        params = {k: v for k, v in query.items() if v is not None and v != ""}
        params["app_key"] = self.app_key
        params["timestamp"] = int(self._clock())
        if shop_scoped:
            if not shop_cipher:
                raise TikTokAuthError("no shop cipher: set TIKTOK_SHOP_CIPHER")
            params["shop_cipher"] = shop_cipher
        data = encode_body(body) if method != "GET" else None
        params["sign"] = sign(self._app_secret, path, params, data)
        url = f"{self.base_url}{path}?{urlencode(params)}"
        try:
            response = self.session.request(method, url, data=data, timeout=self.timeout,
                                            headers={"x-tts-access-token": access_token})
        except requests.Timeout:
            raise TikTokNetworkError(f"TikTok {path} timed out after {self.timeout}s") from None
        except requests.RequestException as exc:
            raise TikTokNetworkError(f"TikTok {path} failed: {type(exc).__name__}") from None
        return read_envelope(response, path)

    def token_host(self, path: str, query: dict) -> dict:
        """One unsigned GET to the token host (the app secret rides in the query, as TikTok wants);
        a grant TikTok refuses raises ``TikTokReauthorizationRequired``. Not retried: the caller decides."""
        params = {"app_key": self.app_key, "app_secret": self._app_secret, **query}
        try:
            response = self.session.get(f"{self.auth_base_url}{path}?{urlencode(params)}", timeout=self.timeout)
        except requests.Timeout:
            raise TikTokNetworkError(f"TikTok {path} timed out after {self.timeout}s") from None
        except requests.RequestException as exc:
            raise TikTokNetworkError(f"TikTok {path} failed: {type(exc).__name__}") from None
        return read_envelope(response, path, token_host=True)
