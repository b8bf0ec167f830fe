"""The tiny JSON client: what each failure of a CRM API becomes."""

from __future__ import annotations

import socket

import pytest

from closedloop.crm import CrmApiError, CrmApiNotFoundError, CrmApiRetryableError, JsonHttpClient
from tests.unit.crm.conftest import FakeCrmApi, Reply


def test_get_and_post_send_json_with_the_configured_headers(crm_api: FakeCrmApi) -> None:
    crm_api.route("GET", "/things/1", Reply(200, {"id": 1}))
    crm_api.route("POST", "/things", lambda seen: Reply(201, {"echo": seen.body}))
    client = JsonHttpClient(crm_api.base_url + "/", headers={"Authorization": "Bearer t"})
    assert client.get_json("/things/1", {"a": "b c"}) == {"id": 1}
    assert client.post_json("/things", {"x": [1]}) == {"echo": {"x": [1]}}
    get, post = crm_api.seen
    assert (get.query, get.headers["authorization"]) == ({"a": ["b c"]}, "Bearer t")
    assert post.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("reply", "error", "retryable"),
    [
        (Reply(404, {"message": "not found"}), CrmApiNotFoundError, False),
        (Reply(429, {"message": "slow down"}, {"Retry-After": "2.5"}), CrmApiRetryableError, True),
        (Reply(503, {"message": "down"}), CrmApiRetryableError, True),
        (Reply(403, {"message": "missing scopes"}), CrmApiError, False),
        (Reply(302, None, {"Location": "https://elsewhere.test/"}), CrmApiError, False),
        (Reply(200, raw=b"<html>maintenance</html>"), CrmApiError, False),
    ],
    ids=["404", "429", "503", "403", "redirect", "not json"],
)
def test_failures_map_to_the_error_tree(
    crm_api: FakeCrmApi, reply: Reply, error: type[CrmApiError], retryable: bool
) -> None:
    crm_api.route("GET", "/x", reply)
    with pytest.raises(error) as raised:
        JsonHttpClient(crm_api.base_url).get_json("/x")
    assert isinstance(raised.value, CrmApiRetryableError) is retryable
    if reply.status == 429:
        assert isinstance(raised.value, CrmApiRetryableError)
        assert raised.value.retry_after == 2.5
    assert len(crm_api.seen) == 1  # no retries, no redirect followed


def test_a_timeout_is_retryable(crm_api: FakeCrmApi) -> None:
    crm_api.route("GET", "/slow", Reply(200, {}, delay=1.0))
    with pytest.raises(CrmApiRetryableError, match="timed out"):
        JsonHttpClient(crm_api.base_url, timeout=0.2).get_json("/slow")


def test_a_closed_port_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CrmApiRetryableError, match=r"unreachable|failed"):
        JsonHttpClient(f"http://127.0.0.1:{port}", timeout=1).get_json("/")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://h/x", "api.hubapi.com"])
def test_only_http_base_urls_are_accepted(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        JsonHttpClient(url)
