"""The public API against its own OpenAPI document (RELIABILITY X2).

Schemathesis generates requests from the document, valid and invalid, for every
operation, and checks each answer on both engines: never a 5xx; only documented status
codes and content types; bodies as documented; invalid input refused; the API key
required. One check is left out: a request the document allows may still be refused for
what its fields say together (an event's payload by its type, a template's content by
its channel), which a schema cannot say; such a refusal is a 422 naming the field.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.testclient import TestClient

from parley.http.api.v1 import create_api
from parley.http.app import create_app
from parley.runtime import Runtime
from parley.settings import get_settings
from support import API_KEY, seed

AUTH = {"Authorization": f"Bearer {API_KEY}"}
OPERATIONS = [
    f"{method.upper()} {path}"
    for path, item in create_api().openapi()["paths"].items()
    for method in item
]
EXAMPLES = 50
"""Per operation and engine, derived from the test's name (``derandomize``): every run
sends the same requests, so a failure is one anyone can run again."""


@pytest.fixture
def api(db, frozen_clock):
    seed(db)
    configured = get_settings(database_url=db.url, embedded_worker=False)
    app = create_app(configured, runtime=Runtime(settings=configured, db=db, adapters={}))
    with TestClient(app):
        yield schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)


@pytest.mark.parametrize("label", OPERATIONS)
def test_every_operation_answers_as_its_document_says_whatever_it_is_sent(api, label):
    [operation] = [found.ok() for found in api.get_all_operations() if found.ok().label == label]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])

    answers_as_documented()
