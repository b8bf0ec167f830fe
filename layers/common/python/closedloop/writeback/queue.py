"""The write-back queue: "lead changed" messages, the lead id only (no personal data in SQS)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

from closedloop import aws
from closedloop.errors import DependencyError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

__all__ = ["MAX_RECEIVES", "LeadChanged", "WritebackQueue", "WritebackQueueError", "parse_lead_changed"]

_BATCH = 10  # SendMessageBatch's limit
# Receives of a message before SQS moves it to the dead-letter queue (the queue's redrive policy). With
# the worker's back-off (30 s doubling, capped at 15 min) that is about 40 minutes of retries.
MAX_RECEIVES = 8


class LeadChanged(BaseModel):
    """The body of a write-back message: which lead to recompute and write to the CRMs."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lead_id: Annotated[str, Field(min_length=1, max_length=64)]
    v: Annotated[int, Field(description="Message version.")] = 1


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
                {"Id": str(i), "MessageBody": LeadChanged(lead_id=lead_id).model_dump_json()}
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
