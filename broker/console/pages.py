"""What every console page shares: the signed-in session on the request, rendering a template with the
navigation the operator's role allows, agencies shown by their registered names, redirects after a form, the
notices they carry, and reading forms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup, escape
from multidict import MultiDict, MultiDictProxy

from broker.accounts.store import Session
from broker.appkeys import HUB, PRINCIPAL
from broker.base import errors

PREFIX = "/console"
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
SESSION = web.RequestKey("console_session", Session)
SIGN_IN_TOKEN = web.RequestKey("console_sign_in_token", str)  # the sign-in form's CSRF token, before a session
# Agency names by id, read once per request (from the directory's cache) for the pages that show agencies.
AGENCY_NAMES: web.RequestKey[Mapping[str, str]] = web.RequestKey("console_agency_names")
AGENCY_PREFIX = "agency:"  # how a rule names a requesting agency (`agency:family-benefits`)

# Every page a role may open, in the order the navigation lists them; each is shown only to the roles the
# console rules let open it.
NAVIGATION = (
    ("/console/", "Overview"),
    ("/console/audit", "Audit search"),
    ("/console/people", "People"),
    ("/console/reviews", "Grey-zone reviews"),
    ("/console/emergencies", "Emergency accesses"),
    ("/console/anomalies", "Anomalies"),
    ("/console/chain", "Chain verification"),
    ("/console/rules", "Sharing rules"),
    ("/console/rules/explain", "Explain"),
    ("/console/rules/history", "Rule history"),
    ("/console/agencies", "Agencies and keys"),
    ("/console/dead-letters", "Dead letters"),
    ("/console/sign-in-locks", "Sign-in locks"),
)
# What a page says after a form sent the operator back to it (`?notice=`); anything else is not shown.
NOTICES = {
    "review-approved": "The review is approved: the requester may repeat that exchange once.",
    "review-rejected": "The review is rejected.",
    "rule-added": "The rule is added and published as a new policy version.",
    "rule-removed": "The rule is removed and the change published as a new policy version.",
    "rolled-back": "The earlier version's rules are published again as a new version.",
    "change-held": "The change waits for another administrator's approval: nothing is published yet.",
    "change-approved": "The change is approved and published as a new policy version.",
    "change-rejected": "The change is rejected: nothing is published.",
    "agency-registered": "The agency is registered with its key.",
    "agency-active": "The agency is active again.",
    "agency-suspended": "The agency is suspended: its requests are refused.",
    "key-rotated": "The new key is registered; the old one stops working at the time shown.",
    "key-revoked": "The key is revoked: requests signed with it are refused.",
    "replayed": "The dead letters are back in the queue; the hub delivers them within its poll interval.",
    "unlocked": "The lock is lifted: those failed sign-ins are forgotten.",
}
MAX_TEXT = 2000


def allowed(request: web.Request, path: str, method: str = "GET") -> bool:
    """Whether the signed-in operator's role may use `path`, by the same Casbin rules the gate enforces."""
    principal = request.get(PRINCIPAL)
    if principal is None:
        return False
    try:
        request.config_dict[HUB].authenticator.authorize(principal, path, method)
    except errors.Forbidden:
        return False
    return True


def page(request: web.Request, template: str, context: Mapping[str, Any], status: int = 200) -> web.Response:
    """A rendered page, with who is signed in, their navigation and the token every form carries."""
    session = request.get(SESSION)
    notice = NOTICES.get(request.query.get("notice", ""))
    shared = {
        "me": request.get(PRINCIPAL),
        "csrf": session.csrf_token if session is not None else request.get(SIGN_IN_TOKEN, ""),
        "navigation": [(path, label) for path, label in NAVIGATION if allowed(request, path)],
        "here": request.path,
        "notice": notice,
        "agency_names": request.get(AGENCY_NAMES, {}),
    }
    return aiohttp_jinja2.render_template(template, request, {**shared, **context}, app_key=TEMPLATES, status=status)


def agency_label(names: Mapping[str, str], value: str | None) -> Markup:
    """An agency as a page shows it: its registered name, then its id small (what officers search by); an id
    the registry does not know (an operator, a role, a deleted agency) alone; a dash for none. A rule's
    `agency:<id>` keeps its prefix on the id."""
    if not value:
        return Markup("—")
    agency_id = value.removeprefix(AGENCY_PREFIX)
    name = names.get(agency_id)
    if name is None:
        return escape(value)
    return Markup('{} <small class="id">{}</small>').format(name, value)


def redirect(location: str) -> web.Response:
    """See other: where a form sends the browser once it has done its work (so a reload repeats nothing)."""
    return web.Response(status=303, headers={"Location": location})


async def form(request: web.Request) -> MultiDictProxy[str]:
    """The fields of a posted form (files are not accepted)."""
    texts: MultiDict[str] = MultiDict()
    for name, value in (await request.post()).items():
        if not isinstance(value, str):
            raise errors.Invalid("console forms take no files")
        texts.add(name, value)
    return MultiDictProxy(texts)


def text(fields: Mapping[str, str], name: str, label: str, *, required: bool = True, most: int = MAX_TEXT) -> str:
    """A form's text field, trimmed; refuses a missing required one or one longer than `most`."""
    value = fields.get(name, "").strip()
    if required and not value:
        raise errors.Invalid(f"{label} is required")
    if len(value) > most:
        raise errors.Invalid(f"{label} is at most {most} characters")
    return value


def query_filled(query: Mapping[str, str]) -> dict[str, str]:
    """A GET form's fields that were filled in (an empty field filters nothing)."""
    return {name: value.strip() for name, value in query.items() if value.strip()}


def moment(value: str) -> str:
    """A date-time field as RFC 3339: a browser's `datetime-local` value (no offset) is read as UTC."""
    if len(value) in (16, 19) and "T" in value and value[-1] not in "Zz" and "+" not in value[10:]:
        return value + "Z"
    return value
