"""A visitor in a real browser clicks an ad, comes back directly, and fills the plain HTML contact form."""

from __future__ import annotations

import pytest

from closedloop.identity import journey_touches, lead_id_for
from closedloop.store import DynamoStore
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.test_collect_in_browser import wait_for

pytestmark = pytest.mark.browser


def test_the_lead_keeps_its_paid_search_origin_and_its_direct_return(local_stack, page):
    store = DynamoStore(local_stack.table_name, client=local_stack.dynamodb())
    site = f"{local_stack.url}/site"

    # Given a visit from a Google ad
    page.goto(f"{site}/index.html?utm_source=google&utm_medium=cpc&gclid=x")
    page.wait_for_function("document.cookie.includes('_cl_sid=')")
    visitor_id = next(c["value"] for c in page.context.cookies() if c["name"] == "_cl_vid")
    wait_for(lambda: store.touches_of_visitor(visitor_id))

    # When the visitor leaves (the tracker's 30-minute session cookie runs out) and comes back directly
    page.goto("about:blank")
    page.context.clear_cookies(name="_cl_sid")
    page.goto(f"{site}/index.html")
    wait_for(lambda: len(store.touches_of_visitor(visitor_id)) >= 2)
    # ... and fills the contact form, a plain HTML form posted straight to /identify
    page.click("text=Talk to sales")
    page.wait_for_url("**/contact.html")
    page.wait_for_selector("input[name=closedloop_visitor_id]", state="attached")
    page.fill("input[name=email]", "jordan.lee@example.com")
    page.fill("input[name=first_name]", "Jordan")
    page.fill("input[name=company]", "Example Corp")
    page.click("button[type=submit]")

    # Then the browser lands on the thank-you page
    page.wait_for_url("**/thanks.html")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "identify-thanks-page.png"))

    # And the lead's journey holds the Paid Search touch and the Direct touch, in order
    lead = store.get_lead(lead_id_for("jordan.lee@example.com"))
    assert lead is not None and lead.company == "Example Corp"
    links = store.links_of_lead(lead.lead_id)
    assert [link.visitor_id for link in links] == [visitor_id]
    journey = journey_touches(links, {visitor_id: store.touches_of_visitor(visitor_id)})
    assert [t.channel for t in journey] == ["Paid Search", "Direct"]
    assert lead.original_source is not None and lead.original_source.channel == "Paid Search"
