"""Console accounts as pure decisions: Argon2 hashes, the lock-out and its backoff, session lifetimes, tokens, and
where a sign-in may lead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web
from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st

from broker.accounts.credentials import (
    Lifetime,
    LockOut,
    check_password,
    hash_password,
    locked_until,
    password_problem,
    same_token,
    session_alive,
    token_id,
)
from broker.console.gate import cookie, outcome_of, over_tls
from broker.console.signin import safe_next

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_a_password_checks_against_its_argon2id_hash_only() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert check_password(stored, "correct horse battery").ok
    assert not check_password(stored, "correct horse battery!").ok
    assert not check_password(None, "anything at all").ok  # no hash: checked against a decoy, never true
    assert not check_password("not a hash", "anything at all").ok


def test_a_hash_made_with_weaker_parameters_asks_to_be_redone() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("correct horse battery")
    checked = check_password(weak, "correct horse battery")
    assert checked.ok and checked.rehash
    assert not check_password(hash_password("correct horse battery"), "correct horse battery").rehash


def test_passwords_have_a_length() -> None:
    assert password_problem("short") is not None
    assert password_problem("x" * 12) is None
    assert password_problem("x" * 1025) is not None


def test_five_failures_lock_for_a_minute_and_each_one_after_doubles_it() -> None:
    policy = LockOut()
    four = [NOW - timedelta(minutes=minutes) for minutes in (4, 3, 2)] + [NOW - timedelta(seconds=30)]
    assert locked_until(four, NOW, policy) is None
    five = [NOW - timedelta(minutes=10), *four]
    assert locked_until(five, NOW, policy) == NOW + timedelta(seconds=30)  # a minute after the last failure
    assert locked_until(five, NOW + timedelta(minutes=1), policy) is None
    seven = [*five, NOW + timedelta(minutes=1), NOW + timedelta(minutes=2)]
    assert locked_until(seven, NOW + timedelta(minutes=2), policy) == NOW + timedelta(minutes=6)
    forgotten = [*four, NOW - policy.remembered]
    assert locked_until(forgotten, NOW, policy) is None
    endless = [NOW - timedelta(seconds=second) for second in range(1000)]
    assert locked_until(endless, NOW, policy) == NOW + policy.longest


@given(st.lists(st.integers(min_value=0, max_value=2 * 86_400), max_size=12))
def test_locked_exactly_while_enough_failures_are_remembered(ages: list[int]) -> None:
    policy = LockOut()
    failures = [NOW - timedelta(seconds=age) for age in ages]
    remembered = [age for age in ages if age < policy.remembered.total_seconds()]
    until = locked_until(failures, NOW, policy)
    if len(remembered) < policy.failures:
        assert until is None
        return
    length = min(policy.first * 2 ** (len(remembered) - policy.failures), policy.longest)
    last = NOW - timedelta(seconds=min(remembered))
    assert until == (last + length if last + length > NOW else None)


def test_sessions_end_when_idle_or_old() -> None:
    lifetime = Lifetime()
    assert session_alive(NOW - timedelta(hours=1), NOW - timedelta(minutes=5), NOW, lifetime)
    assert not session_alive(NOW - timedelta(hours=1), NOW - timedelta(minutes=31), NOW, lifetime)
    assert not session_alive(NOW - timedelta(hours=13), NOW - timedelta(minutes=1), NOW, lifetime)


def test_tokens() -> None:
    assert same_token("abc", "abc") and not same_token("abc", "abd") and not same_token("abc", None)
    assert token_id("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_a_sign_in_leads_only_to_a_console_page() -> None:
    assert safe_next("/console/people/85073003328?cursor=x") == "/console/people/85073003328?cursor=x"
    for target in (None, "", "https://elsewhere.example/", "//elsewhere.example/console/", "/console", "/v1/audit"):
        assert safe_next(target) == "/console/"
    assert safe_next("/console/\\elsewhere") == "/console/"
    for target in ("/console/\r\nSet-Cookie: a=b", "/console//elsewhere.example", "/console/\t", "/console/\u00e9"):
        assert safe_next(target) == "/console/"


def test_outcomes_of_console_requests() -> None:
    assert outcome_of("GET", 200) == "delivered" and outcome_of("POST", 303) == "recorded"
    assert outcome_of("POST", 403) == "refused" and outcome_of("GET", 503) == "failed"


def test_cookies_are_secure_behind_tls() -> None:
    assert over_tls("https://hub.example") and over_tls("HTTPS://hub.example:8443")
    assert not over_tls("http://127.0.0.1:8080")
    for tls in (True, False):
        response = web.Response()
        cookie(response, "crossroads_console", "token", tls=tls)
        morsel = response.cookies["crossroads_console"]
        assert bool(morsel["secure"]) is tls
        assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/console"
