"""Visitor tokens: a token names one visitor of one workspace, for a year, and nothing else."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parley.channels.webchat.visitor import (
    MAX_AGE,
    InvalidVisitorToken,
    Visitor,
    issue_token,
    new_visitor_id,
    read_token,
)

KEY = "test-secret-key"


def test_a_token_names_its_visitor_workspace_and_issue_time(frozen_clock):
    token = issue_token(KEY, workspace="demo", visitor_id="v_abc")

    visitor = read_token(KEY, token, workspace="demo")

    assert visitor == Visitor(workspace="demo", visitor_id="v_abc", issued_at=frozen_clock.now)


def test_a_token_for_another_workspace_is_refused():
    token = issue_token(KEY, workspace="demo", visitor_id="v_abc")

    with pytest.raises(InvalidVisitorToken, match="another workspace"):
        read_token(KEY, token, workspace="other-store")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda t: issue_token("another-key", workspace="demo", visitor_id="v_abc"),
            id="other_key_case",
        ),
        pytest.param(
            lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), id="altered_signature_case"
        ),
        pytest.param(lambda t: "not-a-token", id="garbage_case"),
        pytest.param(lambda t: "", id="empty_case"),
    ],
)
def test_a_forged_or_damaged_token_is_refused(tamper):
    token = issue_token(KEY, workspace="demo", visitor_id="v_abc")

    with pytest.raises(InvalidVisitorToken, match="bad visitor token"):
        read_token(KEY, tamper(token), workspace="demo")


def test_a_token_is_good_for_a_year_and_refused_after(frozen_clock):
    token = issue_token(KEY, workspace="demo", visitor_id="v_abc")

    frozen_clock.advance(MAX_AGE - timedelta(seconds=1))
    assert read_token(KEY, token, workspace="demo").visitor_id == "v_abc"

    frozen_clock.advance(timedelta(seconds=2))
    with pytest.raises(InvalidVisitorToken, match="expired"):
        read_token(KEY, token, workspace="demo")


def test_a_signed_payload_that_names_no_visitor_is_refused():
    token = issue_token(KEY, workspace="demo", visitor_id="chosen-by-someone")

    with pytest.raises(InvalidVisitorToken, match="names no visitor"):
        read_token(KEY, token, workspace="demo")


def test_visitor_ids_are_random():
    ids = {new_visitor_id() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(visitor_id.startswith("v_") and len(visitor_id) == 24 for visitor_id in ids)
