"""The first-party tracker (t.js) in Chromium, against a fake collector serving the demo site."""

import gzip
import hashlib
import re
import time
from importlib.resources import files
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from closedloop.tracker import demo_site_file, tracker_script
from tests.e2e.conftest_tracker import (  # noqa: F401 - fixtures, used by name
    SITE_HOST,
    FakeApi,
    _fake_api,
    _tracker_browser,
    _tracker_context,
)

ID = re.compile(r"^[A-Za-z0-9_-]{22,36}$")
SNIPPET = (
    "<script>window.closedloop=window.closedloop||function(){"
    "(closedloop.q=closedloop.q||[]).push(arguments)};</script>"
)
GPC_ON = "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})"
DNT_ON = "Object.defineProperty(navigator, 'doNotTrack', {get: () => '1'})"
# Time for a beacon that should not exist to arrive anyway, once a later request has proven the page ran.
GRACE_SECONDS = 0.3


def page_with_snippet(attributes: str = "", body: str = "") -> str:
    """A page with the snippet, its script tag carrying ``attributes``."""
    return (
        f"<!doctype html><html><head><title>Test page</title>{SNIPPET}"
        f'<script async src="/t.js" {attributes}></script></head><body>{body}</body></html>'
    )


def open_page(context: BrowserContext, url: str, *, init_script: str = "", referer: str = "") -> Page:
    page = context.new_page()
    if init_script:
        page.add_init_script(init_script)
    page.goto(url, referer=referer or None)
    page.wait_for_function("window.closedloop && window.closedloop.v === 1")
    return page


def cookies_by_name(context: BrowserContext) -> dict[str, Any]:
    return {cookie["name"]: cookie for cookie in context.cookies()}


def visitor_fields(page: Page, form_selector: str) -> list[str]:
    return page.eval_on_selector_all(
        f"{form_selector} input[name=closedloop_visitor_id]", "inputs => inputs.map(i => i.value)"
    )


# --- The served file -------------------------------------------------------------------------------


def test_tracker_fits_in_2_kb_gzipped() -> None:
    # Given the tracker as the collect function serves it
    script = tracker_script()

    # Then it is small, and it is the same bytes on every call
    assert len(gzip.compress(script, compresslevel=9)) <= 2048
    assert script.startswith(b"/*! Closedloop tracker")
    assert tracker_script() is script


def test_served_tracker_is_minified_from_the_current_source() -> None:
    # Given the readable source next to the served file
    source = files("closedloop.tracker").joinpath("t.src.js").read_bytes()

    # Then the served file names the source's hash in its first line (rebuild it: docs/tracker.md)
    first_line = tracker_script().split(b"\n", 1)[0].decode()
    assert f"sha256 {hashlib.sha256(source).hexdigest()}" in first_line, "t.js is stale: rebuild it"


@pytest.mark.parametrize("name", ["../tracker/t.js", "site/index.html", "missing.html", "t.src.js", ""])
def test_demo_site_serves_only_its_own_pages(name: str) -> None:
    with pytest.raises(FileNotFoundError):
        demo_site_file(name)


def test_demo_site_points_at_another_api_origin_on_request() -> None:
    # When a page is asked for with the API on another origin
    same_origin, content_type = demo_site_file("contact.html")
    other_origin, _ = demo_site_file("contact.html", api_origin="https://api.example.com/")

    # Then its script and its form point there, and nothing else changed
    assert content_type == "text/html; charset=utf-8"
    assert b'src="/t.js"' in same_origin
    assert b'action="/identify"' in same_origin
    assert other_origin == same_origin.replace(b'"/t.js"', b'"https://api.example.com/t.js"').replace(
        b'"/identify"', b'"https://api.example.com/identify"'
    )


# --- Page views, ids and cookies -------------------------------------------------------------------


@pytest.mark.browser
def test_page_view_on_load_carries_ids_url_with_utm_referrer_and_title(
    fake_api: FakeApi, tracker_context: BrowserContext
) -> None:
    # Given a visitor arriving from a search engine on a campaign URL
    url = fake_api.site_url("index.html?utm_source=google&utm_medium=cpc&utm_campaign=q4&gclid=abc123")
    before_ms = time.time() * 1000

    # When the page loads
    open_page(tracker_context, url, referer="https://www.google.com/")
    [post] = fake_api.wait_for_posts("/collect")
    after_ms = time.time() * 1000

    # Then one text/plain beacon carries one page view with the full URL, its referrer and title
    assert post.headers["content-type"] == "text/plain;charset=UTF-8"
    assert post.headers["sec-fetch-mode"] == "no-cors"  # sendBeacon, not fetch
    body = post.json()
    assert set(body) == {"sent_at", "events"}
    assert before_ms <= body["sent_at"] <= after_ms
    [event] = body["events"]
    assert set(event) == {"type", "event_id", "visitor_id", "session_id", "url", "referrer", "title", "ts"}
    assert event["type"] == "page_view"
    assert event["url"] == url
    assert event["referrer"] == "https://www.google.com/"
    assert event["title"] == "Acme Analytics: revenue attribution for B2B teams"
    assert before_ms <= event["ts"] <= body["sent_at"]
    assert all(ID.match(event[key]) for key in ("event_id", "visitor_id", "session_id"))
    cookies = cookies_by_name(tracker_context)
    assert event["visitor_id"] == cookies["_cl_vid"]["value"]
    assert event["session_id"] == cookies["_cl_sid"]["value"]


@pytest.mark.browser
def test_cookies_are_first_party_lax_and_last_400_days_and_30_minutes(
    fake_api: FakeApi, tracker_context: BrowserContext
) -> None:
    # When a page with the tracker loads over http
    open_page(tracker_context, fake_api.site_url("pricing.html"))
    fake_api.wait_for_events(1)
    now = time.time()

    # Then the two cookies are host-only, site-wide, Lax, not Secure (http), with their lifetimes
    cookies = cookies_by_name(tracker_context)
    assert set(cookies) == {"_cl_vid", "_cl_sid"}
    for cookie in cookies.values():
        assert ID.match(cookie["value"])
        assert (cookie["domain"], cookie["path"], cookie["sameSite"]) == ("127.0.0.1", "/", "Lax")
        assert not cookie["secure"]
        assert not cookie["httpOnly"]
    assert cookies["_cl_vid"]["expires"] == pytest.approx(now + 400 * 86400, abs=5)
    assert cookies["_cl_sid"]["expires"] == pytest.approx(now + 30 * 60, abs=5)
    assert cookies["_cl_vid"]["value"] != cookies["_cl_sid"]["value"]


@pytest.mark.browser
def test_next_page_load_reuses_visitor_and_session_with_the_previous_page_as_referrer(
    fake_api: FakeApi, tracker_context: BrowserContext
) -> None:
    # Given a first page view
    page = open_page(tracker_context, fake_api.site_url("index.html"))
    [first] = fake_api.wait_for_events(1)

    # When the visitor follows a link to another page
    page.click("text=Pricing")
    page.wait_for_url("**/pricing.html")
    second = fake_api.wait_for_events(2)[1]

    # Then the second page view has the same ids, a new event id, and the first page as referrer
    assert second["type"] == "page_view"
    assert second["url"] == fake_api.site_url("pricing.html")
    assert second["referrer"] == first["url"]
    assert (second["visitor_id"], second["session_id"]) == (first["visitor_id"], first["session_id"])
    assert second["event_id"] != first["event_id"]


@pytest.mark.browser
def test_spa_navigations_send_page_views_with_the_previous_url_as_referrer(
    fake_api: FakeApi, tracker_context: BrowserContext
) -> None:
    # Given the single-page app
    app_url = fake_api.site_url("app.html")
    reports_url = fake_api.site_url("app.html?view=reports")
    page = open_page(tracker_context, app_url)
    fake_api.wait_for_events(1)

    # When the visitor opens the other view (pushState), then goes back (popstate)
    page.click("text=Reports")
    pushed = fake_api.wait_for_events(2)[1]
    page.go_back()
    popped = fake_api.wait_for_events(3)[2]

    # Then each sends a page view whose referrer is the URL before it, with the title the app set
    assert (pushed["url"], pushed["referrer"]) == (reports_url, app_url)
    assert pushed["title"] == "Product tour: Reports | Acme Analytics"
    assert (popped["url"], popped["referrer"]) == (app_url, reports_url)
    assert popped["title"] == "Product tour: Dashboard | Acme Analytics"
    assert pushed["session_id"] == popped["session_id"]

    # When the app pushes the same URL, changes only the fragment, or tidies the query string in place
    page.evaluate("history.pushState({}, '', location.href)")
    page.evaluate("history.pushState({}, '', '#chart')")
    page.evaluate("history.replaceState({}, '', '?tidied=1')")
    # and then really navigates (replaceState to a new path counts)
    page.evaluate("history.replaceState({}, '', 'pricing.html')")
    events = fake_api.wait_for_events(4)

    # Then only the real navigation was a page view, its referrer being the tidied URL
    assert len(events) == 4
    assert events[3]["url"] == fake_api.site_url("pricing.html")
    assert events[3]["referrer"] == fake_api.site_url("app.html?tidied=1")


@pytest.mark.browser
def test_track_sends_a_custom_event_with_the_same_ids(
    fake_api: FakeApi, tracker_context: BrowserContext
) -> None:
    # Given the pricing page
    page = open_page(tracker_context, fake_api.site_url("pricing.html"))
    [view] = fake_api.wait_for_events(1)

    # When the visitor picks a plan (the page calls closedloop('track', 'plan_selected', {plan}))
    page.evaluate(
        "document.querySelector('[data-plan=growth]').addEventListener('click', e => e.preventDefault())"
    )
    page.click("[data-plan=growth]")
    track = fake_api.wait_for_events(2)[1]

    # Then a track event goes out with the props, the page URL and the same ids
    assert set(track) == {"type", "name", "props", "event_id", "visitor_id", "session_id", "url", "ts"}
    assert (track["type"], track["name"], track["props"]) == ("track", "plan_selected", {"plan": "growth"})
    assert track["url"] == fake_api.site_url("pricing.html")
    assert (track["visitor_id"], track["session_id"]) == (view["visitor_id"], view["session_id"])


# --- Forms -----------------------------------------------------------------------------------------


@pytest.mark.browser
def test_every_form_gets_exactly_one_hidden_visitor_id_field(
    fake_api: FakeApi, tracker_context: BrowserContext
) -> None:
    # Given the contact page has loaded
    page = open_page(tracker_context, fake_api.site_url("contact.html"))
    visitor_id = fake_api.wait_for_events(1)[0]["visitor_id"]

    # Then its form carries the visitor id once, in a hidden field
    assert visitor_fields(page, "#contact-sales") == [visitor_id]
    assert page.get_attribute("#contact-sales input[name=closedloop_visitor_id]", "type") == "hidden"

    # When the page adds a form, and another one that already has the field, and then more nodes
    page.evaluate(
        """() => {
        document.body.insertAdjacentHTML('beforeend', '<form id="late"><input name="email"></form>');
        document.body.insertAdjacentHTML('beforeend',
          '<form id="prefilled"><input type="hidden" name="closedloop_visitor_id" value="stale"></form>');
        }"""
    )
    page.wait_for_function("document.querySelector('#late input[name=closedloop_visitor_id]') !== null")
    page.evaluate("document.getElementById('late').appendChild(document.createElement('input'))")
    page.wait_for_function("document.querySelector('#prefilled input').value !== 'stale'")

    # Then every form has one field with the visitor id, no duplicate
    for form in ("#contact-sales", "#late", "#prefilled"):
        assert visitor_fields(page, form) == [visitor_id]


@pytest.mark.browser
def test_plain_contact_form_posts_the_visitor_id_and_lands_on_the_thank_you_page(
    fake_api: FakeApi, tracker_context: BrowserContext
) -> None:
    # Given the contact page has loaded
    page = open_page(tracker_context, fake_api.site_url("contact.html"))
    visitor_id = fake_api.wait_for_events(1)[0]["visitor_id"]

    # When the visitor fills in the form and sends it
    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=first_name]", "Ada")
    page.fill("input[name=last_name]", "Lovelace")
    page.fill("input[name=company]", "Analytical Engines")
    page.fill("input[name=job_title]", "CTO")
    page.click("text=Request a demo")
    page.wait_for_url("**/thanks.html")

    # Then /identify got a plain form post with the visitor id, an empty honeypot and the redirect
    [post] = fake_api.posts("/identify")
    assert post.headers["content-type"] == "application/x-www-form-urlencoded"
    assert post.form() == {
        "form_id": "contact-sales",
        "redirect": fake_api.site_url("thanks.html"),
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "Analytical Engines",
        "job_title": "CTO",
        "website": "",
        "closedloop_visitor_id": visitor_id,
    }
    assert not page.is_visible("input[name=website]")


# --- Commands --------------------------------------------------------------------------------------


@pytest.mark.browser
def test_commands_queued_before_the_tracker_loads_are_replayed_in_order(
    fake_api: FakeApi, tracker_context: BrowserContext
) -> None:
    # Given commands queued by the snippet before t.js arrives, one of them a page view by hand
    queue = (
        "window.closedloop = function () { (closedloop.q = closedloop.q || []).push(arguments) };"
        "closedloop('track', 'first', {n: 1}); closedloop('page'); closedloop('track', 'second', {n: 2});"
    )

    # When the tracker loads
    open_page(tracker_context, fake_api.site_url("index.html"), init_script=queue)
    events = fake_api.wait_for_events(3)

    # Then they were sent in order, and the queued page view replaced the automatic one
    assert [(e["type"], e.get("name")) for e in events] == [
        ("track", "first"),
        ("page_view", None),
        ("track", "second"),
    ]
    assert [e.get("props") for e in events] == [{"n": 1}, None, {"n": 2}]
    page_views_later = [e for e in fake_api.events() if e["type"] == "page_view"]
    assert len(page_views_later) == 1


@pytest.mark.browser
def test_identify_posts_json_with_the_visitor_id_and_resolves_to_the_reply(
    fake_api: FakeApi, tracker_context: BrowserContext
) -> None:
    # Given a page with the tracker
    page = open_page(tracker_context, fake_api.site_url("thanks.html"))
    visitor_id = fake_api.wait_for_events(1)[0]["visitor_id"]

    # When the site identifies the visitor, once rightly and once with a bad address
    reply = page.evaluate(
        "closedloop('identify', {email: 'ada@example.com', first_name: 'Ada', form_id: 'webinar'})"
    )
    status = page.evaluate("closedloop('identify', {email: 'nope'}).then(() => 'resolved', r => r.status)")

    # Then the JSON reply resolves, an HTTP error rejects, and the post is JSON with the visitor id
    assert reply == {"lead_id": "lead-1"}
    assert status == 422
    first = fake_api.posts("/identify")[0]
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {
        "email": "ada@example.com",
        "first_name": "Ada",
        "form_id": "webinar",
        "visitor_id": visitor_id,
    }


@pytest.mark.browser
@pytest.mark.parametrize(
    "no_beacon",
    [
        pytest.param("delete Navigator.prototype.sendBeacon", id="missing"),
        pytest.param("Navigator.prototype.sendBeacon = () => false", id="refused"),
    ],
)
def test_events_go_by_fetch_when_sendbeacon_is_missing_or_refuses(
    fake_api: FakeApi, tracker_context: BrowserContext, no_beacon: str
) -> None:
    # When a page loads in a browser whose sendBeacon is missing or returns false
    open_page(tracker_context, fake_api.site_url("index.html"), init_script=no_beacon)
    [post] = fake_api.wait_for_posts("/collect")

    # Then the same body goes by fetch (CORS mode, no credentials), still text/plain
    assert post.headers["sec-fetch-mode"] == "cors"
    assert post.headers["content-type"] == "text/plain"
    assert "cookie" not in post.headers
    [event] = post.json()["events"]
    assert event["type"] == "page_view"
    assert event["visitor_id"] == cookies_by_name(tracker_context)["_cl_vid"]["value"]


# --- Privacy ---------------------------------------------------------------------------------------


@pytest.mark.browser
def test_consent_refusal_forgets_the_visitor_and_stops_until_granted(
    fake_api: FakeApi, tracker_context: BrowserContext
) -> None:
    # Given a tracked visitor on the contact page
    page = open_page(tracker_context, fake_api.site_url("contact.html"))
    [first] = fake_api.wait_for_events(1)

    # When the visitor refuses consent, then does things and comes back later
    page.evaluate("closedloop('consent', false)")
    refused = cookies_by_name(tracker_context)
    fields_after_refusal = visitor_fields(page, "form")
    page.evaluate("closedloop('track', 'ignored'); closedloop('page')")
    page = open_page(tracker_context, fake_api.site_url("pricing.html"))
    page.evaluate("closedloop('identify', {email: 'ada@example.com'})")
    fake_api.wait_for_posts("/identify")
    time.sleep(GRACE_SECONDS)

    # Then the ids and hidden fields are gone, the refusal is remembered, and nothing was sent
    assert set(refused) == {"_cl_consent"}
    assert refused["_cl_consent"]["value"] == "0"
    assert refused["_cl_consent"]["expires"] == pytest.approx(time.time() + 400 * 86400, abs=10)
    assert fields_after_refusal == []
    assert fake_api.events() == [first]
    assert "visitor_id" not in fake_api.posts("/identify")[0].json()
    assert set(cookies_by_name(tracker_context)) == {"_cl_consent"}

    # When the visitor grants consent again
    page.evaluate("closedloop('consent', true)")
    [_, resumed] = fake_api.wait_for_events(2)

    # Then the page view of this page goes out under a new visitor id, and the refusal is cleared
    assert resumed["type"] == "page_view"
    assert resumed["url"] == fake_api.site_url("pricing.html")
    assert resumed["visitor_id"] != first["visitor_id"]
    assert set(cookies_by_name(tracker_context)) == {"_cl_vid", "_cl_sid"}


@pytest.mark.browser
def test_global_privacy_control_is_honoured_by_default(
    fake_api: FakeApi, tracker_context: BrowserContext
) -> None:
    # When a visitor whose browser sends GPC loads the contact page and subscribes to the newsletter
    page = open_page(tracker_context, fake_api.site_url("contact.html"), init_script=GPC_ON)
    page.evaluate("closedloop('track', 'ignored'); closedloop('identify', {email: 'ada@example.com'})")
    fake_api.wait_for_posts("/identify")
    time.sleep(GRACE_SECONDS)

    # Then no cookie is set, no field added and no event sent; the lead is not linked to a visitor
    assert tracker_context.cookies() == []
    assert visitor_fields(page, "form") == []
    assert fake_api.posts("/collect") == []
    assert fake_api.posts("/identify")[0].json() == {"email": "ada@example.com"}


@pytest.mark.browser
@pytest.mark.parametrize(
    ("attributes", "signal", "tracked"),
    [
        pytest.param('data-honor-gpc="false"', GPC_ON, True, id="gpc-not-honoured"),
        pytest.param("", DNT_ON, True, id="dnt-ignored-by-default"),
        pytest.param('data-honor-dnt="true"', DNT_ON, False, id="dnt-honoured"),
    ],
)
def test_privacy_signals_follow_the_script_attributes(
    fake_api: FakeApi, tracker_context: BrowserContext, attributes: str, signal: str, tracked: bool
) -> None:
    # Given a page whose script tag says which signals to honour
    fake_api.pages["privacy.html"] = page_with_snippet(attributes, body="<form></form>")

    # When a browser sending the signal loads it (and identifies, to know the page has run)
    page = open_page(tracker_context, fake_api.site_url("privacy.html"), init_script=signal)
    page.evaluate("closedloop('identify', {email: 'ada@example.com'})")
    fake_api.wait_for_posts("/identify")
    if tracked:
        fake_api.wait_for_events(1)
    time.sleep(GRACE_SECONDS)

    # Then it is tracked or not, cookies, form field and all
    assert len(fake_api.events()) == (1 if tracked else 0)
    assert ("_cl_vid" in cookies_by_name(tracker_context)) is tracked
    assert len(visitor_fields(page, "form")) == (1 if tracked else 0)


# --- Another origin --------------------------------------------------------------------------------


@pytest.mark.browser
def test_site_on_another_origin_talks_to_the_api_origin_from_the_script_src(
    fake_api: FakeApi, tracker_context: BrowserContext
) -> None:
    # Given the demo site served from http://site.test while the API is on 127.0.0.1
    url = fake_api.site_url("index.html", host=SITE_HOST)

    # When the home page loads and the visitor subscribes to the newsletter (CORS JSON post)
    page = open_page(tracker_context, url)
    [event] = fake_api.wait_for_events(1)
    page.fill("#newsletter input[name=email]", "ada@example.com")
    page.click("text=Subscribe")
    page.wait_for_selector("text=Subscribed. Thank you!")

    # Then the page view and the lead reached the API, both with the site's first-party visitor id
    assert event["url"] == url
    cookies = cookies_by_name(tracker_context)
    assert cookies["_cl_vid"]["domain"] == SITE_HOST
    [identify] = fake_api.posts("/identify")
    assert identify.headers["origin"] == f"http://{SITE_HOST}:{fake_api.port}"
    assert identify.json() == {
        "email": "ada@example.com",
        "form_id": "newsletter",
        "visitor_id": event["visitor_id"],
    }
    assert event["visitor_id"] == cookies["_cl_vid"]["value"]


@pytest.mark.browser
def test_cookie_domain_comes_from_the_data_domain_attribute(
    fake_api: FakeApi, tracker_context: BrowserContext
) -> None:
    # Given a page whose script tag shares the cookies with every subdomain
    fake_api.pages["domain.html"] = page_with_snippet(f'data-domain=".{SITE_HOST}"')

    # When it loads
    open_page(tracker_context, fake_api.site_url("domain.html", host=SITE_HOST))
    fake_api.wait_for_events(1)

    # Then both cookies are set on the parent domain
    cookies = cookies_by_name(tracker_context)
    assert {cookies[name]["domain"] for name in ("_cl_vid", "_cl_sid")} == {f".{SITE_HOST}"}
