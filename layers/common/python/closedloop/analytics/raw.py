"""The raw datasets: the table's changes as Parquet change logs under ``raw/`` (one Athena table each).

This is the single definition: the lake export writes with these schemas
(``closedloop.analytics.raw_export``), the CDK app declares their Glue tables
(``infra/constructs/lake_export.py``), the attribute job's SQL reads these names and types, and
docs/athena.md ("Raw datasets") is checked against them by a test.

Each row is one change of one item, in the stream's order. A dataset is a log, not a table of current
values: the current state of an item is its row with the greatest ``sequence`` (a snapshot's rows have
sequence ``"0" * 40``, so any change from the stream wins over them; among snapshot rows the later
``changed_at`` wins), and the item is gone when that row's ``change`` is ``remove``. Rows may repeat
(a retried batch): readers keep one row per :data:`RAW_KEYS` key and ``sequence``.

Layout: ``raw/<dataset>/dt=<yyyy-mm-dd>/<shard>-<first sequence>-<last sequence>.parquet``, ``dt``
being the day (UTC) the batch's first change reached the stream. No row holds an e-mail, a name, a
phone number, custom form fields, an IP address or an ad click id's value.
"""

from __future__ import annotations

import pyarrow as pa

from closedloop.analytics.datasets import Column, Dataset

__all__ = [
    "CHANGE_COLUMNS",
    "RAW_DATASETS",
    "RAW_KEYS",
    "RAW_PREFIX",
    "SEQUENCE_WIDTH",
    "SNAPSHOT_SEQUENCE",
    "raw_dataset",
]

RAW_PREFIX = "raw/"
SEQUENCE_WIDTH = 40  # DynamoDB Streams sequence numbers have at most 40 digits
SNAPSHOT_SEQUENCE = "0" * SEQUENCE_WIDTH  # the sequence of a row the table snapshot wrote

S, INT, F, B, T = pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.timestamp("ms", tz="UTC")
STRINGS = pa.list_(pa.string())

CHANGE_COLUMNS: tuple[Column, ...] = (
    Column("change", S, "insert, modify or remove: what happened to the item."),
    Column(
        "sequence",
        S,
        "The change's stream sequence number, left-padded with zeros to 40 characters (string order is "
        "stream order); all zeros for a row of the one-time table snapshot.",
    ),
    Column("changed_at", T, "When the change reached the stream (its ApproximateCreationDateTime)."),
    Column("expired", B, "True when the item was removed by its time to live (retention), not deleted."),
)


def _raw(name: str, description: str, columns: tuple[Column, ...]) -> Dataset:
    return Dataset(
        f"raw_{name}",
        description,
        "the day the batch's first change reached the stream (the snapshot's day for its rows)",
        (*CHANGE_COLUMNS, *columns),
    )


def _lead_source(prefix: str, what: str) -> tuple[Column, ...]:
    return (
        Column(f"{prefix}channel", S, f"GA4 default channel group of {what}."),
        Column(f"{prefix}source", S, f"Source of {what}."),
        Column(f"{prefix}medium", S, f"Medium of {what}."),
        Column(f"{prefix}campaign", S, f"Campaign of {what}, null when untagged."),
        Column(f"{prefix}touch_id", S, f"The touch that is {what}."),
        Column(f"{prefix}occurred_at", T, f"When {what} happened."),
    )


RAW_DATASETS: tuple[Dataset, ...] = (
    _raw(
        "touches",
        "Changes of touches (session starts) and of the markers of superseded ones.",
        (
            Column("visitor_id", S, "The tracker's visitor id (a device)."),
            Column("touch_id", S, "Id of the touch (the event id of the session's first event)."),
            Column("occurred_at", T, "When the session started (server-corrected time)."),
            Column("channel", S, "GA4 default channel group of the touch."),
            Column("source", S, "Source of the touch (utm_source, click-id platform or referrer)."),
            Column("medium", S, "Medium of the touch (utm_medium, cpc, organic, referral, (none))."),
            Column("campaign", S, "utm_campaign, null when untagged."),
            Column("term", S, "utm_term."),
            Column("content", S, "utm_content."),
            Column("utm_id", S, "utm_id."),
            Column(
                "click_id_type", S, "Ad click id parameter present (gclid, fbclid, ...), never its value."
            ),
            Column("referrer_host", S, "Host of the external referrer, if any."),
            Column("landing_host", S, "Host of the landing page."),
            Column("landing_path", S, "Path of the landing page (no query string)."),
            Column(
                "superseded_by",
                S,
                "Set on the marker that replaced a direct touch a late landing page superseded: the new "
                "touch's id. The marker is no longer a touch (its source columns are null).",
            ),
        ),
    ),
    _raw(
        "visitor_links",
        "Changes of the links of visitors (devices) to leads, each with the interval of touches it covers.",
        (
            Column("visitor_id", S, "The visitor (device)."),
            Column("lead_id", S, "The lead the visitor's touches belong to within the interval."),
            Column("linked_from", T, "Start of the interval (inclusive); 1970-01-01 for the first lead."),
            Column("linked_until", T, "End of the interval (exclusive); null while the link is open."),
            Column("linked_at", T, "When the link was made."),
        ),
    ),
    _raw(
        "leads",
        "Changes of lead profiles (no e-mail, name, phone or custom field is exported).",
        (
            Column("lead_id", S, "Stable pseudonymous id of the lead (derived from the normalised email)."),
            Column("created_at", T, "First form submission (or first CRM mention for an offline lead)."),
            Column("updated_at", T, "Last change of the lead."),
            Column("first_seen_at", T, "First touch of the lead's journey, null for an offline lead."),
            Column("submissions", INT, "Form submissions so far."),
            Column("company", S, "Company, as given in a form."),
            Column("job_title", S, "Job title, as given in a form."),
            *_lead_source("original_", "the first touch (original source)"),
            *_lead_source("lead_creation_", "the last touch before the lead was created"),
            *_lead_source("latest_", "the latest touch"),
        ),
    ),
    _raw(
        "deals",
        "Changes of CRM deal states (no contact e-mail is exported).",
        (
            Column("crm", S, "hubspot, salesforce, pipedrive or generic."),
            Column("deal_id", S, "The CRM's id of the deal."),
            Column("lifecycle", S, "open, won, lost, reopened or deleted."),
            Column("version", INT, "The version (CRM ordering key) of the last event applied."),
            Column("revision", INT, "The store's optimistic lock: +1 at every write of the state."),
            Column("pipeline", S, "The CRM's pipeline."),
            Column("stage", S, "The CRM's stage."),
            Column("amount", F, "Amount in the deal's currency."),
            Column("currency", S, "ISO 4217 currency of amount."),
            Column("close_date", S, "Expected or actual close date, yyyy-mm-dd."),
            Column("opportunity_created_at", T, "When the deal became an opportunity."),
            Column("won_at", T, "When it was (last) won."),
            Column("lost_at", T, "When it was (last) lost."),
            Column("reopened_at", T, "When it last went back to open."),
            Column("deleted_at", T, "When it was deleted in the CRM."),
            Column("updated_at", T, "The CRM time of the last event applied."),
            Column("changed_at_server", T, "Server time of this write of the state."),
            Column("lead_ids", STRINGS, "Leads of the deal's contacts, primary contact first."),
        ),
    ),
    _raw(
        "deal_events",
        "Every deal event received from a CRM, once per event id (its history; no contact e-mail).",
        (
            Column("crm", S, "CRM of the deal."),
            Column("deal_id", S, "The CRM's id of the deal."),
            Column("event_id", S, "The CRM's id of the event (delivery)."),
            Column("lifecycle", S, "The lifecycle the event reports: open, won, lost, reopened, deleted."),
            Column("pipeline", S, "The pipeline the event reports, null when it did not say."),
            Column("stage", S, "The stage the event reports, null when it did not say."),
            Column("amount", F, "The amount the event reports, null when it did not say."),
            Column("currency", S, "ISO 4217 currency of amount."),
            Column("close_date", S, "The close date the event reports, yyyy-mm-dd."),
            Column("created_at", T, "When the CRM created the deal, if the event said."),
            Column("occurred_at", T, "When the change happened (CRM time)."),
            Column("version", INT, "The event's ordering key (the CRM's modification time or sequence)."),
            Column("received_at", T, "When the delivery reached Closedloop (server time)."),
        ),
    ),
)

# The columns that name one item: readers keep the row with the greatest sequence per key.
RAW_KEYS: dict[str, tuple[str, ...]] = {
    "raw_touches": ("visitor_id", "touch_id"),
    "raw_visitor_links": ("visitor_id", "linked_from"),
    "raw_leads": ("lead_id",),
    "raw_deals": ("crm", "deal_id"),
    "raw_deal_events": ("crm", "deal_id", "event_id"),
}


def raw_dataset(name: str) -> Dataset:
    """The raw dataset called ``name`` (``raw_touches``, ...)."""
    for candidate in RAW_DATASETS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)
