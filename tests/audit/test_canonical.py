"""A record's canonical content is RFC 8785 whichever encoder writes it: the fast one where it agrees with the
RFC 8785 encoder, that one everywhere else."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from broker.audit.chain import CHAIN_FIELDS, content

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.text(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.text(), max_size=4),
)


@given(st.fixed_dictionaries({name: VALUES for name in CHAIN_FIELDS}))
def test_content_is_rfc8785(record: dict[str, Any]) -> None:
    expected = {name: None if value == "" else value for name, value in record.items()}
    assert content(record) == rfc8785.dumps(expected)


def test_values_json_writes_otherwise_go_through_rfc8785() -> None:
    base: dict[str, Any] = dict.fromkeys(CHAIN_FIELDS)
    for latency in (1.0, -0.0, 1e-7, 1e16, 2.5e21, 0.1, 12.345):
        assert content({**base, "latency_ms": latency}) == rfc8785.dumps({**base, "latency_ms": latency})
    assert content({**base, "reason": "tab\there \u2028 \x7f \x00 é"}) == rfc8785.dumps(
        {**base, "reason": "tab\there \u2028 \x7f \x00 é"}
    )
