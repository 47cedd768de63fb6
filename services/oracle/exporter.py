"""The instance's one HTTP endpoint: ``/metrics`` (Prometheus) and ``/healthz``.

Served by the standard library (``http.server.ThreadingHTTPServer``) on a thread of
the oracle process; nothing in the physics serves HTTP. ``/metrics`` renders the
registry it is given with prometheus_client's exposition (text format, or OpenMetrics
when the scraper asks for it); ``/healthz`` calls the health function it is given and
answers 200 or 503 with its JSON body. ``HEAD`` is answered like ``GET`` without a body;
any other path is 404.

A bind failure raises :class:`ExporterBindError` naming the address and the reason
(for example a port already in use), which ``engs oracle`` reports and exits 1 on.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from engs.shared.errors import EngsError

log = logging.getLogger("engs.oracle.http")

HealthFn = Callable[[], tuple[bool, dict[str, Any]]]


class ExporterBindError(EngsError):
    """The metrics endpoint could not bind its address."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry
    health: HealthFn

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (a DNS lookup that can stall
        # start-up for seconds); the name is only used in error pages.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "engs-oracle"

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, *, body: bool) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
            try:
                data = encoder(self.server.registry)
            except Exception:
                log.exception("scrape failed")
                self._reply(500, "text/plain; charset=utf-8", b"scrape failed\n", body)
                return
            self._reply(200, ctype, data, body)
        elif path == "/healthz":
            ok, info = self.server.health()
            data = (json.dumps(info, sort_keys=True) + "\n").encode()
            self._reply(200 if ok else 503, "application/json", data, body)
        elif path == "/":
            text = b"ENGS oracle: /metrics (Prometheus), /healthz (JSON)\n"
            self._reply(200, "text/plain; charset=utf-8", text, body)
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found\n", body)

    def _reply(self, status: int, ctype: str, data: bytes, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class MetricsServer:
    """``/metrics`` and ``/healthz`` on ``host:port`` (port 0: any free port).

    Binds in the constructor (so a bad address fails before anything starts);
    :meth:`start` serves on a daemon thread; :meth:`stop` shuts down and closes.
    """

    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: HealthFn) -> None:
        cls = _Server6 if ":" in host else _Server
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self._httpd = cls((host, port), _Handler)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ExporterBindError(f"cannot serve metrics on {where}: {reason}") from exc
        self._httpd.registry = registry
        self._httpd.health = health
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.25},
            name="engs-oracle-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
