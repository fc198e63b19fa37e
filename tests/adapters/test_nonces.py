"""The adapter's nonce window (pure: the clock is passed in)."""

from adapters.nonces import NonceWindow


def test_a_nonce_is_accepted_once_within_the_horizon() -> None:
    window = NonceWindow(window_s=300)
    assert window.accept("a", 0.0)
    assert not window.accept("a", 599.0)
    assert window.accept("a", 601.0)  # forgotten after twice the window: its created check would fail anyway
