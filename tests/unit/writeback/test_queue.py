"""Re-queuing a rate-limited lead: a new message that keeps the count of real failures, delayed by the
CRM's wait (relayed 15 minutes at a time), until the lead has failed for real too often."""

from __future__ import annotations

import json

from closedloop.writeback.queue import (
    MAX_DELAY_SECONDS,
    MAX_RECEIVES,
    LeadChanged,
    parse_lead_changed,
    rate_limited_copy,
)

T0 = 1_795_000_000_000


def requeued(message: LeadChanged, *, receives: int, until: int, now: int = T0) -> tuple[LeadChanged, int]:
    planned = rate_limited_copy(message, receives=receives, until=until, now=now)
    assert planned is not None, "not re-queued"
    return planned


def test_a_first_message_carries_the_lead_id_only():
    assert json.loads(LeadChanged(lead_id="ld_1").body()) == {"lead_id": "ld_1", "v": 1}


def test_a_rate_limited_first_receive_is_re_queued_uncounted_for_the_wait():
    copy, delay = requeued(LeadChanged(lead_id="ld_1"), receives=1, until=T0 + 8_000)

    assert delay == 8
    assert copy == LeadChanged(lead_id="ld_1", failures=0)
    assert json.loads(copy.body()) == {"lead_id": "ld_1", "v": 1}


def test_the_receives_that_failed_before_the_rate_limit_are_carried_to_the_copy():
    message = LeadChanged(lead_id="ld_1", failures=2)

    copy, _ = requeued(message, receives=3, until=T0 + 1_000)

    assert copy.failures == 4  # 2 before this message, and its 2 receives before this one
    assert parse_lead_changed(copy.body()) == copy


def test_a_wait_longer_than_sqs_can_delay_is_relayed_with_its_end():
    until = T0 + 3_601_000  # Pipedrive's budget resets in an hour

    copy, delay = requeued(LeadChanged(lead_id="ld_1"), receives=1, until=until)

    assert (delay, copy.not_before) == (MAX_DELAY_SECONDS, until)
    # The last stretch is delayed as a plain copy
    last, delay = requeued(copy, receives=1, until=until, now=until - 60_000)
    assert (delay, last.not_before) == (60, None)


def test_a_lead_that_already_failed_max_receives_times_is_no_longer_re_queued():
    message = LeadChanged(lead_id="ld_1", failures=MAX_RECEIVES - 2)

    assert rate_limited_copy(message, receives=2, until=T0 + 1_000, now=T0) is not None
    assert rate_limited_copy(message, receives=3, until=T0 + 1_000, now=T0) is None
