"""The Flask app: Klaviyo's request gate in front of the ``/api`` routes, admin under ``/_sandbox``.

Every ``/api`` request passes, in order:

1. routing (unknown path 404, wrong method 405, Klaviyo-shaped);
2. ``Authorization: Klaviyo-API-Key <key>`` (401), which picks the account
   (accounts.py), and the ``revision`` header (400);
3. settling of the account's due bulk-import and catalog jobs;
4. injected faults (faults.py), before anything is counted or changed;
5. the fixed-window rate limiter, per account and operation (429 with an
   integer ``Retry-After`` and no ``RateLimit-*`` headers; a refused request
   does not count);
6. the body: ``Content-Type`` (415), size (400 over 5 MB) and JSON (400).

Every other answer carries ``RateLimit-Limit/Remaining/Reset`` for the
operation's steady window, and is counted and logged by operationId, for the
account of the key (a request without a known key: for the default account).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import socket
import time

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from . import admin, catalog_jobs, jobs
from .accounts import Accounts, build_accounts
from .errors import (ApiError, authentication_failed, invalid, method_not_allowed, not_authenticated, not_found,
                     parse_error, server_error, throttled, unsupported_media_type)
from .faults import Faults, malformed_body
from .limits import FixedWindowLimiter
from .routes import ROUTES
from .web import EXTENSION, JSON_API, Sandbox, sandbox

log = logging.getLogger(__name__)

REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[A-Za-z0-9_-]+)?$")
BODY_TYPES = {"application/vnd.api+json", "application/json"}
MAX_PAYLOAD = 5 * 1024 * 1024  #: bytes, Klaviyo's global cap
DROP = "ksync.drop"            #: environ flag: close the connection instead of answering

#: The usual 2xx of each write, used for ``truncated`` malformed answers.
SUCCESS_STATUS = {"create_profile": 201, "create_list": 201, "create_segment": 201, "create_event": 202,
                  "bulk_create_events": 202, "bulk_import_profiles": 202, "bulk_subscribe_profiles": 202,
                  "bulk_unsubscribe_profiles": 202, "bulk_suppress_profiles": 202, "bulk_unsuppress_profiles": 202,
                  "request_profile_deletion": 202, "create_catalog_item": 201, "create_catalog_variant": 201,
                  "create_catalog_category": 201, "create_back_in_stock_subscription": 202,
                  **{f"bulk_{action}_catalog_{kind}": 202 for action in ("create", "update", "delete")
                     for kind in ("items", "variants", "categories")}}


def create_app(api_keys=None, rate_limit_scale: float = 1.0, limits: dict | None = None,
               faults: dict | None = None, job_stage_seconds: float = 0.2, accounts: dict | None = None,
               max_open_catalog_jobs: int = catalog_jobs.MAX_OPEN_JOBS) -> Flask:
    """A WSGI app that answers like Klaviyo's REST API for ``api_keys`` (one account) or ``accounts``."""
    app = Flask("sandbox.klaviyo")
    app.url_map.strict_slashes = False
    app.extensions[EXTENSION] = Sandbox(
        accounts=Accounts(build_accounts(api_keys, accounts)),
        limiter=FixedWindowLimiter(scale=rate_limit_scale, overrides=limits),
        faults=Faults(faults), job_stage_seconds=job_stage_seconds, max_open_catalog_jobs=max_open_catalog_jobs)
    for method, path, view in ROUTES:
        app.add_url_rule("/api" + path, endpoint=view.__name__, view_func=view, methods=[method])
    app.register_blueprint(admin.blueprint)
    app.before_request(_gate)
    app.after_request(_finish)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.wsgi_app = _DroppingMiddleware(app.wsgi_app)
    return app


def _gate():
    if not request.path.startswith("/api/") or request.routing_exception is not None:
        return None
    box = sandbox()
    g.now, g.op = time.time(), request.endpoint
    g.account = account = _authenticate(box.accounts, box.revoked)
    revision = request.headers.get("revision")
    if not revision:
        raise invalid("Missing required header: revision.", parameter="revision")
    if not REVISION.match(revision):
        raise invalid(f"'{revision}' is not a valid revision.", parameter="revision")
    if account.store.pending_imports or account.catalog.pending:
        with account.store.lock:
            jobs.settle(account.store, g.now)
            catalog_jobs.settle(account.catalog, g.now)
    answer = _inject_faults(box, account)
    if answer is not None:
        return answer
    decision = box.limiter.acquire(account.id, g.op, g.now)
    if not decision.allowed:
        account.counters.throttled(g.op)
        raise throttled(decision.retry_after)
    g.ratelimit = decision
    g.body = _read_body()
    return None


def _authenticate(accounts: Accounts, revoked: set):
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if not header or scheme != "Klaviyo-API-Key" or not key.strip():
        raise not_authenticated()
    account = accounts.by_key.get(key.strip())
    if account is None or key.strip() in revoked:
        raise authentication_failed()
    return account


def _inject_faults(box: Sandbox, account):
    text = request.get_data(cache=True).decode("utf-8", "replace") + "?" + request.query_string.decode("latin-1")
    plan = box.faults.plan(g.op, g.now, text, account.id)
    if plan.latency > 0:
        account.counters.fault(g.op, "latency")
        time.sleep(plan.latency)
    if plan.action is None:
        return None
    account.counters.fault(g.op, plan.kind)
    g.fault = plan.kind
    if plan.action in ("drop", "drop_after_commit"):
        request.environ[DROP] = plan.action
        return Response(b"", status=500) if plan.action == "drop" else None
    if plan.action == "force_429":
        raise throttled(box.faults.config.retry_after if box.faults.config else 1)
    if plan.action == "error":
        raise server_error(plan.status)
    if plan.action == "error_after_commit":
        g.error_after_commit = plan.status  # served normally; the answer is replaced on the way out (_finish)
        return None
    if plan.action == "reject":
        raise invalid("This record was refused (injected fault).", pointer="/data/attributes")
    if plan.kind == "malformed_truncated":
        g.truncate = True  # the request is served; its answer is cut short on the way out (_finish)
        return None
    status, content_type, payload = malformed_body(plan.kind, g.op)
    if status == 0:
        status = SUCCESS_STATUS.get(g.op, 200)
        status = 200 if status == 204 else status
    return Response(payload, status=status, content_type=content_type)


def _read_body():
    raw = request.get_data(cache=True)
    if request.method not in ("POST", "PATCH", "PUT") and not raw:
        return None
    if request.mimetype not in BODY_TYPES:
        raise unsupported_media_type(request.content_type or "")
    encoding = request.headers.get("Content-Encoding", "identity").lower()
    if encoding == "gzip":
        raw = gzip.decompress(raw)
    elif encoding != "identity":
        raise ApiError(415, "unsupported_media_type", "Unsupported media type.",
                       f'Unsupported content encoding "{encoding}".')
    if len(raw) > MAX_PAYLOAD:
        raise invalid("Payloads may be at most 5 MB.", "/data")
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise parse_error(str(error)) from None


def _finish(response: Response) -> Response:
    op = g.get("op")
    if op is None:
        return response
    box = sandbox()
    account = g.get("account")
    if response.status_code != 429:
        decision = g.get("ratelimit") or (box.limiter.peek(account.id, op, g.now) if account else None)
        if decision is not None:
            response.headers.update(decision.headers())
    if g.get("error_after_commit") and response.status_code < 400:
        response = _api_error(server_error(g.error_after_commit))
    if g.get("truncate"):
        body = response.get_data() or b'{"data":{"type":"event","attributes":{"propert'
        response.set_data(body[: max(1, len(body) // 2)])
    drop = request.environ.get(DROP)
    status = 0 if drop == "drop" else response.status_code
    (account or box.accounts.default).counters.request(op, g.now, status, dropped=bool(drop))
    return response


def _api_error(error: ApiError) -> Response:
    response = Response(json.dumps(error.body()), status=error.status, mimetype=JSON_API)
    response.headers.update(error.headers)
    return response


def _http_error(error: HTTPException) -> Response:
    if error.code == 404:
        return _api_error(not_found())
    if error.code == 405:
        return _api_error(method_not_allowed(request.method))
    return _api_error(ApiError(error.code or 500, "error", error.name, error.description or error.name))


def _unexpected_error(error: Exception) -> Response:
    log.exception("stand-in failed on %s %s", request.method, request.path)
    return _api_error(server_error(500))


class _DroppingMiddleware:
    """Close the client's connection without an answer when a fault asked for it.

    The app runs normally (so ``drop_after_commit`` keeps its state change);
    then, instead of sending, we shut the socket and raise a connection error,
    which werkzeug treats as a client that went away.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        captured = []
        result = self.app(environ, lambda status, headers, exc_info=None: captured.append((status, headers, exc_info)))
        if not environ.get(DROP):
            start_response(*captured[0])
            return result
        if hasattr(result, "close"):
            result.close()
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise ConnectionAbortedError("sandbox fault: connection dropped")
