"""Telling that a broker holds another log, or less of it, than a reader has read."""

from __future__ import annotations

from foundation.log_identity import went_back


def test_the_same_log_read_up_to_its_end_or_less_is_fine() -> None:
    assert went_back("c1", "c1", {0: 10, 1: 4}, {0: 10, 1: 9}) is None
    assert went_back(None, "c1", {}, {0: 0}) is None  # nothing read, nothing recorded yet


def test_another_cluster_is_another_log_whatever_the_offsets() -> None:
    why = went_back("tansu-a", "tansu-b", {0: 1}, {0: 500})
    assert why is not None and "tansu-b" in why and "tansu-a" in why


def test_a_partition_ending_before_what_was_read_went_back() -> None:
    why = went_back("c1", "c1", {0: 10, 1: 40, 2: 7}, {0: 10, 1: 3, 2: 0})
    assert why == ("the log ends before what was read from it: partition 1 ends at 3, read up to 40, "
                   "partition 2 ends at 0, read up to 7")


def test_a_broker_naming_no_cluster_is_judged_by_its_offsets_alone() -> None:
    assert went_back("c1", None, {0: 5}, {0: 5}) is None
    assert went_back(None, None, {0: 5}, {0: 2}) is not None
    assert went_back("c1", "c1", {0: 5}, {}) is None  # a partition it does not know is not judged
