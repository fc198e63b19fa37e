"""A bounded memory of ids already handled (the hub's notification ids): the newest `limit` are kept, so
a repeated delivery is recognised however long the hub retried, and the memory never grows past `limit`.
"""

from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    def __init__(self, limit: int = 10_000) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, item: str) -> None:
        """Remember `item` as the newest; forget the oldest beyond the limit."""
        self._ids[item] = None
        self._ids.move_to_end(item)
        while len(self._ids) > self._limit:
            self._ids.popitem(last=False)
