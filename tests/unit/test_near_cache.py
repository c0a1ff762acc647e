"""VersionedLRU: bounded by entries and bytes, and an entry only ever answers for its own index version."""

from __future__ import annotations

from likeopt.caching.near_cache import VersionedLRU


def test_an_entry_answers_only_for_its_version() -> None:
    cache: VersionedLRU[str] = VersionedLRU("test")
    cache.put("q", 3, "reply", 5)
    assert cache.get("q", 3) == "reply"
    assert cache.get("q", 4) is None  # the index moved on: stale, never served
    assert cache.get("q", None) is None  # the current version is unknown: nothing is served


def test_a_newer_version_empties_the_cache_and_an_older_one_is_ignored() -> None:
    cache: VersionedLRU[str] = VersionedLRU("test")
    cache.put("a", 3, "old", 3)
    cache.put("b", 4, "new", 3)
    assert (len(cache), cache.bytes, cache.get("b", 4)) == (1, 3, "new")
    cache.put("c", 3, "late reply of an older version", 30)
    assert cache.get("c", 3) is None and cache.get("c", 4) is None and len(cache) == 1


def test_least_recently_used_entries_go_first_within_both_bounds() -> None:
    cache: VersionedLRU[str] = VersionedLRU("test", max_entries=3, max_bytes=100)
    for key in "abc":
        cache.put(key, 1, key, 10)
    assert cache.get("a", 1) == "a"  # now the most recent
    cache.put("d", 1, "d", 10)
    assert cache.get("b", 1) is None and {k for k in "acd" if cache.get(k, 1)} == set("acd")
    cache.put("big", 1, "big", 85)  # needs 85 of 100 bytes: only the newest small one may stay
    assert cache.get("big", 1) == "big" and cache.bytes <= 100 and len(cache) == 2
    cache.put("huge", 1, "huge", 101)  # larger than the whole cache: not kept, nothing evicted for it
    assert cache.get("huge", 1) is None and cache.get("big", 1) == "big"


def test_replacing_a_key_keeps_the_byte_count_true() -> None:
    cache: VersionedLRU[str] = VersionedLRU("test")
    cache.put("k", 1, "short", 5)
    cache.put("k", 1, "much longer", 11)
    assert (cache.get("k", 1), cache.bytes, len(cache)) == ("much longer", 11, 1)


def test_zero_entries_turns_it_off() -> None:
    cache: VersionedLRU[str] = VersionedLRU("test", max_entries=0)
    cache.put("k", 1, "v", 1)
    assert cache.get("k", 1) is None and cache.bytes == 0
