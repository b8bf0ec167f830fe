"""The API's one OpenAPI document (``closedloop/openapi.json``): current, complete, and honest about
what each route answers."""

from __future__ import annotations

import json

from closedloop.openapi import PUBLISHED_DOCUMENT, build_api_document, main, render
from closedloop.routes import ROUTES


def test_the_published_document_is_the_one_the_functions_generate() -> None:
    # Stale? Run: python -m closedloop.openapi
    assert main(["--check"]) == 0
    assert PUBLISHED_DOCUMENT.read_text(encoding="utf-8") == render(build_api_document())


def test_every_route_is_documented_with_its_real_error_statuses() -> None:
    document = json.loads(PUBLISHED_DOCUMENT.read_text(encoding="utf-8"))
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}

    assert documented == {(r.method, r.path) for r in ROUTES if r.path != "/openapi.json"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            # Validation errors are answered 400 with the ErrorReply shape, never Powertools' 422.
            assert "422" not in operation["responses"], (method, path)
            if method == "post":
                assert {"400", "413", "503"} <= set(operation["responses"]), (method, path)
    webhook = document["paths"]["/webhooks/{crm}"]["post"]
    assert set(webhook["requestBody"]["content"]) == {"application/json", "text/xml"}
    assert {"401", "404"} <= set(webhook["responses"])
