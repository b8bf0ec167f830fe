"""The identify function under moto: leads, their devices, their journeys, and every kind of bad form."""

from __future__ import annotations

import json
import time
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest

from closedloop.identity import journey_touches, lead_id_for
from closedloop.local.gateway import load_function
from closedloop.store import DynamoStore
from tests.conftest import SITE_ORIGIN, TABLE_NAME
from tests.support import api_event, invoke

LAPTOP = "LaptopVisitorAAAAAAAAAA"
PHONE = "PhoneVisitorBBBBBBBBBBB"
HOUR = 3_600_000
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def functions(dynamodb: Any) -> tuple[ModuleType, ModuleType]:
    return load_function("collect"), load_function("identify")


@pytest.fixture
def collect(functions: tuple[ModuleType, ModuleType]) -> ModuleType:
    return functions[0]


@pytest.fixture
def identify(functions: tuple[ModuleType, ModuleType]) -> ModuleType:
    return functions[1]


@pytest.fixture
def store(dynamodb: Any) -> DynamoStore:
    return DynamoStore(TABLE_NAME, client=dynamodb)


def visit(
    collect: ModuleType, visitor: str, url: str, *, hours_ago: float, event_id: str, referrer: str = ""
) -> None:
    ts = int(time.time() * 1000 - hours_ago * HOUR)
    body = {"event_id": event_id, "visitor_id": visitor, "url": url, "referrer": referrer, "ts": ts}
    status, _, reply = invoke(collect, api_event("POST", "/collect", body=body))
    assert (status, reply["accepted"]) == (200, 1), reply


def journey(store: DynamoStore, lead_id: str) -> list[str]:
    links = store.links_of_lead(lead_id)
    touches = journey_touches(
        links, {link.visitor_id: store.touches_of_visitor(link.visitor_id) for link in links}
    )
    return [t.channel for t in touches]


def item_count(dynamodb: Any) -> int:
    return int(dynamodb.scan(TableName=TABLE_NAME, Select="COUNT")["Count"])


def form_post(fields: dict[str, str], **headers: str) -> dict[str, Any]:
    return api_event("POST", "/identify", body=urlencode(fields), content_type=FORM, headers=headers)


# -- leads and their journeys -----------------------------------------------------------------------


def test_a_json_submission_creates_the_lead_with_its_anonymous_history(collect, identify, store):
    # Given a visitor who came from a paid search ad, then came back directly
    visit(
        collect,
        LAPTOP,
        f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc&gclid=x",
        hours_ago=5,
        event_id="evt-paid-1",
    )
    visit(collect, LAPTOP, f"{SITE_ORIGIN}/pricing", hours_ago=1, event_id="evt-direct-1")

    # When they submit a form from a script
    status, _, reply = invoke(
        identify,
        api_event(
            "POST",
            "/identify",
            body={
                "email": "  Jane.Doe@Example.COM ",
                "visitor_id": LAPTOP,
                "first_name": "Jane",
                "company": "Example",
                "form_id": "demo-request",
                "industry": "SaaS",
            },
        ),
    )

    # Then the lead exists, keyed by its normalised email, with its whole journey and sources
    assert status == 200
    assert reply == {"lead_id": lead_id_for("jane.doe@example.com"), "status": "created"}
    lead = store.get_lead(reply["lead_id"])
    assert lead is not None
    assert (lead.email, lead.first_name, lead.company) == ("jane.doe@example.com", "Jane", "Example")
    assert lead.custom_fields == {"industry": "SaaS"}
    assert journey(store, lead.lead_id) == ["Paid Search", "Direct"]
    assert lead.original_source is not None and lead.original_source.channel == "Paid Search"
    assert lead.latest_source is not None and lead.latest_source.channel == "Direct"
    assert lead.lead_creation_source == lead.latest_source
    [submission] = store.submissions_of_lead(lead.lead_id)
    assert (submission.form_id, submission.visitor_id) == ("demo-request", LAPTOP)


def test_a_plain_html_form_lands_on_the_thank_you_page(collect, identify, store):
    fields = {
        "email": "sam@example.com",
        "closedloop_visitor_id": LAPTOP,
        "form_id": "contact-sales",
        "redirect": f"{SITE_ORIGIN}/thanks.html",
        "website": "",
    }
    status, headers, _ = invoke(identify, form_post(fields))

    assert status == 303
    assert headers["location"] == f"{SITE_ORIGIN}/thanks.html"
    assert store.get_lead(lead_id_for("sam@example.com")) is not None


def test_a_site_relative_redirect_resolves_against_the_posting_page(identify):
    fields = {"email": "rel@example.com", "redirect": "/thanks.html"}
    status, headers, _ = invoke(identify, form_post(fields, referer=f"{SITE_ORIGIN}/contact.html"))
    assert (status, headers["location"]) == (303, f"{SITE_ORIGIN}/thanks.html")

    status, _, _ = invoke(identify, form_post(fields, referer="https://evil.test/contact.html"))
    assert status == 400


def test_a_multipart_form_is_read_too(identify, store):
    boundary = "----closedloopBoundary42"
    parts = [("email", "ana@example.com"), ("closedloop_visitor_id", LAPTOP), ("job_title", "CMO")]
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in parts
    )
    body += f"--{boundary}--\r\n"
    event = api_event(
        "POST", "/identify", body=body.encode(), content_type=f"multipart/form-data; boundary={boundary}"
    )

    status, _, _ = invoke(identify, event)

    assert status == 200  # no redirect given: a small thank-you page
    lead = store.get_lead(lead_id_for("ana@example.com"))
    assert lead is not None and lead.job_title == "CMO"
    assert [link.visitor_id for link in store.links_of_lead(lead.lead_id)] == [LAPTOP]


def test_the_visitor_cookie_identifies_the_visitor_when_the_form_has_no_hidden_field(identify, store):
    event = form_post({"email": "kim@example.com"}, cookie=f"theme=dark; _cl_vid={LAPTOP}")
    invoke(identify, event)
    assert [link.visitor_id for link in store.links_of_lead(lead_id_for("kim@example.com"))] == [LAPTOP]


def test_a_submission_without_a_visitor_is_an_offline_lead(identify, store):
    status, _, reply = invoke(identify, api_event("POST", "/identify", body={"email": "offline@example.com"}))
    assert (status, reply["status"]) == (200, "created")
    assert store.links_of_lead(reply["lead_id"]) == []
    assert store.get_lead(reply["lead_id"]).original_source is None


def test_a_second_device_merges_into_the_same_lead(collect, identify, store):
    visit(
        collect,
        LAPTOP,
        f"{SITE_ORIGIN}/?utm_source=linkedin&utm_medium=paid_social",
        hours_ago=48,
        event_id="evt-li-1",
    )
    invoke(identify, api_event("POST", "/identify", body={"email": "lee@example.com", "visitor_id": LAPTOP}))
    visit(
        collect,
        PHONE,
        f"{SITE_ORIGIN}/?utm_source=newsletter&utm_medium=email",
        hours_ago=2,
        event_id="evt-em-1",
    )

    status, _, reply = invoke(
        identify, api_event("POST", "/identify", body={"email": "LEE@example.com", "visitor_id": PHONE})
    )

    assert (status, reply["status"]) == (200, "updated")
    assert sorted(link.visitor_id for link in store.links_of_lead(reply["lead_id"])) == sorted(
        [LAPTOP, PHONE]
    )
    assert journey(store, reply["lead_id"]) == ["Paid Social", "Email"]
    assert store.get_lead(reply["lead_id"]).original_source.channel == "Paid Social"


def test_a_shared_computer_never_counts_a_touch_for_two_leads(collect, identify, store):
    # Given one browser: Alex arrives from an ad and submits, later Blake uses it and submits too
    visit(
        collect,
        LAPTOP,
        f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc",
        hours_ago=10,
        event_id="evt-alex-1",
    )
    invoke(identify, api_event("POST", "/identify", body={"email": "alex@example.com", "visitor_id": LAPTOP}))
    time.sleep(0.01)
    invoke(
        identify, api_event("POST", "/identify", body={"email": "blake@example.com", "visitor_id": LAPTOP})
    )
    # When the browser comes back from a newsletter afterwards
    visit(
        collect,
        LAPTOP,
        f"{SITE_ORIGIN}/?utm_source=news&utm_medium=email",
        hours_ago=-0.001,
        event_id="evt-blake-1",
    )

    # Then the earlier touch is Alex's only, the later one Blake's only
    assert journey(store, lead_id_for("alex@example.com")) == ["Paid Search"]
    assert journey(store, lead_id_for("blake@example.com")) == ["Email"]


def test_a_resubmitted_form_stores_one_submission(identify, store):
    body = {"email": "dup@example.com", "visitor_id": LAPTOP, "form_id": "contact-sales"}
    invoke(identify, api_event("POST", "/identify", body=body))
    status, _, reply = invoke(identify, api_event("POST", "/identify", body=body))

    assert (status, reply["status"]) == (200, "updated")
    assert len(store.submissions_of_lead(lead_id_for("dup@example.com"))) == 1
    assert store.get_lead(lead_id_for("dup@example.com")).submissions == 1


def test_the_same_submission_id_is_stored_once(identify, store):
    body = {"email": "retry@example.com", "submission_id": "sub-0000000001", "form_id": "a"}
    invoke(identify, api_event("POST", "/identify", body=body))
    invoke(identify, api_event("POST", "/identify", body={**body, "form_id": "b"}))
    assert len(store.submissions_of_lead(lead_id_for("retry@example.com"))) == 1


def test_a_filled_honeypot_looks_like_success_and_stores_nothing(identify, dynamodb):
    fields = {
        "email": "bot@example.com",
        "website": "http://spam.test",
        "redirect": f"{SITE_ORIGIN}/thanks.html",
    }
    status, headers, _ = invoke(identify, form_post(fields))
    assert (status, headers["location"]) == (303, f"{SITE_ORIGIN}/thanks.html")
    assert item_count(dynamodb) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email"},
        {"email": "ada@example.com", "visitor_id": "bad id!"},
        {"email": "ada@example.com", "redirect": "https://evil.test/phish"},
    ],
    ids=["invalid-email", "invalid-visitor", "foreign-redirect"],
)
def test_a_filled_honeypot_gets_the_answer_a_person_would_get_for_bad_input(identify, dynamodb, body):
    # When the same bad form is posted with and without the honeypot filled
    as_person = invoke(identify, api_event("POST", "/identify", body=body))
    as_bot = invoke(identify, api_event("POST", "/identify", body={**body, "website": "http://spam.test"}))

    # Then both get the same 400: the honeypot does not tell the bot that it was caught
    assert as_person[0] == 400
    assert as_bot == as_person
    assert item_count(dynamodb) == 0


def test_a_filled_honeypot_gets_the_answer_a_person_would_get_for_a_good_form(identify, dynamodb):
    def post(email: str, **extra: str) -> tuple[int, Any]:
        status, _, reply = invoke(identify, api_event("POST", "/identify", body={"email": email, **extra}))
        return status, reply

    # A new address, spelled as a person would type it: the same normalised lead id, "created"
    assert post(" Bob@Example.COM ", website="x") == (
        200,
        {"lead_id": lead_id_for("bob@example.com"), "status": "created"},
    )
    assert item_count(dynamodb) == 0
    # An address that is already a lead: "updated", as a person's submission would answer
    assert post("bob@example.com")[1]["status"] == "created"
    items = item_count(dynamodb)
    assert post("bob@example.com", website="x", form_id="other") == (
        200,
        {"lead_id": lead_id_for("bob@example.com"), "status": "updated"},
    )
    assert item_count(dynamodb) == items


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        pytest.param({"first_name": "No Email"}, "application/json", 400, "email", id="missing-email"),
        pytest.param({"email": "not-an-email"}, "application/json", 400, "email", id="malformed-email"),
        pytest.param(
            {"email": "a@example.com", "visitor_id": "bad id!"},
            "application/json",
            400,
            "visitor_id",
            id="malformed-visitor-id",
        ),
        pytest.param(
            {"email": "a@example.com", "redirect": "https://evil.test/phish"},
            "application/json",
            400,
            "redirect",
            id="foreign-redirect",
        ),
        pytest.param(
            {"email": "a@example.com", "redirect": "//evil.test"},
            "application/json",
            400,
            "redirect",
            id="scheme-relative-redirect",
        ),
        pytest.param(
            {"email": "a@example.com", "company": "x" * 500},
            "application/json",
            400,
            "company",
            id="oversized-field",
        ),
        pytest.param(
            {"email": "a@example.com", **{f"f{i}": "v" for i in range(25)}},
            "application/json",
            400,
            "custom fields",
            id="too-many-custom-fields",
        ),
        pytest.param("email=a@example.com", "text/csv", 415, "content type", id="unknown-content-type"),
        pytest.param("[1, 2]", "application/json", 400, "JSON object", id="json-not-an-object"),
        pytest.param("[" * 30_000 + "]" * 30_000, "application/json", 400, "nested", id="deep-json"),
        pytest.param(
            '{"email": "a@example.com", "x": ' + "[" * 20_000 + "]" * 20_000 + "}",
            "application/json",
            400,
            "nested",
            id="deep-json-field",
        ),
        pytest.param(
            {"email": "a@example.com", "notes": "x" * 70_000},
            "application/json",
            413,
            "limit",
            id="oversized-body",
        ),
    ],
)
def test_bad_input_is_a_4xx_that_says_what_is_wrong_and_writes_nothing(
    identify, dynamodb, body, content_type, status, says
):
    raw = json.dumps(body) if isinstance(body, dict) else body
    got, headers, reply = invoke(
        identify, api_event("POST", "/identify", body=raw, content_type=content_type)
    )
    assert got == status
    assert says in json.dumps(reply)
    assert item_count(dynamodb) == 0


@pytest.mark.parametrize("cookie", ["../../bad#id<script>", "short", "x" * 65, "Laptop Visitor AAAAAAAA"])
def test_a_malformed_visitor_cookie_is_refused_like_a_malformed_hidden_field(identify, dynamodb, cookie):
    # The cookie's value would become part of DynamoDB keys (V#<visitor>): it must be a visitor id
    event = api_event(
        "POST", "/identify", body={"email": "kim@example.com"}, headers={"cookie": f"_cl_vid={cookie}"}
    )

    status, _, reply = invoke(identify, event)

    assert (status, reply["error"]["details"][0]["loc"]) == (400, ["cookie", "_cl_vid"])
    assert cookie not in json.dumps(reply)
    assert item_count(dynamodb) == 0


def test_the_hidden_field_wins_over_a_malformed_cookie_it_makes_unneeded(identify, store):
    event = form_post({"email": "kim@example.com", "closedloop_visitor_id": LAPTOP}, cookie="_cl_vid=bad!")
    assert invoke(identify, event)[0] == 200
    assert [link.visitor_id for link in store.links_of_lead(lead_id_for("kim@example.com"))] == [LAPTOP]


def test_custom_fields_of_many_forms_never_grow_the_lead_past_what_dynamodb_keeps(identify, store):
    # Given one address submitted with 25 forms, each with 20 other custom fields of 1000 characters
    # (unbounded, the lead item passed DynamoDB's 400 KB after 20 and every later form failed)
    for form in range(25):
        fields = {f"form{form:02d}_q{q:02d}": "x" * 1000 for q in range(20)}
        body = {"email": "many@example.com", "submission_id": f"sub-{form:08d}", **fields}
        status, _, reply = invoke(identify, api_event("POST", "/identify", body=body))
        assert status == 200, (form, reply)

    # Then every form was stored, and the lead keeps the latest form's fields
    lead = store.get_lead(lead_id_for("many@example.com"))
    assert lead is not None and lead.submissions == 25
    assert sorted(lead.custom_fields) == [f"form24_q{q:02d}" for q in range(20)]


def test_earlier_custom_fields_stay_while_there_is_room(identify, store):
    first = {"email": "two@example.com", "submission_id": "sub-00000001", "industry": "SaaS", "size": "50"}
    second = {"email": "two@example.com", "submission_id": "sub-00000002", "size": "200", "budget": "10k"}
    for body in (first, second):
        assert invoke(identify, api_event("POST", "/identify", body=body))[0] == 200

    lead = store.get_lead(lead_id_for("two@example.com"))
    assert lead is not None
    assert lead.custom_fields == {"industry": "SaaS", "size": "200", "budget": "10k"}


def test_a_bad_html_form_gets_a_readable_page_not_json(identify, dynamodb):
    status, headers, body = invoke(
        identify, form_post({"email": "nope", "redirect": f"{SITE_ORIGIN}/thanks.html"})
    )
    assert status == 400
    assert headers["content-type"].startswith("text/html")
    assert "<h1>" in body and "email" in body
    assert item_count(dynamodb) == 0


def test_no_email_reaches_the_logs_even_when_events_are_logged(identify, monkeypatch):
    import io

    from closedloop.observability import logger

    # Given the most talkative settings: every event logged whole
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    logged = load_function("identify")
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        invoke(
            logged,
            api_event("POST", "/identify", body={"email": "secret.person@example.com", "visitor_id": LAPTOP}),
        )
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]

    assert "secret.person" not in stream.getvalue()
    assert '"event":"summarised"' in stream.getvalue()  # the event was logged, as its route only


def test_the_openapi_document_describes_the_form_body(identify):
    status, _, document = invoke(identify, api_event("POST", "/identify", body={"email": "x@example.com"}))
    event = api_event("GET", "/health")
    assert invoke(identify, event)[0] == 200
    from closedloop.local.gateway import build_http_api_event
    from closedloop.routes import Route

    openapi_event = build_http_api_event(
        method="GET",
        raw_path="/openapi.json",
        raw_query="",
        headers={},
        body=b"",
        route=Route("GET", "/openapi.json", "identify"),
        path_parameters={},
    )
    status, _, document = invoke(identify, openapi_event)
    body = document["paths"]["/identify"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}
    assert "email" in body["application/json"]["schema"]["required"]


# -- Global Privacy Control ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "headers"),
    [
        ({}, {"cookie": f"_cl_vid={LAPTOP}"}),  # a cookie set before the browser turned GPC on
        ({"closedloop_visitor_id": LAPTOP}, {}),  # a hidden field the page added anyway
    ],
    ids=["cookie", "hidden-field"],
)
def test_a_form_sent_with_global_privacy_control_saves_the_lead_but_links_no_visitor(
    collect, identify, store, fields, headers
):
    # Given a visitor with an anonymous history, whose browser now sends Sec-GPC: 1
    visit(
        collect,
        LAPTOP,
        f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc",
        hours_ago=5,
        event_id="evt-gpc-0001",
    )

    # When it posts a form
    status, _, reply = invoke(
        identify, form_post({"email": "gpc@example.com", **fields}, **headers, **{"sec-gpc": "1"})
    )

    # Then the person's lead is saved (they gave their email), with no device and no history
    assert status == 200
    lead = store.get_lead(lead_id_for("gpc@example.com"))
    assert lead is not None
    assert store.links_of_lead(lead.lead_id) == []
    assert lead.original_source is None and lead.first_seen_at is None
    assert store.links_of_visitor(LAPTOP) == []


def test_a_form_sent_with_global_privacy_control_links_where_the_site_does_not_honour_it(
    collect, dynamodb, store, monkeypatch
):
    # Given a site whose snippet says data-honor-gpc="false", and so does its identify function
    monkeypatch.setenv("HONOR_GPC", "false")
    identify = load_function("identify")
    visit(
        collect,
        LAPTOP,
        f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc",
        hours_ago=5,
        event_id="evt-gpc-0001",
    )

    invoke(identify, form_post({"email": "gpc@example.com"}, cookie=f"_cl_vid={LAPTOP}", **{"sec-gpc": "1"}))

    assert [link.visitor_id for link in store.links_of_lead(lead_id_for("gpc@example.com"))] == [LAPTOP]
    assert journey(store, lead_id_for("gpc@example.com")) == ["Paid Search"]


# -- issue 14, item 4: devices per lead are capped, and a submission's work does not grow with them -------


def seed_devices(dynamodb: Any, email: str, count: int) -> None:
    """``count`` visitor links to the lead of ``email``, as fresh visitor ids posting it would leave."""
    from closedloop.models.leads import VisitorLink

    store = DynamoStore(TABLE_NAME, client=dynamodb)
    for n in range(count):
        link = VisitorLink(
            visitor_id=f"Fresh{n:019d}", lead_id=lead_id_for(email), linked_from=0, linked_at=1
        )
        for item in store._link_items(link):
            dynamodb.put_item(TableName=TABLE_NAME, Item=store._item(item))


def dynamodb_calls_of_one_post(identify: ModuleType, dynamodb: Any, body: dict[str, Any]) -> int:
    calls: list[str] = []
    identify.store._client = dynamodb  # the function's own store, counted where it talks to DynamoDB
    handler = dynamodb.meta.events.register(
        "before-call.dynamodb.*", lambda **kw: calls.append(kw["event_name"])
    )
    try:
        status, _, reply = invoke(identify, api_event("POST", "/identify", body=body))
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb.*", handler)
    assert status == 200, reply
    return len(calls)


@pytest.mark.parametrize("devices", [30, 1_000])
def test_a_submission_costs_the_same_however_many_devices_were_linked_to_the_lead(
    identify, dynamodb, devices
):
    from closedloop.identity import MAX_DEVICES_PER_LEAD

    # Given a lead whose address was posted from many fresh visitor ids (links made before the cap)
    invoke(
        identify, api_event("POST", "/identify", body={"email": "victim@example.com", "visitor_id": LAPTOP})
    )
    seed_devices(dynamodb, "victim@example.com", devices)

    # When the person submits a form again
    calls = dynamodb_calls_of_one_post(
        identify, dynamodb, {"email": "victim@example.com", "visitor_id": LAPTOP, "form_id": "webinar"}
    )

    # Then the work is bounded by the cap, not by the links: the lead, the repeat check, the visitor's
    # last link, the lead's links, one touches Query per kept device, the write
    assert calls <= MAX_DEVICES_PER_LEAD + 5


def test_a_lead_links_at_most_its_cap_of_devices_and_still_takes_every_submission(identify, store):
    from closedloop.identity import MAX_DEVICES_PER_LEAD

    # When the same address is posted from one more visitor than the cap allows
    for n in range(MAX_DEVICES_PER_LEAD + 1):
        body = {"email": "many@example.com", "visitor_id": f"Device{n:018d}", "form_id": "f"}
        status, _, _ = invoke(identify, api_event("POST", "/identify", body=body))
        assert status == 200

    # Then every submission is stored, and only the first MAX_DEVICES_PER_LEAD visitors are linked
    lead_id = lead_id_for("many@example.com")
    assert len(store.submissions_of_lead(lead_id)) == MAX_DEVICES_PER_LEAD + 1
    linked = {link.visitor_id for link in store.links_of_lead(lead_id)}
    assert linked == {f"Device{n:018d}" for n in range(MAX_DEVICES_PER_LEAD)}
    assert store.links_of_visitor(f"Device{MAX_DEVICES_PER_LEAD:018d}") == []
    # A linked visitor keeps submitting as before
    body = {"email": "many@example.com", "visitor_id": "Device000000000000000000", "form_id": "g"}
    assert invoke(identify, api_event("POST", "/identify", body=body))[0] == 200
