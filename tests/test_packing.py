"""How the local judge groups requests that share a prefix (pure logic: token ids are made up)."""

from __future__ import annotations

from rubrix.judges.hf import _group_by_prefix, _Prepared

PREFIX = list(range(1000, 1100))   # 100 shared tokens: the template, question and answer


def _requests(n: int, suffix_len: int, prefix=PREFIX) -> list[_Prepared]:
    return [_Prepared(i, prefix + [i] * suffix_len, None) for i in range(n)]


def test_one_sample_is_one_group_when_its_suffixes_fit():
    groups = _group_by_prefix(_requests(10, 40))
    assert [len(g) for g in groups] == [10]


def test_long_suffix_runs_are_split_at_the_cap_and_nothing_is_lost():
    groups = _group_by_prefix(_requests(10, 40), max_suffix_tokens=100)
    assert [len(g) for g in groups] == [2] * 5            # 2 x 40 fits in 100, 3 x 40 does not
    assert sorted(p.index for g in groups for p in g) == list(range(10))


def test_a_single_request_longer_than_the_cap_still_gets_a_group():
    groups = _group_by_prefix(_requests(3, 300), max_suffix_tokens=100)
    assert [len(g) for g in groups] == [1, 1, 1]


def test_different_samples_never_share_a_group():
    a = _requests(3, 10)
    b = [_Prepared(10 + i, list(range(5000, 5100)) + [i] * 10, None) for i in range(3)]
    groups = _group_by_prefix(a + b)
    assert sorted(sorted(p.index for p in g) for g in groups) == [[0, 1, 2], [10, 11, 12]]
