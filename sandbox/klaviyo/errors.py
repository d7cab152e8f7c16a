"""Klaviyo's error bodies, and the exception the routes raise to answer with one.

Every error the stand-in sends has the shape real Klaviyo sends (richer than
the spec's ``ClientError``, which only requires id/code/title/detail)::

    {"errors": [{"id": "<uuid>", "status": 400, "code": "invalid",
                 "title": "Invalid input.", "detail": "...",
                 "source": {"pointer": "/data/attributes/email"}, "links": {}, "meta": {}}]}

The constructors below hold the exact codes, titles and details observed from
the live API (see shared/reference/klaviyo-api.md section 1.3).
"""

from __future__ import annotations

from .ids import request_uuid

RATE_LIMIT_DOCS = "https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling"


class ApiError(Exception):
    """An error answer: raise it anywhere inside a request and the app renders it."""

    def __init__(self, status: int, code: str, title: str, detail: str, *, pointer: str | None = None,
                 parameter: str | None = None, meta: dict | None = None, links: dict | None = None,
                 headers: dict | None = None):
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.source = {"parameter": parameter} if parameter is not None else {"pointer": pointer or "/data/"}
        self.meta = meta or {}
        self.links = links or {}
        self.headers = headers or {}

    def body(self) -> dict:
        return {"errors": [{
            "id": request_uuid(), "status": self.status, "code": self.code, "title": self.title,
            "detail": self.detail, "source": self.source, "links": self.links, "meta": self.meta,
        }]}


def invalid(detail: str, pointer: str | None = None, parameter: str | None = None) -> ApiError:
    """400 ``invalid``: a bad body field (``pointer``) or query parameter (``parameter``)."""
    return ApiError(400, "invalid", "Invalid input.", detail, pointer=pointer or ("/data" if parameter is None else None),
                    parameter=parameter)


def parse_error(detail: str) -> ApiError:
    return ApiError(400, "parse_error", "Malformed request.", f"JSON parse error - {detail}")


def not_found(detail: str = "Not found.") -> ApiError:
    return ApiError(404, "not_found", "Not found.", detail)


def method_not_allowed(method: str) -> ApiError:
    return ApiError(405, "method_not_allowed", "Method not allowed.", f'Method "{method}" not allowed.')


def not_authenticated() -> ApiError:
    return ApiError(401, "not_authenticated", "Authentication credentials were not provided.",
                    "Missing or invalid private key.")


def authentication_failed() -> ApiError:
    return ApiError(401, "authentication_failed", "Incorrect authentication credentials.",
                    "Incorrect authentication credentials.")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "unsupported_media_type", "Unsupported media type.",
                    f'Unsupported media type "{content_type}" in request.')


def duplicate_profile(profile_id: str) -> ApiError:
    """409 with the id of the profile that already holds the identifier, as Klaviyo sends it."""
    return ApiError(409, "duplicate_profile", "Conflict.", "A profile already exists with one of these identifiers.",
                    pointer="/data/attributes", meta={"duplicate_profile_id": profile_id})


def throttled(retry_after: int) -> ApiError:
    """429 with an integer ``Retry-After`` (the official SDK crashes on anything else)."""
    unit = "second" if retry_after == 1 else "seconds"
    return ApiError(429, "throttled", "Request was throttled.",
                    f"Request was throttled. Expected available in {retry_after} {unit}.",
                    pointer="/data/", links={"type": RATE_LIMIT_DOCS}, headers={"Retry-After": str(retry_after)})


def server_error(status: int = 500) -> ApiError:
    if status == 503:
        return ApiError(503, "error", "Service unavailable.", "The service is temporarily unavailable. Try again later.")
    return ApiError(status, "error", "A server error occurred.", "A server error occurred.")
