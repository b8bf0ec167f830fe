"""The Parquet datasets on S3, one Athena table each: columns, types and what each column means.

This is the single definition: the attribute job writes with these pyarrow schemas, the CDK app
creates the Glue tables from them (with partition projection on ``dt``), and docs/athena.md is checked
against them by a test.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

__all__ = ["DATASETS", "PARTITION_KEY", "Column", "Dataset", "dataset"]

PARTITION_KEY = "dt"  # yyyy-mm-dd, UTC; Hive-style folders: <dataset>/dt=2026-11-23/part-0.parquet


@dataclass(frozen=True)
class Column:
    name: str
    arrow: pa.DataType
    description: str

    @property
    def glue_type(self) -> str:
        return _GLUE_TYPES[self.arrow]


_GLUE_TYPES: dict[pa.DataType, str] = {
    pa.string(): "string",
    pa.int64(): "bigint",
    pa.float64(): "double",
    pa.bool_(): "boolean",
    pa.timestamp("ms", tz="UTC"): "timestamp",
    pa.list_(pa.string()): "array<string>",
}


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    partitioned_by: str  # what ``dt`` means for this dataset
    columns: tuple[Column, ...]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow) for c in self.columns])


S, INT, F, B, T = pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.timestamp("ms", tz="UTC")


def _source_columns(prefix: str, what: str) -> tuple[Column, ...]:
    return (
        Column(f"{prefix}channel", S, f"GA4 default channel group of {what}."),
        Column(f"{prefix}source", S, f"Source of {what} (utm_source, click-id platform or referrer)."),
        Column(f"{prefix}medium", S, f"Medium of {what} (utm_medium, cpc, organic, referral, (none))."),
        Column(f"{prefix}campaign", S, f"Campaign of {what} (utm_campaign), null when untagged."),
    )


DATASETS: tuple[Dataset, ...] = (
    Dataset(
        "touches",
        "Every session start (a touch) with its traffic source.",
        "the day of the touch",
        (
            Column("touch_id", S, "Id of the touch (the event id of the session's first event)."),
            Column("visitor_id", S, "The tracker's visitor id (a device)."),
            Column(
                "lead_id", S, "The lead this touch belongs to (by the visitor's links), null if anonymous."
            ),
            Column("occurred_at", T, "When the session started (server-corrected time)."),
            *_source_columns("", "the touch"),
            Column("term", S, "utm_term."),
            Column("content", S, "utm_content."),
            Column(
                "click_id_type", S, "Ad click id parameter present (gclid, fbclid, msclkid, ...), if any."
            ),
            Column("referrer_host", S, "Host of the external referrer, if any."),
            Column("landing_path", S, "Path of the landing page (no query string)."),
        ),
    ),
    Dataset(
        "leads",
        "Every lead (a person known by email; the email itself is not exported).",
        "the day the lead was created",
        (
            Column("lead_id", S, "Stable pseudonymous id of the lead (derived from the normalised email)."),
            Column("created_at", T, "First form submission (or first CRM mention for an offline lead)."),
            Column("updated_at", T, "Last change of the lead."),
            Column("first_seen_at", T, "First touch of the lead's journey, null for an offline lead."),
            Column("submissions", INT, "Form submissions so far."),
            Column("visitors", INT, "Devices (visitor ids) linked to the lead."),
            Column("company", S, "Company, as given in a form."),
            Column("job_title", S, "Job title, as given in a form."),
            *_source_columns("original_", "the first touch (original source)"),
            *_source_columns("lead_creation_", "the last touch before the lead was created"),
            *_source_columns("latest_", "the latest touch"),
            Column("has_web_touch", B, "False for an offline lead (no tracked visit)."),
        ),
    ),
    Dataset(
        "deals",
        "Every deal (opportunity) reported by a CRM, in its current state.",
        "the day the opportunity was created",
        (
            Column("crm", S, "hubspot, salesforce, pipedrive or generic."),
            Column("deal_id", S, "The CRM's id of the deal."),
            Column("lead_id", S, "The deal's primary lead (first contact), null if no contact email."),
            Column("lead_count", INT, "Leads (contacts) of the deal."),
            Column("lifecycle", S, "open, won, lost, reopened or deleted."),
            Column("pipeline", S, "The CRM's pipeline."),
            Column("stage", S, "The CRM's stage."),
            Column("amount", F, "Amount in the deal's currency."),
            Column("currency", S, "ISO 4217 currency of amount."),
            Column("amount_base", F, "Amount converted to the base currency."),
            Column("opportunity_created_at", T, "When the deal became an opportunity."),
            Column("won_at", T, "When it was (last) won."),
            Column("lost_at", T, "When it was (last) lost."),
            Column("updated_at", T, "The CRM time of the last change applied."),
            Column(
                "touches",
                INT,
                "Web touches of the deal's journey: lookback_days before its lead was created to conversion.",
            ),
        ),
    ),
    Dataset(
        "attribution_credits",
        "One row per deal x touch x model: the share of the deal credited to the touch.",
        "the day of the conversion (won day for won deals, opportunity creation for the others)",
        (
            Column("crm", S, "CRM of the deal."),
            Column("deal_id", S, "The deal."),
            Column("lead_id", S, "The deal's primary lead."),
            Column("model", S, "Attribution model (first_touch, last_touch, ..., markov, shapley)."),
            Column("lifecycle", S, "The deal's lifecycle: won deals credit revenue, open ones pipeline."),
            Column("touch_id", S, "The credited touch; null for the '(no web touch)' row."),
            Column("touch_at", T, "When the credited touch happened."),
            *_source_columns("", "the credited touch ('(no web touch)' when the journey has none)"),
            Column("credit", F, "Share of the deal credited to this touch; sums to 1 per deal and model."),
            Column("revenue_credit", F, "credit x amount_base for won deals, else 0."),
            Column("pipeline_credit", F, "credit x amount_base for open deals, else 0."),
            Column("converted_at", T, "Won time, or opportunity creation time."),
        ),
    ),
    Dataset(
        "channel_daily",
        "Day x channel x source x medium x campaign x model: the funnel, credit and cost.",
        "the day",
        (
            Column("model", S, "Attribution model of the credited columns."),
            *_source_columns("", "the row"),
            Column("visits", INT, "Touches (sessions started) from this source on this day."),
            Column(
                "leads",
                F,
                "Leads created this day whose lead-creation touch has this source (same for every model).",
            ),
            Column(
                "opportunities",
                F,
                "Deals credited to this source by the model: on the day won, else the day created.",
            ),
            Column("deals_won", F, "Deals won this day, credited to this source."),
            Column("pipeline_credited", F, "Amount (base currency) of open opportunities credited."),
            Column("revenue_credited", F, "Amount (base currency) of deals won this day credited."),
            Column("cost", F, "Ad spend (base currency) from spend/ CSVs, 0 when none was given."),
            Column("roas", F, "revenue_credited / cost, null without cost."),
            Column("cost_per_lead", F, "cost / leads, null without leads or cost."),
            Column("customer_acquisition_cost", F, "cost / deals_won, null without deals or cost."),
        ),
    ),
    Dataset(
        "pipeline",
        "Open opportunities by stage, credited to sources (a snapshot per run day).",
        "the day of the snapshot",
        (
            Column("crm", S, "CRM of the deal."),
            Column("deal_id", S, "The open deal."),
            Column("pipeline", S, "The CRM's pipeline."),
            Column("stage", S, "The CRM's stage."),
            Column("amount_base", F, "Amount in the base currency."),
            Column("model", S, "Attribution model."),
            *_source_columns("", "the credited touch"),
            Column("credit", F, "Share of the deal credited."),
            Column("pipeline_credit", F, "credit x amount_base."),
        ),
    ),
)


def dataset(name: str) -> Dataset:
    for candidate in DATASETS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)
