"""Klaviyo errors, one root, split by what the caller should do next.

- Retriable: ``KlaviyoRateLimitError`` (wait ``retry_after``), ``KlaviyoServerError``
  (5xx, or an answer we could not read), ``KlaviyoNetworkError``.
- Fatal for the run: ``KlaviyoAuthError`` (fix the key or its scopes), ``KlaviyoConfigError``
  (fix the client's configuration: raised when the client is made, before any request).
- Skippable, record by record: ``KlaviyoValidationError`` (the field is named),
  ``KlaviyoNotFoundError``, ``KlaviyoConflictError``.

Messages never contain the API key: the client builds them from status codes
and Klaviyo's error bodies, never from request headers.
"""

from __future__ import annotations


class KlaviyoAPIError(Exception):
    """Base of every Klaviyo error.

    Attributes:
        status (int | None): HTTP status, or None when no answer arrived.
        code (str | None): the first error's ``code`` (``invalid``, ``throttled``...).
        message (str): a readable one-line summary.
        errors (list[dict]): Klaviyo's ``errors`` array as received.
        request_id (str | None): the error ``id`` Klaviyo gave, for support tickets.
    """

    retriable = False

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 errors: list | None = None, request_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.errors = errors or []
        self.request_id = request_id

    @property
    def pointer(self) -> str | None:
        """JSON pointer of the first error's source (``/data/attributes/email``), if any."""
        for error in self.errors:
            source = error.get("source") or {} if isinstance(error, dict) else {}
            if isinstance(source, dict) and (source.get("pointer") or source.get("parameter")):
                return source.get("pointer") or source.get("parameter")
        return None


class KlaviyoAuthError(KlaviyoAPIError):
    """401 (no or wrong key) or 403 (the key lacks a scope)."""


class KlaviyoRateLimitError(KlaviyoAPIError):
    """429 throttled. ``retry_after`` is Klaviyo's Retry-After in seconds."""

    retriable = True

    def __init__(self, message: str, *, retry_after: float = 1.0, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class KlaviyoValidationError(KlaviyoAPIError):
    """Klaviyo answered 400, or our own check refused the input before sending.

    ``field`` names what was wrong (``email``, ``phone_number``,
    ``events[3].unique_id``), taken from the error's source pointer when Klaviyo
    sent one; ``index`` is the refused record's position in a bulk call.
    """

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.field = field
        #: For bulk calls: the position of the refused record in the list the caller passed.
        self.index = index


class KlaviyoNotFoundError(KlaviyoAPIError):
    """404: the profile, list, segment or job does not exist."""


class KlaviyoConflictError(KlaviyoAPIError):
    """409 ``duplicate_profile``: another profile already holds one of the identifiers."""

    def __init__(self, message: str, *, duplicate_profile_id: str | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.duplicate_profile_id = duplicate_profile_id


class KlaviyoServerError(KlaviyoAPIError):
    """5xx, or a 2xx whose body we could not read (HTML error page, truncated JSON)."""

    retriable = True


class KlaviyoNetworkError(KlaviyoAPIError):
    """No answer: connection refused or reset, timeout, dropped connection."""

    retriable = True


class KlaviyoConfigError(KlaviyoAPIError):
    """The client's own configuration cannot work (a base URL without ``http://`` or ``https://``).

    Raised by the constructor, before any request: no retry could ever help, so none is made.
    """
