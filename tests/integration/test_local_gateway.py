"""The local gateway over real HTTP: what docs/deploy.md's first checks expect of the deployed API."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any

import pytest

from closedloop.local.gateway import LocalGateway


@pytest.fixture
def gateway(dynamodb: Any) -> Iterator[LocalGateway]:
    local = LocalGateway().start()
    yield local
    local.stop()


def request(gateway: LocalGateway, method: str, path: str) -> http.client.HTTPResponse:
    host, port = gateway.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request(method, path, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"})
    return connection.getresponse()


def test_head_of_the_tracker_is_a_200_without_a_body(gateway):
    # Given what GET answers
    get = request(gateway, "GET", "/t.js")
    script = get.read()

    # When the deploy guide's check asks for the headers only (curl -sI "$API/t.js")
    head = request(gateway, "HEAD", "/t.js")

    # Then it is the GET's status and headers, and no body
    assert (get.status, head.status) == (200, 200)
    assert head.getheader("Content-Type") == get.getheader("Content-Type")
    assert head.getheader("Content-Length") == str(len(script))
    assert head.read() == b""


def test_head_of_a_path_without_a_route_is_still_a_404(gateway):
    assert request(gateway, "HEAD", "/nothing-here").status == 404
