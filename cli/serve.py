"""``ksync serve``: the web service (``workers/web.py``) under gunicorn, configured from the settings.

gunicorn, not Flask's development server: several worker processes (KSYNC_WEB_WORKERS), a
timeout per request (KSYNC_WEB_TIMEOUT) and graceful restarts. Put it behind a reverse proxy
that terminates TLS (README: "Real time").
"""

from __future__ import annotations

from gunicorn.app.base import BaseApplication


class WebService(BaseApplication):
    def __init__(self, bind: str, workers: int, timeout: int):
        #: A webhook takes milliseconds: on SIGTERM, 10 s is ample for requests in flight to end.
        self.options = {"bind": bind, "workers": workers, "timeout": timeout, "graceful_timeout": min(timeout, 10),
                        "accesslog": "-", "errorlog": "-", "worker_class": "sync",
                        "post_fork": _fresh_process}
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from workers.web import create_app

        return create_app()


def _fresh_process(server, worker) -> None:
    """A forked web worker must not share its parent's sockets (database, Redis)."""
    from db.engine import dispose_engines
    from workers import clients

    dispose_engines()
    clients.reset()


def serve(bind: str, workers: int, timeout: int) -> None:
    import logs
    from settings import get_settings

    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    WebService(bind, workers, timeout).run()
