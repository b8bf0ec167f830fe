"""Requests that once made a function answer 500 (found by fuzzing, tests/e2e/test_fuzz_api.py, and the
property tests, tests/unit/test_hostile_input.py): each is now a 4xx that says what is wrong, or the
answer the route promises, and stores nothing it should not."""

from __future__ import annotations

import base64
import json
import time
from types import ModuleType
from typing import Any

import pytest

from closedloop.crm import sign_generic
from tests.conftest import SITE_ORIGIN, TABLE_NAME
from tests.integration.test_attribute_job import SIGNING_SECRET, loop  # noqa: F401 - the fixture
from tests.support import api_event, invoke

VISITOR = "HostileVisitorAAAAAAAAA"


def item_count(dynamodb: Any) -> int:
    return int(dynamodb.scan(TableName=TABLE_NAME, Select="COUNT")["Count"])


def test_a_repeated_pixel_parameter_still_gets_the_gif_and_the_first_value_counts(loop, dynamodb):  # noqa: F811
    event = api_event("GET", "/collect.gif")
    event["rawQueryString"] = f"v={VISITOR}&e=evt-pixel-01&u={SITE_ORIGIN}/a&u={SITE_ORIGIN}/b"
    event["queryStringParameters"] = {
        "v": VISITOR,
        "e": "evt-pixel-01",
        "u": f"{SITE_ORIGIN}/a,{SITE_ORIGIN}/b",
    }

    status, headers, body = invoke(loop["collect"], event)

    assert (status, headers["content-type"], body[:6]) == (200, "image/gif", b"GIF89a")
    stored = [i for i in dynamodb.scan(TableName=TABLE_NAME)["Items"] if i["sk"]["S"].startswith("E#")]
    assert [i["page_path"]["S"] for i in stored] == ["/a"]


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=", "application/x-www-form-urlencoded"],
)
def test_collect_refuses_a_body_type_it_does_not_read_with_a_415(loop, dynamodb, content_type):  # noqa: F811
    body = json.dumps({"event_id": "evt-00000001", "visitor_id": VISITOR, "url": f"{SITE_ORIGIN}/"})
    status, _, reply = invoke(
        loop["collect"], api_event("POST", "/collect", body=body, content_type=content_type)
    )

    assert (status, reply["error"]["code"]) == (415, "unsupported_media_type")
    assert item_count(dynamodb) == 0


@pytest.mark.parametrize(
    ("function", "path", "body"),
    [
        ("identify", "/identify", "=x&email=ada%40example.com"),  # a form field without a name
        ("identify", "/identify", {"email": "ada@example.com", "score": 1.7e298}),
        ("identify", "/identify", {"email": "ada@example.com", "big": int("9" * 39)}),
        ("identify", "/identify", {"email": "ada@example.com", "tiny": 1e-200}),
        (
            "collect",
            "/collect",
            {
                "event_id": "evt-00000001",
                "visitor_id": VISITOR,
                "url": f"{SITE_ORIGIN}/",
                "props": {"n": 1e300},
            },
        ),
    ],
    ids=["unnamed-field", "huge-float", "39-digit-int", "tiny-float", "event-property"],
)
def test_input_dynamodb_cannot_store_is_a_400_not_a_500(loop, dynamodb, function, path, body):  # noqa: F811
    content_type = "application/x-www-form-urlencoded" if isinstance(body, str) else None
    event = api_event("POST", path, body=body, content_type=content_type)

    status, _, reply = invoke(loop[function], event)

    assert status == 400, reply
    assert item_count(dynamodb) == 0


@pytest.mark.parametrize("amount", ["1e300", "1.000000000000000000000000000000000000001", "1e-140"])
def test_a_deal_amount_dynamodb_cannot_store_is_a_400(loop, dynamodb, amount):  # noqa: F811
    body = json.dumps(
        {
            "event_id": "evt-1",
            "deal_id": "D-1",
            "status": "won",
            "amount": amount,
            "currency": "USD",
            "occurred_at": "2026-11-19T08:00:00Z",
        }
    ).encode()
    headers = {"x-closedloop-signature": sign_generic(SIGNING_SECRET, body, int(time.time()))}
    event = api_event(
        "POST", "/webhooks/generic", body=body, content_type="application/json", headers=headers
    )

    status, _, reply = invoke(loop["crm_webhook"], event)

    assert (status, reply["error"]["code"]) == (400, "invalid_payload"), reply
    assert item_count(dynamodb) == 0


def test_a_redirect_with_a_line_break_cannot_split_the_response(loop, dynamodb):  # noqa: F811
    form = "email=ada%40example.com&redirect=https%3A%2F%2Fwww.acme.test%2F%0D%0ASet-Cookie%3A+a%3Db"

    status, headers, _ = invoke(
        loop["identify"],
        api_event("POST", "/identify", body=form, content_type="application/x-www-form-urlencoded"),
    )

    assert status == 400 and "location" not in headers
    assert item_count(dynamodb) == 0


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"email": "ada@example.com", "page_url": "https://[broken"}, {}),
        ({"email": "ada@example.com"}, {"referer": "https://[broken"}),
        ({"email": "ada@example.com", "redirect": "/thanks"}, {"referer": "http://[::1"}),
    ],
    ids=["page-url", "referer", "redirect-against-referer"],
)
def test_an_unparseable_page_or_referer_is_no_page_not_a_500(loop: dict[str, ModuleType], body, headers):  # noqa: F811
    status, _, reply = invoke(loop["identify"], api_event("POST", "/identify", body=body, headers=headers))

    assert status in {200, 400}, reply
    if "redirect" not in body:
        assert status == 200


# -- JSON bodies that crashed the parser behind /collect (a RecursionError, a ValueError, a
# UnicodeDecodeError: each a 500). Each is under the 64 KiB limit.


def page_view_with(extra: str) -> str:
    """A valid page view's JSON text with ``extra`` (raw JSON members) added."""
    return f'{{"event_id": "evt-00000001", "visitor_id": "{VISITOR}", "url": "{SITE_ORIGIN}/", {extra}}}'


def base64_event(body: bytes, content_type: str | None) -> dict[str, Any]:
    """A request whose body API Gateway hands over base64-encoded, as it does for bytes it cannot name."""
    event = api_event("POST", "/collect", content_type=content_type)
    event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = True
    return event


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        ("[" * 30_000 + "]" * 30_000, "application/json", "deeper than 32 levels"),
        ('{"events": ' + "[" * 20_000 + "]" * 20_000 + "}", "text/plain", "deeper than 32 levels"),
        # Too deep for the limit, shallow enough for Python's parser: refused all the same.
        (page_view_with('"props": {"n": ' + "[" * 40 + "]" * 40 + "}"), None, "deeper than 32 levels"),
        (page_view_with('"ts": ' + "9" * 5_000), "application/json", "more than 4300 digits"),
        (page_view_with('"props": {"n": ' + "9" * 5_000 + "}"), "text/plain", "more than 4300 digits"),
    ],
    ids=["nested-array", "nested-batch", "nested-property", "long-timestamp", "long-property"],
)
def test_json_the_parser_cannot_take_is_a_400_that_names_the_problem(
    loop,  # noqa: F811
    dynamodb,
    body,
    content_type,
    problem,
):
    event = api_event("POST", "/collect", body=body, content_type=content_type)

    status, _, reply = invoke(loop["collect"], event)

    assert (status, reply["error"]["code"]) == (400, "invalid_request"), reply
    assert problem in reply["error"]["message"]
    assert item_count(dynamodb) == 0


@pytest.mark.parametrize("content_type", ["application/json", None, "text/plain;charset=UTF-8"])
def test_a_body_that_is_not_utf8_is_a_400_that_says_so(loop, dynamodb, content_type):  # noqa: F811
    body = page_view_with('"title": "caf\xe9"').encode("latin-1")  # Latin-1, not UTF-8

    status, _, reply = invoke(loop["collect"], base64_event(body, content_type))

    assert (status, reply["error"]["code"]) == (400, "invalid_request"), reply
    assert "not valid UTF-8" in reply["error"]["message"]
    assert item_count(dynamodb) == 0


@pytest.mark.parametrize("content_type", ["application/json", None, "text/plain"])
def test_a_base64_encoded_page_view_in_utf8_is_stored(loop, dynamodb, content_type):  # noqa: F811
    body = page_view_with('"title": "Café", "props": {"n": 12345678901234567890}').encode()

    status, _, reply = invoke(loop["collect"], base64_event(body, content_type))

    assert (status, reply["accepted"]) == (200, 1), reply


# -- issue 14, item 5: half of a UTF-16 surrogate pair is valid JSON but no text DynamoDB can store ----

HALF_PAIR = "\ud800"  # json.dumps writes it as the escape "\ud800", as a hostile sender would


def _track(props: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "name": "plan_selected",
        "event_id": "evt-00000001",
        "visitor_id": VISITOR,
        "url": f"{SITE_ORIGIN}/pricing",
        "props": props,
        **fields,
    }


@pytest.mark.parametrize(
    ("function", "body", "field"),
    [
        ("identify", {"email": "ada@example.com", "notes": f"hi {HALF_PAIR}"}, "notes"),
        ("identify", {"email": "ada@example.com", "first_name": HALF_PAIR}, "first_name"),
        ("identify", {"email": "ada@example.com", f"x{HALF_PAIR}": "a"}, "x\\ud800"),
        ("collect", _track({"plan": HALF_PAIR}), "props.plan"),
        ("collect", _track({"plan": "growth"}, title="\udfff"), "title"),
        ("collect", {"events": [_track({}), _track({"p": HALF_PAIR})]}, "events.1.props.p"),
    ],
    ids=["custom-field", "profile-field", "field-name", "track-prop", "title", "batch"],
)
def test_an_unpaired_surrogate_is_a_400_that_names_the_field(loop, dynamodb, function, body, field):  # noqa: F811
    # Given a JSON body whose text escapes half of a surrogate pair
    raw = json.dumps(body)
    assert "\\ud800" in raw or "\\udfff" in raw

    # When it is posted
    status, _, reply = invoke(
        loop[function],
        api_event("POST", f"/{function}", body=raw, content_type="application/json"),
    )

    # Then it is refused as the sender's mistake, naming the field, and nothing is stored
    assert (status, reply["error"]["code"]) == (400, "invalid_request"), reply
    assert f"the field {field} is not valid text" in reply["error"]["message"]
    assert reply["error"]["details"][0]["type"] == "unpaired_surrogate"
    assert item_count(dynamodb) == 0


def test_a_multipart_field_in_a_charset_that_decodes_to_a_surrogate_is_a_400(loop, dynamodb):  # noqa: F811
    # UTF-7 spells U+D800 as "+2AA-": Python decodes it, DynamoDB could not store it.
    body = (
        b'--b\r\nContent-Disposition: form-data; name="email"\r\n\r\nada@example.com\r\n'
        b'--b\r\nContent-Disposition: form-data; name="notes"\r\n'
        b"Content-Type: text/plain; charset=utf-7\r\n\r\n+2AA-\r\n--b--\r\n"
    )
    event = api_event("POST", "/identify", body=body, content_type="multipart/form-data; boundary=b")
    event["headers"]["accept"] = "application/json"

    status, headers, reply = invoke(loop["identify"], event)

    assert status == 400
    assert "notes" in (reply if isinstance(reply, str) else json.dumps(reply))
    assert item_count(dynamodb) == 0
