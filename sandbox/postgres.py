"""A throwaway PostgreSQL database beside a server you name, for the tests and the benchmarks.

Neither ever touches the database ``DATABASE_URL`` names: each gets a fresh one on the
same server, and drops it afterwards, connections and all.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from db.engine import dispose_engines, normalise_url


@contextlib.contextmanager
def throwaway_database(server_url: str, prefix: str = "ksync_tmp") -> Iterator[str]:
    """Create ``<prefix>_<random>`` on ``server_url``'s server; yield its URL; drop it on exit."""
    admin_url = normalise_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 10})
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()  # this process's pooled connections to it
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
