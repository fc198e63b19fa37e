"""Reading the audit log (privacy_officer)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from broker import errors
from broker.appkeys import HUB
from broker.http.replies import reply

AUDIT_FILTERS = ("subject", "requester", "holder", "category", "purpose", "outcome", "zone")


async def audit(request: web.Request) -> web.Response:
    unknown = sorted(set(request.query) - set(AUDIT_FILTERS))
    if unknown:
        raise errors.Invalid(f"unknown filters: {', '.join(unknown)}")
    records = await request.app[HUB].audit.records(**{name: request.query.get(name) for name in AUDIT_FILTERS})
    return reply(
        {
            "records": [
                {name: _json_value(getattr(record, name)) for name in record.__table__.columns.keys()}  # noqa: SIM118 (a ColumnCollection, not a dict)
                for record in records
            ]
        }
    )


def _json_value(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


ROUTES = [web.get("/v1/audit", audit)]
