"""Every package's tables, imported so that `Base.metadata` describes the whole schema (for migrations and
the check that migrations and models agree)."""

import broker.accounts.models
import broker.audit.log
import broker.audit.nonces
import broker.batches.models
import broker.notifications.alerts
import broker.notifications.outbox
import consent.models
import directory.models
import policies.models

PACKAGES = (
    broker.audit.log,
    broker.accounts.models,
    broker.notifications.outbox,
    broker.notifications.alerts,
    broker.audit.nonces,
    broker.batches.models,
    consent.models,
    directory.models,
    policies.models,
)
