"""Pipedrive and Salesforce write-back against local servers answering in their documented shapes."""

from __future__ import annotations

import pytest

from closedloop import clock
from closedloop.crm import CrmApiError, CrmApiRetryableError, CrmSecrets
from closedloop.crm.config import PipedriveConfig
from closedloop.crm.models import WebhookRequest
from closedloop.crm.pipedrive import parse_pipedrive
from closedloop.models.leads import Lead
from closedloop.models.visits import Touch
from closedloop.writeback.fields import source_fields
from closedloop.writeback.pipedrive import PipedriveWriter
from closedloop.writeback.salesforce import SalesforceWriter, soql_string
from closedloop.writeback.service import configured_writers
from tests.unit.crm.conftest import FakeCrmApi, Reply
from tests.unit.writeback.fakes import (
    PIPEDRIVE_TOKEN_BUDGET_SPENT,
    SALESFORCE_REQUEST_LIMIT_EXCEEDED,
    FakePipedrive,
    FakeSalesforce,
)

T0 = 1_795_000_000_000
ADA = "ada@example.com"
GRACE = "grace@example.com"
ORIGINAL_KEY = "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0"
SESSIONS_KEY = "0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e"
FIRST_SEEN_KEY = "1111111111111111111111111111111111111111"
FIELDS_OF_ADA = source_fields(
    Lead(lead_id="ld_1", email=ADA, created_at=T0, updated_at=T0),
    [
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
    ],
    now=T0,
)
assert FIELDS_OF_ADA is not None


# -- Pipedrive --------------------------------------------------------------------------------------------


@pytest.fixture
def pipedrive(crm_api: FakeCrmApi) -> FakePipedrive:
    return FakePipedrive(crm_api)


@pytest.fixture
def pd_writer(crm_api: FakeCrmApi) -> PipedriveWriter:
    return PipedriveWriter(
        "pd-token",
        base_url=f"{crm_api.base_url}/api/v2",
        person_fields={
            "original_source": ORIGINAL_KEY,
            "sessions": SESSIONS_KEY,
            "first_seen_at": FIRST_SEEN_KEY,
        },
        deal_fields={"original_source": ORIGINAL_KEY},
        timeout=2,
    )


def test_pipedrive_finds_the_person_by_email_and_fills_the_mapped_custom_fields(
    pipedrive, pd_writer, crm_api
):
    pipedrive.add_person(42, ADA)
    payload = pd_writer.contact_payload(FIELDS_OF_ADA)

    assert pd_writer.write_contact(ADA, payload, synced_at="x") == "42"

    assert pipedrive.persons["42"]["custom_fields"] == {
        ORIGINAL_KEY: "Paid Social / linkedin / cpc / spring-launch",
        SESSIONS_KEY: 1,
        FIRST_SEEN_KEY: "2026-11-18",
    }
    search, patch = crm_api.seen
    assert search.headers["x-api-token"] == "pd-token" and search.query["term"] == [ADA]
    assert (patch.method, patch.path) == ("PATCH", "/api/v2/persons/42")


def test_pipedrive_uses_the_remembered_person_id_and_searches_again_when_it_is_gone(
    pipedrive, pd_writer, crm_api
):
    pipedrive.add_person(43, ADA)
    payload = pd_writer.contact_payload(FIELDS_OF_ADA)

    assert pd_writer.write_contact(ADA, payload, synced_at="x", record_id="43") == "43"
    assert [s.path for s in crm_api.seen] == ["/api/v2/persons/43"]  # no search
    assert pd_writer.write_contact(ADA, payload, synced_at="x", record_id="7") == "43"  # 7 was merged away
    assert [s.path for s in crm_api.seen][1:] == [
        "/api/v2/persons/7",
        "/api/v2/persons/search",
        "/api/v2/persons/43",
    ]


def test_pipedrive_without_the_person_reports_it_missing(pipedrive, pd_writer):
    assert pd_writer.write_contact(ADA, pd_writer.contact_payload(FIELDS_OF_ADA), synced_at="x") is None


def test_a_spent_pipedrive_token_budget_waits_until_the_reset(pipedrive, pd_writer):
    pipedrive.add_person(42, ADA)
    pipedrive.failures.append(PIPEDRIVE_TOKEN_BUDGET_SPENT)
    with pytest.raises(CrmApiRetryableError) as raised:
        pd_writer.write_contact(ADA, pd_writer.contact_payload(FIELDS_OF_ADA), synced_at="x")
    assert (raised.value.status, raised.value.retry_after) == (429, 3600.0)


def test_pipedrive_is_not_called_while_its_answers_say_the_budget_is_spent(crm_api, pd_writer, monkeypatch):
    pipedrive = FakePipedrive(crm_api, budget=2, window_seconds=2)
    pipedrive.add_person(42, ADA)
    pipedrive.add_person(43, GRACE)
    payload = pd_writer.contact_payload(FIELDS_OF_ADA)

    # Given the search and the update used the window's 2 calls (the update's answer says 0 left)
    assert pd_writer.write_contact(ADA, payload, synced_at="x") == "42"
    assert crm_api.seen[-1].method == "PATCH"

    # When the next person is written: a 429 of the writer's own, until the window resets
    with pytest.raises(CrmApiRetryableError) as raised:
        pd_writer.write_contact(GRACE, payload, synced_at="x")
    assert raised.value.status == 429 and 0 < (raised.value.retry_after or 0) <= 2
    assert len(crm_api.seen) == 2  # nothing sent: Pipedrive never had to answer 429

    # Then, after the reset, Pipedrive is called again
    pipedrive.reset_window()
    later = clock.now_ms() + 2_001
    monkeypatch.setattr(clock, "now_ms", lambda: later)
    assert pd_writer.write_contact(GRACE, payload, synced_at="x") == "43"


def test_pipedrive_deals_get_their_mapped_fields(pipedrive, pd_writer):
    pipedrive.deals["9"] = {"id": 9, "title": "Acme"}
    assert pd_writer.write_deal("9", pd_writer.deal_payload(FIELDS_OF_ADA), synced_at="x") is True
    assert pipedrive.deals["9"]["custom_fields"][ORIGINAL_KEY].startswith("Paid Social")
    assert pd_writer.write_deal("10", pd_writer.deal_payload(FIELDS_OF_ADA), synced_at="x") is False


def test_a_pipedrive_webhook_for_our_own_custom_field_change_is_ignored():
    config = PipedriveConfig.model_validate(
        {
            "username": "closedloop",
            "password": "pipedrive-password",
            "writeback": {"person_fields": {}, "deal_fields": {"original_source": ORIGINAL_KEY}},
        }
    )
    import base64
    import json

    def delivery(previous: dict) -> WebhookRequest:
        body = {
            "meta": {
                "action": "change",
                "entity": "deal",
                "entity_id": "9",
                "id": "m-1",
                "timestamp": "2026-11-23T10:00:00Z",
            },
            "data": {"id": 9, "status": "open", "stage_id": 2, "update_time": "2026-11-23T10:00:00Z"},
            "previous": previous,
        }
        auth = base64.b64encode(b"closedloop:pipedrive-password").decode()
        return WebhookRequest(
            url="https://api.acme.test/webhooks/pipedrive",
            headers={"Authorization": f"Basic {auth}"},
            body=json.dumps(body).encode(),
        )

    ours = {
        "custom_fields": {ORIGINAL_KEY: {"type": "varchar", "value": None}},
        "update_time": "2026-11-23T09:00:00Z",
    }
    assert parse_pipedrive(delivery(ours), config) == []
    # A change of the stage (or of anyone else's field) is still a deal event
    [event] = parse_pipedrive(delivery({"stage_id": 1}), config)
    assert event.deal_id == "9"


# -- Salesforce --------------------------------------------------------------------------------------------


@pytest.fixture
def salesforce(crm_api: FakeCrmApi) -> FakeSalesforce:
    return FakeSalesforce(crm_api)


@pytest.fixture
def sf_writer(crm_api: FakeCrmApi) -> SalesforceWriter:
    return SalesforceWriter(
        instance_url=crm_api.base_url,
        client_id="3MVG9-consumer-key",
        client_secret="sf-secret",
        fields={"original_source": "Closedloop_Original_Source__c", "sessions": "Closedloop_Sessions__c"},
        opportunity_fields={"original_channel": "Closedloop_Original_Channel__c"},
        timeout=2,
    )


def test_salesforce_writes_the_contact_with_that_email(salesforce, sf_writer, crm_api):
    salesforce.records["Contact"]["003xx000004TmiQ"] = {"Email": ADA}

    found = sf_writer.write_contact(ADA, sf_writer.contact_payload(FIELDS_OF_ADA), synced_at="x")

    assert found == "Contact/003xx000004TmiQ"
    assert salesforce.records["Contact"]["003xx000004TmiQ"] == {
        "Email": ADA,
        "Closedloop_Original_Source__c": "Paid Social / linkedin / cpc / spring-launch",
        "Closedloop_Sessions__c": 1,
    }
    token, query, patch = crm_api.seen
    assert token.body["grant_type"] == "client_credentials"
    assert query.query["q"] == [f"SELECT Id FROM Contact WHERE Email = '{ADA}' ORDER BY CreatedDate LIMIT 1"]
    assert patch.headers["authorization"] == "Bearer 00Dxx!token-1"


def test_salesforce_falls_back_to_an_unconverted_lead(salesforce, sf_writer):
    salesforce.records["Lead"]["00Qxx1"] = {"Email": ADA, "IsConverted": True}
    salesforce.records["Lead"]["00Qxx2"] = {"Email": ADA}
    assert (
        sf_writer.write_contact(ADA, sf_writer.contact_payload(FIELDS_OF_ADA), synced_at="x") == "Lead/00Qxx2"
    )
    assert sf_writer.write_contact("nobody@example.com", {}, synced_at="x") is None


def test_an_expired_salesforce_token_is_renewed_once(salesforce, sf_writer):
    salesforce.records["Contact"]["003A"] = {"Email": ADA}
    payload = sf_writer.contact_payload(FIELDS_OF_ADA)
    sf_writer.write_contact(ADA, payload, synced_at="x")
    salesforce.expired.add("00Dxx!token-1")

    assert sf_writer.write_contact(ADA, payload, synced_at="x", record_id="Contact/003A") == "Contact/003A"
    assert salesforce.tokens_issued == 2


def test_wrong_salesforce_credentials_are_not_retried_as_a_rate_limit(salesforce, crm_api):
    writer = SalesforceWriter(
        instance_url=crm_api.base_url, client_id="k", client_secret="wrong", fields={"lead_id": "X__c"}
    )
    with pytest.raises(CrmApiError) as raised:
        writer.write_contact(ADA, {}, synced_at="x")
    assert raised.value.status == 400 and not isinstance(raised.value, CrmApiRetryableError)


def test_salesforce_opportunities_get_their_mapped_fields(salesforce, sf_writer):
    salesforce.records["Opportunity"]["006A"] = {"StageName": "Prospecting"}
    assert sf_writer.write_deal("006A", sf_writer.deal_payload(FIELDS_OF_ADA), synced_at="x") is True
    assert salesforce.records["Opportunity"]["006A"]["Closedloop_Original_Channel__c"] == "Paid Social"
    assert salesforce.records["Opportunity"]["006A"]["StageName"] == "Prospecting"  # no stage change: no flow


def test_soql_strings_are_escaped():
    assert soql_string("o'brien\\x@example.com") == "'o\\'brien\\\\x@example.com'"


def test_salesforce_is_not_called_once_its_answers_say_the_allowance_is_used_up(crm_api, sf_writer):
    salesforce = FakeSalesforce(crm_api, api_usage=(14_998, 15_000))
    salesforce.records["Contact"]["003A"] = {"Email": ADA}
    payload = sf_writer.contact_payload(FIELDS_OF_ADA)

    # The query and the update use the allowance up (the update's answer says api-usage=15000/15000)
    assert sf_writer.write_contact(ADA, payload, synced_at="x") == "Contact/003A"

    with pytest.raises(CrmApiRetryableError) as raised:
        sf_writer.write_contact(ADA, payload, synced_at="x", record_id="Contact/003A")
    assert raised.value.status == 429 and 3590 < (raised.value.retry_after or 0) <= 3600
    assert [s.method for s in crm_api.seen] == ["POST", "GET", "PATCH"]  # nothing after


def test_a_salesforce_request_limit_refusal_is_a_rate_limit_and_other_refusals_are_not(
    salesforce, sf_writer, crm_api
):
    salesforce.records["Contact"]["003A"] = {"Email": ADA}
    salesforce.failures.append(
        Reply(403, [{"message": "insufficient access rights", "errorCode": "INSUFFICIENT_ACCESS"}])
    )
    with pytest.raises(CrmApiError) as refused:
        sf_writer.write_contact(ADA, {}, synced_at="x")
    assert refused.value.status == 403 and not isinstance(refused.value, CrmApiRetryableError)

    salesforce.failures.append(SALESFORCE_REQUEST_LIMIT_EXCEEDED)
    with pytest.raises(CrmApiRetryableError) as limited:
        sf_writer.write_contact(ADA, {}, synced_at="x")
    assert limited.value.status == 429 and 3590 < (limited.value.retry_after or 0) <= 3600


def test_a_server_error_is_retryable(salesforce, sf_writer, crm_api):
    crm_api.route("GET", "/services/data/v62.0/query", Reply(503, [{"errorCode": "SERVER_UNAVAILABLE"}]))
    with pytest.raises(CrmApiRetryableError):
        sf_writer.write_contact(ADA, {}, synced_at="x")


# -- configuration --------------------------------------------------------------------------------------


def test_only_the_crms_with_write_back_enabled_get_a_writer():
    secrets = CrmSecrets.model_validate(
        {
            "hubspot": {"client_secret": "s", "private_app_token": "pat", "writeback": {}},
            "pipedrive": {
                "username": "u",
                "password": "password1",
                "api_token": "t",
                "company_domain": "acme",
                "writeback": {"enabled": False, "person_fields": {"lead_id": ORIGINAL_KEY}},
            },
            "salesforce": {"url_token": "x" * 16, "organization_id": "00D5e000000KQ2eEAG"},
        }
    )
    assert [str(w.crm) for w in configured_writers(secrets)] == ["hubspot"]


def test_a_mapping_to_an_unknown_closedloop_field_is_refused_at_load():
    with pytest.raises(ValueError, match="unknown Closedloop fields"):
        PipedriveConfig.model_validate(
            {
                "username": "u",
                "password": "password1",
                "writeback": {"person_fields": {"source": ORIGINAL_KEY}},
            }
        )
