"""Signing in to the console and out of it: an operator id and password, checked against the Argon2 hash,
refused for a while after repeated failures, and answered by a fresh session in an HttpOnly, SameSite=Strict
cookie. The sign-in form carries its own CSRF token (a cookie of its own) since no session exists yet.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from aiohttp import web

from broker.accounts.credentials import (
    CONSOLE_ROLES,
    LockOut,
    check_password,
    hash_password,
    locked_until,
    new_token,
    same_token,
    token_id,
)
from broker.accounts.store import Session
from broker.appkeys import AUDIT, HUB
from broker.console.gate import LIFETIME, SESSION_COOKIE, SIGN_IN, SIGN_IN_COOKIE, cookie, forget, over_tls
from broker.console.pages import PREFIX, SESSION, SIGN_IN_TOKEN, form, page, redirect
from directory.names import NAME

LOCK_OUT = LockOut()
FORGET_FAILURES_AFTER = timedelta(days=1)  # failed sign-ins older than this are dropped from the store
HOME = f"{PREFIX}/"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console page of this hub, never another site."""
    if target is None or not target.startswith(HOME) or target.startswith("//") or "\\" in target:
        return HOME
    return target


def sign_in_page(request: web.Request, target: str | None, status: int = 200, error: str | None = None) -> web.Response:
    """The sign-in form with a fresh CSRF token, set in its cookie too; `target` is where it leads after."""
    token = request[SIGN_IN_TOKEN] = new_token()
    response = page(request, "sign_in.html", {"next": safe_next(target), "error": error}, status)
    cookie(response, SIGN_IN_COOKIE, token, tls=over_tls(request.config_dict[HUB].config.url))
    return response


async def sign_in_form(request: web.Request) -> web.Response:
    return sign_in_page(request, request.query.get("next"))


async def sign_in(request: web.Request) -> web.Response:
    hub, entry, fields = request.config_dict[HUB], request[AUDIT], await form(request)
    target = fields.get("next")
    if not same_token(request.cookies.get(SIGN_IN_COOKIE, ""), fields.get("csrf")):
        entry.reason = "csrf-refused"
        return sign_in_page(request, target, 403, "The sign-in form had expired. Please try again.")
    operator_id, password, now = fields.get("operator", "").strip(), fields.get("password", ""), datetime.now(UTC)
    if not NAME.fullmatch(operator_id):
        entry.reason = "sign-in-failed"
        return sign_in_page(request, target, 401, "Wrong operator id or password.")
    entry.requester = operator_id
    locked = locked_until(await hub.console.failures(operator_id, now - LOCK_OUT.window), now, LOCK_OUT)
    if locked is not None:
        entry.reason = "locked-out"
        return sign_in_page(
            request,
            target,
            429,
            f"Too many failed sign-ins for this operator id: try again after {locked:%H:%M} UTC.",
        )
    operator = await hub.directory.operator(operator_id)
    checked = await asyncio.to_thread(check_password, await hub.console.password_hash(operator_id), password)
    if not checked.ok or operator is None or operator.status != "active" or operator.role not in CONSOLE_ROLES:
        await hub.console.fail(operator_id, now, now - FORGET_FAILURES_AFTER)
        entry.reason = "sign-in-failed"
        return sign_in_page(
            request,
            target,
            401,
            f"Wrong operator id or password. After {LOCK_OUT.failures} failures within "
            f"{LOCK_OUT.window.seconds // 60} minutes the operator id is locked for a while.",
        )
    if checked.rehash:
        await hub.console.rehash(operator_id, await asyncio.to_thread(hash_password, password), now)
    token = new_token()
    session = Session(token_id(token), operator_id, new_token(), now, now)
    await hub.console.open_session(session, now - LIFETIME.idle, now - LIFETIME.absolute)
    response = redirect(safe_next(target))
    cookie(response, SESSION_COOKIE, token, tls=over_tls(hub.config.url))
    forget(response, SIGN_IN_COOKIE)
    return response


async def sign_out(request: web.Request) -> web.Response:
    await request.config_dict[HUB].console.close_session(request[SESSION].id)
    response = redirect(SIGN_IN)
    forget(response, SESSION_COOKIE)
    return response


ROUTES = [
    web.get("/sign-in", sign_in_form, name="sign_in_form"),
    web.post("/sign-in", sign_in, name="sign_in"),
    web.post("/sign-out", sign_out, name="sign_out"),
]
