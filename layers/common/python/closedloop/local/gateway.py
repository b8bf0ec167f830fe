"""A local stand-in for API Gateway's HTTP API: real HTTP in, payload v2.0 events to the real handlers.

Each function is loaded once from ``functions/<name>/handler.py`` and called with one request at a time,
as one Lambda instance would be. ``/site/...`` serves the demo site.
"""

from __future__ import annotations

import base64
import importlib.util
import logging
import mimetypes
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from closedloop.routes import Route, function_for

__all__ = ["LambdaContextStub", "LocalGateway", "build_http_api_event", "load_function"]

REPO_ROOT = Path(__file__).resolve().parents[5]
SITE_DIR = Path(__file__).resolve().parent / "site"
TEXT_TYPES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "application/xml",
    "application/soap+xml",
)
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
_log = logging.getLogger(__name__)


@dataclass
class LambdaContextStub:
    """The attributes of a Lambda context that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def load_function(name: str, functions_dir: Path | None = None) -> ModuleType:
    """Import ``functions/<name>/handler.py`` as a fresh module (it reads its settings at import)."""
    path = (functions_dir or REPO_ROOT / "functions") / name / "handler.py"
    spec = importlib.util.spec_from_file_location(f"closedloop_local_{name}_{uuid.uuid4().hex[:8]}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_http_api_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    route: Route,
    path_parameters: dict[str, str],
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The event API Gateway HTTP API (payload format 2.0) would send for this request."""
    lower = {k.lower(): v for k, v in headers.items()}
    content_type = lower.get("content-type", "")
    is_text = not body or content_type.startswith(TEXT_TYPES)
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    cookies = [c.strip() for c in lower.pop("cookie", "").split(";") if c.strip()]
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{route.method} {route.path}",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lower,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": lower.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lower.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": f"{route.method} {route.path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": not is_text,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        event["body"] = body.decode("utf-8", errors="replace") if is_text else base64.b64encode(body).decode()
    return event


class LocalGateway:
    """Serves the routes of ``closedloop.routes`` (and the demo site) on 127.0.0.1."""

    def __init__(
        self, *, port: int = 0, functions_dir: Path | None = None, site_dir: Path = SITE_DIR
    ) -> None:
        self._functions_dir = functions_dir
        self._site_dir = site_dir
        self._functions: dict[str, tuple[ModuleType, threading.Lock]] = {}
        # The last answers of the functions (method, path, status), for a test that must say what failed.
        self.answers: deque[tuple[str, str, int]] = deque(maxlen=200)
        self._load_lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._request_handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False  # browsers keep connections open; do not wait for them
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalGateway:
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def function(self, name: str) -> tuple[ModuleType, threading.Lock]:
        with self._load_lock:
            if name not in self._functions:
                self._functions[name] = (load_function(name, self._functions_dir), threading.Lock())
            return self._functions[name]

    def invoke(self, route: Route, event: dict[str, Any]) -> dict[str, Any]:
        module, lock = self.function(route.function)
        with lock:  # one request at a time per function, as one Lambda instance
            reply: dict[str, Any] = module.handler(event, LambdaContextStub(function_name=route.function))
        return reply

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the functions log what matters."""

            def _send(
                self, status: int, headers: dict[str, str], body: bytes, cookies: Sequence[str] = ()
            ) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in {"content-length", "connection"}:
                        self.send_header(key, value)
                for cookie in cookies:
                    self.send_header("Set-Cookie", cookie)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _serve_site(self, path: str) -> None:
                relative = path.removeprefix("/site").lstrip("/") or "index.html"
                target = (gateway._site_dir / relative).resolve()
                if not target.is_relative_to(gateway._site_dir.resolve()) or not target.is_file():
                    self._send(404, {"Content-Type": "text/plain"}, b"not found")
                    return
                content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                self._send(
                    200, {"Content-Type": content_type, "Cache-Control": "no-cache"}, target.read_bytes()
                )

            def _dispatch(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.command == "GET" and (parts.path == "/site" or parts.path.startswith("/site/")):
                    self._serve_site(parts.path)
                    return
                if self.command == "GET" and parts.path == "/":
                    self._send(302, {"Location": "/site/index.html"}, b"")
                    return
                match = function_for(self.command, parts.path)
                if match is None:
                    self._send(404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}')
                    return
                route, params = match
                event = build_http_api_event(
                    method=self.command,
                    raw_path=parts.path,
                    raw_query=parts.query,
                    headers=dict(self.headers.items()),
                    body=body,
                    route=route,
                    path_parameters=params,
                )
                try:
                    reply = gateway.invoke(route, event)
                except Exception:
                    # What Lambda would log for an unhandled error: the traceback, on this side only.
                    _log.exception("%s %s: the function raised", route.method, route.path)
                    gateway.answers.append((self.command, parts.path, 500))
                    self._send(
                        500, {"Content-Type": "application/json"}, b'{"message":"Internal Server Error"}'
                    )
                    return
                payload = reply.get("body") or ""
                raw = base64.b64decode(payload) if reply.get("isBase64Encoded") else str(payload).encode()
                headers = {k: str(v) for k, v in (reply.get("headers") or {}).items()}
                for key, values in (reply.get("multiValueHeaders") or {}).items():
                    headers[key] = ", ".join(str(v) for v in values)
                status = int(reply.get("statusCode", HTTPStatus.OK))
                gateway.answers.append((self.command, parts.path, status))
                self._send(status, headers, raw, reply.get("cookies") or [])

            def __getattr__(self, name: str) -> Any:
                # Every method (TRACE, QUERY, ...) is dispatched: one without a route is a 404, as API
                # Gateway answers, not http.server's 501.
                if name.startswith("do_"):
                    return self._dispatch
                raise AttributeError(name)

        return _Handler
