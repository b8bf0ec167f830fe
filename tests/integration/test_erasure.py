"""Erasing a person, end to end under moto: the whole loop (visits on two devices, a form, a CRM deal
with two contacts, the attribute job), then ``closedloop erase``, then a search of every item of the
table and every Parquet object for the person's e-mail, lead id and visitor ids."""

from __future__ import annotations

import io
import json
import time
import unicodedata
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from closedloop.cli import main as closedloop_cli
from closedloop.crm import sign_generic
from closedloop.identity import lead_id_for
from closedloop.local.gateway import LambdaContextStub, load_function
from closedloop.store import DynamoStore
from tests.conftest import SITE_ORIGIN, TABLE_NAME
from tests.integration.test_attribute_job import (
    BUCKET,
    DAY,
    HOUR,
    NOW,
    SIGNING_SECRET,
    identify,
    loop,  # noqa: F401 - the fixture
    run_job,
    visit,
)
from tests.support import api_event, invoke

ADA = "Ada.Lovelace@Example.com"
ADA_LEAD = lead_id_for(ADA.lower())
ADA_LAPTOP = "AdaLaptopAAAAAAAAAAAAA"
ADA_PHONE = "AdaPhoneBBBBBBBBBBBBBB"
BOB_VISITOR = "BobVisitorCCCCCCCCCCCC"
BUYER = "cfo@buyer.example.com"  # the other contact of Ada's deal: stays on it
ENV = {"TABLE_NAME": TABLE_NAME, "BUCKET_NAME": BUCKET}


def deal(
    functions: dict[str, ModuleType], event_id: str, deal_id: str, emails: list[str], status: str
) -> None:
    body = json.dumps(
        {
            "event_id": event_id,
            "deal_id": deal_id,
            "contact_emails": emails,
            "stage": status,
            "status": status,
            "amount": "12000.10",
            "currency": "USD",
            "occurred_at": datetime.fromtimestamp((NOW - HOUR) / 1000, tz=UTC).isoformat(),
        }
    ).encode()
    headers = {"x-closedloop-signature": sign_generic(SIGNING_SECRET, body, int(time.time()))}
    event = api_event(
        "POST", "/webhooks/generic", body=body, content_type="application/json", headers=headers
    )
    assert invoke(functions["crm_webhook"], event)[0] == 200


@pytest.fixture
def ada_and_bob(loop: dict[str, ModuleType]) -> dict[str, ModuleType]:  # noqa: F811 - the fixture
    """Ada: two devices, a form, a won deal shared with a buyer's CFO. Bob: his own visit, form, deal."""
    visit(
        loop,
        ADA_LAPTOP,
        "evt-ada-00001",
        f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc",
        at=NOW - 5 * DAY,
    )
    visit(
        loop, ADA_PHONE, "evt-ada-00002", f"{SITE_ORIGIN}/?utm_source=news&utm_medium=email", at=NOW - 2 * DAY
    )
    identify(loop, ADA_LAPTOP, ADA)
    identify(loop, ADA_PHONE, ADA)
    visit(
        loop, BOB_VISITOR, "evt-bob-00001", f"{SITE_ORIGIN}/blog", at=NOW - 3 * DAY, referrer="https://x.com/"
    )
    identify(loop, BOB_VISITOR, "bob@example.com")
    deal(loop, "deal-a-1", "A-1", [ADA, BUYER], "won")
    deal(loop, "deal-b-1", "B-1", ["bob@example.com"], "open")
    run_job(loop, {"mode": "full"})
    return loop


def table_text(dynamodb: Any) -> str:
    items: list[Any] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=TABLE_NAME):
        items += page["Items"]
    return json.dumps(items).lower()


def lake_objects() -> dict[str, bytes]:
    s3 = boto3.client("s3", region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def lake_text() -> str:
    """Every Parquet object, decoded (every cell) and raw (the footer's min/max statistics)."""
    parts = []
    for key, body in lake_objects().items():
        parts.append(body.decode("latin-1"))
        if key.endswith(".parquet"):
            parts.append(json.dumps(pq.read_table(io.BytesIO(body)).to_pylist(), default=str))
    return "\n".join(parts).lower()


def traces_of_ada(dynamodb: Any) -> dict[str, list[str]]:
    needles = [ADA.lower(), ADA_LEAD, ADA_LAPTOP.lower(), ADA_PHONE.lower(), "evt-ada-"]
    table, lake = table_text(dynamodb), lake_text()
    return {"table": [n for n in needles if n in table], "lake": [n for n in needles if n in lake]}


def test_erase_leaves_no_trace_of_the_person_in_the_table_or_the_lake(ada_and_bob, dynamodb, capsys):
    # Given the whole loop ran, and Ada is everywhere
    assert traces_of_ada(dynamodb) == {
        "table": [ADA.lower(), ADA_LEAD, ADA_LAPTOP.lower(), ADA_PHONE.lower(), "evt-ada-"],
        "lake": [ADA_LEAD, ADA_LAPTOP.lower(), ADA_PHONE.lower(), "evt-ada-"],  # never the e-mail
    }
    bob_lead = lead_id_for("bob@example.com")

    # When an admin erases her (any spelling of the address)
    status = closedloop_cli(["erase", "--email", " ada.lovelace@EXAMPLE.com "], environ=ENV)

    # Then nothing of her is left, anywhere
    assert status == 0
    report = json.loads(capsys.readouterr().out)["erased"]
    assert report["found"] and report["visitors"] == 2 and report["touches"] == 2
    assert report["deals_updated"] == 1 and report["partitions_rewritten"] >= 4
    assert traces_of_ada(dynamodb) == {"table": [], "lake": []}
    # ... and everything of Bob, and the deal she shared with the buyer, is still there
    assert bob_lead in table_text(dynamodb) and bob_lead in lake_text()
    store = DynamoStore(TABLE_NAME, client=dynamodb)
    shared = store.get_deal("generic", "A-1")
    assert shared is not None
    assert (shared.contact_emails, shared.lead_ids) == ((BUYER,), (lead_id_for(BUYER),))
    assert all(ADA.lower() not in e.contact_emails for e in store.deal_events("generic", "A-1"))


def test_the_next_attribute_run_credits_the_deal_again_without_her(ada_and_bob, dynamodb, tmp_path):
    from tests.integration.test_attribute_job import duckdb_over_lake

    closedloop_cli(["erase", "--email", ADA], environ=ENV)

    run_job(ada_and_bob)

    assert traces_of_ada(dynamodb) == {"table": [], "lake": []}
    sql = duckdb_over_lake(tmp_path)
    credits = sql.execute(
        "SELECT model, SUM(credit), SUM(revenue_credit), MIN(channel) FROM closedloop.attribution_credits "
        "WHERE deal_id = 'A-1' GROUP BY model"
    ).fetchall()
    assert credits  # the deal's revenue is still counted, once per model ...
    for model, credit, revenue, channel in credits:
        assert (credit, revenue) == (pytest.approx(1), pytest.approx(12_000.10)), model
        assert channel == "(no web touch)"  # ... but no longer credited to her journey


def test_erasing_twice_or_someone_unknown_changes_nothing(ada_and_bob, dynamodb, capsys):
    closedloop_cli(["erase", "--email", ADA], environ=ENV)
    table, lake = table_text(dynamodb), lake_objects()
    capsys.readouterr()

    assert closedloop_cli(["erase", "--email", ADA], environ=ENV) == 0
    assert closedloop_cli(["erase", "--email", "nobody@example.com"], environ=ENV) == 0

    assert [json.loads(line)["erased"]["found"] for line in capsys.readouterr().out.splitlines()] == [
        False
    ] * 2
    assert (table_text(dynamodb), lake_objects()) == (table, lake)


def test_a_shared_computer_keeps_the_other_persons_history(loop, dynamodb):  # noqa: F811
    # Given one computer: Cy's visit and form, then Ada's form and her next visit on it
    shared = "SharedComputerDDDDDDDDD"
    visit(loop, shared, "evt-cy-000001", f"{SITE_ORIGIN}/?utm_source=bing&utm_medium=cpc", at=NOW - 4 * DAY)
    identify(loop, shared, "cy@example.com")
    identify(loop, shared, ADA)
    time.sleep(0.01)
    now = int(time.time() * 1000)
    visit(loop, shared, "evt-ada-00009", f"{SITE_ORIGIN}/?utm_source=news&utm_medium=email", at=now)
    store = DynamoStore(TABLE_NAME, client=dynamodb)
    assert len(store.touches_of_visitor(shared)) == 2

    closedloop_cli(["erase", "--email", ADA], environ={"TABLE_NAME": TABLE_NAME})

    assert [t.touch_id for t in store.touches_of_visitor(shared)] == ["evt-cy-000001"]
    assert [link.lead_id for link in store.links_of_visitor(shared)] == [lead_id_for("cy@example.com")]
    assert ADA_LEAD not in table_text(dynamodb) and "evt-ada-" not in table_text(dynamodb)


def test_the_erase_function_takes_an_email_and_answers_counts(ada_and_bob, dynamodb, monkeypatch):
    erase = load_function("erase")
    context = LambdaContextStub(function_name="erase")

    assert erase.handler({"email": "not an address"}, context) == {"error": "the email address is not valid"}
    assert "error" in erase.handler({}, context)
    reply = erase.handler({"email": ADA}, context)

    assert reply["erased"]["found"] is True
    assert ADA.lower() not in json.dumps(reply).lower() and ADA_LEAD not in json.dumps(reply)
    assert traces_of_ada(dynamodb) == {"table": [], "lake": []}


def test_the_cli_needs_a_table_and_a_valid_address(capsys):
    assert closedloop_cli(["erase", "--email", ADA], environ={}) == 2
    assert "TABLE_NAME" in capsys.readouterr().err
    assert closedloop_cli(["erase", "--email", "not an address"], environ=ENV) == 2
    assert "not valid" in capsys.readouterr().err


# -- every stored spelling, every copy ---------------------------------------------------------------------


def versioned_deal(
    functions: dict[str, ModuleType], event_id: str, deal_id: str, emails: list[str], *, version: int
) -> None:
    """A generic CRM event for ``deal_id`` at ``version`` (the CRM's ordering key) naming ``emails``."""
    body = json.dumps(
        {
            "event_id": event_id,
            "deal_id": deal_id,
            "contact_emails": emails,
            "stage": "proposal",
            "status": "open",
            "version": version,
            "occurred_at": datetime.fromtimestamp((NOW - HOUR) / 1000, tz=UTC).isoformat(),
        },
        ensure_ascii=False,
    ).encode()
    headers = {"x-closedloop-signature": sign_generic(SIGNING_SECRET, body, int(time.time()))}
    event = api_event(
        "POST", "/webhooks/generic", body=body, content_type="application/json", headers=headers
    )
    assert invoke(functions["crm_webhook"], event)[0] == 200


def strings_of_every_item(dynamodb: Any) -> list[str]:
    """Every string of every item of the table (keys, attributes, lists and maps), as stored."""

    def strings(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return []

    found: list[str] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=TABLE_NAME):
        for item in page["Items"]:
            found += strings(item)
    return found


def spellings_left(dynamodb: Any, spellings: list[str]) -> list[str]:
    """The spellings that some stored string still contains (compared case-insensitively)."""
    stored = [s.lower() for s in strings_of_every_item(dynamodb)]
    return [spelling for spelling in spellings if any(spelling.lower() in s for s in stored)]


def test_an_older_deal_event_that_arrived_late_is_erased_with_its_contact(loop, dynamodb, capsys):  # noqa: F811
    # Given a deal whose newer event names only the buyer, then its older event naming Bob arrives
    bob = "bob.late@example.com"
    versioned_deal(loop, "deal-c-2", "C-1", [BUYER], version=2)
    versioned_deal(loop, "deal-c-1", "C-1", [bob.upper()], version=1)
    assert spellings_left(dynamodb, [bob]) == [bob]  # the history keeps the late event, with Bob
    capsys.readouterr()

    # When Bob is erased
    assert closedloop_cli(["erase", "--email", bob], environ={"TABLE_NAME": TABLE_NAME}) == 0

    # Then he was found, and no item of the table holds his address or his lead id any more
    report = json.loads(capsys.readouterr().out)["erased"]
    assert report["found"] is True and report["deals_updated"] == 1
    assert spellings_left(dynamodb, [bob, lead_id_for(bob)]) == []
    # ... and the deal, its state and its other contact are untouched
    store = DynamoStore(TABLE_NAME, client=dynamodb)
    state = store.get_deal("generic", "C-1")
    assert state is not None and state.contact_emails == (BUYER,)
    assert [e.event_id for e in store.deal_events("generic", "C-1")] == ["deal-c-1", "deal-c-2"]


def test_every_spelling_of_an_international_address_is_erased(loop, dynamodb, capsys):  # noqa: F811
    # Given Ada's form with ada@bücher.de, and a CRM that spells her address in ASCII (IDNA) on one
    # event and decomposed (NFD: u + combining diaeresis) on another
    nfc = "ada@bücher.de"
    nfd = unicodedata.normalize("NFD", nfc)
    idna = "ada@xn--bcher-kva.de"
    visit(loop, ADA_LAPTOP, "evt-ada-00001", f"{SITE_ORIGIN}/?utm_source=google&utm_medium=cpc", at=NOW - DAY)
    identify(loop, ADA_LAPTOP, nfc)
    versioned_deal(loop, "deal-u-1", "U-1", [idna, BUYER], version=1)
    versioned_deal(loop, "deal-u-2", "U-1", [nfd.upper()], version=2)
    spellings = [nfc, nfd, idna, lead_id_for(nfc), ADA_LAPTOP]
    assert spellings_left(dynamodb, spellings) == spellings
    capsys.readouterr()

    # When she is erased by the address she typed
    assert closedloop_cli(["erase", "--email", nfc], environ={"TABLE_NAME": TABLE_NAME}) == 0

    # Then no item (lead, visitor, the deal's state, every event of its history) holds any spelling
    assert json.loads(capsys.readouterr().out)["erased"]["deals_updated"] == 1
    assert spellings_left(dynamodb, spellings) == []
    state = DynamoStore(TABLE_NAME, client=dynamodb).get_deal("generic", "U-1")
    assert state is not None and state.contact_emails == (BUYER,)
