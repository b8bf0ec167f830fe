"""What the data-driven models learn from: every journey of the training period, kept between runs.

An hourly run re-credits a handful of deals. Markov and Shapley trained on those alone would credit
a deal by the accident of what else changed in the same hour (one converting journey makes every
channel on it indispensable), and a deal's credit would differ between an hourly run and a backfill.
So the job keeps one compact row per journey of the period: a deal's journey up to its conversion, or
a lead's journey when it has no deal (what does not convert is half of what the models learn), with
the partitions each deal's rows were written to (its timestamps may change). A run
replaces the rows of the leads and deals it refreshed, drops those older than the period, and trains
on all of them. Rows hold channel paths and times, not touches: 100,000 journeys are a few MB, one
GET and one PUT per run, never a table scan.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from closedloop.lake import Lake

__all__ = ["STATE_NAME", "TRAINING_SCHEMA", "TrainingJourney", "TrainingJourneys", "lead_journey_key"]

STATE_NAME = "training-journeys"

TRAINING_SCHEMA = pa.schema(
    [
        pa.field("journey_key", pa.string(), nullable=False),  # "<crm>#<deal>", or "lead#<lead id>"
        pa.field("lead_id", pa.string()),
        pa.field("channels", pa.list_(pa.string()), nullable=False),
        pa.field("touch_times", pa.list_(pa.int64()), nullable=False),  # epoch seconds
        pa.field("converted", pa.bool_(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("ended_at", pa.int64(), nullable=False),  # epoch seconds: the conversion, or the last touch
        # The dt partitions of deals and attribution_credits that hold the deal's rows.
        pa.field("written_days", pa.list_(pa.string()), nullable=False),
    ]
)


def lead_journey_key(lead_id: str) -> str:
    return f"lead#{lead_id}"


@dataclass(frozen=True)
class TrainingJourney:
    journey_key: str
    lead_id: str | None
    channels: list[str]
    touch_times: list[int]
    converted: bool
    value: float
    ended_at: int
    written_days: list[str]


@dataclass
class TrainingJourneys:
    """The rows, as one Arrow table sorted by ``journey_key`` (so the same rows write the same bytes)."""

    table: pa.Table

    @classmethod
    def empty(cls) -> TrainingJourneys:
        return cls(TRAINING_SCHEMA.empty_table())

    @classmethod
    def load(cls, lake: Lake) -> TrainingJourneys:
        return cls(lake.read_state(STATE_NAME, TRAINING_SCHEMA))

    def save(self, lake: Lake) -> int:
        return lake.write_state(STATE_NAME, self.table)

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def replace(
        self,
        *,
        leads: Iterable[str],
        journey_keys: Iterable[str],
        fresh: Sequence[TrainingJourney],
        since: int,
    ) -> None:
        """Drop the rows of ``leads`` and ``journey_keys``, add ``fresh``, keep what ends from ``since``."""
        table = self.table
        stale = pc.or_(
            pc.is_in(table["lead_id"], value_set=pa.array(sorted(set(leads)), pa.string())),
            pc.is_in(table["journey_key"], value_set=pa.array(sorted(set(journey_keys)), pa.string())),
        )
        kept = table.filter(pc.invert(pc.fill_null(stale, False)))
        added = pa.Table.from_pylist([row.__dict__ for row in fresh], schema=TRAINING_SCHEMA)
        merged = pa.concat_tables([kept, added])
        merged = merged.filter(pc.greater_equal(merged["ended_at"], since))
        self.table = merged.take(pc.sort_indices(merged, [("journey_key", "ascending")]))

    def forget_lead(self, lead_id: str, journey_keys: Iterable[str]) -> int:
        """Erasure: drop the lead's rows and those of its deals; return how many went."""
        before = len(self)
        self.replace(leads=[lead_id], journey_keys=journey_keys, fresh=[], since=np.iinfo(np.int64).min)
        return before - len(self)

    def written_days(self, journey_keys: Iterable[str]) -> dict[str, list[str]]:
        """Where the last run wrote each of these deals: a run that moves a deal clears those too."""
        keys = pa.array(sorted(set(journey_keys)), pa.string())
        found = self.table.filter(pc.is_in(self.table["journey_key"], value_set=keys))
        return dict(zip(found["journey_key"].to_pylist(), found["written_days"].to_pylist(), strict=True))

    def without(self, journey_keys: Iterable[str]) -> pa.Table:
        """The rows other than these (the run's own conversions, which it adds with their touches)."""
        keys = pa.array(sorted(set(journey_keys)), pa.string())
        return self.table.filter(pc.invert(pc.is_in(self.table["journey_key"], value_set=keys)))
