"""The one map from what stops a call to the RFC 9457 problem it answers with: the hub's own problems pass as
they are, each domain package's errors map to theirs in DOMAIN, a store that cannot be reached is a 503, and
anything else is logged and answered without detail. Every front end shows refusals through it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from broker.base import errors
from broker.base.store import StoreUnavailable
from consent.service import ConsentInvalid
from consent.store import AlreadyEnded
from directory.keys import KeyInvalid
from directory.references import DeclarationInvalid
from directory.registry import RegistryConflict, RegistryInvalid
from directory.store import KeyConflict
from policies.reviews import ReviewNotPending
from policies.rules import RuleInvalid
from policies.service import PolicyEditRefused

log = structlog.get_logger("crossroads.problems")

EDIT_REFUSED: dict[str, type[errors.Problem]] = {
    "unknown": errors.NotFound,
    "conflicts": errors.Conflict,
    "invalid": errors.Invalid,
    "own": errors.OwnChange,
}


def _not_pending(error: ReviewNotPending) -> errors.Problem:
    if error.status is None:
        return errors.UnknownReview(f"no review {error.review_id!r}")
    return errors.Conflict(f"review {error.review_id!r} is {error.status}, not pending")


DOMAIN: dict[type[Exception], Callable[[Any], errors.Problem]] = {
    ConsentInvalid: lambda error: errors.Invalid(str(error)),
    KeyInvalid: lambda error: errors.Invalid(str(error)),
    DeclarationInvalid: lambda error: errors.Invalid(str(error)),
    RuleInvalid: lambda error: errors.Invalid(str(error)),
    KeyConflict: lambda error: errors.Conflict(str(error)),
    RegistryInvalid: lambda error: errors.Invalid(str(error)),
    RegistryConflict: lambda error: errors.Conflict(str(error)),
    AlreadyEnded: lambda error: errors.Conflict(str(error)),
    PolicyEditRefused: lambda error: EDIT_REFUSED[error.why](str(error)),
    ReviewNotPending: _not_pending,
    web.HTTPNotFound: lambda _error: errors.NotFound("there is nothing at this address"),
    web.HTTPMethodNotAllowed: lambda _error: errors.MethodNotAllowed("this method is not allowed here"),
}


def problem_for(error: Exception, **context: object) -> errors.Problem:
    """The problem `error` answers with; `context` (ids, never data) goes into the log line of one unforeseen."""
    if isinstance(error, errors.Problem):
        return error
    for kind in type(error).__mro__:
        if kind in DOMAIN:
            return DOMAIN[kind](error)
    if isinstance(error, StoreUnavailable | SQLAlchemyError | OSError):
        log.error("store.unavailable", error=type(error).__name__, **context)
        return errors.Unavailable("the hub's store cannot be reached")
    log.exception("internal.error", **context)
    return errors.Problem("the hub could not complete this request")
