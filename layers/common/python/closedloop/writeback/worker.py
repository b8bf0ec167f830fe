"""One "lead changed" message: write the lead's source back, then decide when it is tried again.

A failure (a CRM's 5xx, a timeout, a refusal) makes the message visible again after its back-off
(exponential with jitter, or the CRM's ``Retry-After``); after the queue's ``maxReceiveCount`` it moves
to the dead-letter queue. A lead stopped only by rate limits is re-sent as a new message for after the
wait, uncounted, and the rate-limited CRM is held back for the rest of the batch (and later batches of
the same warm function) until then (:mod:`closedloop.writeback.queue`). A CRM that has no record with
the lead's e-mail yet (its own form sync may be slower) is tried again a few times.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.metrics import MetricUnit

from closedloop import clock
from closedloop.crm import CrmApiError
from closedloop.errors import DependencyError
from closedloop.observability import logger, metrics
from closedloop.settings import WritebackSettings
from closedloop.writeback.queue import LeadChanged, WritebackQueue, parse_lead_changed, rate_limited_copy
from closedloop.writeback.service import CrmWriter, WritebackStore, retry_delay, write_back_lead
from closedloop.writeback.throttle import CrmRateLimitedError, CrmThrottle

__all__ = ["ContactNotYetInCrmError", "Worker"]


class ContactNotYetInCrmError(Exception):
    """The CRM has no record with the lead's e-mail yet (its own form sync may be slower): retried."""


class Worker:
    """What handles the messages of one warm function: the store, the CRMs, the queue and the throttle."""

    def __init__(
        self,
        *,
        store: WritebackStore,
        writers: Callable[[], list[CrmWriter]],
        queue: WritebackQueue,
        throttle: CrmThrottle,
        settings: WritebackSettings,
    ) -> None:
        self.store = store
        self.writers = writers
        self.queue = queue
        self.throttle = throttle
        self.settings = settings

    def handle(self, body: str, *, receives: int, receipt_handle: str) -> None:
        """Write back the message's lead; raise to leave the message on the queue for its retry."""
        message = parse_lead_changed(body)
        attempt = message.failures + receives
        now = clock.now_ms()  # read through the module: a test moves the clock there
        # A long rate-limit wait, relayed 15 minutes at a time: no CRM is called before its end.
        not_before = message.not_before or 0
        if now < not_before and self._requeue(message, receives, until=not_before, now=now):
            return
        try:
            report = write_back_lead(
                message.lead_id, store=self.store, writers=self.writers(), now=now, throttle=self.throttle
            )
        except CrmRateLimitedError as exc:
            metrics.add_metric(name="WritebackRateLimited", unit=MetricUnit.Count, value=1)
            logger.info("write-back rate-limited", crms=sorted(exc.waits), wait_seconds=exc.retry_after)
            until = now + 1000 * self._delay(exc, attempt)
            if not self._requeue(message, receives, until=until, now=now):
                self._retry_later(receipt_handle, exc, attempt, receives)
                raise
            return
        except (CrmApiError, DependencyError) as exc:
            metrics.add_metric(name="WritebackFailed", unit=MetricUnit.Count, value=1)
            logger.warning("write-back failed", error=str(exc), status=getattr(exc, "status", None))
            self._retry_later(receipt_handle, exc, attempt, receives)
            raise
        metrics.add_metric(name="WritebackWritten", unit=MetricUnit.Count, value=len(report.written))
        metrics.add_metric(name="WritebackUnchanged", unit=MetricUnit.Count, value=len(report.unchanged))
        logger.info(
            "write-back done", written=report.written, unchanged=report.unchanged, missing=report.missing
        )
        if report.missing and attempt < self.settings.missing_record_retries:
            self._retry_later(receipt_handle, None, attempt, receives)
            raise ContactNotYetInCrmError(", ".join(report.missing))
        if report.missing:
            metrics.add_metric(
                name="WritebackRecordMissing", unit=MetricUnit.Count, value=len(report.missing)
            )

    def _delay(self, error: Exception | None, attempt: int) -> int:
        return retry_delay(
            error,
            attempt,
            base_seconds=self.settings.retry_base_seconds,
            max_seconds=self.settings.retry_max_seconds,
        )

    def _retry_later(self, receipt_handle: str, error: Exception | None, attempt: int, receives: int) -> None:
        delay = self._delay(error, attempt)
        try:
            self.queue.postpone(receipt_handle, delay)
        except DependencyError:
            logger.warning("back-off not set: the queue's visibility timeout applies")
        logger.info("write-back retried later", delay_seconds=delay, attempt=attempt, receives=receives)

    def _requeue(self, message: LeadChanged, receives: int, *, until: int, now: int) -> bool:
        """Re-send the lead for ``until`` as a new message (``False``: it is retried on this one instead)."""
        planned = rate_limited_copy(message, receives=receives, until=until, now=now)
        if planned is None:
            return False
        copy, delay = planned
        try:
            self.queue.requeue(copy, delay)
        except DependencyError as exc:
            logger.warning("re-queue refused: retried on the received message", error=str(exc))
            return False
        logger.info("write-back re-queued", delay_seconds=delay, failures=copy.failures)
        return True
