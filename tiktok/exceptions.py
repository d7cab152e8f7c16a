"""TikTok Shop errors. The envelope's ``code`` decides the class, not only the HTTP status.

Retriable: ``TikTokRateLimitError`` (36009002 / HTTP 429), ``TikTokServerError``
(5xx, 36009003, 36009007, unreadable answers), ``TikTokNetworkError``.
Fatal: ``TikTokAuthError`` (credentials), ``TikTokSignatureError`` (106001: wrong app
secret or a body signed differently from what was sent), and
``TikTokReauthorizationRequired`` (the token host refused the refresh token or
auth code: only the seller authorizing the app again can mend it).
Per record: ``OrderValidationError`` / ``RecordValidationError`` name the record id and the field.

No message ever contains the app secret or a token.
"""

from __future__ import annotations


class TikTokAPIError(Exception):
    """Base error. ``code`` and ``message`` come from TikTok's envelope; ``request_id`` for support."""

    retriable = False

    def __init__(self, message: str, *, code: int | None = None, request_id: str | None = None,
                 status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id
        self.status = status


class TikTokAuthError(TikTokAPIError):
    """Missing, invalid or expired credentials (36009004 credential messages, 105002, 105005...)."""


class TikTokReauthorizationRequired(TikTokAuthError):
    """The token host rejected the grant: a refresh token (or auth code) that is invalid, used,
    revoked (36004004) or expired (105002). Retrying cannot help; the seller must authorize the
    app again, so the app marks the connection ``needs_reauth``. A network failure or a 5xx
    during a refresh is *not* this error: it stays a retriable ``TikTokNetworkError`` /
    ``TikTokServerError``."""


class TikTokTokenExpiredError(TikTokAuthError):
    """105002: the access token expired; the client refreshes it once and retries."""


class TikTokSignatureError(TikTokAuthError):
    """106001: TikTok recomputed the signature and it did not match."""


class TikTokRateLimitError(TikTokAPIError):
    """36009002 / HTTP 429. ``retry_after`` is the server's Retry-After when it sent one."""

    retriable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class TikTokNotFoundError(TikTokAPIError):
    """36009009 unknown path, or an order that does not belong to the shop (21008111)."""


class TikTokServerError(TikTokAPIError):
    """5xx, 36009003 / 36009007, or an answer we could not read."""

    retriable = True


class TikTokNetworkError(TikTokAPIError):
    """No answer: refused, reset, timed out."""

    retriable = True


class TikTokPagingError(TikTokAPIError):
    """The server repeated a page token: paging would loop forever, so it stops here."""


class OrderValidationError(ValueError):
    """An order TikTok sent that we cannot use, naming the order id and the field."""

    def __init__(self, order_id: str | None, field: str, message: str):
        super().__init__(f"order {order_id or '<no id>'}: {field}: {message}")
        self.order_id = order_id
        self.field = field
        self.message = message


class RecordValidationError(ValueError):
    """A return, cancellation, product or inventory record we cannot use, naming its kind, id and field."""

    def __init__(self, kind: str, record_id: str | None, field: str, message: str):
        super().__init__(f"{kind} {record_id or '<no id>'}: {field}: {message}")
        self.kind = kind
        self.record_id = record_id
        self.field = field
        self.message = message
