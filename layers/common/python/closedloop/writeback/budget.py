"""Rate-limit budgets the CRMs announce in their answers, read before the next call is made.

Pipedrive says in every answer what is left of its window (``x-ratelimit-remaining``) and when it
resets (``x-ratelimit-reset``); Salesforce says how much of the org's daily API allowance is used
(``Sforce-Limit-Info: api-usage=N/M``) and refuses with 403 ``REQUEST_LIMIT_EXCEEDED`` once it is
gone. :class:`BudgetedHttpClient` hands every answer to a reader of these, before urllib turns an
error status into an exception, and while the budget is spent makes no call: it raises a 429 of its
own (:class:`~closedloop.crm.errors.CrmApiRetryableError`, ``status`` 429), so the worker holds the CRM
back and re-queues the lead exactly as after a 429 from the CRM (:mod:`closedloop.writeback.throttle`).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Mapping
from http.client import HTTPResponse
from typing import Any, TypeVar

from closedloop import clock
from closedloop.crm.errors import CrmApiError, CrmApiRetryableError
from closedloop.crm.http import JsonHttpClient

__all__ = ["BudgetReader", "BudgetedHttpClient", "RateLimitBudget"]

T = TypeVar("T")


class RateLimitBudget:
    """Until when (epoch ms) a CRM's answers said nothing is left; shared by the clients of one CRM.

    Parameters
    ----------
    service
        The API's name in error messages (``"Pipedrive"``).
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self.spent_until: int | None = None
        self.refused = False  # the last answer was a refusal for want of budget

    def spend(self, seconds: float, *, refused: bool = False) -> None:
        """Nothing is left for ``seconds`` from now (``refused``: the answer was refused for it)."""
        self.spent_until = clock.now_ms() + round(1000 * max(0.0, seconds))
        self.refused = refused

    def restore(self) -> None:
        """Something is left again (an answer said so)."""
        self.spent_until = None

    def error(self) -> CrmApiRetryableError | None:
        """The 429 of our own while the budget is spent, with the seconds until it is not."""
        if self.spent_until is None:
            return None
        left = self.spent_until - clock.now_ms()
        if left <= 0:
            self.spent_until = None
            return None
        return CrmApiRetryableError(
            f"{self.service} API: rate-limit budget spent", status=429, retry_after=left / 1000
        )


# Reads one answer (its status, headers and, for a refusal, its body) into the budget.
BudgetReader = Callable[[HTTPResponse, RateLimitBudget], None]


class _Reader(urllib.request.BaseHandler):
    handler_order = 100  # before urllib's HTTPErrorProcessor (1000): it sees refusals too

    def __init__(self, read: BudgetReader, budget: RateLimitBudget) -> None:
        self._read = read
        self._budget = budget

    def http_response(self, request: urllib.request.Request, response: HTTPResponse) -> HTTPResponse:
        self._read(response, self._budget)
        return response

    https_response = http_response


class BudgetedHttpClient(JsonHttpClient):
    """:class:`~closedloop.crm.http.JsonHttpClient` that makes no call while ``budget`` is spent.

    Parameters
    ----------
    base_url
        As :class:`~closedloop.crm.http.JsonHttpClient`, with its other keyword arguments.
    read
        Reads every answer into the budget.
    budget
        The CRM's budget (one for all of its clients).
    """

    def __init__(self, base_url: str, *, read: BudgetReader, budget: RateLimitBudget, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.budget = budget
        self._opener.add_handler(_Reader(read, budget))

    def _guarded(self, call: Callable[[], T]) -> T:
        spent = self.budget.error()
        if spent is not None:
            raise spent
        self.budget.refused = False
        try:
            return call()
        except CrmApiError as exc:
            spent = self.budget.error() if self.budget.refused else None
            if spent is None or exc.status == 429:
                raise
            raise spent from exc  # refused for want of budget (Salesforce's 403): a rate limit

    def get_json(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        return self._guarded(lambda: super(BudgetedHttpClient, self).get_json(path, query))

    def send_json(
        self,
        method: str,
        path: str,
        payload: object,
        *,
        query: Mapping[str, str] | None = None,
        label: str | None = None,
    ) -> Any:
        return self._guarded(
            lambda: super(BudgetedHttpClient, self).send_json(method, path, payload, query=query, label=label)
        )

    def post_form(self, path: str, fields: Mapping[str, str], *, label: str | None = None) -> Any:
        return self._guarded(lambda: super(BudgetedHttpClient, self).post_form(path, fields, label=label))
