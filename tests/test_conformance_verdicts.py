"""Pure logic: how ``s3result conformance`` judges a store's answer (integration:
tests/integration/test_conformance_command.py runs the command against moto and nanio)."""

from __future__ import annotations

import pytest

from s3result.conformance.verdicts import MEANINGS

# The answers CI sees (conformance/divergences.py): nanio ignores conditions, Ceph RGW 16.2 and
# Swift refuse ones that hold.
IGNORED = [
    ("if_none_match_on_existing_key", ("200", "overwritten")),
    ("if_match_stale_etag", (200, "overwritten")),
    ("if_match_missing_key", "200"),
    ("concurrent_creates_one_winner", "several winners"),
    ("compare_and_swap_counter", "lost updates"),
]
REFUSED = [
    ("if_match_current_etag", 412),
    ("compare_and_swap_counter", "no progress"),
    ("if_none_match_on_missing_key", 501),
    ("concurrent_creates_one_winner", "refused by every writer"),
    ("if_none_match_on_existing_key", ("501", "unchanged")),
]


@pytest.mark.parametrize(("check", "observed"), IGNORED)
def test_a_store_that_ignores_a_condition_fails(check: str, observed: object) -> None:
    meaning = MEANINGS[check]
    assert meaning.fails(observed)
    assert "ignores If-None-Match/If-Match" in meaning.meaning(observed)
    assert "conditional_writes=etag" in meaning.meaning(observed)


@pytest.mark.parametrize(("check", "observed"), REFUSED)
def test_a_store_that_refuses_a_condition_that_holds_differs(check: str, observed: object) -> None:
    meaning = MEANINGS[check]
    assert not meaning.fails(observed)
    assert "refuses a condition that holds" in meaning.meaning(observed)
    assert "conditional_writes=disabled" in meaning.meaning(observed)
