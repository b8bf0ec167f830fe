"""Every route under fuzzing: schemathesis against the local gateway's ``/openapi.json``.

Each operation of the one document (``closedloop/openapi.json``) gets generated requests in every
content type it documents, valid and invalid (schemathesis' positive and negative modes). Every answer
must be no 5xx, a documented status, in a documented content type, with documented headers, and a
body that matches the documented schema; invalid requests must be refused. Webhook requests are
signed the way each CRM signs (by a ``requests`` auth hook, over the exact bytes sent), so the fuzzed
bodies reach the adapters' parsers instead of stopping at the signature check.

Bounded: a fixed number of examples per operation (random each run: a failure prints the seed to
reproduce it with ``@seed``), no deadline (the first call of a function loads it), about 20 s in all.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from closedloop.crm import GENERIC_SIGNATURE_HEADER, sign_generic, sign_hubspot_v3
from closedloop.local.stack import LOCAL_CRM_SECRETS, LocalStack
from closedloop.openapi import PUBLISHED_DOCUMENT

MAX_EXAMPLES = 150
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
]


CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "enabled": False,
            **{name: {"enabled": True} for name in CHECKS},
            # A too-large body is refused before it is read (413), which is a refusal too.
            "negative_data_rejection": {"expected-statuses": [400, 401, 404, 413, 415]},
        },
        "operations": [
            {
                # A filled honeypot (`website`) is answered exactly like a success, so a bot learns
                # nothing; and an empty form field is a missing one, as HTML forms send them. Both are
                # by design, so invalid bodies may be "accepted" here (and nothing is stored).
                "include-path": "/identify",
                "checks": {"negative_data_rejection": {"enabled": False}},
            }
        ],
    }
)
# The document the collect function serves (a test below checks the gateway serves exactly this);
# loaded at collection time so each operation is its own test. (schemathesis' lazy fixture loader
# does not work with pytest 9.)
schema = schemathesis.openapi.from_path(str(PUBLISHED_DOCUMENT), config=CONFIG)


def test_the_gateway_serves_the_published_document(local_stack: LocalStack) -> None:
    served = requests.get(f"{local_stack.url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == json.loads(PUBLISHED_DOCUMENT.read_text())


@pytest.mark.parametrize("method", ["TRACE", "PATCH", "QUERY"])
def test_a_method_without_a_route_is_a_404_as_api_gateway_answers(
    local_stack: LocalStack, method: str
) -> None:
    reply = requests.request(method, f"{local_stack.url}/collect", timeout=10)
    assert (reply.status_code, reply.json()) == (404, {"message": "Not Found"})


class CrmSignature(requests.auth.AuthBase):
    """Sign a webhook request as its CRM does, over the exact bytes requests is about to send."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = request.url or ""
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else bytes(body)
        if url.rstrip("/").endswith("/webhooks/generic"):
            secret = LOCAL_CRM_SECRETS["generic"]["signing_secret"]
            request.headers[GENERIC_SIGNATURE_HEADER] = sign_generic(secret, raw, int(time.time()))
        elif "/webhooks/hubspot" in url:
            stamp = int(time.time() * 1000)
            # The adapter verifies https://{Host}{path}, as API Gateway's domain name gives it.
            signed_url = "https://" + url.split("://", 1)[1]
            secret = LOCAL_CRM_SECRETS["hubspot"]["client_secret"]
            request.headers["X-HubSpot-Signature-v3"] = sign_hubspot_v3(
                secret, "POST", signed_url, raw, stamp
            )
            request.headers["X-HubSpot-Request-Timestamp"] = str(stamp)
        elif "/webhooks/pipedrive" in url:
            pipedrive = LOCAL_CRM_SECRETS["pipedrive"]
            pair = f"{pipedrive['username']}:{pipedrive['password']}".encode()
            request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif "/webhooks/salesforce" in url:
            token = LOCAL_CRM_SECRETS["salesforce"]["url_token"]
            request.prepare_url(url, {"token": token})
        return request


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_route_answers_as_documented_and_never_a_5xx(case: Any, local_stack: LocalStack) -> None:
    auth = CrmSignature() if case.path.startswith("/webhooks/") else None
    case.call_and_validate(base_url=local_stack.url, auth=auth, timeout=10)
