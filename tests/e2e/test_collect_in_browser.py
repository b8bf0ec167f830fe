"""A visitor in a real browser: the demo site's tracker, the local gateway, the collect function, moto."""

from __future__ import annotations

import time

import pytest

from closedloop.store import DynamoStore
from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.browser


def wait_for(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_a_newsletter_visitor_gets_one_email_touch_and_two_page_views(local_stack, page):
    store = DynamoStore(local_stack.table_name, client=local_stack.dynamodb())

    # Given a visitor arriving on the demo site from the launch newsletter
    page.goto(f"{local_stack.url}/site/index.html?utm_source=newsletter&utm_medium=email&utm_campaign=launch")
    page.wait_for_function("document.cookie.includes('_cl_vid=')")

    # When they click through to a second page
    page.click("text=Pricing")
    page.wait_for_url("**/pricing.html")
    visitor_id = next(c["value"] for c in page.context.cookies() if c["name"] == "_cl_vid")

    # Then the table holds two page views and one Email touch for that visitor
    events = wait_for(lambda: len(store.events_of_visitor(visitor_id)) >= 2) and store.events_of_visitor(
        visitor_id
    )
    stored = [e.page_path for e in store.events_of_visitor(visitor_id)]
    assert events, f"stored {stored}; the gateway answered {list(local_stack.gateway.answers)[-10:]}"
    assert [e.page_path for e in events] == ["/site/index.html", "/site/pricing.html"]
    [touch] = store.touches_of_visitor(visitor_id)
    assert (touch.channel, touch.source, touch.medium, touch.campaign) == (
        "Email",
        "newsletter",
        "email",
        "launch",
    )
    assert {e.session_id for e in events} == {touch.touch_id}

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "collect-pricing-page.png"))
