"""A reader's first search after a write on the milvus backend: what finding its access classes costs (not a test).

A milvus-lite server (or ``--uri``) holds ``--classes`` access lists of tenant acme, each of 1 to 300 of 2,000
random GUID groups. Readers of 1, 200 and 1,000 of those groups then ask for their filter, each at an index
version of its own (as after a write), two ways: asked of Milvus one by one (``array_contains_any`` over the
class collection, what every reader paid before the class table, and what each still pays past HELD_CLASSES)
and from the class table held in process. Then the other readers at the same version, and the first reader after
a write that brings one new access list. Printed: medians in ms.

Usage, from the repository root:
    python -m benchmarks.milvus_reader_classes [--classes 2000] [--readers 10] [--uri URI] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymilvus import MilvusClient

from likeopt.runtime.principal import Reader
from retrieval_svc.access import Access, reader_keys
from retrieval_svc.milvus_access import access_schema
from retrieval_svc.milvus_expressions import quoted
from retrieval_svc.milvus_reader_filters import AccessClasses
from tests.support import MilvusServer

READER_GROUPS = (1, 200, 1000)


def median_ms(timings: list[float]) -> float:
    return round(statistics.median(timings) * 1000, 2)


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def class_collection(client: MilvusClient) -> AccessClasses:
    """A fresh class collection, as MilvusCollection makes it."""
    classes = AccessClasses(lambda m, *a, **k: getattr(client, m)(*a, **k), "bench_classes", quoted, "Strong")
    if client.has_collection(classes.collection):
        client.drop_collection(classes.collection)
    indexes = client.prepare_index_params()
    indexes.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(classes.collection, schema=access_schema(), index_params=indexes)
    client.load_collection(classes.collection)
    return classes


def measure(classes: AccessClasses, count: int, readers: int) -> dict[str, Any]:
    rng = random.Random(20261207)
    groups = [f"{rng.getrandbits(128):032x}" for _ in range(2000)]
    classes.record([Access.of("acme", [], rng.sample(groups, rng.randint(1, 300))) for _ in range(count)], 60)
    version = iter(range(1, 10**6))
    classes.condition(Reader.of("acme", "warm", []), next(version), 60)  # the table's first read
    figures: dict[str, Any] = {}
    for n in READER_GROUPS:
        people = [Reader.of("acme", f"user-{i}", rng.sample(groups, n)) for i in range(readers)]
        asked, first, others = [], [], []
        for reader in people:
            asked.append(timed(lambda r=reader: classes.asked_of_milvus(reader_keys(r), 60)))
            first.append(timed(lambda r=reader: classes.condition(r, next(version), 60)))
        at = next(version)
        for reader in people:
            others.append(timed(lambda r=reader, v=at: classes.condition(r, v, 60)))
        figures[f"{n} groups"] = {
            "asked of milvus": median_ms(asked),
            "table, first at a new version": median_ms(first),
            "table, the others at that version": median_ms(others[1:]),
        }
    classes.record([Access.of("acme", [], ["a-new-group"])], 60)
    newcomer = Reader.of("acme", "newcomer", ["a-new-group"])
    figures["table, first after a new access list"] = median_ms([timed(lambda: classes.condition(newcomer, -5, 60))])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=2000, help="access lists in the class collection")
    parser.add_argument("--readers", type=int, default=10, help="readers of each size")
    parser.add_argument("--uri", help="a running Milvus (else a milvus-lite server of its own in --work)")
    parser.add_argument("--work", type=Path, default=Path("var/bench/milvus-classes"))
    args = parser.parse_args()
    server = None
    if not args.uri:
        shutil.rmtree(args.work, ignore_errors=True)
        args.work.mkdir(parents=True)
        server = MilvusServer(args.work / "milvus")
        server.start()
    try:
        client = MilvusClient(uri=args.uri or server.uri)  # type: ignore[union-attr]
        figures = measure(class_collection(client), args.classes, args.readers)
        client.drop_collection("bench_classes_access")
        print(json.dumps({"classes": args.classes, **figures}, indent=2))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
