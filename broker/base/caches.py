"""Cache mechanics for what every exchange reads and what rarely changes (keys, agencies, categories,
purposes, holders, relationships): a bounded LRU whose entries are trusted for a short time after they were
read, dropped at once by a write made through the same process, and read once for concurrent misses.

A write made by another hub process is seen when the entry expires, so `ttl_s` bounds how long any process
may act on what the store no longer says (PROTOCOL.md: a revocation or suspension counts within seconds).
Where writers also move a shared version number, a VersionWatch reads it at most every `follow_s` seconds
(one read for all concurrent callers) and drops the caches as soon as it moved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from cachetools import TTLCache

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")
Version = TypeVar("Version")
Clock = Callable[[], float]


@dataclass(frozen=True)
class CacheSettings:
    ttl_s: float = 1.0  # how long an entry read from the store is trusted; bounds what other processes see late
    max_entries: int = 65_536  # per cache, least recently used dropped first: the store keeps the rest
    clock: Clock = field(default=time.monotonic, compare=False)
    follow_s: float = 0.0  # how often a shared version (VersionWatch) is read again; 0: on every check
    long_ttl_s: float = 300.0  # for entries a VersionWatch drops whenever any writer changes them

    def watched(self) -> CacheSettings:
        """The settings of caches whose every change moves a watched version: kept for `long_ttl_s`."""
        return replace(self, ttl_s=self.long_ttl_s)


class ReadThrough(Generic[Key, Value]):
    """Values read from the store by key, kept at most `ttl_s` seconds, at most `max_entries` of them."""

    def __init__(self, settings: CacheSettings) -> None:
        self._entries: TTLCache[Key, Value] = TTLCache(settings.max_entries, settings.ttl_s, timer=settings.clock)
        self._loading: dict[Key, asyncio.Future[Value]] = {}
        self._generation = 0  # bumped by clear(): a read begun before a write must not be kept after it

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Key) -> bool:
        return key in self._entries

    async def get(self, key: Key, load: Callable[[], Awaitable[Value]]) -> Value:
        """The cached value, or the one `load` reads (shared by the callers that miss while it runs)."""
        try:
            return self._entries[key]
        except KeyError:
            pass
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(load())
            self._loading[key] = loading
            generation = self._generation
            loading.add_done_callback(lambda done: self._settle(key, done, generation))
        # One caller giving up (a cancelled request) must not cancel the read the others wait for.
        return await asyncio.shield(loading)

    def clear(self) -> None:
        """Forget every entry and every read under way: the next caller reads the store again."""
        self._generation += 1
        self._entries.clear()
        self._loading.clear()

    def _settle(self, key: Key, done: asyncio.Future[Value], generation: int) -> None:
        if self._loading.get(key) is done:
            del self._loading[key]
        if generation == self._generation and not done.cancelled() and done.exception() is None:
            self._entries[key] = done.result()


class VersionWatch(Generic[Version]):
    """A version the store keeps and every writer moves: `check` reads it at most once per `follow_s`
    (callers meanwhile share the last read) and calls `on_change` with it, and the one seen before, when it
    differs from that."""

    def __init__(
        self,
        read: Callable[[], Awaitable[Version]],
        on_change: Callable[[Version, Version | None], None],
        settings: CacheSettings,
    ) -> None:
        self._read = read
        self._on_change = on_change
        reads = CacheSettings(ttl_s=settings.follow_s, max_entries=1, clock=settings.clock)
        self._last: ReadThrough[None, Version] = ReadThrough(reads)
        self._seen: Version | None = None

    @property
    def seen(self) -> Version | None:
        """The version last seen (what the caches it watches were last dropped for), or None before any."""
        return self._seen

    async def check(self) -> None:
        self.saw(await self._last.get(None, self._read))

    def saw(self, version: Version) -> bool:
        """Take `version`, read by the caller with other reads of its own; whether it differs from the one seen
        before (then `on_change` was called)."""
        if version == self._seen:
            return False
        seen, self._seen = self._seen, version
        self._on_change(version, seen)
        return True
