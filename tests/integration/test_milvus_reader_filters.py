"""Each reader's access classes in Milvus, from the class table held in process, against a real
``milvus-lite server``: exactly the classes Milvus's own ``array_contains_any`` finds and ``Access.readable_by``
allows, whatever the mix of tenants, users and groups; read once per index version for every reader, not once
per reader; and asked of Milvus reader by reader when the collection holds more classes than the table keeps."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from pymilvus import MilvusClient

from likeopt.runtime.principal import Reader
from retrieval_svc import milvus_class_table
from retrieval_svc.access import Access, reader_keys
from retrieval_svc.milvus_access import access_class, access_schema
from retrieval_svc.milvus_expressions import quoted
from retrieval_svc.milvus_reader_filters import AccessClasses
from tests.integration.test_retrieval_backends import new_name
from tests.support import MilvusServer

TENANTS = ["acme", "globex", ""]
GROUPS = [f"group-{n}" for n in range(40)] + ['odd "quoted" \\ group']
USERS = [f"user-{n}" for n in range(15)]


def random_access(rng: random.Random) -> Access:
    tenant = rng.choice(TENANTS)
    if rng.random() < 0.1:
        return Access.of(tenant, [], [])
    return Access.of(tenant, rng.sample(USERS, rng.randint(0, 2)), rng.sample(GROUPS, rng.randint(0, 6)))


def random_reader(rng: random.Random) -> Reader:
    return Reader.of(rng.choice(TENANTS[:2]), rng.choice(USERS), rng.sample(GROUPS, rng.randint(0, 12)))


def recorded(access: AccessClasses, seed: int, lists: int, readers: int) -> tuple[list[Access], list[Reader]]:
    """lists random access lists, their classes recorded, and readers random readers, all drawn from seed."""
    rng = random.Random(seed)
    accesses = [random_access(rng) for _ in range(lists)]
    access.record(accesses, 10)
    return accesses, [random_reader(rng) for _ in range(readers)]


class Calls:
    """A MilvusClient's data calls, counted by what they ask for."""

    def __init__(self, client: MilvusClient) -> None:
        self.client = client
        self.asked: Counter[str] = Counter()

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.asked[self.kind(method, kwargs.get("filter", ""), kwargs.get("output_fields") or [])] += 1
        return getattr(self.client, method)(*args, **kwargs)

    @staticmethod
    def kind(method: str, where: str, fields: list[str]) -> str:
        if method != "query":
            return method
        if fields == ["count(*)"]:
            return "count"
        if where.startswith("array_contains_any"):
            return "a reader's classes"
        return "class rows" if "readers" in fields else "class numbers"


@pytest.fixture
def classes(milvus: MilvusServer) -> Iterator[tuple[AccessClasses, Calls]]:
    client = MilvusClient(uri=milvus.uri)
    calls = Calls(client)
    access = AccessClasses(calls, new_name(), quoted, "Strong")
    indexes = client.prepare_index_params()
    indexes.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(access.collection, schema=access_schema(), index_params=indexes)
    client.load_collection(access.collection)
    yield access, calls
    client.drop_collection(access.collection)
    client.close()


def allowed(accesses: list[Access], reader: Reader) -> str | None:
    """The filter a reader should get: the classes of the lists it may read."""
    numbers = sorted({access_class(a) for a in accesses if a.readable_by(reader)})
    return f"access_class in [{', '.join(map(str, numbers))}]" if numbers else None


def test_each_reader_gets_exactly_the_classes_of_the_lists_it_may_read(classes: tuple[AccessClasses, Calls]) -> None:
    access, _ = classes
    accesses, readers = recorded(access, 20261207, 300, 60)
    for reader in [*readers, Reader.of("initech", "nobody", [])]:
        from_table = access.condition(reader, 1, 10)
        asked = access.asked_of_milvus(reader_keys(reader), 10)  # Milvus's own array_contains_any
        assert from_table == allowed(accesses, reader)
        assert from_table == access._filter(reader_keys(reader), asked)


def test_a_reader_no_list_opens_reads_nothing_until_one_does(classes: tuple[AccessClasses, Calls]) -> None:
    access, _ = classes
    access.record([Access.of("acme", [], ["eng"]), Access.of("", ["dave"], [])], 10)
    outsider = Reader.of("initech", "erin", ["eng"])
    assert access.condition(outsider, 1, 10) is None
    access.record([Access()], 10)
    assert access.condition(outsider, 1, 10) is None  # the version has not moved yet
    assert access.condition(outsider, 2, 10) == allowed([Access()], outsider)


def test_a_new_version_is_one_count_for_every_reader_and_new_lists_are_read_once(
    classes: tuple[AccessClasses, Calls],
) -> None:
    access, calls = classes
    accesses, readers = recorded(access, 7, 50, 20)
    for reader in readers:
        access.condition(reader, 1, 10)
    for reader in readers:
        assert access.condition(reader, 2, 10) == allowed(accesses, reader)
    assert calls.asked["count"] == 2
    assert (calls.asked["class numbers"], calls.asked["class rows"]) == (1, 1)
    assert calls.asked["a reader's classes"] == 0

    newcomer = Access.of("acme", [], ["a-group-new-at-version-3"])
    access.record([newcomer], 10)
    reader = Reader.of("acme", "someone", ["a-group-new-at-version-3"])
    assert access.condition(reader, 3, 10) == allowed([*accesses, newcomer], reader)
    assert (calls.asked["count"], calls.asked["class numbers"], calls.asked["class rows"]) == (3, 2, 2)


def test_past_the_classes_the_table_holds_each_reader_asks_milvus(
    classes: tuple[AccessClasses, Calls], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(milvus_class_table, "HELD_CLASSES", 10)
    access, calls = classes
    accesses, readers = recorded(access, 11, 40, 10)
    for reader in readers:
        assert access.condition(reader, 1, 10) == allowed(accesses, reader)
    assert calls.asked["a reader's classes"] == len(readers)
    assert calls.asked["class rows"] == 0


def test_classes_gone_from_milvus_are_forgotten_when_the_count_moves(classes: tuple[AccessClasses, Calls]) -> None:
    access, calls = classes
    first, second, third = (Access.of("acme", [], [name]) for name in ("first", "second", "third"))
    access.record([first, second], 10)
    reader = Reader.of("acme", "someone", ["first", "second", "third"])
    assert access.condition(reader, 1, 10) == allowed([first, second], reader)
    client = calls.client
    client.delete(access.collection, ids=[access_class(first), access_class(second)])
    access._recorded.clear()
    access.record([third], 10)
    assert access.condition(reader, 2, 10) == allowed([third], reader)
