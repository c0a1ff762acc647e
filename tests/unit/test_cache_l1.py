"""L1Cache: LRU order, TTL expiry, byte and entry limits, eviction counting."""

from __future__ import annotations

from cache_svc.l1 import L1Cache


class FakeClock:
    """A clock the test moves by hand, so expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(name: str) -> tuple[str, str]:
    return ("ns", name)


def test_get_returns_what_was_set_and_misses_otherwise() -> None:
    cache = L1Cache(max_entries=10, max_bytes=1000)
    assert cache.set(key("a"), b"1", ttl_s=60)
    assert cache.get(key("a")) == b"1"
    assert cache.get(key("b")) is None
    assert cache.get(("other", "a")) is None


def test_least_recently_used_is_evicted_first() -> None:
    cache = L1Cache(max_entries=2, max_bytes=1000)
    cache.set(key("a"), b"1", 60)
    cache.set(key("b"), b"2", 60)
    cache.get(key("a"))  # "b" is now the least recently used
    cache.set(key("c"), b"3", 60)
    assert cache.get(key("b")) is None
    assert cache.get(key("a")) == b"1"
    assert cache.get(key("c")) == b"3"
    assert cache.entries == 2
    assert cache.evictions == 1


def test_entry_expires_after_its_ttl() -> None:
    clock = FakeClock()
    cache = L1Cache(max_entries=10, max_bytes=1000, clock=clock)
    cache.set(key("short"), b"x", ttl_s=5)
    cache.set(key("long"), b"y", ttl_s=50)
    clock.now += 4.9
    assert cache.get(key("short")) == b"x"
    clock.now += 0.1
    assert cache.get(key("short")) is None
    assert cache.get(key("long")) == b"y"
    assert cache.entries == 1
    assert cache.evictions == 0  # expiry is not eviction


def test_overwrite_renews_value_ttl_and_byte_count() -> None:
    clock = FakeClock()
    cache = L1Cache(max_entries=10, max_bytes=1000, clock=clock)
    cache.set(key("a"), b"old-value", ttl_s=5)
    clock.now += 4
    cache.set(key("a"), b"new", ttl_s=5)
    clock.now += 4
    assert cache.get(key("a")) == b"new"
    assert cache.entries == 1
    assert cache.bytes == len("ns") + len("a") + len(b"new")


def test_byte_limit_evicts_until_it_fits() -> None:
    # Each entry costs 2 (namespace) + 1 (key) + 7 (value) = 10 bytes.
    cache = L1Cache(max_entries=100, max_bytes=30)
    for name in "abc":
        cache.set(key(name), b"7 bytes", 60)
    assert cache.bytes == 30
    cache.set(key("d"), b"7 bytes" * 2, 60)  # 17 bytes: two entries must go
    assert cache.get(key("a")) is None
    assert cache.get(key("b")) is None
    assert cache.get(key("c")) == b"7 bytes"
    assert cache.bytes == 27
    assert cache.evictions == 2


def test_key_bytes_count_in_utf8() -> None:
    cache = L1Cache(max_entries=10, max_bytes=1000)
    cache.set(("ns", "é"), b"v", 60)
    assert cache.bytes == 2 + 2 + 1


def test_value_larger_than_the_byte_limit_is_not_stored() -> None:
    cache = L1Cache(max_entries=10, max_bytes=20)
    cache.set(key("small"), b"ok", 60)
    cache.set(key("big"), b"old", 60)
    assert not cache.set(key("big"), b"x" * 20, 60)
    assert cache.get(key("big")) is None  # the old value is not served stale
    assert cache.get(key("small")) == b"ok"  # nothing was evicted for it
    assert cache.evictions == 0
    assert cache.bytes == 2 + 5 + 2


def test_delete_reports_live_entries_only() -> None:
    clock = FakeClock()
    cache = L1Cache(max_entries=10, max_bytes=1000, clock=clock)
    cache.set(key("a"), b"1", 10)
    cache.set(key("b"), b"2", 1)
    clock.now += 2
    assert cache.delete(key("a"))
    assert not cache.delete(key("b"))  # expired
    assert not cache.delete(key("missing"))
    assert cache.entries == 0
    assert cache.bytes == 0


def test_clear_empties_without_counting_evictions() -> None:
    cache = L1Cache(max_entries=10, max_bytes=1000)
    cache.set(key("a"), b"1", 60)
    cache.clear()
    assert (cache.entries, cache.bytes, cache.evictions) == (0, 0, 0)
    assert cache.get(key("a")) is None
