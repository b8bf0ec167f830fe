"""docs/events.md documents every event: a section per detail-type, every field, and an example that
validates against the event's model (the versioned schema)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from closedloop.events import EVENT_SOURCE, EVENT_TYPES, DomainEvent

DOC = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()


def _section(detail_type: str) -> str:
    start = DOC.index(f"### {detail_type}\n")
    following = DOC.find("\n### ", start + 1)
    following_top = DOC.find("\n## ", start + 1)
    ends = [e for e in (following, following_top) if e != -1]
    return DOC[start : min(ends) if ends else len(DOC)]


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.detail_type)
def test_each_event_has_a_section_with_every_field_and_a_valid_example(event_type: type[DomainEvent]) -> None:
    section = _section(event_type.detail_type)
    for name in event_type.model_fields:
        assert f"`{name}`" in section, f"{event_type.detail_type}: field {name} is not documented"
    [example] = re.findall(r"```json\n(.*?)```", section, flags=re.DOTALL)
    envelope = json.loads(example)
    assert envelope["source"] == EVENT_SOURCE
    assert envelope["detail-type"] == event_type.detail_type
    event = event_type.model_validate(envelope["detail"])
    assert envelope["time"] == event.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_summary_table_lists_every_event_and_nothing_else() -> None:
    table = DOC.split("## How publishing works")[0]
    listed = set(re.findall(r"\| `(closedloop\.[a-z_.]+\.v\d+)` \|", table))
    assert listed == {t.detail_type for t in EVENT_TYPES}
