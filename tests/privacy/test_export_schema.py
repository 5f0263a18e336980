"""An access request's export has a published JSON Schema (RELIABILITY P2: "the export
validates against a JSON schema"), and the schema follows the tables it is made from."""

from __future__ import annotations

import copy

import pytest
from jsonschema import Draft202012Validator, ValidationError
from sqlalchemy import inspect

from parley.channels.base import ChannelKind
from parley.jobs.worker import Worker, WorkerConfig
from parley.privacy import export as exports
from parley.privacy import service as privacy
from parley.privacy.tasks import CustomerRequestTask
from support import (
    all_adapters,
    customer_writes,
    deliveries,
    drain,
    inbox_worker,
    post,
    seed,
    signed,
)

SCHEMA = exports.export_schema()
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture
def ada_export(db, tmp_path) -> dict:
    """Ada's export after an order to delivery, a WhatsApp question and its answer."""
    seed(db)
    for delivery in deliveries("Ada"):
        post(db, delivery)
    customer_writes(db, channel=ChannelKind.WHATSAPP, sender="+447911123456", text="track #1501")
    drain(inbox_worker(db, all_adapters(), tmp_model_dir=tmp_path / "model"))
    payload = {"customer": {"id": 7001, "email": "ada@example.com"}, "orders_requested": [501]}
    body, headers = signed("customers/data_request", payload, webhook_id="access")
    answer = post(db, None, body=body, headers=headers)
    drain(Worker(db, [CustomerRequestTask(db, rest_seconds=0)], WorkerConfig()))
    with db.transaction() as session:
        found = privacy.find_export(session, workspace_id=1, request_id=int(answer["id"]))
    assert found is not None
    return found


def test_an_access_export_validates_against_the_published_schema(ada_export):
    Draft202012Validator.check_schema(SCHEMA)
    VALIDATOR.validate(ada_export)
    # Every kind of row there is to hold was held, so every section's schema was used.
    assert {name for name, rows in ada_export.items() if isinstance(rows, list) and rows} >= {
        "customers",
        "identities",
        "consent_records",
        "orders",
        "fulfillments",
        "store_events",
        "journey_runs",
        "conversations",
        "messages",
        "delivery_attempts",
        "assistant_turns",
    }


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda e: e["messages"][0].update(surprise=1), "Additional properties"),
        (lambda e: e["orders"][0].update(id="501"), "is not of type 'integer'"),
        (lambda e: e["customers"][0].update(created_at="yesterday"), "does not match"),
        (lambda e: e.update(format="parley.privacy-export/2"), "was expected"),
        (lambda e: e["identities"][0].pop("value"), "'value' is a required property"),
    ],
)
def test_the_schema_refuses_an_export_that_is_not_the_format(ada_export, change, complaint):
    changed = copy.deepcopy(ada_export)
    change(changed)
    with pytest.raises(ValidationError) as refused:
        VALIDATOR.validate(changed)
    assert complaint in refused.value.message


def test_the_schema_names_every_column_of_every_exported_table_and_nothing_else():
    """A column added to, or dropped from, an exported table changes the format: bump its
    version (``FORMAT``) and publish its schema, or this fails."""
    sections = {
        name: schema["items"]["$ref"].removeprefix("#/$defs/")
        for name, schema in SCHEMA["properties"].items()
        if schema.get("type") == "array" and "$ref" in schema.get("items", {})
    }
    assert list(sections) == list(exports.SECTIONS)
    for name, model in exports.SECTIONS.items():
        columns = {a.key for a in inspect(model).column_attrs} - {"workspace_id"}
        described = SCHEMA["$defs"][sections[name]]
        assert set(described["properties"]) == columns, name
        assert set(described["required"]) == columns, name
