"""The HTTP store: answers a category by asking the agency's existing REST service and mapping its JSON.
A URL template names the subject (and any params) as `{subject}`, `{year}`; a 404 there means the
subject is unknown, and a service that cannot answer makes the adapter answer 503.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog

from adapters.mapping import Field, MappingError, project
from adapters.server import RecordRequest, StoreUnavailable, UnknownSubject
from adapters.validation import InvalidParams

log = structlog.get_logger("crossroads.adapter.rest")


def template_names(template: str) -> tuple[str, ...]:
    """The placeholders of a URL template, each a plain name."""
    names = tuple(name for _, name, _, _ in string.Formatter().parse(template) if name is not None)
    if "subject" not in names:
        raise MappingError("the URL template must name {subject}")
    if not all(name.isidentifier() for name in names):
        raise MappingError("URL template placeholders are plain names: {subject}, {year}")
    return names


def expand(template: str, values: Mapping[str, Any]) -> str:
    """The URL for `values`, each value percent-encoded as one path segment or query value."""
    return template.format(**{name: quote(str(value), safe="") for name, value in values.items()})


class RestStore:
    def __init__(
        self,
        url: str,
        fields: Sequence[Field],
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 4.0,
    ) -> None:
        self._template = url
        self._names = template_names(url)
        self._fields = tuple(fields)
        self._query = dict(query or {})  # request param → query parameter of the service
        self._headers = dict(headers or {})
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self, request: RecordRequest) -> dict[str, Any]:  # noqa: C901 -- each answer the service may give
        if self._session is None:
            raise RuntimeError("the store is not open")
        values: dict[str, Any] = {"subject": request.subject}
        for name in self._names:
            if name != "subject":
                if name not in request.params:
                    raise InvalidParams(f"this category needs the param {name!r}")
                values[name] = request.params[name]
        url = expand(self._template, values)
        query = {target: str(request.params[param]) for param, target in self._query.items() if param in request.params}
        try:
            async with self._session.get(url, params=query) as answer:
                if answer.status == 404:
                    raise UnknownSubject(request.subject)
                if answer.status >= 500 or answer.status in (408, 429):
                    log.warning("rest.unavailable", exchange=request.exchange, status=answer.status)
                    raise StoreUnavailable(f"the service answered {answer.status}")
                if answer.status != 200:
                    raise MappingError(f"the service answered {answer.status}")
                body = await answer.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("rest.unreachable", exchange=request.exchange, error=type(error).__name__)
            raise StoreUnavailable("the service cannot be reached") from error
        try:
            document = json.loads(body)
        except ValueError as error:
            raise MappingError("the service did not answer JSON") from error
        if not isinstance(document, dict):
            raise MappingError("the service did not answer a JSON object")
        return project(document, self._fields)
