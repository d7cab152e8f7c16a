"""The HTTP side of the Klaviyo client: one pooled session, the rate limiter, retries, errors, pages.

Every request goes the same way::

    rate_limiter.acquire(operation) -> send -> classify (2xx, or the matching exception)

inside a retry budget per kind of failure (429, 5xx, network) run by tenacity. A
429 also tells the rate limiter to cool the bucket down for Retry-After seconds,
so with the fleet-wide Redis limiter every worker pauses, not just this one. Each
retry asks the limiter again: a retry is a request and spends the same budget.

The API key lives only in the session's headers; it never reaches ``repr``, a
log line or an exception message.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import requests
import tenacity
from requests.adapters import HTTPAdapter

from .exceptions import (
    KlaviyoAPIError,
    KlaviyoAuthError,
    KlaviyoConfigError,
    KlaviyoConflictError,
    KlaviyoNetworkError,
    KlaviyoNotFoundError,
    KlaviyoRateLimitError,
    KlaviyoServerError,
    KlaviyoValidationError,
)
from .limits import RateLimiter

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/vnd.api+json"
KLAVIYO_BASE_URL = "https://a.klaviyo.com/api"
#: The OS's reason inside a requests/urllib3 error text: "[Errno 111] Connection refused".
OS_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


@dataclass(frozen=True)
class RetryPolicy:
    """How many times each kind of failure is retried, and the backoff between tries.

    The defaults are the seed's: 429 three times, 5xx twice, network errors
    twice. A 429 waits at least its Retry-After; the others back off
    exponentially with full jitter (``backoff_base * 2**n``, capped).
    """

    max_429: int = 3
    max_5xx: int = 2
    max_network: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 30.0

    def budget(self, exc: BaseException) -> int:
        if isinstance(exc, KlaviyoRateLimitError):
            return self.max_429
        if isinstance(exc, KlaviyoServerError):
            return self.max_5xx
        if isinstance(exc, KlaviyoNetworkError):
            return self.max_network
        return 0


class Transport:
    """Requests to one Klaviyo base URL with one key, revision, limiter and retry policy."""

    def __init__(self, api_key: str, base_url: str, revision: str, timeout: float, rate_limiter: RateLimiter,
                 retry: RetryPolicy, limiter_timeout: float | None = None, pool_size: int = 10, sleep=time.sleep):
        self.base_url = base_url.rstrip("/")
        self.host, self.path_hint = check_base_url(self.base_url)
        self.timeout = timeout
        self.rate_limiter = rate_limiter
        self.retry = retry
        self.limiter_timeout = limiter_timeout
        self._sleep = sleep
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({
            "Authorization": f"Klaviyo-API-Key {api_key}",
            "revision": revision,
            "Accept": MEDIA_TYPE,
            "User-Agent": "ksync/0.1 (+https://github.com/ksync)",
        })

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r})"

    def close(self) -> None:
        self.session.close()

    def paginate(self, operation: str, path: str, params: dict) -> Iterator[tuple[dict, dict]]:
        """Yield ``(resource, included_by_type_and_id)`` for every item of every page.

        The cursor is taken out of ``links.next`` and sent against our own base
        URL, so a proxy in front of Klaviyo (or a stand-in) is never bypassed.
        """
        params = dict(params)
        seen_cursors = set()
        while True:
            body = self.json(self.request(operation, "GET", path, params=params))
            included = {(i.get("type"), i.get("id")): i for i in body.get("included") or [] if isinstance(i, dict)}
            data = body.get("data")
            if not isinstance(data, list):
                raise KlaviyoServerError(f"Klaviyo answered {operation} without a 'data' list")
            for resource in data:
                yield resource, included
            next_url = (body.get("links") or {}).get("next")
            if not next_url:
                return
            cursor = parse_qs(urlsplit(next_url).query).get("page[cursor]", [None])[0]
            if not cursor or cursor in seen_cursors:
                raise KlaviyoServerError(f"Klaviyo repeated or omitted a page cursor for {operation}")
            seen_cursors.add(cursor)
            params["page[cursor]"] = cursor

    def request(self, operation: str, method: str, path: str, *, params: dict | None = None,
                 body: dict | None = None, idempotent: bool = True, expect: tuple[int, ...] | None = None) -> requests.Response:
        """Send with the rate limiter and the retry budgets; return a 2xx response or raise.

        ``expect`` pins the success statuses of operations whose contract is exact
        (``202`` with no body): any other 2xx is an answer we cannot trust, such as a
        proxy replying in Klaviyo's place, and is retried like a server error.
        """
        url = f"{self.base_url}{path}"
        data = json.dumps(body, separators=(",", ":"), default=str).encode() if body is not None else None
        counts: Counter = Counter()

        def stop(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception()
            if isinstance(exc, (KlaviyoNetworkError, KlaviyoServerError)) and not idempotent:
                return True  # the request may have been applied (a 5xx too): the caller looks before it retries
            counts[type(exc)] += 1
            return counts[type(exc)] > self.retry.budget(exc)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception()
            backoff = random.uniform(0, min(self.retry.backoff_max, self.retry.backoff_base * 2 ** (state.attempt_number - 1)))
            if isinstance(exc, KlaviyoRateLimitError):
                return exc.retry_after + random.uniform(0, 0.1 * exc.retry_after)
            return backoff

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception()
            log.warning("klaviyo %s retry %d after %s", operation, state.attempt_number, exc.message,
                        extra={"fields": {"operation": operation, "status": exc.status}})

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, KlaviyoAPIError) and e.retriable),
            stop=stop, wait=wait, sleep=self._sleep, before_sleep=before_sleep, reraise=True)
        return retrying(self._send_once, operation, method, url, params, data, expect)

    def _send_once(self, operation: str, method: str, url: str, params: dict | None, data: bytes | None,
                   expect: tuple[int, ...] | None = None) -> requests.Response:
        self.rate_limiter.acquire(operation, timeout=self.limiter_timeout)
        headers = {"Content-Type": MEDIA_TYPE} if data is not None else None
        try:
            response = self.session.request(method, url, params=params, data=data, headers=headers, timeout=self.timeout)
        except requests.ConnectTimeout:
            raise KlaviyoNetworkError(f"Klaviyo {operation}: could not reach {self.host} "
                                      f"(no connection within {self.timeout}s)") from None
        except requests.Timeout:
            raise KlaviyoNetworkError(f"Klaviyo {operation}: no answer from {self.host} within {self.timeout}s") from None
        except requests.ConnectionError as exc:
            raise KlaviyoNetworkError(f"Klaviyo {operation}: could not reach {self.host} ({_reason(exc)})") from None
        except requests.RequestException as exc:
            raise KlaviyoNetworkError(f"Klaviyo {operation}: request to {self.host} failed ({_reason(exc)})") from None
        if response.status_code < 300:
            if expect and response.status_code not in expect:
                raise KlaviyoServerError(f"Klaviyo {operation} answered {response.status_code}, expected "
                                         f"{'/'.join(map(str, expect))}: not a Klaviyo answer we can trust",
                                         status=response.status_code)
            return response
        error = error_from_response(response, operation)
        if self.path_hint and response.status_code in (404, 405):
            error.message += self.path_hint
            error.args = (error.message,)
        if isinstance(error, KlaviyoRateLimitError):
            self.rate_limiter.cool_down(operation, error.retry_after)
        raise error

    @staticmethod
    def json(response: requests.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            kind = "an HTML page" if "html" in response.headers.get("Content-Type", "") else "unreadable JSON"
            raise KlaviyoServerError(f"Klaviyo answered {response.status_code} with {kind}", status=response.status_code) from None
        if not isinstance(body, dict):
            raise KlaviyoServerError(f"Klaviyo answered {response.status_code} with a {type(body).__name__}, not an object",
                                     status=response.status_code)
        return body


def check_base_url(base_url: str) -> tuple[str, str]:
    """``(host[:port], hint)`` for a base URL, or ``KlaviyoConfigError`` if it cannot work.

    A URL without ``http://`` or ``https://`` would fail every request with the same error,
    retried each time; it is refused here instead, once. A path that does not end in ``/api``
    is allowed (a proxy may mount Klaviyo elsewhere) but earns a hint on any 404.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = re.sub(r"//[^/@]*@", "//***@", base_url)
        raise KlaviyoConfigError(f"Klaviyo base URL {shown!r} (KLAVIYO_API_BASE_URL) needs http:// or https:// "
                                 f"and a host, e.g. {KLAVIYO_BASE_URL}")
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    hint = ""
    if not parts.path.rstrip("/").endswith("/api"):
        hint = (f" (the base URL {parts.scheme}://{host}{parts.path} does not end in /api: "
                f"Klaviyo's is {KLAVIYO_BASE_URL}; check KLAVIYO_API_BASE_URL)")
    return host, hint


def _reason(exc: requests.RequestException) -> str:
    """The OS's words for a connection failure ("Connection refused", "Name or service not known")."""
    match = OS_REASON.search(str(exc))
    return match.group(1).strip() if match else type(exc).__name__


def error_from_response(response: requests.Response, operation: str) -> KlaviyoAPIError:
    """Turn a non-2xx answer into the matching exception, with Klaviyo's detail and pointer."""
    status = response.status_code
    try:
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
    except ValueError:
        errors = None
    errors = [e for e in errors or [] if isinstance(e, dict)]
    first = errors[0] if errors else {}
    code = first.get("code")
    detail = first.get("detail") or first.get("title")
    if not errors:
        kind = "an HTML error page" if "html" in response.headers.get("Content-Type", "") else "no readable error body"
        detail = f"{kind}"
    source = first.get("source") if isinstance(first.get("source"), dict) else {}
    pointer = source.get("pointer") or source.get("parameter")
    message = f"Klaviyo {operation} answered {status}{f' {code}' if code else ''}: {detail}{f' (at {pointer})' if pointer else ''}"
    common = dict(status=status, code=code, errors=errors, request_id=first.get("id"))
    if status == 429:
        return KlaviyoRateLimitError(message, retry_after=_retry_after(response), **common)
    if status in (401, 403):
        return KlaviyoAuthError(message, **common)
    if status == 404:
        return KlaviyoNotFoundError(message, **common)
    if status == 409:
        meta = first.get("meta") if isinstance(first.get("meta"), dict) else {}
        return KlaviyoConflictError(message, duplicate_profile_id=meta.get("duplicate_profile_id"), **common)
    if status in (400, 422):
        field = pointer.removeprefix("/data/attributes/").replace("/", ".") if pointer else None
        return KlaviyoValidationError(message, field=field, **common)
    if status >= 500:
        return KlaviyoServerError(message, **common)
    return KlaviyoAPIError(message, **common)


def _retry_after(response: requests.Response) -> float:
    """Retry-After in seconds. Klaviyo sends an integer; HTTP also allows a date (RFC 9110), which a
    proxy in front of Klaviyo may send. Missing or unreadable means 1 s."""
    value = response.headers.get("Retry-After", "1")
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    return max(0.0, when.timestamp() - time.time()) if when.tzinfo else 1.0
