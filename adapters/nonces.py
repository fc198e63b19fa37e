"""An adapter's memory of the hub's signature nonces: each accepted once within the created window."""

from __future__ import annotations

from broker.signing import CREATED_WINDOW_S


class NonceWindow:
    def __init__(self, window_s: int = CREATED_WINDOW_S) -> None:
        self._window_s = window_s
        self._seen: dict[str, float] = {}

    def accept(self, nonce: str, now: float) -> bool:
        """True the first time `nonce` is seen; nonces older than twice the window are forgotten."""
        if len(self._seen) > 10_000:
            horizon = now - 2 * self._window_s
            self._seen = {seen: at for seen, at in self._seen.items() if at >= horizon}
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True
