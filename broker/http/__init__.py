"""The hub's HTTP handlers, one module per room; each lists its ROUTES. Handlers stay thin: parse, call
the service, answer. Authentication, authorisation, problems, audit and signing are broker/http/middleware.py's.
"""

from aiohttp import web

from broker.http import (
    audit,
    batches,
    consents,
    directory,
    exchanges,
    imports,
    keys,
    notifications,
    operations,
    policies,
    registry,
    reviews,
)

MODULES = (
    exchanges,
    consents,
    reviews,
    policies,
    audit,
    notifications,
    keys,
    registry,
    directory,
    imports,
    batches,
    operations,
)


def add_routes(app: web.Application) -> None:
    for module in MODULES:
        app.add_routes(module.ROUTES)
