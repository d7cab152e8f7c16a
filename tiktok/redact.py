"""Keep credentials that travel in a URL out of urllib3's debug log.

The token host takes ``app_secret``, ``auth_code`` and ``refresh_token`` in the
query string (TikTok's design, not ours), and urllib3 logs every request line at
DEBUG. The client never logs a URL itself; this filter, put on urllib3's
connection-pool logger once per process, blanks those values in whatever that
logger writes, so turning on DEBUG cannot leak them. The app's own log
redaction (fed through ``on_secret``) stays the second line of defence.
"""

from __future__ import annotations

import logging
import re

#: Query parameters whose values are credentials.
SECRET_PARAMS = ("app_secret", "auth_code", "refresh_token", "access_token", "code")
_PATTERN = re.compile(r"(?<![\w-])(" + "|".join(SECRET_PARAMS) + r")=[^&\s\"']*")
_LOGGERS = ("urllib3.connectionpool",)


def redact_query(text: str) -> str:
    """``...&app_secret=abc&x=1`` -> ``...&app_secret=***&x=1``."""
    return _PATTERN.sub(lambda m: f"{m.group(1)}=***", text)


class QueryRedactionFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_query(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install() -> None:
    """Put the filter on urllib3's request logger (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryRedactionFilter) for f in logger.filters):
            logger.addFilter(QueryRedactionFilter())
