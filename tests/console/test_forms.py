"""What the console's forms ask for, as the services take it: audit searches, rules, rule filters."""

from __future__ import annotations

import pytest

from broker.base import errors
from broker.console.admin import matching, rule_from_form
from broker.console.pages import moment
from broker.console.privacy import search_parameters
from broker.problems import problem_for
from policies.rules import Rule, RuleInvalid


def test_an_audit_search_form_becomes_the_apis_query() -> None:
    asked = {"subject": " 85073003328 ", "requester": "", "since": "2026-11-23T10:00", "outcome": "refused"}
    assert search_parameters(asked) == {
        "subject": "85073003328",
        "since": "2026-11-23T10:00Z",
        "outcome": "refused",
        "order": "desc",
    }
    assert search_parameters({"order": "asc", "nonsense": "x"}) == {"order": "asc"}


def test_browser_date_times_are_read_as_utc() -> None:
    assert moment("2026-11-23T10:00") == "2026-11-23T10:00Z"
    assert moment("2026-11-23T10:00:30") == "2026-11-23T10:00:30Z"
    assert moment("2026-11-23T10:00:00+01:00") == "2026-11-23T10:00:00+01:00"
    assert moment("2026-11-23T10:00:00Z") == "2026-11-23T10:00:00Z"


def test_a_rule_from_the_add_form() -> None:
    rule = rule_from_form(
        {
            "id": "r-18",
            "requester": "agency:tax-authority",
            "category": "income",
            "purpose": "*",
            "zone": "grey",
            "fields": "taxable_income, year",
            "consent": "on",
            "ground": " Income Tax Code 1992, art. 337 ",
        }
    )
    assert rule == Rule(
        "r-18",
        "agency:tax-authority",
        "income",
        "*",
        "grey",
        True,
        ("taxable_income", "year"),
        False,
        "Income Tax Code 1992, art. 337",
    )
    with pytest.raises(RuleInvalid, match="a grey rule needs one"):
        rule_from_form({"requester": "agency:x1", "category": "*", "purpose": "*", "zone": "grey", "ground": " "})
    with pytest.raises(RuleInvalid) as refused:
        rule_from_form({"id": "r-19", "requester": "agency:x1", "category": "*", "purpose": "*", "zone": "red"})
    shown = problem_for(refused.value)  # what the console's page shows for it
    assert isinstance(shown, errors.Invalid) and "zone" in shown.detail


def test_rule_filters_match_text_and_zone() -> None:
    rules = (
        Rule("r-1", "agency:family-benefits", "civil-status", "benefit-eligibility", "white"),
        Rule("r-3", "agency:family-benefits", "employment-status", "benefit-eligibility", "grey"),
        Rule("r-5", "agency:employment-office", "civil-status", "job-placement", "white"),
    )
    assert [rule.id for rule in matching(rules, {"requester": "FAMILY"})] == ["r-1", "r-3"]
    assert [rule.id for rule in matching(rules, {"category": "civil", "zone": "white"})] == ["r-1", "r-5"]
    assert matching(rules, {}) == list(rules)
