"""The source fields written back to the CRMs: computed from the journey, stable, complete."""

from __future__ import annotations

from closedloop.models.leads import Lead
from closedloop.models.visits import Touch
from closedloop.writeback.fields import FIELD_NAMES, FIELDS, fields_hash, source_fields

T0 = 1_795_000_000_000
HOUR = 3_600_000


def touch(
    touch_id: str, at: int, channel: str, source: str, medium: str, campaign: str | None = None
) -> Touch:
    return Touch(
        visitor_id="v1",
        touch_id=touch_id,
        occurred_at=at,
        channel=channel,
        source=source,
        medium=medium,
        campaign=campaign,
        landing_host="www.acme.test",
        landing_path="/guide" if touch_id == "a" else "/",
    )


LEAD = Lead(lead_id="ld_1", email="ada@example.com", created_at=T0 + 2 * HOUR, updated_at=T0 + 2 * HOUR)
JOURNEY = [
    touch("a", T0, "Paid Social", "linkedin", "cpc", "spring-launch"),
    touch("b", T0 + HOUR, "Direct", "(direct)", "(none)"),
    touch("c", T0 + 3 * HOUR, "Email", "newsletter", "email", "november"),
]


def test_the_three_sources_sessions_and_times():
    fields = source_fields(LEAD, JOURNEY, now=T0 + 4 * HOUR)
    assert fields is not None
    values = fields.values
    assert values["original_source"] == "Paid Social / linkedin / cpc / spring-launch"
    assert (values["original_channel"], values["original_utm_campaign"]) == ("Paid Social", "spring-launch")
    assert values["lead_creation_source"] == "Direct / (direct) / (none)"
    assert values["lead_creation_utm_campaign"] is None
    assert values["latest_source"] == "Email / newsletter / email / november"
    assert (values["sessions"], values["touches"]) == (3, 2)  # Direct is a session, not a marketing touch
    assert values["first_seen_at"] == "2026-11-18T11:06:40.000Z"
    assert values["lead_created_at"] == "2026-11-18T13:06:40.000Z"
    assert values["landing_page"] == "www.acme.test/guide"
    assert values["lead_id"] == "ld_1"
    assert set(values) == set(FIELD_NAMES)


def test_touches_after_now_are_not_the_latest_yet():
    fields = source_fields(LEAD, JOURNEY, now=T0 + 2 * HOUR)
    assert fields is not None
    assert fields.values["latest_source"] == "Direct / (direct) / (none)"
    assert fields.values["sessions"] == 2


def test_a_lead_without_touches_has_nothing_to_write():
    assert source_fields(LEAD, [], now=T0) is None


def test_a_lead_created_before_its_first_visit_has_no_lead_creation_source():
    offline = LEAD.model_copy(update={"created_at": T0 - HOUR})
    fields = source_fields(offline, JOURNEY, now=T0 + 4 * HOUR)
    assert fields is not None and fields.values["lead_creation_source"] is None


def test_the_digest_depends_on_the_values_only():
    one = source_fields(LEAD, JOURNEY, now=T0 + 4 * HOUR)
    two = source_fields(LEAD, list(JOURNEY), now=T0 + 5 * HOUR)
    assert one is not None and two is not None
    assert fields_hash(dict(one.values)) == fields_hash(dict(reversed(list(two.values.items()))))
    later = source_fields(
        LEAD, [*JOURNEY, touch("d", T0 + 5 * HOUR, "Organic Search", "google", "organic")], now=T0 + 6 * HOUR
    )
    assert later is not None and fields_hash(dict(later.values)) != fields_hash(dict(one.values))


def test_every_field_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "crm-writeback.md").read_text()
    for spec in FIELDS:
        assert f"`closedloop_{spec.name}`" in doc, spec.name
