"""What a large native chord costs the workers, counted at the wire (counts, never times).

8 forked processes store and count the 2,000 parts of one native chord through a relay that
counts requests and bytes (benchmarks/chords.py ``count_parts``, which also runs it at 10,000
parts with store latency); the part that completes the count joins, publishes and cleans up as
a worker does. Timings are in benchmarks/RESULTS.md. Behaviour under faults:
tests/integration/test_chord_tree.py.
"""

from __future__ import annotations

from benchmarks.chords import count_parts

#: The bounds of DESIGN.md (at 10,000 parts on 24 processes); 2,000 parts must hold them too.
MAX_REQUESTS_PER_PART = 3.5
MAX_BYTES_PER_PART = 4096


def test_two_thousand_parts_cost_at_most_3_5_requests_and_4_kib_per_part() -> None:
    got = count_parts(2000, 8, latency=0.002)
    assert got["fired"] == 1, got
    assert got["body_failed"] == 0 and got["counter_left"] == 0, got
    assert got["requests_per_part"] <= MAX_REQUESTS_PER_PART, got
    assert got["bytes_per_part"] <= MAX_BYTES_PER_PART, got
    # The floor is 3 (the result PUT, the leaf's GET and PUT): a count well under it means the
    # relay missed traffic, and the bounds above would hold for the wrong reason.
    assert got["requests_per_part"] >= 3.0, got
