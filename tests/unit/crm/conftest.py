"""A stand-in CRM API on 127.0.0.1: a real HTTP server on an ephemeral port, answering in the shapes
HubSpot's and Pipedrive's API references document, so the real clients are exercised end to end."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass(frozen=True)
class Reply:
    status: int = 200
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is instead of JSON
    delay: float = 0.0


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


Route = Callable[[Seen], Reply]


def _decoded(raw: bytes, content_type: str) -> Any:
    """JSON bodies decoded; form bodies (OAuth token requests) as a dict of their fields."""
    if not raw:
        return None
    if content_type.startswith("application/x-www-form-urlencoded"):
        return {key: values[0] for key, values in parse_qs(raw.decode()).items()}
    return json.loads(raw)


class FakeCrmApi:
    """Routes ``(method, path)`` to a reply; every request is recorded in ``seen``."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.prefix_routes: list[tuple[str, str, Route]] = []
        self.seen: list[Seen] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(self, method: str, path: str, reply: Reply | Route) -> None:
        if isinstance(reply, Reply):
            fixed = reply
            self.routes[(method, path)] = lambda _seen: fixed
        else:
            self.routes[(method, path)] = reply

    def route_prefix(self, method: str, prefix: str, reply: Route) -> None:
        """Answer every ``method`` request whose path starts with ``prefix`` (ids in the path)."""
        self.prefix_routes.append((method, prefix, reply))

    def find(self, method: str, path: str) -> Route | None:
        route = self.routes.get((method, path))
        if route is not None:
            return route
        return next(
            (r for m, prefix, r in self.prefix_routes if m == method and path.startswith(prefix)), None
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                seen = Seen(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=_decoded(raw, self.headers.get("Content-Type") or ""),
                )
                api.seen.append(seen)
                route = api.find(self.command, parts.path)
                reply = route(seen) if route else Reply(404, {"status": "error", "message": "no route"})
                if reply.delay:
                    threading.Event().wait(reply.delay)
                body = reply.raw if reply.raw is not None else json.dumps(reply.payload).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json;charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            do_GET = _serve  # noqa: N815 - http.server's naming
            do_POST = _serve  # noqa: N815
            do_PATCH = _serve  # noqa: N815

        return Handler


@pytest.fixture
def crm_api() -> Iterator[FakeCrmApi]:
    """A fake CRM API listening on 127.0.0.1, stopped after the test."""
    api = FakeCrmApi()
    api.start()
    yield api
    api.stop()
