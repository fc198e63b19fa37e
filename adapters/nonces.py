"""An adapter's memory of the hub's signature nonces: each accepted once within the created window."""

from __future__ import annotations

from collections import deque

from broker.base.signing import CREATED_WINDOW_S


class NonceWindow:
    def __init__(self, window_s: int = CREATED_WINDOW_S) -> None:
        self._horizon_s = 2 * window_s  # a nonce older than this can no longer pass the created check
        self._seen: set[str] = set()
        self._order: deque[tuple[float, str]] = deque()

    def accept(self, nonce: str, now: float) -> bool:
        """True the first time `nonce` is seen; nonces past the horizon are forgotten, oldest first."""
        while self._order and self._order[0][0] < now - self._horizon_s:
            self._seen.discard(self._order.popleft()[1])
        if nonce in self._seen:
            return False
        self._seen.add(nonce)
        self._order.append((now, nonce))
        return True
