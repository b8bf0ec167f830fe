"""Fixtures for the tracker's browser tests: a fake collector and one Chromium per module.

The test module imports these fixtures explicitly (``tests/e2e/conftest.py`` belongs to the gateway tests).
"""

import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from closedloop.tracker import TRACKER_CONTENT_TYPE, demo_site_file, tracker_script

CHROMIUM = "/usr/bin/chromium"
# A second origin for the site, so that the API at 127.0.0.1 is cross-origin to it.
SITE_HOST = "site.test"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-proxy-server",
    f"--host-resolver-rules=MAP {SITE_HOST} 127.0.0.1",
]
WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Received:
    """One request the fake API received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode(), keep_blank_values=True))


class FakeApi:
    """The collect and identify endpoints as the tracker sees them, plus the demo site.

    Serves ``GET /t.js`` and ``GET /site/<file>`` (pages in ``pages`` first, then the demo site; asked
    for through ``site.test`` the pages point at the API on 127.0.0.1), and records every POST.
    """

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.received: list[Received] = []
        self._changed = threading.Condition()
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def site_url(self, page: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/site/{page}"

    def record(self, request: Received) -> None:
        with self._changed:
            self.received.append(request)
            self._changed.notify_all()

    def posts(self, path: str) -> list[Received]:
        with self._changed:
            return [r for r in self.received if r.method == "POST" and r.path == path]

    def events(self) -> list[dict[str, Any]]:
        """Every event posted to /collect so far, in arrival order."""
        return [event for post in self.posts("/collect") for event in post.json()["events"]]

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        with self._changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; received: {self.received}")
                self._changed.wait(left)

    def wait_for_events(self, count: int) -> list[dict[str, Any]]:
        self.wait_until(lambda: len(self.events()) >= count, f"{count} event(s)")
        return self.events()

    def wait_for_posts(self, path: str, count: int = 1) -> list[Received]:
        self.wait_until(lambda: len(self.posts(path)) >= count, f"{count} POST(s) to {path}")
        return self.posts(path)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore a browser that hangs up (a closing context); report anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

        def _reply(self, status: int, body: bytes = b"", content_type: str = "", **headers: str) -> None:
            self.send_response(status)
            origin = self.headers.get("Origin")
            if origin:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Vary", "Origin")
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path == "/t.js":
                self._reply(200, tracker_script(), TRACKER_CONTENT_TYPE)
                return
            name = path.removeprefix("/site/")
            if name in api.pages:
                self._reply(200, api.pages[name].encode(), "text/html; charset=utf-8")
                return
            cross_origin = self.headers.get("Host", "").startswith(SITE_HOST)
            try:
                body, content_type = demo_site_file(name, api.origin if cross_origin else "")
            except FileNotFoundError:
                self._reply(404)
                return
            self._reply(200, body, content_type)

        def do_OPTIONS(self) -> None:
            self._reply(
                204,
                Access_Control_Allow_Methods="POST",
                Access_Control_Allow_Headers="Content-Type",
            )

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            request = Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            api.record(request)
            if self.path == "/collect":
                self._reply(204)
            elif self.path == "/identify" and request.headers["content-type"].startswith("application/json"):
                fields = request.json()
                if "@" not in fields.get("email", ""):
                    self._reply(422, b'{"error": "email is not valid"}', "application/json")
                else:
                    self._reply(200, b'{"lead_id": "lead-1"}', "application/json")
            elif self.path == "/identify":
                self._reply(303, Location=request.form()["redirect"])
            else:
                self._reply(404)

    return Handler


@pytest.fixture(name="fake_api")
def _fake_api() -> Iterator[FakeApi]:
    """A fresh fake API per test, so late beacons of one test never reach the next."""
    api = FakeApi()
    api.start()
    yield api
    api.stop()


@pytest.fixture(scope="module", name="tracker_browser")
def _tracker_browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(name="tracker_context")
def _tracker_context(tracker_browser: Browser) -> Iterator[BrowserContext]:
    context = tracker_browser.new_context()
    context.set_default_timeout(WAIT_SECONDS * 1000)  # fail fast: every wait here takes milliseconds
    yield context
    context.close()
