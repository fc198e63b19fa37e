"""Every package's tables, imported so that `Base.metadata` describes the whole schema (for migrations and
the check that migrations and models agree)."""

import broker.audit
import broker.console.models
import broker.outbox
import broker.replay
import consent.models
import directory.models
import policies.models

PACKAGES = (
    broker.audit,
    broker.console.models,
    broker.outbox,
    broker.replay,
    consent.models,
    directory.models,
    policies.models,
)
