"""The write-back queue: "lead changed" messages, the lead id only (no personal data in SQS).

Retries come in two kinds. A real failure (a 5xx, a timeout, a refusal) keeps its message: the worker
sets its back-off as the visibility timeout, and SQS moves it to the dead-letter queue after
:data:`MAX_RECEIVES` receives. A rate limit is no failure of the message, and SQS counts every receive,
so the worker re-queues the lead as a new message delayed by the CRM's wait (:meth:`WritebackQueue.requeue`)
and lets the received one be deleted: a new message starts at zero receives. It carries ``failures``,
the attempts that failed for real before it, so the back-off keeps growing across copies; once those
reach :data:`MAX_RECEIVES`, a rate limit no longer re-queues, and the message's own receives run out
into the dead-letter queue. SQS delays a message 15 minutes at most: a longer wait (Pipedrive's daily
budget) is ``not_before``, and a copy that arrives earlier is re-queued again without calling a CRM.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

from closedloop import aws
from closedloop.errors import DependencyError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

__all__ = [
    "MAX_DELAY_SECONDS",
    "MAX_RECEIVES",
    "LeadChanged",
    "WritebackQueue",
    "WritebackQueueError",
    "parse_lead_changed",
    "rate_limited_copy",
]

_BATCH = 10  # SendMessageBatch's limit
# Receives of a message before SQS moves it to the dead-letter queue (the queue's redrive policy). With
# the worker's back-off (30 s doubling, capped at 15 min) that is about 40 minutes of retries.
MAX_RECEIVES = 8
MAX_DELAY_SECONDS = 900  # SendMessage's longest DelaySeconds


class LeadChanged(BaseModel):
    """The body of a write-back message: which lead to recompute and write to the CRMs."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lead_id: Annotated[str, Field(min_length=1, max_length=64)]
    v: Annotated[int, Field(description="Message version.")] = 1
    failures: Annotated[
        int, Field(ge=0, description="Attempts that failed for real before this copy (not rate limits).")
    ] = 0
    not_before: Annotated[
        int | None, Field(description="A re-queued copy: do not call any CRM before this time (epoch ms).")
    ] = None

    def body(self) -> str:
        """The message body: a first message is ``{"lead_id", "v"}``, the retry fields only when set."""
        unset = {name for name in ("failures", "not_before") if not getattr(self, name)}
        return self.model_dump_json(exclude=unset)


def rate_limited_copy(
    message: LeadChanged, *, receives: int, until: int, now: int
) -> tuple[LeadChanged, int] | None:
    """The copy to re-queue for a lead stopped by rate limits, and its delay in seconds.

    Parameters
    ----------
    message
        The received message.
    receives
        Its ``ApproximateReceiveCount``: the receives before this one failed for real (a rate-limited
        receive never stays on its message).
    until
        When the CRMs may be called again, epoch ms.
    now
        The current time, epoch ms.

    Returns
    -------
    tuple[LeadChanged, int] | None
        ``None`` when the lead has failed :data:`MAX_RECEIVES` times already: it is retried on its own
        message, whose receives lead it to the dead-letter queue if it keeps failing.
    """
    failures = message.failures + max(0, receives - 1)
    if failures >= MAX_RECEIVES:
        return None
    delay = max(1, math.ceil((until - now) / 1000))
    if delay > MAX_DELAY_SECONDS:
        return message.model_copy(update={"failures": failures, "not_before": until}), MAX_DELAY_SECONDS
    return message.model_copy(update={"failures": failures, "not_before": None}), delay


class WritebackQueueError(DependencyError):
    """SQS refused or failed a send: the change is retried (the stream keeps it)."""

    code = "writeback_queue_unavailable"


class WritebackQueue:
    """Sends :class:`LeadChanged` messages to the write-back queue, 10 per ``SendMessageBatch``.

    Parameters
    ----------
    queue_url
        The queue (``WRITEBACK_QUEUE_URL``).
    client
        A boto3 ``sqs`` client (tests pass moto's); made on first use otherwise.
    """

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = aws.client("sqs")
        return self._client

    def notify(self, lead_ids: Iterable[str]) -> int:
        """Send one message per distinct lead id; return how many were sent.

        Raises
        ------
        WritebackQueueError
            A call failed or SQS refused an entry; none of the later ones were sent.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        unique = list(dict.fromkeys(lead_ids))
        for start in range(0, len(unique), _BATCH):
            chunk = unique[start : start + _BATCH]
            entries = [
                {"Id": str(i), "MessageBody": LeadChanged(lead_id=lead_id).body()}
                for i, lead_id in enumerate(chunk)
            ]
            try:
                reply = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                raise WritebackQueueError("the write-back queue refused the messages") from exc
            if reply.get("Failed"):
                codes = sorted({str(f.get("Code")) for f in reply["Failed"]})
                raise WritebackQueueError(
                    f"the write-back queue refused {len(reply['Failed'])} messages: {codes}"
                )
        return len(unique)

    def requeue(self, message: LeadChanged, delay_seconds: int) -> None:
        """Send ``message`` again as a new message, delivered after ``delay_seconds`` (at most 15 min).

        Raises
        ------
        WritebackQueueError
            SQS refused (the caller then retries the received message instead).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=message.body(),
                DelaySeconds=max(0, min(delay_seconds, MAX_DELAY_SECONDS)),
            )
        except (ClientError, BotoCoreError) as exc:
            raise WritebackQueueError("the write-back queue refused the re-queued message") from exc

    def postpone(self, receipt_handle: str, seconds: int) -> None:
        """Make a received message visible again in ``seconds`` (its retry's back-off).

        Raises
        ------
        WritebackQueueError
            SQS refused (the message then reappears after the queue's own visibility timeout).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (ClientError, BotoCoreError) as exc:
            raise WritebackQueueError("the write-back queue refused the new visibility") from exc


def parse_lead_changed(body: str) -> LeadChanged:
    """The message body as sent by :meth:`WritebackQueue.notify` (raises ``ValueError`` otherwise)."""
    return LeadChanged.model_validate(json.loads(body))
