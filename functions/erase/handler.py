"""Erase function: an admin invokes it directly (no HTTP route) to erase one person.

Event::

    {"email": "ada@example.com"}

Answers the erasure's counts (``closedloop.erasure.ErasureReport``), or ``{"error": ...}`` for an
invalid address. A DynamoDB or S3 failure raises: invoke it again (every step is idempotent). The
e-mail is never logged.
"""

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from closedloop.clock import now_ms
from closedloop.erasure import erase_person
from closedloop.errors import ClientInputError
from closedloop.lake import Lake
from closedloop.observability import get_tracer, logger
from closedloop.settings import ErasureSettings
from closedloop.store import DynamoStore

settings = ErasureSettings.from_env(os.environ)
store = DynamoStore(settings.table_name)
lake = Lake(settings.bucket_name)
tracer = get_tracer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    email = (event or {}).get("email")
    if not isinstance(email, str) or not email.strip():
        return {"error": 'invoke with {"email": "..."}'}
    try:
        report = erase_person(email, store=store, lake=lake, now_ms=now_ms())
    except ClientInputError as exc:
        return {"error": exc.message}
    logger.info("person erased", **report.as_dict())
    return {"erased": report.as_dict()}
