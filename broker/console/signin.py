"""Signing in to the console and out of it: an operator id and password, checked against the Argon2 hash,
refused for a while after repeated failures from the same address (never from the others: a stranger cannot
lock an operator out), and answered by a fresh session in an HttpOnly, SameSite=Strict cookie. The sign-in
form carries its own CSRF token (a cookie of its own) since no session exists yet.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

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
HOME = f"{PREFIX}/"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console page of this hub, never another site, and nothing a redirect's
    Location header cannot carry as it is (a CR or LF would end the header: aiohttp refuses to send it)."""
    if (
        target is None
        or not target.startswith(HOME)
        or "//" in target
        or "\\" in target
        or not all("!" <= character <= "~" for character in target)  # printable ASCII: no control, space or other
    ):
        return HOME
    return target


def sign_in_page(request: web.Request, target: str | None, status: int = 200, error: str | None = None) -> web.Response:
    """The sign-in form with a fresh CSRF token, set in its cookie too; `target` is where it leads after."""
    token = request[SIGN_IN_TOKEN] = new_token()
    response = page(request, "sign_in.html", {"next": safe_next(target), "error": error}, status)
    cookie(response, SIGN_IN_COOKIE, token, tls=over_tls(request.config_dict[HUB].config.url))
    return response


def peer_of(request: web.Request) -> str:
    """The address a sign-in is counted against, as the API counts its callers' (broker/exchange/limits.py)."""
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", ()))
    return request.config_dict[HUB].peers.peer(request.remote, forwarded) or "unknown"


async def sign_in_form(request: web.Request) -> web.Response:
    return sign_in_page(request, request.query.get("next"))


async def sign_in(request: web.Request) -> web.Response:
    hub, entry, fields = request.config_dict[HUB], request[AUDIT], await form(request)
    target = safe_next(fields.get("next"))  # decided before anything is checked or created
    if not same_token(request.cookies.get(SIGN_IN_COOKIE, ""), fields.get("csrf")):
        entry.reason = "csrf-refused"
        return sign_in_page(request, target, 403, "The sign-in form had expired. Please try again.")
    operator_id, password, now = fields.get("operator", "").strip(), fields.get("password", ""), datetime.now(UTC)
    if not NAME.fullmatch(operator_id):
        entry.reason = "sign-in-failed"
        return sign_in_page(request, target, 401, "Wrong operator id or password.")
    entry.requester = operator_id
    peer = peer_of(request)
    locked = locked_until(await hub.console.failures(operator_id, peer, now - LOCK_OUT.remembered), now, LOCK_OUT)
    if locked is not None:
        entry.reason = "locked-out"
        return sign_in_page(
            request,
            target,
            429,
            f"Too many failed sign-ins for this operator id from this address: try again after {locked:%H:%M:%S} UTC,"
            " or ask an administrator to lift the lock.",
        )
    operator = await hub.directory.operator(operator_id)
    checked = await asyncio.to_thread(check_password, await hub.console.password_hash(operator_id), password)
    if not checked.ok or operator is None or operator.status != "active" or operator.role not in CONSOLE_ROLES:
        await hub.console.fail(operator_id, peer, now, now - LOCK_OUT.remembered)
        entry.reason = "sign-in-failed"
        return sign_in_page(
            request,
            target,
            401,
            f"Wrong operator id or password. After {LOCK_OUT.failures} failures from one address the operator id"
            " is locked there for a while, longer after each further failure.",
        )
    if checked.rehash:
        await hub.console.rehash(operator_id, await asyncio.to_thread(hash_password, password), now)
    token = new_token()
    session = Session(token_id(token), operator_id, new_token(), now, now)
    await hub.console.open_session(session, peer, now - LIFETIME.idle, now - LIFETIME.absolute)
    response = redirect(target)
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
