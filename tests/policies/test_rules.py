"""Zone precedence through Casbin: black beats grey beats white, nothing matching is black, the most
specific rule of the deciding zone is named; property-tested over random rule sets.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.rules import Rule, minimise, parse_csv, to_csv
from policies.service import OperatorGate, SharingPolicy
from policies.store import RuleSet

AGENCIES = ["family-benefits", "tax-authority"]
ROLES = {"family-benefits": ["social-security"], "tax-authority": []}
CATEGORIES = ["income", "civil-status"]
PURPOSES = ["benefit-eligibility", "fraud-investigation"]
GROUPS = tuple(("g", f"agency:{agency}", f"role:{role}") for agency, roles in ROLES.items() for role in roles)

rules = st.builds(
    Rule,
    id=st.uuids().map(lambda value: f"r-{value.hex[:8]}"),
    requester=st.sampled_from([*(f"agency:{a}" for a in AGENCIES), "role:social-security"]),
    category=st.sampled_from([*CATEGORIES, "*"]),
    purpose=st.sampled_from([*PURPOSES, "*"]),
    zone=st.sampled_from(["white", "grey", "black"]),
    consent=st.booleans(),
)


def matches(rule: Rule, requester: str, category: str, purpose: str) -> bool:
    requesters = {f"agency:{requester}", *(f"role:{role}" for role in ROLES[requester])}
    return rule.requester in requesters and rule.category in (category, "*") and rule.purpose in (purpose, "*")


@settings(max_examples=60, deadline=None)
@given(
    rule_list=st.lists(rules, max_size=8, unique_by=lambda rule: rule.id),
    requester=st.sampled_from(AGENCIES),
    category=st.sampled_from(CATEGORIES),
    purpose=st.sampled_from(PURPOSES),
)
def test_precedence_and_default_deny(rule_list: list[Rule], requester: str, category: str, purpose: str) -> None:
    decision = SharingPolicy(RuleSet(3, tuple(rule_list), GROUPS)).decide(requester, category, purpose)
    matching = [rule for rule in rule_list if matches(rule, requester, category, purpose)]
    expected = next((zone for zone in ("black", "grey", "white") if any(r.zone == zone for r in matching)), "black")
    assert decision.zone == expected and decision.version == 3
    if not matching:
        assert decision.rule is None
    else:
        assert decision.rule in matching and decision.rule.zone == expected


def test_the_most_specific_rule_of_the_zone_decides() -> None:
    broad = Rule("r-broad", "role:social-security", "*", "*", "white", consent=True)
    narrow = Rule("r-narrow", "agency:family-benefits", "income", "benefit-eligibility", "white", fields=("year",))
    decision = SharingPolicy(RuleSet(1, (broad, narrow), GROUPS)).decide(
        "family-benefits", "income", "benefit-eligibility"
    )
    assert decision.rule == narrow and not decision.consent and decision.fields == ("year",)


def test_category_groups() -> None:
    rule = Rule("r-1", "agency:tax-authority", "family-data", "*", "white")
    policy = SharingPolicy(RuleSet(1, (rule,), (("g2", "civil-status", "family-data"),)))
    assert policy.decide("tax-authority", "civil-status", "fraud-investigation").zone == "white"
    assert policy.decide("tax-authority", "income", "fraud-investigation").zone == "black"


@given(
    data=st.dictionaries(st.text(max_size=5), st.integers()),
    fields=st.none() | st.lists(st.text(max_size=5)).map(tuple),
)
def test_minimise_never_lets_an_unlisted_field_through(data: dict[str, int], fields: tuple[str, ...] | None) -> None:
    kept = minimise(data, fields)
    assert kept == data if fields is None else set(kept) <= set(fields) and all(kept[k] == data[k] for k in kept)


def test_csv_round_trip() -> None:
    text = (Path(__file__).parents[2] / "policies" / "default_rules.csv").read_text()
    policy = parse_csv(text + "g, agency:tax-authority, role:social-security\ng2, civil-status, family-data\n")
    assert len(policy.rules) >= 6 and len(policy.groups) == 2
    assert parse_csv(to_csv(policy)) == policy and to_csv(parse_csv(to_csv(policy))) == to_csv(policy)


def test_operator_gate() -> None:
    gate = OperatorGate()
    assert gate.allows("agency", "/v1/exchanges", "POST")
    assert not gate.allows("agency", "/v1/audit", "GET")
    assert gate.allows("privacy_officer", "/v1/audit", "GET")
    assert not gate.allows("privacy_officer", "/v1/policies", "POST")
    assert gate.allows("citizen_portal", "/v1/consents/c-1/withdraw", "POST")
    assert not gate.allows("citizen_portal", "/v1/consents/c-1/withdraw/extra", "POST")
