"""VersionFeed: a watcher gets the current version, then each new one; a slow one skips to the latest."""

from __future__ import annotations

import asyncio

from retrieval_svc.version_feed import VersionFeed


async def test_watchers_get_the_current_version_then_each_new_one() -> None:
    feed = VersionFeed()
    watch = feed.watch()
    first = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0)
    assert not first.done()  # nothing to say before the index is loaded
    feed.publish(5)
    assert await asyncio.wait_for(first, 1) == 5
    feed.publish(5)  # not new: no step
    feed.publish(6)
    assert await asyncio.wait_for(anext(watch), 1) == 6
    late = feed.watch()
    assert await asyncio.wait_for(anext(late), 1) == 6


async def test_a_slow_watcher_skips_to_the_latest_version() -> None:
    feed = VersionFeed()
    feed.publish(1)
    watch = feed.watch()
    assert await anext(watch) == 1
    for version in (2, 3, 4):
        feed.publish(version)
    assert await asyncio.wait_for(anext(watch), 1) == 4


async def test_close_ends_every_watch() -> None:
    feed = VersionFeed()
    feed.publish(1)
    watches = [feed.watch() for _ in range(3)]
    for watch in watches:
        assert await anext(watch) == 1
    waiting = [asyncio.ensure_future(anext(w, None)) for w in watches]
    await asyncio.sleep(0)
    feed.close()
    assert await asyncio.wait_for(asyncio.gather(*waiting), 1) == [None, None, None]
