"""Typed keys for what the application and each request carry."""

from aiohttp import web

from broker.audit.log import AuditEntry
from broker.exchange.authentication import Principal
from broker.hub import Hub

HUB = web.AppKey("hub", Hub)
PRINCIPAL = web.RequestKey("principal", Principal)
BODY = web.RequestKey("body", bytes)
AUDIT = web.RequestKey("audit", AuditEntry)
