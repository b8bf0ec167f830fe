"""The write-back service with in-memory fakes: compare, write, remember; one failing CRM; rate limits
that hold a CRM back for the following leads; back-off."""

from __future__ import annotations

import random
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from closedloop.crm import CrmApiError, CrmApiRetryableError
from closedloop.crm.models import CrmName, DealLifecycle
from closedloop.deals import DealLink, StoredDeal
from closedloop.models.leads import Lead, VisitorLink
from closedloop.models.visits import Touch
from closedloop.store.writeback import SyncState
from closedloop.writeback.fields import SourceFields
from closedloop.writeback.service import MAX_VISIBILITY_SECONDS, retry_delay, write_back_lead
from closedloop.writeback.throttle import CrmRateLimitedError, CrmThrottle

T0 = 1_795_000_000_000
LEAD = Lead(lead_id="ld_1", email="ada@example.com", created_at=T0, updated_at=T0)


class MemoryStore:
    def __init__(self) -> None:
        self.leads = {"ld_1": LEAD}
        self.links = [VisitorLink(visitor_id="v1", lead_id="ld_1", linked_from=0, linked_at=T0)]
        self.touches = [
            Touch(
                visitor_id="v1",
                touch_id="a",
                occurred_at=T0 - 1,
                channel="Paid Search",
                source="google",
                medium="cpc",
                landing_host="www.acme.test",
                landing_path="/",
            )
        ]
        self.deals: dict[tuple[str, str], StoredDeal] = {}
        self.sync: dict[tuple[str, str], SyncState] = {}

    def get_lead(self, lead_id: str) -> Lead | None:
        return self.leads.get(lead_id)

    def links_of_lead(self, lead_id: str) -> list[VisitorLink]:
        return [link for link in self.links if link.lead_id == lead_id]

    def links_of_visitor(self, visitor_id: str) -> list[VisitorLink]:
        return [link for link in self.links if link.visitor_id == visitor_id]

    def touches_of_visitor(self, visitor_id: str) -> list[Touch]:
        return [t for t in self.touches if t.visitor_id == visitor_id]

    def deals_of_lead(self, lead_id: str) -> list[DealLink]:
        return [
            DealLink(lead_id=lead_id, crm=crm, deal_id=deal_id, linked_at=T0)
            for (crm, deal_id), deal in self.deals.items()
            if lead_id in deal.lead_ids
        ]

    def get_deal(self, crm: Any, deal_id: str) -> StoredDeal | None:
        return self.deals.get((str(crm), deal_id))

    def get_sync_state(self, lead_id: str, target: str) -> SyncState | None:
        return self.sync.get((lead_id, target))

    def put_sync_state(self, state: SyncState) -> None:
        self.sync[(state.lead_id, state.target)] = state


class MemoryWriter:
    writes_contacts = True
    writes_deals = True

    def __init__(self, crm: CrmName, fail: Exception | None = None) -> None:
        self.crm = crm
        self.fail = fail
        self.calls: list[tuple[str, str]] = []
        self.refused = 0  # calls that raised ``fail``

    def contact_payload(self, fields: SourceFields) -> Mapping[str, object]:
        return dict(fields.values)

    def deal_payload(self, fields: SourceFields) -> Mapping[str, object]:
        return {"original_source": fields.get("original_source")}

    def write_contact(
        self, email: str, payload: Any, *, synced_at: str, record_id: str | None = None
    ) -> str | None:
        if self.fail:
            self.refused += 1
            raise self.fail
        self.calls.append(("contact", email))
        return "c-1"

    def write_deal(self, deal_id: str, payload: Any, *, synced_at: str) -> bool:
        self.calls.append(("deal", deal_id))
        return True


def deal(crm: CrmName, deal_id: str, lead_ids: tuple[str, ...]) -> StoredDeal:
    return StoredDeal(
        crm=crm,
        deal_id=deal_id,
        lifecycle=DealLifecycle.OPEN,
        version=1,
        updated_at=T0,
        last_event_id="e",
        amount=Decimal(1),
        currency="USD",
        lead_ids=lead_ids,
    )


def test_each_crm_writes_the_contact_and_the_deals_the_lead_leads_in_that_crm():
    store = MemoryStore()
    store.deals[("hubspot", "1")] = deal(CrmName.HUBSPOT, "1", ("ld_1",))
    store.deals[("hubspot", "2")] = deal(CrmName.HUBSPOT, "2", ("ld_0", "ld_1"))  # another first contact
    store.deals[("pipedrive", "3")] = deal(CrmName.PIPEDRIVE, "3", ("ld_1",))
    hubspot, pipedrive = MemoryWriter(CrmName.HUBSPOT), MemoryWriter(CrmName.PIPEDRIVE)

    report = write_back_lead("ld_1", store=store, writers=[hubspot, pipedrive], now=T0)

    assert hubspot.calls == [("contact", "ada@example.com"), ("deal", "1")]
    assert pipedrive.calls == [("contact", "ada@example.com"), ("deal", "3")]
    assert sorted(report.written) == [
        "hubspot#contact",
        "hubspot#deal#1",
        "pipedrive#contact",
        "pipedrive#deal#3",
    ]

    again = write_back_lead("ld_1", store=store, writers=[hubspot, pipedrive], now=T0 + 1000)
    assert again.written == [] and len(again.unchanged) == 4
    assert len(hubspot.calls) == 2


def test_a_failing_crm_does_not_stop_the_others_and_counts_even_beside_a_rate_limit():
    store = MemoryStore()
    down = MemoryWriter(CrmName.SALESFORCE, fail=CrmApiError("refused", status=403))
    limited = MemoryWriter(CrmName.PIPEDRIVE, fail=CrmApiRetryableError("429", status=429, retry_after=60))
    fine = MemoryWriter(CrmName.HUBSPOT)

    with pytest.raises(CrmApiError) as raised:
        write_back_lead("ld_1", store=store, writers=[down, limited, fine], now=T0)

    # A real failure is what the message is retried for (and counted), not the rate limit
    assert raised.value.status == 403 and not isinstance(raised.value, CrmRateLimitedError)
    assert fine.calls == [("contact", "ada@example.com")]
    assert ("ld_1", "hubspot#contact") in store.sync


def test_rate_limits_alone_ask_for_the_soonest_wait_after_writing_the_other_crms():
    store = MemoryStore()
    hubspot = MemoryWriter(CrmName.HUBSPOT, fail=CrmApiRetryableError("429", status=429, retry_after=7))
    pipedrive = MemoryWriter(CrmName.PIPEDRIVE, fail=CrmApiRetryableError("429", status=429, retry_after=60))
    salesforce = MemoryWriter(CrmName.SALESFORCE)

    with pytest.raises(CrmRateLimitedError) as raised:
        write_back_lead("ld_1", store=store, writers=[hubspot, pipedrive, salesforce], now=T0)

    assert raised.value.waits == {"hubspot": 7, "pipedrive": 60}
    assert (raised.value.status, raised.value.retry_after) == (429, 7)
    assert salesforce.calls == [("contact", "ada@example.com")]


def test_a_rate_limited_crm_is_not_called_for_the_next_leads_until_its_wait_has_passed():
    store = MemoryStore()
    store.leads["ld_2"] = LEAD.model_copy(update={"lead_id": "ld_2", "email": "grace@example.com"})
    store.links.append(VisitorLink(visitor_id="v1", lead_id="ld_2", linked_from=0, linked_at=T0))
    throttle = CrmThrottle()
    hubspot = MemoryWriter(CrmName.HUBSPOT, fail=CrmApiRetryableError("429", status=429, retry_after=10))
    salesforce = MemoryWriter(CrmName.SALESFORCE)

    # Given HubSpot said "wait 10 s" to the first lead of a batch
    with pytest.raises(CrmRateLimitedError):
        write_back_lead("ld_1", store=store, writers=[hubspot, salesforce], now=T0, throttle=throttle)
    # When the next lead comes 2 s later
    with pytest.raises(CrmRateLimitedError) as raised:
        write_back_lead("ld_2", store=store, writers=[hubspot, salesforce], now=T0 + 2000, throttle=throttle)

    # Then HubSpot is not asked again, and the lead waits for what is left of the 10 s
    assert hubspot.refused == 1
    assert raised.value.waits == {"hubspot": 8.0}
    assert salesforce.calls == [("contact", "ada@example.com"), ("contact", "grace@example.com")]

    # Once the wait has passed, HubSpot is called again
    hubspot.fail = None
    report = write_back_lead("ld_2", store=store, writers=[hubspot], now=T0 + 10_000, throttle=throttle)
    assert report.written == ["hubspot#contact"]


def test_a_lead_with_nothing_new_for_a_held_back_crm_is_done_not_requeued():
    store = MemoryStore()
    throttle = CrmThrottle()
    hubspot = MemoryWriter(CrmName.HUBSPOT)
    write_back_lead("ld_1", store=store, writers=[hubspot], now=T0, throttle=throttle)
    throttle.hold("hubspot", 60, now=T0)

    # The same change delivered again while HubSpot is held back: unchanged, so nothing to wait for
    report = write_back_lead("ld_1", store=store, writers=[hubspot], now=T0 + 1000, throttle=throttle)

    assert report.unchanged == ["hubspot#contact"]
    assert hubspot.calls == [("contact", "ada@example.com")]


def test_a_lead_without_touches_or_an_erased_lead_writes_nothing():
    store = MemoryStore()
    store.touches = []
    writer = MemoryWriter(CrmName.HUBSPOT)
    assert write_back_lead("ld_1", store=store, writers=[writer], now=T0).nothing_to_write
    assert write_back_lead("ld_gone", store=store, writers=[writer], now=T0).nothing_to_write
    assert writer.calls == []


@pytest.mark.parametrize(
    ("error", "receives", "low", "high"),
    [
        (CrmApiRetryableError("429", status=429, retry_after=7.2), 1, 9, 9),
        (
            CrmApiRetryableError("429", status=429, retry_after=86_400),
            3,
            MAX_VISIBILITY_SECONDS,
            MAX_VISIBILITY_SECONDS,
        ),
        (CrmApiRetryableError("503", status=503), 1, 15, 30),
        (CrmApiRetryableError("503", status=503), 4, 120, 240),
        (CrmApiError("403", status=403), 10, 450, 900),
        (None, 2, 30, 60),
    ],
)
def test_retry_delays(error, receives, low, high):
    for seed in range(20):
        delay = retry_delay(error, receives, base_seconds=30, max_seconds=900, rng=random.Random(seed))
        assert low <= delay <= high
