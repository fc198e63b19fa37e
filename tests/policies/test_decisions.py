"""Each requester's Casbin enforcer holds only the rules that can match it (its own and its roles', nested roles
included): its decisions are those of one enforcer holding every rule, on random rule sets with role
hierarchies and category groups. The decision cache is bounded and dropped when the version changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.rules import ZONES, Rule
from policies.service import PolicyService, SharingPolicy, _enforcer
from policies.store import RuleSet

AGENCIES = ["a1", "a2", "a3"]
CATEGORIES = ["income", "civil-status", "pension"]
PURPOSES = ["p1", "p2"]
REQUESTERS = [*(f"agency:{agency}" for agency in AGENCIES), "role:r1", "role:r2", "role:r3"]
GROUP_LINES = [
    ("g", "agency:a1", "role:r1"),
    ("g", "agency:a2", "role:r2"),
    ("g", "role:r1", "role:r2"),  # a1 is in r2 through r1
    ("g", "role:r2", "role:r3"),
    ("g2", "income", "money"),
    ("g2", "pension", "money"),
]

rules = st.builds(
    Rule,
    id=st.uuids().map(lambda value: f"r-{value.hex[:8]}"),
    requester=st.sampled_from(REQUESTERS),
    category=st.sampled_from([*CATEGORIES, "money", "*"]),
    purpose=st.sampled_from([*PURPOSES, "*"]),
    zone=st.sampled_from(["white", "grey", "black"]),
)


@settings(max_examples=80, deadline=None)
@given(
    rule_list=st.lists(rules, max_size=12, unique_by=lambda rule: rule.id),
    groups=st.lists(st.sampled_from(GROUP_LINES), unique=True),
    requester=st.sampled_from(AGENCIES),
    category=st.sampled_from(CATEGORIES),
    purpose=st.sampled_from(PURPOSES),
)
def test_per_requester_decisions_are_those_of_the_whole_rule_set(
    rule_list: list[Rule], groups: list[tuple[str, str, str]], requester: str, category: str, purpose: str
) -> None:
    rule_set = RuleSet(5, tuple(rule_list), tuple(groups))
    whole = _enforcer(rule_set)
    expected = next(
        (
            (zone, explanation[4])
            for zone in ZONES
            for allowed, explanation in [whole.enforce_ex(f"agency:{requester}", category, purpose, zone)]
            if allowed
        ),
        ("black", None),
    )
    decision = SharingPolicy(rule_set).decide(requester, category, purpose)
    assert (decision.zone, None if decision.rule is None else decision.rule.id) == expected


class _Store:
    """A policy store of one published version that the test replaces (only what PolicyService reads)."""

    def __init__(self, rule_set: RuleSet) -> None:
        self.rule_set = rule_set

    async def version(self) -> int:
        return self.rule_set.version

    async def current(self) -> RuleSet:
        return self.rule_set


async def _exists(name: str) -> bool:
    return True


async def test_decisions_are_cached_boundedly_and_dropped_on_a_new_version() -> None:
    white = Rule("r-white", "agency:a1", "*", "*", "white")
    store = _Store(RuleSet(1, (white,), ()))
    service = PolicyService(store, _exists, _exists, max_decisions=4)  # type: ignore[arg-type]
    for purpose in ["q1", "q2", "q3", "q4", "q5", "q6"]:
        assert (await service.decide("a1", "income", purpose)).zone == "white"
    assert len(service._decisions) == 4
    store.rule_set = RuleSet(2, (Rule("r-black", "agency:a1", "*", "*", "black"),), ())
    assert (await service.decide("a1", "income", "q6")).zone == "white"  # cached until the version is followed
    assert await service.refresh()
    decision = await service.decide("a1", "income", "q6")
    assert (decision.zone, decision.version) == ("black", 2)
