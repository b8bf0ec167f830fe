"""HubSpot write-back against a local server answering as HubSpot's CRM API v3 documents."""

from __future__ import annotations

import pytest

from closedloop.crm import CrmApiError, CrmApiRetryableError
from closedloop.models.leads import Lead
from closedloop.models.visits import Touch
from closedloop.writeback.fields import FIELDS, source_fields
from closedloop.writeback.hubspot import LAST_SYNC, HubSpotWriter
from tests.unit.crm.conftest import FakeCrmApi, Reply
from tests.unit.writeback.fakes import HUBSPOT_RATE_LIMITED, FakeHubSpot

T0 = 1_795_000_000_000
ADA = "ada+events@example.com"
LEAD = Lead(lead_id="ld_1", email=ADA, created_at=T0, updated_at=T0)
JOURNEY = [
    Touch(
        visitor_id="v1",
        touch_id="a",
        occurred_at=T0 - 1000,
        channel="Paid Social",
        source="linkedin",
        medium="cpc",
        campaign="spring-launch",
        landing_host="www.acme.test",
        landing_path="/guide",
    )
]
FIELDS_OF_ADA = source_fields(LEAD, JOURNEY, now=T0)


@pytest.fixture
def hubspot(crm_api: FakeCrmApi) -> FakeHubSpot:
    return FakeHubSpot(crm_api)


@pytest.fixture
def writer(crm_api: FakeCrmApi) -> HubSpotWriter:
    return HubSpotWriter("pat-test", base_url=crm_api.base_url, timeout=2)


def test_the_first_write_creates_the_group_and_properties_then_patches_by_email(hubspot, writer, crm_api):
    hubspot.add_contact(ADA, "501")
    assert FIELDS_OF_ADA is not None

    contact_id = writer.write_contact(
        ADA, writer.contact_payload(FIELDS_OF_ADA), synced_at="2026-11-23T10:00:00.000Z"
    )

    assert contact_id == "501"
    assert "closedloop" in hubspot.groups["contacts"]
    assert {f"closedloop_{spec.name}" for spec in FIELDS} | {LAST_SYNC} <= hubspot.properties["contacts"]
    contact = hubspot.contacts[ADA]
    assert contact["closedloop_original_source"] == "Paid Social / linkedin / cpc / spring-launch"
    assert contact["closedloop_lead_creation_utm_campaign"] == "spring-launch"
    assert contact["closedloop_sessions"] == "1"
    assert contact[LAST_SYNC] == "2026-11-23T10:00:00.000Z"
    [patch] = hubspot.patches()
    assert patch.headers["authorization"] == "Bearer pat-test"
    assert patch.path == "/crm/v3/objects/contacts/ada%2Bevents@example.com"


def test_properties_are_created_once_per_warm_function(hubspot, writer, crm_api):
    hubspot.add_contact(ADA)
    assert FIELDS_OF_ADA is not None
    payload = writer.contact_payload(FIELDS_OF_ADA)
    writer.write_contact(ADA, payload, synced_at="2026-11-23T10:00:00.000Z")
    writer.write_contact(ADA, payload, synced_at="2026-11-23T10:05:00.000Z")

    creations = [s for s in crm_api.seen if s.path.endswith("/batch/create")]
    assert len(creations) == 1
    assert [s.method for s in crm_api.seen].count("PATCH") == 2


def test_a_contact_hubspot_does_not_have_is_reported_missing(hubspot, writer):
    assert FIELDS_OF_ADA is not None
    assert writer.write_contact(ADA, writer.contact_payload(FIELDS_OF_ADA), synced_at="x") is None


def test_a_rate_limit_carries_its_retry_after(hubspot, writer):
    hubspot.add_contact(ADA)
    hubspot.failures.append(Reply(429, HUBSPOT_RATE_LIMITED, {"Retry-After": "10"}))
    assert FIELDS_OF_ADA is not None

    with pytest.raises(CrmApiRetryableError) as raised:
        writer.write_contact(ADA, writer.contact_payload(FIELDS_OF_ADA), synced_at="x")

    assert (raised.value.status, raised.value.retry_after) == (429, 10.0)
    assert ADA not in str(raised.value)  # the e-mail in the path never reaches an error message


def test_a_server_error_is_retryable_and_a_refusal_is_not(hubspot, writer):
    hubspot.add_contact(ADA)
    hubspot.failures += [Reply(502, {"message": "bad gateway"}), Reply(403, {"category": "MISSING_SCOPES"})]
    assert FIELDS_OF_ADA is not None
    payload = writer.contact_payload(FIELDS_OF_ADA)

    with pytest.raises(CrmApiRetryableError):
        writer.write_contact(ADA, payload, synced_at="x")
    with pytest.raises(CrmApiError) as refused:
        writer.write_contact(ADA, payload, synced_at="x")
    assert not isinstance(refused.value, CrmApiRetryableError) and refused.value.status == 403


def test_deals_get_the_same_properties(hubspot, writer):
    hubspot.deals["9001"] = {"dealname": "Acme"}
    assert FIELDS_OF_ADA is not None

    assert writer.write_deal("9001", writer.deal_payload(FIELDS_OF_ADA), synced_at="x") is True
    assert writer.write_deal("404404", writer.deal_payload(FIELDS_OF_ADA), synced_at="x") is False
    assert hubspot.deals["9001"]["closedloop_original_channel"] == "Paid Social"
    assert "closedloop" in hubspot.groups["deals"]
