"""The collect function end to end under moto: what is stored, what is refused, and what is answered."""

from __future__ import annotations

import json
import time
from types import ModuleType
from typing import Any

import pytest

from closedloop.local.gateway import load_function
from closedloop.store import DynamoStore
from tests.conftest import SITE_ORIGIN, TABLE_NAME
from tests.support import api_event, invoke

VISITOR = "v1siTorAAAAAAAAAAAAAAA"
NOW = int(time.time() * 1000)
MINUTE = 60_000


@pytest.fixture
def collect(dynamodb: Any) -> ModuleType:
    return load_function("collect")


@pytest.fixture
def store(dynamodb: Any) -> DynamoStore:
    return DynamoStore(TABLE_NAME, client=dynamodb)


def page_view(event_id: str, url: str, *, ts: int = NOW, referrer: str = "", visitor: str = VISITOR) -> dict:
    return {
        "type": "page_view",
        "event_id": event_id,
        "visitor_id": visitor,
        "session_id": "sessionAAAAAAAAAAAAAAA",
        "url": url,
        "referrer": referrer,
        "title": "Acme Analytics",
        "ts": ts,
    }


def item_count(dynamodb: Any) -> int:
    return int(dynamodb.scan(TableName=TABLE_NAME, Select="COUNT")["Count"])


# -- what is stored --------------------------------------------------------------------------------


def test_a_tagged_page_view_is_stored_with_an_email_touch(collect, store):
    # Given a visitor arriving from a newsletter link
    url = f"{SITE_ORIGIN}/?utm_source=newsletter&utm_medium=email&utm_campaign=launch"

    # When the tracker sends the page view
    status, _, body = invoke(collect, api_event("POST", "/collect", body=page_view("evt-00000001", url)))

    # Then one event and one Email touch are stored for the visitor
    assert status == 200
    assert body == {"accepted": 1, "duplicates": 0, "dropped": 0}
    [touch] = store.touches_of_visitor(VISITOR)
    assert (touch.channel, touch.source, touch.medium, touch.campaign) == (
        "Email",
        "newsletter",
        "email",
        "launch",
    )
    assert touch.landing_path == "/"
    [event] = store.events_of_visitor(VISITOR)
    assert event.session_id == touch.touch_id == "evt-00000001"
    assert (event.page_host, event.page_path) == ("www.acme.test", "/")


def test_a_batch_within_thirty_minutes_is_one_session(collect, store):
    events = [
        page_view(
            "evt-00000001", f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc&gclid=abc", ts=NOW - 20 * MINUTE
        ),
        page_view("evt-00000002", f"{SITE_ORIGIN}/pricing", ts=NOW - 10 * MINUTE, referrer=f"{SITE_ORIGIN}/"),
        page_view("evt-00000003", f"{SITE_ORIGIN}/contact", ts=NOW, referrer=f"{SITE_ORIGIN}/pricing"),
    ]
    status, _, body = invoke(collect, api_event("POST", "/collect", body={"sent_at": NOW, "events": events}))

    assert status == 200
    assert body["accepted"] == 3
    [touch] = store.touches_of_visitor(VISITOR)
    assert touch.channel == "Paid Search"
    assert touch.click_id_type == "gclid"
    assert {e.session_id for e in store.events_of_visitor(VISITOR)} == {"evt-00000001"}


@pytest.mark.parametrize(
    ("second_url", "referrer", "gap_minutes", "expected_channels"),
    [
        pytest.param(f"{SITE_ORIGIN}/pricing", f"{SITE_ORIGIN}/", 31, ["Email", "Direct"], id="31-min-gap"),
        pytest.param(f"{SITE_ORIGIN}/pricing", f"{SITE_ORIGIN}/", 29, ["Email"], id="29-min-gap"),
        pytest.param(
            f"{SITE_ORIGIN}/?utm_source=linkedin&utm_medium=paid_social",
            "",
            5,
            ["Email", "Paid Social"],
            id="new-campaign",
        ),
        pytest.param(
            f"{SITE_ORIGIN}/blog",
            "https://www.google.com/",
            5,
            ["Email", "Organic Search"],
            id="external-referrer",
        ),
        pytest.param(f"{SITE_ORIGIN}/blog", "https://app.acme.test/login", 5, ["Email"], id="self-referral"),
    ],
)
def test_when_a_new_session_and_so_a_new_touch_starts(
    collect, store, second_url, referrer, gap_minutes, expected_channels
):
    first = page_view(
        "evt-00000001", f"{SITE_ORIGIN}/?utm_source=newsletter&utm_medium=email", ts=NOW - 60 * MINUTE
    )
    second = page_view("evt-00000002", second_url, ts=NOW - (60 - gap_minutes) * MINUTE, referrer=referrer)
    invoke(collect, api_event("POST", "/collect", body=first))
    invoke(collect, api_event("POST", "/collect", body=second))

    assert [t.channel for t in store.touches_of_visitor(VISITOR)] == expected_channels


def test_a_beacon_text_plain_body_is_read_as_json(collect, store):
    body = json.dumps({"events": [page_view("evt-00000001", f"{SITE_ORIGIN}/")]})
    status, _, reply = invoke(
        collect, api_event("POST", "/collect", body=body, content_type="text/plain;charset=UTF-8")
    )
    assert (status, reply["accepted"]) == (200, 1)
    assert len(store.events_of_visitor(VISITOR)) == 1


def test_a_retried_request_stores_nothing_twice(collect, store, dynamodb):
    request = {
        "events": [
            page_view("evt-00000001", f"{SITE_ORIGIN}/?utm_source=x&utm_medium=email"),
            page_view("evt-00000002", f"{SITE_ORIGIN}/pricing", ts=NOW + 1),
        ]
    }
    invoke(collect, api_event("POST", "/collect", body=request))
    items_after_first = item_count(dynamodb)

    status, _, reply = invoke(collect, api_event("POST", "/collect", body=request))

    assert status == 200
    assert reply == {"accepted": 0, "duplicates": 2, "dropped": 0}
    assert item_count(dynamodb) == items_after_first
    assert len(store.touches_of_visitor(VISITOR)) == 1


def test_touches_of_a_day_come_from_one_query(collect, store):
    other = "0therVisitorBBBBBBBBBBB"
    invoke(
        collect,
        api_event(
            "POST",
            "/collect",
            body=page_view("evt-00000001", f"{SITE_ORIGIN}/?utm_source=a&utm_medium=email"),
        ),
    )
    invoke(
        collect,
        api_event("POST", "/collect", body=page_view("evt-00000002", f"{SITE_ORIGIN}/", visitor=other)),
    )

    day = time.strftime("%Y-%m-%d", time.gmtime(NOW / 1000))
    touches = list(store.touches_on_day(day))

    assert sorted(t.visitor_id for t in touches) == sorted([VISITOR, other])


def test_known_bots_are_dropped_and_nothing_is_stored(collect, dynamodb):
    event = api_event(
        "POST",
        "/collect",
        body=page_view("evt-00000001", f"{SITE_ORIGIN}/"),
        headers={"user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
    )
    status, _, reply = invoke(collect, event)
    assert (status, reply["dropped"], reply["accepted"]) == (200, 1, 0)
    assert item_count(dynamodb) == 0


@pytest.mark.parametrize(
    ("method", "path", "request_args"),
    [
        ("POST", "/collect", {"body": page_view("evt-00000001", f"{SITE_ORIGIN}/")}),
        (
            "POST",
            "/collect",
            {
                "body": json.dumps({"events": [page_view("evt-00000001", f"{SITE_ORIGIN}/")]}),
                "content_type": "text/plain;charset=UTF-8",
            },
        ),
        ("GET", "/collect.gif", {"query": {"v": VISITOR, "e": "evt-00000001", "u": f"{SITE_ORIGIN}/"}}),
    ],
    ids=["json", "beacon", "pixel"],
)
def test_global_privacy_control_is_answered_like_success_and_nothing_is_stored(
    collect, dynamodb, method, path, request_args
):
    # Given a browser that sends Global Privacy Control, reaching the server without t.js's own check
    event = api_event(method, path, headers={"sec-gpc": "1"}, **request_args)

    # When it sends a page view
    status, _, reply = invoke(collect, event)

    # Then it is answered as usual, and nothing of it is stored
    assert status == 200
    if path == "/collect":
        assert (reply["accepted"], reply["dropped"]) == (0, 1)
    else:
        assert reply[:6] == b"GIF89a"
    assert item_count(dynamodb) == 0


def test_global_privacy_control_is_ignored_where_the_site_does_not_honour_it(dynamodb, monkeypatch):
    # Given a site whose snippet says data-honor-gpc="false", and so does its collect function
    monkeypatch.setenv("HONOR_GPC", "false")
    collect = load_function("collect")
    event = api_event(
        "POST", "/collect", body=page_view("evt-00000001", f"{SITE_ORIGIN}/"), headers={"sec-gpc": "1"}
    )

    status, _, reply = invoke(collect, event)

    assert (status, reply["accepted"]) == (200, 1)
    assert item_count(dynamodb) > 0


def test_a_sec_gpc_header_other_than_1_is_no_signal(collect, dynamodb):
    event = api_event(
        "POST", "/collect", body=page_view("evt-00000001", f"{SITE_ORIGIN}/"), headers={"sec-gpc": "0"}
    )

    status, _, reply = invoke(collect, event)

    assert (status, reply["accepted"]) == (200, 1)


def test_no_raw_ip_address_is_ever_stored(collect, dynamodb):
    event = api_event(
        "POST",
        "/collect",
        body=page_view("evt-00000001", f"{SITE_ORIGIN}/?utm_source=a&utm_medium=email"),
        headers={"x-forwarded-for": "203.0.113.77"},
    )
    event["requestContext"]["http"]["sourceIp"] = "203.0.113.77"
    invoke(collect, event)

    items = dynamodb.scan(TableName=TABLE_NAME)["Items"]
    assert items
    assert "203.0.113.77" not in json.dumps(items)


def test_query_strings_are_not_stored_with_page_views(collect, dynamodb):
    url = f"{SITE_ORIGIN}/welcome?email=jane%40example.com&utm_source=a&utm_medium=email"
    invoke(collect, api_event("POST", "/collect", body=page_view("evt-00000001", url)))
    assert "jane" not in json.dumps(dynamodb.scan(TableName=TABLE_NAME)["Items"])


# -- what is refused -------------------------------------------------------------------------------

too_many = {"events": [page_view(f"evt-{i:08d}", f"{SITE_ORIGIN}/") for i in range(51)]}
huge = {"events": [page_view(f"evt-{i:08d}", f"{SITE_ORIGIN}/{'x' * 8000}") for i in range(9)]}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        pytest.param('{"events": [', "application/json", 400, "not valid JSON", id="malformed-json"),
        pytest.param(
            {**page_view("evt-00000001", f"{SITE_ORIGIN}/"), "ts": "yesterday"},
            None,
            400,
            "ts",
            id="wrong-type",
        ),
        pytest.param(huge, None, 413, "limit", id="body-over-64kb"),
        pytest.param(too_many, None, 400, "events", id="batch-over-50"),
        pytest.param({"events": []}, None, 400, "events", id="empty-batch"),
        pytest.param(page_view("evt-00000001", "http://[::1"), None, 400, "url", id="unparseable-url"),
        pytest.param(page_view("evt-00000001", "javascript:alert(1)"), None, 400, "url", id="not-a-web-url"),
        pytest.param(
            page_view("evt-00000001", f"{SITE_ORIGIN}/", visitor="short"),
            None,
            400,
            "visitor_id",
            id="visitor-id-too-short",
        ),
        pytest.param(
            page_view("evt-00000001", f"{SITE_ORIGIN}/", visitor="a/b" * 8),
            None,
            400,
            "visitor_id",
            id="visitor-id-bad-characters",
        ),
        pytest.param("<xml/>", "application/xml", 415, "content type", id="unsupported-content-type"),
        pytest.param(
            {
                "type": "track",
                **{k: v for k, v in page_view("evt-00000001", f"{SITE_ORIGIN}/").items() if k != "type"},
            },
            None,
            400,
            "name",
            id="track-without-name",
        ),
    ],
)
def test_bad_input_is_a_4xx_that_names_the_problem_and_writes_nothing(
    collect, dynamodb, body, content_type, status, says
):
    got, headers, reply = invoke(collect, api_event("POST", "/collect", body=body, content_type=content_type))

    assert got == status
    assert headers["content-type"].startswith("application/json")
    assert says in json.dumps(reply)
    assert set(reply["error"]) == {"code", "message", "details"}
    assert item_count(dynamodb) == 0


def test_one_bad_event_rejects_the_whole_batch(collect, dynamodb):
    events = [
        page_view("evt-00000001", f"{SITE_ORIGIN}/"),
        page_view("evt-00000002", f"{SITE_ORIGIN}/"),
        page_view("evt-00000003", "http://[::1"),
    ]
    status, _, reply = invoke(collect, api_event("POST", "/collect", body={"events": events}))
    assert status == 400
    assert reply["error"]["details"][0]["loc"] == ["events", 2, "url"]
    assert item_count(dynamodb) == 0


def test_a_dynamodb_failure_is_a_retryable_503_and_the_retry_stores_once(collect, store, monkeypatch):
    from botocore.exceptions import ClientError

    body = page_view("evt-00000001", f"{SITE_ORIGIN}/?utm_source=a&utm_medium=email")
    real = collect.store.client.transact_write_items

    def throttled(**kwargs):
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
            "TransactWriteItems",
        )

    monkeypatch.setattr(collect.store.client, "transact_write_items", throttled)
    status, headers, reply = invoke(collect, api_event("POST", "/collect", body=body))
    assert (status, reply["error"]["code"]) == (503, "dependency_unavailable")
    assert headers["retry-after"]
    assert store.events_of_visitor(VISITOR) == []

    monkeypatch.setattr(collect.store.client, "transact_write_items", real)
    invoke(collect, api_event("POST", "/collect", body=body))
    invoke(collect, api_event("POST", "/collect", body=body))
    assert len(store.events_of_visitor(VISITOR)) == 1
    assert len(store.touches_of_visitor(VISITOR)) == 1


# -- CORS, pixel, tracker, health, OpenAPI ---------------------------------------------------------


def test_cors_allows_configured_origins_only(collect):
    preflight = {"origin": SITE_ORIGIN, "access-control-request-method": "POST"}
    _, allowed, _ = invoke(collect, api_event("OPTIONS", "/collect", headers=preflight))
    _, foreign, _ = invoke(
        collect, api_event("OPTIONS", "/collect", headers={**preflight, "origin": "https://evil.test"})
    )

    assert allowed["access-control-allow-origin"] == SITE_ORIGIN
    assert "access-control-allow-origin" not in foreign


def test_the_pixel_records_a_page_view_and_answers_a_gif(collect, store):
    query = {"v": VISITOR, "e": "evt-00000009", "u": f"{SITE_ORIGIN}/?utm_source=news&utm_medium=email"}
    status, headers, body = invoke(collect, api_event("GET", "/collect.gif", query=query))

    assert status == 200
    assert headers["content-type"] == "image/gif"
    assert body.startswith(b"GIF89a")
    assert "no-store" in headers["cache-control"]
    assert [t.channel for t in store.touches_of_visitor(VISITOR)] == ["Email"]


def test_the_pixel_answers_a_gif_even_for_bad_input_and_stores_nothing(collect, dynamodb):
    status, headers, body = invoke(collect, api_event("GET", "/collect.gif", query={"v": "bad"}))
    assert (status, headers["content-type"], body[:6]) == (200, "image/gif", b"GIF89a")
    assert item_count(dynamodb) == 0


def test_the_tracker_script_is_served(collect):
    status, headers, body = invoke(collect, api_event("GET", "/t.js"))
    assert status == 200
    assert "javascript" in headers["content-type"]
    assert b"sendBeacon" in (body if isinstance(body, bytes) else body.encode())


def test_head_of_the_tracker_script_answers_its_get_headers(collect):
    # docs/deploy.md's first check is `curl -sI "$API/t.js"`: a 200 with the script's headers
    got = invoke(collect, api_event("GET", "/t.js"))
    status, headers, _ = invoke(collect, api_event("HEAD", "/t.js"))

    assert status == 200
    assert headers == got[1]


def test_health_and_openapi(collect):
    assert invoke(collect, api_event("GET", "/health"))[2]["status"] == "ok"
    status, _, document = invoke(collect, api_event("GET", "/openapi.json"))
    assert status == 200
    collect_op = document["paths"]["/collect"]["post"]
    assert "requestBody" in collect_op
    assert {"/t.js", "/collect", "/collect.gif", "/health"} <= set(document["paths"])


# -- a landing page whose beacon arrives after the next page's -------------------------------------

LANDING_URL = f"{SITE_ORIGIN}/?utm_source=newsletter&utm_medium=email"
LANDED_AT = NOW - 10 * MINUTE


def landing_and_page_2() -> tuple[dict, dict]:
    landing = page_view("evt-00000001", LANDING_URL, ts=LANDED_AT)
    page_2 = page_view("evt-00000002", f"{SITE_ORIGIN}/pricing", ts=LANDED_AT + 15_000, referrer=LANDING_URL)
    return landing, page_2


def day_of(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


@pytest.mark.parametrize("page_2_first", [False, True], ids=["in-order", "page-2-first"])
def test_a_tagged_landing_is_the_sessions_one_touch_whichever_beacon_arrives_first(
    collect, store, page_2_first
):
    # Given a newsletter landing and the page after it, whose beacon may reach the server first
    landing, page_2 = landing_and_page_2()
    beacons = [page_2, landing] if page_2_first else [landing, page_2]

    # When both beacons arrive
    for beacon in beacons:
        status, _, reply = invoke(collect, api_event("POST", "/collect", body=beacon))
        assert (status, reply["accepted"]) == (200, 1)

    # Then the visitor has exactly one touch: Email/newsletter, dated at the landing
    [touch] = store.touches_of_visitor(VISITOR)
    assert (touch.touch_id, touch.channel, touch.source, touch.medium) == (
        "evt-00000001",
        "Email",
        "newsletter",
        "email",
    )
    assert touch.occurred_at == LANDED_AT
    # and the daily export sees that one touch only
    days = {day_of(LANDED_AT), day_of(LANDED_AT + 15_000)}
    assert [t.touch_id for day in sorted(days) for t in store.touches_on_day(day)] == ["evt-00000001"]
    state = store.get_visitor_state(VISITOR)
    assert state is not None
    assert (state.session_id, state.session_started_at, state.sessions, state.events) == (
        "evt-00000001",
        LANDED_AT,
        1,
        2,
    )


def test_replaying_either_beacon_of_a_late_landing_changes_nothing(collect, store, dynamodb):
    # Given page 2's beacon, then the late landing's, were stored
    landing, page_2 = landing_and_page_2()
    for beacon in (page_2, landing):
        invoke(collect, api_event("POST", "/collect", body=beacon))
    stored = sorted(dynamodb.scan(TableName=TABLE_NAME)["Items"], key=lambda item: item["sk"]["S"])

    # When either beacon is sent again
    for beacon in (landing, page_2):
        status, _, reply = invoke(collect, api_event("POST", "/collect", body=beacon))
        assert (status, reply) == (200, {"accepted": 0, "duplicates": 1, "dropped": 0})

    # Then the table is byte for byte as it was: still one touch
    assert sorted(dynamodb.scan(TableName=TABLE_NAME)["Items"], key=lambda item: item["sk"]["S"]) == stored
    assert [t.touch_id for t in store.touches_of_visitor(VISITOR)] == ["evt-00000001"]


def test_a_landing_a_day_late_has_the_attribute_job_refresh_the_day_of_the_touch_it_replaced(store):
    from closedloop.collect import record_events
    from closedloop.models.collect import CollectEvent
    from tests.support import BROWSER_UA

    # Given a landing seconds before midnight, and page 2 (stored first, as Direct) just after it
    midnight = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    landing = page_view("evt-00000001", LANDING_URL, ts=midnight - 10_000)
    page_2 = page_view("evt-00000002", f"{SITE_ORIGIN}/pricing", ts=midnight + 5_000, referrer=LANDING_URL)
    record_events(
        [CollectEvent.model_validate(page_2)],
        store=store,
        received_at=midnight + 6_000,
        user_agent=BROWSER_UA,
    )

    # When the landing's beacon arrives the day after
    received_at = midnight + 86_400_000 + 9 * 3_600_000
    record_events(
        [CollectEvent.model_validate(landing)], store=store, received_at=received_at, user_agent=BROWSER_UA
    )

    # Then the run for the arrival day refreshes the landing's day and the day the Direct touch was on
    assert store.late_touch_days("2026-01-02") == ["2025-12-31", "2026-01-01"]
    assert [t.touch_id for t in store.touches_on_day("2025-12-31")] == ["evt-00000001"]
    assert list(store.touches_on_day("2026-01-01")) == []


# -- issue 14, item 6: a touch cannot be dated years back to become a lead's original source -------------


@pytest.mark.parametrize(
    "times",
    [
        {"ts": 946_684_800_000},  # 2000-01-01, no sent_at: the client's clock as it is
        {"ts": int(time.time() * 1000) - 73 * 3_600_000, "sent_at": int(time.time() * 1000)},
        {"ts": 946_684_800_000, "sent_at": 946_684_800_000 + 5 * 365 * 86_400_000},
    ],
    ids=["year-2000", "73-hours-before-sent", "five-years-before-sent"],
)
def test_an_event_dated_more_than_72_hours_back_is_refused(collect, dynamodb, times):
    body = {"event_id": "evt-00000001", "visitor_id": VISITOR, "url": f"{SITE_ORIGIN}/?utm_source=x", **times}

    status, _, reply = invoke(collect, api_event("POST", "/collect", body=body))

    assert (status, reply["error"]["code"]) == (400, "invalid_request"), reply
    assert reply["error"]["details"][0]["loc"] == ["events", 0, "ts"]
    assert "72 hours" in reply["error"]["message"]
    assert item_count(dynamodb) == 0


def test_an_event_71_hours_old_is_stored_at_its_time(collect, dynamodb):
    now = int(time.time() * 1000)
    body = {
        "event_id": "evt-00000001",
        "visitor_id": VISITOR,
        "url": f"{SITE_ORIGIN}/",
        "ts": now - 71 * 3_600_000,
        "sent_at": now,
    }

    status, _, reply = invoke(collect, api_event("POST", "/collect", body=body))

    assert (status, reply["accepted"]) == (200, 1)
    [event] = [i for i in dynamodb.scan(TableName=TABLE_NAME)["Items"] if i["sk"]["S"].startswith("E#")]
    assert abs(int(event["occurred_at"]["N"]) - (now - 71 * 3_600_000)) < 60_000
