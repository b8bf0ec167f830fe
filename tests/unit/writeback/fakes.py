"""Stateful stand-ins for the CRMs' write APIs on the local server (:class:`FakeCrmApi`), answering in
the shapes each API reference documents: HubSpot CRM v3, Pipedrive API v2, Salesforce REST."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tests.unit.crm.conftest import FakeCrmApi, Reply, Seen

HUBSPOT_RATE_LIMITED = {
    "status": "error",
    "message": "You have reached your secondly limit.",
    "errorType": "RATE_LIMIT",
    "correlationId": "c0ffee00-0000-4000-8000-000000000001",
    "policyName": "SECONDLY",
}


@dataclass
class FakeHubSpot:
    """HubSpot's properties and contacts/deals APIs, with contacts keyed by e-mail."""

    api: FakeCrmApi
    contacts: dict[str, dict[str, str]] = field(default_factory=dict)  # email -> properties
    deals: dict[str, dict[str, str]] = field(default_factory=dict)  # deal id -> properties
    properties: dict[str, set[str]] = field(
        default_factory=lambda: {"contacts": {"email", "firstname"}, "deals": {"dealname"}}
    )
    groups: dict[str, set[str]] = field(default_factory=lambda: {"contacts": set(), "deals": set()})
    failures: list[Reply] = field(default_factory=list)  # replies served before the next PATCH succeeds

    def __post_init__(self) -> None:
        for object_type in ("contacts", "deals"):
            self.api.route(
                "GET", f"/crm/v3/properties/{object_type}/groups/closedloop", self._group(object_type)
            )
            self.api.route(
                "POST", f"/crm/v3/properties/{object_type}/groups", self._create_group(object_type)
            )
            self.api.route("GET", f"/crm/v3/properties/{object_type}", self._list(object_type))
            self.api.route(
                "POST", f"/crm/v3/properties/{object_type}/batch/create", self._create(object_type)
            )
        self.api.route_prefix("PATCH", "/crm/v3/objects/contacts/", self._patch_contact)
        self.api.route_prefix("PATCH", "/crm/v3/objects/deals/", self._patch_deal)
        self.api.route_prefix("GET", "/crm/v3/objects/deals/", self._read_deal)
        self.api.route("POST", "/crm/v3/objects/deals/batch/read", self._read_deals)
        self.api.route("POST", "/crm/v4/associations/deals/contacts/batch/read", self._read_deal_contacts)
        self.api.route("POST", "/crm/v3/objects/contacts/batch/read", self._read_contacts)

    def add_contact(self, email: str, contact_id: str = "501") -> None:
        self.contacts[email] = {"email": email, "hs_object_id": contact_id}

    def add_deal(self, deal_id: str, contact_ids: list[str], **properties: str) -> None:
        """A deal the webhook adapter can read (its batch reads of deals, associations and contacts)."""
        self.deals[deal_id] = {"hs_object_id": deal_id, "contact_ids": ",".join(contact_ids), **properties}

    def _read_deal(self, seen: Seen) -> Reply:
        deal_id = seen.path.rsplit("/", 1)[1]
        if deal_id not in self.deals:
            return Reply(
                404, {"status": "error", "message": "resource not found", "category": "OBJECT_NOT_FOUND"}
            )
        properties = {k: v for k, v in self.deals[deal_id].items() if k != "contact_ids"}
        contacts = [c for c in self.deals[deal_id]["contact_ids"].split(",") if c]
        return Reply(
            200,
            {
                "id": deal_id,
                "properties": properties,
                "associations": {
                    "contacts": {"results": [{"id": c, "type": "deal_to_contact"} for c in contacts]}
                },
            },
        )

    def _read_deals(self, seen: Seen) -> Reply:
        """``POST /crm/v3/objects/deals/batch/read``: found deals in ``results``, a 207 naming the rest."""
        ids = [i["id"] for i in seen.body["inputs"]]
        results = [
            {"id": i, "properties": {k: v for k, v in self.deals[i].items() if k != "contact_ids"}}
            for i in ids
            if i in self.deals
        ]
        missing = [i for i in ids if i not in self.deals]
        errors = [{"status": "error", "category": "OBJECT_NOT_FOUND", "context": {"ids": missing}}]
        return Reply(
            207 if missing else 200,
            {"status": "COMPLETE", "results": results, **({"errors": errors} if missing else {})},
        )

    def _read_deal_contacts(self, seen: Seen) -> Reply:
        """``POST /crm/v4/associations/deals/contacts/batch/read``: each deal's contacts as ``toObjectId``."""
        results = []
        for wanted in seen.body["inputs"]:
            contacts = [c for c in self.deals.get(wanted["id"], {}).get("contact_ids", "").split(",") if c]
            if contacts:
                to = [{"toObjectId": int(c), "associationTypes": []} for c in contacts]
                results.append({"from": {"id": wanted["id"]}, "to": to})
        return Reply(200, {"status": "COMPLETE", "results": results})

    def _read_contacts(self, seen: Seen) -> Reply:
        by_id = {c["hs_object_id"]: email for email, c in self.contacts.items()}
        results = [
            {"id": i["id"], "properties": {"email": by_id[i["id"]]}}
            for i in seen.body["inputs"]
            if i["id"] in by_id
        ]
        return Reply(200, {"status": "COMPLETE", "results": results})

    def _group(self, object_type: str) -> Any:
        def reply(seen: Seen) -> Reply:
            if "closedloop" in self.groups[object_type]:
                return Reply(200, {"name": "closedloop", "label": "Closedloop", "displayOrder": -1})
            return Reply(
                404, {"status": "error", "message": "group not found", "category": "OBJECT_NOT_FOUND"}
            )

        return reply

    def _create_group(self, object_type: str) -> Any:
        def reply(seen: Seen) -> Reply:
            self.groups[object_type].add(seen.body["name"])
            return Reply(201, {**seen.body, "archived": False})

        return reply

    def _list(self, object_type: str) -> Any:
        def reply(seen: Seen) -> Reply:
            return Reply(
                200,
                {
                    "results": [
                        {"name": name, "type": "string"} for name in sorted(self.properties[object_type])
                    ]
                },
            )

        return reply

    def _create(self, object_type: str) -> Any:
        def reply(seen: Seen) -> Reply:
            for definition in seen.body["inputs"]:
                assert definition["groupName"] in self.groups[object_type], "create the group first"
                self.properties[object_type].add(definition["name"])
            return Reply(201, {"status": "COMPLETE", "results": seen.body["inputs"]})

        return reply

    def _unknown(self, object_type: str, properties: dict[str, str]) -> Reply | None:
        unknown = sorted(set(properties) - self.properties[object_type])
        if unknown:
            return Reply(
                400,
                {
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": f"Property values were not valid: {unknown}",
                },
            )
        return None

    def _patch_contact(self, seen: Seen) -> Reply:
        if self.failures:
            return self.failures.pop(0)
        assert seen.query.get("idProperty") == ["email"]
        email = unquote(seen.path.rsplit("/", 1)[1])
        if email not in self.contacts:
            return Reply(
                404, {"status": "error", "message": "resource not found", "category": "OBJECT_NOT_FOUND"}
            )
        refused = self._unknown("contacts", seen.body["properties"])
        if refused:
            return refused
        self.contacts[email].update(seen.body["properties"])
        return Reply(200, {"id": self.contacts[email]["hs_object_id"], "properties": self.contacts[email]})

    def _patch_deal(self, seen: Seen) -> Reply:
        if self.failures:
            return self.failures.pop(0)
        deal_id = unquote(seen.path.rsplit("/", 1)[1])
        if deal_id not in self.deals:
            return Reply(
                404, {"status": "error", "message": "resource not found", "category": "OBJECT_NOT_FOUND"}
            )
        refused = self._unknown("deals", seen.body["properties"])
        if refused:
            return refused
        self.deals[deal_id].update(seen.body["properties"])
        return Reply(200, {"id": deal_id, "properties": self.deals[deal_id]})

    def patches(self) -> list[Seen]:
        return [s for s in self.api.seen if s.method == "PATCH"]


@dataclass
class FakePipedrive:
    """Pipedrive API v2: persons (searchable by e-mail) and deals, with custom fields by key.

    With a ``budget``, every answer carries Pipedrive's rate-limit headers (``x-ratelimit-limit``,
    ``x-ratelimit-remaining``, ``x-ratelimit-reset``) and a call over budget gets the documented 429;
    :meth:`reset_window` starts the next window.
    """

    api: FakeCrmApi
    persons: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> person
    deals: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[Reply] = field(default_factory=list)
    budget: int | None = None  # calls per window; None: no rate-limit headers
    window_seconds: int = 2
    _left: int = 0

    def __post_init__(self) -> None:
        self._left = self.budget or 0
        self.api.route("GET", "/api/v2/persons/search", self._metered(self._search))
        self.api.route_prefix("PATCH", "/api/v2/persons/", self._metered(self._patch(self.persons)))
        self.api.route_prefix("PATCH", "/api/v2/deals/", self._metered(self._patch(self.deals)))

    def reset_window(self) -> None:
        self._left = self.budget or 0

    def _metered(self, route: Any) -> Any:
        def reply(seen: Seen) -> Reply:
            if self.budget is None:
                plain: Reply = route(seen)
                return plain
            headers = {"x-ratelimit-limit": str(self.budget), "x-ratelimit-reset": str(self.window_seconds)}
            if self._left <= 0:
                return Reply(
                    429,
                    {"success": False, "error": "Rate limit has been exceeded", "errorCode": 429},
                    {**headers, "x-ratelimit-remaining": "0", "Retry-After": str(self.window_seconds)},
                )
            self._left -= 1
            answer: Reply = route(seen)
            return Reply(
                answer.status,
                answer.payload,
                {**answer.headers, **headers, "x-ratelimit-remaining": str(self._left)},
                answer.raw,
            )

        return reply

    def patches(self) -> list[Seen]:
        return [s for s in self.api.seen if s.method == "PATCH" and s.path.startswith("/api/v2/")]

    def add_person(self, person_id: int, email: str) -> None:
        self.persons[str(person_id)] = {
            "id": person_id,
            "name": "Ada Lovelace",
            "emails": [{"value": email, "primary": True, "label": "work"}],
            "custom_fields": {},
        }

    def _search(self, seen: Seen) -> Reply:
        assert seen.query["fields"] == ["email"] and seen.query["exact_match"] == ["true"]
        term = seen.query["term"][0]
        items = [
            {
                "result_score": 1.0,
                "item": {"id": p["id"], "type": "person", "name": p["name"], "emails": [term]},
            }
            for p in self.persons.values()
            if any(e["value"] == term for e in p["emails"])
        ]
        return Reply(
            200, {"success": True, "data": {"items": items}, "additional_data": {"next_cursor": None}}
        )

    def _patch(self, records: dict[str, dict[str, Any]]) -> Any:
        def reply(seen: Seen) -> Reply:
            if self.failures:
                return self.failures.pop(0)
            record_id = seen.path.rsplit("/", 1)[1]
            if record_id not in records:
                return Reply(404, {"success": False, "error": "Person not found", "code": "ERR_NOT_FOUND"})
            records[record_id].setdefault("custom_fields", {}).update(seen.body["custom_fields"])
            return Reply(200, {"success": True, "data": records[record_id]})

        return reply


SALESFORCE_UNAVAILABLE = Reply(
    503, [{"message": "Server is temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}]
)
SALESFORCE_REQUEST_LIMIT_EXCEEDED = Reply(
    403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
)
PIPEDRIVE_SERVER_ERROR = Reply(502, {"success": False, "error": "Bad gateway", "errorCode": 502})

PIPEDRIVE_TOKEN_BUDGET_SPENT = Reply(
    429,
    {"success": False, "error": "Rate limit has been exceeded", "errorCode": 429},
    {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "3600"},
)


@dataclass
class FakeSalesforce:
    """A Salesforce org: the OAuth token endpoint, SOQL queries on Email, and sObject updates; with
    ``api_usage`` (used, allowance), every REST answer carries ``Sforce-Limit-Info``."""

    api: FakeCrmApi
    records: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"Contact": {}, "Lead": {}, "Opportunity": {}}
    )
    version: str = "v62.0"
    tokens_issued: int = 0
    expired: set[str] = field(default_factory=set)
    failures: list[Reply] = field(default_factory=list)  # replies served before the next query or PATCH
    api_usage: tuple[int, int] | None = None
    client_secret: str = "sf-secret"

    def __post_init__(self) -> None:
        self.api.route("POST", "/services/oauth2/token", self._token)
        self.api.route("GET", f"/services/data/{self.version}/query", self._counted(self._query))
        self.api.route_prefix("PATCH", f"/services/data/{self.version}/sobjects/", self._counted(self._patch))

    def _counted(self, route: Any) -> Any:
        def reply(seen: Seen) -> Reply:
            answer: Reply = route(seen)
            if self.api_usage is None:
                return answer
            used, allowance = self.api_usage
            self.api_usage = (used + 1, allowance)
            info = {"Sforce-Limit-Info": f"api-usage={used + 1}/{allowance}"}
            return Reply(answer.status, answer.payload, {**answer.headers, **info}, answer.raw)

        return reply

    def _token(self, seen: Seen) -> Reply:
        if (
            seen.body.get("grant_type") != "client_credentials"
            or seen.body.get("client_secret") != self.client_secret
        ):
            return Reply(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
        self.tokens_issued += 1
        return Reply(
            200,
            {
                "access_token": f"00Dxx!token-{self.tokens_issued}",
                "instance_url": self.api.base_url,
                "id": f"{self.api.base_url}/id/00Dxx/005xx",
                "token_type": "Bearer",
                "issued_at": "1795000000000",
                "signature": "c2lnbmF0dXJl",
            },
        )

    def _authorised(self, seen: Seen) -> Reply | None:
        token = seen.headers.get("authorization", "").removeprefix("Bearer ")
        if not token.startswith("00Dxx!token-") or token in self.expired:
            return Reply(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        return None

    def _query(self, seen: Seen) -> Reply:
        if self.failures:
            return self.failures.pop(0)
        refused = self._authorised(seen)
        if refused:
            return refused
        soql = seen.query["q"][0]
        kind = soql.split(" FROM ", 1)[1].split(" ", 1)[0]
        email = soql.split("Email = '", 1)[1].split("'", 1)[0]
        found = [
            {
                "attributes": {"type": kind, "url": f"/services/data/{self.version}/sobjects/{kind}/{rid}"},
                "Id": rid,
            }
            for rid, record in self.records[kind].items()
            if record.get("Email") == email and not record.get("IsConverted")
        ]
        return Reply(200, {"totalSize": len(found), "done": True, "records": found[:1]})

    def _patch(self, seen: Seen) -> Reply:
        if self.failures:
            return self.failures.pop(0)
        refused = self._authorised(seen)
        if refused:
            return refused
        kind, record_id = seen.path.rsplit("/", 2)[1:]
        if record_id not in self.records[kind]:
            return Reply(
                404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
            )
        self.records[kind][record_id].update(seen.body)
        return Reply(204, raw=b"")
