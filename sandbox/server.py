"""Run a WSGI app on loopback in a background thread, as a context manager.

Both stand-ins use this so that tests, benchmarks and ``make demo`` start them
the same way: ``with KlaviyoStandIn() as k: ...`` binds 127.0.0.1 on a free
port (or the port asked for), serves with one thread per request, and stops
cleanly on exit.
"""

from __future__ import annotations

import logging
import threading

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log line."""

    def log_request(self, *args, **kwargs):  # noqa: D401 - werkzeug hook
        pass


class LoopbackServer:
    """A threaded werkzeug server for ``app`` on ``host:port`` (port 0 = any free port)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, quiet: bool = True):
        self.app = app
        self.host = host
        self.requested_port = port
        self.quiet = quiet
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server is not running")
        return self._server.server_port

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "LoopbackServer":
        handler = _QuietHandler if self.quiet else WSGIRequestHandler
        self._server = make_server(self.host, self.requested_port, self.app, threaded=True, request_handler=handler)
        # Many concurrent workers connect at once; the default backlog of 5 drops connections.
        self._server.socket.listen(128)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"loopback:{self.port}", daemon=True)
        self._thread.start()
        logging.getLogger(__name__).debug("serving %s on %s", type(self.app).__name__, self.root_url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (used by ``python -m sandbox.*``)."""
        handler = _QuietHandler if self.quiet else WSGIRequestHandler
        self._server = make_server(self.host, self.requested_port, self.app, threaded=True, request_handler=handler)
        self._server.socket.listen(128)
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._server.server_close()

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
