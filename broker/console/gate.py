"""The console's one middleware, what broker/http/middleware.py's is to the API: find the operator's session from its
cookie, check the form's CSRF token on every POST, authorise the role through Casbin (the same OperatorGate),
read the agencies' names the pages show (from the directory's cache), render any error as a page, commit the
request's audit record before the page leaves, and add the headers that keep the page to itself (no script,
nothing from elsewhere, no framing, no caching).

A console audit record has kind `console`, key id `console`, the operator as requester, the object acted
on where it has a column (subject, review, rule and policy version, agency as holder), and as reason the
action (the route's name) when it succeeded, or why it was refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from broker.accounts.credentials import CONSOLE_ROLES, Lifetime, same_token, session_alive, token_id
from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.audit.call import audited
from broker.audit.log import AuditEntry
from broker.base import errors
from broker.console.pages import AGENCY_NAMES, PREFIX, SESSION, form, page, redirect
from broker.exchange.authentication import Principal
from broker.hub import Hub

log = structlog.get_logger("crossroads.console")

SESSION_COOKIE = "crossroads_console"
SIGN_IN_COOKIE = "crossroads_console_sign_in"
SIGNED_OUT = "signed-out"  # the reason recorded when a request comes without a live session
CONSOLE_KEY_ID = "console"  # a console request is authenticated by its session, not by a signing key
SIGN_IN, STYLESHEET = f"{PREFIX}/sign-in", f"{PREFIX}/static/console.css"
LIFETIME = Lifetime()
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SignInNeeded(Exception):
    """No live session: the browser is sent to the sign-in page."""


def outcome_of(method: str, status: int) -> str:
    """A console request's audit outcome: a page shown is `delivered`, a form's work done `recorded`."""
    if status >= 500:
        return "failed"
    if status >= 400:
        return "refused"
    return "recorded" if method == "POST" else "delivered"


def over_tls(public_url: str) -> bool:
    """Whether the hub is reached over TLS (its public URL is https, e.g. behind a TLS-terminating proxy)."""
    return public_url.lower().startswith("https://")


def cookie(response: web.StreamResponse, name: str, value: str, *, tls: bool) -> None:
    """A cookie only this console's pages receive, never script, never sent from another site's page, and,
    with `tls`, never sent without TLS."""
    response.set_cookie(name, value, path=PREFIX, httponly=True, samesite="Strict", secure=tls)


def forget(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path=PREFIX)


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == STYLESHEET:
        return await handler(request)
    hub = request.config_dict[HUB]
    entry = AuditEntry(at=datetime.now(UTC), kind="console", key_id=CONSOLE_KEY_ID)
    request[AUDIT] = entry

    def shown(problem: errors.Problem) -> web.StreamResponse:
        return page(request, "error.html", {"problem": problem}, problem.status)

    async def call() -> web.StreamResponse:
        try:
            if request.path != SIGN_IN:
                await admit(request, hub, entry)
            return await handler(request)
        except SignInNeeded:
            entry.reason = SIGNED_OUT
            if request.method == "GET":
                return redirect(f"{SIGN_IN}?next={quote(request.path_qs, safe='/')}")
            return shown(errors.Unsigned("your session has ended: sign in again"))

    def settle(entry: AuditEntry, response: web.StreamResponse) -> None:
        entry.status = response.status
        entry.outcome = "refused" if entry.reason == SIGNED_OUT else outcome_of(request.method, response.status)
        if entry.reason is None and response.status < 400 and request.match_info.route.name:
            entry.reason = request.match_info.route.name.replace("_", "-")  # the action: `review-decision`

    if request.path == SIGN_IN and request.method == "GET":  # the empty sign-in form shows nothing to audit
        return secured(await handler(request))
    response = await audited(hub.audit, entry, call, shown, settle)
    hub.metrics.calls.labels(entry.kind, entry.outcome).inc()
    log.info(
        "console.answered",
        requester=entry.requester,
        status=response.status,
        outcome=entry.outcome,
        reason=entry.reason,
        latency_ms=entry.latency_ms,
    )
    return secured(response)


async def admit(request: web.Request, hub: Hub, entry: AuditEntry) -> None:
    """Let the request through to its page: a live session of an active console operator, a form carrying
    that session's CSRF token, and a role the console rules let use this path with this method."""
    token = request.cookies.get(SESSION_COOKIE)
    if token is None:
        raise SignInNeeded
    session, now = await hub.console.session(token_id(token)), datetime.now(UTC)
    if session is None:
        raise SignInNeeded
    operator = await hub.directory.operator(session.operator_id)
    if (
        not session_alive(session.created_at, session.seen_at, now, LIFETIME)
        or operator is None
        or operator.status != "active"
        or operator.role not in CONSOLE_ROLES
    ):
        await hub.console.close_session(session.id)
        raise SignInNeeded
    entry.requester = operator.id
    principal = Principal("operator", operator.id, operator.role, CONSOLE_KEY_ID)
    request[PRINCIPAL], request[SESSION] = principal, session
    if request.method == "POST" and not same_token(session.csrf_token, (await form(request)).get("csrf")):
        entry.reason = "csrf-refused"
        raise errors.Forbidden("this form was not sent from a console page of this session: open the page again")
    if request.match_info.http_exception is None:  # no such page: the handler answers 404, not the rules
        hub.authenticator.authorize(principal, request.path, request.method)
    if now - session.seen_at >= LIFETIME.touch_every:
        await hub.console.touch(session.id, now)
    request[AGENCY_NAMES] = await hub.directory.agency_names()  # cached until the directory changes


def secured(response: web.StreamResponse) -> web.StreamResponse:
    response.headers.update(SECURITY_HEADERS)
    return response
