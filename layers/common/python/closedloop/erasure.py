"""Erasing a person: their lead, devices, visits and form posts, their place on deals, and their rows in
the Parquet datasets (GDPR art. 17, CCPA deletion).

Who a person is: their e-mail, normalised as the identify function does; their lead id is derived from
it. What is erased (:func:`erase_person`):

- the lead's partition: profile, submissions, visitor links, deal links (deleted, no tombstone: a
  tombstone keyed by the lead id would still say "this e-mail was here");
- each linked visitor's page views, touches, state and links. A visitor (a device) that also belongs to
  another lead (a shared computer) keeps what is that other person's: only the events and touches
  inside the erased lead's link intervals go;
- on each of the lead's deals: the e-mail from ``contact_emails`` of the state and of every event of
  the history, in every spelling a CRM may have stored (upper case, the domain in IDNA's ASCII form
  ``xn--...`` or in Unicode, composed or decomposed): a stored address is the person's when it
  normalises to the same address (:func:`same_person`); and the lead from ``lead_ids``. The deal
  itself is the company's record and stays; it is re-indexed as changed now, so the next attribute
  run credits it again without this person. A deal event that arrived after a newer one links its
  contacts to the deal all the same (:mod:`closedloop.deals`), so it is found too;
- in the lake: the lead's row of ``leads``, the erased touches' rows of ``touches``, and every row of
  the affected deals in ``deals``, ``attribution_credits`` and ``pipeline`` (their credits were
  computed from this person's journey; the next attribute run writes them again without it), and
  the lead's and its deals' paths among the attribute job's training journeys (``state/``).

Order makes a failed erasure safe to run again: the lake first (while the table still says where the
person's rows are), then the deals, the visitors, and the lead's own partition last (it holds the
plan). Every step is idempotent.

Not covered (see docs/security.md): ``channel_daily`` aggregates (counts, no identifiers), the
table's stream (its records expire after 24 hours), events already published to EventBridge, and the
CRM itself (erase the contact there too, or its next deal event creates an offline lead again).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from closedloop.clock import day_of
from closedloop.errors import InvalidInputError
from closedloop.identity import lead_id_for, normalise_email
from closedloop.store.erasure import Key

if TYPE_CHECKING:
    import pyarrow as pa

    from closedloop.lake import Lake

__all__ = ["ErasureReport", "ErasureStore", "erase_person", "same_person"]

# Datasets whose rows are per deal (the job rewrites them when a deal changes).
DEAL_DATASETS = ("deals", "attribution_credits")


class ErasureStore(Protocol):
    """What an erasure needs from the store (:class:`~closedloop.store.DynamoStore`)."""

    def partition_items(self, pk: str) -> list[dict[str, Any]]: ...
    def delete_items(self, keys: Iterable[Key]) -> int: ...
    def forget_deal_contact(
        self,
        pk: str,
        *,
        lead_id: str,
        is_contact: Callable[[str], bool],
        changed_at: int,
        crm: str,
        deal_id: str,
    ) -> bool: ...


def same_person(normalised: str) -> Callable[[str], bool]:
    """Whether a stored address is ``normalised`` (a form's normalisation), however it is spelled.

    CRMs store addresses lower-cased only: ``ada@xn--bcher-kva.de`` and a decomposed ``ada@bu\u0308cher.de``
    are ``ada@bücher.de`` once normalised as a form's (IDNA decoded, NFC). An address that does not
    validate is compared lower-cased and trimmed.
    """

    @cache
    def matches(stored: str) -> bool:
        try:
            return normalise_email(stored) == normalised
        except InvalidInputError:
            return stored.strip().lower() == normalised

    return matches


@dataclass
class ErasureReport:
    """What an erasure did: counts only (the report is logged; it names no person)."""

    found: bool = False
    items_deleted: int = 0
    visitors: int = 0
    touches: int = 0
    deals_updated: int = 0
    partitions_rewritten: int = 0
    rows_removed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Interval:
    start: int
    until: int | None

    def covers(self, at: int) -> bool:
        return self.start <= at and (self.until is None or at < self.until)


@dataclass
class _Plan:
    """Everything the table says about the person, read before anything is deleted."""

    lead_id: str
    lead_keys: list[Key] = field(default_factory=list)
    lead_days: set[str] = field(default_factory=set)
    visitor_keys: list[Key] = field(default_factory=list)
    visitors: set[str] = field(default_factory=set)
    whole_visitors: set[str] = field(default_factory=set)  # devices that were only this person's
    touches: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # visitor -> touch ids
    touch_days: set[str] = field(default_factory=set)
    deals: dict[str, tuple[str, str]] = field(default_factory=dict)  # "crm#deal" -> (crm, deal id)
    deal_days: set[str] = field(default_factory=set)


def _s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return str(value["S"]) if value and "S" in value else None


def _n(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name)
    return int(float(value["N"])) if value and "N" in value else None


def _key(item: dict[str, Any]) -> Key:
    return str(item["pk"]["S"]), str(item["sk"]["S"])


def _plan(store: ErasureStore, lead_id: str) -> _Plan:
    plan = _Plan(lead_id)
    intervals: dict[str, list[_Interval]] = defaultdict(list)
    for item in store.partition_items(f"L#{lead_id}"):
        plan.lead_keys.append(_key(item))
        sk = _key(item)[1]
        if sk == "PROFILE":
            for name in ("created_at", "updated_at"):
                if (at := _n(item, name)) is not None:
                    plan.lead_days.add(day_of(at))
        elif sk.startswith("V#") and (visitor := _s(item, "visitor_id")):
            intervals[visitor].append(_Interval(_n(item, "linked_from") or 0, _n(item, "linked_until")))
        elif sk.startswith("DEAL#"):
            crm, deal_id = _s(item, "crm") or "", _s(item, "deal_id") or ""
            plan.deals[f"{crm}#{deal_id}"] = (crm, deal_id)

    for visitor, ours in intervals.items():
        plan.visitors.add(visitor)
        items = store.partition_items(f"V#{visitor}")
        other_leads = {
            _s(i, "lead_id") for i in items if _key(i)[1].startswith("LINK#") and _s(i, "lead_id") != lead_id
        }
        if not other_leads:
            plan.whole_visitors.add(visitor)
        current = next((i for i in items if _key(i)[1].startswith("LINK#") and "linked_until" not in i), None)
        for item in items:
            sk = _key(item)[1]
            at = _n(item, "occurred_at")
            if visitor in plan.whole_visitors:
                mine = True
            elif sk.startswith(("E#", "T#")):
                mine = at is not None and any(interval.covers(at) for interval in ours)
            elif sk.startswith("LINK#"):
                mine = _s(item, "lead_id") == lead_id
            else:  # STATE: the running session belongs to whoever owns the device now
                mine = current is not None and _s(current, "lead_id") == lead_id
            if not mine:
                continue
            plan.visitor_keys.append(_key(item))
            if sk.startswith("T#") and at is not None:
                plan.touches[visitor].add(_s(item, "touch_id") or "")
                plan.touch_days.add(day_of(at))

    for crm, deal_id in plan.deals.values():
        for item in store.partition_items(f"D#{crm}#{deal_id}"):
            if _key(item)[1] == "STATE":
                for name in ("opportunity_created_at", "won_at", "lost_at", "updated_at", "created_at"):
                    if (at := _n(item, name)) is not None:
                        plan.deal_days.add(day_of(at))
    return plan


def _rewrite(
    lake: Lake,
    dataset: str,
    days: Iterable[str],
    keep: Callable[[dict[str, Any]], bool],
    report: ErasureReport,
) -> None:
    """Rewrite each existing partition of ``days`` without the rows ``keep`` refuses."""
    from closedloop.analytics.datasets import dataset as dataset_named

    schema = dataset_named(dataset).schema
    existing = set(lake.partitions(dataset))
    for dt in sorted(set(days) & existing):
        table: pa.Table = lake.read(dataset, dt, schema)
        rows = table.to_pylist()
        kept = [row for row in rows if keep(row)]
        if len(kept) == len(rows):
            continue
        import pyarrow as pa

        lake.write(dataset, dt, pa.Table.from_pylist(kept, schema=schema))
        report.partitions_rewritten += 1
        report.rows_removed += len(rows) - len(kept)


def _erase_from_lake(lake: Lake, plan: _Plan, report: ErasureReport) -> None:
    lead_id = plan.lead_id

    def touch_kept(row: dict[str, Any]) -> bool:
        visitor = row.get("visitor_id")
        if row.get("lead_id") == lead_id or visitor in plan.whole_visitors:
            return False
        return row.get("touch_id") not in plan.touches.get(str(visitor), set())

    def deal_kept(row: dict[str, Any]) -> bool:
        return f"{row.get('crm')}#{row.get('deal_id')}" not in plan.deals and row.get("lead_id") != lead_id

    _rewrite(lake, "touches", plan.touch_days, touch_kept, report)
    _rewrite(lake, "leads", plan.lead_days, lambda row: row.get("lead_id") != lead_id, report)
    for name in DEAL_DATASETS:
        # A deal's rows sit on its opportunity, won or update day; the lead's own days cover a deal
        # whose rows name it as primary lead without a deal link (written before the link existed).
        _rewrite(lake, name, plan.deal_days | plan.lead_days, deal_kept, report)
    if plan.deals:
        _rewrite(lake, "pipeline", lake.partitions("pipeline"), deal_kept, report)
    from closedloop.analytics.training import TrainingJourneys

    training = TrainingJourneys.load(lake)
    if removed := training.forget_lead(lead_id, plan.deals):
        training.save(lake)
        report.rows_removed += removed


def erase_person(email: str, *, store: ErasureStore, lake: Lake | None, now_ms: int) -> ErasureReport:
    """Erase everything Closedloop keeps about the person with this e-mail (see the module docstring).

    Parameters
    ----------
    email
        The person's e-mail, as they gave it (it is normalised as a form's would be).
    store
        The table.
    lake
        The analytics bucket; ``None`` to erase from the table only.
    now_ms
        The clock: the affected deals are indexed as changed at this time.

    Returns
    -------
    ErasureReport
        Counts of what was found and erased; ``found`` is False when nothing named the person.

    Raises
    ------
    InvalidInputError
        The e-mail is not a valid address.
    StoreUnavailableError, LakeUnavailableError
        DynamoDB or S3 failed; run the erasure again (every step is idempotent).
    """
    normalised = normalise_email(email)
    lead_id = lead_id_for(normalised)
    plan = _plan(store, lead_id)
    report = ErasureReport(
        found=bool(plan.lead_keys), visitors=len(plan.visitors), touches=sum(map(len, plan.touches.values()))
    )
    if lake is not None:
        _erase_from_lake(lake, plan, report)
    # Every spelling a CRM may have stored (lower-cased only, not normalised like a form's).
    is_contact = same_person(normalised)
    for crm, deal_id in sorted(plan.deals.values()):
        report.deals_updated += store.forget_deal_contact(
            f"D#{crm}#{deal_id}",
            lead_id=lead_id,
            is_contact=is_contact,
            changed_at=now_ms,
            crm=crm,
            deal_id=deal_id,
        )
    report.items_deleted += store.delete_items(plan.visitor_keys)
    report.items_deleted += store.delete_items(plan.lead_keys)
    return report
