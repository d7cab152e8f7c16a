"""Structured logging: one line per event, secrets redacted, buyer PII masked.

Every record leaves as one logfmt (or JSON) line carrying ``run_id`` and
``task_id`` when a task is running. Two safety nets apply to *every* line, no
matter who logged it (our code, Celery, requests, urllib3):

- secrets: the values of KLAVIYO_API_KEY, TIKTOK_APP_SECRET, the TikTok tokens
  and FLOWER_BASIC_AUTH (and anything registered with ``register_secret``)
  are replaced by ``***``;
- PII: e-mail addresses and phone numbers are masked (``j***@example.com``,
  ``+1******0123``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time

from klaviyo.masking import mask_phone  # one masking rule, for reprs and log lines

EMAIL_RE = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-]+(?:\.[\w-]+)+)")
#: Phone-shaped text: E.164 (+14155550123), TikTok's masked form ((+1)213-***-1234) or a
#: formatted number (+1 415-555-0123), wherever it sits in a sentence ("tel:+1...", "...0123.").
#: Numbers without a "+" (order ids, ports, timestamps) are left alone.
PHONE_RE = re.compile(
    r"(?<![\w+])\+\d{7,15}(?!\d)"
    r"|\(\+?\d{1,3}\)\s?[\d*]{2,4}[-\s][\d*]{2,4}[-\s][\d*]{2,4}"
    r"|(?<![\w+])\+\d{1,3}[-\s]\(?\d{2,4}\)?[-\s]\d{3}[-\s]\d{3,4}(?!\d)")

_secrets: set[str] = set()
run_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("ksync_run_id", default=None)
task_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("ksync_task_id", default=None)


def register_secret(value: str | None) -> None:
    """Make sure ``value`` never appears in a log line (short values are ignored)."""
    if value and len(value) >= 6:
        _secrets.add(value)


def scrub(text: str) -> str:
    """Redact registered secrets and mask e-mails and phone numbers in ``text``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    text = EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return PHONE_RE.sub(lambda m: mask_phone(m.group(0)) or "***", text)


class ScrubFilter(logging.Filter):
    """Formats each record's message once, scrubs it, and freezes it on the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = str(record.msg)
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        record.exc_info = None
        return True


def _quote(value) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class LineFormatter(logging.Formatter):
    """``ts=... level=info logger=workers.tasks run_id=... task_id=... msg="..." key=value``."""

    def __init__(self, fmt: str = "logfmt"):
        super().__init__()
        self.kind = fmt

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        run_id = getattr(record, "run_id", None) or run_id_var.get()
        task_id = getattr(record, "task_id", None) or task_id_var.get()
        if run_id:
            fields["run_id"] = run_id
        if task_id:
            fields["task_id"] = task_id
        fields["msg"] = record.getMessage()
        for key, value in getattr(record, "fields", {}).items():
            fields[key] = scrub(str(value))
        if record.exc_text:
            fields["exc"] = record.exc_text.replace("\n", " | ")
        if self.kind == "json":
            return json.dumps(fields, ensure_ascii=False, default=str)
        return " ".join(f"{k}={_quote(v)}" for k, v in fields.items())


def configure(level: str = "INFO", fmt: str = "logfmt", stream=None) -> None:
    """Install the line formatter and the scrub filter on the root logger's handler."""
    from settings import SECRET_NAMES, ENV_NAMES, get_settings

    settings = get_settings()
    by_env = {v: k for k, v in ENV_NAMES.items()}
    for name in SECRET_NAMES:
        value = getattr(settings, by_env[name])
        register_secret(value)
        if name == "FLOWER_BASIC_AUTH" and ":" in value:
            register_secret(value.split(":", 1)[1])
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LineFormatter(fmt))
    handler.addFilter(ScrubFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def install_on(logger: logging.Logger, fmt: str = "logfmt") -> None:
    """Give an existing logger's handlers (Celery's) our formatter and filter."""
    for handler in logger.handlers:
        handler.setFormatter(LineFormatter(fmt))
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
