"""The cached webhook secret is read again, once, before a delivery is refused for its signature or for a
CRM that is not set up: HubSpot never retries a 401 or a 404, so a delivery refused with a minutes-old
secret after a rotation or a first setup would be lost."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters.base import BaseProvider

from closedloop.crm import CrmNotConfiguredError, WebhookAuthError, WebhookRequest, sign_generic
from closedloop.deals import WebhookSecret, parse_delivery

OLD = "generic-signing-secret-old-0001"
NEW = "generic-signing-secret-new-0002"
EVENT = {"event_id": "e1", "deal_id": "D-1", "status": "won", "occurred_at": "2026-11-19T08:00:00Z"}


class SecretsManagerStandIn(BaseProvider):
    """Powertools' own caching over a value the admin can change; counts the reads that reach it."""

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__()
        self.document = document
        self.reads = 0

    def _get(self, name: str, **sdk_options: Any) -> str:
        self.reads += 1
        return json.dumps(self.document)

    def _get_multiple(self, path: str, **sdk_options: Any) -> dict[str, str]:
        raise NotImplementedError


def generic_with(signing_secret: str) -> dict[str, Any]:
    return {"generic": {"signing_secret": signing_secret}}


def delivery(signed_with: str) -> WebhookRequest:
    body = json.dumps(EVENT).encode()
    return WebhookRequest(
        url="https://api.acme.test/webhooks/generic",
        headers={"X-Closedloop-Signature": sign_generic(signed_with, body, int(time.time()))},
        body=body,
    )


def cached_secret(document: dict[str, Any]) -> tuple[WebhookSecret, SecretsManagerStandIn]:
    """A warm function's secret: read once, now cached for five minutes."""
    manager = SecretsManagerStandIn(document)
    secret = WebhookSecret("webhooks", max_age=300, provider=manager)
    with contextlib.suppress(CrmNotConfiguredError):  # the empty secret of a fresh stack
        secret.load()
    return secret, manager


def test_a_delivery_signed_with_a_rotated_secret_is_accepted_at_once():
    secret, manager = cached_secret(generic_with(OLD))
    manager.document = generic_with(NEW)  # the admin rotates the secret

    [event] = parse_delivery("generic", delivery(signed_with=NEW), secret)

    assert event.event_id == "e1"
    assert manager.reads == 2


def test_the_first_delivery_after_setting_up_a_crm_is_accepted_at_once():
    secret, manager = cached_secret({})  # the empty secret of a fresh stack
    manager.document = generic_with(NEW)  # the admin sets the CRM up

    [event] = parse_delivery("generic", delivery(signed_with=NEW), secret)

    assert event.event_id == "e1"


def test_a_forged_delivery_costs_one_more_read_and_is_still_refused():
    secret, manager = cached_secret(generic_with(OLD))

    for attempt in range(1, 4):
        with pytest.raises(WebhookAuthError):
            parse_delivery("generic", delivery(signed_with="forged-secret-0123456789"), secret)
        assert manager.reads == 1 + attempt


def test_an_unconfigured_crm_is_still_a_404_after_the_fresh_read():
    secret, manager = cached_secret(generic_with(OLD))

    with pytest.raises(CrmNotConfiguredError):
        parse_delivery("hubspot", delivery(signed_with=OLD), secret)
    assert manager.reads == 2


def test_authentic_deliveries_use_the_cached_secret():
    secret, manager = cached_secret(generic_with(OLD))

    for _ in range(3):
        parse_delivery("generic", delivery(signed_with=OLD), secret)

    assert manager.reads == 1
