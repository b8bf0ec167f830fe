"""Consent and Global Privacy Control, end to end: a real browser on the demo site, the local gateway,
the real functions and the table. A visitor who sends GPC, or refused tracking, leaves no visit, touch,
cookie or device link; a form they submit still reaches sales, as a lead without a journey."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from closedloop.identity import lead_id_for

pytestmark = pytest.mark.browser

GPC_ON = "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})"


def items_of(local_stack: Any) -> list[dict[str, Any]]:
    return list(local_stack.dynamodb().scan(TableName=local_stack.table_name)["Items"])


def wait_for_lead(local_stack: Any, email: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    pk = f"L#{lead_id_for(email)}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = local_stack.dynamodb().query(
            TableName=local_stack.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )["Items"]
        if found:
            return list(found)
        time.sleep(0.1)
    raise AssertionError("the lead never arrived")


def submit_contact_form(page: Any, email: str) -> None:
    page.fill("input[name=email]", email)
    page.fill("input[name=company]", "Analytical Engines Ltd")
    page.click("button[type=submit]")
    page.wait_for_url("**/thanks.html")


@pytest.mark.parametrize("signal", ["gpc", "consent-refused"])
def test_a_visitor_who_opts_out_leaves_no_visit_and_their_form_no_journey(
    local_stack: Any, browser: Any, signal: str
) -> None:
    email = f"opted-out-{signal}@example.com"
    context = browser.new_context()
    if signal == "gpc":
        context.add_init_script(GPC_ON)
    else:  # refused on an earlier visit: the tracker remembers it in _cl_consent=0
        context.add_cookies([{"name": "_cl_consent", "value": "0", "url": local_stack.url}])
    page = context.new_page()
    before = {(i["pk"]["S"], i["sk"]["S"]) for i in items_of(local_stack)}
    try:
        # Given a visitor from a newsletter who opts out (GPC, or refusing in the site's consent banner)
        page.goto(f"{local_stack.url}/site/index.html?utm_source=newsletter&utm_medium=email")
        page.wait_for_function("typeof closedloop === 'function'")
        # When they browse to the contact page and ask for a demo
        page.click("text=Talk to sales")
        page.wait_for_url("**/contact.html")
        submit_contact_form(page, email)

        # Then sales gets the lead, and Closedloop kept nothing of their visits
        lead = wait_for_lead(local_stack, email)
        time.sleep(0.5)  # a beacon that should not exist has had time to arrive
        new = [i for i in items_of(local_stack) if (i["pk"]["S"], i["sk"]["S"]) not in before]
        assert {i["pk"]["S"] for i in new} == {lead[0]["pk"]["S"]}, "only the lead's own items are new"
        assert not [i for i in lead if i["sk"]["S"].startswith("V#")], "the lead is linked to no device"
        assert "newsletter" not in json.dumps(new)
        assert [c["name"] for c in context.cookies() if c["name"].startswith("_cl_v")] == []
    finally:
        context.close()
